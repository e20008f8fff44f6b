/**
 * The intake of a completed CI run on the app's pull request (`check_suite.completed`,
 * `workflow_run.completed`). A failure: decides whether it starts a Coder revision, reads what
 * failed, and enqueues one revision per head. A success while the task is stopped because a CI
 * revision found nothing to fix: once every check on that head passed, the task is ready for
 * merge again ({@link ciPassedIntake}). The webhook handlers (`adapters/github/inbound/
 * check-suite-completed.ts`, `workflow-run-completed.ts`) only filtered the payload and queued
 * this job in the issue's stage lane, so it never runs while a stage of the issue runs.
 */
import type { Logger } from "pino";

import { RepoConfig } from "../config/repo-config.js";
import {
  CHECK_RUN_PASSED_CONCLUSIONS,
  CI_FAILED_CONCLUSIONS,
  CI_NOT_FIXABLE_NOTE,
  CI_PASSED_CONCLUSIONS,
  CI_NOT_FIXABLE_REASON,
  CI_PASSED_REASON,
  type CiIntakePayload,
  ciIntakePayload,
  isBlockedOnUnfixableCi,
} from "../domain/ci.js";
import { GitHubApiError } from "../domain/errors.js";
import { APP_ACTOR, issueLockKey, type JobKind, stageDedupeKey } from "../domain/jobs.js";
import { ENDED_STATES, isStopped, isTaskState } from "../domain/task-state.js";
import type { GitHubPort } from "../ports/github.js";
import { type DbOrTrx, inTransaction } from "../store/db.js";
import { enqueueJob, type JobSpec, liveJobsOfTask } from "../store/queue.js";
import type { Task } from "../store/schema.js";
import { clearTrackingNote, configProblemsOf, currentTrackingNotes, loadTask, setTrackingNote, trackingNotesOf, updateTask } from "../store/tasks.js";
import { transitionIf, transitionsOf } from "../store/transitions.js";
import {
  buildCiFeedback,
  CI_DETAILED_FAILURES,
  CI_LOG_READ_BYTES,
  type CiFailure,
  ciTrackingNote,
  type FailedCheckRun,
  type FailedJob,
  isIgnoredCheckRun,
} from "./ci-feedback.js";
import type { IntakeJob, IntakeOutcome } from "./intake.js";
import type { PipelineDeps } from "./pipeline-deps.js";
import { applyStateLabel, writeTracking } from "./reporter.js";
import { waitForIssueWork } from "./wait-for-issue-work.js";

export type { CiIntakePayload };

/** The tracking comment's note of the last CI revision (`tasks.tracking_notes`); replaced when the checks pass on a re-run. */
export const CI_TRACKING_NOTE = "ci-failure";

/** The note ({@link CI_NOT_FIXABLE_NOTE}) of a stop because a CI revision on `headSha` found nothing to fix. */
export function ciNotFixableNote(headSha: string): string {
  return `⏸️ Nothing to fix for the failed checks on \`${headSha.slice(0, 7)}\`: once every check passes on a re-run of that commit, the task is ready for merge again.`;
}

/** The note ({@link CI_TRACKING_NOTE}) once the checks passed on a re-run of `headSha`. */
export function ciPassedNote(headSha: string): string {
  return `🟢 The repository's checks passed on a re-run of \`${headSha.slice(0, 7)}\`: ready for merge again.`;
}
/** The `name` a re-check's payload carries (in the logs): no run GitHub reported. */
const CI_RECHECK_NAME = "re-check after the stop";

/**
 * The `ci` intake the code stage queues as it stops the task on a CI failure the Coder found
 * nothing to fix: a pass ({@link ciPassedIntake}) for `headSha`, so the head's check runs are read
 * once after the stop. A re-run that passed while the Coder worked was not queued (the task was
 * not stopped yet): if every check on the head passed, the task is ready for merge now; if not,
 * nothing changes and the next passing run decides, as usual. The payload is a handler's
 * (`ciIntakePayload`) about no run in particular — the app as sender, a `success` that only routes
 * it to the pass path (which reads every check itself), no app slug, suite or workflow run. In the
 * issue's stage lane, so it runs after the code job; one per task, run and head
 * (`ci-recheck:<task>:<run>:<sha>`).
 */
