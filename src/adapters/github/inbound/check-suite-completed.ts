import type { Context } from "probot";

import { GITHUB_ACTIONS_SLUG } from "../../../domain/ci.js";
import { enqueueCiIntake } from "./ci-completed.js";
import type { InboundDeps, TriggerOutcome } from "./prologue.js";

/**
 * `check_suite.completed`: another app's checks (not GitHub Actions, whose runs come through
 * `workflow_run.completed`; not this app's own) finished on a commit. A failure on one of the
 * app's pull requests queues an `intake` job that reads the failed check runs' output and
 * annotations and may start a Coder revision (`enqueueCiIntake`, `pipeline/ci-intake.ts`); a
 * pass does only while the task waits for the checks to pass on a re-run (the Coder found
 * nothing to fix), and may make it ready for merge again.
 */
export async function handleCheckSuiteCompleted(context: Context<"check_suite.completed">, deps: InboundDeps): Promise<TriggerOutcome> {
  const suite = context.payload.check_suite;
  const appSlug = (suite.app as { slug?: string } | null)?.slug ?? null;
  // GitHub Actions is read through its workflow_run event: it names the run, whose jobs have the logs.
  if (appSlug === GITHUB_ACTIONS_SLUG) return "ignored";
  return enqueueCiIntake(context, deps, {
    source: "check_suite",
    headSha: suite.head_sha,
    conclusion: suite.conclusion ?? null,
    appSlug,
    checkSuiteId: suite.id,
    workflowRunId: null,
    name: (suite.app as { name?: string } | null)?.name ?? appSlug ?? "check suite",
    pullRequests: (suite.pull_requests ?? []).map((pr) => pr.number),
  });
}
