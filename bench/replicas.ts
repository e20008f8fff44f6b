/**
 * `npm run bench` (its last step): issue 11's webhook intake with 1 and with 3 replicas of the
 * real app on one PostgreSQL database. Results replace the `<!-- bench:replicas -->` section of
 * bench/results.md (appended when absent); the rest of that file is left as it is. Not a test:
 * nothing here asserts a duration.
 *
 * For N = 1, then N = 3, each on a fresh database: N processes of `src/main.ts` started as
 * test/e2e/replicas.test.ts starts them (test/e2e/replica-process.ts; GitHub and Anthropic served
 * over loopback HTTP by the test fakes in this process), then {@link WARM_UP} and {@link DELIVERIES}
 * signed `issues.labeled` deliveries (a label that is not the trigger, on {@link ISSUES}
 * issues) round-robin over the replicas, {@link IN_FLIGHT} in flight, only the acknowledgement
 * awaited. Measured: acknowledgement throughput and latency, then the time until every intake job
 * the deliveries enqueued has completed (pgboss.job), and the CPU the replicas, PostgreSQL and
 * this process used meanwhile.
 *
 * PostgreSQL mode needs Node ≥ 22.12 (pg-boss 12), and the replicas run this process's Node: under
 * an older Node this file runs itself again under Node 22 (`findNode22` of bench/queue.ts:
 * `MC_BENCH_NODE22`, else `npx -p node@22`). Nothing here opens SQLite. PostgreSQL:
 * `MC_BENCH_POSTGRES_URL` or `MC_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
 * each database `mc_bench_<random>` is created on it and dropped at the end.
 */