export function ciRecheckJob(deps: Pick<PipelineDeps, "maxAttempts">, task: Task, pullNumber: number, headSha: string, deliveryId: string | null): JobSpec {
  return {
    kind: "intake",
    taskId: task.id,
    installationId: task.installation_id,
    lockKey: issueLockKey({ owner: task.owner, repo: task.repo, issueNumber: task.issue_number }),
    dedupeKey: `ci-recheck:${task.id}:${task.run}:${headSha}`,
    deliveryId,
    payload: ciIntakePayload(
      { owner: task.owner, repo: task.repo, number: pullNumber, cloneUrl: task.clone_url, defaultBranch: task.default_branch },
      { login: APP_ACTOR, id: 0 },
      { source: "check_suite", headSha, conclusion: "success", appSlug: null, checkSuiteId: 0, workflowRunId: null, name: CI_RECHECK_NAME },
      new Date().toISOString(),
    ),
    maxAttempts: deps.maxAttempts,
  };
}

/**
 * Whether `task` rests on the stop of a CI revision that found nothing to fix — `blocked`, its
 * latest transition that stop's ({@link CI_NOT_FIXABLE_REASON}) — and whether a passing re-run
 * still ends it (`armed`: {@link isBlockedOnUnfixableCi}, its note set; `/stop` clears the note);
 * `null` in any other state or stop.
 */
export async function unfixableCiStop(db: DbOrTrx, task: Task): Promise<{ armed: boolean } | null> {
  if (task.stage !== "blocked") return null;
  const last = (await transitionsOf(db, task.id)).at(-1);
  if (last?.to_state !== "blocked" || last.reason !== CI_NOT_FIXABLE_REASON) return null;
  return { armed: isBlockedOnUnfixableCi(task, await currentTrackingNotes(db, task.id), last) };
}

/** Jobs that change the pull request or move the task: while one is queued, the intake waits. */
const WORK_KINDS: ReadonlySet<JobKind> = new Set(["plan", "code", "revise", "test", "review", "merge"]);
/** Why a CI delivery started nothing (logged). */
type Skip =
  | "no_task"
  | "config_invalid"
  | "fix_failures_off"
  | "own_checks"
  | "not_a_failure"
  | "pull_request_closed"
  | "older_head"
  | "task_stopped"
  | "nothing_failed"
  | "all_ignored"
  | "already_handled";
/** Why a passing CI delivery left the task as it was (logged). */
type PassSkip = "not_blocked_on_ci" | "own_checks" | "older_head" | "pull_request_closed" | "no_checks" | "checks_not_passed";

/**
 * Decides and acts on a failed CI run of the app's pull request, in this order:
 *
 * 1. the task of the pull request, its stored repository config (`ci.fix_failures`; an invalid
 *    config starts nothing), a state that is not ended — a passing run goes to
 *    {@link ciPassedIntake} here — nor stopped;
 * 2. not the app's own checks (the suite's app slug is the app's; `GET /app`), a failing conclusion;
 * 3. the pull request still open with the failed commit as its head (`GET …/pulls/{n}`): a
 *    failure on an older head starts nothing;
 * 4. no queued work of the issue (a test, a review, a revision): otherwise this intake is queued
 *    again behind it, with a growing delay, a bounded number of times (`wait-for-issue-work.ts`);
 * 5. what failed: a workflow run's failed jobs and their logs (`GET …/actions/runs/{run_id}/jobs`,
 *    `GET …/actions/jobs/{job_id}/logs`), or a check suite's failed runs with their output and
 *    annotations (`GET …/check-suites/{id}/check-runs`, `GET …/check-runs/{id}/annotations`),
 *    minus `ci.ignore_checks`; other failed checks on the commit are named
 *    (`GET …/commits/{ref}/check-runs`);
 * 6. one `revise` job per head (`task:<id>:run:<run>:revise:ci-<sha>`: a second failure of the
 *    same head finds the key taken), with the tracking comment's note naming the checks.
 *
 * @throws {GitHubApiError} of a failed read (5xx, rate limit): the worker retries the intake
 */
