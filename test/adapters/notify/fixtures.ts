import type { NotificationEvent } from "../../../src/domain/jobs.js";
import { renderNotification } from "../../../src/render/notification.js";

/** Words meant to ping everyone on each chat system, plus a secret and a direction override. */
export const HOSTILE = "@everyone @here @channel <!channel> <!here> <@U123> <@&987> <#C42> @alice \u202Eevil\u0007 ghp_0123456789abcdefghijklmnopqrstuvwxyz";

/** A failed task whose reason quotes hostile text. */
export const FAILED_EVENT: NotificationEvent = {
  type: "task_failed",
  subject: { repository: "octo-org/widgets", issueNumber: 7, issueUrl: "https://github.com/octo-org/widgets/issues/7", prNumber: null, prUrl: null },
  state: "failed",
  reason: `The tests failed: ${HOSTILE}`,
};

export const failedMessage = () => renderNotification(FAILED_EVENT, Date.UTC(2026, 10, 27, 12, 0, 0));

/** Asserts that no mention syntax of Slack, Discord or Telegram survived in `text`. */
export function mentionFree(text: string): boolean {
  return (
    !/@(everyone|here|channel|alice)\b/.test(text) && !/<[!@#]/.test(text) && !text.includes("ghp_0123") && !text.includes("\u202E") && !text.includes("\u0007")
  );
}
