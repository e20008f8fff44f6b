import { sql } from "kysely";

import type { Db, DbOrTrx } from "./db.js";
import { ADVISORY_LOCKS, isPostgres } from "./dialect.js";
import type { Job, JobState } from "./schema.js";
import type { JobKind } from "../domain/jobs.js";

export type { DbOrTrx };

/** What a caller gives to put a job on the queue. */
export interface JobSpec {
  kind: JobKind;
  /** `null` for an `intake` job, which runs before its task exists. */
  taskId: number | null;
  installationId: number;
  /** `owner/repo#number`: jobs with the same key never run at the same time. */
  lockKey: string;
  /** A second enqueue with the same key is a no-op (webhook redelivery, a stage retried). */
  dedupeKey: string;
  deliveryId?: string | null;
  payload?: unknown;
  maxAttempts: number;
  /** Epoch ms; defaults to now. */
  runAfter?: number;
}

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

/** Which kinds of job a worker claims: only these, or all but these (default: every kind). */
export interface JobLane {
  only?: readonly JobKind[];
  except?: readonly JobKind[];
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
           attempts = attempts + 1, updated_at = ${now}
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
  // SQLite runs the statement under its single write lock. PostgreSQL (READ COMMITTED) would let
  // two claimers pick the same row, or two rows of one lock key, from the same snapshot: claims
  // take turns under a transaction-scoped advisory lock, each seeing every claim committed
  // before it. (The pg-boss queue of issue 11 replaces this.)
  const result = isPostgres(db)
    ? await db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(${ADVISORY_LOCKS.jobClaims})`.execute(trx);
        return claim(trx);
      })
    : await claim(db);
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
