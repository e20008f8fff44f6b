/**
 * `npm run bench` (a step of it): issue 13's spend analytics (`src/store/analytics.ts`) on a year
 * of ledger rows for 100 repositories, SQLite against PostgreSQL. Results replace the
 * `<!-- bench:analytics -->` section of bench/results.md (appended when absent); the rest of that
 * file is left as it is. Not a test: nothing here asserts a duration, but the section says which
 * queries (if any) took a second or more.
 *
 * The ledger ({@link generateLedger}, deterministic): 10 installations × 10 repositories, 6,000
 * tasks spread over 2026 with a skew towards busy repositories, each with a plan, code, test and
 * review job and 0–3 rework cycles (revise + review jobs), 3–40 calls per job — about 400,000
 * `llm_usage` rows (≈ 16 tasks and 1,100 calls a day), their `tasks` and `transitions` rows, and
 * a few held reservations. Rows are inserted in time order, as the app writes them, through the
 * real migrations. PostgreSQL is `ANALYZE`d after loading (autovacuum would do it in production);
 * SQLite is measured as the app leaves it (no `ANALYZE`, no `sqlite_stat1`).
 *
 * Each query runs once to warm the caches, then {@link RUNS} times; the median is reported.
 * PostgreSQL: `MC_BENCH_POSTGRES_URL` or `MC_TEST_POSTGRES_URL` (default
 * `postgres://postgres@127.0.0.1:5432/postgres`); the database `mc_bench_analytics` is created on
 * it (dropped first if a previous run left it) and dropped at the end. Runs under Node 20 (the
 * kysely store needs no pg-boss).
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { sql } from "kysely";

import { type BudgetLimit, SERVER_BUDGET_SOURCE } from "../src/domain/budget-rules.js";
import * as analytics from "../src/store/analytics.js";
import { type Db, migrateToLatest, openDatabase } from "../src/store/db.js";
import { isPostgres } from "../src/store/dialect.js";
import { openPostgres } from "../src/store/postgres.js";
import type { NewLlmUsage, NewTask } from "../src/store/schema.js";
import { prng } from "../test/helpers/prng.js";
import { DEFAULT_POSTGRES_URL, writeSection } from "./queue.js";

// ---------------------------------------------------------------------------------------------
// Settings

const MARKERS = { start: "<!-- bench:analytics -->", end: "<!-- /bench:analytics -->" };
const INSTALLATIONS = 10;
const REPOSITORIES_PER_INSTALLATION = 10;
const TASKS = 6_000;
const YEAR_START = Date.UTC(2026, 0, 1);
const YEAR_END = Date.UTC(2027, 0, 1);
/** "Now" of the dashboard: mid-December, so the current day, week and month hold rows. */
const NOW = Date.UTC(2026, 11, 15, 12);
const RUNS = 7;
const DATABASE = "mc_bench_analytics";
const INSERT_BATCH = 1_000;
const THIS_FILE = fileURLToPath(import.meta.url);

/** Models and their prices in nano-dollars per token (input, output, cache write 5 min, cache read). */
const MODELS = {
  "claude-opus-4-1": [15_000, 75_000, 18_750, 1_500],
  "claude-sonnet-4-5": [3_000, 15_000, 3_750, 300],
  "claude-haiku-4-5": [1_000, 5_000, 1_250, 100],
} as const;
type Model = keyof typeof MODELS;
const MODEL_OF: Record<string, Model> = { architect: "claude-opus-4-1", coder: "claude-sonnet-4-5", reviewer: "claude-sonnet-4-5", tester: "claude-haiku-4-5" };

// ---------------------------------------------------------------------------------------------
// The ledger

interface TransitionRow {
  task: number;
  from: string | null;
  to: string;
  at: number;
}

/** What {@link generateLedger} produces: rows ready to insert (task ids are 1…n in insertion order). */
export interface Ledger {
  tasks: NewTask[];
  transitions: TransitionRow[];
  usage: NewLlmUsage[];
  repositories: string[];
}

