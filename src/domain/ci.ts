/**
 * Facts about a repository's own CI that the webhook handlers and the pipeline share. No I/O.
 */
import type { IntakePayload } from "./jobs.js";

/** The `ci` intake payload: a completed check suite or workflow run of the app's pull request. */
export type CiIntakePayload = Extract<IntakePayload, { event: "ci" }>;

/** What a `ci` intake is told about the run it is queued for (what the handlers read from the payload). */
export type CiRunFacts = Pick<CiIntakePayload, "source" | "headSha" | "conclusion" | "appSlug" | "checkSuiteId" | "workflowRunId" | "name">;

/**
 * The payload of a `ci` intake job, built the same way wherever one is queued: by the webhook
 * handlers (`adapters/github/inbound/ci-completed.ts`) and by the code stage's re-check after a
 * stop on a CI failure the Coder found nothing to fix (`ciRecheckJob`). It has not waited yet.
 */
export function ciIntakePayload(subject: CiIntakePayload["subject"], sender: CiIntakePayload["sender"], run: CiRunFacts, receivedAt: string): CiIntakePayload {
  return {
    event: "ci",
    subject,
    sender,
    source: run.source,
    headSha: run.headSha,
    conclusion: run.conclusion,
    appSlug: run.appSlug,
    checkSuiteId: run.checkSuiteId,
    workflowRunId: run.workflowRunId,
    name: run.name,
    receivedAt,
    waits: 0,
  };
}

/**
 * Conclusions of a check suite, check run, workflow run or job that count as a failure the
 * Coder should fix. `cancelled`, `skipped`, `neutral`, `stale`, `action_required` and
 * `startup_failure` (an invalid workflow file: there is no log) do not.
 */
export const CI_FAILED_CONCLUSIONS: ReadonlySet<string> = new Set(["failure", "timed_out"]);

/**
 * The slug of the GitHub Actions app. Its check suites are read through `workflow_run`, whose
 * payload names the run (and so its jobs and logs); its `check_suite` events are not used.
 */
export const GITHUB_ACTIONS_SLUG = "github-actions";

/**
 * Conclusions of a completed check suite or workflow run that may end a stop for a CI failure
 * the Coder found nothing to fix ({@link isBlockedOnUnfixableCi}): the checks passed on a re-run.
 */
export const CI_PASSED_CONCLUSIONS: ReadonlySet<string> = new Set(["success", "neutral"]);

/** Conclusions of one check run that count as passed: `skipped` too (a job whose condition was false). */
export const CHECK_RUN_PASSED_CONCLUSIONS: ReadonlySet<string> = new Set(["success", "neutral", "skipped"]);

/**
 * Key of the tracking note (`tasks.tracking_notes`) the code stage sets when a CI revision found
 * nothing to fix and the task stops as `blocked`; cleared when the checks pass on a re-run.
 */
export const CI_NOT_FIXABLE_NOTE = "ci-not-fixable";

/** Reason of that stop's transition to `blocked`: written by the code stage only, compared whole (never parsed). */
export const CI_NOT_FIXABLE_REASON = "CI failure not fixable by a change";

/** Reason of the transition `blocked → ready_for_merge` when the checks passed on a re-run: the only use of that edge. */
export const CI_PASSED_REASON = "the repository's checks passed on a re-run";

/**
 * `true` while a task is stopped because a CI revision found nothing to fix — the one stop a
 * passing re-run of the checks ends. All three must hold: the task is `blocked`; the note
 * {@link CI_NOT_FIXABLE_NOTE} is set; and the task's latest transition is that stop's (to
 * `blocked`, reason {@link CI_NOT_FIXABLE_REASON}) — so a note left from an earlier stop (the
 * task resumed by `/retry` or `/code`, then stopped again at a limit) never matches.
 *
 * @param notes - the task's tracking notes by key
 * @param last - the task's latest transition, if any
 */
export function isBlockedOnUnfixableCi(
  task: { stage: string | null },
  notes: Readonly<Record<string, string>>,
  last: { to_state: string; reason: string } | undefined,
): boolean {
  return task.stage === "blocked" && notes[CI_NOT_FIXABLE_NOTE] !== undefined && last?.to_state === "blocked" && last.reason === CI_NOT_FIXABLE_REASON;
}
