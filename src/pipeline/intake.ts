import type { Logger } from "pino";

import { parseRepoConfig, REPO_CONFIG_FILE, RepoConfig } from "../config/repo-config.js";
import { canWrite } from "../domain/guards.js";
import {
  type CommandJobPayload,
  commandLockKey,
  deliveryDedupeKey,
  deliveryNonce,
  type IntakePayload,
  issueLockKey,
  type StageJobPayload,
  type StageKind,
  stageDedupeKey,
} from "../domain/jobs.js";
import { asksForReview, parseMention } from "../domain/mentions.js";
import { parseCommand } from "../domain/slash-commands.js";
import { canTransition, ENDED_STATES, isResting, isTaskState } from "../domain/task-state.js";
import type { GitHubPort } from "../ports/github.js";
import { renderReviewGaveUp, reviewGaveUpTopic } from "../render/review-gave-up.js";
import type { Db } from "../store/db.js";
import { inTransaction } from "../store/db.js";
import { cancelTaskJobs, enqueueJob, jobExistsForDelivery } from "../store/queue.js";
import type { Task } from "../store/schema.js";
import {
  configColumns,
  createTask,
  findTaskByIssue,
  findTaskByPullRequest,
  loadTask,
  newRunFields,
  setTrackingNote,
  startNewRun,
  updateTask,
} from "../store/tasks.js";
import type { ClaimedJob, JobResult } from "../worker/worker.js";
import { ciIntake } from "./ci-intake.js";
import { syncStandupSchedule } from "./orchestrator.js";
import type { PipelineDeps } from "./pipeline-deps.js";
import { issueClosedNote, TRACKING_NOTE } from "./reporter.js";
import { isStandupSubject, STANDUP_COMMANDS, standupOnlyReply, standupOnlyTopic } from "./standup-commands.js";
import { INTAKE_GIVE_UP_AFTER_MS, waitForIssueWork } from "./wait-for-issue-work.js";

/** A claimed `intake` job. */
export type IntakeJob = ClaimedJob & { data: { kind: "intake"; payload: IntakePayload } };

/** What the intake step decided, logged as `outcome` (the webhook's own outcome was `enqueued`). */
export type IntakeOutcome =
  | "enqueued"
  | "not_trigger_label"
  | "no_permission"
  | "already_running"
  | "not_a_command"
  | "no_task"
  | "ignored"
  /** `config_push`: the stand-up schedule now follows the pushed config (recorded, changed, disabled, or already so). */
  | "schedule_synced"
  /** `config_push`: the pushed config does not parse or validate; the schedule is left as it was. */
  | "invalid_config";

/**
 * The first step of a delivery that needs GitHub: the checks a webhook handler may not make
 * (they are outbound requests, and GitHub gives up on a delivery after 10 s) — the repository
 * config and the trigger-label decision, the sender's permission
 * (`GET /repos/{owner}/{repo}/collaborators/{username}/permission`), organisation ownership,
 * the 👀 reaction — then the task and the job that does the work. Same outcomes as when the
 * handlers made these checks themselves; a retried intake never starts a run twice.
 *
 * @throws {GitHubApiError} of a failed read (retried by the worker)
 */
export async function runIntakeJob(deps: PipelineDeps, job: IntakeJob, log: Logger): Promise<JobResult> {
  const payload = job.data.payload;
  // A config push is about the repository, not an issue.
  const { owner, repo } = payload.event === "config_push" ? payload.repository : payload.subject;
  const number = payload.event === "config_push" ? undefined : payload.subject.number;
  const github = await deps.github({ installationId: job.installation_id, owner, repo, log });
  const intake: Intake = { deps, job, github, log: log.child({ intake: payload.event }) };
  const outcome = await (async (): Promise<IntakeOutcome> => {
    switch (payload.event) {
      case "issue_trigger":
        return issueTrigger(intake, payload);
      case "comment":
        return comment(intake, payload);
      case "issue_closed":
        return issueClosed(intake, payload);
      case "review":
        return review(intake, payload);
      case "ci":
        return ciIntake(deps, job, github, intake.log, payload);
      case "config_push":
        return configPush(intake, payload);
    }
  })();
  intake.log.info({ outcome, issue: number }, "intake handled");
  return {};
}

