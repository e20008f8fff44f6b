/**
 * What the app tells people about a task on GitHub, in one place: the `mc:` state label, the
 * tracking comment and its notes, failure reports, budget alerts, config problems and the
 * rework-limit request. Every write is idempotent (a label only when missing, marker comments
 * edited in place).
 */
import type { Logger } from "pino";

import type { BudgetAlert } from "../domain/budget-rules.js";
import { isMissionControlError } from "../domain/errors.js";
import { APP_ACTOR } from "../domain/jobs.js";
import { STAGE_LABEL_PREFIX } from "../domain/markers.js";
import { formatNanoUsd } from "../domain/money.js";
import { isStopped, isTaskState, STATE_LABELS, stateLabel, type TaskState } from "../domain/task-state.js";
import type { GitHubPort, IssueData } from "../ports/github.js";
import { renderConfigProblems } from "../render/config-problems.js";
import { renderTrackingComment } from "../render/tracking-comment.js";
import type { Db } from "../store/db.js";
import type { Task } from "../store/schema.js";
import { currentTrackingNotes, loadTask, updateTask } from "../store/tasks.js";
import { stateBefore, transition } from "../store/transitions.js";
import { usageTotalsForTask } from "../store/usage.js";
import type { ClaimedJob } from "../worker/worker.js";
import type { PipelineDeps } from "./pipeline-deps.js";

/**
 * Finalises a task whose job failed for good: the state (`failed`, or `budget_exceeded` /
 * `blocked` for a budget stop or a pause), its label, and the tracking comment with the
 * reason — never a spinner left behind.
 */
export async function failTask(deps: PipelineDeps, job: Pick<ClaimedJob, "task_id" | "kind">, reason: string, error: unknown, log: Logger): Promise<void> {
  if (job.task_id === null || job.kind === "intake") {
    // A delivery's intake that failed for good started nothing: the task (if any) is left as it is.
    log.warn({ reason }, "an intake job failed: the delivery started nothing");
    return;
  }
  try {
    const task = await loadTask(deps.db, job.task_id);
    const github = await deps.github({ installationId: task.installation_id, owner: task.owner, repo: task.repo, log });
    const code = isMissionControlError(error) ? error.code : "internal";
    const to: TaskState = code === "budget_exceeded" ? "budget_exceeded" : code === "paused" ? "blocked" : "failed";
    const stoppedIn = isTaskState(task.stage) ? task.stage : null;
    const moved = await transition(deps.db, task.id, to, { reason, actor: APP_ACTOR }).catch(async (err: unknown) => {
      log.error({ err }, "illegal transition while failing the task; recording the failure anyway");
      return updateTask(deps.db, task.id, {});
    });
    const updated = await updateTask(deps.db, moved.id, { failure_reason: reason, blocked_reason: to === "blocked" ? reason : null });
    // Label the state the task is really in (the transition may have been refused).
    if (isTaskState(updated.stage)) await applyStateLabel(github, updated.issue_number, updated.stage);
    await writeTracking(deps.db, github, updated, stoppedIn);
    if (to === "budget_exceeded") {
      // One comment per run (edited in place): a retried failure never posts a second copy.
      await github.ensureComment({
        issueNumber: updated.issue_number,
        topic: `budget-exceeded:run-${updated.run}`,
        body: `⛔ **Budget limit reached.** ${reason}\n\nComment \`/retry\` once the limit is raised or the period has rolled over.`,
      });
    }
  } catch (err) {
    log.error({ err }, "could not report the failure on GitHub");
  }
}

/**
 * Puts the state's `mc:` label on the issue (created with its colour and description when the
 * repository lacks it) and removes every other `mc:` label: exactly one at a time.
 *
 * @returns the issue as `GET /repos/{owner}/{repo}/issues/{issue_number}` answered before the
 *   labels changed (the stages compare its title and body with the task's stored copy)
 */
export async function applyStateLabel(github: GitHubPort, issueNumber: number, state: TaskState): Promise<IssueData> {
  const label = stateLabel(state);
  const { color, description } = STATE_LABELS[state];
  await github.ensureLabel(label, color, description);
  const issue = await github.getIssue(issueNumber);
  const labels = issue.labels;
  if (!labels.includes(label)) await github.addLabels(issueNumber, [label]);
  for (const other of labels) {
    if (other !== label && other.startsWith(STAGE_LABEL_PREFIX)) await github.removeLabel(issueNumber, other);
  }
  return issue;
}

