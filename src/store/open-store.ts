import { openDatabase, type Db } from "./db.js";
import { migrateToLatest } from "./migrate.js";
import { attachQueue, type JobQueue, queueOf } from "./queue.js";

/** Work that recurs: the stale-reservation sweep, workspace pruning. */
export interface PeriodicTask {
  /** Also the pg-boss queue and schedule name (letters, digits, `-`). */
  name: string;
  /** Minutes between two runs (1–59: a cron step). */
  everyMinutes: number;
  /**
   * Work on this replica's own resources (its clone disk): runs on every replica, on its own
   * timer, rather than once across them.
   */
  perReplica?: boolean;
  run(): Promise<void>;
}

/** Runs periodic tasks: once per period across every replica. */
export interface Scheduler {
  start(tasks: readonly PeriodicTask[]): Promise<void>;
  stop(): Promise<void>;
}

/** An open store: the database, its job queue, its scheduler, and how to close them. */
export interface Store {
  backend: "sqlite" | "postgres";
  db: Db;
  queue: JobQueue;
  scheduler: Scheduler;
  close(): Promise<void>;
}

/** What {@link openStore} needs: the relevant part of the server environment. */
export interface StoreOptions {
  /** `postgres://…` selects PostgreSQL; it wins over `databasePath`. */
  databaseUrl?: string | undefined;
  /** The SQLite file, when `databaseUrl` is unset. */
  databasePath: string;
  /** Seconds without a heartbeat before a job is taken over (PostgreSQL). */
  heartbeatSeconds: number;
  /** How often pg-boss looks for abandoned jobs, in seconds (default 10). */
  superviseIntervalSeconds?: number;
  /** Connections in the store's pool (PostgreSQL; default 10). */
  maxConnections?: number;
  /** Told about background errors of the PostgreSQL pools and pg-boss. */
  onError?: (error: Error) => void;
  /** The running Node version (tests pass another). */
  nodeVersion?: string;
}

/** The lowest Node version pg-boss 12 runs on (its `engines`). */
export const POSTGRES_MODE_MIN_NODE = "22.12.0";

/** Thrown when the PostgreSQL mode is asked for on a Node that cannot run it. */
export class UnsupportedRuntimeError extends Error {
  override readonly name = "UnsupportedRuntimeError";
}

/** `true` when Node `version` (default: this one) can run the PostgreSQL mode. */
export function supportsPostgresMode(version = process.versions.node): boolean {
  const [a = 0, b = 0, c = 0] = version.replace(/^v/, "").split(".").map(Number);
  const [x = 0, y = 0, z = 0] = POSTGRES_MODE_MIN_NODE.split(".").map(Number);
  return a !== x ? a > x : b !== y ? b > y : c >= z;
}

/**
 * In-process timers: each task runs at start and then every `everyMinutes`. The embedded mode
 * has one process, so "once across replicas" holds by itself.
 */
export class IntervalScheduler implements Scheduler {
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #onError: (error: Error) => void;
  constructor(onError: (error: Error) => void) {
    this.#onError = onError;
  }
  start(tasks: readonly PeriodicTask[]): Promise<void> {
    for (const task of tasks) {
      const run = () => void task.run().catch((err: unknown) => this.#onError(err instanceof Error ? err : new Error(String(err))));
      run();
      const timer = setInterval(run, task.everyMinutes * 60_000);
      timer.unref();
      this.#timers.push(timer);
    }
    return Promise.resolve();
  }
  stop(): Promise<void> {
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    return Promise.resolve();
  }
}

/** Shared tasks on one scheduler (once across replicas), per-replica tasks on another (each replica's timer). */
class SplitScheduler implements Scheduler {
  readonly #shared: Scheduler;
  readonly #local: Scheduler;
  constructor(shared: Scheduler, local: Scheduler) {
    this.#shared = shared;
    this.#local = local;
  }
  async start(tasks: readonly PeriodicTask[]): Promise<void> {
    await this.#shared.start(tasks.filter((t) => !t.perReplica));
    await this.#local.start(tasks.filter((t) => t.perReplica));
  }
  async stop(): Promise<void> {
    await Promise.all([this.#shared.stop(), this.#local.stop()]);
  }
}

/**
 * Opens the store the environment asks for and migrates it: the SQLite file at `databasePath`,
 * or — with `databaseUrl` — PostgreSQL for the tables plus the pg-boss queue and scheduler in the
 * same database. The PostgreSQL modules (`pg`, `pg-boss`) are loaded only in that mode.
 * Several replicas may call it together: migrations (the store's and pg-boss's) run once under
 * their advisory locks.
 *
 * @throws {UnsupportedRuntimeError} for the PostgreSQL mode on Node older than 22.12
 * @throws the database's error when it cannot be reached or migrated
 */
export async function openStore(options: StoreOptions): Promise<Store> {
  const onError = options.onError ?? (() => undefined);
  if (!options.databaseUrl) {
    const db = openDatabase(options.databasePath);
    await migrateToLatest(db);
    return { backend: "sqlite", db, queue: queueOf(db), scheduler: new IntervalScheduler(onError), close: () => db.destroy() };
  }
  const node = options.nodeVersion ?? process.versions.node;
  if (!supportsPostgresMode(node)) {
    throw new UnsupportedRuntimeError(
      `DATABASE_URL selects the PostgreSQL mode, whose job queue (pg-boss 12) needs Node ${POSTGRES_MODE_MIN_NODE} or later; this is Node ${node}. ` +
        "Run Node 22, or unset DATABASE_URL to use the SQLite file at DATABASE_PATH.",
    );
  }
  const [{ openPostgres }, { PgBossQueue, PgBossScheduler }] = await Promise.all([import("./postgres.js"), import("./pg-queue.js")]);
  const db = openPostgres(options.databaseUrl, { maxConnections: options.maxConnections ?? 10, onIdleError: onError });
  const queue = new PgBossQueue({
    url: options.databaseUrl,
    heartbeatSeconds: options.heartbeatSeconds,
    onError,
    ...(options.superviseIntervalSeconds ? { superviseIntervalSeconds: options.superviseIntervalSeconds } : {}),
  });
  try {
    await migrateToLatest(db);
    await queue.start();
  } catch (err) {
    await queue.stop().catch(() => undefined);
    await db.destroy();
    throw err;
  }
  attachQueue(db, queue);
  return {
    backend: "postgres",
    db,
    queue,
    scheduler: new SplitScheduler(new PgBossScheduler(queue.boss, onError), new IntervalScheduler(onError)),
    async close() {
      await queue.stop();
      await db.destroy();
    },
  };
}
