import type { Logger } from "pino";

import { NotificationDeliveryError } from "../domain/errors.js";
import type { ClaimedJob, JobResult } from "../worker/worker.js";
import { runCommandJob } from "./commands.js";
import { runIntakeJob } from "./intake.js";
import { runStandupJob } from "./orchestrator.js";
import { configProblemsOf, loadTask } from "../store/tasks.js";
import type { GitHubPort } from "../ports/github.js";
import type { PipelineDeps, StageJob, StageOutcome } from "./pipeline-deps.js";
import { CONFIG_GUARDED_ENTRY, StageContext } from "./stage-context.js";
import { answerStage } from "./stages/answer.js";
import { cancelStage } from "./stages/close.js";
import { codeStage } from "./stages/code.js";
import { mergeStage } from "./stages/merge.js";
import { planStage } from "./stages/plan.js";
import { prClosedStage } from "./stages/pr-closed.js";
import { reviewStage } from "./stages/review.js";
import { reviseStage } from "./stages/revise.js";
import { testStage } from "./stages/test.js";
import { trackingStage } from "./stages/tracking.js";

/**
 * The worker's job runner: dispatches a claimed job by its kind — `intake` (a webhook
 * delivery's checks that need GitHub), `command` (one slash-command), or a pipeline stage.
 */
export async function runJob(deps: PipelineDeps, job: ClaimedJob, signal: AbortSignal, log: Logger): Promise<JobResult> {
  const { data } = job;
  switch (data.kind) {
    case "intake":
      return runIntakeJob(deps, { ...job, data }, log);
    case "command":
      return runCommandJob(deps, { ...job, data }, log);
    case "notify":
      // A notification outside GitHub: its failure never touches a task (the notify lane's onFailed only logs).
      if (!deps.notifier) throw new NotificationDeliveryError(data.payload.channel, 0, "no channel is configured (NOTIFICATIONS_FILE)", { retryable: false });
      return deps.notifier.run({ ...job, data }, signal, log);
    case "standup":
      // The repository's daily stand-up issue (orchestrator mode): no task, no model call.
      return runStandupJob(deps, { ...job, data }, log);
    default:
      return runStage(deps, { ...job, data }, signal, log);
  }
}

/**
 * Runs one job of an issue's pipeline — plan → code → test → review, with revisions after
 * failing tests or requested changes — and says which job comes next. Each stage is
 * idempotent: what it already wrote to GitHub (found by marker, branch, head sha or the ids on
 * the task) is reused, so a retried or resumed job never writes twice.
 *
 * @throws whatever the stage threw; the worker decides retry or failure
 */
async function runStage(deps: PipelineDeps, job: StageJob, signal: AbortSignal, log: Logger): Promise<StageOutcome> {
  if (job.task_id === null) throw new Error(`the ${job.kind} job has no task`);
  const task = await loadTask(deps.db, job.task_id);
  const github = abortable(await deps.github({ installationId: task.installation_id, owner: task.owner, repo: task.repo, log }), signal);
  const ctx = new StageContext(deps, job, task, github, signal, log);
  const kind = job.data.kind;
  // A job queued before the task was cancelled does not run; one created afterwards (a new run) does.
  if (task.stage === "cancelled" && kind !== "pr_closed" && kind !== "cancel" && job.created_at <= (task.finished_at ?? 0)) {
    log.info("task was cancelled; job skipped");
    return {};
  }
  const problems = configProblemsOf(task);
  if (problems.length > 0 && kind in CONFIG_GUARDED_ENTRY) return ctx.blockForConfig(kind, problems);
  switch (kind) {
    case "plan":
      return planStage(ctx);
    case "code":
      return codeStage(ctx, null);
    case "revise":
      return reviseStage(ctx);
    case "test":
      return testStage(ctx);
    case "review":
      return reviewStage(ctx);
    case "merge":
      return mergeStage(ctx);
    case "pr_closed":
      return prClosedStage(ctx);
    case "cancel":
      return cancelStage(ctx);
    case "tracking":
      return trackingStage(ctx);
    case "answer":
      return answerStage(ctx);
  }
}

/**
 * The port with every call refused once `signal` aborted: a job whose lease was lost, or that
 * was stopped, makes no further write to GitHub even if its code is still running.
 */
function abortable(github: GitHubPort, signal: AbortSignal): GitHubPort {
  return new Proxy(github, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        signal.throwIfAborted();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
