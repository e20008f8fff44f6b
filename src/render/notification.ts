/**
 * Notifications outside GitHub: one short text per event, a link to the issue or pull request,
 * amounts in USD. Every piece of text goes through {@link escapeNotificationText}: a failure's
 * reason may quote untrusted words, and none of it may ping people on the operator's chat.
 */
import type { NotificationEvent } from "../domain/jobs.js";
import { formatNanoUsd } from "../domain/money.js";
import { redactSecrets } from "../domain/redact.js";
import type { NotificationMessage } from "../ports/notifications.js";

/** Zero-width space: put after `@` (and after `<` of a chat markup) it breaks the mention without changing what people read. */
const ZWSP = "\u200B";

/**
 * C0/C1 controls (but newline, tab and carriage return, which are folded into spaces), every
 * Unicode format character (`Cf`: soft hyphen, zero-width space/joiners, direction marks and
 * overrides, word joiner, BOM, tag characters, …), and other characters that render as nothing
 * (combining grapheme joiner, Hangul fillers, variation selectors). Any of them inside a token
 * would hide it from {@link redactSecrets} while a reader still sees the token.
 */
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\p{Cf}\u034F\u115F\u1160\u3164\uFFA0\p{Variation_Selector}]/gu;

/** Longest escaped fragment (characters): reasons are cut to this. */
export const MAX_FRAGMENT_CHARS = 300;

/**
 * The one escaping function of notification text. In this order — so that no invisible
 * character can hide a secret from redaction — it strips control and invisible characters,
 * redacts secrets ({@link redactSecrets}; once with the lines intact, for the rules that read
 * lines such as PEM blocks and `KEY=value`, and once more after newlines and other whitespace
 * are folded into single spaces), then neutralises every mention syntax the channels know —
 * `@channel`, `@here`, `@everyone`, Telegram and Discord `@username`, Slack `<!here>`,
 * `<!channel>`, `<@U123>`, `<#C123>`, Discord `<@123>`, `<@&role>`, `<#channel>` — by a zero-width
 * space after `@` and after a `<` that opens such markup — and cuts to `maxChars` characters
 * (one line). Slack's `&`, `<`, `>` escaping is the Slack adapter's (it applies to the whole
 * message).
 */
export function escapeNotificationText(text: string, maxChars = MAX_FRAGMENT_CHARS): string {
  const visible = redactSecrets(text.replace(INVISIBLE, ""));
  const cleaned = redactSecrets(visible.replace(/\s+/g, " ").trim())
    .replace(/@/g, `@${ZWSP}`)
    .replace(/<(?=[!@#&])/g, `<${ZWSP}`);
  const chars = [...cleaned];
  return chars.length > maxChars ? `${chars.slice(0, maxChars - 1).join("")}…` : cleaned;
}

function dateOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

/** `owner/repo#7` (or `owner/repo#7 (PR #12)`). */
function subjectRef(s: { repository: string; issueNumber: number; prNumber?: number | null | undefined }): string {
  return escapeNotificationText(`${s.repository}#${s.issueNumber}${s.prNumber ? ` (PR #${s.prNumber})` : ""}`);
}

/** The facts with every free-text field escaped (the generic webhook's body carries them). */
function escapedFacts(event: NotificationEvent): NotificationEvent {
  switch (event.type) {
    case "task_ready_for_merge":
    case "task_failed":
    case "task_blocked":
      return { ...event, reason: escapeNotificationText(event.reason) };
    case "budget_threshold":
    case "budget_exceeded":
      return {
        ...event,
        scopeLabel: escapeNotificationText(event.scopeLabel),
        ...(event.reason === undefined ? {} : { reason: escapeNotificationText(event.reason) }),
      };
    default:
      return event;
  }
}

/**
 * Renders one event as a short message: a title line, at most a few lines of facts, and the link.
 *
 * @param createdAt - epoch ms the event happened
 */
export function renderNotification(event: NotificationEvent, createdAt: number): NotificationMessage {
  let title: string;
  const lines: string[] = [];
  let url: string | null = null;
  switch (event.type) {
    case "task_ready_for_merge":
      title = `✅ ${subjectRef(event.subject)} is ready for merge`;
      url = event.subject.prUrl ?? event.subject.issueUrl;
      break;
    case "task_failed":
      title = `❌ ${subjectRef(event.subject)} failed`;
      lines.push(escapeNotificationText(event.reason));
      url = event.subject.issueUrl;
      break;
    case "task_blocked":
      title = `⏸️ ${subjectRef(event.subject)} is blocked`;
      lines.push(escapeNotificationText(event.reason));
      url = event.subject.issueUrl;
      break;
    case "budget_threshold":
    case "budget_exceeded": {
      const what = event.type === "budget_threshold" ? "⚠️ Budget threshold reached" : "⛔ Budget exceeded";
      title = `${what}: ${escapeNotificationText(event.scopeLabel, 120)} (${escapeNotificationText(event.period, 20)})`;
      if (event.spentNanoUsd !== null && event.limitNanoUsd !== null) {
        lines.push(
          `Spent ${formatNanoUsd(event.spentNanoUsd, 2)} of ${formatNanoUsd(event.limitNanoUsd, 2)}${event.percent === null ? "" : ` (${Math.round(event.percent)} %)`}.` +
            (event.resetsAt === null ? " This limit does not reset." : ` Resets ${dateOf(event.resetsAt)}.`),
        );
      }
      if (event.reason) lines.push(escapeNotificationText(event.reason));
      url = event.subject?.issueUrl ?? null;
      break;
    }
    case "job_stuck":
      title = `🔁 A ${escapeNotificationText(event.jobKind, 20)} job${event.subject ? ` of ${subjectRef(event.subject)}` : ""} keeps being taken over`;
      lines.push(
        `Its worker stopped heartbeating ${event.takeovers} times (attempt ${event.attempts}); check the workers' memory and logs. Job ${escapeNotificationText(event.jobId, 60)}.`,
      );
      url = event.subject?.issueUrl ?? null;
      break;
    case "standup":
      title = `🧭 Stand-up of ${escapeNotificationText(event.subject.repository, 100)} for ${escapeNotificationText(event.date, 10)}`;
      lines.push(
        `${event.started} task(s) started, ${event.prsOpened} pull request(s) opened, ${event.merged} merged, ${event.failed} failed; ` +
          `${event.waiting} waiting for a person; ${event.proposals} follow-up(s) proposed; spend ${formatNanoUsd(event.spendNanoUsd, 2)}.`,
      );
      url = event.subject.issueUrl;
      break;
    case "daily_digest": {
      title = `📊 Mission Control digest for ${escapeNotificationText(event.day, 10)} (installation ${event.installationId})`;
      lines.push(
        `${event.tasksStarted} task(s) started, ${event.readyForMerge} ready for merge, ${event.failed} failed; spend ${formatNanoUsd(event.spendNanoUsd, 2)}.`,
      );
      const top = event.topRepositories.map((r) => `${escapeNotificationText(r.repository, 100)} ${formatNanoUsd(r.spendNanoUsd, 2)}`);
      if (top.length > 0) lines.push(`Top spend: ${top.join(", ")}.`);
      break;
    }
  }
  const text = [title, ...lines, ...(url ? [url] : [])].join("\n");
  return { event: event.type, title, text, url, facts: escapedFacts(event), createdAt };
}
