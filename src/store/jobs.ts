/**
 * The embedded backend's job queue: the SQLite `jobs` table. (On PostgreSQL the queue is
 * pg-boss, `pg-queue.ts`; both implement {@link JobQueue}, reached through `queueOf`.)
 */
import { sql } from "kysely";

import type { Db, DbOrTrx } from "./db.js";
import type { JobQueue, JobLane, JobSpec, LiveJob, QueuedJob } from "./queue.js";
import type { Job, JobState } from "./schema.js";
import type { JobKind } from "../domain/jobs.js";

/**
 * Inserts a job unless one with the same `dedupeKey` exists.
 *
 * @returns the new job's id, or `null` when the dedupe key was already taken
 */
export async function enqueueJob(db: DbOrTrx, spec: JobSpec, now = Date.now()): Promise<number | null> {
  const inserted = await db
    .insertInto("jobs")
    .values({
      kind: spec.kind,
      task_id: spec.taskId,
      installation_id: spec.installationId,
      lock_key: spec.lockKey,
      dedupe_key: spec.dedupeKey,
      delivery_id: spec.deliveryId ?? null,
      payload: JSON.stringify(spec.payload ?? {}),
      state: "queued",
      attempts: 0,
      max_attempts: spec.maxAttempts,
      run_after: spec.runAfter ?? now,
      created_at: now,
      updated_at: now,
    })
    .onConflict((oc) => oc.column("dedupe_key").doNothing())
    .returning("id")
    .executeTakeFirst();
  return inserted?.id ?? null;
}

/** The payload field where a SQLite job counts its takeovers (see `QueuedJob.takeovers`). */
export const TAKEOVERS_FIELD = "__takeovers";

/** Takeovers counted in a SQLite job's payload. */
function takeoversOf(payload: string): number {
  if (!payload.includes(TAKEOVERS_FIELD)) return 0;
  try {
    const value = (JSON.parse(payload) as Record<string, unknown>)[TAKEOVERS_FIELD];
    return typeof value === "number" ? value : 0;
  } catch {
    return 0;
  }
}

/**
 * Atomically claims the next runnable job: a queued job whose `run_after` has come, or a
 * running job whose lease expired (its worker died). A job is skipped while another job with
 * the same `lock_key` holds a live lease. One UPDATE statement, so two workers — in one
 * process or two on the same file — never claim the same job.
 *
 * @param leaseMs - lease length in milliseconds
 * @param lane - the kinds this worker claims (the intake lane, or everything else)
 * @returns the claimed job (its `attempts` already counts this run), or `undefined`
 */
export async function claimJob(db: Db, owner: string, leaseMs: number, now = Date.now(), lane: JobLane = {}): Promise<Job | undefined> {
  const kinds = lane.only ? sql`AND j.kind IN (${sql.join(lane.only)})` : lane.except ? sql`AND j.kind NOT IN (${sql.join(lane.except)})` : sql``;
  const claim = (q: DbOrTrx) =>
    sql<Job>`
    UPDATE jobs
       SET state = 'running', lease_owner = ${owner}, lease_expires_at = ${now + leaseMs},
           attempts = attempts + 1, updated_at = ${now},
           -- a running row with a lapsed lease is a takeover: counted in the payload (the job schemas ignore the field)
           payload = CASE WHEN state = 'running'
                          THEN json_set(payload, '$.${sql.raw(TAKEOVERS_FIELD)}', COALESCE(json_extract(payload, '$.${sql.raw(TAKEOVERS_FIELD)}'), 0) + 1)
                          ELSE payload END
     WHERE id = (
       SELECT j.id FROM jobs j
        WHERE ((j.state = 'queued' AND j.run_after <= ${now})
            OR (j.state = 'running' AND j.lease_expires_at < ${now}))
          ${kinds}
          AND NOT EXISTS (
            SELECT 1 FROM jobs r
             WHERE r.lock_key = j.lock_key AND r.id <> j.id
               AND r.state = 'running' AND r.lease_expires_at >= ${now})
        ORDER BY j.run_after, j.id
        LIMIT 1)
    RETURNING *`.execute(q);
  // SQLite runs the statement under its single write lock: two claimers never see the same row.
  const result = await claim(db);
  return result.rows[0];
}

