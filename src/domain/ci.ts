/**
 * Facts about a repository's own CI that the webhook handlers and the pipeline share. No I/O.
 */

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
