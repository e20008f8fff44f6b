/**
 * `npm run bench`: webhook acknowledgement of this app versus a bare Probot app with one no-op
 * handler (same deliveries, same run), the ledger write plus budget check, and the end-to-end
 * pipeline's wall time — on loopback, with GitHub and Anthropic served by the same nock fakes
 * as the tests. Results go to bench/results.md. Not a test: nothing here asserts a duration.
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import nock from "nock";
import { pino } from "pino";
import { Probot, Server } from "probot";

import { serverBudgetLimits } from "../src/config/env.js";
import { estimateInputTokens, estimateWorstCaseUsd } from "../src/domain/budget-rules.js";
import { reserve } from "../src/store/budgets.js";
import { migrateToLatest, openDatabase } from "../src/store/db.js";
import { PriceTable } from "../src/domain/pricing.js";
import { createWorld, labeledPayload, SECRET, scriptHappyPath } from "../test/e2e/scenario.js";
import { freePort, startApp, TEST_PRIVATE_KEY, TEST_WEBHOOK_SECRET, tempDir } from "../test/helpers/app-harness.js";
import { deliver } from "../test/helpers/webhooks.js";

const DELIVERIES = 500;
const IN_FLIGHT = 50;
const WARM_UP = 50;
const LEDGER_OPERATIONS = 1000;
const PIPELINE_RUNS = 5;

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}

interface LoadResult {
  throughput: number;
  p50: number;
  p99: number;
}

/** Sends `count` signed deliveries with `inFlight` at a time; latency per delivery in ms. */
async function load(url: string, cloneUrl: string, count: number, inFlight: number, firstIssue: number): Promise<LoadResult> {
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let i = next++; i < count; i = next++) {
        const r = await deliver(url, { event: "issues", payload: labeledPayload({ cloneUrl, issue: firstIssue + i }), secret: SECRET });
        if (r.status >= 300) throw new Error(`delivery answered ${r.status}: ${r.body}`);
        times.push(r.elapsedMs);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  return { throughput: count / seconds, p50: percentile(times, 50), p99: percentile(times, 99) };
}

async function missionControlAck(): Promise<LoadResult> {
  const dirs = tempDir();
  const world = createWorld();
  const app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "ws"), startWorker: false, env: { LOG_LEVEL: "warn" } });
  try {
    await load(app.url, world.bare, WARM_UP, IN_FLIGHT, 100_000);
    const result = await load(app.url, world.bare, DELIVERIES, IN_FLIGHT, 1_000);
    const jobs = await app.db.selectFrom("jobs").select("id").execute();
    if (jobs.length !== DELIVERIES + WARM_UP) throw new Error(`expected ${DELIVERIES + WARM_UP} jobs, found ${jobs.length}`);
    return result;
  } finally {
    await app.stop(0);
    world.github.stop();
    world.anthropic.stop();
    dirs.cleanup();
  }
}

async function bareProbotAck(): Promise<LoadResult> {
  const port = await freePort();
  const log = pino({ level: "warn" });
  const server = new Server({
    host: "127.0.0.1",
    port,
    log,
    Probot: Probot.defaults({ appId: 1, privateKey: TEST_PRIVATE_KEY, secret: TEST_WEBHOOK_SECRET, log }),
    enableStaticFiles: false,
  });
  await server.load((app) => {
    app.on("issues.labeled", async () => {});
  });
  await server.start();
  try {
    const url = `http://127.0.0.1:${port}`;
    await load(url, "/dev/null", WARM_UP, IN_FLIGHT, 100_000);
    return await load(url, "/dev/null", DELIVERIES, IN_FLIGHT, 1_000);
  } finally {
    await server.stop();
  }
}

