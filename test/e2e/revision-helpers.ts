import { expect, vi } from "vitest";

import type { RecordedMessageRequest } from "../helpers/anthropic-fake.js";
import type { RunningApp } from "../helpers/app-harness.js";
import { git } from "../helpers/git-fixtures.js";
import { examplePayload } from "../helpers/webhooks.js";
import { createWorld, labeledPayload, REPO_FILES } from "./scenario.js";

/** The branch every scenario's Coder works on (from the title). */
export const BRANCH = "mc/issue-7-friendlier-greeting";

/**
 * A repository whose own tests fail until greet("Ada") returns "Hello, Ada!": `npm test` runs
 * `node --test test/` on a real test file.
 */
export const FAILING_TESTS_FILES: Record<string, string> = {
  "README.md": "# widgets\n\nGreets people.\n",
  "package.json": '{ "name": "widgets", "type": "module", "scripts": { "test": "node --test test/" } }\n',
  "src/greet.js": 'export function greet(name) {\n  return "Hello " + name;\n}\n',
  "test/greet.test.js": [
    'import { test } from "node:test";',
    'import assert from "node:assert/strict";',
    'import { greet } from "../src/greet.js";',
    "",
    'test("greet says hello with a comma and an exclamation mark", () => {',
    '  assert.equal(greet("Ada"), "Hello, Ada!");',
    "});",
    "",
  ].join("\n"),
  ".gitignore": "node_modules/\n",
};

/** scenario.ts's `createWorld`, with the bare repository seeded with `files`. */
export function createWorldWith(
  files: Record<string, string> = REPO_FILES,
  options: { permissions?: Record<string, "admin" | "write" | "read">; repoConfigYaml?: string } = {},
) {
  return createWorld({ ...options, files });
}

/**
 * GitHub's `pull_request_review.submitted` example, adapted: our repository, pull request,
 * review (id and state), sender and installation.
 */
export function reviewSubmittedPayload(options: {
  cloneUrl: string;
  pullNumber: number;
  reviewId: number;
  state: "changes_requested" | "commented" | "approved";
  body?: string;
  sender?: string;
  senderType?: string;
}) {
  const payload = examplePayload("pull_request_review", "submitted");
  const { repository, installation } = labeledPayload({ cloneUrl: options.cloneUrl });
  payload.repository = repository;
  payload.installation = installation;
  payload.pull_request.number = options.pullNumber;
  payload.pull_request.state = "open";
  payload.pull_request.head.ref = BRANCH;
  payload.pull_request.base.ref = "main";
  payload.review.id = options.reviewId;
  payload.review.state = options.state;
  payload.review.body = options.body ?? null;
  payload.review.user.login = options.sender ?? "maintainer";
  payload.review.user.type = options.senderType ?? "User";
  payload.sender.login = options.sender ?? "maintainer";
  payload.sender.type = options.senderType ?? "User";
  return payload;
}

/** Waits until no job is queued or running and the task rests in `stage`; then lets the worker finish. */
export async function waitForStage(app: RunningApp, stage: string): Promise<void> {
  await vi.waitFor(
    async () => {
      const open = await app.db.selectFrom("jobs").select("id").where("state", "in", ["queued", "running"]).execute();
      expect(open).toEqual([]);
      const task = await app.db.selectFrom("tasks").select("stage").executeTakeFirst();
      expect(task?.stage).toBe(stage);
    },
    { timeout: 30_000, interval: 50 },
  );
  await app.worker.idle();
}

/** The one task of a scenario. */
export async function theTask(app: RunningApp) {
  return app.db.selectFrom("tasks").selectAll().executeTakeFirstOrThrow();
}

/** `[from, to]` of every recorded transition, oldest first. */
export async function transitionPairs(app: RunningApp): Promise<Array<[string | null, string]>> {
  const rows = await app.db.selectFrom("transitions").select(["from_state", "to_state"]).orderBy("id").execute();
  return rows.map((t) => [t.from_state, t.to_state]);
}

/** Text of a content value as the Messages API carries it (a string or an array of blocks). */
export function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((b: { type?: string; text?: string; content?: unknown }) =>
      b.type === "text" ? (b.text ?? "") : b.type === "tool_result" ? contentText(b.content) : "",
    )
    .join("");
}

/** The first user message of a recorded request, as text. */
export function firstUserText(request: RecordedMessageRequest | undefined): string {
  return contentText(request?.body.messages?.[0]?.content);
}

/** The `<feedback …>…</feedback>` element of a text, or `undefined`. */
export function feedbackElement(text: string): string | undefined {
  return /<feedback\b[^>]*>[\s\S]*?<\/feedback>/.exec(text)?.[0];
}

/** The sha a branch of the bare repository points at. */
export function headOf(bare: string, branch = BRANCH): string {
  return git(["--git-dir", bare, "rev-parse", `refs/heads/${branch}`]);
}

/** Commits of `branch` that `main` lacks. */
export function commitsAhead(bare: string, branch = BRANCH): number {
  return Number(git(["--git-dir", bare, "rev-list", "--count", `main..${branch}`]));
}

/** Files of a branch of the bare repository. */
export function filesOn(bare: string, branch = BRANCH): string[] {
  return git(["--git-dir", bare, "ls-tree", "-r", "--name-only", `refs/heads/${branch}`])
    .split("\n")
    .filter(Boolean);
}
