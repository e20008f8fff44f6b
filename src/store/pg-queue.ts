/**
 * The job queue of the PostgreSQL mode: pg-boss (https://github.com/timgit/pg-boss, 12.x), in the
 * same database as the store's tables. The only importer of `pg-boss`; loaded only in that mode
 * (pg-boss 12 needs Node ≥ 22.12).
 *
 * How our guarantees map onto pg-boss:
 * - one queue, `jobs`, of policy `singleton` with the job's lock key (`owner/repo#n`, or
 *   `cmd:owner/repo#n` for an issue's intake and commands) as `singletonKey`: a unique index lets
 *   one job per key be active whatever its kind, and a fetch skips keys that are busy, so a
 *   queued job of issue A never waits behind issue B. The worker lanes are priorities: intake
 *   jobs have priority 1 and the intake lane fetches only those, the other lane only priority 0
 *   (two queues would not do: pg-boss keeps a key single per queue, and an intake and the
 *   command it enqueues share theirs). `notify` jobs (notifications outside GitHub) have priority 2
 *   and a lane of their own the same way;
 * - the job id is a uuid derived from the dedupe key, and pg-boss inserts `ON CONFLICT DO
 *   NOTHING`: one job per delivery or stage across every replica;
 * - every write takes the caller's store transaction (pg-boss's `db` option), so a stage's
 *   completion and the next stage's job commit together;
 * - a claim is fenced by its attempt (`{ id, retryCount }`): a heartbeat, completion or failure
 *   of a claim that lapsed changes nothing;
 * - heartbeats (`heartbeatSeconds`): pg-boss's supervisor puts a job whose process died back
 *   in `retry`, and any replica takes it over.
 *
 * Lookups by a job's data: finished jobs stay a week, and `jobExistsForDelivery` (every triggering
 * delivery) has no state to narrow by, so it uses an index of ours on pg-boss's job table,
 * {@link DELIVERY_INDEX} on `data->'deliveryId'` (without it a sequential scan: 30 ms at 100k
 * jobs, 190 ms at 500k on PostgreSQL 15; with it 0.01 ms). `start` creates it when missing, after
 * pg-boss's own schema, on the partitioned parent (PostgreSQL builds it on every partition, and on
 * any partition attached later), so an upgrade of pg-boss that drops it gets it back at the next
 * start. The live-job lookups (`/stop`, `/status`, a task's live jobs) go through pg-boss's own
 * index of live jobs (0.1 ms with 500k finished jobs).
 */
import { createHash } from "node:crypto";

import { CompiledQuery } from "kysely";
import { PgBoss } from "pg-boss";
import type { Job as BossJob, CommandResponse, Db as IDatabase, JobWithMetadata } from "pg-boss";

import type { Db, DbOrTrx } from "./db.js";
import { ADVISORY_LOCKS } from "./dialect.js";
import type { JobLane, JobQueue, JobSpec, LiveJob, QueuedJob, QueueJobState } from "./queue.js";
import type { JobKind } from "../domain/jobs.js";

/** The pg-boss schema the queue lives in, beside the store's tables. */
export const QUEUE_SCHEMA = "pgboss";

/**
 * Our index on pg-boss's job table: a job by its delivery (`jobExistsForDelivery`). Queries use
 * the same expression, `data->'deliveryId' = <json>`: for a scalar this is exactly the containment
 * `data @> {"deliveryId": …}`, which no btree index serves.
 */
export const DELIVERY_INDEX = "mc_job_delivery_id";

/** How long building {@link DELIVERY_INDEX} may wait for its locks before the start goes on without it. */
const INDEX_LOCK_TIMEOUT = "5s";

/** The pg-boss queue of every job. */
const QUEUE = "jobs";
/** The priority of the intake lane's jobs; every other job has 0. */
const INTAKE_PRIORITY = 1;
/** The priority of the notification lane's jobs (`notify`): a lane of their own, like intake. */
const NOTIFY_PRIORITY = 2;
/** pg-boss's `output` of a job its supervisor failed because its heartbeat lapsed (its process died or hung). */
const HEARTBEAT_LAPSE_MESSAGES = new Set(["job heartbeat timeout", "job timed out"]);

/** A job's priority: its lane. */
function priorityOf(kind: JobKind): number {
  if (kind === "intake") return INTAKE_PRIORITY;
  if (kind === "notify") return NOTIFY_PRIORITY;
  return 0;
}

