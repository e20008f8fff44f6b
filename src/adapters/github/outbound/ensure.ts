import type { CommentData, GitHubPort } from "../../../ports/github.js";

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
