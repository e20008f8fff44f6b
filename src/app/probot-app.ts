import type { IncomingMessage, ServerResponse } from "node:http";

import type { Logger } from "pino";
import type { ApplicationFunction } from "probot";

import type { ServerEnv } from "../config/env.js";
import { handleComment } from "../adapters/github/inbound/comment-created.js";
import { handleIssueClosed } from "../adapters/github/inbound/issue-closed.js";
import { handleIssueTrigger } from "../adapters/github/inbound/issue-trigger.js";
import type { InboundDeps } from "../adapters/github/inbound/prologue.js";
import { handlePullRequestClosed } from "../adapters/github/inbound/pull-request-closed.js";
import { handleReviewSubmitted } from "../adapters/github/inbound/review-submitted.js";
import { handleCheckSuiteCompleted } from "../adapters/github/inbound/check-suite-completed.js";
import { handleWorkflowRunCompleted } from "../adapters/github/inbound/workflow-run-completed.js";
import { handleReviewCommentCreated } from "../adapters/github/inbound/review-comment-created.js";
import { handleInstallationDeleted, handleRepositoriesRemoved } from "../adapters/github/inbound/installation-removed.js";
import { handlePush } from "../adapters/github/inbound/push.js";
import { handleRepositoryRenamed } from "../adapters/github/inbound/repository-renamed.js";
import { queueDepth, queueOf } from "../store/queue.js";
import type { RedisProbe } from "./redis.js";
import type { Worker } from "../worker/worker.js";
import { type Db, isDatabaseReachable } from "../store/db.js";
import { Metrics } from "./metrics.js";
import type { Notifier } from "../pipeline/notifications.js";
import { createServices, sandboxOptions } from "./services.js";
import { describeSandbox, type SandboxReport } from "../workspace/sandbox.js";
import { dashboardHandler } from "./dashboard/handler.js";

/** Options of {@link createApp}. */
export interface AppOptions {
  env: ServerEnv;
  db: Db;
  log: Logger;
  /** Receives the workers once the app is loaded (for shutdown, and for tests): stages and commands, and the intake lane. */
  onWorker?: (worker: Worker, intakeWorker: Worker, notifyWorker?: Worker, notifier?: Notifier) => void;
  /** Start the worker when the app loads (default `true`). */
  startWorker?: boolean;
  metrics?: Metrics;
  /** With REDIS_URL: `/healthz` says whether the shared throttling's Redis answers. */
  redis?: RedisProbe;
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
    const { worker, intakeWorker, notifyWorker, notifier } = createServices(app, { env, db, log, metrics });
    // The slug (for `@<slug> command` mentions) is resolved in the background, on the first comment
    // that needs it: a handler never waits on GitHub (until it is known, the intake job checks mentions).
    let slug: string | undefined;
    let resolving = false;
    const appSlug = (): string | undefined => {
      if (slug === undefined && !resolving) {
        resolving = true;
        app
          .auth()
          .then(async (octokit) => {
            slug = (await octokit.request("GET /app")).data?.slug ?? "mission-control";
          })
          .catch((err: unknown) => log.warn({ err }, "resolving the app's slug failed; mentions are checked by the intake job"))
          .finally(() => (resolving = false));
      }
      return slug;
    };
    const inboundDeps: InboundDeps = {
      db,
      log,
      maxAttempts: env.JOB_MAX_ATTEMPTS,
      appSlug,
      onEnqueued: () => {
        intakeWorker.notify();
        worker.notify();
      },
    };

    app.on(["issues.labeled", "issues.opened"], async (context) => {
      const outcome = await handleIssueTrigger(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("issues.closed", async (context) => {
      const outcome = await handleIssueClosed(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("issue_comment.created", async (context) => {
      const outcome = await handleComment(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("pull_request.closed", async (context) => {
      const outcome = await handlePullRequestClosed(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("pull_request_review.submitted", async (context) => {
      const outcome = await handleReviewSubmitted(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    // The repository's own CI on the app's pull requests: a failure may start a Coder revision.
    app.on("check_suite.completed", async (context) => {
      const outcome = await handleCheckSuiteCompleted(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("workflow_run.completed", async (context) => {
      const outcome = await handleWorkflowRunCompleted(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("pull_request_review_comment.created", async (context) => {
      const outcome = await handleReviewCommentCreated(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });

    // A push to the default branch that changed .github/mission-control.yml: the stand-up schedule follows the file.
    app.on("push", async (context) => {
      const outcome = await handlePush(context, inboundDeps);
      metrics.outcomes.inc({ event: context.name, outcome });
    });

    // A repository renamed on GitHub: what the store keeps under its old name follows the new one.
    app.on("repository.renamed", async (context) => {
      const outcome = await handleRepositoryRenamed(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });

    // The app lost an installation or some of its repositories: their stand-up schedules stop firing.
    app.on("installation.deleted", async (context) => {
      const outcome = await handleInstallationDeleted(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });
    app.on("installation_repositories.removed", async (context) => {
      const outcome = await handleRepositoriesRemoved(context, inboundDeps);
      metrics.outcomes.inc({ event: `${context.name}.${context.payload.action}`, outcome });
    });

    // Which isolation and limits hold, found once (bwrap is run once to check).
    let sandbox: Promise<SandboxReport> | undefined;
    addHandler(async (req: IncomingMessage, res: ServerResponse) => {
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/healthz") return false;
      const reachable = await isDatabaseReachable(db);
      const depth = reachable ? await queueDepth(db) : null;
      sandbox ??= describeSandbox(sandboxOptions(env));
      const report = await sandbox;
      // A broken sandbox refuses repository commands but the app still plans and reviews: degraded, not down.
      const redis = options.redis ? await options.redis.ping() : undefined;
      // Without Redis the replicas throttle GitHub requests separately: degraded, not down.
      const status = !reachable ? "error" : report.ok && redis !== "unreachable" ? "ok" : "degraded";
      // The backend (sqlite, or postgres with pg-boss) and the depth of the queue every replica shares.
      const body = {
        status,
        database: reachable ? "reachable" : "unreachable",
        backend: queueOf(db).backend,
        queue: depth,
        ...(redis ? { redis } : {}),
        sandbox: report,
      };
      res.writeHead(reachable ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify(body));
      return true;
    });

    addHandler(metrics.handler(env.METRICS_TOKEN));
    addHandler(dashboardHandler({ db, env, log }));

    // Probot's manifest flow registers the webhook URL as the server's root (`${baseUrl}/`) when
    // no proxy is used: accept signed deliveries there too, through the same verifying middleware.
    let webhooks: Promise<(req: IncomingMessage, res: ServerResponse) => Promise<boolean>> | undefined;
    addHandler(async (req: IncomingMessage, res: ServerResponse) => {
      if (req.method !== "POST" || (req.url ?? "").split("?")[0] !== "/" || !req.headers["x-github-event"]) return false;
      webhooks ??= app.getNodeMiddleware({ path: "/" });
      return (await webhooks)(req, res);
    });

    options.onWorker?.(worker, intakeWorker, notifyWorker, notifier);
    // The intake lane always runs: it is the second half of answering a delivery.
    intakeWorker.start();
    if (options.startWorker ?? true) {
      worker.start();
      // Notifications outside GitHub (their own lane); idle when no channel is configured.
      notifyWorker.start();
    }
  };
}