interface Intake {
  deps: PipelineDeps;
  job: IntakeJob;
  github: GitHubPort;
  log: Logger;
}

type PayloadOf<E extends IntakePayload["event"]> = Extract<IntakePayload, { event: E }>;

/**
 * Reads `.github/mission-control.yml` from the default branch. An invalid file — YAML that does
 * not parse, or a key the schema refuses — is **not** used: the result carries its problems,
 * the task stores them, and every stage that would call a model stops first (`blocked`, the
 * problems posted once on the issue). The config returned alongside is the defaults with the
 * file's `trigger_label` when that key is valid.
 *
 * @throws the HTTP error of a failed read (5xx, rate limit): the job is retried
 */
async function readRepoConfig(
  github: GitHubPort,
  log: Logger,
  schedule?: { db: Db; installationId: number; owner: string; repo: string },
): Promise<{ config: RepoConfig; problems: string[] }> {
  let raw: unknown;
  try {
    raw = await github.readConfigFile(REPO_CONFIG_FILE);
  } catch (err) {
    // The config plugin throws on YAML it cannot parse; HTTP errors still propagate.
    if (typeof (err as { status?: unknown }).status === "number") throw err;
    log.warn({ err }, `unreadable .github/${REPO_CONFIG_FILE}; work stops until it is fixed`);
    return { config: parseRepoConfig(null).config, problems: [`the file is not valid YAML: ${(err as Error).message.slice(0, 200)}`] };
  }
  const result = parseRepoConfig(raw);
  if (result.problems.length > 0) log.warn({ problems: result.problems }, `invalid .github/${REPO_CONFIG_FILE}; work stops until it is fixed`);
  // A valid config (or none) says whether the repository has a stand-up: its schedule follows it (orchestrator mode).
  if (schedule && result.problems.length === 0) {
    await syncStandupSchedule(schedule.db, schedule, result.config).catch((err: unknown) => log.warn({ err }, "could not record the stand-up schedule"));
  }
  return result;
}

/**
 * A push to the default branch changed `.github/mission-control.yml` (or may have): the file is
 * read as every intake reads it ({@link readRepoConfig}'s read: the default branch, Probot's
 * config plugin) and the stand-up schedule follows it — recorded, changed (a new next fire), or
 * disabled when the file no longer asks for a stand-up or is gone. A file that does not parse or
 * validate is logged and changes nothing: the schedule stays as the last valid config left it
 * (there is no issue to tell; the next command or trigger reports the problems as today). No
 * task, no model call, no GitHub write.
 *
 * @throws {GitHubApiError} of a failed read, and a failed schedule write: the job is retried
 */
async function configPush(intake: Intake, p: PayloadOf<"config_push">): Promise<IntakeOutcome> {
  const { deps, job, github } = intake;
  const log = intake.log.child({ repo: `${p.repository.owner}/${p.repository.repo}`, after: p.after, pushedBy: p.sender.login });
  let raw: unknown;
  try {
    raw = await github.readConfigFile(REPO_CONFIG_FILE);
  } catch (err) {
    if (typeof (err as { status?: unknown }).status === "number") throw err;
    log.warn({ err }, `unreadable .github/${REPO_CONFIG_FILE} pushed: the stand-up schedule is left as it was`);
    return "invalid_config";
  }
  const { config, problems } = parseRepoConfig(raw);
  if (problems.length > 0) {
    log.warn({ problems }, `invalid .github/${REPO_CONFIG_FILE} pushed: the stand-up schedule is left as it was`);
    return "invalid_config";
  }
  const target = { installationId: job.installation_id, owner: p.repository.owner, repo: p.repository.repo };
  await syncStandupSchedule(deps.db, target, config);
  const standup = config.orchestrator.standup;
  log.info({ standup: standup ? { cron: standup.cron, timezone: standup.timezone } : null }, "config pushed: the stand-up schedule follows it");
  return "schedule_synced";
}

/** Where the stand-up schedule of the delivery's repository is recorded (orchestrator mode). */
function scheduleTarget(intake: Intake, p: { subject: { owner: string; repo: string } }): { db: Db; installationId: number; owner: string; repo: string } {
  return { db: intake.deps.db, installationId: intake.job.installation_id, owner: p.subject.owner, repo: p.subject.repo };
}