/** The priorities a lane fetches: `{ only: ["intake"] }`, `{ only: ["notify"] }`, or every other job (priority 0). */
function prioritiesOf(lane: JobLane): { minPriority: number; maxPriority: number } {
  const only = lane.only?.length === 1 ? lane.only[0] : undefined;
  if (only === "intake") return { minPriority: INTAKE_PRIORITY, maxPriority: INTAKE_PRIORITY };
  if (only === "notify") return { minPriority: NOTIFY_PRIORITY, maxPriority: NOTIFY_PRIORITY };
  return { minPriority: 0, maxPriority: 0 };
}

/** A job's data in pg-boss: everything the SQLite `jobs` row holds besides its state. */
interface JobPayload {
  kind: JobKind;
  taskId: number | null;
  installationId: number;
  lockKey: string;
  dedupeKey: string;
  deliveryId: string | null;
  maxAttempts: number;
  payload: unknown;
  /** Heartbeat lapses so far (see `QueuedJob.takeovers`), counted at each takeover claim. */
  takeovers?: number;
}

/** Settings of {@link PgBossQueue}. */
export interface PgQueueOptions {
  /** `postgres://…`: pg-boss opens its own small pool on it. */
  url: string;
  /** Seconds without a heartbeat before a job counts as abandoned and is taken over (≥ 10). */
  heartbeatSeconds: number;
  /** How often pg-boss's supervisor looks for abandoned jobs, in seconds (default 10). */
  superviseIntervalSeconds?: number;
  /** Connections in pg-boss's pool (default 4). */
  maxConnections?: number;
  /** Told about pg-boss's background errors (a lost connection, a failed maintenance run). */
  onError?: (error: Error) => void;
}

