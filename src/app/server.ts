import type { Server as HttpServer } from "node:http";

import type { Logger } from "pino";
import { Probot, type ProbotOctokit, Server } from "probot";

import { createApp } from "./probot-app.js";
import { githubBaseUrl, type ServerEnv } from "../config/env.js";
import type { Worker } from "../worker/worker.js";
import type { Db } from "../store/db.js";
import { releaseStaleReservations } from "../store/budgets.js";
import { IntervalScheduler, type PeriodicTask, type Scheduler, type Store } from "../store/open-store.js";
import { pruneWorkspaces } from "../workspace/workspaces.js";
import { enqueueDueStandups } from "../pipeline/orchestrator.js";
import { Metrics } from "./metrics.js";
import { checkRedis, createRedisProbe, redisAddress, type RedisProbe } from "./redis.js";
import { sandboxOptions } from "./services.js";
import type { Notifier } from "../pipeline/notifications.js";
import { describeSandbox } from "../workspace/sandbox.js";
import { removeStaleCgroups } from "../workspace/sandbox/cgroup.js";

/** A running Mission Control: HTTP server, worker, metrics, and a graceful `stop`. */
export interface MissionControl {
  server: Server;
  httpServer: HttpServer;
  worker: Worker;
  /** The worker of the intake lane (a delivery's checks that need GitHub). */
  intakeWorker: Worker;
  /** The worker of the notification lane (`notify` jobs), when the app handed it over. */
  notifyWorker?: Worker | undefined;
  metrics: Metrics;
  /** Port actually listened on. */
  port: number;
  /**
   * Graceful shutdown: stop accepting deliveries, take no new jobs, let running jobs finish
   * up to `deadlineMs` (milliseconds), then abort them and release their leases so the next
   * start resumes them at once. The database is left open (the caller owns it).
   */
  stop(deadlineMs?: number): Promise<void>;
}

/** Options of {@link startMissionControl}. */
export interface StartOptions {
  env: ServerEnv;
  db: Db;
  log: Logger;
  /** PEM text of the GitHub App's private key. */
  privateKey: string;
  /** The Octokit class (tests turn Octokit's retry and throttling plugins off). */
  Octokit?: typeof ProbotOctokit;
  startWorker?: boolean;
  /**
   * Runs the periodic work (stale-reservation sweep, workspace pruning) once per period across
   * replicas: the store's scheduler (pg-boss schedules on PostgreSQL). Default: in-process timers.
   */
  scheduler?: Scheduler;
}

/**
 * The Probot class the server instantiates: the GitHub App's credentials and REST base URL and,
 * with REDIS_URL, Octokit's throttling limiters kept in Redis (Probot's `redisConfig`), so every
 * replica counts against the same limits.
 */
export function probotClass(options: Pick<StartOptions, "env" | "log" | "privateKey" | "Octokit">): typeof Probot {
  const { env, log } = options;
  return Probot.defaults({
    appId: env.APP_ID,
    privateKey: options.privateKey,
    secret: env.WEBHOOK_SECRET,
    baseUrl: githubBaseUrl(env),
    log,
    ...(options.Octokit ? { Octokit: options.Octokit } : {}),
    ...(env.REDIS_URL ? { redisConfig: env.REDIS_URL } : {}),
  });
}

/**
 * Starts the Probot server with the app (webhooks at `POST /api/github/webhooks`, `/healthz`,
 * `/metrics`) on `env.PORT`, against the REST API at {@link githubBaseUrl} (GHE_HOST aware),
 * and starts the worker.
 */
