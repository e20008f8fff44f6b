import type { IncomingMessage, ServerResponse } from "node:http";

import type { Logger } from "pino";
import type { ApplicationFunction } from "probot";

import type { ServerEnv } from "./config/env.js";
import { handleIssueTrigger } from "./github/events.js";
import { queueDepth } from "./jobs/queue.js";
import type { Worker } from "./jobs/worker.js";
import { type Db, isDatabaseReachable } from "./ledger/db.js";
import { createServices } from "./services.js";

/** Options of {@link createApp}. */
export interface AppOptions {
  env: ServerEnv;
  db: Db;
  log: Logger;
  /** Receives the worker once the app is loaded (for shutdown, and for tests). */
  onWorker?: (worker: Worker) => void;
  /** Start the worker when the app loads (default `true`). */
  startWorker?: boolean;
}

/**
 * The Probot application function: registers the webhook handlers and the `/healthz` route,
 * and starts the worker. Handlers only validate and enqueue.
 */
export function createApp(options: AppOptions): ApplicationFunction {
  return (app, { addHandler }) => {
    const { db, env } = options;
    const log = options.log;
    const { worker } = createServices(app, { env, db, log });
    const eventDeps = { db, log, maxAttempts: env.JOB_MAX_ATTEMPTS, onEnqueued: () => worker.notify() };

    app.on(["issues.labeled", "issues.opened"], async (context) => {
      await handleIssueTrigger(context, eventDeps);
    });

    addHandler(async (req: IncomingMessage, res: ServerResponse) => {
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/healthz") return false;
      const reachable = await isDatabaseReachable(db);
      const depth = reachable ? await queueDepth(db) : null;
      const body = { status: reachable ? "ok" : "error", database: reachable ? "reachable" : "unreachable", queue: depth };
      res.writeHead(reachable ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify(body));
      return true;
    });

    options.onWorker?.(worker);
    if (options.startWorker ?? true) worker.start();
  };
}
