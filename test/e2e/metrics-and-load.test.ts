import { describe, expect, it, vi } from "vitest";

import { deliver } from "../helpers/webhooks.js";
import { useE2E } from "./harness.js";
import { labeledPayload, scriptHappyPath, SECRET } from "./scenario.js";

const start = useE2E();

const boot = (env: Record<string, string> = {}, startWorker = true) => start({}, env, startWorker);

/** The value of one series in Prometheus text format, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("GET /metrics", () => {
  it("reports deliveries, acknowledgement latency, jobs, LLM calls, tokens, USD and the GitHub rate limit", async () => {
    const { app, world } = await boot({ METRICS_TOKEN: "metrics-token-0123456789" });
    scriptHappyPath(world.anthropic);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await vi.waitFor(
      async () => {
        const task = await app.db.selectFrom("tasks").select("stage").executeTakeFirstOrThrow();
        expect(task.stage).toBe("ready_for_merge");
      },
      { timeout: 30_000, interval: 50 },
    );
    await app.worker.idle();

    expect((await fetch(`${app.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${app.url}/metrics`, { headers: { authorization: "Bearer wrong-token-0123456789ab" } })).status).toBe(401);
    const response = await fetch(`${app.url}/metrics`, { headers: { authorization: "Bearer metrics-token-0123456789" } });
    expect(response.status).toBe(200);
    const text = await response.text();

    expect(sample(text, 'mc_webhook_deliveries_total{event="issues",status="200"}')).toBe(1);
    expect(sample(text, 'mc_webhook_ack_seconds_count{event="issues"}')).toBe(1);
    expect(sample(text, 'mc_webhook_outcomes_total{event="issues.labeled",outcome="enqueued"}')).toBe(1);
    expect(sample(text, 'mc_jobs{state="succeeded"}')).toBe(4);
    expect(sample(text, 'mc_job_duration_seconds_count{kind="code",state="succeeded"}')).toBe(1);
    expect(sample(text, 'mc_llm_calls_total{agent="coder",model="claude-sonnet-5-5"}')).toBe(3);
    expect(sample(text, 'mc_llm_tokens_total{kind="input",agent="architect"}')).toBe(1200);
    expect(sample(text, 'mc_llm_tokens_total{kind="cache_read",agent="coder"}')).toBe(3200);
    expect(sample(text, 'mc_llm_cost_usd_total{repository="octo-org/widgets",agent="reviewer"}')).toBeCloseTo(0.0038, 10);
    expect(sample(text, 'mc_github_rate_limit_remaining{installation="4242"}')).toBe(4999);
  });
});

describe("load: 500 deliveries, 50 in flight", () => {
  it("acknowledges every delivery and loses none (one job each)", async () => {
    const { app, world } = await boot({}, false);
    const total = 500;
    const inFlight = 50;
    const statuses: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        for (let i = next++; i < total; i = next++) {
          const r = await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare, issue: 10_000 + i }), secret: SECRET });
          statuses.push(r.status);
        }
      }),
    );
    expect(statuses).toHaveLength(total);
    expect(statuses.filter((s) => s >= 300)).toEqual([]);
    const jobs = await app.db.selectFrom("jobs").select(["kind"]).execute();
    expect(jobs).toHaveLength(total);
    const deliveries = await app.db.selectFrom("deliveries").select("delivery_id").execute();
    expect(new Set(deliveries.map((d) => d.delivery_id)).size).toBe(total);
  }, 120_000);
});
