import type { CommentData, GitHubPort } from "../../../ports/github.js";

import { marker, STAGE_LABEL_PREFIX } from "../../../domain/markers.js";

export { marker, STAGE_LABEL_PREFIX };


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
 * Puts `label` on the issue and removes every other `mc:` label it has.
 *
 * @param current - the labels the issue has now (from the issue or the webhook payload)
 */
export async function setStageLabel(github: GitHubPort, issueNumber: number, label: string, current?: string[]): Promise<void> {
  const labels = current ?? (await github.getIssue(issueNumber)).labels;
  if (!labels.includes(label)) await github.addLabels(issueNumber, [label]);
  for (const other of labels) {
    if (other !== label && other.startsWith(STAGE_LABEL_PREFIX)) await github.removeLabel(issueNumber, other);
  }
}
