import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";

import { Counter, Gauge, Histogram, Registry } from "prom-client";

import { nanoToUsd } from "../domain/money.js";
import type { Db } from "../store/db.js";
import { jobCountsByState } from "../store/queue.js";
import { usageByAgentModelRepository } from "../store/usage.js";

/**
 * The app's Prometheus metrics (prom-client), served at `GET /metrics`. Ledger-backed series
 * (LLM calls, tokens, USD, jobs by state) are read from SQLite at scrape time, so they survive
 * restarts and agree across instances sharing the database.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly deliveries: Counter<"event" | "status">;
  readonly outcomes: Counter<"event" | "outcome">;
  readonly ackSeconds: Histogram<"event">;
  readonly jobSeconds: Histogram<"kind" | "state">;
  readonly githubRateLimitRemaining: Gauge<"installation">;
  /** Notifications outside GitHub, by channel, event and outcome (`sent`, `retry`, `failed`). */
  readonly notifications: Counter<"channel" | "event" | "outcome">;

  constructor(db: Db) {
    const registers = [this.registry];
    this.deliveries = new Counter({
      name: "mc_webhook_deliveries_total",
      help: "Webhook deliveries received, by event and HTTP status answered",
      labelNames: ["event", "status"],
      registers,
    });
    this.outcomes = new Counter({
      name: "mc_webhook_outcomes_total",
      help: "What the handlers decided for each delivery (enqueued, ignored, no_permission, …)",
      labelNames: ["event", "outcome"],
      registers,
    });
    this.ackSeconds = new Histogram({
      name: "mc_webhook_ack_seconds",
      help: "Time from a delivery's arrival to the app's answer, in seconds",
      labelNames: ["event"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.jobSeconds = new Histogram({
      name: "mc_job_duration_seconds",
      help: "Wall time of one job attempt, by job kind (agent stage) and how it ended, in seconds",
      labelNames: ["kind", "state"],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600],
      registers,
    });
    this.githubRateLimitRemaining = new Gauge({
      name: "mc_github_rate_limit_remaining",
      help: "x-ratelimit-remaining of the latest GitHub REST response, per installation",
      labelNames: ["installation"],
      registers,
    });

    this.notifications = new Counter({
      name: "mission_control_notifications_total",
      help: "Notifications sent outside GitHub (Slack, Telegram, e-mail, webhook), by channel, event and outcome (sent, retry, failed)",
      labelNames: ["channel", "event", "outcome"],
      registers,
    });

    const jobs = new Gauge({ name: "mc_jobs", help: "Jobs in the durable queue, by state", labelNames: ["state"], registers });
    const calls = new Counter({ name: "mc_llm_calls_total", help: "Messages API calls recorded in the ledger", labelNames: ["agent", "model"], registers });
    const tokens = new Counter({
      name: "mc_llm_tokens_total",
      help: "Tokens recorded in the ledger, by kind (input, output, cache_write, cache_read) and agent",
      labelNames: ["kind", "agent"],
      registers,
    });
    const usd = new Counter({
      name: "mc_llm_cost_usd_total",
      help: "USD recorded in the ledger, by repository and agent",
      labelNames: ["repository", "agent"],
      registers,
    });

    // Scrape-time collection from the ledger (one query per family).
    const collectJobs = jobs as unknown as { collect?: () => Promise<void> };
    collectJobs.collect = async () => {
      jobs.reset();
      for (const r of await jobCountsByState(db)) jobs.set({ state: r.state }, r.count);
    };
    // prom-client collects the families concurrently, so each one reads the ledger itself.
    const ledger = () => usageByAgentModelRepository(db);
    const onCollect = (metric: object, fn: () => Promise<void>) => {
      (metric as { collect?: () => Promise<void> }).collect = fn;
    };
    onCollect(calls, async () => {
      const rows = await ledger();
      calls.reset();
      for (const r of rows) calls.inc({ agent: r.agent, model: r.model }, Number(r.calls));
    });
    onCollect(tokens, async () => {
      const rows = await ledger();
      tokens.reset();
      for (const r of rows) for (const kind of ["input", "output", "cache_write", "cache_read"] as const) tokens.inc({ kind, agent: r.agent }, Number(r[kind]));
    });
    onCollect(usd, async () => {
      const rows = await ledger();
      usd.reset();
      // USD as a float for Prometheus (display only); the ledger's sum itself is exact.
      for (const r of rows) usd.inc({ repository: r.repository, agent: r.agent }, nanoToUsd(r.nano_usd));
    });
  }

  /**
   * Times every delivery on the webhook path: `mc_webhook_deliveries_total` and
   * `mc_webhook_ack_seconds` (from the request's arrival to the end of the answer).
   */
  instrument(server: HttpServer, webhookPaths: readonly string[] = ["/api/github/webhooks", "/"]): void {
    server.prependListener("request", (req: IncomingMessage, res: ServerResponse) => {
      if (req.method !== "POST" || !webhookPaths.includes((req.url ?? "").split("?")[0] ?? "") || !req.headers["x-github-event"]) return;
      const started = process.hrtime.bigint();
      const event = String(req.headers["x-github-event"] ?? "unknown");
      res.once("finish", () => {
        this.ackSeconds.observe({ event }, Number(process.hrtime.bigint() - started) / 1e9);
        this.deliveries.inc({ event, status: String(res.statusCode) });
      });
    });
  }

  /**
   * The `GET /metrics` handler for Probot's `addHandler`. With a token, requests must carry
   * `Authorization: Bearer <token>` (compared in constant time); others get 401.
   */
  handler(token: string | undefined): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
    return async (req, res) => {
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") return false;
      if (token && !bearerMatches(req.headers.authorization, token)) {
        res.writeHead(401, { "www-authenticate": "Bearer", "content-type": "text/plain" }).end("unauthorized\n");
        return true;
      }
      const body = await this.registry.metrics();
      res.writeHead(200, { "content-type": this.registry.contentType }).end(body);
      return true;
    };
  }
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const expected = Buffer.from(`Bearer ${token}`);
  const actual = Buffer.from(header ?? "");
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
