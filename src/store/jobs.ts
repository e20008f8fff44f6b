import { type Kysely, sql } from "kysely";

import type { Db } from "../ledger/db.js";
import type { Database, Job } from "../ledger/schema.js";

/** A database handle or an open transaction. */
export type DbOrTrx = Kysely<Database>;

/** What a caller gives to put a job on the queue. */
export interface JobSpec {
  kind: string;
  taskId: number;
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

/**
 * Atomically claims the next runnable job: a queued job whose `run_after` has come, or a
 * running job whose lease expired (its worker died). A job is skipped while another job with
 * the same `lock_key` holds a live lease. One UPDATE statement, so two workers — in one
 * process or two on the same file — never claim the same job.
 *
 * @param leaseMs - lease length in milliseconds
 * @returns the claimed job (its `attempts` already counts this run), or `undefined`
 */
export async function claimJob(db: Db, owner: string, leaseMs: number, now = Date.now()): Promise<Job | undefined> {
  const result = await sql<Job>`
    UPDATE jobs
       SET state = 'running', lease_owner = ${owner}, lease_expires_at = ${now + leaseMs},
           attempts = attempts + 1, updated_at = ${now}
     WHERE id = (
       SELECT j.id FROM jobs j
        WHERE ((j.state = 'queued' AND j.run_after <= ${now})
            OR (j.state = 'running' AND j.lease_expires_at < ${now}))
          AND NOT EXISTS (
            SELECT 1 FROM jobs r
             WHERE r.lock_key = j.lock_key AND r.id <> j.id
               AND r.state = 'running' AND r.lease_expires_at >= ${now})
        ORDER BY j.run_after, j.id
        LIMIT 1)
    RETURNING *`.execute(db);
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
 * Marks a job succeeded, only if `owner` still holds it (a fencing check).
 *
 * @returns `false` when the lease was lost: the caller must not enqueue follow-up work
 */
export async function completeJob(db: DbOrTrx, jobId: number, owner: string, now = Date.now()): Promise<boolean> {
  const result = await db
    .updateTable("jobs")
    .set({ state: "succeeded", lease_owner: null, lease_expires_at: null, finished_at: now, updated_at: now, last_error: null })
    .where("id", "=", jobId)
    .where("lease_owner", "=", owner)
    .where("state", "=", "running")
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Puts a running job back on the queue to run again at `runAfter` (epoch ms). */
export async function scheduleRetry(
  db: DbOrTrx,
  jobId: number,
  owner: string,
  runAfter: number,
  error: string,
  now = Date.now(),
): Promise<boolean> {
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

/** The job's JSON payload. */
export function jobPayload<T = Record<string, unknown>>(job: Pick<Job, "payload">): T {
  return JSON.parse(job.payload) as T;
}
