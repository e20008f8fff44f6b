import type { Context } from "probot";

import { GITHUB_ACTIONS_SLUG } from "../../../domain/ci.js";
import { enqueueCiIntake } from "./ci-completed.js";
import type { InboundDeps, TriggerOutcome } from "./prologue.js";

/**
 * `workflow_run.completed`: a GitHub Actions workflow run finished. A failure on the head of one
 * of the app's pull requests queues an `intake` job that reads the run's failed jobs and their
 * logs and may start a Coder revision (`enqueueCiIntake`, `pipeline/ci-intake.ts`).
 */
export async function handleWorkflowRunCompleted(context: Context<"workflow_run.completed">, deps: InboundDeps): Promise<TriggerOutcome> {
  const run = context.payload.workflow_run;
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
