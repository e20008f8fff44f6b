import { quietMarkdown } from "./thread-reply.js";

/** Characters of the Coder's reason kept in the reply. */
const REASON_CHARS = 3_000;
/** Failed checks named at most; the rest are counted. */
const CHECKS_NAMED = 5;

/** The marker topic of the reply to a CI failure on `headSha` that the Coder changed nothing for: one reply per head. */
export function ciNoChangeTopic(headSha: string): string {
  return `ci-no-change:${headSha}`;
}

/** `the failing checks (`a`, `b` and 3 more)`: at most 5 named, each already safe inline Markdown (`safeName`). */
export function failingChecks(checks: readonly string[]): string {
  const named = checks.slice(0, CHECKS_NAMED).join(", ");
  const more = checks.length > CHECKS_NAMED ? ` and ${checks.length - CHECKS_NAMED} more` : "";
  return named ? `the failing checks (${named}${more})` : "the failing checks";
}

/**
 * The reply on the pull request when a CI revision changed nothing (GitHub Markdown, without its
 * marker): which failed checks were looked at on which commit, the Coder's reason (made safe by
 * {@link quietMarkdown}: no one pinged, no hidden comment, secrets redacted, cut to 3,000
 * characters) and the ways on — re-running the checks, or `/code <instructions>`.
 *
 * @param input.checks - the failed checks' names, each already safe inline Markdown (`safeName`)
 * @param input.reason - the Coder's final message (model text)
 */
export function renderCiNoChange(input: { headSha: string; checks: readonly string[]; reason: string }): string {
  const reason = quietMarkdown(input.reason, REASON_CHARS) || "_The Coder gave no reason._";
  return [
    "### 🔍 No change for the failing checks",
    `Mission Control looked at ${failingChecks(input.checks)} on ${input.headSha.slice(0, 7)} and made no change: the Coder found nothing in this pull request to fix for them. Its reason:`,
    reason
      .split("\n")
      .map((line) => `> ${line}`)
      .join("\n"),
    "If the failure is flaky or comes from the CI infrastructure, re-run the failed checks: once they pass on this commit, the task is ready for merge again. If the code needs a change after all, comment `/code <instructions>`. Until then the task waits for a person (`blocked`).",
  ].join("\n\n");
}
