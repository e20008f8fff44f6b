/**
 * `npm run bench` (its last step): issue 11's queue and ledger numbers, SQLite against
 * PostgreSQL. Results replace the `<!-- bench:queue -->` section of bench/results.md (appended
 * when absent); the rest of that file is left as it is. Not a test: nothing here asserts a
 * duration.
 *
 * 1. Job pickup latency (enqueue committed → runner started) of the real {@link Worker}, one
 *    process, both backends: with WORKER_POLL_MS at its default and at 100 ms, without
 *    `worker.notify()` (the queue alone) and with it (what an in-process enqueue gets).
 * 2. Throughput of no-op jobs drained from one PostgreSQL database by 1 and by 3 processes
 *    (replicas), each running a Worker with concurrency 2 (the default) and 8.
 * 3. Reservation + ledger write latency on PostgreSQL with 1 and 3 processes, on an empty ledger
 *    and on a busy month. Processes competing for one budget scope (same repository and task, a
 *    global limit): the store's `reserve` (transaction-scoped advisory locks per scope) against a
 *    prototype, in this file only, of counter rows locked `FOR UPDATE`. Processes each on their
 *    own repository and task under the default kinds of limit (no global one): the store's
 *    `reserve` only, to show whether its per-scope locks let them run side by side.
 *
 * better-sqlite3 in node_modules is built for this Node (20), pg-boss 12 needs Node ≥ 22.12: the
 * SQLite parts run in this process, every PostgreSQL part in child processes of Node 22 running
 * this same file as `queue.ts replica <url>` (`MC_BENCH_NODE22` names that binary; otherwise it is
 * found with `npx -p node@22`). PostgreSQL: `MC_BENCH_POSTGRES_URL` or `MC_TEST_POSTGRES_URL` (default
 * `postgres://postgres@127.0.0.1:5432/postgres`); a database `mc_bench_<random>` is created on
 * it and dropped at the end.
 */
import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { sql } from "kysely";
import { pino } from "pino";

import { ServerEnvVariables, serverBudgetLimits } from "../src/config/env.js";
import {
  type BudgetLimit,
  type BudgetSubject,
  budgetScopeKey,
  estimateInputTokens,
  estimateWorstCaseNanoUsd,
  limitApplies,
  periodWindow,
  reservationLockScopes,
} from "../src/domain/budget-rules.js";
import { PriceTable } from "../src/domain/pricing.js";
import { budgetAdvisoryLocks, reserve } from "../src/store/budgets.js";
import { type Db, inTransaction } from "../src/store/db.js";
import { openStore, type Store } from "../src/store/open-store.js";
import { pauseOf } from "../src/store/pauses.js";
import { openPostgres } from "../src/store/postgres.js";
import { enqueueJob, type JobSpec } from "../src/store/queue.js";
import { createTask } from "../src/store/tasks.js";
import { recordUsageAndSettle } from "../src/store/usage.js";
import { Worker } from "../src/worker/worker.js";

// ---------------------------------------------------------------------------------------------
// Settings

/** The server defaults (config/env.ts), read from the schema so they cannot drift. */
const DEFAULTS = {
  pollMs: ServerEnvVariables.shape.WORKER_POLL_MS.parse(undefined),
  concurrency: ServerEnvVariables.shape.WORKER_CONCURRENCY.parse(undefined),
  leaseMs: ServerEnvVariables.shape.JOB_LEASE_MS.parse(undefined),
  heartbeatSeconds: ServerEnvVariables.shape.JOB_HEARTBEAT_SECONDS.parse(undefined),
  retryBaseMs: ServerEnvVariables.shape.JOB_RETRY_BASE_MS.parse(undefined),
  retryMaxMs: ServerEnvVariables.shape.JOB_RETRY_MAX_MS.parse(undefined),
  maxAttempts: ServerEnvVariables.shape.JOB_MAX_ATTEMPTS.parse(undefined),
};
const FAST_POLL_MS = 100;
const PICKUP_JOBS = 200;
const PICKUP_SPACING_MS = 20;
const PICKUP_WARM_UP = 10;
const DRAIN_JOBS = 2000;
const DRAIN_REPLICAS = [1, 3];
const DRAIN_CONCURRENCY = [DEFAULTS.concurrency, 8];
const LEDGER_CALLS = 300;
const LEDGER_PROCESSES = [1, 3];
/** Usage rows put in the current month before the "busy month" runs (about 100 tasks × 30 calls a day). */
const LEDGER_PREFILL_ROWS = 50_000;
const LEDGER_PREFILL_CALLS = 100;
/** Every PostgreSQL throughput and ledger configuration runs this many times, interleaved; the best run is reported. */
const ROUNDS = 2;
const MODEL = "claude-sonnet-5-5";
const MARKER_START = "<!-- bench:queue -->";
const MARKER_END = "<!-- /bench:queue -->";
export const DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres";

const THIS_FILE = fileURLToPath(import.meta.url);
const silent = pino({ level: "silent" });
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}

export interface Stats {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function statsOf(values: readonly number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? Number.NaN };
}

// CPU accounting (Linux /proc; every figure is `null` where it cannot be read).

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** `/proc/<pid>/stat`: parent pid, own CPU ticks, and the CPU ticks of reaped children. */
function procStat(pid: number): { ppid: number; ticks: number; childTicks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text
      .slice(text.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    // Fields after the name start at field 3 (state): ppid is field 4, utime..cstime 14..17.
    return { ppid: fields[1] ?? 0, ticks: (fields[11] ?? 0) + (fields[12] ?? 0), childTicks: (fields[13] ?? 0) + (fields[14] ?? 0) };
  } catch {
    return null;
  }
}

/**
 * CPU seconds used so far by the PostgreSQL server whose postmaster is `postmaster`: its own,
 * its exited backends' (reaped, so counted in its children's time) and its live processes'.
 */
export function postgresCpuSeconds(postmaster: number | null): number | null {
  if (postmaster === null) return null;
  const main = procStat(postmaster);
  if (!main) return null;
  let ticks = main.ticks + main.childTicks;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat?.ppid === postmaster) ticks += stat.ticks + stat.childTicks;
  }
  return ticks / CLOCK_TICKS;
}

