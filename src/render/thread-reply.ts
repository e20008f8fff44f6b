import { marker } from "../domain/markers.js";
import { redactSecrets } from "../domain/redact.js";

import { escapeInline } from "./standup.js";

/** Characters of the Coder's message kept in a reply. */
const MESSAGE_CHARS = 2_000;

/**
 * The hidden marker of the app's reply in review thread `threadId` to the thread's comments up
 * to `lastCommentId`: one reply per thread and question, so a retried job never replies twice,
 * and a later question in the same thread gets its own reply even when the head did not move
 * (a revision that only answered).
 */
export function threadReplyMarker(threadId: number, lastCommentId: number): string {
  return marker(`thread-reply:${threadId}:${lastCommentId}`);
}

/**
 * A fenced code block (a line opening with three or more backticks, up to a line closing with as
 * many), a code span (one or two backticks, up to the same run, never across a blank line, as
 * GitHub reads it), or the `<` that opens an HTML tag, a comment, a declaration or an autolink
 * (`<b`, `</b`, `<!`, `<?`). A stray backtick therefore cannot shelter a tag in the paragraphs
 * after it.
 */
const CODE_OR_TAG = /^(`{3,})[^\n]*\n[\s\S]*?\n\1`*[ \t]*$|(?<!`)(`{1,2})(?!`)(?:(?!\n[ \t]*\n)[^`])+?(?<!`)\2(?!`)|<(?=[A-Za-z/!?])/gm;

/**
 * Makes model-written text safe to post: no one is pinged (`@name` and `@org/team` become
 * `@&#8203;name`, which GitHub shows as `@name` without a mention), no hidden HTML comment
 * (so it cannot carry or fake a marker), no raw HTML outside code (the `<` of a tag becomes
 * `&lt;`, so GitHub shows the tag as text: nothing can close a quote, fake a heading or hide a
 * word; code spans and fenced blocks, which GitHub shows literally, keep their text), secrets
 * redacted before the text is cut to at most `maxChars` characters (default {@link MESSAGE_CHARS}).
 */
export function quietMarkdown(text: string, maxChars = MESSAGE_CHARS): string {
  // Redact first, then cut: a cut through a secret would leave a piece its pattern no longer matches.
  const redacted = redactSecrets(text);
  const clipped = redacted.length > maxChars ? `${redacted.slice(0, maxChars)}…` : redacted;
  return clipped
    .replace(/<!--/g, "&lt;!--")
    .replace(CODE_OR_TAG, (match) => (match === "<" ? "&lt;" : match))
    .replace(/@(?=[A-Za-z0-9])/g, "@&#8203;")
    .trim();
}

/**
 * The app's reply in one review thread after a revision (GitHub Markdown, marker included):
 * what changed and the short commit sha, or why nothing changed, in the Coder's words; or,
 * when the Coder gave no answer for the thread, that it was not addressed.
 *
 * @param answer - the Coder's `reply_to_thread` answer, or `undefined` when it gave none
 */
export function renderThreadReply(
  threadId: number,
  headSha: string,
  answer: { changed: boolean; message: string; learning?: string | undefined } | undefined,
  lastCommentId = threadId,
  proposal: string | null = null,
): string {
  const sha = headSha.slice(0, 7);
  const text = !answer
    ? `⚠️ **Not addressed.** The revision pushed in ${sha} did not answer this thread; see the revision's summary on the pull request.`
    : answer.changed
      ? `✅ **Changed in ${sha}.** ${quietMarkdown(answer.message)}`
      : `💬 **Not changed** (revision ${sha}). ${quietMarkdown(answer.message)}`;
  const proposed = proposal ? `\n\n${renderLearningProposal(proposal)}` : "";
  return `${threadReplyMarker(threadId, lastCommentId)}\n${text}${proposed}\n\n<sub>Mission Control's Coder</sub>`;
}

/** Characters of a proposed learning shown (and stored) at most. */
export const PROPOSAL_CHARS = 300;

/**
 * The proposal of a learning (repository memory) in a thread reply: the Coder's one-sentence
 * lesson and how a writer confirms it — a 👍 on this reply (checked later: GitHub sends no
 * webhook for reactions), or `/learn` in a comment on the pull request (slash-commands are read
 * from pull request comments, not from review threads). The lesson is shown as literal text
 * ({@link escapeInline}: no tag, link, code span or mention renders), so a writer sees exactly
 * what a 👍 stores; `learning` is `proposedLearning`'s text (already redacted, on one line, cut),
 * which this neither cuts nor changes beyond a second, idempotent redaction.
 */
export function renderLearningProposal(learning: string): string {
  const quoted = escapeInline(redactSecrets(learning.replace(/\s+/g, " ").trim()));
  return `💡 **Remember this for the repository?** React 👍 to this reply (write access), or comment \`/learn …\` on the pull request, and the agents get it on later tasks:\n> ${quoted}`;
}
