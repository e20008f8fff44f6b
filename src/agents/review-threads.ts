/**
 * Inline review threads in a Coder revision: how each thread is shown to the model
 * (`<review_thread>`, every comment in order, the diff hunk) and the `reply_to_thread` tool
 * through which the Coder says, per thread, what it changed or why it did not.
 */
import { z } from "zod";

import { ToolInputError } from "../domain/errors.js";
import { escapePatchForPrompt, sanitizeUntrustedText } from "../prompt/index.js";
import { attr } from "./context.js";
import type { AgentTool } from "./loop.js";

/** One comment of a review thread, as the Coder sees it. */
export interface ReviewThreadComment {
  /** REST id of the review comment. */
  id: number;
  author: string;
  /** Written by this app (an earlier reply, or its Reviewer's comment): context, not a request. */
  fromApp: boolean;
  /** Sanitised by the caller; sanitised again when rendered. */
  body: string;
}

/**
 * A review thread of the pull request: the REST review comments that share a first comment
 * (`in_reply_to_id`), in order. `id` is that first comment's id — the thread's id for the
 * Coder and the comment GitHub's reply endpoint answers.
 */
export interface ReviewThread {
  id: number;
  path: string;
  /** Line of the file the thread is on; `null` when it is no longer in the diff (outdated). */
  line: number | null;
  /** GitHub's `diff_hunk` of the first comment (untrusted code; escaped when rendered). */
  diffHunk: string;
  /** Comments shown to the Coder, oldest first (people without write permission left out). */
  comments: ReviewThreadComment[];
}

/** The Coder's answer for one thread (`reply_to_thread`). */
export interface ThreadAnswer {
  threadId: number;
  /** `true` when the revision changed code for this thread. */
  changed: boolean;
  /** What changed, or why nothing did (the model's words: untrusted when written to GitHub). */
  message: string;
  /**
   * A lasting lesson about the repository drawn from the thread, which the reply proposes to the
   * maintainers as a learning (repository memory, issue 14); the model's words, untrusted.
   */
  learning?: string;
}

/** Characters of a diff hunk shown per thread (GitHub's hunks can be long; the end holds the commented line). */
const HUNK_CHARS = 4_000;

/**
 * The threads as `<review_thread>` elements: attributes escaped, comment bodies sanitised
 * (`sanitizeUntrustedText`), the diff hunk escaped as code and cut to its last
 * {@link HUNK_CHARS} characters (the commented line is at its end). Comments keep the
 * `<comment path line author>` shape of a review's inline comments; the app's own are marked
 * `from="app"`.
 */
export function renderReviewThreads(threads: readonly ReviewThread[]): string {
  return threads
    .map((thread) => {
      const hunk = thread.diffHunk.length > HUNK_CHARS ? `[earlier lines of the hunk cut]\n${thread.diffHunk.slice(-HUNK_CHARS)}` : thread.diffHunk;
      const comments = thread.comments
        .map(
          (c) =>
            `<comment path="${attr(thread.path)}" line="${attr(thread.line ?? "?")}" author="${attr(c.author)}"${c.fromApp ? ' from="app"' : ""}>\n${sanitizeUntrustedText(c.body)}\n</comment>`,
        )
        .join("\n");
      return `<review_thread id="${attr(thread.id)}" path="${attr(thread.path)}" line="${attr(thread.line ?? "?")}">\n<diff_hunk>\n${escapePatchForPrompt(hunk)}\n</diff_hunk>\n${comments}\n</review_thread>`;
    })
    .join("\n");
}

/** What the Coder is told about the threads, after `<feedback>`. */
export function threadInstructions(threads: readonly ReviewThread[]): string {
  return `The feedback has ${threads.length} inline review thread(s) (<review_thread>, each with its diff hunk and every comment in order; comments marked from="app" are this app's own earlier words). Address them in this revision. For every thread, call \`reply_to_thread\` once with its id, whether you changed code for it, and one or two sentences for the reviewer: what you changed, or why you did not change anything. When you changed code for a person's comment that states a lasting rule about this repository (not a one-off fix), also give that rule in one sentence as \`learning\`: the reply proposes it to the maintainers, who may keep it for later tasks.`;
}

/** Input of `reply_to_thread`. */
const ReplyToThreadInput = z.object({
  thread_id: z.number().int().describe("The id attribute of the <review_thread>"),
  changed: z.boolean().describe("true when this revision changed code for the thread"),
  message: z
    .string()
    .trim()
    .min(1)
    .max(2000)
    .describe("For the reviewer: what you changed, or why you did not change anything (plain Markdown, no @-mentions)"),
  learning: z
    .string()
    .trim()
    .min(1)
    .max(300)
    .optional()
    .describe(
      'Optional, only when you changed code for a person\'s comment that states a lasting rule about this repository (not a one-off fix): that rule in one sentence, for the maintainers to remember with a 👍 (e.g. "Use tabs for indentation in src/.")',
    ),
});

/**
 * The `reply_to_thread` tool: records the Coder's answer for one thread in `answers` (by
 * thread id; a second call for the same thread replaces the first). Nothing is written to
 * GitHub here: the stage replies after the revision is pushed. An id that is not one of
 * `threads` is refused with a {@link ToolInputError} naming the valid ids.
 */
export function createReplyToThreadTool(threads: readonly ReviewThread[], answers: Map<number, ThreadAnswer>): AgentTool<z.infer<typeof ReplyToThreadInput>> {
  const ids = new Set(threads.map((t) => t.id));
  return {
    name: "reply_to_thread",
    description:
      "Answer one inline review thread: whether this revision changed code for it, and a short message for the reviewer (what changed, or why not). Call it once per thread; the app posts the answers in the threads after your changes are pushed.",
    input: ReplyToThreadInput,
    run({ thread_id, changed, message, learning }) {
      if (!ids.has(thread_id)) return Promise.reject(new ToolInputError(`there is no review thread ${thread_id}; the threads are ${[...ids].join(", ")}`));
      answers.set(thread_id, { threadId: thread_id, changed, message, ...(learning ? { learning } : {}) });
      const left = [...ids].filter((id) => !answers.has(id));
      return Promise.resolve(left.length === 0 ? "Recorded. Every thread has an answer." : `Recorded. Threads still without an answer: ${left.join(", ")}.`);
    },
  };
}
