import { expect, it } from "vitest";

import type { Db } from "../../../src/store/db.js";
import {
  cancelTaskJobs,
  claimJob,
  completeJob,
  enqueueJob,
  failJob,
  type JobSpec,
  queueDepth,
  releaseJob,
  renewLease,
  scheduleRetry,
} from "../../../src/store/jobs.js";
import { insertTask } from "../../helpers/db.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

const LEASE_MS = 60_000;
const T0 = 1_800_000_000_000;

function spec(taskId: number | null, overrides: Partial<JobSpec> = {}): JobSpec {
  return { kind: "plan", taskId, installationId: 98_765_432_101, lockKey: "octo/repo#1", dedupeKey: `dedupe-${Math.random()}`, maxAttempts: 3, ...overrides };
}

async function jobRow(db: Db, id: number) {
  return db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
}

describeStoreContract("job queue", (getDb, backend) => {
  it("enqueues once per dedupe key; an intake job has no task", async () => {
    const db = getDb();
    const taskId = await insertTask(db);
    const id = await enqueueJob(db, spec(taskId, { dedupeKey: "d-1", deliveryId: "delivery-1", payload: { a: 1 } }), T0);
    expect(id).toEqual(expect.any(Number));
    expect(await enqueueJob(db, spec(taskId, { dedupeKey: "d-1" }), T0)).toBeNull();
    expect(await enqueueJob(db, spec(null, { kind: "intake", dedupeKey: "intake-1" }), T0)).toEqual(expect.any(Number));
    expect(await jobRow(db, id ?? -1)).toMatchObject({
      state: "queued",
      attempts: 0,
      run_after: T0,
      created_at: T0,
      payload: '{"a":1}',
      installation_id: 98_765_432_101,
    });
    expect(await queueDepth(db)).toEqual({ queued: 2, running: 0 });
  });

  it("claims with a lease, honours run_after, and fences the previous owner after expiry", async () => {
    const db = getDb();
    const id = await enqueueJob(db, spec(null, { runAfter: T0 + 10 }), T0);
    expect(await claimJob(db, "a", 1_000, T0)).toBeUndefined();
    const job = await claimJob(db, "a", 1_000, T0 + 10);
    expect(job).toMatchObject({ id, state: "running", attempts: 1, lease_owner: "a", lease_expires_at: T0 + 1_010 });
    expect(await claimJob(db, "b", 1_000, T0 + 1_010)).toBeUndefined();
    expect(await renewLease(db, id ?? -1, "a", 1_000, T0 + 500)).toBe(true);
    const taken = await claimJob(db, "b", 1_000, T0 + 1_501);
    expect(taken).toMatchObject({ id, attempts: 2, lease_owner: "b" });
    expect(await completeJob(db, id ?? -1, "a", T0 + 1_600)).toBe(false);
    expect(await renewLease(db, id ?? -1, "a", 1_000, T0 + 1_600)).toBe(false);
    expect(await completeJob(db, id ?? -1, "b", T0 + 1_600)).toBe(true);
    expect(await jobRow(db, id ?? -1)).toMatchObject({ state: "succeeded", finished_at: T0 + 1_600, lease_owner: null });
  });

  it("one running job per lock key, without blocking other keys", async () => {
    const db = getDb();
    const first = await enqueueJob(db, spec(null, { lockKey: "r#1" }), T0);
    const second = await enqueueJob(db, spec(null, { lockKey: "r#1" }), T0);
    const other = await enqueueJob(db, spec(null, { lockKey: "r#2" }), T0);
    expect((await claimJob(db, "a", LEASE_MS, T0))?.id).toBe(first);
    expect((await claimJob(db, "b", LEASE_MS, T0 + 1))?.id).toBe(other);
    expect(await claimJob(db, "c", LEASE_MS, T0 + 2)).toBeUndefined();
    expect(await completeJob(db, first ?? -1, "a", T0 + 3)).toBe(true);
    expect((await claimJob(db, "c", LEASE_MS, T0 + 4))?.id).toBe(second);
  });

  it("retry, fail, release and cancel", async () => {
    const db = getDb();
    const taskId = await insertTask(db);
    const id = (await enqueueJob(db, spec(taskId, { lockKey: "k1" }), T0)) ?? -1;
    await claimJob(db, "a", LEASE_MS, T0);
    expect(await scheduleRetry(db, id, "a", T0 + 5_000, "boom", T0 + 1)).toBe(true);
    expect(await jobRow(db, id)).toMatchObject({ state: "queued", run_after: T0 + 5_000, last_error: "boom", attempts: 1 });
    await claimJob(db, "a", LEASE_MS, T0 + 5_000);
    expect(await releaseJob(db, id, "a", T0 + 5_001)).toBe(true);
    expect((await jobRow(db, id)).attempts).toBe(1);
    await claimJob(db, "a", LEASE_MS, T0 + 5_002);
    expect(await failJob(db, id, "a", "fatal", T0 + 5_003)).toBe(true);
    expect((await jobRow(db, id)).state).toBe("failed");

    const queued = (await enqueueJob(db, spec(taskId, { lockKey: "k2", kind: "code" }), T0)) ?? -1;
    expect(await cancelTaskJobs(db, taskId, undefined, T0 + 6_000)).toBe(1);
    expect((await jobRow(db, queued)).state).toBe("cancelled");
  });

  it("concurrent claimers over several connections claim each of 30 jobs exactly once", async () => {
    const db = getDb();
    for (let i = 0; i < 30; i++) await enqueueJob(db, spec(null, { lockKey: `r#${i}`, dedupeKey: `job-${i}` }), T0);
    const connections = [db, backend.openConnection(), backend.openConnection()];
    const claimed: number[] = [];
    for (let round = 0; round < 20; round++) {
      const jobs = await Promise.all(Array.from({ length: 12 }, (_, i) => claimJob(connections[i % connections.length] ?? db, `worker-${i}`, LEASE_MS, T0)));
      const got = jobs.flatMap((j) => (j ? [j.id] : []));
      claimed.push(...got);
      if (got.length === 0) break;
    }
    expect(claimed).toHaveLength(30);
    expect(new Set(claimed).size).toBe(30);
  });

  it("concurrent claimers never start two jobs of one lock key", async () => {
    const db = getDb();
    for (let i = 0; i < 10; i++) await enqueueJob(db, spec(null, { lockKey: "same#1", dedupeKey: `same-${i}` }), T0);
    const connections = [db, backend.openConnection(), backend.openConnection()];
    const jobs = await Promise.all(Array.from({ length: 12 }, (_, i) => claimJob(connections[i % connections.length] ?? db, `worker-${i}`, LEASE_MS, T0)));
    expect(jobs.filter(Boolean)).toHaveLength(1);
    expect(await queueDepth(db)).toEqual({ queued: 9, running: 1 });
  });
});
