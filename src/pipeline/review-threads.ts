/**
 * Inline review threads of the app's pull request: which of them a revision answers (collected
 * when the revision starts), and the app's reply in each after the revision is pushed.
 */
import type { Logger } from "pino";

import type { ReviewThread, ReviewThreadComment, ThreadAnswer } from "../agents/review-threads.js";
import { canWrite, isBot } from "../domain/guards.js";
import { isMissionControlError } from "../domain/errors.js";
import type { GitHubPort, ReviewCommentData } from "../ports/github.js";
import { redactSecrets } from "../domain/redact.js";
import { sanitizeUntrustedText, stripInvisible } from "../prompt/index.js";
import { PROPOSAL_CHARS, renderLearningProposal, renderThreadReply, threadReplyMarker } from "../render/thread-reply.js";

/** Threads one revision answers at most: the ones with the most recent activity. */
export const MAX_THREADS = 30;

/** Why threads of the pull request were left out of a revision (logged). */
export interface SkippedThreads {
  /** Resolved by a person before the revision started (GraphQL `isResolved`). */
  resolved: number;
  /** Without a comment by a person with write permission since the app's last reply. */
  notAwaiting: number;
  /** Beyond {@link MAX_THREADS}. */
  overLimit: number;
}

/**
 * The review threads a revision answers, each whole and in order. From every inline review
 * comment of the pull request (`GET /repos/{owner}/{repo}/pulls/{pull_number}/comments`),
 * grouped into threads by `in_reply_to_id` (a reply names the thread's first comment):
 *
 * - threads a person resolved are skipped — the resolved state exists only in GraphQL
 *   (`reviewThreads { isResolved }`, {@link GitHubPort.listReviewThreads}); when that query
 *   fails for a reason that is not transient, no thread counts as resolved (logged);
 * - comments by people without write permission
 *   (`GET /repos/{owner}/{repo}/collaborators/{username}/permission`) and by other bots are
 *   left out, so the Coder never sees them; the app's own comments (an earlier reply, its
 *   Reviewer's comment) stay, marked `fromApp`, for the thread's structure;
 * - a thread is answered only when it is awaiting an answer: a writer commented after the
 *   app's last comment in it (a thread already answered, or one with no writer in it, is not);
 * - at most {@link MAX_THREADS}, those with the most recent writer comment, oldest thread first.
 *
 * Comment bodies are sanitised (`sanitizeUntrustedText`). `handled` holds the ids of every
 * comment in a thread where someone other than the app wrote (answered here, or skipped on
 * purpose): a caller listing a review's inline comments leaves those out. Threads with only the
 * app's comments (its Reviewer's) are neither answered nor in `handled`.
 *
 * @param appLogin - the app's bot login (`<slug>[bot]`)
 * @throws {GitHubApiError} of a failed read (retried by the worker)
 */
export async function collectReviewThreads(
  github: GitHubPort,
  pullNumber: number,
  options: { appLogin: string; log: Logger },
): Promise<{ threads: ReviewThread[]; skipped: SkippedThreads; handled: Set<number> }> {
  const comments = [...(await github.listReviewComments(pullNumber))].sort((a, b) => a.id - b.id);
  const skipped: SkippedThreads = { resolved: 0, notAwaiting: 0, overLimit: 0 };
  const handled = new Set<number>();
  if (comments.length === 0) return { threads: [], skipped, handled };

  const byId = new Map(comments.map((c) => [c.id, c]));
  const rootOf = (c: ReviewCommentData): number => {
    let current = c;
    for (let hops = 0; current.inReplyTo !== null && hops < 100; hops++) {
      const parent = byId.get(current.inReplyTo);
      if (!parent) return current.inReplyTo;
      current = parent;
    }
    return current.id;
  };
  const groups = new Map<number, ReviewCommentData[]>();
  for (const c of comments) {
    const root = rootOf(c);
    groups.set(root, [...(groups.get(root) ?? []), c]);
  }

  const resolved = await resolvedCommentIds(github, pullNumber, options.log);
  const writers = new Map<string, Promise<boolean>>();
  const isWriter = (login: string): Promise<boolean> => {
    let answer = writers.get(login);
    if (!answer) {
      answer = github.getRepositoryPermission(login).then((p) => canWrite({ permission: p.permission, role_name: p.roleName }));
      writers.set(login, answer);
    }
    return answer;
  };
  const isApp = (c: ReviewCommentData) => c.author === options.appLogin;

  const candidates: Array<{ thread: ReviewThread; lastWriterId: number }> = [];
  for (const [rootId, group] of groups) {
    if (group.every(isApp)) continue;
    for (const c of group) handled.add(c.id);
    if (group.some((c) => resolved.has(c.id))) {
      skipped.resolved++;
      continue;
    }
    const shown: ReviewThreadComment[] = [];
    let lastAppId = 0;
    let lastWriterId = 0;
    for (const c of group) {
      if (isApp(c)) {
        lastAppId = c.id;
        shown.push({ id: c.id, author: c.author, fromApp: true, body: sanitizeUntrustedText(c.body) });
        continue;
      }
      if (isBot({ login: c.author, type: c.authorType }) || !(await isWriter(c.author))) continue;
      lastWriterId = c.id;
      shown.push({ id: c.id, author: c.author, fromApp: false, body: sanitizeUntrustedText(c.body) });
    }
    if (lastWriterId <= lastAppId) {
      skipped.notAwaiting++;
      continue;
    }
    const first = byId.get(rootId) ?? group[0];
    candidates.push({
      thread: { id: rootId, path: first?.path ?? "", line: first?.line ?? null, diffHunk: first?.diffHunk ?? "", comments: shown },
      lastWriterId,
    });
  }
  const kept = [...candidates].sort((a, b) => b.lastWriterId - a.lastWriterId).slice(0, MAX_THREADS);
  skipped.overLimit = candidates.length - kept.length;
  const threads = kept.map((k) => k.thread).sort((a, b) => a.id - b.id);
  options.log.info({ threads: threads.map((t) => t.id), skipped }, "review threads collected");
  return { threads, skipped, handled };
}