export async function ciIntake(deps: PipelineDeps, job: IntakeJob, github: GitHubPort, log: Logger, p: CiIntakePayload): Promise<IntakeOutcome> {
  const skip = (reason: Skip, fields: Record<string, unknown> = {}): IntakeOutcome => {
    log.info({ reason, headSha: p.headSha, source: p.source, ...fields }, "CI failure: no revision");
    return reason === "no_task" ? "no_task" : "ignored";
  };
  if (job.task_id === null) return skip("no_task");
  const task = await loadTask(deps.db, job.task_id);
  if (!task.pr_number || task.pr_number !== p.subject.number || !task.plan) return skip("no_task");
  if (configProblemsOf(task).length > 0) return skip("config_invalid");
  const config = RepoConfig.parse(JSON.parse(task.config));
  if (!config.ci.fix_failures) return skip("fix_failures_off");
  if (isTaskState(task.stage) && ENDED_STATES.has(task.stage)) return skip("no_task", { stage: task.stage });
  if (CI_PASSED_CONCLUSIONS.has(p.conclusion)) return ciPassedIntake(deps, job, github, log, task, config, p);
  if (isStopped(task.stage)) return skip("task_stopped", { stage: task.stage });
  if (!CI_FAILED_CONCLUSIONS.has(p.conclusion)) return skip("not_a_failure", { conclusion: p.conclusion });
  const slug = (await github.getBotIdentity()).login.replace(/\[bot\]$/, "");
  if (p.appSlug === slug) return skip("own_checks");
  const pr = await github.getPullRequest(task.pr_number);
  if (pr.state !== "open") return skip("pull_request_closed");
  if (pr.headSha !== p.headSha) return skip("older_head", { head: pr.headSha });

  // A failure reported while the app's own tests or review run is looked at once they are done, on the head they leave.
  if (await busy(deps, task, job)) return waitForIssueWork(deps, job, task, p, log, { what: "CI failure", fields: { headSha: p.headSha } });

  const ignore = config.ci.ignore_checks;
  const collected = p.source === "workflow_run" && p.workflowRunId !== null ? await actionsFailures(github, p, ignore, log) : null;
  const failures = collected ?? (await checkSuiteFailures(github, p, slug, ignore));
  if (failures.failed === 0) return skip("nothing_failed");
  if (failures.list.length === 0) return skip("all_ignored", { ignored: failures.ignored });
  const others = await otherFailedChecks(github, p.headSha, slug, ignore, failures.coveredIds);
  const feedback = buildCiFeedback({ headSha: p.headSha, failures: failures.list, others });
  for (const l of feedback.logs) log.info({ check: l.name, failingStep: l.failingStep, logBytes: l.originalBytes, keptBytes: l.keptBytes }, "CI log trimmed");

  return inTransaction(deps.db, async (trx): Promise<IntakeOutcome> => {
    const current = await loadTask(trx, task.id);
    if (current.run !== task.run || current.pr_number !== task.pr_number || isStopped(current.stage)) return skip("task_stopped", { stage: current.stage });
    const id = await enqueueJob(trx, {
      kind: "revise",
      taskId: current.id,
      installationId: current.installation_id,
      lockKey: issueLockKey({ owner: current.owner, repo: current.repo, issueNumber: current.issue_number }),
      dedupeKey: stageDedupeKey(current, "revise", `ci-${p.headSha}`),
      deliveryId: job.delivery_id,
      payload: {
        actor: APP_ACTOR,
        feedback: { source: "ci", text: feedback.text, requestedBy: APP_ACTOR, headSha: p.headSha, checks: feedback.checkNames },
      },
      maxAttempts: deps.maxAttempts,
    });
    if (id === null) return skip("already_handled");
    await setTrackingNote(trx, current.id, CI_TRACKING_NOTE, ciTrackingNote(p.headSha, feedback.checkNames));
    log.info({ headSha: p.headSha, checks: feedback.checkNames, feedbackBytes: Buffer.byteLength(feedback.text) }, "CI failure: revision enqueued");
    return "enqueued";
  });
}

