import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { claimJob, completeJob, enqueueJob, failJob, queueDepth, releaseJob, renewLease, scheduleRetry } from "../../src/store/jobs.js";
import type { JobSpec } from "../../src/store/queue.js";
import { type Db, openDatabase } from "../../src/store/db.js";
import { createTestDatabase, insertTask, type TestDatabase } from "../helpers/db.js";

const LEASE_MS = 60_000;
/** The job's JSON payload. */
const jobPayload = (row: { payload: string }): unknown => JSON.parse(row.payload);

const T0 = 1_800_000_000_000;

let testDb: TestDatabase;
let db: Db;
let taskId: number;

beforeEach(async () => {
  testDb = await createTestDatabase();
  db = testDb.db;
  taskId = await insertTask(db);
});

afterEach(async () => {
  await testDb.cleanup();
});

function spec(overrides: Partial<JobSpec> = {}): JobSpec {
  return {
    kind: "plan",
    taskId,
    installationId: 42,
    lockKey: "octo-org/octo-repo#1",
    dedupeKey: `dedupe-${Math.random()}`,
    maxAttempts: 3,
    ...overrides,
  };
}

async function jobRow(id: number) {
  return db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
}

describe("enqueueJob", () => {
  it("returns the new id and stores the job as queued", async () => {
    const id = await enqueueJob(db, spec({ dedupeKey: "d1", payload: { issue: 7 }, deliveryId: "del-1" }), T0);
    expect(id).toEqual(expect.any(Number));
    const row = await jobRow(id!);
    expect(row).toMatchObject({
      kind: "plan",
      task_id: taskId,
      installation_id: 42,
      lock_key: "octo-org/octo-repo#1",
      dedupe_key: "d1",
      delivery_id: "del-1",
      state: "queued",
      attempts: 0,
      max_attempts: 3,
      run_after: T0,
      created_at: T0,
    });
    expect(jobPayload(row)).toEqual({ issue: 7 });
  });

  it("returns null for a duplicate dedupe key and keeps a single row", async () => {
    const first = await enqueueJob(db, spec({ dedupeKey: "same" }), T0);
    const second = await enqueueJob(db, spec({ dedupeKey: "same", kind: "code" }), T0 + 1);
    expect(first).not.toBeNull();
    expect(second).toBeNull();
    const rows = await db.selectFrom("jobs").selectAll().where("dedupe_key", "=", "same").execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]?.kind).toBe("plan");
  });
});