/** REST ids of the comments in resolved threads; empty (logged) when GraphQL fails for good. */
async function resolvedCommentIds(github: GitHubPort, pullNumber: number, log: Logger): Promise<Set<number>> {
  try {
    const threads = await github.listReviewThreads(pullNumber);
    return new Set(threads.filter((t) => t.isResolved).flatMap((t) => t.commentIds));
  } catch (err) {
    if (isMissionControlError(err) && err.retryable) throw err;
    log.warn({ err }, "reading the review threads' resolved state failed; no thread is taken as resolved");
    return new Set();
  }
}

/**
 * An HTML tag, comment or declaration (`<details>`, `</x>`, `<!--`, `<!DOCTYPE`, `<?x`, also an
 * autolink `<https://…>`), a Markdown link or image (`[text](url "title")`, `[text][ref]`,
 * `[text] (url)`), or a link reference definition (`[ref]: url "title"`): text that can hide
 * words from a reader once rendered.
 */
const MARKUP = /<\s*[/!?]?\s*[A-Za-z!]|\]\s*[([]|\[[^\]]*\]\s*:/;

/**
 * The learning a thread's reply proposes, or `null`: only when the Coder changed code for the
 * thread, gave a `learning`, and a person (not this app) wrote in the thread — the thread's
 * comments are already only those of people with write permission and the app's own. The text
 * is exactly what the reply shows and what a writer's 👍 stores: invisible characters removed,
 * secrets redacted, whitespace collapsed, and only then cut to {@link PROPOSAL_CHARS}. A learning
 * with HTML tags or Markdown links is not proposed at all (`null`): the reply shows it escaped,
 * but a rule a writer confirms must read the same as text and as rendered Markdown.
 */
export function proposedLearning(thread: ReviewThread, answer: ThreadAnswer | undefined): string | null {
  if (!answer?.changed || !answer.learning?.trim()) return null;
  if (!thread.comments.some((c) => !c.fromApp)) return null;
  const visible = stripInvisible(answer.learning);
  if (MARKUP.test(visible)) return null;
  const text = redactSecrets(redactSecrets(visible).replace(/\s+/g, " ").trim());
  if (text === "") return null;
  return text.length > PROPOSAL_CHARS ? text.slice(0, PROPOSAL_CHARS).trimEnd() : text;
}

/**
 * Replies once in each thread a revision was given
 * (`POST /repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies`, on the
 * thread's first comment): what changed and the short sha of `headSha`, or why not, in the
 * Coder's words with @-mentions neutralised; a thread the Coder did not answer gets a "not
 * addressed" reply. Idempotent: a thread that already has the app's reply to its latest comment
 * (its hidden marker, see `render/thread-reply.ts`) is skipped, so a retried job never replies twice.
 *
 * @returns how many replies were posted now
 * @throws {GitHubApiError} of a failed read or write (the worker retries; replies already posted are not repeated)
 */
export async function replyInThreads(
  github: GitHubPort,
  input: {
    pullNumber: number;
    headSha: string;
    threads: readonly ReviewThread[];
    answers: readonly ThreadAnswer[];
    appLogin: string;
    log: Logger;
    /**
     * Records a learning the reply proposes (repository memory): called for each reply that
     * carries one — also for a reply an earlier attempt already posted, so a retry records it.
     */
    onProposal?: (proposal: { comment: ReviewCommentData; learning: string }) => Promise<void>;
  },
): Promise<number> {
  if (input.threads.length === 0) return 0;
  const mine = (await github.listReviewComments(input.pullNumber)).filter((c) => c.author === input.appLogin);
  const answers = new Map(input.answers.map((a) => [a.threadId, a]));
  let posted = 0;
  for (const thread of input.threads) {
    const lastCommentId = thread.comments.at(-1)?.id ?? thread.id;
    const tag = threadReplyMarker(thread.id, lastCommentId);
    const answer = answers.get(thread.id);
    const proposal = input.onProposal ? proposedLearning(thread, answer) : null;
    const existing = mine.find((c) => c.body.includes(tag));
    if (existing) {
      if (proposal && existing.body.includes(renderLearningProposal(proposal))) await input.onProposal?.({ comment: existing, learning: proposal });
      continue;
    }
    const reply = await github.replyToReviewComment(input.pullNumber, thread.id, renderThreadReply(thread.id, input.headSha, answer, lastCommentId, proposal));
    if (proposal) await input.onProposal?.({ comment: reply, learning: proposal });
    posted++;
  }
  const unanswered = input.threads.filter((t) => !answers.has(t.id)).map((t) => t.id);
  input.log.info({ posted, unanswered }, "replied in the review threads");
  return posted;
}