/** Busy and total CPU ticks of the whole machine (`/proc/stat`). */
function machineTicks(): { busy: number; total: number } | null {
  try {
    const [, ...values] = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/);
    const n = values.map(Number);
    const total = n.reduce((a, b) => a + b, 0);
    const idle = (n[3] ?? 0) + (n[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/** CPU use over one measured run. */
export interface CpuUse {
  /** CPU seconds of the benchmark's own processes doing the work (workers or ledger callers). */
  clientSeconds: number;
  /** CPU seconds of the PostgreSQL server. */
  postgresSeconds: number | null;
  /** Share of the machine's CPU time that was busy (every process, ours or not). */
  machineBusy: number | null;
}

export class CpuMeter {
  readonly #postmaster: number | null;
  readonly #pg: number | null;
  readonly #machine: { busy: number; total: number } | null;
  constructor(postmaster: number | null) {
    this.#postmaster = postmaster;
    this.#pg = postgresCpuSeconds(postmaster);
    this.#machine = machineTicks();
  }
  stop(clientSeconds: number): CpuUse {
    const pg = postgresCpuSeconds(this.#postmaster);
    const machine = machineTicks();
    return {
      clientSeconds,
      postgresSeconds: pg !== null && this.#pg !== null ? pg - this.#pg : null,
      machineBusy: machine && this.#machine ? (machine.busy - this.#machine.busy) / Math.max(1, machine.total - this.#machine.total) : null,
    };
  }
}

export const cpuSecondsOf = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1e6;

/** Distinct issue numbers, so every job has its own lock key. */
let nextIssue = 1;

function noOpJob(tag: string): JobSpec {
  const issue = nextIssue++;
  // `tracking` is a stage-lane kind whose payload may be empty.
  return {
    kind: "tracking",
    taskId: null,
    installationId: 1,
    lockKey: `bench/queue#${issue}`,
    dedupeKey: `bench:${tag}:${issue}`,
    payload: {},
    maxAttempts: DEFAULTS.maxAttempts,
  };
}

function benchWorker(db: Db, options: { pollMs: number; concurrency: number; onStart?: (dedupeKey: string) => void; onSucceeded?: () => void }): Worker {
  return new Worker({
    db,
    log: silent,
    concurrency: options.concurrency,
    pollMs: options.pollMs,
    leaseMs: DEFAULTS.leaseMs,
    retryBaseMs: DEFAULTS.retryBaseMs,
    retryMaxMs: DEFAULTS.retryMaxMs,
    lane: { except: ["intake"] },
    run: (job) => {
      options.onStart?.(job.dedupe_key);
      return Promise.resolve({});
    },
    onFailed: () => Promise.resolve(),
    onJobFinished: (_job, state) => {
      if (state === "succeeded") options.onSucceeded?.();
    },
  });
}

// ---------------------------------------------------------------------------------------------
// 1. Pickup latency (one process, either backend)

interface PickupScenario {
  pollMs: number;
  notify: boolean;
}

const PICKUP_SCENARIOS: PickupScenario[] = [
  { pollMs: DEFAULTS.pollMs, notify: false },
  { pollMs: FAST_POLL_MS, notify: false },
  { pollMs: DEFAULTS.pollMs, notify: true },
];

interface PickupResult extends PickupScenario {
  latency: Stats;
}

/**
 * Enqueues {@link PICKUP_JOBS} no-op jobs, one every {@link PICKUP_SPACING_MS} ms, each in its own
 * committed transaction, while a Worker of the default concurrency runs; latency = the runner's
 * start − the enqueue's commit (both `performance.now()` in this process).
 */
async function pickupLatency(store: Store, scenario: PickupScenario, tag: string): Promise<PickupResult> {
  const started = new Map<string, number>();
  const committed = new Map<string, number>();
  const worker = benchWorker(store.db, {
    pollMs: scenario.pollMs,
    concurrency: DEFAULTS.concurrency,
    onStart: (key) => started.set(key, performance.now()),
  });
  worker.start();
  const enqueue = async (spec: JobSpec) => {
    await inTransaction(store.db, (trx) => enqueueJob(trx, spec));
    committed.set(spec.dedupeKey, performance.now());
    if (scenario.notify) worker.notify();
  };
  try {
    for (let i = 0; i < PICKUP_WARM_UP; i++) await enqueue(noOpJob(`${tag}-warm`));
    while (started.size < PICKUP_WARM_UP) await sleep(5);
    started.clear();
    committed.clear();
    const t0 = performance.now();
    for (let i = 0; i < PICKUP_JOBS; i++) {
      await sleep(Math.max(0, t0 + i * PICKUP_SPACING_MS - performance.now()));
      await enqueue(noOpJob(tag));
    }
    const deadline = performance.now() + 2 * scenario.pollMs + 10_000;
    while (started.size < PICKUP_JOBS && performance.now() < deadline) await sleep(5);
    if (started.size < PICKUP_JOBS) throw new Error(`${tag}: only ${started.size} of ${PICKUP_JOBS} jobs started`);
  } finally {
    await worker.stop(5_000);
  }
  const latencies = [...committed].map(([key, at]) => (started.get(key) ?? Number.NaN) - at);
  return { ...scenario, latency: statsOf(latencies) };
}

async function pickupAll(store: Store): Promise<PickupResult[]> {
  const results: PickupResult[] = [];
  for (const scenario of PICKUP_SCENARIOS) {
    results.push(await pickupLatency(store, scenario, `${store.backend}-pickup-${scenario.pollMs}-${scenario.notify ? "notify" : "poll"}`));
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// 2. Throughput

interface DrainResult {
  backend: "sqlite" | "postgres";
  replicas: number;
  concurrency: number;
  jobsPerSecond: number;
  seconds: number;
  /** Runner invocations: more than the jobs would mean a job ran twice. */
  runs: number;
  cpu: CpuUse;
  /** Throughput of the other rounds of the same configuration (PostgreSQL). */
  others: number[];
}

/** Enqueues `count` no-op jobs in transactions of 100 (4 at a time on PostgreSQL); not timed. */
async function seedJobs(store: Store, count: number, tag: string): Promise<void> {
  const specs = Array.from({ length: count }, () => noOpJob(tag));
  const lanes = store.backend === "postgres" ? 4 : 1;
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      for (let i = next; i < count; i = next) {
        next += 100;
        const batch = specs.slice(i, i + 100);
        await inTransaction(store.db, async (trx) => {
          for (const spec of batch) await enqueueJob(trx, spec);
        });
      }
    }),
  );
}

/** SQLite, in this process: the reference point (one process is the SQLite mode's only shape). */
async function drainSqlite(store: Store, concurrency: number): Promise<DrainResult> {
  await seedJobs(store, DRAIN_JOBS, `sqlite-drain-${concurrency}`);
  let finished = 0;
  let runs = 0;
  let lastFinish = 0;
  const worker = benchWorker(store.db, {
    pollMs: DEFAULTS.pollMs,
    concurrency,
    onStart: () => runs++,
    onSucceeded: () => {
      finished++;
      lastFinish = performance.now();
    },
  });
  const meter = new CpuMeter(null);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  worker.start();
  while (finished < DRAIN_JOBS) await sleep(2);
  const cpu = meter.stop(cpuSecondsOf(process.cpuUsage(cpu0)));
  const seconds = (lastFinish - t0) / 1000;
  await worker.stop(5_000);
  if (runs !== DRAIN_JOBS) throw new Error(`sqlite drain: the runner ran ${runs} times for ${DRAIN_JOBS} jobs`);
  return { backend: "sqlite", replicas: 1, concurrency, jobsPerSecond: DRAIN_JOBS / seconds, seconds, runs, cpu, others: [] };
}

// ---------------------------------------------------------------------------------------------
// 3. Ledger: reserve → record usage → settle, as adapters/anthropic/metered-llm.ts does

type LedgerVariant = "advisory" | "for-update";

/**
 * Who the processes of a ledger run call for. `shared`: all of them for one installation,
 * repository, agent and task, under {@link BENCH_LIMIT_ENV} — every reservation competes for the
 * same limits. `own`: each process for its own repository and task (same installation and agent),
 * under {@link OWN_LIMIT_ENV} — no limit counts another process's spend.
 */
type LedgerScopes = "shared" | "own";

interface LedgerTimes {
  pause: number[];
  reserve: number[];
  settle: number[];
  call: number[];
  startedAt: number;
  endedAt: number;
  cpuSeconds: number;
}

/** Limits of the `shared` runs: a global daily, a repository monthly and a task limit, never approached. */
const BENCH_LIMIT_ENV = { BUDGET_GLOBAL_DAILY_USD: "1000000", BUDGET_REPOSITORY_MONTHLY_USD: "1000000", BUDGET_TASK_USD: "1000000" };
/** Limits of the `own` runs: the kinds the server sets by default (repository monthly, task; no global limit), never approached. */
const OWN_LIMIT_ENV = { BUDGET_REPOSITORY_MONTHLY_USD: "1000000", BUDGET_TASK_USD: "1000000" };
const LEDGER_LIMIT_ENV: Record<LedgerScopes, Record<string, string>> = { shared: BENCH_LIMIT_ENV, own: OWN_LIMIT_ENV };
/** Who a bench call is made for: installation 1, agent `coder`, `repository` (`o/r` in the `shared` runs) and the task. */
const BENCH_SUBJECT = (taskId: number, repository = "o/r"): BudgetSubject => ({
  installationId: 1,
  repository,
  agent: "coder",
  taskId,
  subjectNumber: 1,
  jobId: null,
});
/** The repository of process `index` in the `own` runs (its task is created for it). */
const OWN_REPOSITORY = (index: number) => `o/r${index + 1}`;
const USAGE = { input_tokens: 5000, output_tokens: 800, cache_creation_input_tokens: 1000, cache_read_input_tokens: 4000 };

/** The prototype's table: one counter row per limit, scope key and window (`FOR UPDATE` variant only). */
const COUNTERS_DDL = sql`create table if not exists bench_budget_counters (
  key text primary key,
  used_nano_usd bigint not null default 0,
  held_nano_usd bigint not null default 0
)`;

/** The counter rows a call for `subject` touches, sorted (one lock order for every transaction). */
function counterKeys(limits: readonly BudgetLimit[], subject: BudgetSubject, at: number): Array<{ key: string; limit: BudgetLimit }> {
  return limits
    .filter((limit) => limitApplies(limit, subject))
    .map((limit) => ({ key: `${limit.scope}:${budgetScopeKey(limit, subject)}:${limit.period}:${periodWindow(limit.period, at).start}`, limit }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Prototype (bench only) of the alternative the issue names: counter rows locked `FOR UPDATE`.
 * Creates missing rows, locks them in key order, checks `used + held + amount` against each
 * limit, inserts the reservation and adds it to `held`. Alerts are left out (the limits here are
 * never approached). O(1) per limit, whatever the ledger's size.
 */
async function reserveWithCounters(
  db: Db,
  subject: BudgetSubject,
  limits: readonly BudgetLimit[],
  amountNanoUsd: number,
): Promise<{ id: number; keys: string[] }> {
  const at = Date.now();
  const counters = counterKeys(limits, subject, at);
  const keys = counters.map((c) => c.key);
  return db.transaction().execute(async (trx) => {
    await sql`insert into bench_budget_counters (key) select unnest(${keys}::text[]) order by 1 on conflict do nothing`.execute(trx);
    const { rows } = await sql<{ key: string; used_nano_usd: number; held_nano_usd: number }>`
      select key, used_nano_usd, held_nano_usd from bench_budget_counters where key = any(${keys}::text[]) order by key for update`.execute(trx);
    for (const { key, limit } of counters) {
      const row = rows.find((r) => r.key === key);
      if (!row) throw new Error(`counter ${key} missing`);
      if (limit.action === "block" && row.used_nano_usd + row.held_nano_usd + amountNanoUsd > limit.limitNanoUsd) throw new Error(`budget ${key} exceeded`);
    }
    const inserted = await trx
      .insertInto("budget_reservations")
      .values({
        created_at: at,
        installation_id: subject.installationId,
        repository: subject.repository,
        agent: subject.agent,
        task_id: subject.taskId,
        job_id: subject.jobId,
        amount_nano_usd: amountNanoUsd,
        status: "held",
        settled_at: null,
      })
      .returning("id")
      .executeTakeFirstOrThrow();
    await sql`update bench_budget_counters set held_nano_usd = held_nano_usd + ${amountNanoUsd} where key = any(${keys}::text[])`.execute(trx);
    return { id: inserted.id, keys };
  });
}

/**
 * The prototype's settlement: the usage row, the reservation settled, and both moved from `held`
 * to `used` on the counters — which must be locked too (in key order), so settling competes with
 * reserving for the same rows.
 */
async function recordAndSettleWithCounters(db: Db, row: Parameters<typeof recordUsageAndSettle>[1], reservationId: number, keys: string[]): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.insertInto("llm_usage").values(row).execute();
    const settled = await trx
      .updateTable("budget_reservations")
      .set({ status: "settled", settled_at: Date.now() })
      .where("id", "=", reservationId)
      .where("status", "=", "held")
      .returning("amount_nano_usd")
      .executeTakeFirst();
    if (!settled) return;
    await sql`select 1 from bench_budget_counters where key = any(${keys}::text[]) order by key for update`.execute(trx);
    await sql`update bench_budget_counters
       set held_nano_usd = held_nano_usd - ${settled.amount_nano_usd}, used_nano_usd = used_nano_usd + ${row.cost_nano_usd}
     where key = any(${keys}::text[])`.execute(trx);
  });
}

/** One process's calls for `subject`: pause check, reserve, then usage + settle in one transaction — timed each. */
async function ledgerCalls(db: Db, variant: LedgerVariant, scopes: LedgerScopes, subject: BudgetSubject, calls: number): Promise<LedgerTimes> {
  const limits = serverBudgetLimits(LEDGER_LIMIT_ENV[scopes]);
  const prices = new PriceTable();
  const request = JSON.stringify({ model: MODEL, max_tokens: 8192, messages: [{ role: "user", content: "x".repeat(20_000) }] });
  const amountNanoUsd = estimateWorstCaseNanoUsd(prices.nanoPriceOf(MODEL), estimateInputTokens(request), 8192);
  const times: LedgerTimes = { pause: [], reserve: [], settle: [], call: [], startedAt: 0, endedAt: 0, cpuSeconds: 0 };
  const cpu0 = process.cpuUsage();
  times.startedAt = now();
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    if (await pauseOf(db, subject.installationId)) throw new Error("paused");
    const t1 = performance.now();
    const reservation =
      variant === "advisory" ? await reserve(db, { subject, limits, amountNanoUsd }) : await reserveWithCounters(db, subject, limits, amountNanoUsd);
    const t2 = performance.now();
    const row = {
      ...USAGE,
      created_at: Date.now(),
      installation_id: subject.installationId,
      repository: subject.repository,
      subject_number: 1,
      task_id: subject.taskId,
      job_id: null,
      agent: subject.agent,
      model: MODEL,
      cost_nano_usd: prices.costNanoUsd(MODEL, USAGE),
      request_id: null,
    };
    if ("keys" in reservation) await recordAndSettleWithCounters(db, row, reservation.id, reservation.keys);
    else await recordUsageAndSettle(db, row, reservation.id);
    const t3 = performance.now();
    times.pause.push(t1 - t0);
    times.reserve.push(t2 - t1);
    times.settle.push(t3 - t2);
    times.call.push(t3 - t0);
  }
  times.endedAt = now();
  times.cpuSeconds = cpuSecondsOf(process.cpuUsage(cpu0));
  return times;
}

// ---------------------------------------------------------------------------------------------
// Replicas: child processes of Node 22 (`queue.ts replica <url>`), each with the store open as
// the app opens it (pool of 10 + pg-boss), driven by the parent over IPC. The same three serve
// every PostgreSQL measurement, so no run pays for starting Node and pg-boss.

type ToChild =
  | { type: "pickup" }
  | { type: "seed"; count: number; tag: string }
  | { type: "drain"; concurrency: number }
  | { type: "stop" }
  | { type: "ledger"; variant: LedgerVariant; scopes: LedgerScopes; calls: number; subject: BudgetSubject }
  | { type: "exit" };
type FromChild =
  | { type: "ready" }
  | { type: "pickup"; results: PickupResult[] }
  | { type: "seeded" }
  | { type: "progress"; finished: number }
  | { type: "drained"; finished: number; runs: number; lastFinishAt: number; cpuSeconds: number }
  | { type: "ledger"; times: LedgerTimes };

function send(message: FromChild): void {
  process.send?.(message);
}

async function replica(url: string): Promise<void> {
  const store = await openStore({
    databaseUrl: url,
    databasePath: "",
    heartbeatSeconds: DEFAULTS.heartbeatSeconds,
    onError: (err) => console.error("background error:", err.message),
  });
  let drain: { worker: Worker; finished: number; runs: number; lastFinishAt: number; cpu0: NodeJS.CpuUsage; progress: NodeJS.Timeout } | undefined;
  const handle = async (message: ToChild): Promise<boolean> => {
    switch (message.type) {
      case "pickup":
        send({ type: "pickup", results: await pickupAll(store) });
        return true;
      case "seed":
        await seedJobs(store, message.count, message.tag);
        send({ type: "seeded" });
        return true;
      case "drain": {
        const state = { finished: 0, runs: 0, lastFinishAt: 0, cpu0: process.cpuUsage() };
        const worker = benchWorker(store.db, {
          pollMs: DEFAULTS.pollMs,
          concurrency: message.concurrency,
          onStart: () => state.runs++,
          onSucceeded: () => {
            state.finished++;
            state.lastFinishAt = now();
          },
        });
        let reported = 0;
        const progress = setInterval(() => {
          if (state.finished !== reported) send({ type: "progress", finished: (reported = state.finished) });
        }, 20);
        // The object the callbacks update, so that `stop` reads their latest counts.
        drain = Object.assign(state, { worker, progress });
        worker.start();
        return true;
      }
      case "stop": {
        if (!drain) return true;
        const { worker, progress, cpu0 } = drain;
        const cpuSeconds = cpuSecondsOf(process.cpuUsage(cpu0));
        clearInterval(progress);
        await worker.stop(5_000);
        send({ type: "drained", finished: drain.finished, runs: drain.runs, lastFinishAt: drain.lastFinishAt, cpuSeconds });
        drain = undefined;
        return true;
      }
      case "ledger":
        send({ type: "ledger", times: await ledgerCalls(store.db, message.variant, message.scopes, message.subject, message.calls) });
        return true;
      case "exit":
        await store.close();
        return false;
    }
  };
  // One message at a time, in order (a drain's "stop" follows its "drain", which returns at once).
  await new Promise<void>((resolve, reject) => {
    let queue = Promise.resolve(true);
    process.on("message", (message: ToChild) => {
      queue = queue.then((more) => (more ? handle(message) : false));
      queue.then((more) => (more ? undefined : resolve()), reject);
    });
    send({ type: "ready" });
  });
}

// ---------------------------------------------------------------------------------------------
// The parent (Node 20)

/** A replica as the parent sees it. */
interface Replica {
  /** The next message of `type` not yet taken (progress messages go to `onProgress` instead). */
  next<T extends Exclude<FromChild["type"], "progress">>(type: T): Promise<Extract<FromChild, { type: T }>>;
  tell(message: ToChild): void;
  onProgress: ((finished: number) => void) | undefined;
  /** Rejects when the process ends before it was told to exit. */
  failed: Promise<never>;
  /** Tells it to exit and waits until it has. */
  exit(): Promise<void>;
}

function spawnReplica(node22: string, url: string): Replica {
  const proc: ChildProcess = fork(THIS_FILE, ["replica", url], {
    execPath: node22,
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const queued = new Map<string, FromChild[]>();
  const waiting = new Map<string, Array<{ resolve: (m: FromChild) => void; reject: (err: Error) => void }>>();
  let failure: Error | undefined;
  let exiting = false;
  const ended = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  const failed = ended.then((code) => {
    failure = new Error(`a replica exited with ${code}${exiting ? "" : " before it was told to"}`);
    for (const list of waiting.values()) for (const w of list.splice(0)) w.reject(failure);
    if (!exiting || code !== 0) throw failure;
    return new Promise<never>(() => undefined);
  });
  failed.catch(() => undefined);
  const replica: Replica = {
    onProgress: undefined,
    failed,
    next<T extends Exclude<FromChild["type"], "progress">>(type: T) {
      const message = queued.get(type)?.shift();
      if (message) return Promise.resolve(message as Extract<FromChild, { type: T }>);
      if (failure) return Promise.reject(failure);
      return new Promise<Extract<FromChild, { type: T }>>((resolve, reject) => {
        const list = waiting.get(type) ?? [];
        list.push({ resolve: resolve as (m: FromChild) => void, reject });
        waiting.set(type, list);
      });
    },
    tell(message) {
      proc.send(message);
    },
    async exit() {
      exiting = true;
      if (proc.exitCode === null) proc.send({ type: "exit" } satisfies ToChild);
      const code = await ended;
      if (code !== 0) throw new Error(`a replica exited with ${code}`);
    },
  };
  proc.on("message", (message: FromChild) => {
    if (message.type === "progress") return replica.onProgress?.(message.finished);
    const waiter = waiting.get(message.type)?.shift();
    if (waiter) return waiter.resolve(message);
    queued.set(message.type, [...(queued.get(message.type) ?? []), message]);
  });
  return replica;
}

/** The Node ≥ 22.12 binary: MC_BENCH_NODE22, this one if it qualifies, else `npx -p node@22`. */
export function findNode22(): string {
  if (process.env.MC_BENCH_NODE22) return process.env.MC_BENCH_NODE22;
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  if (major > 22 || (major === 22 && minor >= 12)) return process.execPath;
  return execFileSync("npx", ["-y", "-p", "node@22", "node", "-e", "console.log(process.execPath)"], { encoding: "utf8" }).trim();
}

export async function createDatabase(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `mc_bench_${randomBytes(6).toString("hex")}`;
  const admin = openPostgres(adminUrl, { maxConnections: 1 });
  await sql`create database ${sql.id(name)}`.execute(admin);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      try {
        await sql`drop database if exists ${sql.id(name)} with (force)`.execute(admin);
      } finally {
        await admin.destroy();
      }
    },
  };
}

/** Rejects after `ms` with `message`; `clear()` cancels it. */
function deadline(ms: number, message: string): { promise: Promise<never>; clear(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  promise.catch(() => undefined);
  return { promise, clear: () => clearTimeout(timer) };
}

async function drainPostgres(replicas: readonly Replica[], db: Db, postmaster: number | null, count: number, concurrency: number): Promise<DrainResult> {
  // The finished jobs of the previous run out of the way, so each run starts from the same table.
  await sql`delete from pgboss.job where name = 'work'`.execute(db);
  const [seeder] = replicas;
  if (!seeder) throw new Error("no replica");
  seeder.tell({ type: "seed", count: DRAIN_JOBS, tag: `pg-drain-${count}x${concurrency}-${randomBytes(3).toString("hex")}` });
  await seeder.next("seeded");
  const active = replicas.slice(0, count);
  const progress = new Map<Replica, number>();
  let allDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  for (const r of active) {
    r.onProgress = (finished) => {
      progress.set(r, finished);
      if ([...progress.values()].reduce((a, b) => a + b, 0) >= DRAIN_JOBS) allDone();
    };
  }
  const meter = new CpuMeter(postmaster);
  const goAt = now();
  for (const r of active) r.tell({ type: "drain", concurrency });
  const limit = deadline(120_000, `drain ${count}×${concurrency}: not done after 120 s`);
  try {
    await Promise.race([done, limit.promise, ...active.map((r) => r.failed)]);
  } finally {
    limit.clear();
  }
  for (const r of active) r.tell({ type: "stop" });
  const reports = await Promise.all(active.map((r) => r.next("drained")));
  for (const r of active) r.onProgress = undefined;
  const cpu = meter.stop(reports.reduce((a, r) => a + r.cpuSeconds, 0));
  const seconds = (Math.max(...reports.map((r) => r.lastFinishAt)) - goAt) / 1000;
  const finished = reports.reduce((a, r) => a + r.finished, 0);
  if (finished !== DRAIN_JOBS) throw new Error(`drain ${count}×${concurrency}: ${finished} jobs finished, expected ${DRAIN_JOBS}`);
  const runs = reports.reduce((a, r) => a + r.runs, 0);
  if (runs !== DRAIN_JOBS) throw new Error(`drain ${count}×${concurrency}: the runner ran ${runs} times for ${DRAIN_JOBS} jobs`);
  return { backend: "postgres", replicas: count, concurrency, jobsPerSecond: DRAIN_JOBS / seconds, seconds, runs, cpu, others: [] };
}

interface LedgerConfig {
  variant: LedgerVariant;
  scopes: LedgerScopes;
  processes: number;
  /** Calls per process. */
  calls: number;
  /** Usage rows already in the current month when the run starts. */
  prefill: number;
}

interface LedgerResult extends LedgerConfig {
  pause: Stats;
  reserve: Stats;
  settle: Stats;
  call: Stats;
  callsPerSecond: number;
  cpu: CpuUse;
  /** Throughput of the other rounds of the same configuration. */
  others: number[];
}

/** The tasks the ledger runs call for: one for every process of the `shared` runs, one per process in the `own` runs. */
interface LedgerTasks {
  shared: number;
  own: number[];
}

/** The subject of each process of a run, in replica order. */
function ledgerSubjects(scopes: LedgerScopes, processes: number, tasks: LedgerTasks): BudgetSubject[] {
  return Array.from({ length: processes }, (_v, i) => {
    if (scopes === "shared") return BENCH_SUBJECT(tasks.shared);
    const taskId = tasks.own[i];
    if (taskId === undefined) throw new Error(`no task for process ${i + 1}`);
    return BENCH_SUBJECT(taskId, OWN_REPOSITORY(i));
  });
}

/**
 * The scopes (`global`, `repository`, …) whose advisory locks conflict between the processes
 * calling for `subjects` — one takes the lock exclusive, another in any mode — by the store's own
 * mapping ({@link reservationLockScopes}, then {@link budgetAdvisoryLocks}, so that a hash
 * collision would show as a conflict too).
 */
function lockConflicts(subjects: readonly BudgetSubject[], limits: readonly BudgetLimit[]): string[] {
  const locksOf = (subject: BudgetSubject) =>
    reservationLockScopes(subject, limits).flatMap((scope) =>
      budgetAdvisoryLocks([scope]).map((lock) => ({ scope: scope.key.split(":")[0] ?? scope.key, ...lock })),
    );
  const perProcess = subjects.map(locksOf);
  const conflicts = new Set<string>();
  perProcess.forEach((mine, i) =>
    perProcess.forEach((theirs, j) => {
      if (i === j) return;
      for (const a of mine) if (theirs.some((b) => b.id === a.id && (a.exclusive || b.exclusive))) conflicts.add(a.scope);
    }),
  );
  return [...conflicts].sort();
}

/**
 * Puts `rows` usage rows of other tasks of the repository of each of `subjects` in the current
 * month, evenly spread up to now: what the advisory variant's sums read.
 */
async function prefillLedger(db: Db, rows: number, subjects: readonly BudgetSubject[]): Promise<void> {
  if (rows === 0) return;
  const at = Date.now();
  const monthStart = periodWindow("monthly", at).start;
  const cost = new PriceTable().costNanoUsd(MODEL, USAGE);
  for (const subject of subjects) {
    await sql`
      insert into llm_usage (created_at, installation_id, repository, subject_number, task_id, job_id, agent, model,
                             input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_nano_usd, request_id)
      select cast(${monthStart} as bigint) + ((cast(${at} as bigint) - ${monthStart}) * i) / ${rows + 1}, ${subject.installationId}, ${subject.repository}, 1, null, null,
             ${subject.agent}, ${MODEL}, ${USAGE.input_tokens}, ${USAGE.output_tokens}, ${USAGE.cache_creation_input_tokens},
             ${USAGE.cache_read_input_tokens}, ${cost}, null
        from generate_series(1, ${rows}) as i`.execute(db);
  }
  await sql`analyze llm_usage`.execute(db);
}

/**
 * Sets the counters of the `FOR UPDATE` prototype for `subject` to the ledger's totals, as if they
 * had been kept since the month began (the `shared` runs only: one repository in the ledger).
 */
async function prefillCounters(db: Db, limits: readonly BudgetLimit[], subject: BudgetSubject): Promise<void> {
  const at = Date.now();
  for (const { key, limit } of counterKeys(limits, subject, at)) {
    const window = periodWindow(limit.period, at);
    const { rows: used } = await sql<{ n: string }>`
      select cast(coalesce(sum(cost_nano_usd), 0) as text) as n from llm_usage
       where created_at >= ${window.start} and (cast(${limit.scope} as text) <> 'task' or task_id = ${subject.taskId})`.execute(db);
    await sql`insert into bench_budget_counters (key, used_nano_usd) values (${key}, ${Number(used[0]?.n ?? 0)})`.execute(db);
  }
}

async function ledgerRun(replicas: readonly Replica[], db: Db, postmaster: number | null, tasks: LedgerTasks, config: LedgerConfig): Promise<LedgerResult> {
  const { variant, scopes, processes, calls } = config;
  const subjects = ledgerSubjects(scopes, processes, tasks);
  // Each run starts from the same ledger: empty, or the busy month — in the `own` runs, of every
  // process's repository whether or not that process runs, so that 1 and 3 processes start alike.
  await sql`truncate llm_usage, budget_reservations, budget_alerts, bench_budget_counters`.execute(db);
  await prefillLedger(db, config.prefill, ledgerSubjects(scopes, scopes === "shared" ? 1 : tasks.own.length, tasks));
  const [first] = subjects;
  if (variant === "for-update" && first) {
    if (scopes !== "shared") throw new Error("the FOR UPDATE prototype runs with shared scopes only");
    await prefillCounters(db, serverBudgetLimits(LEDGER_LIMIT_ENV[scopes]), first);
  }
  const active = replicas.slice(0, processes);
  const meter = new CpuMeter(postmaster);
  if (active.length !== subjects.length) throw new Error(`ledger ${variant} ${scopes}×${processes}: ${active.length} replicas`);
  subjects.forEach((subject, i) => active[i]?.tell({ type: "ledger", variant, scopes, calls, subject }));
  const reports = await Promise.all(active.map((r) => r.next("ledger")));
  const cpu = meter.stop(reports.reduce((a, r) => a + r.times.cpuSeconds, 0));
  const all = (pick: (t: LedgerTimes) => number[]) => statsOf(reports.flatMap((r) => pick(r.times)));
  const seconds = (Math.max(...reports.map((r) => r.times.endedAt)) - Math.min(...reports.map((r) => r.times.startedAt))) / 1000;
  const { rows } = await sql<{ n: number }>`select count(*)::bigint as n from budget_reservations where status = 'settled'`.execute(db);
  if (Number(rows[0]?.n) !== processes * calls) throw new Error(`ledger ${variant} ${scopes}×${processes}: ${rows[0]?.n} settled reservations`);
  return {
    ...config,
    pause: all((t) => t.pause),
    reserve: all((t) => t.reserve),
    settle: all((t) => t.settle),
    call: all((t) => t.call),
    callsPerSecond: (processes * calls) / seconds,
    cpu,
    others: [],
  };
}

/**
 * Runs every configuration {@link ROUNDS} times, interleaved (the second round in reverse order),
 * so that a burst of other load on the machine does not land on one configuration only.
 *
 * @returns the runs of each configuration, in the order of `configs`
 */
export async function rounds<C, R>(configs: readonly C[], run: (config: C, round: number) => Promise<R>): Promise<R[][]> {
  const results = configs.map((): R[] => []);
  for (let round = 0; round < ROUNDS; round++) {
    const order = configs.map((_c, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) results[i]?.push(await run(configs[i] as C, round));
  }
  return results;
}

/** The run with the highest throughput, with the other runs' throughput attached. */
function best<R extends { others: number[] }>(runs: readonly R[], throughput: (r: R) => number): R {
  const sorted = [...runs].sort((a, b) => throughput(b) - throughput(a));
  const [top, ...rest] = sorted;
  if (!top) throw new Error("no runs");
  return { ...top, others: rest.map(throughput) };
}

interface Floor {
  select: Stats;
  commit: Stats;
}

/** The floor under every PostgreSQL figure: one round trip, and one committed single-row insert (a WAL flush). */
async function postgresFloor(db: Db): Promise<Floor> {
  await sql`create table if not exists bench_commit (id bigserial primary key, at bigint not null)`.execute(db);
  const select: number[] = [];
  const commit: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t0 = performance.now();
    await sql`select 1`.execute(db);
    select.push(performance.now() - t0);
  }
  for (let i = 0; i < 300; i++) {
    const t0 = performance.now();
    await sql`insert into bench_commit (at) values (${Date.now()})`.execute(db);
    commit.push(performance.now() - t0);
  }
  return { select: statsOf(select), commit: statsOf(commit) };
}

/** The postmaster's pid when the server runs on this machine (for its CPU time), else `null`. */
export async function postmasterOf(db: Db, url: string): Promise<number | null> {
  if (!["127.0.0.1", "localhost", "[::1]"].includes(new URL(url).hostname)) return null;
  const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db);
  const backend = procStat(Number(rows[0]?.pid));
  if (!backend) return null;
  try {
    return readFileSync(`/proc/${backend.ppid}/comm`, "utf8").trim() === "postgres" ? backend.ppid : null;
  } catch {
    return null;
  }
}

function report(input: {
  node22Version: string;
  postgresVersion: string;
  postgresSettings: string;
  floor: Floor;
  sqlitePickup: PickupResult[];
  pgPickup: PickupResult[];
  drains: DrainResult[];
  ledger: LedgerResult[];
  /** For each kind of run, the scopes whose locks conflict between its processes (see {@link lockConflicts}). */
  lockConflicts: Record<LedgerScopes, string[]>;
  wallSeconds: number;
  loadBefore: number[];
  loadAfter: number[];
}): string {
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const s = (n: number | null) => (n === null ? "n/a" : `${n.toFixed(1)} s`);
  const pct = (n: number | null) => (n === null ? "n/a" : `${(n * 100).toFixed(0)} %`);
  const others = (values: number[]) =>
    values.length === 0 ? "" : ` (other round${values.length > 1 ? "s" : ""}: ${values.map((v) => v.toFixed(0)).join(", ")})`;
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(" / ");
  const cpu = os.cpus()[0]?.model.trim() ?? "unknown CPU";
  const pickupRow = (backend: string, r: PickupResult) =>
    `| ${backend} | ${r.pollMs} ms${r.pollMs === DEFAULTS.pollMs ? " (default)" : ""} | ${r.notify ? "yes" : "no"} | ${ms(r.latency.p50)} | ${ms(r.latency.p99)} | ${ms(r.latency.max)} |`;
  const pgDrain = (replicas: number, concurrency: number) =>
    input.drains.find((d) => d.backend === "postgres" && d.replicas === replicas && d.concurrency === concurrency);
  const scaling = (d: DrainResult): number | null => {
    const one = pgDrain(1, d.concurrency);
    return d.backend === "postgres" && d.replicas > 1 && one ? d.jobsPerSecond / one.jobsPerSecond : null;
  };
  const drainRows = input.drains.map((d) => {
    const factor = scaling(d);
    const name = d.backend === "sqlite" ? "SQLite (reference)" : "PostgreSQL";
    return (
      `| ${name} | ${d.replicas} | ${d.concurrency}${d.concurrency === DEFAULTS.concurrency ? " (default)" : ""} | ${d.jobsPerSecond.toFixed(0)} jobs/s${others(d.others)} | ${d.seconds.toFixed(1)} s | ` +
      `${factor === null ? "—" : `${factor.toFixed(2)}×`} | ${s(d.cpu.clientSeconds)} | ${d.backend === "sqlite" ? "—" : s(d.cpu.postgresSeconds)} | ${pct(d.cpu.machineBusy)} |`
    );
  });
  const limitsOf = (scopes: LedgerScopes) =>
    serverBudgetLimits(LEDGER_LIMIT_ENV[scopes])
      .map((limit) => `${limit.scope} ${limit.period}`)
      .join(", ");
  const scopesLabel = (scopes: LedgerScopes) => `${scopes === "shared" ? "one for all" : "own per process"} (${limitsOf(scopes)})`;
  const ledgerRows = input.ledger.map((l) => {
    const name = l.variant === "advisory" ? "advisory locks per scope (the store's `reserve`)" : "counter rows `FOR UPDATE` (prototype)";
    return (
      `| ${name} | ${scopesLabel(l.scopes)} | ${l.processes} × ${l.calls} | ${l.prefill === 0 ? "empty" : `${l.prefill.toLocaleString("en")} rows`} | ${ms(l.reserve.p50)} / ${ms(l.reserve.p99)} | ${ms(l.settle.p50)} / ${ms(l.settle.p99)} | ${ms(l.pause.p50)} / ${ms(l.pause.p99)} | ` +
      `${ms(l.call.p50)} / ${ms(l.call.p99)} | ${l.callsPerSecond.toFixed(0)} calls/s${others(l.others)} | ${s(l.cpu.postgresSeconds)} | ${pct(l.cpu.machineBusy)} |`
    );
  });
  const cores = os.cpus().length;
  const scalingText = DRAIN_CONCURRENCY.map((c) => {
    const three = pgDrain(3, c);
    const factor = three ? scaling(three) : null;
    return `${factor === null ? "n/a" : `${factor.toFixed(2)}×`} at concurrency ${c}`;
  }).join(", ");
  // CPU per job of the single-process PostgreSQL runs, and the ceiling it implies on this machine.
  const perJob = DRAIN_CONCURRENCY.map((c) => pgDrain(1, c)).filter((d): d is DrainResult => d !== undefined && d.cpu.postgresSeconds !== null);
  const pgMsPerJob = perJob.length ? (perJob.reduce((a, d) => a + (d.cpu.postgresSeconds ?? 0), 0) / perJob.length / DRAIN_JOBS) * 1000 : null;
  const clientMsPerJob = perJob.length ? (perJob.reduce((a, d) => a + d.cpu.clientSeconds, 0) / perJob.length / DRAIN_JOBS) * 1000 : null;
  const cpuText =
    pgMsPerJob !== null && clientMsPerJob !== null
      ? `in the single-process runs each job cost about ${pgMsPerJob.toFixed(1)} ms of PostgreSQL CPU and
${clientMsPerJob.toFixed(1)} ms of worker CPU, ${(pgMsPerJob + clientMsPerJob).toFixed(1)} ms in all, so ${cores} cores to ourselves would top out near
${((cores * 1000) / (pgMsPerJob + clientMsPerJob)).toFixed(0)} jobs/s whatever the number of processes.`
      : "(CPU use of the server could not be read here.)";
  const ledgerOf = (variant: LedgerVariant, processes: number, prefill: number, scopes: LedgerScopes = "shared") =>
    input.ledger.find((l) => l.variant === variant && l.scopes === scopes && l.processes === processes && l.prefill === prefill);
  const reserveP50 = (variant: LedgerVariant, processes: number, prefill: number, scopes: LedgerScopes = "shared") => {
    const l = ledgerOf(variant, processes, prefill, scopes);
    return l ? ms(l.reserve.p50) : "n/a";
  };
  const callsPerSecond = (variant: LedgerVariant, processes: number, prefill: number, scopes: LedgerScopes = "shared") => {
    const l = ledgerOf(variant, processes, prefill, scopes);
    return l ? `${l.callsPerSecond.toFixed(0)} calls/s` : "n/a";
  };
  const [fewest = 1, most = 1] = [Math.min(...LEDGER_PROCESSES), Math.max(...LEDGER_PROCESSES)];
  /** The store's throughput with the fewest and the most processes, and their ratio. */
  const ledgerScaling = (scopes: LedgerScopes, prefill: number) => {
    const one = ledgerOf("advisory", fewest, prefill, scopes);
    const many = ledgerOf("advisory", most, prefill, scopes);
    return one && many
      ? `${one.callsPerSecond.toFixed(0)} → ${many.callsPerSecond.toFixed(0)} calls/s (${(many.callsPerSecond / one.callsPerSecond).toFixed(2)}×)`
      : "n/a";
  };
  const busyOf = (scopes: LedgerScopes, prefill: number) => ledgerOf("advisory", most, prefill, scopes)?.cpu.machineBusy ?? null;
  const ownBusy = [busyOf("own", 0), busyOf("own", LEDGER_PREFILL_ROWS)];
  /** Said only when the data shows it: every "own" run with the most processes kept the machine at least 85 % busy. */
  const cpuBound = ownBusy.every((b) => b !== null && b >= 0.85) ? `, so what keeps them under ${most}× is the machine's CPU, not the locks` : "";
  const conflictsText = (scopes: LedgerScopes) => {
    const list = input.lockConflicts[scopes];
    return list.length === 0 ? "no scope" : list.map((scope) => `\`${scope}\``).join(", ");
  };
  return `${MARKER_START}
## Job queue and budget ledger: SQLite vs PostgreSQL (issue 11)

Written by \`bench/queue.ts\` (the last step of \`npm run bench\`; it replaces only this section).
Machine: ${cores} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}. SQLite parts: Node
${process.version} (better-sqlite3 is built for it), in one process. PostgreSQL parts: Node ${input.node22Version} (pg-boss 12
needs ≥ 22.12), in 3 child processes ("replicas", started once and reused), against ${input.postgresVersion} on
the same machine over loopback (${input.postgresSettings}). Benchmark, replicas and the
PostgreSQL server share the ${cores} cores with whatever else runs there: load average (1/5/15 min)
${load(input.loadBefore)} before the run and ${load(input.loadAfter)} after it; "machine busy" in the tables is the CPU the whole
machine used during each run. Each PostgreSQL throughput and ledger configuration ran ${ROUNDS} times,
interleaved (the second round in reverse order); the tables show the faster run, with the other
run's throughput in parentheses. Date: ${new Date().toISOString().slice(0, 10)}; the script took ${input.wallSeconds.toFixed(0)} s.

The floor under every PostgreSQL figure, from one connection: a \`select 1\` round trip takes
${ms(input.floor.select.p50)} (p99 ${ms(input.floor.select.p99)}); a committed one-row insert ${ms(input.floor.commit.p50)} (p99 ${ms(input.floor.commit.p99)}).

### Job pickup latency (enqueue committed → runner started), one process

${PICKUP_JOBS} no-op jobs (distinct lock keys), one every ${PICKUP_SPACING_MS} ms, each enqueued in its own
transaction by the process that runs the real \`Worker\` (concurrency ${DEFAULTS.concurrency}, the default), after
${PICKUP_WARM_UP} warm-up jobs. "notify" = the enqueuer calls \`worker.notify()\` after the commit, as the
app's intake worker does for the work it enqueues; without it the job waits for the next poll
(\`WORKER_POLL_MS\`), so those rows measure the queue alone.

| backend | WORKER_POLL_MS | notify() | p50 | p99 | max |
|---|---|---|---|---|---|
${[...input.sqlitePickup.map((r) => pickupRow("SQLite", r)), ...input.pgPickup.map((r) => pickupRow("PostgreSQL", r))].join("\n")}

Without \`notify()\` the latency is the phase of the poll timer: about uniform over
[0, WORKER_POLL_MS], so p50 ≈ half the interval and p99 ≈ all of it, on either backend. The
backend's own cost is what the \`notify()\` rows show (one claim: an UPDATE on SQLite, a pg-boss
fetch on PostgreSQL). Another replica is never notified: across replicas, pickup is the poll
interval (the queue does not use pg-boss's LISTEN/NOTIFY).

### Throughput: ${DRAIN_JOBS} no-op jobs pre-enqueued, drained by 1 or 3 processes

Each process opens the store as the app does (a pool of 10 connections plus pg-boss's pool of 4)
and runs one \`Worker\` (WORKER_POLL_MS ${DEFAULTS.pollMs}); the clock runs from "go" to the last completion.
Scaling = jobs/s with 3 processes ÷ jobs/s with 1, at the same concurrency. CPU: seconds used
during the run by the worker processes and by the PostgreSQL server, and how busy the whole
machine was (${os.cpus().length} cores = 100 %).

| backend | processes | concurrency per process | throughput | time | scaling | CPU workers | CPU PostgreSQL | machine busy |
|---|---|---|---|---|---|---|---|---|
${drainRows.join("\n")}

Scaling from 1 to 3 processes: ${scalingText}.

What limits it. Every job costs a fixed sequence of round trips: a pg-boss fetch (one statement:
a CTE that picks the oldest \`created\` job whose singleton key has no \`active\` job — a \`NOT
EXISTS\` probe per candidate — with \`FOR UPDATE SKIP LOCKED\`, and marks it \`active\`), then the
completion transaction (\`BEGIN\`, pg-boss's complete, \`COMMIT\` with its WAL flush). A \`Worker\`
fetches one job at a time (\`batchSize: 1\`), so within a process higher concurrency only overlaps
completions with the next fetch; more processes add fetchers in parallel. That would scale if
there were CPU to spare, and there is not: ${cpuText}
Workers, PostgreSQL backends, the WAL writer and everything else on the machine share those
${cores} cores (see "machine busy"), so three processes mostly take turns. Polling plays no part (the queue is never
empty until the end), nor do the pools (at most 8 jobs in flight per process against 10 + 4
connections). During the single-process runs the two other replicas stay connected, idle, as
idle replicas would (pg-boss's supervisor runs in each).

### Budget reservation + ledger write, PostgreSQL, processes on one shared budget scope or on their own

Each process makes ${LEDGER_CALLS} sequential calls (unless said otherwise) of what \`adapters/anthropic/metered-llm.ts\` does around one
Messages API call: \`pauseOf\`, \`reserve\`, then \`recordUsageAndSettle\` (usage row + settlement in
one transaction). The "scopes" column says whom the processes call for, and which limits
\`reserve\` checks (limits far above the spend, so none is ever reached):

- one for all: the same installation, repository, agent and task in every process, so every
  reservation competes for the same limits — global daily, repository monthly and task.
- own per process: the same installation and agent, but each process for its own repository
  and its own task, under the kinds of limit the server sets by default (repository monthly and
  task; no global limit) — no limit counts another process's spend. The store's variant only.

Cells are p50 / p99; throughput counts whole calls of all processes; CPU and "machine busy" as above.

The "ledger before" column: \`empty\`, or ${LEDGER_PREFILL_ROWS.toLocaleString("en")} usage rows of other tasks of the same
repository spread over the current month up to now (about 100 tasks × 30 calls a day) — in the
"own per process" runs, that many in each process's repository (all ${Math.max(...LEDGER_PROCESSES)} of them, whatever the
number of processes). That is what the advisory variant's sums read; the prototype's counters
start at the same totals. Those runs make ${LEDGER_PREFILL_CALLS} calls per process.

- advisory locks per scope: the store as it is (\`src/store/budgets.ts\`): one transaction-scoped
  advisory lock per scope (\`reservationLockScopes\`), taken in a fixed order — shared
  (\`pg_advisory_xact_lock_shared\`) on the five scopes the call adds spend to (global,
  installation, repository, agent, task), exclusive (\`pg_advisory_xact_lock\`) on each scope a
  checked limit sums — then each limit's spend summed from \`llm_usage\` and held
  \`budget_reservations\`, then the insert; settling takes no lock. Two reservations wait for
  each other only when one checks a limit that counts the other's spend. Between the
  processes of a run, by the store's own lock mapping, the locks conflict on
  ${conflictsText("shared")} with one scope for all, and on ${conflictsText("own")} with one of its own per process.
- counter rows \`FOR UPDATE\`: a prototype in \`bench/queue.ts\` only — one counter row per limit,
  scope key and window (\`used\`, \`held\`), created on the fly, locked in key order; the check reads
  the counters (no sums), the reservation adds to \`held\`; settling must lock the same rows to
  move the amount from \`held\` to \`used\`. Alerts are left out (never reached here).

| serialisation | scopes (limits checked) | processes × calls | ledger before | reserve | record usage + settle | pause check | whole call | throughput | CPU PostgreSQL | machine busy |
|---|---|---|---|---|---|---|---|---|---|---|
${ledgerRows.join("\n")}

Reading it. One scope for all, on an empty ledger, 3 processes: reserve p50 ${reserveP50("advisory", 3, 0)} with the advisory locks against
${reserveP50("for-update", 3, 0)} with counter rows; ${callsPerSecond("advisory", 3, 0)} against ${callsPerSecond("for-update", 3, 0)}. Both serialise every
reservation of the scope; the advisory locks are held for the 3 sums and the insert, a counter row
for the insert and the update, while settling takes the counter rows too (the "record usage +
settle" column). With a month of ${LEDGER_PREFILL_ROWS.toLocaleString("en")} rows the advisory variant's sums read
every row of the window while holding the locks: reserve p50 ${reserveP50("advisory", 1, LEDGER_PREFILL_ROWS)} alone and ${reserveP50("advisory", 3, LEDGER_PREFILL_ROWS)} with 3
processes (${callsPerSecond("advisory", 3, LEDGER_PREFILL_ROWS)}), against ${reserveP50("for-update", 3, LEDGER_PREFILL_ROWS)} (${callsPerSecond("for-update", 3, LEDGER_PREFILL_ROWS)}) for the counters, whose cost does
not depend on the ledger's size. Spend summed at reservation time is what the exclusive locks
serialise, so for processes competing for one scope the advisory variant's ceiling falls as that
scope's month fills up.

Per-scope locks. From ${fewest} to ${most} processes the store's throughput went ${ledgerScaling("shared", 0)} on an empty
ledger and ${ledgerScaling("shared", LEDGER_PREFILL_ROWS)} on the busy month with one scope for all, against
${ledgerScaling("own", 0)} and ${ledgerScaling("own", LEDGER_PREFILL_ROWS)} with one scope per process; with ${most} processes on the busy
month, reserve p50 ${reserveP50("advisory", most, LEDGER_PREFILL_ROWS, "own")} with their own scopes against ${reserveP50("advisory", most, LEDGER_PREFILL_ROWS)} sharing one (${reserveP50("advisory", fewest, LEDGER_PREFILL_ROWS, "own")} for
one process alone). The machine was ${pct(ownBusy[0] ?? null)} and ${pct(ownBusy[1] ?? null)} busy during those ${most}-process "own" runs
(${cores} cores for the callers, the server and everything else)${cpuBound}.
${MARKER_END}
`;
}

/**
 * Replaces a bench script's section of results.md (between its `start` and `end` markers), or
 * appends it; nothing else in the file changes.
 */
export function writeSection(section: string, markers: { start: string; end: string } = { start: MARKER_START, end: MARKER_END }): void {
  const file = new URL("./results.md", import.meta.url);
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    text = "# Benchmark results\n";
  }
  const start = text.indexOf(markers.start);
  const end = text.indexOf(markers.end);
  const next = start >= 0 && end > start ? text.slice(0, start) + section.trimEnd() + text.slice(end + markers.end.length) : `${text.trimEnd()}\n\n${section}`;
  writeFileSync(file, next);
}

async function main(): Promise<void> {
  const wallStart = performance.now();
  const loadBefore = os.loadavg();
  const phase = (name: string) => console.log(`[${((performance.now() - wallStart) / 1000).toFixed(1)} s] ${name}`);
  const node22 = findNode22();
  const node22Version = execFileSync(node22, ["--version"], { encoding: "utf8" }).trim();
  const adminUrl = process.env.MC_BENCH_POSTGRES_URL || process.env.MC_TEST_POSTGRES_URL || DEFAULT_POSTGRES_URL;

  // SQLite, in this process (Node 20).
  const dir = mkdtempSync(path.join(os.tmpdir(), "mc-bench-queue-"));
  const drains: DrainResult[] = [];
  let sqlitePickup: PickupResult[];
  try {
    const store = await openStore({ databasePath: path.join(dir, "mc.sqlite"), heartbeatSeconds: DEFAULTS.heartbeatSeconds });
    try {
      phase("SQLite: pickup latency");
      sqlitePickup = await pickupAll(store);
      for (const concurrency of DRAIN_CONCURRENCY) {
        phase(`SQLite: throughput, concurrency ${concurrency}`);
        drains.push(await drainSqlite(store, concurrency));
      }
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // PostgreSQL, in Node 22 children.
  const database = await createDatabase(adminUrl);
  const db = openPostgres(database.url, { maxConnections: 1 });
  const replicas: Replica[] = [];
  try {
    const version = await sql<{ v: string }>`select version() as v`.execute(db);
    const postgresVersion = (version.rows[0]?.v ?? "PostgreSQL").split(" (")[0] ?? "PostgreSQL";
    const settings = await sql<{ name: string; setting: string }>`
      select name, setting from pg_settings where name in ('fsync', 'synchronous_commit', 'shared_buffers') order by name`.execute(db);
    const postgresSettings = settings.rows
      .map((r) => `${r.name} ${r.name === "shared_buffers" ? `${(Number(r.setting) * 8) / 1024} MiB` : r.setting}`)
      .join(", ");
    const postmaster = await postmasterOf(db, database.url);
    phase("PostgreSQL: round-trip floor");
    const floor = await postgresFloor(db);
    phase("PostgreSQL: starting 3 replicas (they create the schema)");
    replicas.push(...Array.from({ length: Math.max(...DRAIN_REPLICAS, ...LEDGER_PROCESSES) }, () => spawnReplica(node22, database.url)));
    await Promise.all(replicas.map((r) => Promise.race([r.next("ready"), r.failed])));
    phase("PostgreSQL: pickup latency");
    const [first] = replicas;
    first?.tell({ type: "pickup" });
    const pgPickup = first ? (await first.next("pickup")).results : [];

    const drainConfigs = DRAIN_CONCURRENCY.flatMap((concurrency) => DRAIN_REPLICAS.map((replicas) => ({ concurrency, replicas })));
    const drainRuns = await rounds(drainConfigs, async ({ replicas: count, concurrency }, round) => {
      phase(`PostgreSQL: throughput, ${count} process(es) × concurrency ${concurrency}, round ${round + 1}`);
      return drainPostgres(replicas, db, postmaster, count, concurrency);
    });
    drains.push(...drainRuns.map((runs) => best(runs, (r) => r.jobsPerSecond)));

    await COUNTERS_DDL.execute(db);
    const createdAt = Date.now();
    /** A task of `repository` (`owner/repo`) for the ledger runs to call for. */
    const benchTask = async (repository: string): Promise<number> => {
      const [owner = "", repo = ""] = repository.split("/");
      const task = await createTask(db, {
        installation_id: 1,
        owner,
        repo,
        issue_number: 1,
        run: 1,
        stage: "coding",
        triggered_by: "bench",
        clone_url: "/dev/null",
        default_branch: "main",
        config: "{}",
        created_at: createdAt,
        updated_at: createdAt,
      });
      return task.id;
    };
    const maxProcesses = Math.max(...LEDGER_PROCESSES);
    const tasks: LedgerTasks = { shared: await benchTask("o/r"), own: [] };
    for (let i = 0; i < maxProcesses; i++) tasks.own.push(await benchTask(OWN_REPOSITORY(i)));
    const lockConflictsOf = (scopes: LedgerScopes) => lockConflicts(ledgerSubjects(scopes, maxProcesses, tasks), serverBudgetLimits(LEDGER_LIMIT_ENV[scopes]));
    const ledgerConfigs: LedgerConfig[] = [
      ...LEDGER_PROCESSES.flatMap((processes) =>
        (["advisory", "for-update"] as const).map((variant) => ({ variant, scopes: "shared" as const, processes, calls: LEDGER_CALLS, prefill: 0 })),
      ),
      ...LEDGER_PROCESSES.flatMap((processes) =>
        (["advisory", "for-update"] as const).map((variant) => ({
          variant,
          scopes: "shared" as const,
          processes,
          calls: LEDGER_PREFILL_CALLS,
          prefill: LEDGER_PREFILL_ROWS,
        })),
      ),
      // Each process on its own repository and task: the store's variant only.
      ...[0, LEDGER_PREFILL_ROWS].flatMap((prefill) =>
        LEDGER_PROCESSES.map((processes) => ({
          variant: "advisory" as const,
          scopes: "own" as const,
          processes,
          calls: prefill === 0 ? LEDGER_CALLS : LEDGER_PREFILL_CALLS,
          prefill,
        })),
      ),
    ];
    const ledgerRuns = await rounds(ledgerConfigs, async (config, round) => {
      phase(
        `PostgreSQL: ledger, ${config.variant}, ${config.scopes} scopes, ${config.processes} process(es), ${config.prefill} rows before, round ${round + 1}`,
      );
      return ledgerRun(replicas, db, postmaster, tasks, config);
    });
    const ledger = ledgerRuns.map((runs) => best(runs, (r) => r.callsPerSecond));
    phase("done");
    const section = report({
      node22Version,
      postgresVersion,
      postgresSettings,
      floor,
      sqlitePickup,
      pgPickup,
      drains,
      ledger,
      lockConflicts: { shared: lockConflictsOf("shared"), own: lockConflictsOf("own") },
      wallSeconds: (performance.now() - wallStart) / 1000,
      loadBefore,
      loadAfter: os.loadavg(),
    });
    writeSection(section);
    console.log(section);
  } finally {
    await Promise.all(replicas.map((r) => r.exit().catch((err: unknown) => console.error(err))));
    await db.destroy();
    await database.drop();
  }
}

// Run only as a script (`tsx bench/queue.ts`, or forked as a replica): bench/replicas.ts imports its helpers.
if (process.argv[1] && path.resolve(process.argv[1]) === THIS_FILE) {
  const [role, url] = process.argv.slice(2);
  const entry = role === "replica" && url ? replica(url) : main();
  entry.then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