/** One budget check-and-reserve plus the usage write and settlement, as every LLM call does. */
async function ledgerLatency(): Promise<{ p50: number; p99: number }> {
  const dirs = tempDir();
  const db = openDatabase(path.join(dirs.dir, "ledger.sqlite"));
  try {
    await migrateToLatest(db);
    const now = Date.now();
    const task = await db
      .insertInto("tasks")
      .values({
        installation_id: 1,
        owner: "o",
        repo: "r",
        issue_number: 1,
        run: 1,
        stage: "coding",
        triggered_by: "bench",
        clone_url: "/dev/null",
        default_branch: "main",
        config: "{}",
        created_at: now,
        updated_at: now,
      })
      .returning("id")
      .executeTakeFirstOrThrow();
    const limits = serverBudgetLimits({ BUDGET_GLOBAL_DAILY_USD: "1000000", BUDGET_REPOSITORY_MONTHLY_USD: "1000000", BUDGET_TASK_USD: "1000000" });
    const prices = new PriceTable();
    const price = prices.priceOf("claude-sonnet-5-5");
    const request = JSON.stringify({ model: "claude-sonnet-5-5", max_tokens: 8192, messages: [{ role: "user", content: "x".repeat(20_000) }] });
    const subject = { installationId: 1, repository: "o/r", agent: "coder", taskId: task.id, subjectNumber: 1, jobId: null };
    const times: number[] = [];
    for (let i = 0; i < LEDGER_OPERATIONS; i++) {
      const started = performance.now();
      const reservation = await reserve(db, { subject, limits, amountUsd: estimateWorstCaseUsd(price, estimateInputTokens(request), 8192) });
      const usage = { input_tokens: 5000, output_tokens: 800, cache_creation_input_tokens: 1000, cache_read_input_tokens: 4000 };
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto("llm_usage")
          .values({ ...usage, created_at: Date.now(), installation_id: 1, repository: "o/r", subject_number: 1, task_id: task.id, job_id: null, agent: "coder", model: "claude-sonnet-5-5", cost_usd: prices.costUsd("claude-sonnet-5-5", usage), request_id: null })
          .execute();
        await trx.updateTable("budget_reservations").set({ status: "settled", settled_at: Date.now() }).where("id", "=", reservation.id).execute();
      });
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    return { p50: percentile(times, 50), p99: percentile(times, 99) };
  } finally {
    await db.destroy();
    dirs.cleanup();
  }
}

async function pipelineWallTime(): Promise<number[]> {
  const times: number[] = [];
  for (let run = 0; run < PIPELINE_RUNS; run++) {
    const dirs = tempDir();
    const world = createWorld();
    scriptHappyPath(world.anthropic);
    const app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "ws"), env: { LOG_LEVEL: "warn" } });
    try {
      const started = performance.now();
      await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
      for (;;) {
        const task = await app.db.selectFrom("tasks").select("stage").executeTakeFirst();
        const open = await app.db.selectFrom("jobs").select("id").where("state", "in", ["queued", "running"]).execute();
        if (task && open.length === 0 && ["ready_for_merge", "failed", "blocked"].includes(task.stage)) {
          if (task.stage !== "ready_for_merge") throw new Error(`the pipeline ended ${task.stage}`);
          break;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      times.push(performance.now() - started);
    } finally {
      await app.stop(0);
      world.github.stop();
      world.anthropic.stop();
      dirs.cleanup();
    }
  }
  return times.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  nock.disableNetConnect();
  nock.enableNetConnect((host) => /^(127\.0\.0\.1|localhost)(:\d+)?$/.test(host));
  const bare = await bareProbotAck();
  const mc = await missionControlAck();
  const ledger = await ledgerLatency();
  const pipeline = await pipelineWallTime();
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const report = `# Benchmark results

Machine: ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}.
Date: ${new Date().toISOString().slice(0, 10)}. Everything runs in one process on loopback; GitHub and Anthropic are nock fakes; git and SQLite are real.

## Webhook acknowledgement: Mission Control versus a bare Probot app

${DELIVERIES} signed \`issues.labeled\` deliveries, ${IN_FLIGHT} in flight, after ${WARM_UP} warm-up deliveries, measured in the same run.
Mission Control's handler reads the repository config (2 REST calls, 404), checks the sender's permission (1 REST call) and enqueues a job in SQLite; the bare app has one no-op handler.

| app | throughput | p50 | p99 |
|---|---|---|---|
| bare Probot (no-op handler) | ${bare.throughput.toFixed(0)} deliveries/s | ${ms(bare.p50)} | ${ms(bare.p99)} |
| Mission Control | ${mc.throughput.toFixed(0)} deliveries/s | ${ms(mc.p50)} | ${ms(mc.p99)} |
| ratio (Mission Control / bare) | ${(mc.throughput / bare.throughput).toFixed(2)}× | ${(mc.p50 / bare.p50).toFixed(2)}× | ${(mc.p99 / bare.p99).toFixed(2)}× |

## Ledger write plus budget check (${LEDGER_OPERATIONS} calls, one SQLite file)

Budget check-and-reserve against 3 limits in one \`BEGIN IMMEDIATE\` transaction, then the usage row and the settlement in a second one — what every Messages API call costs the app.

| p50 | p99 |
|---|---|
| ${ms(ledger.p50)} | ${ms(ledger.p99)} |

## End-to-end pipeline (label → plan → branch and PR → tests in the sandbox → review), ${PIPELINE_RUNS} runs

| min | median | max |
|---|---|---|
| ${ms(pipeline[0] ?? Number.NaN)} | ${ms(percentile(pipeline, 50))} | ${ms(pipeline.at(-1) ?? Number.NaN)} |
`;
  writeFileSync(new URL("./results.md", import.meta.url), report);
  console.log(report);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
