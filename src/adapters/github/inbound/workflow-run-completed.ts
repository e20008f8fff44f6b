import type { Context } from "probot";

import { GITHUB_ACTIONS_SLUG } from "../../../domain/ci.js";
import { enqueueCiIntake } from "./ci-completed.js";
import type { InboundDeps, TriggerOutcome } from "./prologue.js";

/** The `workflow_run.event`s that test the pushed code: `push` to the branch and the pull request's own runs. */
const CODE_EVENTS = new Set(["push", "pull_request", "pull_request_target"]);

/**
 * `workflow_run.completed`: a GitHub Actions workflow run finished. A failure on the head of one
 * of the app's pull requests queues an `intake` job that reads the run's failed jobs and their
 * logs and may start a Coder revision (`enqueueCiIntake`, `pipeline/ci-intake.ts`); a pass does
 * only while the task waits for the checks to pass on a re-run (the Coder found nothing to fix),
 * and may make it ready for merge again. Runs of other triggers ({@link CODE_EVENTS}) are ignored.
 */
export async function handleWorkflowRunCompleted(context: Context<"workflow_run.completed">, deps: InboundDeps): Promise<TriggerOutcome> {
  const run = context.payload.workflow_run;
  // Only the runs the pushed code triggers: a run triggered by a review, a comment or a dispatch
  // also runs on the PR's head, but anyone who may comment can start (and fail) it — a reader
  // must not be able to start revisions, or put words in the Coder's feedback through its log.
  if (!CODE_EVENTS.has(run.event)) return "ignored";
  return enqueueCiIntake(context, deps, {
    source: "workflow_run",
    headSha: run.head_sha,
    conclusion: run.conclusion ?? null,
    appSlug: GITHUB_ACTIONS_SLUG,
    checkSuiteId: run.check_suite_id,
    workflowRunId: run.id,
    name: run.name ?? context.payload.workflow?.name ?? "workflow",
    pullRequests: (run.pull_requests ?? []).flatMap((pr) => (pr ? [pr.number] : [])),
  });
}
