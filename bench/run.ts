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
import { estimateInputTokens, estimateWorstCaseNanoUsd } from "../src/domain/budget-rules.js";
import { reserve } from "../src/store/budgets.js";
import { migrateToLatest, openDatabase } from "../src/store/db.js";
import { PriceTable } from "../src/domain/pricing.js";
import { commentPayload } from "../test/e2e/command-helpers.js";
import { createWorld, GHE_HOST, labeledPayload, SECRET, scriptHappyPath } from "../test/e2e/scenario.js";
import { freePort, startApp, TEST_PRIVATE_KEY, TEST_WEBHOOK_SECRET, tempDir } from "../test/helpers/app-harness.js";
import { deliver } from "../test/helpers/webhooks.js";

const DELIVERIES = 500;
const SLOW_DELIVERIES = 200;
const SLOW_IN_FLIGHT = 10;
const GITHUB_DELAY_MS = 2_500;
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
  max: number;
}

/** A delivery to send: its event name and payload, for delivery number `i`. */
type DeliveryFactory = (i: number) => { event: string; payload: unknown };

/** Sends `count` signed deliveries with `inFlight` at a time; acknowledgement latency per delivery in ms. */
async function load(url: string, make: DeliveryFactory, count: number, inFlight: number, first: number): Promise<LoadResult> {
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let i = next++; i < count; i = next++) {
        // noWait: only the acknowledgement is measured, not the intake job that follows it.
        const r = await deliver(url, { ...make(first + i), secret: SECRET, noWait: true });
        if (r.status >= 300) throw new Error(`delivery answered ${r.status}: ${r.body}`);
        times.push(r.elapsedMs);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  return { throughput: count / seconds, p50: percentile(times, 50), p99: percentile(times, 99), max: times.at(-1) ?? Number.NaN };
}

const labeled =
  (cloneUrl: string): DeliveryFactory =>
  (i) => ({ event: "issues", payload: labeledPayload({ cloneUrl, issue: i }) });
/** A comment that is neither a command nor a mention: noise the app must shrug off. */
const noise =
  (cloneUrl: string): DeliveryFactory =>
  (i) => ({ event: "issue_comment", payload: commentPayload({ cloneUrl, issue: i, body: "Thanks, that looks right to me." }).payload });

/**
 * Mission Control's acknowledgement of `make`'s deliveries, `inFlight` at a time. With
 * `githubDelayMs`, every GitHub request the app makes meanwhile (its intake jobs run) is answered
 * only after that many milliseconds.
 */
async function missionControlAck(
  make: (cloneUrl: string) => DeliveryFactory,
  options: { count: number; inFlight: number; githubDelayMs?: number; expectJobs?: boolean },
): Promise<LoadResult> {
  const dirs = tempDir();
  const world = createWorld();
  if (options.githubDelayMs !== undefined) {
    // Replaces the fake GitHub: every request waits, then finds nothing.
    world.github.stop();
    for (const method of ["GET", "POST", "PATCH", "PUT", "DELETE"]) {
      nock(`https://${GHE_HOST}`).persist().intercept(/.*/, method).delay(options.githubDelayMs).reply(404, { message: "Not Found" });
    }
  }
  const app = await startApp({
    databasePath: path.join(dirs.dir, "mc.sqlite"),
    workspacesDir: path.join(dirs.dir, "ws"),
    startWorker: options.githubDelayMs !== undefined,
    env: { LOG_LEVEL: "warn" },
  });
  try {
    await load(app.url, make(world.bare), WARM_UP, options.inFlight, 100_000);
    const result = await load(app.url, make(world.bare), options.count, options.inFlight, 1_000);
    if (options.expectJobs) {
      const deliveries = await app.db.selectFrom("deliveries").select("delivery_id").execute();
      if (deliveries.length !== options.count + WARM_UP) throw new Error(`expected ${options.count + WARM_UP} recorded deliveries, found ${deliveries.length}`);
    }
    return result;
  } finally {
    await app.stop(0);
    world.github.stop();
    world.anthropic.stop();
    nock.cleanAll();
    dirs.cleanup();
  }
}