export async function startMissionControl(options: StartOptions): Promise<MissionControl> {
  const { env, db, log } = options;
  // Probot's Redis client retries for ever: an unreachable REDIS_URL stops start-up here instead.
  let redis: RedisProbe | undefined;
  if (env.REDIS_URL) {
    await checkRedis(env.REDIS_URL);
    redis = await createRedisProbe(env.REDIS_URL);
    log.info(`GitHub request throttling is shared through redis at ${redisAddress(env.REDIS_URL)}`);
  }
  const metrics = new Metrics(db);
  const server = new Server({
    host: env.HOST,
    port: env.PORT,
    log,
    Probot: probotClass(options),
    enableStaticFiles: false,
  });
  let worker: Worker | undefined;
  let intakeWorker: Worker | undefined;
  let notifyWorker: Worker | undefined;
  let notifier: Notifier | undefined;
  await server.load(
    createApp({
      env,
      db,
      log,
      metrics,
      ...(redis ? { redis } : {}),
      startWorker: options.startWorker ?? true,
      onWorker: (w, intake, notify, n) => {
        worker = w;
        intakeWorker = intake;
        notifyWorker = notify;
        notifier = n;
      },
    }),
  );
  const httpServer = await server.start();
  metrics.instrument(httpServer);
  if (!worker || !intakeWorker) throw new Error("the app did not hand over its workers");
  const w = worker;
  const intake = intakeWorker;

  // Which isolation and limits hold is logged now, not found out at the first test run.
  void removeStaleCgroups();
  void describeSandbox(sandboxOptions(env)).then((report) => {
    if (report.ok) log.info({ sandbox: report }, `sandbox: ${report.mode}, commands run as ${report.user}, limits: ${report.limits.join(", ")}`);
    else
      log.warn(
        { sandbox: report },
        `the sandbox cannot run commands: ${report.reason ?? "unknown"} — repository commands will be refused (see docs/OPERATIONS.md, or set SANDBOX=off)`,
      );
  });
  const scheduler = options.scheduler ?? new IntervalScheduler((err) => log.warn({ err }, "periodic task failed"));
  await scheduler.start(periodicTasks(env, db, log, notifier));
  const address = httpServer.address();
  return {
    server,
    httpServer,
    worker: w,
    intakeWorker: intake,
    notifyWorker,
    metrics,
    port: typeof address === "object" && address ? address.port : env.PORT,
    async stop(deadlineMs = 30_000) {
      await scheduler.stop();
      redis?.close();
      await server.stop();
      await Promise.all([w.stop(deadlineMs), intake.stop(deadlineMs), notifyWorker?.stop(deadlineMs)]);
    },
  };
}

/**
 * Stops on SIGTERM or SIGINT: no new deliveries or jobs, running jobs get `deadlineMs`
 * (milliseconds) to finish, the rest are aborted and their leases released, the database is
 * closed, and the process exits 0 (1 if stopping failed).
 */
export function stopOnSignals(app: MissionControl, store: Pick<Store, "close">, log: Logger, deadlineMs: number): void {
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down: no new deliveries or jobs; waiting for running jobs");
    try {
      await app.stop(deadlineMs);
      await store.close();
      log.info("stopped");
      process.exit(0);
    } catch (err) {
      log.error({ err }, "shutdown failed");
      process.exit(1);
    }
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

/**
 * The work that recurs, whichever replica runs it:
 * - the stale-reservation sweep (every 10 minutes): reservations still held long after any
 *   Messages API call could be in flight belong to a crashed process;
 * - workspace pruning (every 30 minutes, on every replica: its own disk): clones beyond
 *   WORKSPACES_MAX_BYTES, oldest first;
 * - the daily digest (every 15 minutes), with the app's `notifier` when NOTIFICATIONS_FILE is set;
 * - the orchestrator tick (every minute): due stand-ups.
 */
export function periodicTasks(env: ServerEnv, db: Db, log: Logger, notifier?: Notifier): PeriodicTask[] {
  const staleAfterMs = env.ANTHROPIC_TIMEOUT_MS * (env.ANTHROPIC_MAX_RETRIES + 1) + 5 * 60_000;
  return [
    {
      name: "sweep-reservations",
      everyMinutes: 10,
      async run() {
        const released = await releaseStaleReservations(db, { olderThanMs: staleAfterMs });
        if (released > 0) log.warn({ released }, "released budget reservations left held by a crashed process");
      },
    },
    {
      name: "prune-workspaces",
      everyMinutes: 30,
      // Each replica has its own clone disk (WORKSPACES_DIR): every replica prunes its own.
      perReplica: true,
      async run() {
        const removed = await pruneWorkspaces(env.WORKSPACES_DIR, env.WORKSPACES_MAX_BYTES);
        if (removed.length > 0) log.info({ removed: removed.length }, "pruned workspaces over WORKSPACES_MAX_BYTES");
      },
    },
    ...notificationTasks(db, log, notifier),
    {
      // Orchestrator mode: enqueues each repository's due stand-up (`repository_schedules`) once;
      // shared, so on PostgreSQL it runs once across replicas (and the enqueue is deduplicated anyway).
      name: "orchestrator-tick",
      everyMinutes: 1,
      async run() {
        const enqueued = await enqueueDueStandups(db, Date.now(), { maxAttempts: env.JOB_MAX_ATTEMPTS, log });
        if (enqueued > 0) log.info({ enqueued }, "stand-ups enqueued");
      },
    },
  ];
}

/**
 * The daily digest (with NOTIFICATIONS_FILE routing `daily_digest`): every 15 minutes, once the
 * configured UTC hour has passed, one `daily_digest` notification per installation with activity
 * on the previous UTC day — once across replicas and restarts (its dedupe key names the day).
 */
function notificationTasks(db: Db, log: Logger, notifier: Notifier | undefined): PeriodicTask[] {
  if (!notifier?.enabled) return [];
  return [
    {
      name: "notification-digest",
      everyMinutes: 15,
      async run() {
        const enqueued = await notifier.enqueueDigests(db);
        if (enqueued > 0) log.info({ enqueued }, "daily digest notifications enqueued");
      },
    },
  ];
}