/** A deterministic year of work for 100 repositories (see the file comment). */
export function generateLedger(seed = 13): Ledger {
  const random = prng(seed);
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const repositories: Array<{ installation: number; owner: string; repo: string }> = [];
  for (let i = 0; i < INSTALLATIONS; i++) {
    for (let j = 0; j < REPOSITORIES_PER_INSTALLATION; j++) repositories.push({ installation: 1_000_001 + i, owner: `org-${i}`, repo: `repo-${j}` });
  }
  const tasks: NewTask[] = [];
  const transitions: TransitionRow[] = [];
  const usage: NewLlmUsage[] = [];
  let jobCounter = 0;
  for (let t = 0; t < TASKS; t++) {
    const taskId = t + 1;
    // Busy repositories: the index is skewed towards 0 (the first repositories get most tasks).
    const r = repositories[Math.floor(random() ** 2 * repositories.length)] ?? repositories[0];
    if (!r) throw new Error("no repositories");
    const start = YEAR_START + Math.floor(random() * (YEAR_END - YEAR_START - 3 * 86_400_000));
    const rework = random() < 0.5 ? 0 : between(1, 3);
    let clock = start;
    let state: string | null = null;
    const move = (to: string) => {
      transitions.push({ task: taskId, from: state, to, at: clock });
      state = to;
    };
    const job = (agent: string, calls: number) => {
      jobCounter += 1;
      const model = MODEL_OF[agent] ?? "claude-sonnet-4-5";
      const [pin, pout, pcw, pcr] = MODELS[model];
      for (let c = 0; c < calls; c++) {
        clock += between(5_000, 90_000);
        const input = between(300, 6_000);
        const output = between(50, 2_500);
        const cacheWrite = c === 0 ? between(2_000, 20_000) : random() < 0.1 ? between(500, 5_000) : 0;
        const cacheRead = c === 0 ? 0 : between(5_000, 60_000);
        usage.push({
          created_at: clock,
          installation_id: r.installation,
          repository: `${r.owner}/${r.repo}`,
          subject_number: 1 + (t % 500),
          task_id: taskId,
          job_id: String(jobCounter),
          agent,
          model,
          input_tokens: input,
          output_tokens: output,
          cache_creation_input_tokens: cacheWrite,
          cache_read_input_tokens: cacheRead,
          cost_nano_usd: input * pin + output * pout + cacheWrite * pcw + cacheRead * pcr,
          request_id: null,
        });
      }
      clock += between(10_000, 600_000);
    };
    move("planning");
    job("architect", between(3, 8));
    move("coding");
    job("coder", between(15, 40));
    move("testing");
    job("tester", between(3, 8));
    move("reviewing");
    job("reviewer", between(3, 8));
    for (let k = 0; k < rework; k++) {
      move("changes_requested");
      clock += between(600_000, 86_400_000);
      move("coding");
      job("coder", between(5, 15));
      move("reviewing");
      job("reviewer", between(3, 6));
    }
    const outcome = random();
    let stage: string;
    if (outcome < 0.65) {
      move("ready_for_merge");
      clock += between(600_000, 2 * 86_400_000);
      move("merged");
      stage = "merged";
    } else if (outcome < 0.8) stage = "failed";
    else if (outcome < 0.85) stage = "cancelled";
    else if (outcome < 0.87) stage = "budget_exceeded";
    else if (outcome < 0.95) stage = "ready_for_merge";
    else stage = "reviewing";
    if (stage !== state) move(stage);
    tasks.push({
      installation_id: r.installation,
      owner: r.owner,
      repo: r.repo,
      issue_number: t + 1,
      run: 1,
      stage: stage as NewTask["stage"],
      triggered_by: "octocat",
      clone_url: `https://github.com/${r.owner}/${r.repo}.git`,
      default_branch: "main",
      config: "{}",
      created_at: start,
      updated_at: clock,
      rework_cycles: rework,
      started_at: start,
      finished_at: clock,
    });
  }
  usage.sort((a, b) => a.created_at - b.created_at);
  return { tasks, transitions, usage, repositories: repositories.map((r) => `${r.owner}/${r.repo}`) };
}

/** Inserts the ledger in batches (one transaction per table on SQLite, where single-row commits would dominate). */
export async function loadLedger(db: Db, ledger: Ledger): Promise<void> {
  const batches = <T>(rows: T[]) =>
    Array.from({ length: Math.ceil(rows.length / INSERT_BATCH) }, (_, i) => rows.slice(i * INSERT_BATCH, (i + 1) * INSERT_BATCH));
  await db.transaction().execute(async (trx) => {
    for (const batch of batches(ledger.tasks)) await trx.insertInto("tasks").values(batch).execute();
    for (const batch of batches(ledger.transitions)) {
      await trx
        .insertInto("transitions")
        .values(
          batch.map((t) => ({
            task_id: t.task,
            from_state: t.from as never,
            to_state: t.to as never,
            reason: "bench",
            actor: "mission-control",
            created_at: t.at,
          })),
        )
        .execute();
    }
  });
  for (const chunk of batches(batches(ledger.usage))) {
    await db.transaction().execute(async (trx) => {
      for (const batch of chunk) await trx.insertInto("llm_usage").values(batch).execute();
    });
  }
  // A few calls in flight now.
  await db
    .insertInto("budget_reservations")
    .values(
      [1, 2, 3].map((i) => ({
        created_at: NOW - i * 60_000,
        installation_id: 1_000_001,
        repository: "org-0/repo-0",
        agent: "coder",
        task_id: i,
        job_id: null,
        amount_nano_usd: 500_000_000,
        status: "held" as const,
        settled_at: null,
      })),
    )
    .execute();
  if (isPostgres(db)) await sql`analyze`.execute(db);
}

