import { expect, vi } from "vitest";

import type { RunningApp } from "../helpers/app-harness.js";
import type { FakeGitHub } from "../helpers/github-fake.js";
import { examplePayload } from "../helpers/webhooks.js";
import { INSTALLATION_ID, ISSUE, ISSUE_BODY, ISSUE_TITLE, OWNER, REPO } from "./scenario.js";

let nextCommentId = 9_000_000;

/** A fresh comment id, unique in the test process. */
export function newCommentId(): number {
  return nextCommentId++;
}

/**
 * GitHub's `issue_comment.<action>` example, adapted like `labeledPayload`: our repository,
 * issue (a pull request when `pullRequest`; its title and body as the fake serves them unless
 * `issueTitle`/`issueBody` are given), a unique comment id, the comment body, the sender and
 * the installation.
 */
export function commentPayload(options: {
  cloneUrl: string;
  body: string;
  sender?: string;
  senderType?: string;
  action?: "created" | "edited";
  issue?: number;
  pullRequest?: boolean;
  commentId?: number;
  issueTitle?: string;
  issueBody?: string;
}) {
  const sender = options.sender ?? "maintainer";
  const commentId = options.commentId ?? newCommentId();
  const number = options.issue ?? ISSUE;
  const payload = examplePayload("issue_comment", options.action ?? "created");
  payload.repository.name = REPO;
  payload.repository.full_name = `${OWNER}/${REPO}`;
  payload.repository.owner.login = OWNER;
  payload.repository.clone_url = options.cloneUrl;
  payload.repository.default_branch = "main";
  payload.issue.number = number;
  payload.issue.title = options.issueTitle ?? ISSUE_TITLE;
  payload.issue.body = options.issueBody ?? ISSUE_BODY;
  payload.issue.state = "open";
  if (options.pullRequest) {
    payload.issue.pull_request = {
      url: `https://ghe.example.test/api/v3/repos/${OWNER}/${REPO}/pulls/${number}`,
      html_url: `https://ghe.example.test/${OWNER}/${REPO}/pull/${number}`,
      diff_url: `https://ghe.example.test/${OWNER}/${REPO}/pull/${number}.diff`,
      patch_url: `https://ghe.example.test/${OWNER}/${REPO}/pull/${number}.patch`,
    };
  } else {
    delete payload.issue.pull_request;
  }
  payload.comment.id = commentId;
  payload.comment.body = options.body;
  payload.comment.user.login = sender;
  payload.comment.user.type = options.senderType ?? "User";
  payload.sender.login = sender;
  payload.sender.type = options.senderType ?? "User";
  payload.installation = { id: INSTALLATION_ID, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" };
  return { payload, commentId };
}

/** Jobs queued or running. */
export async function openJobs(app: RunningApp): Promise<Array<{ id: number; kind: string; state: string }>> {
  return app.db.selectFrom("jobs").select(["id", "kind", "state"]).where("state", "in", ["queued", "running"]).orderBy("id").execute();
}

/**
 * Waits until no job is queued or running and the worker has finished every job it holds
 * (failure handlers included), then returns the task's state.
 */
export async function settledStage(app: RunningApp): Promise<string | undefined> {
  for (let round = 0; round < 20; round++) {
    await vi.waitFor(async () => expect(await openJobs(app)).toEqual([]), { timeout: 30_000, interval: 50 });
    await app.worker.idle();
    if ((await openJobs(app)).length === 0) break;
  }
  const task = await app.db.selectFrom("tasks").select("stage").executeTakeFirst();
  return task?.stage;
}

/** The reply the app posted to the command comment `commentId` (found by its hidden marker). */
export function replyTo(github: FakeGitHub, commentId: number) {
  return github.comments.find((c) => c.body.startsWith(`<!-- mission-control:command:${commentId}:`));
}

/** Waits for the reply to `commentId` and returns its body. */
export async function waitForReply(github: FakeGitHub, commentId: number): Promise<string> {
  await vi.waitFor(() => expect(replyTo(github, commentId)).toBeDefined(), { timeout: 30_000, interval: 25 });
  return replyTo(github, commentId)!.body;
}

/** USD of one call at claude-sonnet-5-5 prices ($2 input, $10 output, $2.50 cache write, $0.20 cache read per MTok). */
export function expectedCost(u: { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number }): number {
  return (u.input_tokens * 2 + u.output_tokens * 10 + u.cache_creation_input_tokens * 2.5 + u.cache_read_input_tokens * 0.2) / 1_000_000;
}

/** Sums scripted usages field by field. */
export function sumUsage(usages: Array<{ input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number }>) {
  return usages.reduce(
    (a, u) => ({
      input_tokens: a.input_tokens + u.input_tokens,
      output_tokens: a.output_tokens + u.output_tokens,
      cache_creation_input_tokens: a.cache_creation_input_tokens + u.cache_creation_input_tokens,
      cache_read_input_tokens: a.cache_read_input_tokens + u.cache_read_input_tokens,
    }),
    { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  );
}

/** The comments of the tracking kind (one expected). */
export function trackingComments(github: FakeGitHub) {
  return github.comments.filter((c) => c.body.startsWith("<!-- mission-control:tracking -->"));
}

/** Waits until no job is queued or running and the worker has finished the jobs it holds (twice: a job may enqueue the next). */
export async function settleJobs(app: RunningApp): Promise<void> {
  for (let round = 0; round < 2; round++) {
    await vi.waitFor(
      async () => {
        const open = await app.db.selectFrom("jobs").select("id").where("state", "in", ["queued", "running"]).execute();
        expect(open).toEqual([]);
      },
      { timeout: 30_000, interval: 25 },
    );
    await app.worker.idle();
  }
}