/**
 * Extends a running job's lease.
 *
 * @returns `false` when this owner no longer holds the job (the lease expired and another worker took it)
 */
export async function renewLease(db: Db, jobId: number, owner: string, leaseMs: number, now = Date.now()): Promise<boolean> {
  const result = await db
    .updateTable("jobs")
    .set({ lease_expires_at: now + leaseMs, updated_at: now })
    .where("id", "=", jobId)
    .where("lease_owner", "=", owner)
    .where("state", "=", "running")
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/**
 * Marks a job succeeded, only if `owner` still holds it (a fencing check). A succeeded `intake`
 * job is deleted instead: it leaves the delivery's record and the work it enqueued, so the
 * queue holds work, not webhook bookkeeping.
 *
 * @returns `false` when the lease was lost: the caller must not enqueue follow-up work
 */
export async function completeJob(db: DbOrTrx, jobId: number, owner: string, now = Date.now()): Promise<boolean> {
  const done = await db
    .updateTable("jobs")
    .set({ state: "succeeded", lease_owner: null, lease_expires_at: null, finished_at: now, updated_at: now, last_error: null })
    .where("id", "=", jobId)
    .where("lease_owner", "=", owner)
    .where("state", "=", "running")
    .returning("kind")
    .executeTakeFirst();
  if (done?.kind === "intake") await db.deleteFrom("jobs").where("id", "=", jobId).execute();
  return done !== undefined;
}

/** `true` while delivery `deliveryId`'s intake job is queued or running (test harnesses wait on it). */
export async function intakePending(db: DbOrTrx, deliveryId: string): Promise<boolean> {
  const row = await db
    .selectFrom("jobs")
    .select("id")
    .where("delivery_id", "=", deliveryId)
    .where("kind", "=", "intake")
    .where("state", "in", ["queued", "running"])
    .executeTakeFirst();
  return row !== undefined;
}

/** Puts a running job back on the queue to run again at `runAfter` (epoch ms). */
export async function scheduleRetry(db: DbOrTrx, jobId: number, owner: string, runAfter: number, error: string, now = Date.now()): Promise<boolean> {
  const result = await db
    .updateTable("jobs")
    .set({ state: "queued", lease_owner: null, lease_expires_at: null, run_after: runAfter, last_error: error, updated_at: now })
    .where("id", "=", jobId)
    .where("lease_owner", "=", owner)
    .where("state", "=", "running")
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Marks a running job failed for good. */
export async function failJob(db: DbOrTrx, jobId: number, owner: string, error: string, now = Date.now()): Promise<boolean> {
  const result = await db
    .updateTable("jobs")
    .set({ state: "failed", lease_owner: null, lease_expires_at: null, last_error: error, finished_at: now, updated_at: now })
    .where("id", "=", jobId)
    .where("lease_owner", "=", owner)
    .where("state", "=", "running")
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/**
 * Gives a running job back to the queue without counting the attempt (graceful shutdown).
 */
export async function releaseJob(db: Db, jobId: number, owner: string, now = Date.now()): Promise<boolean> {
  const result = await db
    .updateTable("jobs")
    .set((eb) => ({
      state: "queued",
      lease_owner: null,
      lease_expires_at: null,
      attempts: eb("attempts", "-", 1),
      updated_at: now,
    }))
    .where("id", "=", jobId)
    .where("lease_owner", "=", owner)
    .where("state", "=", "running")
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Jobs waiting or running, for `/healthz`. */
export async function queueDepth(db: Db): Promise<{ queued: number; running: number }> {
  const rows = await db
    .selectFrom("jobs")
    .where("state", "in", ["queued", "running"])
    .select(["state", (eb) => eb.fn.countAll<number>().as("n")])
    .groupBy("state")
    .execute();
  const count = (state: string) => Number(rows.find((r) => r.state === state)?.n ?? 0);
  return { queued: count("queued"), running: count("running") };
}

/**
 * Marks the task's queued and running jobs (other than `exceptJobId`, commands and intake) cancelled. A running job's worker sees it at its next lease renewal and aborts without
 * further effects.
 *
 * @returns how many jobs were cancelled
 */
export async function cancelTaskJobs(db: DbOrTrx, taskId: number, exceptJobId?: number, now = Date.now()): Promise<number> {
  const result = await db
    .updateTable("jobs")
    .set({ state: "cancelled", finished_at: now, updated_at: now, last_error: "cancelled" })
    .where("task_id", "=", taskId)
    .where("state", "in", ["queued", "running"])
    .where("kind", "not in", ["command", "intake"])
    .$if(exceptJobId !== undefined, (qb) => qb.where("id", "!=", exceptJobId ?? -1))
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** A task's queued and running jobs, oldest first (for `/status`). */
export async function liveJobsOfTask(db: DbOrTrx, taskId: number): Promise<Array<Pick<Job, "id" | "kind" | "state" | "attempts" | "updated_at">>> {
  return db
    .selectFrom("jobs")
    .select(["id", "kind", "state", "attempts", "updated_at"])
    .where("task_id", "=", taskId)
    .where("state", "in", ["queued", "running"])
    .orderBy("id")
    .execute();
}

/** How many jobs are in each state (for `/metrics`). */
export async function jobCountsByState(db: DbOrTrx): Promise<Array<{ state: JobState; count: number }>> {
  const rows = await db
    .selectFrom("jobs")
    .select(["state", (eb) => eb.fn.countAll<number>().as("n")])
    .groupBy("state")
    .execute();
  return rows.map((r) => ({ state: r.state, count: Number(r.n) }));
}

/** `true` when delivery `deliveryId` already enqueued a job of `kind` (an intake retried after it did its work). */
export async function jobExistsForDelivery(db: DbOrTrx, deliveryId: string, kind: JobKind): Promise<boolean> {
  return Boolean(await db.selectFrom("jobs").select("id").where("delivery_id", "=", deliveryId).where("kind", "=", kind).executeTakeFirst());
}

function toQueuedJob(job: Job): QueuedJob {
  return {
    id: String(job.id),
    kind: job.kind,
    task_id: job.task_id,
    installation_id: job.installation_id,
    lock_key: job.lock_key,
    dedupe_key: job.dedupe_key,
    delivery_id: job.delivery_id,
    payload: job.payload,
    attempts: job.attempts,
    max_attempts: job.max_attempts,
    created_at: job.created_at,
    takeovers: takeoversOf(job.payload),
  };
}

/** The SQLite `jobs` table as a {@link JobQueue}: leases renewed by the worker's heartbeat. */
export const sqliteJobQueue: JobQueue = {
  backend: "sqlite",
  async enqueue(trx, spec, now) {
    const id = await enqueueJob(trx, spec, now);
    return id === null ? null : String(id);
  },
  async claim(db, owner, leaseMs, lane, now = Date.now()) {
    const job = await claimJob(db, owner, leaseMs, now, lane);
    return job && toQueuedJob(job);
  },
  heartbeat: (db, job, owner, leaseMs) => renewLease(db, Number(job.id), owner, leaseMs),
  complete: (trx, job, owner) => completeJob(trx, Number(job.id), owner),
  retry: (trx, job, owner, runAfter, error) => scheduleRetry(trx, Number(job.id), owner, runAfter, error),
  fail: (trx, job, owner, error) => failJob(trx, Number(job.id), owner, error),
  release: (db, job, owner) => releaseJob(db, Number(job.id), owner),
  cancelTaskJobs: (trx, taskId, exceptJobId, now) => cancelTaskJobs(trx, taskId, exceptJobId === undefined ? undefined : Number(exceptJobId), now),
  async liveJobsOfTask(db, taskId): Promise<LiveJob[]> {
    const rows = await liveJobsOfTask(db, taskId);
    return rows.map((r) => ({ ...r, id: String(r.id), state: r.state === "running" ? "running" : "queued" }));
  },
  jobExistsForDelivery,
  intakePending,
  depth: queueDepth,
  countsByState: jobCountsByState,
};