/** `true` while work of the task is queued or running (this intake aside), or the task is mid-stage. */
async function busy(deps: PipelineDeps, task: Task, job: IntakeJob): Promise<boolean> {
  const live = await liveJobsOfTask(deps.db, task.id);
  if (live.some((j) => j.id !== String(job.id) && WORK_KINDS.has(j.kind))) return true;
  return task.stage !== "ready_for_merge";
}

interface Collected {
  list: CiFailure[];
  /** Failed checks before `ignore_checks`. */
  failed: number;
  ignored: string[];
  /** Check run ids covered by `list` (an Actions job's id is its check run's). */
  coveredIds: Set<number>;
}

/**
 * A workflow run's failed jobs, the first {@link CI_DETAILED_FAILURES} with their log's end.
 *
 * @returns `null` when the jobs cannot be read (no `actions: read` yet, the run gone): the
 *   caller falls back to the check suite's runs and annotations
 */
async function actionsFailures(github: GitHubPort, p: CiIntakePayload, ignore: readonly string[], log: Logger): Promise<Collected | null> {
  let jobs;
  try {
    jobs = await github.listWorkflowRunJobs(p.workflowRunId ?? 0);
  } catch (err) {
    if (err instanceof GitHubApiError && !err.retryable && [403, 404, 410].includes(err.status)) {
      log.warn(
        { status: err.status, runId: p.workflowRunId },
        "the workflow run's jobs cannot be read (is `actions: read` granted?): using the check suite's output",
      );
      return null;
    }
    throw err;
  }
  const failed = jobs.filter((j) => j.conclusion !== null && CI_FAILED_CONCLUSIONS.has(j.conclusion));
  const list: CiFailure[] = [];
  const ignored: string[] = [];
  for (const j of failed) {
    const workflow = j.workflowName ?? p.name;
    const name = `${workflow} / ${j.name}`;
    if (isIgnoredCheckRun({ name: j.name, workflow }, ignore)) {
      ignored.push(name);
      continue;
    }
    const failedSteps = j.steps.filter((s) => s.conclusion !== null && CI_FAILED_CONCLUSIONS.has(s.conclusion)).map((s) => s.name);
    let jobLog: FailedJob["log"] = { unavailable: "not read (only the first failures are shown in detail)" };
    if (list.length < CI_DETAILED_FAILURES) {
      try {
        const read = await github.downloadJobLog(j.id, CI_LOG_READ_BYTES);
        jobLog = { text: read.text, droppedBytes: read.droppedBytes };
      } catch (err) {
        if (!(err instanceof GitHubApiError) || err.retryable) throw err;
        jobLog = { unavailable: `GitHub answered ${err.status}${err.status === 410 ? " (the log expired or was deleted)" : ""}` };
      }
    }
    list.push({ kind: "actions_job", name, conclusion: j.conclusion ?? "failure", url: j.htmlUrl, failedSteps, log: jobLog });
  }
  return { list, failed: failed.length, ignored, coveredIds: new Set(failed.map((j) => j.id)) };
}