// ---------------------------------------------------------------------------------------------
// Queries

/** The server's limits as a typical deployment sets them (`BUDGET_*`). */
const LIMITS: BudgetLimit[] = (
  [
    ["global", "daily", 200],
    ["global", "weekly", 1_000],
    ["global", "monthly", 3_000],
    ["installation", "monthly", 1_000],
    ["repository", "monthly", 100],
    ["task", "total", 20],
  ] as const
).map(([scope, period, usd]) => ({ scope, period, limitNanoUsd: usd * 1_000_000_000, threshold: 0.8, action: "block", source: SERVER_BUDGET_SOURCE }));

export interface Case {
  name: string;
  run: (db: Db) => Promise<unknown>;
}

const YEAR: analytics.AnalyticsFilter = { from: YEAR_START, to: YEAR_END };
const LAST_30_DAYS: analytics.AnalyticsFilter = { from: NOW - 30 * 86_400_000, to: NOW };
const ONE_INSTALLATION: analytics.AnalyticsFilter = { ...YEAR, installationIds: [1_000_001] };
const ONE_REPOSITORY: analytics.AnalyticsFilter = { ...YEAR, repositories: ["org-0/repo-0"] };
const FIVE_INSTALLATIONS: analytics.AnalyticsFilter = { ...YEAR, installationIds: [1_000_001, 1_000_003, 1_000_005, 1_000_007, 1_000_009] };

export const CASES: Case[] = [
  { name: "spendOverTime year, day, none", run: (db) => analytics.spendOverTime(db, YEAR, "day", "none") },
  { name: "spendOverTime year, week, repository", run: (db) => analytics.spendOverTime(db, YEAR, "week", "repository") },
  { name: "spendOverTime year, month, agent", run: (db) => analytics.spendOverTime(db, YEAR, "month", "agent") },
  { name: "spendOverTime year, month, installation", run: (db) => analytics.spendOverTime(db, YEAR, "month", "installation") },
  { name: "spendOverTime 30 days, day, model", run: (db) => analytics.spendOverTime(db, LAST_30_DAYS, "day", "model") },
  { name: "spendTotals year, repository", run: (db) => analytics.spendTotals(db, YEAR, "repository") },
  { name: "spendTotals year, task", run: (db) => analytics.spendTotals(db, YEAR, "task") },
  { name: "cacheShare year", run: (db) => analytics.cacheShare(db, YEAR) },
  { name: "costPerMergedPr year", run: (db) => analytics.costPerMergedPr(db, YEAR) },
  { name: "agentStatistics year", run: (db) => analytics.agentStatistics(db, YEAR) },
  { name: "budgetUse (6 server limits)", run: (db) => analytics.budgetUse(db, { limits: LIMITS, now: NOW }) },
  { name: "ledgerRows year, first 1,000", run: (db) => analytics.ledgerRows(db, YEAR, { limit: 1_000 }) },
  { name: "ledgerRows year, 1,000 after id 200,000", run: (db) => analytics.ledgerRows(db, YEAR, { limit: 1_000, afterId: 200_000 }) },
  { name: "1 installation: spendOverTime day, repository", run: (db) => analytics.spendOverTime(db, ONE_INSTALLATION, "day", "repository") },
  { name: "1 installation: spendTotals agent", run: (db) => analytics.spendTotals(db, ONE_INSTALLATION, "agent") },
  { name: "1 installation: costPerMergedPr", run: (db) => analytics.costPerMergedPr(db, ONE_INSTALLATION) },
  { name: "1 installation: agentStatistics", run: (db) => analytics.agentStatistics(db, ONE_INSTALLATION) },
  { name: "1 installation: budgetUse", run: (db) => analytics.budgetUse(db, { limits: LIMITS, now: NOW, installationIds: [1_000_001] }) },
  { name: "5 installations: spendOverTime week, installation", run: (db) => analytics.spendOverTime(db, FIVE_INSTALLATIONS, "week", "installation") },
  { name: "1 repository: spendOverTime week, agent", run: (db) => analytics.spendOverTime(db, ONE_REPOSITORY, "week", "agent") },
  { name: "1 repository: ledgerRows first 1,000", run: (db) => analytics.ledgerRows(db, ONE_REPOSITORY, { limit: 1_000 }) },
  { name: "agent coder: spendOverTime month, model", run: (db) => analytics.spendOverTime(db, { ...YEAR, agent: "coder" }, "month", "model") },
];

async function median(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? Number.NaN;
}