/** A uuid that is a function of the dedupe key (sha-256, shaped as an RFC 9562 version 8 uuid). */
export function jobIdOf(dedupeKey: string): string {
  const hex = createHash("sha256").update(dedupeKey).digest("hex");
  const variant = ((parseInt(hex[16] ?? "0", 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** pg-boss's `db` option over a store transaction: its statement runs in that transaction. */
function inside(trx: DbOrTrx): IDatabase {
  return {
    async executeSql(text: string, values?: unknown[]) {
      const result = await trx.executeQuery(CompiledQuery.raw(text, values ?? []));
      return { rows: result.rows };
    },
  };
}

/** How many jobs a pg-boss command changed (its typings leave the response's fields out). */
const affected = (response: CommandResponse): number => (response as { affected?: number }).affected ?? 0;

const attempt = (job: QueuedJob) => ({ id: job.id, retryCount: job.fence ?? 0 });

function stateOf(state: string): QueueJobState {
  if (state === "active") return "running";
  if (state === "completed") return "succeeded";
  if (state === "failed" || state === "cancelled") return state;
  return "queued";
}

/**
 * The pg-boss queue behind {@link JobQueue}. Start it with {@link PgBossQueue.start} (creates or
 * migrates pg-boss's schema under its own lock, and the `jobs` queue), stop it with `stop`.
 */
export class PgBossQueue implements JobQueue {
  readonly backend = "postgres" as const;
  readonly boss: PgBoss;
  readonly #heartbeatSeconds: number;

  readonly #onError: (error: Error) => void;

  constructor(options: PgQueueOptions) {
    this.#heartbeatSeconds = options.heartbeatSeconds;
    this.boss = new PgBoss({
      connectionString: options.url,
      schema: QUEUE_SCHEMA,
      max: options.maxConnections ?? 4,
      // Abandoned jobs are found by the per-queue monitor pass: as often as the supervisor runs.
      superviseIntervalSeconds: options.superviseIntervalSeconds ?? 10,
      monitorIntervalSeconds: options.superviseIntervalSeconds ?? 10,
    });
    this.#onError = options.onError ?? (() => undefined);
    this.boss.on("error", this.#onError);
  }

  /** Installs or migrates pg-boss's schema and creates the queue (idempotent across replicas). */
  async start(): Promise<void> {
    await this.boss.start();
    const options = {
      policy: "singleton" as const,
      heartbeatSeconds: this.#heartbeatSeconds,
      // Liveness is the heartbeat's job; the expiry only bounds a job that heartbeats forever.
      expireInSeconds: 6 * 60 * 60,
      retryDelay: 0,
      retryBackoff: false,
      // Finished jobs are kept a week: dedupe keys, /report.
      deleteAfterSeconds: 7 * 24 * 60 * 60,
    };
    if (await this.boss.getQueue(QUEUE)) await this.boss.updateQueue(QUEUE, { heartbeatSeconds: options.heartbeatSeconds });
    else
      await this.boss.createQueue(QUEUE, options).catch(async (err: unknown) => {
        // Another replica created it between our look and our create.
        if (!(await this.boss.getQueue(QUEUE))) throw err;
      });
    await this.#ensureIndexes();
  }

  /**
   * Creates {@link DELIVERY_INDEX} on pg-boss's job table when it is missing (the first start, or
   * after a pg-boss upgrade rebuilt the table). The look takes no lock on the table, so a start that
   * finds the index blocks no one; a build blocks writes to the job table while it runs (a plain
   * CREATE INDEX: PostgreSQL cannot build one concurrently on a partitioned table). Replicas that
   * start together build it once, under the store's migration lock.
   *
   * The index only makes a lookup fast, so it never stops a start: a build that cannot take its
   * locks within {@link INDEX_LOCK_TIMEOUT} (a long write holding the table, another replica's
   * build) or is refused (a database role that does not own pg-boss's tables) is reported through
   * `onError` with the statement to run by hand, and the queue starts without it.
   */
  async #ensureIndexes(): Promise<void> {
    const db = this.boss.getDb();
    const found = await db.executeSql(`SELECT 1 FROM pg_indexes WHERE schemaname = $1 AND tablename = 'job' AND indexname = $2`, [
      QUEUE_SCHEMA,
      DELIVERY_INDEX,
    ]);
    if (found.rows.length > 0) return;
    // One simple query of two statements: one implicit transaction, the lock held until the index
    // is committed, and rolled back whole on an error (an explicit BEGIN would leave the pooled
    // connection in an aborted transaction).
    const create = `CREATE INDEX IF NOT EXISTS ${DELIVERY_INDEX} ON ${QUEUE_SCHEMA}.job ((data->'deliveryId'))`;
    try {
      await db.executeSql(
        `SET LOCAL lock_timeout = '${INDEX_LOCK_TIMEOUT}';
         SELECT pg_advisory_xact_lock(${ADVISORY_LOCKS.migrations});
         ${create}`,
      );
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.#onError(
        new Error(
          `the index ${QUEUE_SCHEMA}.${DELIVERY_INDEX} could not be created (${reason}): the queue runs without it, and looking jobs up by delivery scans ${QUEUE_SCHEMA}.job; create it as the owner of that table: ${create}`,
        ),
      );
    }
  }

  /** Stops pg-boss's background work and closes its pool. */
  async stop(): Promise<void> {
    await this.boss.stop({ graceful: false, close: true });
  }

  async enqueue(trx: DbOrTrx, spec: JobSpec, now = Date.now()): Promise<string | null> {
    const data: JobPayload = {
      kind: spec.kind,
      taskId: spec.taskId,
      installationId: spec.installationId,
      lockKey: spec.lockKey,
      dedupeKey: spec.dedupeKey,
      deliveryId: spec.deliveryId ?? null,
      maxAttempts: spec.maxAttempts,
      payload: spec.payload ?? {},
    };
    return this.boss.send(QUEUE, data as unknown as object, {
      id: jobIdOf(spec.dedupeKey),
      priority: priorityOf(spec.kind),
      singletonKey: spec.lockKey,
      // One more than our attempts: a job interrupted on its last attempt is claimed once more
      // and failed by the worker with a message, rather than dropped silently by the supervisor.
      retryLimit: spec.maxAttempts,
      ...(spec.runAfter !== undefined && spec.runAfter > now ? { startAfter: new Date(spec.runAfter) } : {}),
      db: inside(trx),
    });
  }

  /** The app's three lanes map to priorities: `{ only: ["intake"] }`, `{ only: ["notify"] }`, or everything else. */
  async claim(db: Db, _owner: string, _leaseMs: number, lane: JobLane): Promise<QueuedJob | undefined> {
    const [job] = await this.boss.fetch<JobPayload>(QUEUE, { batchSize: 1, includeMetadata: true, ...prioritiesOf(lane) });
    if (!job) return undefined;
    const claimed = this.#toQueuedJob(job);
    // A claim after pg-boss's supervisor failed the last attempt for a lapsed heartbeat is a takeover: count it in the job's data.
    const output = (job as Partial<JobWithMetadata<JobPayload>>).output as { value?: { message?: unknown } } | null | undefined;
    const message = output?.value?.message;
    if (typeof message === "string" && HEARTBEAT_LAPSE_MESSAGES.has(message) && claimed.attempts > 1) {
      const result = await db.executeQuery<{ takeovers: number }>(
        CompiledQuery.raw(
          `UPDATE ${QUEUE_SCHEMA}.job SET data = jsonb_set(data, '{takeovers}', to_jsonb(COALESCE((data->>'takeovers')::int, 0) + 1))
            WHERE name = $1 AND id = $2::uuid AND state = 'active' AND retry_count = $3 RETURNING (data->>'takeovers')::int AS takeovers`,
          [QUEUE, job.id, claimed.fence ?? 0],
        ),
      );
      claimed.takeovers = Number(result.rows[0]?.takeovers ?? claimed.takeovers ?? 0);
    }
    return claimed;
  }

  #toQueuedJob(job: JobWithMetadata<JobPayload> | BossJob<JobPayload>): QueuedJob {
    const data = job.data;
    const meta = job as Partial<JobWithMetadata<JobPayload>>;
    return {
      id: job.id,
      kind: data.kind,
      task_id: data.taskId,
      installation_id: data.installationId,
      lock_key: data.lockKey,
      dedupe_key: data.dedupeKey,
      delivery_id: data.deliveryId,
      payload: JSON.stringify(data.payload ?? {}),
      attempts: (meta.retryCount ?? 0) + 1,
      max_attempts: data.maxAttempts,
      created_at: meta.createdOn ? new Date(meta.createdOn).getTime() : Date.now(),
      fence: meta.retryCount ?? 0,
      takeovers: data.takeovers ?? 0,
    };
  }

  async heartbeat(_db: Db, job: QueuedJob): Promise<boolean> {
    const result = await this.boss.touch(QUEUE, attempt(job));
    return affected(result) === 1;
  }

  async complete(trx: DbOrTrx, job: QueuedJob): Promise<boolean> {
    const result = await this.boss.complete(QUEUE, attempt(job), null, { db: inside(trx) });
    return affected(result) === 1;
  }

  async retry(trx: DbOrTrx, job: QueuedJob, _owner: string, runAfter: number, error: string): Promise<boolean> {
    const failed = await this.boss.fail(QUEUE, attempt(job), { error }, { db: inside(trx) });
    if (affected(failed) !== 1) return false;
    // pg-boss re-queued it at once (retryDelay 0); the worker's delay (backoff, `retry-after`) wins.
    await this.boss.update(QUEUE, undefined, { id: job.id, startAfter: new Date(runAfter), db: inside(trx) });
    return true;
  }

  async fail(trx: DbOrTrx, job: QueuedJob, _owner: string, error: string): Promise<boolean> {
    // pg-boss's fail() retries while attempts are left; a permanent failure spends them first,
    // fenced like the call itself (the same claim, still active).
    await trx.executeQuery(
      CompiledQuery.raw(
        `UPDATE ${QUEUE_SCHEMA}.job SET retry_limit = retry_count WHERE name = $1 AND id = $2::uuid AND state = 'active' AND retry_count = $3`,
        [QUEUE, job.id, job.fence ?? 0],
      ),
    );
    const result = await this.boss.fail(QUEUE, attempt(job), { error }, { db: inside(trx) });
    return affected(result) === 1;
  }

  async release(db: Db, job: QueuedJob): Promise<boolean> {
    // Back to `retry` at once: another replica (or the next start) resumes it. A hand-back is not
    // an attempt: with `started_on` cleared (pg-boss's own restore does the same) the next claim
    // does not count one — a deploy during a job's last attempt must not fail it.
    return db.transaction().execute(async (trx) => {
      const result = await this.boss.fail(QUEUE, attempt(job), { error: "released at shutdown" }, { db: inside(trx) });
      if (affected(result) !== 1) return false;
      await trx.executeQuery(
        CompiledQuery.raw(`UPDATE ${QUEUE_SCHEMA}.job SET started_on = NULL WHERE name = $1 AND id = $2::uuid AND state = 'retry'`, [QUEUE, job.id]),
      );
      return true;
    });
  }

  /** The queued and running jobs whose data contains `data` (filtered in SQL: pg-boss's findJobs stops at 1000 of any state). */
  async #liveJobsOf(
    db: DbOrTrx,
    data: Record<string, unknown>,
  ): Promise<Array<{ id: string; data: JobPayload; state: string; retry_count: number; created_on: Date; started_on: Date | null }>> {
    const result = await db.executeQuery<{ id: string; data: JobPayload; state: string; retry_count: number; created_on: Date; started_on: Date | null }>(
      CompiledQuery.raw(
        `SELECT id, data, state::text AS state, retry_count, created_on, started_on FROM ${QUEUE_SCHEMA}.job
          WHERE name = $1 AND data @> $2::jsonb AND state IN ('created', 'retry', 'active') ORDER BY created_on`,
        [QUEUE, JSON.stringify(data)],
      ),
    );
    return result.rows;
  }

  async cancelTaskJobs(trx: DbOrTrx, taskId: number, exceptJobId?: string): Promise<number> {
    const ids = (await this.#liveJobsOf(trx, { taskId }))
      .filter((j) => j.id !== exceptJobId && j.data.kind !== "command" && j.data.kind !== "intake")
      .map((j) => j.id);
    if (ids.length === 0) return 0;
    const result = await this.boss.cancel(QUEUE, ids, { db: inside(trx) });
    return affected(result);
  }

  async liveJobsOfTask(db: DbOrTrx, taskId: number): Promise<LiveJob[]> {
    return (await this.#liveJobsOf(db, { taskId })).map((j) => ({
      id: j.id,
      kind: j.data.kind,
      state: j.state === "active" ? ("running" as const) : ("queued" as const),
      attempts: Number(j.retry_count) + (j.state === "active" ? 1 : 0),
      updated_at: new Date(j.started_on ?? j.created_on).getTime(),
    }));
  }

  async jobExistsForDelivery(trx: DbOrTrx, deliveryId: string, kind: JobKind): Promise<boolean> {
    // `data->'deliveryId' = …`, not `data @> …`: the form DELIVERY_INDEX serves (same rows for a scalar).
    const result = await trx.executeQuery(
      CompiledQuery.raw(`SELECT 1 FROM ${QUEUE_SCHEMA}.job WHERE name = $1 AND data->'deliveryId' = $2::jsonb AND data->'kind' = $3::jsonb LIMIT 1`, [
        QUEUE,
        JSON.stringify(deliveryId),
        JSON.stringify(kind),
      ]),
    );
    return result.rows.length > 0;
  }

  async intakePending(db: DbOrTrx, deliveryId: string): Promise<boolean> {
    return (await this.#liveJobsOf(db, { deliveryId, kind: "intake" })).length > 0;
  }

  async depth(db: Db): Promise<{ queued: number; running: number }> {
    const counts = await this.countsByState(db);
    const count = (state: QueueJobState) => counts.find((c) => c.state === state)?.count ?? 0;
    return { queued: count("queued"), running: count("running") };
  }

  async countsByState(db: DbOrTrx): Promise<Array<{ state: QueueJobState; count: number }>> {
    const result = await db.executeQuery<{ state: string; n: string | number }>(
      CompiledQuery.raw(`SELECT state::text AS state, count(*) AS n FROM ${QUEUE_SCHEMA}.job WHERE name = $1 GROUP BY state`, [QUEUE]),
    );
    const totals = new Map<QueueJobState, number>();
    for (const row of result.rows) totals.set(stateOf(row.state), (totals.get(stateOf(row.state)) ?? 0) + Number(row.n));
    return [...totals].map(([state, count]) => ({ state, count }));
  }
}

/**
 * Periodic tasks on pg-boss schedules: each task is a queue with a cron schedule; pg-boss's
 * timekeeper sends one job per occurrence whichever replicas are up, and one worker takes it.
 */
export class PgBossScheduler {
  readonly #boss: PgBoss;
  readonly #onError: (error: Error) => void;
  readonly #workers: string[] = [];

  constructor(boss: PgBoss, onError: (error: Error) => void) {
    this.#boss = boss;
    this.#onError = onError;
  }

  async start(tasks: ReadonlyArray<{ name: string; everyMinutes: number; run(): Promise<void> }>): Promise<void> {
    for (const task of tasks) {
      if (!(await this.#boss.getQueue(task.name))) {
        await this.#boss.createQueue(task.name, { policy: "stately", retryLimit: 0, expireInSeconds: 15 * 60 }).catch(async (err: unknown) => {
          if (!(await this.#boss.getQueue(task.name))) throw err;
        });
      }
      await this.#boss.schedule(task.name, `*/${task.everyMinutes} * * * *`);
      const id = await this.#boss.work(task.name, { pollingIntervalSeconds: 5 }, async () => {
        await task.run().catch((err: unknown) => {
          this.#onError(err instanceof Error ? err : new Error(String(err)));
          throw err;
        });
      });
      this.#workers.push(id);
    }
  }

  async stop(): Promise<void> {
    for (const id of this.#workers.splice(0)) await this.#boss.offWork(id as never).catch(() => undefined);
  }
}