describe("claimJob", () => {
  it("claims a queued job: running, attempts 1, leased to the owner", async () => {
    const id = await enqueueJob(db, spec(), T0);
    const job = await claimJob(db, "owner-a", LEASE_MS, T0);
    expect(job).toBeDefined();
    expect(job).toMatchObject({ id, state: "running", attempts: 1, lease_owner: "owner-a", lease_expires_at: T0 + LEASE_MS });
    expect(await jobRow(id!)).toMatchObject({ state: "running", attempts: 1, lease_owner: "owner-a" });
    // Nothing else is left to claim.
    expect(await claimJob(db, "owner-b", LEASE_MS, T0)).toBeUndefined();
  });

  it("returns undefined when the queue is empty", async () => {
    expect(await claimJob(db, "owner-a", LEASE_MS, T0)).toBeUndefined();
  });

  it("does not claim a job whose run_after is in the future, and claims it once it has come", async () => {
    const id = await enqueueJob(db, spec({ runAfter: T0 + 10_000 }), T0);
    expect(await claimJob(db, "owner-a", LEASE_MS, T0)).toBeUndefined();
    expect(await claimJob(db, "owner-a", LEASE_MS, T0 + 9_999)).toBeUndefined();
    expect((await jobRow(id!)).state).toBe("queued");
    const job = await claimJob(db, "owner-a", LEASE_MS, T0 + 10_000);
    expect(job?.id).toBe(id);
  });

  it("claims in run_after then id order", async () => {
    const late = await enqueueJob(db, spec({ lockKey: "a", runAfter: T0 + 5 }), T0);
    const early = await enqueueJob(db, spec({ lockKey: "b", runAfter: T0 + 1 }), T0);
    expect((await claimJob(db, "o", LEASE_MS, T0 + 10))?.id).toBe(early);
    expect((await claimJob(db, "o", LEASE_MS, T0 + 10))?.id).toBe(late);
  });

  it("never runs two jobs with the same lock key at once; other keys stay claimable", async () => {
    const first = await enqueueJob(db, spec({ lockKey: "repo#1" }), T0);
    const second = await enqueueJob(db, spec({ lockKey: "repo#1" }), T0);
    const other = await enqueueJob(db, spec({ lockKey: "repo#2" }), T0);

    const a = await claimJob(db, "owner-a", LEASE_MS, T0);
    expect(a?.id).toBe(first);

    // The second job of repo#1 is blocked; the repo#2 job is not.
    const b = await claimJob(db, "owner-b", LEASE_MS, T0 + 1);
    expect(b?.id).toBe(other);
    expect(await claimJob(db, "owner-b", LEASE_MS, T0 + 2)).toBeUndefined();
    expect(await claimJob(db, "owner-c", LEASE_MS, T0 + 3)).toBeUndefined();
    expect((await jobRow(second!)).state).toBe("queued");

    expect(await completeJob(db, first!, "owner-a", T0 + 4)).toBe(true);
    const c = await claimJob(db, "owner-c", LEASE_MS, T0 + 5);
    expect(c?.id).toBe(second);
  });

  it("reclaims a running job whose lease expired, for another owner, counting a second attempt", async () => {
    const id = await enqueueJob(db, spec(), T0);
    const first = await claimJob(db, "owner-a", 1_000, T0);
    expect(first?.attempts).toBe(1);

    // Lease still live (expires at T0 + 1000, inclusive): not claimable.
    expect(await claimJob(db, "owner-b", 1_000, T0 + 1_000)).toBeUndefined();

    const second = await claimJob(db, "owner-b", 1_000, T0 + 1_001);
    expect(second).toMatchObject({ id, attempts: 2, state: "running", lease_owner: "owner-b", lease_expires_at: T0 + 2_001 });

    // The old owner is fenced out.
    expect(await renewLease(db, id!, "owner-a", 1_000, T0 + 1_002)).toBe(false);
    expect(await completeJob(db, id!, "owner-a", T0 + 1_002)).toBe(false);
    expect((await jobRow(id!)).state).toBe("running");
    expect(await completeJob(db, id!, "owner-b", T0 + 1_003)).toBe(true);
  });

  it("an expired lease frees the lock key for the next job of the same key", async () => {
    const first = await enqueueJob(db, spec({ lockKey: "k", runAfter: T0 }), T0);
    const second = await enqueueJob(db, spec({ lockKey: "k", runAfter: T0 + 1 }), T0);
    expect((await claimJob(db, "a", 1_000, T0 + 1))?.id).toBe(first);
    expect(await claimJob(db, "b", 1_000, T0 + 500)).toBeUndefined();
    // After expiry the expired job (earlier run_after) is reclaimed first, then the lock holds again.
    expect((await claimJob(db, "b", 1_000, T0 + 2_000))?.id).toBe(first);
    expect(await claimJob(db, "c", 1_000, T0 + 2_001)).toBeUndefined();
    expect((await jobRow(second!)).state).toBe("queued");
  });
});

describe("renewLease", () => {
  it("extends the lease for the holder only", async () => {
    const id = await enqueueJob(db, spec(), T0);
    await claimJob(db, "owner-a", 1_000, T0);
    expect(await renewLease(db, id!, "owner-a", 1_000, T0 + 900)).toBe(true);
    expect((await jobRow(id!)).lease_expires_at).toBe(T0 + 1_900);
    // Renewed: not reclaimable at the old expiry.
    expect(await claimJob(db, "owner-b", 1_000, T0 + 1_500)).toBeUndefined();
    expect(await renewLease(db, id!, "owner-b", 1_000, T0 + 900)).toBe(false);
  });
});

describe("fencing of completeJob / scheduleRetry / failJob", () => {
  it("completeJob: false for the wrong owner, true for the holder", async () => {
    const id = await enqueueJob(db, spec(), T0);
    await claimJob(db, "owner-a", LEASE_MS, T0);
    expect(await completeJob(db, id!, "intruder", T0 + 1)).toBe(false);
    expect((await jobRow(id!)).state).toBe("running");
    expect(await completeJob(db, id!, "owner-a", T0 + 2)).toBe(true);
    expect(await jobRow(id!)).toMatchObject({ state: "succeeded", lease_owner: null, lease_expires_at: null, finished_at: T0 + 2 });
    // A second completion is refused: the job is no longer running.
    expect(await completeJob(db, id!, "owner-a", T0 + 3)).toBe(false);
  });

  it("scheduleRetry: false for the wrong owner, true for the holder; the job is queued again", async () => {
    const id = await enqueueJob(db, spec(), T0);
    await claimJob(db, "owner-a", LEASE_MS, T0);
    expect(await scheduleRetry(db, id!, "intruder", T0 + 100, "boom", T0 + 1)).toBe(false);
    expect((await jobRow(id!)).state).toBe("running");
    expect(await scheduleRetry(db, id!, "owner-a", T0 + 100, "boom", T0 + 1)).toBe(true);
    expect(await jobRow(id!)).toMatchObject({ state: "queued", run_after: T0 + 100, last_error: "boom", lease_owner: null, attempts: 1 });
    expect(await claimJob(db, "owner-b", LEASE_MS, T0 + 99)).toBeUndefined();
    expect(await claimJob(db, "owner-b", LEASE_MS, T0 + 100)).toMatchObject({ id, attempts: 2 });
  });

  it("failJob: false for the wrong owner, true for the holder", async () => {
    const id = await enqueueJob(db, spec(), T0);
    await claimJob(db, "owner-a", LEASE_MS, T0);
    expect(await failJob(db, id!, "intruder", "nope", T0 + 1)).toBe(false);
    expect((await jobRow(id!)).state).toBe("running");
    expect(await failJob(db, id!, "owner-a", "bad input", T0 + 2)).toBe(true);
    expect(await jobRow(id!)).toMatchObject({ state: "failed", last_error: "bad input", finished_at: T0 + 2, lease_owner: null });
    // A failed job is never claimed again.
    expect(await claimJob(db, "owner-b", LEASE_MS, T0 + LEASE_MS * 2)).toBeUndefined();
  });
});