/** A check suite's failed runs (not the app's own), the first {@link CI_DETAILED_FAILURES} with their annotations. */
async function checkSuiteFailures(github: GitHubPort, p: CiIntakePayload, slug: string, ignore: readonly string[]): Promise<Collected> {
  const runs = await github.listCheckSuiteRuns(p.checkSuiteId);
  const failed = runs.filter((r) => r.appSlug !== slug && r.conclusion !== null && CI_FAILED_CONCLUSIONS.has(r.conclusion));
  const list: CiFailure[] = [];
  const ignored: string[] = [];
  for (const r of failed) {
    const app = r.appSlug ?? p.name;
    if (isIgnoredCheckRun({ name: r.name, workflow: p.name }, ignore)) {
      ignored.push(r.name);
      continue;
    }
    let annotations: FailedCheckRun["annotations"] = [];
    if (list.length < CI_DETAILED_FAILURES && r.output.annotationsCount > 0) {
      try {
        annotations = await github.listCheckRunAnnotations(r.id);
      } catch (err) {
        if (!(err instanceof GitHubApiError) || err.retryable) throw err;
      }
    }
    list.push({
      kind: "check_run",
      name: r.name,
      app,
      conclusion: r.conclusion ?? "failure",
      url: r.htmlUrl || null,
      output: { title: r.output.title, summary: r.output.summary, text: r.output.text },
      annotations,
    });
  }
  return { list, failed: failed.length, ignored, coveredIds: new Set(failed.map((r) => r.id)) };
}

/** Names of the other failed check runs on the commit: not the app's, not ignored, not already covered. */
async function otherFailedChecks(github: GitHubPort, headSha: string, slug: string, ignore: readonly string[], covered: Set<number>): Promise<string[]> {
  const runs = await github.listCheckRuns(headSha);
  return runs
    .filter((r) => !covered.has(r.id) && r.appSlug !== slug && r.conclusion !== null && CI_FAILED_CONCLUSIONS.has(r.conclusion))
    .map((r) => r.name)
    .filter((name) => !isIgnoredCheckRun({ name, workflow: null }, ignore));
}

/**
 * A passing CI run (`success`, `neutral`) on the app's pull request. It changes something only
 * while the task is stopped because a CI revision found nothing to fix
 * (`isBlockedOnUnfixableCi`: the code stage's note and its transition's reason) — queued by the
 * handlers for such a task, and once by the code stage as it stops it ({@link ciRecheckJob}) — and then only when
 *
 * 1. the run is not the app's own, and it ran on the head the task stopped on — the task's head,
 *    reviewed as it is, and the pull request's head now (`GET …/pulls/{n}`, open);
 * 2. every check run on that head (`GET …/commits/{ref}/check-runs`, the latest attempt of each)
 *    but the app's own and `ci.ignore_checks` has completed and passed (`success`, `neutral`,
 *    `skipped`): while one is still running or failed, the task stays `blocked` (the last run to
 *    pass brings it back; a failing re-run of a stopped task starts nothing).
 *
 * Then the task moves `blocked → ready_for_merge` (the only use of that edge), the tracking
 * comment's CI note says the checks passed (no comment on the pull request), the state label
 * follows, and with `auto_merge` a `merge` job checks the approvals (one given while the task
 * was stopped counts). The writes are ordered so that a retried intake finishes them: the note
 * first, then the transition, then the rest — a retry that finds the task `ready_for_merge` with
 * this head's note redoes only the idempotent rest.
 *
 * @throws {GitHubApiError} of a failed read or write (5xx, rate limit): the worker retries the intake
 */
