import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { parseNotificationsConfig } from "../../src/config/notifications.js";
import { parseJobData } from "../../src/domain/jobs.js";
import { Notifier } from "../../src/pipeline/notifications.js";
import type { Db } from "../../src/store/db.js";
import { enqueueJob, type QueuedJob, queueOf } from "../../src/store/queue.js";
import { Worker } from "../../src/worker/worker.js";
import { createTestDatabase, insertTask, type TestDatabase } from "../helpers/db.js";

const log = pino({ level: "silent" });
let testDb: TestDatabase;
let db: Db;
let worker: Worker | undefined;

beforeEach(async () => {
  testDb = await createTestDatabase();
  db = testDb.db;
});

afterEach(async () => {
  await worker?.stop(5_000);
  worker = undefined;
  await testDb.cleanup();
});

/** Claims the job with a 1 ms lease and lets the lease lapse: a worker that died holding it. */
async function dieHolding(): Promise<void> {
  expect(await queueOf(db).claim(db, "dead-worker", 1, {})).toBeDefined();
  // The lease is 1 ms: a few ms later it has lapsed (the next claim's `now` is past it).
  await new Promise((resolve) => setTimeout(resolve, 5));
}

/** One worker slot polling every 20 ms, a 5 s lease and 10 ms retries (tests add `run` and `onJobStuck`). */
function fastWorker() {
  return { db, log, onFailed: () => Promise.resolve(), concurrency: 1, pollMs: 20, leaseMs: 5_000, retryBaseMs: 10, retryMaxMs: 10 };
}

describe("a job taken over more than once", () => {
  it("is reported once to onJobStuck, which enqueues one job_stuck notification", async () => {
    const taskId = await insertTask(db, { owner: "octo-org", repo: "widgets", issue_number: 7 });
    await enqueueJob(db, { kind: "plan", taskId, installationId: 1, lockKey: "octo-org/widgets#7", dedupeKey: "plan-1", maxAttempts: 9 });
    await dieHolding();
    await dieHolding();

    const notifier = new Notifier({
      config: parseNotificationsConfig(
        { channels: { oncall: { type: "webhook", url: "https://h.example.test", secret: "s" } }, routes: { job_stuck: ["oncall"] } },
        {},
      ),
      channels: new Map(),
      githubWebUrl: "https://github.com",
      log,
    });
    const stuck: QueuedJob[] = [];
    let ran = 0;
    worker = new Worker({
      ...fastWorker(),
      run: () => {
        ran += 1;
        return Promise.resolve({});
      },
      lane: { except: ["notify"] },
      onJobStuck: async (job) => {
        stuck.push(job);
        await notifier.jobStuck(db, job);
        await notifier.jobStuck(db, job); // a second report of the same job is a no-op (dedupe key)
      },
    });
    worker.start();
    await vi.waitFor(
      async () => expect(await db.selectFrom("jobs").select("state").where("kind", "=", "plan").executeTakeFirstOrThrow()).toEqual({ state: "succeeded" }),
      {
        timeout: 5_000,
        interval: 20,
      },
    );
    expect(ran).toBe(1);
    await vi.waitFor(() => expect(stuck).toHaveLength(1));
    expect(stuck[0]).toMatchObject({ kind: "plan", takeovers: 2, attempts: 3 });
    await vi.waitFor(async () => expect(await db.selectFrom("jobs").select(["dedupe_key", "payload"]).where("kind", "=", "notify").execute()).toHaveLength(1));
    const [row] = await db.selectFrom("jobs").select(["dedupe_key", "payload"]).where("kind", "=", "notify").execute();
    expect(row?.dedupe_key).toMatch(/^notify:job-stuck:\d+:oncall$/);
    expect(parseJobData("notify", row?.payload ?? "")).toMatchObject({
      payload: { event: { type: "job_stuck", jobKind: "plan", takeovers: 2, subject: { repository: "octo-org/widgets", issueNumber: 7 } } },
    });
  });

  it("one takeover is not stuck", async () => {
    await enqueueJob(db, { kind: "plan", taskId: null, installationId: 1, lockKey: "r#1", dedupeKey: "plan-2", maxAttempts: 9 });
    await dieHolding();
    const stuck: QueuedJob[] = [];
    worker = new Worker({
      ...fastWorker(),
      run: () => Promise.resolve({}),
      onJobStuck: (job) => Promise.resolve(void stuck.push(job)),
    });
    worker.start();
    await vi.waitFor(async () => expect(await db.selectFrom("jobs").select("state").executeTakeFirstOrThrow()).toEqual({ state: "succeeded" }), {
      timeout: 5_000,
      interval: 20,
    });
    expect(stuck).toEqual([]);
  });
});
