/**
 * What a writer may ask on the repository's stand-up issue (orchestrator mode, issue 14). The
 * stand-up is the app's report, not work to do: a plain @-mention there ("Thanks @app, please
 * approve 2") must not become a `/plan` of the stand-up, and neither may `/plan`, `/code` or any
 * other command that starts a run. Only {@link STANDUP_COMMANDS} are taken; anything else gets
 * one short reply saying what works there — no task, no job, no model call.
 */
import type { DbOrTrx } from "../store/db.js";
import { findSchedule, type RepositoryRef } from "../store/orchestrator.js";

/** The commands the stand-up issue takes: decide proposals, and the ones that start nothing. */
export const STANDUP_COMMANDS: ReadonlySet<string> = new Set(["approve", "dismiss", "help", "status", "memory", "learn", "forget"]);

/**
 * Whether issue `number` is the repository's stand-up issue in this installation: the number
 * the stand-up schedule recorded when it wrote the issue (`repository_schedules.standup_issue_number`;
 * also while the stand-up is off, since the issue stays).
 */
export async function isStandupSubject(db: DbOrTrx, ref: RepositoryRef, number: number): Promise<boolean> {
  const recorded = (await findSchedule(db, ref, "standup"))?.standup_issue_number;
  return recorded !== null && recorded !== undefined && Number(recorded) === number;
}

/** The reply topic (hidden marker) of the answer to comment `commentId`, as a command's reply: a retried job edits it. */
export function standupOnlyTopic(commentId: number): string {
  return `command:${commentId}:standup`;
}

/**
 * The one reply to a plain mention, or to a command the stand-up issue does not take: which
 * commands work there, and that nothing was started.
 *
 * @param asked - what was written, already safe to show (`` `/plan` ``, or a mention)
 */
export function standupOnlyReply(asked: string): string {
  return [
    `${asked} was not run: this is the stand-up issue, where Mission Control takes only \`/approve <n>\` and \`/dismiss <n>\` (a proposed follow-up), \`/help\`, \`/status\`, \`/memory\`, \`/learn <text>\` and \`/forget <n>\`.`,
    "Nothing was started. To have work done, label an issue or comment on the issue itself.",
  ].join(" ");
}
