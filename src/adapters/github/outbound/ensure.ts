import type { CommentData, GitHubPort, IssueData } from "../../../ports/github.js";

import { marker } from "../../../domain/markers.js";

/**
 * Creates or updates the one comment on an issue that carries `marker(topic)`. With a known
 * `commentId` it edits that comment; otherwise it looks for the marker first, so a retried or
 * resumed job never posts a second copy.
 *
 * @returns the comment as it now stands
 */
export async function ensureComment(
  github: GitHubPort,
  input: { issueNumber: number; topic: string; body: string; commentId?: number | null },
): Promise<CommentData> {
  const tag = marker(input.topic);
  const body = `${tag}\n${input.body}`;
  if (input.commentId) return github.updateComment(input.commentId, body);
  const comments = await github.listIssueComments(input.issueNumber);
  // Only the app's own comments count: anyone can paste a marker into theirs.
  const bot = await github.getBotIdentity();
  const existing = comments.find((c) => c.body.startsWith(tag) && c.author === bot.login);
  if (existing) return existing.body === body ? existing : github.updateComment(existing.id, body);
  return github.createComment(input.issueNumber, body);
}

/**
 * Creates or updates the one issue the app opened that carries `marker(topic)` at the start of
 * its body. With a known `issueNumber` it edits that issue (when it is the app's and carries
 * the marker); otherwise it looks for the marker among the app's recent issues first, so a
 * retried or resumed job never opens a second one.
 *
 * @returns the issue as it now stands, and whether it was created now
 */
export async function ensureIssue(
  github: GitHubPort,
  input: { topic: string; title: string; body: string; issueNumber?: number | null; labels?: string[] },
): Promise<{ issue: IssueData; created: boolean }> {
  const tag = marker(input.topic);
  const body = `${tag}\n${input.body}`;
  const bot = await github.getBotIdentity();
  const ours = (issue: IssueData) => issue.author === bot.login && issue.body.startsWith(tag);
  let existing: IssueData | undefined;
  if (input.issueNumber) {
    try {
      const known = await github.getIssue(input.issueNumber);
      if (ours(known)) existing = known;
    } catch (err) {
      // 404 (deleted, transferred) or 410 (gone): look for it, or open a new one.
      const status = (err as { status?: unknown }).status;
      if (status !== 404 && status !== 410) throw err;
    }
  }
  existing ??= (await github.listRecentIssuesBy(bot.login)).find(ours);
  if (!existing)
    return { issue: await github.createIssue({ title: input.title, body, ...(input.labels?.length ? { labels: input.labels } : {}) }), created: true };
  if (existing.body === body && existing.title === input.title) return { issue: existing, created: false };
  return { issue: await github.updateIssue(existing.number, { title: input.title, body }), created: false };
}