/** Keys of the tracking comment's notes (`tasks.tracking_notes`). */
export const TRACKING_NOTE = {
  /** The issue's title or body changed after the trigger; the edit is ignored. */
  issueEdited: "issue-edited",
  /** Someone without write permission closed the issue; the run goes on. */
  issueClosed: "issue-closed",
} as const;

/** The note shown when the issue's title or body changed after the trigger. */
export function issueEditedNote(triggeredBy: string): string {
  return (
    `✏️ The issue's title or body was edited after @${triggeredBy} started this run. The edit is ignored: every agent works ` +
    "from the text as it was when the work was triggered. To work from the new text, a maintainer comments `/plan` (a new run, from a new plan)."
  );
}

/** The note shown when someone without write permission closed the issue. */
export function issueClosedNote(closer: string): string {
  return `🔒 The issue was closed by @${closer}, who has no write permission on the repository, so the run continues. ` + "A maintainer stops it with `/stop`.";
}

/** Creates or edits the task's tracking comment from its current state. */
export async function writeTracking(db: Db, github: GitHubPort, task: Task, stoppedIn: TaskState | null = null): Promise<Task> {
  const usage = await usageTotalsForTask(db, task.id);
  const state = isTaskState(task.stage) ? task.stage : "planning";
  let stopped = stoppedIn;
  if (!stopped && isStopped(state)) stopped = await stateBefore(db, task.id, state);
  // Notes are read from the database, not `task`: an intake job may have added one since `task` was loaded.
  const notes = await currentTrackingNotes(db, task.id);
  const body = renderTrackingComment({
    state,
    stoppedIn: stopped,
    notes: Object.values(notes),
    reason: task.blocked_reason ?? task.failure_reason,
    planUrl: task.plan_url,
    prNumber: task.pr_number,
    prUrl: task.pr_url,
    reviewUrl: task.review_url,
    reviewVerdict: task.review_verdict,
    testsConclusion: task.tests_conclusion,
    reworkCycles: task.rework_cycles,
    usage,
    wallTimeMs: task.started_at && task.finished_at ? task.finished_at - task.started_at : null,
  });
  const comment = await github.ensureComment({ issueNumber: task.issue_number, topic: "tracking", body, commentId: task.tracking_comment_id });
  if (comment.id !== task.tracking_comment_id) return updateTask(db, task.id, { tracking_comment_id: comment.id });
  return task;
}

/**
 * Posts a budget alert on the issue. The ledger raises each once per scope and window; the
 * comment is also keyed by them (`ensureComment`), so a retried job never posts it twice.
 */
export async function reportBudgetAlert(github: GitHubPort, issueNumber: number, alert: BudgetAlert): Promise<void> {
  const resets = alert.resetsAt ? ` Resets ${new Date(alert.resetsAt).toISOString().slice(0, 16).replace("T", " ")} UTC.` : "";
  await github.ensureComment({
    issueNumber,
    topic: `budget-alert:${alert.kind}:${alert.scopeKey}:${alert.limit.period}:${alert.windowStart}`,
    body: `⚠️ **Budget alert:** ${alert.scopeLabel} ${alert.limit.period} spend is ${formatNanoUsd(alert.spentNanoUsd, 2)} of ${formatNanoUsd(alert.limitNanoUsd, 2)} (${alert.percent.toFixed(0)} %).${resets}`,
  });
}

/** Posts (or edits) the one comment listing an invalid repository config's problems. */
export async function reportConfigProblems(
  github: GitHubPort,
  task: Pick<Task, "issue_number" | "default_branch">,
  problems: readonly string[],
): Promise<void> {
  await github.ensureComment({ issueNumber: task.issue_number, topic: "config-problems", body: renderConfigProblems(problems, task.default_branch) });
}

/** Asks a human on the pull request once the rework limit is reached (one comment per head sha). */
export async function reportReworkLimit(github: GitHubPort, task: Pick<Task, "pr_number" | "head_sha">, limit: number, reason: string): Promise<void> {
  if (!task.pr_number) return;
  await github.ensureComment({
    issueNumber: task.pr_number,
    topic: `rework-limit:${task.head_sha ?? ""}`,
    body: `🙋 Mission Control revised this pull request ${limit} times (the repository's limit) and still has: ${reason}\n\nPlease take a look. \`/code <instructions>\` allows one more revision.`,
  });
}