async function senderCanWrite(github: GitHubPort, login: string): Promise<boolean> {
  const answer = await github.getRepositoryPermission(login);
  return canWrite({ permission: answer.permission, role_name: answer.roleName });
}

/**
 * Enqueues a stage job a delivery starts, on the issue's lane (`task:<id>:run:<run>:<kind>:delivery-<id>`,
 * or `…:<nonce>` when given: deliveries of one review share `review-<id>`, so they start one revision).
 */
async function enqueueStage(
  trx: Db,
  intake: Intake,
  task: Task,
  kind: StageKind,
  payload: StageJobPayload & Record<string, unknown>,
  nonce?: string,
): Promise<void> {
  const deliveryId = intake.job.delivery_id ?? `job-${intake.job.id}`;
  await enqueueJob(trx, {
    kind,
    taskId: task.id,
    installationId: task.installation_id,
    lockKey: issueLockKey({ owner: task.owner, repo: task.repo, issueNumber: task.issue_number }),
    dedupeKey: stageDedupeKey(task, kind, nonce ?? deliveryNonce(deliveryId)),
    deliveryId: intake.job.delivery_id,
    payload,
    maxAttempts: intake.deps.maxAttempts,
  });
}

/** The trigger label, or a new issue carrying it: a new run (stored task, `plan` enqueued) when a writer asked. */
async function issueTrigger(intake: Intake, p: PayloadOf<"issue_trigger">): Promise<IntakeOutcome> {
  const { deps, job, github } = intake;
  const { config, problems } = await readRepoConfig(github, intake.log, scheduleTarget(intake, p));
  if (!p.labels.includes(config.trigger_label)) return "not_trigger_label";
  if (!(await senderCanWrite(github, p.sender.login))) return "no_permission";
  const { owner, repo, number } = p.subject;
  const now = Date.now();
  return inTransaction(deps.db, async (trx) => {
    // A retry of this intake after its run started must not start another one.
    if (job.delivery_id && (await jobExistsForDelivery(trx, job.delivery_id, "plan"))) return "enqueued";
    const existing = await findTaskByIssue(trx, owner, repo, number);
    if (existing && isTaskState(existing.stage) && !isResting(existing.stage)) return "already_running";
    const snapshot = {
      installation_id: job.installation_id,
      clone_url: p.subject.cloneUrl,
      default_branch: p.subject.defaultBranch,
      ...configColumns(config, problems),
      // What the maintainer saw when labelling: the agents read this copy, never a later edit.
      issue_title: p.issue.title,
      issue_body: p.issue.body,
    };
    const starter = { login: p.sender.login, id: p.sender.id };
    const task = existing
      ? await startNewRun(trx, existing.id, starter, snapshot, now)
      : await createTask(trx, { ...snapshot, ...newRunFields(starter, now), owner, repo, issue_number: number, run: 1, stage: "new", created_at: now });
    await enqueueStage(trx, intake, task, "plan", { triggeredAt: p.receivedAt, actor: p.sender.login });
    return "enqueued";
  });
}

/** Commands that (re)start work read the repository config as it is now on the default branch. */
const RESTARTING_COMMANDS = new Set(["plan", "code", "retry", "approve", "test", "review"]);