async function ciPassedIntake(
  deps: PipelineDeps,
  job: IntakeJob,
  github: GitHubPort,
  log: Logger,
  task: Task,
  config: RepoConfig,
  p: CiIntakePayload,
): Promise<IntakeOutcome> {
  const skip = (reason: PassSkip, fields: Record<string, unknown> = {}): IntakeOutcome => {
    log.info({ reason, headSha: p.headSha, source: p.source, conclusion: p.conclusion, ...fields }, "CI passed: task unchanged");
    return "ignored";
  };
  const passedNote = ciPassedNote(p.headSha);
  const notes = await currentTrackingNotes(deps.db, task.id);
  // A retry of this intake after the move (or a second passing run of the head since): the rest is redone.
  const moved = task.stage === "ready_for_merge" && notes[CI_TRACKING_NOTE] === passedNote;
  if (!moved && !isBlockedOnUnfixableCi(task, notes, (await transitionsOf(deps.db, task.id)).at(-1))) return skip("not_blocked_on_ci", { stage: task.stage });
  const slug = (await github.getBotIdentity()).login.replace(/\[bot\]$/, "");
  if (p.appSlug === slug) return skip("own_checks");
  if (task.head_sha !== p.headSha || task.reviewed_sha !== p.headSha) return skip("older_head", { head: task.head_sha, reviewed: task.reviewed_sha });
  const pr = await github.getPullRequest(task.pr_number ?? p.subject.number);
  if (pr.state !== "open") return skip("pull_request_closed");
  if (pr.headSha !== p.headSha) return skip("older_head", { head: pr.headSha });

  if (!moved) {
    const verdict = await checksOnHead(github, p.headSha, slug, config.ci.ignore_checks);
    if (verdict.checked === 0) return skip("no_checks");
    if (verdict.notPassed.length > 0) return skip("checks_not_passed", { checks: verdict.notPassed });
    // Moved only if the task still waits for this pass as the move is made (a `/stop` may have ended
    // the wait during the reads above), with the note in the same transaction.
    const movedNow = await inTransaction(deps.db, async (trx) => {
      const done = await transitionIf(trx, task.id, "ready_for_merge", { reason: CI_PASSED_REASON, actor: APP_ACTOR }, (t, last) =>
        isBlockedOnUnfixableCi(t, trackingNotesOf(t), last),
      );
      if (done) await setTrackingNote(trx, task.id, CI_TRACKING_NOTE, passedNote);
      return done !== null;
    });
    if (!movedNow) return skip("not_blocked_on_ci", { stage: task.stage });
  }
  await clearTrackingNote(deps.db, task.id, CI_NOT_FIXABLE_NOTE);
  let current = await updateTask(deps.db, task.id, { blocked_reason: null });
  await applyStateLabel(github, current.issue_number, "ready_for_merge");
  current = await writeTracking(deps.db, github, current);
  log.info({ headSha: p.headSha, source: p.source, name: p.name, again: moved }, "CI passed: the task is ready for merge again");
  if (!config.auto_merge) return "enqueued";
  // An approval given while the task was stopped was not acted on: the merge stage checks the approvals and checks now.
  await enqueueJob(deps.db, {
    kind: "merge",
    taskId: current.id,
    installationId: current.installation_id,
    lockKey: issueLockKey({ owner: current.owner, repo: current.repo, issueNumber: current.issue_number }),
    dedupeKey: stageDedupeKey(current, "merge", `ci-passed-${p.headSha}`),
    deliveryId: job.delivery_id,
    payload: { actor: APP_ACTOR },
    maxAttempts: deps.maxAttempts,
  });
  return "enqueued";
}

/**
 * The check runs on `headSha` (the latest attempt of each) that count — not the app's own, not
 * in `ci.ignore_checks` — and the names of those not completed with a passing conclusion.
 */
async function checksOnHead(github: GitHubPort, headSha: string, slug: string, ignore: readonly string[]): Promise<{ checked: number; notPassed: string[] }> {
  const runs = (await github.listCheckRuns(headSha)).filter((r) => r.appSlug !== slug && !isIgnoredCheckRun({ name: r.name, workflow: null }, ignore));
  const notPassed = runs
    .filter((r) => r.status !== "completed" || r.conclusion === null || !CHECK_RUN_PASSED_CONCLUSIONS.has(r.conclusion))
    .map((r) => `${r.name} (${r.status === "completed" ? (r.conclusion ?? "no conclusion") : r.status})`);
  return { checked: runs.length, notPassed };
}
