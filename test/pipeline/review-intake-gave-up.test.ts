import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { ensureComment } from "../../src/adapters/github/outbound/ensure.js";
import type { IntakePayload } from "../../src/domain/jobs.js";
import { type IntakeJob, runIntakeJob } from "../../src/pipeline/intake.js";
import type { PipelineDeps } from "../../src/pipeline/pipeline-deps.js";
import { INTAKE_MAX_WAITS } from "../../src/pipeline/wait-for-issue-work.js";
import type { CommentData, GitHubPort } from "../../src/ports/github.js";
import { createTestDatabase, insertTask, type TestDatabase } from "../helpers/db.js";

const BOT = "mission-control[bot]";
const PR = 12;
const PR_URL = "https://ghe.example.test/octo-org/octo-repo/pull/12";
const REVIEW_ID = 555;

/** The GitHub calls a review intake makes, on an in-memory pull request; `ensureComment` is the real one. */
function fakeGitHub() {
  const comments: CommentData[] = [];
  const created: Array<{ issueNumber: number; body: string }> = [];
  let nextId = 1;
  const port = {
    getBotIdentity: async () => ({ login: BOT, id: 1 }),
    getRepositoryPermission: async () => ({ permission: "write", roleName: "write" }),
    listIssueComments: async () => comments.map((c) => ({ ...c })),
    createComment: async (issueNumber: number, body: string) => {
      created.push({ issueNumber, body });
      const comment = { id: nextId++, body, author: BOT } as CommentData;
      comments.push(comment);
      return comment;
    },
    updateComment: async (id: number, body: string) => {
      const comment = comments.find((c) => c.id === id)!;
      comment.body = body;
      return comment;
    },
    ensureComment: (input: Parameters<GitHubPort["ensureComment"]>[0]) => ensureComment(port as unknown as GitHubPort, input),
  };
  return { port: port as unknown as GitHubPort, comments, created };
}

let testDb: TestDatabase;
beforeEach(async () => {
  testDb = await createTestDatabase();
});
afterEach(async () => {
  await testDb.cleanup();
});

let jobIds = 0;

/** A claimed intake job of `payload` for `taskId`, as the worker hands it over. */
function intakeJob(taskId: number, payload: IntakePayload, deliveryId: string): IntakeJob {
  return {
    id: String(++jobIds),
    kind: "intake",
    task_id: taskId,
    installation_id: 1,
    lock_key: "issue:octo-org/octo-repo#7",
    dedupe_key: `delivery:${deliveryId}:intake`,
    delivery_id: deliveryId,
    payload: JSON.stringify(payload),
    attempts: 1,
    max_attempts: 3,
    created_at: Date.now(),
    data: { kind: "intake", payload },
  };
}

function reviewPayload(waits: number): IntakePayload {
  return {
    event: "review",
    subject: { owner: "octo-org", repo: "octo-repo", number: PR, cloneUrl: "https://github.com/octo-org/octo-repo.git", defaultBranch: "main" },
    sender: { login: "maintainer", id: 77 },
    state: "commented",
    reviewId: REVIEW_ID,
    waits,
  };
}

async function jobs() {
  return testDb.db.selectFrom("jobs").select(["kind", "dedupe_key", "payload"]).execute();
}

describe("a review intake that waited for the issue's work too often", () => {
  it("posts one comment on the pull request, pinging no one, and queues nothing; a redelivery posts no second comment", async () => {
    const github = fakeGitHub();
    const deps = { db: testDb.db, github: async () => github.port, maxAttempts: 3 } as unknown as PipelineDeps;
    const taskId = await insertTask(testDb.db, { issue_number: 7, stage: "coding", pr_number: PR, pr_url: PR_URL });
    const log = pino({ level: "silent" });

    await runIntakeJob(deps, intakeJob(taskId, reviewPayload(INTAKE_MAX_WAITS), "d-1"), log);

    expect(github.created).toHaveLength(1);
    const { issueNumber, body } = github.created[0]!;
    expect(issueNumber).toBe(PR);
    expect(body.startsWith(`<!-- mission-control:review-gave-up:${REVIEW_ID} -->\n`)).toBe(true);
    expect(body).toContain(`[your review](${PR_URL}#pullrequestreview-${REVIEW_ID})`);
    expect(body).toContain("busy");
    expect(body).toContain("`/code <instructions>`");
    expect(body).not.toContain("@");
    expect(await jobs()).toEqual([]);

    // The same review's last wait again (a redelivered inline comment's chain, or a retry): no second comment.
    await runIntakeJob(deps, intakeJob(taskId, reviewPayload(INTAKE_MAX_WAITS), "d-2"), log);
    expect(github.created).toHaveLength(1);
    expect(github.comments).toHaveLength(1);
    expect(github.comments[0]!.body).toBe(body);
    expect(await jobs()).toEqual([]);
  });

  it("before the last wait, waits again and posts nothing; without the pull request's address it says `your review`", async () => {
    const github = fakeGitHub();
    const deps = { db: testDb.db, github: async () => github.port, maxAttempts: 3 } as unknown as PipelineDeps;
    const taskId = await insertTask(testDb.db, { issue_number: 7, stage: "planning", pr_number: PR, pr_url: null });
    const log = pino({ level: "silent" });

    await runIntakeJob(deps, intakeJob(taskId, reviewPayload(INTAKE_MAX_WAITS - 1), "d-1"), log);
    expect(github.created).toEqual([]);
    const queued = await jobs();
    expect(queued).toEqual([expect.objectContaining({ kind: "intake", dedupe_key: expect.stringContaining(`:${REVIEW_ID}:${INTAKE_MAX_WAITS}`) })]);
    expect(JSON.parse(queued[0]!.payload)).toMatchObject({ event: "review", reviewId: REVIEW_ID, waits: INTAKE_MAX_WAITS });

    await runIntakeJob(deps, intakeJob(taskId, JSON.parse(queued[0]!.payload) as IntakePayload, "d-1"), log);
    expect(github.created).toHaveLength(1);
    expect(github.created[0]!.body).toContain("Mission Control could not take up your review:");
    expect(github.created[0]!.body).not.toContain("](");
    expect(await jobs()).toHaveLength(1);
  });
});