/** A slash-command from a writer: 👀, then the `command` job (in the command lane). */
async function comment(intake: Intake, p: PayloadOf<"comment">): Promise<IntakeOutcome> {
  const { deps, job, github, log } = intake;
  const bot = await github.getBotIdentity();
  const slug = bot.login.replace(/\[bot\]$/, "");
  const parsed = parseCommand(p.body, slug);
  if (!parsed) {
    // Not a command: an @-mention in plain words, or conversation.
    const mentioned = parseMention(p.body, slug);
    return mentioned ? mention(intake, p, slug, mentioned.text) : "not_a_command";
  }
  if (!(await senderCanWrite(github, p.sender.login))) {
    log.info({ sender: p.sender.login }, "command from a sender without write permission ignored");
    return "no_permission";
  }
  const name = parsed.kind === "command" ? parsed.name : "help";
  const args = parsed.kind === "command" ? parsed.args : "";
  if (!STANDUP_COMMANDS.has(name) && (await onStandupIssue(intake, p))) return answerOnStandup(intake, p, `\`/${name}\``);
  let orgOwner = false;
  if (name === "stop" && args === "all") {
    orgOwner = await github.isOrganisationOwner(p.sender.login);
    if (!orgOwner) {
      await github.addReaction(p.commentId, "confused");
      return "no_permission";
    }
  } else if (name === "retry") {
    orgOwner = await github.isOrganisationOwner(p.sender.login);
  }
  await github.addReaction(p.commentId, "eyes");
  const { config, problems } = await readRepoConfig(github, log, scheduleTarget(intake, p));
  const { owner, repo, number } = p.subject;
  const now = Date.now();
  await inTransaction(deps.db, async (trx) => {
    let task = await commentTask(trx, intake, p, configColumns(config, problems), now);
    if (RESTARTING_COMMANDS.has(name)) task = await updateTask(trx, task.id, configColumns(config, problems));
    const command: CommandJobPayload = {
      name,
      args,
      commentId: p.commentId,
      subjectNumber: number,
      isPullRequest: p.isPullRequest,
      actor: p.sender.login,
      actorId: p.sender.id,
      actorIsOrgOwner: orgOwner,
      appSlug: slug,
      triggeredAt: p.receivedAt,
      // The issue as the maintainer saw it when commenting (not a pull request's title and body).
      issue: p.isPullRequest ? null : p.issue,
    };
    await enqueueJob(trx, {
      kind: "command",
      taskId: task.id,
      installationId: job.installation_id,
      lockKey: commandLockKey({ owner, repo, issueNumber: task.issue_number }),
      dedupeKey: deliveryDedupeKey(job.delivery_id ?? `job-${job.id}`, "command"),
      deliveryId: job.delivery_id,
      payload: command,
      maxAttempts: deps.maxAttempts,
    });
  });
  log.info({ command: name, known: parsed.kind === "command" }, "command accepted");
  return "enqueued";
}

/**
 * The task a comment is about: the one whose pull request it is on, or the issue's (or the
 * pull request's own, for a pull request the app did not open); created in state `new` when
 * there is none.
 */
async function commentTask(trx: Db, intake: Intake, p: PayloadOf<"comment">, config: ReturnType<typeof configColumns>, now: number): Promise<Task> {
  const { owner, repo, number } = p.subject;
  const task = (p.isPullRequest ? await findTaskByPullRequest(trx, owner, repo, number) : undefined) ?? (await findTaskByIssue(trx, owner, repo, number));
  return (
    task ??
    createTask(trx, {
      installation_id: intake.job.installation_id,
      owner,
      repo,
      issue_number: number,
      run: 1,
      stage: "new",
      triggered_by: p.sender.login,
      triggered_by_id: p.sender.id,
      clone_url: p.subject.cloneUrl,
      default_branch: p.subject.defaultBranch,
      ...config,
      pr_number: p.isPullRequest ? number : null,
      created_at: now,
      updated_at: now,
    })
  );
}

/**
 * An @-mention of the app in plain words from a writer (`domain/mentions.ts`), with the same
 * permission check, 👀 reaction, fresh repository config and lanes as a command. Where it was
 * written decides what it starts:
 *
 * - on an issue: `/plan <text>` — a new run planned with the text as the maintainer's notes, or
 *   (the issue's run still going) the same answer `/plan` gets: stop it first;
 * - on the app's own pull request: `/code <text>` — a revision following the text;
 * - on any other pull request: the `answer` stage — the Reviewer answers the text about that
 *   pull request in a comment, on the issue's lane (one job per issue); a text that asks for a
 *   review ({@link asksForReview}) is `/review` instead, a formal GitHub review.
 *
 * A sender without write permission gets nothing at all: no reaction, no task, no job. On the
 * repository's stand-up issue a mention starts nothing either: a writer gets one reply naming
 * the commands that work there (`standup-commands.ts`).
 */
