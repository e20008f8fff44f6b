/**
 * Learnings proposed in review threads (repository memory, issue 14): when a Coder revision acted
 * on a person's review comment and the Coder stated a lasting rule (`reply_to_thread`'s
 * `learning`), the app's reply in the thread proposes it and the proposal is recorded here. A
 * writer confirms it with a 👍 on that reply. GitHub sends no webhook for reactions, so the
 * reactions of pending proposals are read at natural later points — when an agent of the
 * repository is about to get its learnings, and on `/memory` — and only reactions of people with
 * write permission count.
 */
import type { Logger } from "pino";

import { canWrite, isBot } from "../domain/guards.js";
import { isMissionControlError } from "../domain/errors.js";
import type { GitHubPort, ReviewCommentData } from "../ports/github.js";
import type { DbOrTrx } from "../store/db.js";
import { acceptLearningProposal, addLearningProposal, type Learning, pendingLearningProposals } from "../store/memory.js";
import type { Task } from "../store/schema.js";
import { repositoryWebUrl } from "./memory-commands.js";

/** Pending proposals whose reactions one check reads at most (newest first). */
export const MAX_PROPOSALS_CHECKED = 10;

/** Records the learning a thread reply proposed (once per reply). */
export async function recordLearningProposal(
  db: DbOrTrx,
  task: Pick<Task, "installation_id" | "owner" | "repo" | "clone_url">,
  pullNumber: number,
  proposal: { comment: ReviewCommentData; learning: string },
  now = Date.now(),
): Promise<void> {
  await addLearningProposal(db, {
    installationId: task.installation_id,
    repository: `${task.owner}/${task.repo}`,
    pullNumber,
    commentId: proposal.comment.id,
    text: proposal.learning,
    sourceUrl: `${repositoryWebUrl(task)}/pull/${pullNumber}#discussion_r${proposal.comment.id}`,
    createdAt: now,
  });
}

/**
 * Reads the 👍 reactions of the repository's pending proposals
 * (`GET /repos/{owner}/{repo}/pulls/comments/{comment_id}/reactions`) and turns each proposal a
 * writer (write, maintain or admin: `GET …/collaborators/{username}/permission`; never a bot)
 * reacted to into a learning whose author is that writer. Proposals older than 30 days expire.
 * A failed GitHub read is logged and leaves the proposal pending (a later check tries again).
 *
 * @returns the learnings added now
 */
export async function confirmLearningProposals(
  db: DbOrTrx,
  github: Pick<GitHubPort, "listReviewCommentThumbsUp" | "getRepositoryPermission" | "getBotIdentity">,
  task: Pick<Task, "installation_id" | "owner" | "repo">,
  log: Logger,
  now = Date.now(),
): Promise<Learning[]> {
  const pending = await pendingLearningProposals(db, task.installation_id, `${task.owner}/${task.repo}`, MAX_PROPOSALS_CHECKED, now);
  if (pending.length === 0) return [];
  const app = (await github.getBotIdentity()).login;
  const writers = new Map<string, boolean>();
  const isWriter = async (login: string): Promise<boolean> => {
    const known = writers.get(login);
    if (known !== undefined) return known;
    const answer = await github.getRepositoryPermission(login);
    const can = canWrite({ permission: answer.permission, role_name: answer.roleName });
    writers.set(login, can);
    return can;
  };
  const added: Learning[] = [];
  for (const proposal of pending) {
    try {
      const reactions = await github.listReviewCommentThumbsUp(proposal.comment_id);
      for (const reaction of reactions) {
        if (reaction.login === app || isBot({ login: reaction.login, type: reaction.userType })) continue;
        if (!(await isWriter(reaction.login))) continue;
        added.push(await acceptLearningProposal(db, proposal, reaction.login, now));
        break;
      }
    } catch (err) {
      if (!isMissionControlError(err)) throw err;
      log.warn({ err, commentId: proposal.comment_id }, "reading the reactions of a proposed learning failed; it stays pending");
    }
  }
  if (added.length > 0) log.info({ learnings: added.map((l) => l.id) }, "proposed learnings confirmed by a writer's 👍");
  return added;
}