/** A bare Probot app with one no-op handler for the same event, as the baseline. */
async function bareProbotAck(make: (cloneUrl: string) => DeliveryFactory, event: "issues.labeled" | "issue_comment.created"): Promise<LoadResult> {
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
    app.on(event, async () => {});
  });
  await server.start();
  try {
    const url = `http://127.0.0.1:${port}`;
    await load(url, make("/dev/null"), WARM_UP, IN_FLIGHT, 100_000);
    return await load(url, make("/dev/null"), DELIVERIES, IN_FLIGHT, 1_000);
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
    const price = prices.nanoPriceOf("claude-sonnet-5-5");
    const request = JSON.stringify({ model: "claude-sonnet-5-5", max_tokens: 8192, messages: [{ role: "user", content: "x".repeat(20_000) }] });
    const subject = { installationId: 1, repository: "o/r", agent: "coder", taskId: task.id, subjectNumber: 1, jobId: null };
    const times: number[] = [];
    for (let i = 0; i < LEDGER_OPERATIONS; i++) {
      const started = performance.now();
      const reservation = await reserve(db, { subject, limits, amountNanoUsd: estimateWorstCaseNanoUsd(price, estimateInputTokens(request), 8192) });
      const usage = { input_tokens: 5000, output_tokens: 800, cache_creation_input_tokens: 1000, cache_read_input_tokens: 4000 };
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto("llm_usage")
          .values({
            ...usage,
            created_at: Date.now(),
            installation_id: 1,
            repository: "o/r",
            subject_number: 1,
            task_id: task.id,
            job_id: null,
            agent: "coder",
            model: "claude-sonnet-5-5",
            cost_nano_usd: prices.costNanoUsd("claude-sonnet-5-5", usage),
            request_id: null,
          })
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
  // Trigger deliveries at 50 in flight, against a bare app in the same run.
  const bare = await bareProbotAck(labeled, "issues.labeled");
  const mc = await missionControlAck(labeled, { count: DELIVERIES, inFlight: IN_FLIGHT, expectJobs: true });
  // Noise: comments that are neither a command nor a mention.
  const bareNoise = await bareProbotAck(noise, "issue_comment.created");
  const mcNoise = await missionControlAck(noise, { count: DELIVERIES, inFlight: IN_FLIGHT });
  // A slow GitHub: every request answered after 2.5 s, while the intake jobs make theirs.
  const slow = await missionControlAck(labeled, { count: SLOW_DELIVERIES, inFlight: SLOW_IN_FLIGHT, githubDelayMs: GITHUB_DELAY_MS });
  const ledger = await ledgerLatency();
  const pipeline = await pipelineWallTime();
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const report = `# Benchmark results

Machine: ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}.
Date: ${new Date().toISOString().slice(0, 10)}. Everything runs in one process on loopback; GitHub and Anthropic are nock fakes; git and SQLite are real.

## Webhook acknowledgement

Every delivery is signed and sent over loopback; the time is from the request to the answer. A
Mission Control handler makes no outbound request: it records the delivery, applies the checks
that need only the payload, and enqueues an intake job (permission, repository config, reaction
and trigger decision happen there). Baseline: a bare Probot app with one no-op handler for the
same event, measured in the same run.

### Trigger deliveries: ${DELIVERIES} \`issues.labeled\`, ${IN_FLIGHT} in flight, after ${WARM_UP} warm-up deliveries

| app | throughput | p50 | p99 |
|---|---|---|---|
| bare Probot (no-op handler) | ${bare.throughput.toFixed(0)} deliveries/s | ${ms(bare.p50)} | ${ms(bare.p99)} |
| Mission Control | ${mc.throughput.toFixed(0)} deliveries/s | ${ms(mc.p50)} | ${ms(mc.p99)} |
| ratio (Mission Control / bare) | ${(mc.throughput / bare.throughput).toFixed(2)}× | ${(mc.p50 / bare.p50).toFixed(2)}× | ${(mc.p99 / bare.p99).toFixed(2)}× |

### Noise: ${DELIVERIES} \`issue_comment.created\` without a command or mention, ${IN_FLIGHT} in flight

| app | throughput | p50 | p99 |
|---|---|---|---|
| bare Probot (no-op handler) | ${bareNoise.throughput.toFixed(0)} deliveries/s | ${ms(bareNoise.p50)} | ${ms(bareNoise.p99)} |
| Mission Control | ${mcNoise.throughput.toFixed(0)} deliveries/s | ${ms(mcNoise.p50)} | ${ms(mcNoise.p99)} |
| ratio (Mission Control / bare) | ${(mcNoise.throughput / bareNoise.throughput).toFixed(2)}× | ${(mcNoise.p50 / bareNoise.p50).toFixed(2)}× | ${(mcNoise.p99 / bareNoise.p99).toFixed(2)}× |

### A slow GitHub: every request answered after ${GITHUB_DELAY_MS} ms

${SLOW_DELIVERIES} \`issues.labeled\` deliveries, ${SLOW_IN_FLIGHT} in flight, the worker running (its intake jobs wait on GitHub meanwhile). GitHub gives up on a delivery after 10 s.

| p50 | p99 | max |
|---|---|---|
| ${ms(slow.p50)} | ${ms(slow.p99)} | ${ms(slow.max)} |

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