async function mention(intake: Intake, p: PayloadOf<"comment">, slug: string, text: string): Promise<IntakeOutcome> {
  const { deps, job, github, log } = intake;
  if (!(await senderCanWrite(github, p.sender.login))) {
    log.info({ sender: p.sender.login }, "mention from a sender without write permission ignored");
    return "no_permission";
  }
  // On the stand-up issue a mention in plain words starts nothing (it would plan the stand-up): one reply says what works there.
  if (await onStandupIssue(intake, p)) return answerOnStandup(intake, p, `Your request to \`@${slug.replace(/[^A-Za-z0-9-]/g, "")}\``);
  await github.addReaction(p.commentId, "eyes");
  const { config, problems } = await readRepoConfig(github, log, scheduleTarget(intake, p));
  const { owner, repo, number } = p.subject;
  const now = Date.now();
  const route = await inTransaction(deps.db, async (trx) => {
    let task = await commentTask(trx, intake, p, configColumns(config, problems), now);
    // The app's pull request belongs to the issue it was opened for; anyone else's has a task of its own number.
    const ownPullRequest = p.isPullRequest && task.pr_number === number && task.issue_number !== number;
    const route = !p.isPullRequest ? "plan" : ownPullRequest ? "code" : asksForReview(text) ? "review" : "answer";
    task = await updateTask(trx, task.id, configColumns(config, problems));
    if (route === "answer") {
      await enqueueStage(trx, intake, task, "answer", { triggeredAt: p.receivedAt, actor: p.sender.login, question: text, commentId: p.commentId });
      return route;
    }
    const command: CommandJobPayload = {
      name: route,
      args: text,
      commentId: p.commentId,
      subjectNumber: number,
      isPullRequest: p.isPullRequest,
      actor: p.sender.login,
      actorId: p.sender.id,
      actorIsOrgOwner: false,
      appSlug: slug,
      triggeredAt: p.receivedAt,
      issue: p.isPullRequest ? null : p.issue,
      mention: true,
    };
    await enqueueJob(trx, {
      kind: "command",
      taskId: task.id,
      installationId: job.installation_id,
      lockKey: commandLockKey({ owner, repo, issueNumber: task.issue_number }),
      dedupeKey: deliveryDedupeKey(job.delivery_id ?? `job-${job.id}`, "command"),
      deliveryId: job.delivery_id,
      payload: command,
      maxAttempts: deps.maxAttempts,
    });
    return route;
  });
  log.info({ route }, "mention accepted");
  return "enqueued";
}

/** Whether the comment is on the repository's stand-up issue (never a pull request). */
async function onStandupIssue(intake: Intake, p: PayloadOf<"comment">): Promise<boolean> {
  if (p.isPullRequest) return false;
  const { owner, repo, number } = p.subject;
  return isStandupSubject(intake.deps.db, { installationId: intake.job.installation_id, owner, repo }, number);
}

/**
 * The one reply to a mention or command the stand-up issue does not take (`POST` or `PATCH` of
 * the reply comment, found again by its marker, so a redelivery edits it): no task, no job.
 */
async function answerOnStandup(intake: Intake, p: PayloadOf<"comment">, asked: string): Promise<IntakeOutcome> {
  await intake.github.ensureComment({ issueNumber: p.subject.number, topic: standupOnlyTopic(p.commentId), body: standupOnlyReply(asked) });
  intake.log.info({ asked }, "request on the stand-up issue answered; nothing started");
  return "ignored";
}

/**
 * An issue closed by a person. Only a closer with write permission cancels the run; an issue
 * closed by merging the app's pull request is left to `pull_request.closed`; anyone else's close
 * leaves the run going, with a note in the tracking comment.
 */