import { type ChildProcess, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { sql } from "kysely";

import { ServerEnvVariables } from "../src/config/env.js";
import type { Db } from "../src/store/db.js";
import { openPostgres } from "../src/store/postgres.js";
import { startReplica } from "../test/e2e/replica-process.js";
import { INSTALLATION_ID, labeledPayload, OWNER, REPO, REPO_FILES, SECRET } from "../test/e2e/scenario.js";
import { FakeAnthropic } from "../test/helpers/anthropic-fake.js";
import { freePort, TEST_ANTHROPIC_KEY, TEST_APP_ID, TEST_PRIVATE_KEY } from "../test/helpers/app-harness.js";
import { type FakeServers, startFakeServers } from "../test/helpers/fake-servers.js";
import { createBareRepo } from "../test/helpers/git-fixtures.js";
import { FakeGitHub } from "../test/helpers/github-fake.js";
import { deliver } from "../test/helpers/webhooks.js";
import {
  CpuMeter,
  type CpuUse,
  cpuSecondsOf,
  createDatabase,
  DEFAULT_POSTGRES_URL,
  findNode22,
  postgresCpuSeconds,
  postmasterOf,
  rounds,
  type Stats,
  statsOf,
  writeSection,
} from "./queue.js";

// ---------------------------------------------------------------------------------------------
// Settings

const REPLICA_COUNTS = [1, 3];
const WARM_UP = 100;
const DELIVERIES = 800;
const IN_FLIGHT = 50;
/** Distinct issues the deliveries are spread over: intake jobs of one issue share a lock key (its command lane). */
const ISSUES = 250;
const FIRST_ISSUE = 1000;
/** Not the trigger label (`agent` by default): the intake job reads the config and stops there. */
const LABEL = "bug";
const LOG_LEVEL = "warn";
const INTAKE_DEADLINE_MS = 90_000;
/** The server defaults (config/env.ts), read from the schema so they cannot drift. */
const DEFAULTS = {
  concurrency: ServerEnvVariables.shape.WORKER_CONCURRENCY.parse(undefined),
  pollMs: ServerEnvVariables.shape.WORKER_POLL_MS.parse(undefined),
};
const STARTUP_TIMEOUT_MS = 90_000;
const MARKER_START = "<!-- bench:replicas -->";
const MARKER_END = "<!-- /bench:replicas -->";

const THIS_FILE = fileURLToPath(import.meta.url);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// One configuration

/** A replica: a process of `src/main.ts`. */
interface AppProcess {
  name: string;
  /** `http://127.0.0.1:<port>`. */
  url: string;
  child: ChildProcess;
  /** Resolves once the process has ended. */
  exited: Promise<void>;
}

/**
 * Starts a replica with test/e2e/replica-process.ts, and resolves once its `/healthz` answers
 * 200. (That helper waits for the "Mission Control is ready" line, which LOG_LEVEL above `info`
 * leaves out; it still rejects, with the process's output, when the process ends first.)
 */
async function startAppProcess(name: string, env: Record<string, string>, port: number): Promise<AppProcess> {
  const { replica, child } = startReplica(name, env, STARTUP_TIMEOUT_MS);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  let starting = true;
  const healthy = (async () => {
    while (starting) {
      try {
        const response = await fetch(`${url}/healthz`);
        await response.text();
        if (response.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
  })();
  try {
    await Promise.race([healthy, replica]);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  } finally {
    starting = false;
  }
  return { name, url, child, exited };
}

/** CPU used over one window: the replicas', PostgreSQL's, this process's, and the machine's. */
interface CpuWindow extends CpuUse {
  wallSeconds: number;
  /** This process: the load generator and the fake GitHub and Anthropic. */
  benchSeconds: number;
}

interface ReplicaShare {
  name: string;
  /** Deliveries this replica answered `enqueued` (warm-up included). */
  enqueued: number;
  /** Intake jobs this replica's intake worker ran to success (warm-up included). */
  intakeJobs: number;
  /** Their mean wall time, in ms. */
  intakeMeanMs: number;
}

interface RunResult {
  replicas: number;
  startupSeconds: number;
  ack: Stats & { seconds: number; perSecond: number };
  /** Measured intake jobs already completed when the last acknowledgement came. */
  intakeDoneAtAckEnd: number;
  /** From the first measured delivery sent to the last intake job completed. */
  intakeSeconds: number;
  intakePerSecond: number;
  cpuAck: CpuWindow;
  cpuAll: CpuWindow;
  shares: ReplicaShare[];
  loadBefore: number[];
  loadAfter: number[];
  /** The other rounds of the same configuration: acknowledgements/s and intake jobs/s. */
  others: Array<{ ack: number; intake: number }>;
}

/**
 * CPU seconds used so far by the replica processes: each one's own, its exited children's and its
 * live children's (bench/queue.ts's accounting of a postmaster, applied to a replica's pid).
 */
function replicasCpuSeconds(replicas: readonly AppProcess[]): number {
  return replicas.reduce((sum, r) => sum + ((r.child.pid === undefined ? null : postgresCpuSeconds(r.child.pid)) ?? 0), 0);
}

/** Starts a CPU window now; `stop()` may be called more than once (each reads from the start). */
function cpuWindow(postmaster: number | null, replicas: readonly AppProcess[]): { stop(): CpuWindow } {
  const meter = new CpuMeter(postmaster);
  const replicas0 = replicasCpuSeconds(replicas);
  const own0 = process.cpuUsage();
  const t0 = performance.now();
  return {
    stop() {
      const use = meter.stop(replicasCpuSeconds(replicas) - replicas0);
      return { ...use, benchSeconds: cpuSecondsOf(process.cpuUsage(own0)), wallSeconds: (performance.now() - t0) / 1000 };
    },
  };
}

interface IntakeCounts {
  completed: number;
  failed: number;
  total: number;
  /** Epoch ms of the latest completion, or `null` before the first one. */
  lastCompletedAt: number | null;
}

async function intakeCounts(db: Db): Promise<IntakeCounts> {
  const { rows } = await sql<IntakeCounts>`
    select count(*) filter (where state = 'completed')::int as completed,
           count(*) filter (where state = 'failed')::int as failed,
           count(*)::int as total,
           (extract(epoch from max(completed_on)) * 1000)::float8 as "lastCompletedAt"
      from pgboss.job where name = 'jobs' and data->>'kind' = 'intake'`.execute(db);
  const row = rows[0];
  if (!row) throw new Error("no answer from pgboss.job");
  return row;
}

/** Waits until `expected` intake jobs have completed; throws when one failed or time runs out. */
async function waitForIntake(db: Db, expected: number, replicas: readonly AppProcess[]): Promise<IntakeCounts> {
  const deadline = performance.now() + INTAKE_DEADLINE_MS;
  for (;;) {
    const counts = await intakeCounts(db);
    if (counts.failed > 0) throw new Error(`${counts.failed} intake jobs failed`);
    if (counts.completed >= expected) return counts;
    const dead = replicas.find((r) => r.child.exitCode !== null || r.child.signalCode !== null);
    if (dead) throw new Error(`replica ${dead.name} exited (${dead.child.exitCode ?? dead.child.signalCode})`);
    if (performance.now() > deadline) throw new Error(`only ${counts.completed} of ${expected} intake jobs completed after ${INTAKE_DEADLINE_MS} ms`);
    await sleep(50);
  }
}

type Delivery = { to: AppProcess; event: string; payload: unknown };

/** Sends `deliveries` with {@link IN_FLIGHT} at a time, acknowledgement only; latency per delivery in ms. */
async function load(deliveries: readonly Delivery[]): Promise<Stats & { seconds: number; perSecond: number }> {
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < deliveries.length; i = next++) {
        const { to, event, payload } = deliveries[i]!;
        const r = await deliver(to.url, { event, payload, secret: SECRET, noWait: true });
        if (r.status >= 300) throw new Error(`${to.name} answered ${r.status}: ${r.body}`);
        times.push(r.elapsedMs);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { ...statsOf(times), seconds, perSecond: deliveries.length / seconds };
}

/** Each replica's share of the work, from its `/metrics`. */
async function sharesOf(replicas: readonly AppProcess[]): Promise<ReplicaShare[]> {
  const value = (text: string, metric: string, labels: Record<string, string>) => {
    let sum = 0;
    for (const match of text.matchAll(new RegExp(`^${metric}\\{([^}]*)\\} (\\S+)$`, "gm"))) {
      const set = match[1] ?? "";
      if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(match[2]);
    }
    return sum;
  };
  return Promise.all(
    replicas.map(async (r) => {
      const text = await (await fetch(`${r.url}/metrics`)).text();
      const intakeJobs = value(text, "mc_job_duration_seconds_count", { kind: "intake", state: "succeeded" });
      const intakeSeconds = value(text, "mc_job_duration_seconds_sum", { kind: "intake", state: "succeeded" });
      return {
        name: r.name,
        enqueued: value(text, "mc_webhook_outcomes_total", { outcome: "enqueued" }),
        intakeJobs,
        intakeMeanMs: intakeJobs > 0 ? (intakeSeconds / intakeJobs) * 1000 : Number.NaN,
      };
    }),
  );
}

/** SIGTERM (the app's graceful stop), SIGKILL after 15 s. */
async function stopReplica(replica: AppProcess): Promise<void> {
  if (replica.child.exitCode !== null || replica.child.signalCode !== null) return;
  replica.child.kill("SIGTERM");
  const timer = setTimeout(() => replica.child.kill("SIGKILL"), 15_000);
  await replica.exited;
  clearTimeout(timer);
}

async function runConfiguration(adminUrl: string, count: number, round: number, phase: (name: string) => void): Promise<RunResult> {
  const step = (name: string) => phase(`${count} replica(s), round ${round + 1}: ${name}`);
  const loadBefore = os.loadavg();
  const database = await createDatabase(adminUrl);
  const db = openPostgres(database.url, { maxConnections: 2 });
  const dir = mkdtempSync(path.join(os.tmpdir(), "mc-bench-replicas-"));
  const bare = createBareRepo(REPO_FILES, dir);
  const replicas: AppProcess[] = [];
  const starting: Array<Promise<AppProcess>> = [];
  let servers: FakeServers | undefined;
  try {
    const port = await freePort();
    const github = new FakeGitHub({
      baseUrl: `http://127.0.0.1:${port}/api/v3`,
      owner: OWNER,
      repo: REPO,
      bare,
      installationId: INSTALLATION_ID,
      permissions: { maintainer: "write" },
    });
    servers = await startFakeServers({ github, anthropic: new FakeAnthropic() }, port);
    const common = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/tmp",
      APP_ID: TEST_APP_ID,
      PRIVATE_KEY: TEST_PRIVATE_KEY,
      WEBHOOK_SECRET: SECRET,
      GHE_HOST: servers.host,
      GHE_PROTOCOL: "http",
      ANTHROPIC_API_KEY: TEST_ANTHROPIC_KEY,
      ANTHROPIC_BASE_URL: servers.url,
      ANTHROPIC_MAX_RETRIES: "0",
      DATABASE_URL: database.url,
      HOST: "127.0.0.1",
      GIT_ALLOWED_PROTOCOLS: "https:http:file",
      LOG_LEVEL,
    };
    const ports: number[] = [];
    while (ports.length < count) {
      const candidate = await freePort();
      if (candidate !== port && !ports.includes(candidate)) ports.push(candidate);
    }
    step("starting (they create the schema)");
    const startedAt = performance.now();
    // All at once, as in the replica test: the store's and pg-boss's migrations run once, under their locks.
    for (const [i, replicaPort] of ports.entries()) {
      const name = `r${i + 1}`;
      starting.push(startAppProcess(name, { ...common, PORT: String(replicaPort), WORKSPACES_DIR: path.join(dir, `workspaces-${name}`) }, replicaPort));
    }
    replicas.push(...(await Promise.all(starting)));
    const startupSeconds = (performance.now() - startedAt) / 1000;
    const postmaster = await postmasterOf(db, database.url);

    const make = (n: number, first: number): Delivery[] =>
      Array.from({ length: n }, (_, i) => ({
        to: replicas[i % count]!,
        event: "issues",
        payload: labeledPayload({ cloneUrl: bare, label: LABEL, issue: FIRST_ISSUE + ((first + i) % ISSUES) }) as unknown,
      }));
    step(`${WARM_UP} warm-up deliveries`);
    await load(make(WARM_UP, 0));
    await waitForIntake(db, WARM_UP, replicas);

    const measured = make(DELIVERIES, WARM_UP);
    step(`${DELIVERIES} deliveries`);
    const window = cpuWindow(postmaster, replicas);
    const startedAtEpoch = Date.now();
    const ack = await load(measured);
    const cpuAck = window.stop();
    const atAckEnd = await intakeCounts(db);
    const done = await waitForIntake(db, WARM_UP + DELIVERIES, replicas);
    const cpuAll = window.stop();
    const loadAfter = os.loadavg();
    if (done.total !== WARM_UP + DELIVERIES) throw new Error(`${done.total} intake jobs, expected ${WARM_UP + DELIVERIES}`);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from deliveries`.execute(db);
    if (rows[0]?.n !== WARM_UP + DELIVERIES) throw new Error(`${rows[0]?.n} deliveries recorded, expected ${WARM_UP + DELIVERIES}`);
    if (servers.unrouted.length > 0) throw new Error(`requests no fake served: ${servers.unrouted.slice(0, 5).join(", ")}`);
    const intakeSeconds = ((done.lastCompletedAt ?? Number.NaN) - startedAtEpoch) / 1000;
    const shares = await sharesOf(replicas);
    return {
      replicas: count,
      startupSeconds,
      ack,
      intakeDoneAtAckEnd: atAckEnd.completed - WARM_UP,
      intakeSeconds,
      intakePerSecond: DELIVERIES / intakeSeconds,
      cpuAck,
      cpuAll,
      shares,
      loadBefore,
      loadAfter,
      others: [],
    };
  } finally {
    // A failed start leaves the others running: every replica that started is stopped.
    const started = await Promise.allSettled(starting);
    await Promise.all(started.flatMap((r) => (r.status === "fulfilled" ? [stopReplica(r.value)] : [])));
    await servers?.close();
    await db.destroy();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Report

/** The round with the highest intake throughput end to end, with the other rounds' figures attached. */
function fastest(runs: readonly RunResult[]): RunResult {
  const [top, ...rest] = [...runs].sort((a, b) => b.intakePerSecond - a.intakePerSecond);
  if (!top) throw new Error("no runs");
  return { ...top, others: rest.map((r) => ({ ack: r.ack.perSecond, intake: r.intakePerSecond })) };
}

function report(input: { results: RunResult[]; rounds: number; postgresVersion: string; wallSeconds: number }): string {
  const { results } = input;
  const cores = os.cpus().length;
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const s = (n: number | null) => (n === null ? "n/a" : `${n.toFixed(1)} s`);
  const pct = (n: number | null) => (n === null ? "n/a" : `${(n * 100).toFixed(0)} %`);
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(" / ");
  const cpu = os.cpus()[0]?.model.trim() ?? "unknown CPU";
  const one = results.find((r) => r.replicas === 1);
  const three = results.find((r) => r.replicas === 3);
  const factor = (pick: (r: RunResult) => number, r: RunResult) => (one && r.replicas > 1 ? `${(pick(r) / pick(one)).toFixed(2)}×` : "—");
  /** CPU seconds of the whole machine in a window, less ours: what other processes used. */
  const others = (w: CpuWindow) =>
    w.machineBusy === null || w.postgresSeconds === null
      ? null
      : Math.max(0, w.machineBusy * w.wallSeconds * cores - w.clientSeconds - w.postgresSeconds - w.benchSeconds);
  /** Share of the machine's busy time in a window that other processes used. */
  const othersShare = (w: CpuWindow) => {
    const o = others(w);
    return o === null || !w.machineBusy ? null : o / (w.machineBusy * w.wallSeconds * cores);
  };
  const other = (values: number[]) =>
    values.length === 0 ? "" : ` (other round${values.length > 1 ? "s" : ""}: ${values.map((v) => v.toFixed(0)).join(", ")})`;
  const throughputRows = results.map(
    (r) =>
      `| ${r.replicas} | ${r.ack.perSecond.toFixed(0)} deliveries/s${other(r.others.map((o) => o.ack))} | ${ms(r.ack.p50)} | ${ms(r.ack.p99)} | ${ms(r.ack.max)} | ${factor((x) => x.ack.perSecond, r)} | ` +
      `${r.intakeDoneAtAckEnd} of ${DELIVERIES} | ${r.intakeSeconds.toFixed(1)} s | ${r.intakePerSecond.toFixed(0)} jobs/s${other(r.others.map((o) => o.intake))} | ${factor((x) => x.intakePerSecond, r)} |`,
  );
  const cpuRow = (r: RunResult, name: string, w: CpuWindow) =>
    `| ${r.replicas} | ${name} | ${w.wallSeconds.toFixed(1)} s | ${s(w.clientSeconds)} | ${s(w.postgresSeconds)} | ${s(w.benchSeconds)} | ${s(others(w))} | ${pct(w.machineBusy)} |`;
  const cpuRows = results.flatMap((r) => [cpuRow(r, "acknowledgements", r.cpuAck), cpuRow(r, "until the last intake job", r.cpuAll)]);
  const shareText = results
    .map(
      (r) =>
        `${r.replicas} replica${r.replicas > 1 ? "s" : ""}: ` +
        r.shares.map((x) => `${x.name} ${x.enqueued} enqueued / ${x.intakeJobs} intake jobs run (mean ${ms(x.intakeMeanMs)})`).join(", "),
    )
    .join("; ");
  const loadText = results.map((r) => `${load(r.loadBefore)} before and ${load(r.loadAfter)} after the ${r.replicas}-replica run`).join(", ");
  // CPU per delivery (acknowledgement and intake job), ours only, and the ceiling it implies on this machine.
  const costOf = (r: RunResult) => {
    const w = r.cpuAll;
    if (w.postgresSeconds === null) return null;
    const perDelivery = (x: number) => (x / DELIVERIES) * 1000;
    const total = perDelivery(w.clientSeconds + w.postgresSeconds + w.benchSeconds);
    return {
      app: perDelivery(w.clientSeconds),
      pg: perDelivery(w.postgresSeconds),
      bench: perDelivery(w.benchSeconds),
      total,
      ceiling: (cores * 1000) / total,
    };
  };
  // Intake slots (replicas × WORKER_CONCURRENCY) ÷ mean intake job time: the ceiling while every slot is busy (Little's law).
  const intakeOf = (r: RunResult) => {
    const jobs = r.shares.reduce((a, x) => a + x.intakeJobs, 0);
    const meanMs = r.shares.reduce((a, x) => a + x.intakeMeanMs * x.intakeJobs, 0) / jobs;
    const slots = r.replicas * DEFAULTS.concurrency;
    return { meanMs, slots, bound: (slots * 1000) / meanMs };
  };
  const costText = (c: NonNullable<ReturnType<typeof costOf>>) =>
    `${ms(c.total)} (replicas ${ms(c.app)}, PostgreSQL ${ms(c.pg)}, benchmark process ${ms(c.bench)})`;
  const othersText = results
    .map((r) => {
      const o = others(r.cpuAll);
      const busy = r.cpuAll.machineBusy === null ? null : r.cpuAll.machineBusy * r.cpuAll.wallSeconds * cores;
      return o === null || busy === null ? "n/a" : `${s(o)} (${pct(o / busy)} of the busy time) during the ${r.replicas}-replica run`;
    })
    .join(", ");
  const cost1 = one ? costOf(one) : null;
  const cost3 = three ? costOf(three) : null;
  const intake1 = one ? intakeOf(one) : null;
  const intake3 = three ? intakeOf(three) : null;
  const ackFactor = one && three ? three.ack.perSecond / one.ack.perSecond : null;
  const intakeFactor = one && three ? three.intakePerSecond / one.intakePerSecond : null;
  const fx = (n: number | null) => (n === null ? "n/a" : `${n.toFixed(2)}×`);
  let ackText = "n/a";
  if (one && three) {
    const busyAck = (r: RunResult) => {
      const share = othersShare(r.cpuAck);
      return `${pct(r.cpuAck.machineBusy)}${share === null ? "" : ` (${pct(share)} of it other processes)`}`;
    };
    ackText = `During the burst the machine was ${busyAck(one)} busy with 1 replica and ${busyAck(three)} with 3:
  the handlers (signature check, JSON, one transaction per delivery: delivery row + job insert),
  the intake jobs running meanwhile, the PostgreSQL backends, the load generator with the fakes
  ${(one.cpuAck.machineBusy ?? 0) >= 0.85 ? "and whatever else ran already filled the cores with one replica" : "and whatever else ran left little of the cores with one replica"}.
  Three replicas add processes, not cores, and their intake workers take more of the burst's CPU
  (${one.intakeDoneAtAckEnd} of the ${DELIVERIES} intake jobs had completed at the last acknowledgement with 1 replica, ${three.intakeDoneAtAckEnd} with 3):
  acknowledgements ${fx(ackFactor)}.`;
  }
  let intakeText = "n/a";
  if (one && three && intake1 && intake3) {
    const busy = (r: RunResult, i: NonNullable<typeof intake1>) => r.intakePerSecond >= 0.85 * i.bound;
    intakeText = `Each replica's intake worker runs WORKER_CONCURRENCY (${DEFAULTS.concurrency}) jobs at a time, so
  intake throughput ≤ slots ÷ mean job time (Little's law; the mean from \`mc_job_duration_seconds\`):
  1 replica ${intake1.slots} ÷ ${ms(intake1.meanMs)} = ${intake1.bound.toFixed(0)} jobs/s (measured ${one.intakePerSecond.toFixed(0)}), 3 replicas ${intake3.slots} ÷ ${ms(intake3.meanMs)} = ${intake3.bound.toFixed(0)} jobs/s (measured ${three.intakePerSecond.toFixed(0)}).
  ${busy(one, intake1) && busy(three, intake3) ? "The slots stayed busy in both" : "The measured rate is below that bound where slots sat idle (the intake workers waited for the burst to pass)"}.
  Three replicas triple the slots; the job time went from ${ms(intake1.meanMs)} to ${ms(intake3.meanMs)} as the CPU filled up,
  so intake scaled ${fx(intakeFactor)}. A job is mostly waiting: its two GitHub GETs in turn, through Octokit and its
  throttling, then the completion's round trips to PostgreSQL.`;
  }
  const noisiest = Math.max(...results.map((r) => othersShare(r.cpuAll) ?? 0));
  const noiseText =
    noisiest > 0.2
      ? `\n\n**Other processes used up to ${pct(noisiest)} of the machine's busy CPU time during the runs shown** (see the
CPU table): every figure here is lower, and the comparison noisier, than on a quiet machine.`
      : "";
  const ceilingText =
    cost1 && cost3
      ? `Per delivery (acknowledgement plus intake job) our processes used ${costText(cost1)}
  of CPU with 1 replica and ${costText(cost3)} with 3: ${cores} cores to ourselves
  would top out near ${cost1.ceiling.toFixed(0)} and ${cost3.ceiling.toFixed(0)} deliveries/s end to end, whatever the number of replicas. Anything
  else on the machine competes too: other processes used ${othersText}.`
      : "(The PostgreSQL server's CPU time could not be read here.)";
  return `${MARKER_START}
## Webhook intake with 1 and with 3 replicas on one PostgreSQL (issue 11)

Written by \`bench/replicas.ts\` (the last step of \`npm run bench\`; it replaces only this section).
Machine: ${cores} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}; Node ${process.version}
for the replicas and the benchmark; ${input.postgresVersion} on the same machine over loopback. Date:
${new Date().toISOString().slice(0, 10)}; the script took ${input.wallSeconds.toFixed(0)} s. Load average (1/5/15 min): ${loadText}.

Each configuration runs on a fresh database: N processes of the real \`src/main.ts\`, started as
\`test/e2e/replicas.test.ts\` starts them (configured by their environment only, \`DATABASE_URL\`
set, \`LOG_LEVEL=${LOG_LEVEL}\`, everything else at its default: WORKER_CONCURRENCY ${DEFAULTS.concurrency} per worker, WORKER_POLL_MS ${DEFAULTS.pollMs}),
GitHub and Anthropic served over loopback HTTP by the test fakes, in the benchmark's own process,
which is also the load generator. ${DELIVERIES} signed \`issues.labeled\` deliveries (label \`${LABEL}\`, not the trigger
label) on ${ISSUES} issues, sent round-robin over the replicas, ${IN_FLIGHT} in flight, after ${WARM_UP} warm-up deliveries
whose intake jobs finish before the clock starts; only the acknowledgement is awaited. Each
delivery is recorded and enqueues one \`intake\` job in its issue's command lane
(\`adapters/github/inbound/issue-trigger.ts\`: no outbound request); that job, run by the
intake worker of whichever replica claims it, looks for \`.github/mission-control.yml\` on the fake
GitHub (two GETs in turn, Probot's config lookup: the repository, then the organisation's \`.github\`
repository; neither has the file, so the defaults), sees that \`${LABEL}\` is not the trigger label and ends. The
intake workers run while the deliveries arrive, as in production. "Intake end to end" = ${DELIVERIES} ÷ the
time from the first measured delivery sent to the last intake job's completion (pgboss.job,
\`state = 'completed'\`). Each configuration ran ${input.rounds} times, interleaved (1, 3, then 3, 1), each time on
a fresh database with fresh processes; the tables show the round with the faster intake, the other
round's throughput in parentheses.${noiseText}

| replicas | acknowledged | ack p50 | ack p99 | ack max | scaling (acks) | intake jobs done at the last ack | last intake job completed after | intake end to end | scaling (intake) |
|---|---|---|---|---|---|---|---|---|---|
${throughputRows.join("\n")}

Scaling from 1 to 3 replicas: ${fx(ackFactor)} for acknowledgements, ${fx(intakeFactor)} for intake jobs end to end.
Start-up of the replicas (all at once; the first creates the schema): ${results.map((r) => `${r.replicas}: ${r.startupSeconds.toFixed(1)} s`).join(", ")}.
How the work spread (from each replica's \`/metrics\`, warm-up included): ${shareText}.

CPU during the measured run, in CPU seconds: the replica processes, the PostgreSQL server (postmaster
and backends), the benchmark process (load generator and fakes), and what the rest of the machine
used (its busy time less ours); "machine busy" = share of the ${cores} cores busy over the window.

| replicas | window | wall | CPU replicas | CPU PostgreSQL | CPU benchmark | CPU other processes | machine busy |
|---|---|---|---|---|---|---|---|
${cpuRows.join("\n")}

What limits the scaling:

- Acknowledgements: CPU. ${ackText}
- Intake jobs: slots, then CPU. ${intakeText}
- The CPU ceiling. ${ceilingText}

Not locks: the intake jobs are spread over ${ISSUES} lock keys and claimed with \`FOR UPDATE SKIP LOCKED\`,
and a delivery's transaction takes no lock another delivery waits for. On this ${cores}-core machine,
replicas add intake slots (raising WORKER_CONCURRENCY would add them too; not measured here) and
availability (a takeover when one dies, test/e2e/replicas.test.ts), not CPU: past the ceiling
above, only cores or hosts of their own would help, which this machine cannot show.
${MARKER_END}
`;
}

async function main(): Promise<void> {
  const wallStart = performance.now();
  const phase = (name: string) => console.log(`[${((performance.now() - wallStart) / 1000).toFixed(1)} s] ${name}`);
  const adminUrl = process.env.MC_BENCH_POSTGRES_URL || process.env.MC_TEST_POSTGRES_URL || DEFAULT_POSTGRES_URL;
  const admin = openPostgres(adminUrl, { maxConnections: 1 });
  let postgresVersion = "PostgreSQL";
  try {
    const { rows } = await sql<{ v: string }>`select version() as v`.execute(admin);
    postgresVersion = (rows[0]?.v ?? postgresVersion).split(" (")[0] ?? postgresVersion;
  } finally {
    await admin.destroy();
  }
  // Interleaved rounds (1, 3, then 3, 1), so that a burst of other load does not land on one configuration only.
  const runs = await rounds(REPLICA_COUNTS, (count, round) => runConfiguration(adminUrl, count, round, phase));
  phase("done");
  const results = runs.map(fastest);
  const section = report({ results, rounds: runs[0]?.length ?? 0, postgresVersion, wallSeconds: (performance.now() - wallStart) / 1000 });
  writeSection(section, { start: MARKER_START, end: MARKER_END });
  console.log(section);
}

/** Under Node < 22.12 (no PostgreSQL mode), this file again under Node 22, with its exit status. */
function underNode22(): number | null {
  const node22 = findNode22();
  if (node22 === process.execPath) return null;
  const child = spawnSync(node22, ["--import", "tsx", THIS_FILE, ...process.argv.slice(2)], { stdio: "inherit" });
  return child.status ?? 1;
}

const status = underNode22();
if (status !== null) process.exit(status);
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
