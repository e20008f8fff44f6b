import pino from "pino";
import { describe, expect, it } from "vitest";

import { GitHubApiError } from "../../src/domain/errors.js";
import { collectReviewThreads, replyInThreads } from "../../src/pipeline/review-threads.js";
import type { GitHubPort, ReviewCommentData, ReviewThreadState } from "../../src/ports/github.js";

const APP = "mc[bot]";
const log = pino({ level: "silent" });

function comment(id: number, author: string, inReplyTo: number | null, body = `comment ${id}`): ReviewCommentData {
  return {
    id,
    reviewId: id,
    path: "src/a.ts",
    line: 3,
    body,
    author,
    authorType: author.endsWith("[bot]") ? "Bot" : "User",
    createdAt: "",
    inReplyTo,
    diffHunk: "@@ -1 +1 @@",
  };
}

function port(comments: ReviewCommentData[], threads: ReviewThreadState[] | Error, writers = ["maintainer", "lead"]) {
  const replies: Array<{ id: number; body: string }> = [];
  const github = {
    listReviewComments: async () => comments,
    listReviewThreads: async () => {
      if (threads instanceof Error) throw threads;
      return threads;
    },
    getRepositoryPermission: async (login: string) => ({ permission: writers.includes(login) ? "write" : "read", roleName: null }),
    replyToReviewComment: async (_pull: number, id: number, body: string) => {
      replies.push({ id, body });
      const reply = comment(10_000 * replies.length, APP, id, body);
      comments.push(reply);
      return reply;
    },
  } as unknown as GitHubPort;
  return { github, replies };
}

describe("collectReviewThreads", () => {
  it("groups replies into threads, keeps writers and the app, skips resolved, answered and app-only threads", async () => {
    const comments = [
      comment(1, "maintainer", null), // thread 1: awaiting (maintainer, reader, app, lead)
      comment(2, "reader", 1),
      comment(3, APP, 1),
      comment(4, "lead", 3), // a reply naming a reply still lands in thread 1
      comment(10, "maintainer", null), // thread 10: resolved
      comment(20, "maintainer", null), // thread 20: the app answered last
      comment(21, APP, 20),
      comment(30, APP, null), // thread 30: the Reviewer's alone
      comment(40, "reader", null), // thread 40: a reader's alone
    ];
    const { github } = port(comments, [{ isResolved: true, commentIds: [10] }]);
    const { threads, skipped, handled } = await collectReviewThreads(github, 5, { appLogin: APP, log });
    expect(threads.map((t) => t.id)).toEqual([1]);
    expect(threads[0]!.comments.map((c) => [c.id, c.author, c.fromApp])).toEqual([
      [1, "maintainer", false],
      [3, APP, true],
      [4, "lead", false],
    ]);
    expect(skipped).toEqual({ resolved: 1, notAwaiting: 2, overLimit: 0 });
    expect([...handled].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 10, 20, 21, 40]);
  });

  it("takes no thread as resolved when GraphQL fails for good, and retries a transient failure", async () => {
    const failed = port([comment(1, "maintainer", null)], new GitHubApiError(403, "Resource not accessible by integration", { retryable: false }));
    expect((await collectReviewThreads(failed.github, 5, { appLogin: APP, log })).threads.map((t) => t.id)).toEqual([1]);
    const transient = port([comment(1, "maintainer", null)], new GitHubApiError(502, "Bad Gateway", { retryable: true }));
    await expect(collectReviewThreads(transient.github, 5, { appLogin: APP, log })).rejects.toBeInstanceOf(GitHubApiError);
  });
});

describe("replyInThreads", () => {
  it("replies once per thread and question, also when run again", async () => {
    const comments = [comment(1, "maintainer", null), comment(2, "maintainer", null)];
    const { github, replies } = port(comments, []);
    const { threads } = await collectReviewThreads(github, 5, { appLogin: APP, log });
    const input = { pullNumber: 5, headSha: "abcdef0123", threads, answers: [{ threadId: 1, changed: true, message: "Done." }], appLogin: APP, log };
    expect(await replyInThreads(github, input)).toBe(2);
    expect(await replyInThreads(github, input)).toBe(0);
    expect(replies.map((r) => r.id)).toEqual([1, 2]);
    expect(replies[0]!.body).toContain("**Changed in abcdef0.** Done.");
    expect(replies[1]!.body).toContain("**Not addressed.**");
    // Answered: neither thread awaits an answer any more.
    expect((await collectReviewThreads(github, 5, { appLogin: APP, log })).threads).toEqual([]);
  });

  it("answers a follow-up question in the same thread although the head did not move", async () => {
    const comments = [comment(1, "maintainer", null)];
    const { github, replies } = port(comments, []);
    const head = "abcdef0123";
    const first = await collectReviewThreads(github, 5, { appLogin: APP, log });
    await replyInThreads(github, {
      pullNumber: 5,
      headSha: head,
      threads: first.threads,
      answers: [{ threadId: 1, changed: false, message: "Kept." }],
      appLogin: APP,
      log,
    });
    comments.push(comment(15_000, "maintainer", 1, "Why, though?"));
    const second = await collectReviewThreads(github, 5, { appLogin: APP, log });
    expect(second.threads.map((t) => t.id)).toEqual([1]);
    const input = {
      pullNumber: 5,
      headSha: head,
      threads: second.threads,
      answers: [{ threadId: 1, changed: false, message: "The style guide says so." }],
      appLogin: APP,
      log,
    };
    expect(await replyInThreads(github, input)).toBe(1);
    expect(replies.map((r) => r.body)).toEqual([expect.stringContaining("Kept."), expect.stringContaining("The style guide says so.")]);
    expect((await collectReviewThreads(github, 5, { appLogin: APP, log })).threads).toEqual([]);
  });
});