async function issueClosed(intake: Intake, p: PayloadOf<"issue_closed">): Promise<IntakeOutcome> {
  const { deps, job, github } = intake;
  if (job.task_id === null) return "no_task";
  const closer = p.sender.login;
  const writer = await senderCanWrite(github, closer);
  const current = await loadTask(deps.db, job.task_id);
  if (!writer && current.pr_number && (await pullRequestMerged(github, current.pr_number))) return "ignored";
  return inTransaction(deps.db, async (trx): Promise<IntakeOutcome> => {
    const task = await loadTask(trx, current.id);
    if (isTaskState(task.stage) && ENDED_STATES.has(task.stage)) return "no_task";
    if (task.stage === "ready_for_merge") return "ignored";
    if (!writer) {
      await setTrackingNote(trx, task.id, TRACKING_NOTE.issueClosed, issueClosedNote(closer));
      // Re-rendered in the command lane, so the note shows while a stage runs.
      await enqueueJob(trx, {
        kind: "tracking",
        taskId: task.id,
        installationId: task.installation_id,
        lockKey: commandLockKey({ owner: task.owner, repo: task.repo, issueNumber: task.issue_number }),
        dedupeKey: deliveryDedupeKey(job.delivery_id ?? `job-${job.id}`, "tracking"),
        deliveryId: job.delivery_id,
        payload: { actor: closer },
        maxAttempts: deps.maxAttempts,
      });
      intake.log.info({ closer }, "issue closed by someone without write permission: the run continues");
      return "no_permission";
    }
    await cancelTaskJobs(trx, task.id);
    await enqueueStage(trx, intake, task, "cancel", { actor: closer, reason: `The issue was closed by @${closer}.` });
    return "enqueued";
  });
}

/** `true` when pull request `number` is merged (`GET /repos/{owner}/{repo}/pulls/{pull_number}`; a 404 is `false`). */
async function pullRequestMerged(github: GitHubPort, number: number): Promise<boolean> {
  try {
    return (await github.getPullRequest(number)).merged;
  } catch (err) {
    if ((err as { status?: number }).status === 404) return false;
    throw err;
  }
}

/**
 * A writer's review of the app's pull request: a revision, or (approval, `auto_merge`) a merge
 * check. A review made while the task is `coding` or `planning` waits for that work
 * (`wait-for-issue-work.ts`), then starts the revision after it; when that work outlasts every
 * wait, one comment on the pull request (no one pinged) says the review was not taken up and
 * how to ask again.
 */
async function review(intake: Intake, p: PayloadOf<"review">): Promise<IntakeOutcome> {
  const { deps, job, github } = intake;
  if (job.task_id === null) return "no_task";
  if (!(await senderCanWrite(github, p.sender.login))) return "no_permission";
  // The task is read again now: a `/stop` (or a merge) since the webhook arrived wins.
  const task = await loadTask(deps.db, job.task_id);
  // A new run since (a `/plan` after `/stop`) has another pull request, or none yet: a review of the old one starts nothing.
  if (task.pr_number !== p.subject.number) return "ignored";
  const config = RepoConfig.parse(JSON.parse(task.config));
  if (p.state === "approved" && !(config.auto_merge && task.stage === "ready_for_merge")) return "ignored";
  if (p.state !== "approved") {
    if (!isTaskState(task.stage)) return "ignored";
    // Made while the Coder revises (or the Architect plans): the threads of the work under way were
    // read at its start, so this review is looked at again once that work is done.
    // After too many waits it gives up: one comment on the pull request says so (a redelivery edits it, no second one).
    if (task.stage === "coding" || task.stage === "planning")
      return waitForIssueWork(deps, job, task, p, intake.log, {
        what: "review",
        fields: { review: p.reviewId },
        chain: `${task.id}:${task.run}:${p.reviewId}`,
        onGiveUp: async () => {
          const reviewUrl = task.pr_url ? `${task.pr_url}#pullrequestreview-${p.reviewId}` : null;
          await github.ensureComment({
            issueNumber: p.subject.number,
            topic: reviewGaveUpTopic(p.reviewId),
            body: renderReviewGaveUp({ reviewUrl, waitedMs: INTAKE_GIVE_UP_AFTER_MS }),
          });
        },
      });
    if (task.stage !== "changes_requested" && !canTransition(task.stage, "changes_requested")) return "ignored";
  }
  await inTransaction(deps.db, async (trx) => {
    if (p.state === "approved") return enqueueStage(trx, intake, task, "merge", { actor: p.sender.login });
    // One revision per review: its `pull_request_review.submitted` and each of its
    // `pull_request_review_comment.created` deliveries name the same review.
    return enqueueStage(
      trx,
      intake,
      task,
      "revise",
      { actor: p.sender.login, feedback: { source: "review", reviewId: p.reviewId, requestedBy: p.sender.login } },
      `review-${p.reviewId}`,
    );
  });
  return "enqueued";
}