async function measure(db: Db): Promise<number[]> {
  const results: number[] = [];
  for (const c of CASES) results.push(await median(() => c.run(db)));
  return results;
}

// ---------------------------------------------------------------------------------------------
// Main

function render(
  rows: number,
  tasks: number,
  transitions: number,
  sqliteMs: number[],
  postgresMs: number[],
  loadSeconds: { sqlite: number; postgres: number },
  loadAverage: number[],
): string {
  const ms = (n: number) => (n >= 1_000 ? `**${n.toFixed(0)} ms**` : `${n.toFixed(1)} ms`);
  const slow = CASES.filter((_, i) => (sqliteMs[i] ?? 0) >= 1_000 || (postgresMs[i] ?? 0) >= 1_000).map((c) => c.name);
  const lines = CASES.map((c, i) => `| ${c.name} | ${ms(sqliteMs[i] ?? Number.NaN)} | ${ms(postgresMs[i] ?? Number.NaN)} |`);
  return `${MARKERS.start}
## Spend analytics (issue 13)

\`bench/analytics.ts\`, ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${os.cpus().length} cores. A generated year (2026) of
ledger rows for 100 repositories in 10 installations: ${rows.toLocaleString("en-US")} \`llm_usage\` rows
(${tasks.toLocaleString("en-US")} tasks, ${transitions.toLocaleString("en-US")} transitions; about ${Math.round(rows / 365).toLocaleString("en-US")} calls a day,
skewed towards busy repositories), loaded through the real migrations (SQLite ${loadSeconds.sqlite.toFixed(1)} s, PostgreSQL
${loadSeconds.postgres.toFixed(1)} s). Each query of \`src/store/analytics.ts\` as the dashboard calls it: median of ${RUNS} runs after
one warm-up, in ms. SQLite without \`ANALYZE\` (as the app leaves it); PostgreSQL after \`ANALYZE\`. Indexes:
\`llm_usage (created_at)\`, \`(installation_id, created_at)\`, \`(repository, created_at)\`, \`(task_id)\`; \`transitions (to_state, created_at)\`.

| query | SQLite | PostgreSQL |
|---|---:|---:|
${lines.join("\n")}

Load average at the end (1, 5, 15 min): ${loadAverage.map((l) => l.toFixed(2)).join(", ")} on ${os.cpus().length} cores (other work shared the machine).
${slow.length === 0 ? "Every query answered in under a second on both backends." : `At or over a second: ${slow.join("; ")}.`}
${MARKERS.end}`;
}

async function main(): Promise<void> {
  const adminUrl = process.env.MC_BENCH_POSTGRES_URL || process.env.MC_TEST_POSTGRES_URL || DEFAULT_POSTGRES_URL;
  const t0 = performance.now();
  const ledger = generateLedger();
  console.log(
    `generated ${ledger.usage.length} usage rows, ${ledger.tasks.length} tasks, ${ledger.transitions.length} transitions in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  const dir = mkdtempSync(path.join(os.tmpdir(), "mc-bench-analytics-"));
  let sqliteMs: number[];
  const loadSeconds = { sqlite: 0, postgres: 0 };
  try {
    const db = openDatabase(path.join(dir, "mc.sqlite"));
    try {
      await migrateToLatest(db);
      const t = performance.now();
      await loadLedger(db, ledger);
      loadSeconds.sqlite = (performance.now() - t) / 1000;
      console.log(`SQLite loaded in ${loadSeconds.sqlite.toFixed(1)} s`);
      sqliteMs = await measure(db);
    } finally {
      await db.destroy();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const admin = openPostgres(adminUrl, { maxConnections: 1 });
  let postgresMs: number[];
  try {
    await sql`drop database if exists ${sql.id(DATABASE)} with (force)`.execute(admin);
    await sql`create database ${sql.id(DATABASE)}`.execute(admin);
    const url = new URL(adminUrl);
    url.pathname = `/${DATABASE}`;
    const db = openPostgres(url.toString());
    try {
      await migrateToLatest(db);
      const t = performance.now();
      await loadLedger(db, ledger);
      loadSeconds.postgres = (performance.now() - t) / 1000;
      console.log(`PostgreSQL loaded in ${loadSeconds.postgres.toFixed(1)} s`);
      postgresMs = await measure(db);
    } finally {
      await db.destroy();
    }
  } finally {
    await sql`drop database if exists ${sql.id(DATABASE)} with (force)`.execute(admin);
    await admin.destroy();
  }

  const section = render(ledger.usage.length, ledger.tasks.length, ledger.transitions.length, sqliteMs, postgresMs, loadSeconds, os.loadavg());
  writeSection(section, MARKERS);
  console.log(section);
}

// Run only as a script; a scratch script may import the generator.
if (process.argv[1] && path.resolve(process.argv[1]) === THIS_FILE) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