describe("releaseJob", () => {
  it("puts the job back without counting the attempt, for the holder only", async () => {
    const id = await enqueueJob(db, spec(), T0);
    const claimed = await claimJob(db, "owner-a", LEASE_MS, T0);
    expect(claimed?.attempts).toBe(1);
    expect(await releaseJob(db, id!, "intruder", T0 + 1)).toBe(false);
    expect((await jobRow(id!)).attempts).toBe(1);
    expect(await releaseJob(db, id!, "owner-a", T0 + 1)).toBe(true);
    expect(await jobRow(id!)).toMatchObject({ state: "queued", attempts: 0, lease_owner: null, lease_expires_at: null });
    expect(await claimJob(db, "owner-b", LEASE_MS, T0 + 2)).toMatchObject({ id, attempts: 1 });
  });
});

describe("queueDepth", () => {
  it("counts queued and running jobs only", async () => {
    expect(await queueDepth(db)).toEqual({ queued: 0, running: 0 });
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await enqueueJob(db, spec({ lockKey: `k${i}` }), T0))!);
    expect(await queueDepth(db)).toEqual({ queued: 5, running: 0 });

    const a = await claimJob(db, "o", LEASE_MS, T0);
    const b = await claimJob(db, "o", LEASE_MS, T0);
    const c = await claimJob(db, "o", LEASE_MS, T0);
    expect(await queueDepth(db)).toEqual({ queued: 2, running: 3 });

    await completeJob(db, a!.id, "o", T0);
    await failJob(db, b!.id, "o", "x", T0);
    expect(await queueDepth(db)).toEqual({ queued: 2, running: 1 });
    await scheduleRetry(db, c!.id, "o", T0, "again", T0);
    expect(await queueDepth(db)).toEqual({ queued: 3, running: 0 });
  });
});

describe("two connections on the same file", () => {
  it("claims each of 50 jobs exactly once when two connections claim concurrently", async () => {
    const second = openDatabase(testDb.file);
    try {
      const ids = new Set<number>();
      for (let i = 0; i < 50; i++) {
        const id = await enqueueJob(db, spec({ lockKey: `owner/repo#${i}`, dedupeKey: `job-${i}` }));
        ids.add(id!);
      }
      expect(ids.size).toBe(50);

      const connections: Db[] = [db, second];
      const claimed: number[] = [];
      const byConnection = [0, 0];
      for (let round = 0; round < 100; round++) {
        const results = await Promise.all(
          Array.from({ length: 16 }, (_, i) => {
            const c = i % 2;
            return claimJob(connections[c]!, `process-${c}`, LEASE_MS).then((job) => ({ job, c }));
          }),
        );
        const got = results.filter((r) => r.job !== undefined);
        for (const r of got) {
          claimed.push(r.job!.id);
          byConnection[r.c]! += 1;
        }
        if (got.length === 0) break;
      }

      expect(claimed).toHaveLength(50);
      expect(new Set(claimed).size).toBe(50);
      expect(new Set(claimed)).toEqual(ids);
      // Both "processes" did some of the work.
      expect(byConnection[0]).toBeGreaterThan(0);
      expect(byConnection[1]).toBeGreaterThan(0);

      // The database agrees: every job is running with exactly one attempt.
      const rows = await second.selectFrom("jobs").select(["state", "attempts"]).execute();
      expect(rows).toHaveLength(50);
      expect(rows.every((r) => r.state === "running" && r.attempts === 1)).toBe(true);
    } finally {
      await second.destroy();
    }
  });
});

describe("jobExistsForDelivery", () => {
  it("reads the jobs_delivery index, not the whole table (every triggering delivery asks it)", async () => {
    const { rows } = await sql<{ detail: string }>`explain query plan select id from jobs where delivery_id = ${"d-1"} and kind = ${"plan"} limit 1`.execute(
      db,
    );
    expect(rows.map((r) => r.detail).join("\n")).toMatch(/USING (COVERING )?INDEX jobs_delivery/);
  });
});
