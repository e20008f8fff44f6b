import type { Db, DbOrTrx } from "./db.js";
import { isPostgres } from "./dialect.js";
import { sqliteJobQueue } from "./jobs.js";
import type { JobKind } from "../domain/jobs.js";

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

/** Which kinds of job a worker claims: only these, or all but these (default: every kind). */
export interface JobLane {
  only?: readonly JobKind[];
  except?: readonly JobKind[];
}

/** The states a job is reported in, on either backend. */
export type QueueJobState = "queued" | "running" | "succeeded" | "failed" | "cancelled";

/**
 * A claimed job, the same shape on both backends. `id` is the SQLite row id as text, or the
 * pg-boss job id (a uuid).
 */
export interface QueuedJob {
  id: string;
  kind: JobKind;
  task_id: number | null;
  installation_id: number;
  lock_key: string;
  dedupe_key: string;
  delivery_id: string | null;
  /** The payload as JSON text, parsed by `domain/jobs.ts` when the worker runs it. */
  payload: string;
  /** Attempts so far, including the one just claimed. */
  attempts: number;
  max_attempts: number;
  /** Epoch ms. */
  created_at: number;
  /** pg-boss's `retry_count` at the claim: the attempt fence of every later call on it (PostgreSQL only). */
  fence?: number;
  /**
   * Times this job was taken over after its lease (SQLite) or heartbeat (pg-boss) lapsed — its
   * worker died or hung — this claim included; retries after an error and hand-backs at
   * shutdown do not count. More than one means the job is stuck (a notification says so).
   */
  takeovers?: number;
}

/** A task's job that is waiting or running, for `/status`. */
export interface LiveJob {
  id: string;
  kind: JobKind;
  state: "queued" | "running";
  attempts: number;
  /** Epoch ms of the last change (claim or enqueue). */
  updated_at: number;
}

/**
 * The durable job queue: the SQLite `jobs` table (`jobs.ts`), or pg-boss on PostgreSQL
 * (`pg-queue.ts`). Every write takes the store transaction it belongs to, so a job is enqueued,
 * completed or cancelled atomically with the rows that go with it. Calls that settle a claimed
 * job are fenced: they do nothing and return `false` when `owner` no longer holds it (its
 * lease or heartbeat lapsed and another worker took it, or it was cancelled).
 */
export interface JobQueue {
  readonly backend: "sqlite" | "postgres";
  /** @returns the new job's id, or `null` when the dedupe key was already taken */
  enqueue(trx: DbOrTrx, spec: JobSpec, now?: number): Promise<string | null>;
  /** Claims the next runnable job of `lane` whose lock key no running job holds. */
  claim(db: Db, owner: string, leaseMs: number, lane: JobLane, now?: number): Promise<QueuedJob | undefined>;
  /** Renews the claim. @returns `false` when it was lost (taken over or cancelled) */
  heartbeat(db: Db, job: QueuedJob, owner: string, leaseMs: number): Promise<boolean>;
  complete(trx: DbOrTrx, job: QueuedJob, owner: string): Promise<boolean>;
  /** Puts the job back to run again at `runAfter` (epoch ms), counting this attempt. */
  retry(trx: DbOrTrx, job: QueuedJob, owner: string, runAfter: number, error: string): Promise<boolean>;
  /** Fails the job for good, whatever attempts it has left. */
  fail(trx: DbOrTrx, job: QueuedJob, owner: string, error: string): Promise<boolean>;
  /** Hands a running job back at shutdown, so another worker resumes it at once. */
  release(db: Db, job: QueuedJob, owner: string): Promise<boolean>;
  /** Cancels the task's queued and running stage jobs (not commands or intake), except `exceptJobId`. */
  cancelTaskJobs(trx: DbOrTrx, taskId: number, exceptJobId?: string, now?: number): Promise<number>;
  liveJobsOfTask(db: DbOrTrx, taskId: number): Promise<LiveJob[]>;
  /** `true` when delivery `deliveryId` already enqueued a job of `kind`. */
  jobExistsForDelivery(trx: DbOrTrx, deliveryId: string, kind: JobKind): Promise<boolean>;
  /** `true` while delivery `deliveryId`'s intake job is queued or running. */
  intakePending(db: DbOrTrx, deliveryId: string): Promise<boolean>;
  /** Jobs waiting or running, counted in the shared database. */
  depth(db: Db): Promise<{ queued: number; running: number }>;
  countsByState(db: DbOrTrx): Promise<Array<{ state: QueueJobState; count: number }>>;
}

/** Handles (databases and their open transactions) → the PostgreSQL queue they enqueue on. */
const attached = new WeakMap<object, JobQueue>();

/**
 * Makes `queue` the job queue of PostgreSQL handle `db` (done once by `openStore`).
 */
export function attachQueue(db: Db, queue: JobQueue): void {
  attached.set(db, queue);
}

/** Called by `inTransaction`: a transaction enqueues on its database's queue. */
export function inheritQueue(db: DbOrTrx, trx: DbOrTrx): void {
  const queue = attached.get(db);
  if (queue) attached.set(trx, queue);
}

/**
 * The job queue behind a database handle or transaction: the `jobs` table on SQLite, the
 * pg-boss queue attached to a PostgreSQL database.
 *
 * @throws {Error} for a PostgreSQL handle without a queue (opened without `openStore`)
 */
export function queueOf(db: DbOrTrx): JobQueue {
  const queue = attached.get(db);
  if (queue) return queue;
  if (isPostgres(db)) throw new Error("this PostgreSQL database has no job queue attached: open it with openStore()");
  return sqliteJobQueue;
}

/**
 * Enqueues a job on the queue of `trx` (in that transaction), unless its dedupe key was taken.
 *
 * @returns the new job's id, or `null` for a duplicate
 */
export function enqueueJob(trx: DbOrTrx, spec: JobSpec, now?: number): Promise<string | null> {
  return queueOf(trx).enqueue(trx, spec, now);
}

/**
 * Cancels the task's queued and running stage jobs (not commands or intake) on whichever worker
 * or replica holds them: a running job's worker sees it at its next heartbeat and aborts
 * without further effects.
 *
 * @returns how many jobs were cancelled
 */
export function cancelTaskJobs(trx: DbOrTrx, taskId: number, exceptJobId?: string, now?: number): Promise<number> {
  return queueOf(trx).cancelTaskJobs(trx, taskId, exceptJobId, now);
}

/** A task's queued and running jobs, oldest first (for `/status`). */
export function liveJobsOfTask(db: DbOrTrx, taskId: number): Promise<LiveJob[]> {
  return queueOf(db).liveJobsOfTask(db, taskId);
}

/** `true` when delivery `deliveryId` already enqueued a job of `kind` (an intake retried after it did its work). */
export function jobExistsForDelivery(trx: DbOrTrx, deliveryId: string, kind: JobKind): Promise<boolean> {
  return queueOf(trx).jobExistsForDelivery(trx, deliveryId, kind);
}

/** `true` while delivery `deliveryId`'s intake job is queued or running (test harnesses wait on it). */
export function intakePending(db: DbOrTrx, deliveryId: string): Promise<boolean> {
  return queueOf(db).intakePending(db, deliveryId);
}

/** Jobs waiting or running in the shared database, for `/healthz`. */
export function queueDepth(db: Db): Promise<{ queued: number; running: number }> {
  return queueOf(db).depth(db);
}

/** How many jobs are in each state (for `/metrics`). */
export function jobCountsByState(db: DbOrTrx): Promise<Array<{ state: QueueJobState; count: number }>> {
  return queueOf(db).countsByState(db);
}
