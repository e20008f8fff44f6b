import type { IncomingMessage, ServerResponse } from "node:http";

import type { Logger } from "pino";
import type { ApplicationFunction } from "probot";

import type { ServerEnv } from "./config/env.js";
import { handleComment, handleIssueClosed, handleIssueTrigger, handlePullRequestClosed, handleReviewSubmitted } from "./github/events.js";
import { queueDepth } from "./jobs/queue.js";
import type { Worker } from "./jobs/worker.js";
import { type Db, isDatabaseReachable } from "./ledger/db.js";
import { Metrics } from "./metrics.js";
import { createServices, sandboxOptions } from "./services.js";
import { describeSandbox, type SandboxReport } from "./workspace/sandbox.js";

/** Options of {@link createApp}. */
export interface AppOptions {
  env: ServerEnv;
  db: Db;
  log: Logger;
  /** Receives the worker once the app is loaded (for shutdown, and for tests). */
  onWorker?: (worker: Worker) => void;
  /** Start the worker when the app loads (default `true`). */
  startWorker?: boolean;
  metrics?: Metrics;
  /** The full server environment (budget variables are read from it). */
  rawEnv?: Record<string, string | undefined>;
}

/**
 * The Probot application function: registers the webhook handlers and the `/healthz` route,
 * and starts the worker. Handlers only validate and enqueue.
 */
export function createApp(options: AppOptions): ApplicationFunction {
  return (app, { addHandler }) => {
    const { db, env } = options;
    const log = options.log;
    const metrics = options.metrics ?? new Metrics(db);
    const { worker } = createServices(app, { env, db, log, metrics, ...(options.rawEnv ? { rawEnv: options.rawEnv } : {}) });
    let slug: Promise<string> | undefined;
    const appSlug = () => {
      slug ??= app.auth().then(async (octokit) => (await octokit.request("GET /app")).data?.slug ?? "mission-control");
      slug.catch(() => (slug = undefined));
      return slug;
    };
    const eventDeps = { db, log, maxAttempts: env.JOB_MAX_ATTEMPTS, appSlug, onEnqueued: () => worker.notify() };

    app.on(["issues.labeled", "issues.opened"], async (context) => {
      const outcome = await handleIssueTrigger(context, eventDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("issues.closed", async (context) => {
      const outcome = await handleIssueClosed(context, eventDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("issue_comment.created", async (context) => {
      const outcome = await handleComment(context, eventDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("pull_request.closed", async (context) => {
      const outcome = await handlePullRequestClosed(context, eventDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("pull_request_review.submitted", async (context) => {
      const outcome = await handleReviewSubmitted(context, eventDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });

    // Which isolation and limits hold, found once (bwrap is run once to check).
    let sandbox: Promise<SandboxReport> | undefined;
    addHandler(async (req: IncomingMessage, res: ServerResponse) => {
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/healthz") return false;
      const reachable = await isDatabaseReachable(db);
      const depth = reachable ? await queueDepth(db) : null;
      sandbox ??= describeSandbox(sandboxOptions(env, options.rawEnv ?? process.env));
      const report = await sandbox;
      // A broken sandbox refuses repository commands but the app still plans and reviews: degraded, not down.
      const status = !reachable ? "error" : report.ok ? "ok" : "degraded";
      const body = { status, database: reachable ? "reachable" : "unreachable", queue: depth, sandbox: report };
      res.writeHead(reachable ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify(body));
      return true;
    });

    addHandler(metrics.handler(env.METRICS_TOKEN));

    // Probot's manifest flow registers the webhook URL as the server's root (`${baseUrl}/`) when
    // no proxy is used: accept signed deliveries there too, through the same verifying middleware.
    let webhooks: Promise<(req: IncomingMessage, res: ServerResponse) => Promise<boolean>> | undefined;
    addHandler(async (req: IncomingMessage, res: ServerResponse) => {
      if (req.method !== "POST" || (req.url ?? "").split("?")[0] !== "/" || !req.headers["x-github-event"]) return false;
      webhooks ??= app.getNodeMiddleware({ path: "/" });
      return (await webhooks)(req, res);
    });

    options.onWorker?.(worker);
    if (options.startWorker ?? true) worker.start();
  };
}
