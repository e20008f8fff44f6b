import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { BudgetExceededError, ConfigError } from "../../src/domain/errors.js";
import { RepoBudgetConfig, repoBudgetLimits } from "../../src/config/repo-config.js";
import { serverBudgetLimits } from "../../src/config/env.js";
import {
  type BudgetLimit,
  type BudgetSubject,
  estimateInputTokens,
  estimateWorstCaseNanoUsd,
  exceedsLimit,
  limitApplies,
  mergeLimits,
  periodWindow,
  alertKey,
  budgetScopeKey,
  reachesThreshold,
  reservationLockScopes,
} from "../../src/domain/budget-rules.js";
import { budgetAdvisoryLocks, release, releaseStaleReservations, reserve, settle, spendReport } from "../../src/store/budgets.js";
import { type Db, openDatabase } from "../../src/store/db.js";
import type { NewLlmUsage } from "../../src/store/schema.js";
import { recordUsage } from "../../src/store/usage.js";
import { usdToNano } from "../../src/domain/money.js";
import { type ModelPrice, toNanoPrice } from "../../src/domain/pricing.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { prng } from "../helpers/prng.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const at = (iso: string): number => Date.parse(iso);
/** Saturday 2026-11-21, mid-day UTC. */
const T = at("2026-11-21T12:00:00Z");
/** USD → nano-dollars (exact, from the decimal text): amounts below read in USD, the store works in n$. */
const usd = (amount: number): number => usdToNano(amount);

let testDb: TestDatabase;
let db: Db;

beforeEach(async () => {
  testDb = await createTestDatabase();
  db = testDb.db;
});

afterEach(async () => {
  await testDb.cleanup();
});

function subject(overrides: Partial<BudgetSubject> = {}): BudgetSubject {
  return { installationId: 1, repository: "octo/widgets", agent: "coder", taskId: 1, subjectNumber: 7, jobId: null, ...overrides };
}

function limit(overrides: Partial<BudgetLimit> = {}): BudgetLimit {
  return { scope: "global", period: "daily", limitNanoUsd: usd(1), threshold: 0.8, action: "block", source: "server", ...overrides };
}

/** Records a usage row costing `costUsd` USD (stored as nano-dollars). */
async function addUsage(costUsd: number, overrides: Partial<NewLlmUsage> = {}): Promise<void> {
  await recordUsage(db, {
    created_at: T,
    installation_id: 1,
    repository: "octo/widgets",
    subject_number: 7,
    task_id: 1,
    job_id: null,
    agent: "coder",
    model: "claude-sonnet-5-5",
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cost_nano_usd: usd(costUsd),
    request_id: null,
    ...overrides,
  });
}

async function reservationRows() {
  return db.selectFrom("budget_reservations").selectAll().orderBy("id").execute();
}

/** Nano-dollars `l` counts for `s` at `now`. */
async function spentOf(l: BudgetLimit, s: BudgetSubject = subject(), now = T): Promise<number> {
  const [status] = await spendReport(db, s, [l], now);
  if (!status) throw new Error("limit does not apply");
  return status.spentNanoUsd;
}

/** Random amounts between $0.01 and $0.08, to 1/10,000 of a dollar, in nano-dollars. */
function randomAmounts(seed: number, count: number): number[] {
  const next = prng(seed);
  return Array.from({ length: count }, () => Math.round((0.01 + next() * 0.07) * 10_000) * 100_000);
}

describe("periodWindow", () => {
  it("daily runs from UTC midnight to the next", () => {
    expect(periodWindow("daily", at("2026-11-21T00:00:00Z"))).toEqual({ start: at("2026-11-21T00:00:00Z"), end: at("2026-11-22T00:00:00Z") });
    expect(periodWindow("daily", at("2026-11-21T23:59:59.999Z"))).toEqual({ start: at("2026-11-21T00:00:00Z"), end: at("2026-11-22T00:00:00Z") });
    expect(periodWindow("daily", at("2026-12-31T23:59:59Z"))).toEqual({ start: at("2026-12-31T00:00:00Z"), end: at("2027-01-01T00:00:00Z") });
  });

  it("weekly is the ISO week: a Sunday belongs to the week that started the Monday before", () => {
    const week = { start: at("2026-11-23T00:00:00Z"), end: at("2026-11-30T00:00:00Z") };
    expect(periodWindow("weekly", at("2026-11-23T00:00:00Z"))).toEqual(week); // Monday
    expect(periodWindow("weekly", at("2026-11-29T23:59:59Z"))).toEqual(week); // Sunday
    expect(periodWindow("weekly", at("2026-11-30T00:00:00Z"))).toEqual({ start: at("2026-11-30T00:00:00Z"), end: at("2026-12-07T00:00:00Z") }); // next Monday
    expect(periodWindow("weekly", T)).toEqual({ start: at("2026-11-16T00:00:00Z"), end: at("2026-11-23T00:00:00Z") }); // Saturday
    expect(periodWindow("weekly", at("2027-01-01T10:00:00Z"))).toEqual({ start: at("2026-12-28T00:00:00Z"), end: at("2027-01-04T00:00:00Z") }); // across the year
  });

  it("monthly runs from the 1st to the next 1st", () => {
    expect(periodWindow("monthly", at("2026-11-30T23:59:59Z"))).toEqual({ start: at("2026-11-01T00:00:00Z"), end: at("2026-12-01T00:00:00Z") });
    expect(periodWindow("monthly", at("2026-12-01T00:00:00Z"))).toEqual({ start: at("2026-12-01T00:00:00Z"), end: at("2027-01-01T00:00:00Z") });
    expect(periodWindow("monthly", at("2028-02-29T08:00:00Z"))).toEqual({ start: at("2028-02-01T00:00:00Z"), end: at("2028-03-01T00:00:00Z") });
  });

  it("total has no window", () => {
    expect(periodWindow("total", T)).toEqual({ start: 0, end: Number.POSITIVE_INFINITY });
  });
});

describe("spend", () => {
  it("counts usage rows and held reservations of the window only", async () => {
    const daily = limit({ period: "daily", limitNanoUsd: usd(100) });
    const monthly = limit({ period: "monthly", limitNanoUsd: usd(100) });
    await addUsage(1);
    await addUsage(2, { created_at: at("2026-11-21T00:00:00Z") }); // first instant of the day
    await addUsage(4, { created_at: at("2026-11-20T23:59:59.999Z") }); // yesterday
    await addUsage(8, { created_at: at("2026-10-31T23:59:59Z") }); // last month
    await addUsage(16, { created_at: at("2026-11-22T00:00:00Z") }); // tomorrow (clock skew): not in today's window
    await reserve(db, { subject: subject(), limits: [], amountNanoUsd: usd(0.5), now: T });
    await reserve(db, { subject: subject(), limits: [], amountNanoUsd: usd(0.25), now: at("2026-11-20T10:00:00Z") });

    const [d, m] = await spendReport(db, subject(), [daily, monthly], T);
    expect(d).toMatchObject({
      usageNanoUsd: usd(3),
      heldNanoUsd: usd(0.5),
      spentNanoUsd: usd(3.5),
      limitNanoUsd: usd(100),
      remainingNanoUsd: usd(96.5),
      percent: expect.closeTo(3.5, 9),
      resetsAt: at("2026-11-22T00:00:00Z"),
    });
    expect(m).toMatchObject({ usageNanoUsd: usd(23), heldNanoUsd: usd(0.75), spentNanoUsd: usd(23.75), resetsAt: at("2026-12-01T00:00:00Z") });
  });

  it("stops counting a reservation once it is settled or released", async () => {
    const l = limit({ limitNanoUsd: usd(100) });
    const a = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.5), now: T });
    const b = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.25), now: T });
    await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.125), now: T });
    expect(await spentOf(l)).toBe(usd(0.875));
    await settle(db, a.id, T);
    await release(db, b.id, T);
    expect(await spentOf(l)).toBe(usd(0.125));
  });

  it("counts what each scope covers", async () => {
    await addUsage(1, { installation_id: 1, repository: "octo/widgets", agent: "coder", task_id: 1 });
    await addUsage(2, { installation_id: 1, repository: "octo/gadgets", agent: "coder", task_id: 2 });
    await addUsage(4, { installation_id: 1, repository: "octo/widgets", agent: "reviewer", task_id: 1 });
    await addUsage(8, { installation_id: 2, repository: "other/thing", agent: "coder", task_id: 3 });
    await addUsage(16, { installation_id: 1, repository: "octo/widgets", agent: "coder", task_id: 1, created_at: at("2026-11-02T00:00:00Z") });
    const s = subject();
    expect(await spentOf(limit({ scope: "global", limitNanoUsd: usd(100) }))).toBe(usd(15));
    expect(await spentOf(limit({ scope: "global", period: "monthly", limitNanoUsd: usd(100) }))).toBe(usd(31));
    expect(await spentOf(limit({ scope: "installation", limitNanoUsd: usd(100) }))).toBe(usd(7));
    expect(await spentOf(limit({ scope: "repository", limitNanoUsd: usd(100) }))).toBe(usd(5));
    // an agent role counts across repositories, unless the limit is restricted to one
    expect(await spentOf(limit({ scope: "agent", limitNanoUsd: usd(100) }))).toBe(usd(11));
    expect(await spentOf(limit({ scope: "agent", agent: "coder", repository: "octo/widgets", limitNanoUsd: usd(100) }))).toBe(usd(1));
    expect(await spentOf(limit({ scope: "task", period: "total", limitNanoUsd: usd(100) }))).toBe(usd(21));

    const report = await spendReport(
      db,
      s,
      [limit({ scope: "agent", agent: "coder" }), limit({ scope: "agent", agent: "reviewer" }), limit({ scope: "repository", repository: "octo/gadgets" })],
      T,
    );
    expect(report.map((r) => r.scopeKey)).toEqual(["coder"]);
    expect(limitApplies(limit({ scope: "agent", agent: "reviewer" }), s)).toBe(false);
    const [agentInRepo] = await spendReport(db, s, [limit({ scope: "agent", repository: "octo/widgets" })], T);
    expect(agentInRepo).toMatchObject({ scopeKey: "octo/widgets:coder", scopeLabel: "agent coder in octo/widgets" });
  });
});

describe("reserve", () => {
  it("blocks at the limit, to the cent", async () => {
    const l = limit({ limitNanoUsd: usd(1) });
    await addUsage(0.97);
    const err = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.04), now: T }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    const exceeded = err as BudgetExceededError;
    expect(exceeded).toMatchObject({
      code: "budget_exceeded",
      retryable: false,
      spentNanoUsd: usd(0.97),
      requestedNanoUsd: usd(0.04),
      resetsAt: at("2026-11-22T00:00:00Z"),
      scopeKey: "*",
    });
    expect(exceeded.limit).toBe(l);
    expect(await reservationRows()).toEqual([]);

    const ok = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.03), now: T });
    expect(ok).toMatchObject({ amountNanoUsd: usd(0.03) });
    expect(await reservationRows()).toEqual([
      expect.objectContaining({
        id: ok.id,
        amount_nano_usd: usd(0.03),
        status: "held",
        created_at: T,
        repository: "octo/widgets",
        agent: "coder",
        task_id: 1,
        installation_id: 1,
      }),
    ]);
    // now exactly at the limit: nothing more fits
    await expect(reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.0001), now: T })).rejects.toBeInstanceOf(BudgetExceededError);
    await expect(reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0), now: T })).resolves.toMatchObject({ amountNanoUsd: usd(0) });
  });

  it("explains the refusal in a user message", async () => {
    const l = limit({ scope: "repository", period: "monthly", limitNanoUsd: usd(5), source: ".github/mission-control.yml" });
    await addUsage(4.98);
    const err = (await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.05), now: T }).catch((e: unknown) => e)) as BudgetExceededError;
    expect(err.userMessage).toBe(
      "Budget exceeded: repository octo/widgets monthly limit $5.00, spent $4.98 (this call needs up to $0.05). Resets 2026-12-01 00:00 UTC.",
    );
    expect(err.message).toContain("Limit set by .github/mission-control.yml.");
  });

  it("reports the limit that resets last when several would be exceeded, and writes nothing", async () => {
    const daily = limit({ period: "daily", limitNanoUsd: usd(1) });
    const task = limit({ scope: "task", period: "total", limitNanoUsd: usd(1) });
    await addUsage(0.9);
    const err = (await reserve(db, { subject: subject({ taskId: 1 }), limits: [daily, task], amountNanoUsd: usd(0.5), now: T }).catch(
      (e: unknown) => e,
    )) as BudgetExceededError;
    expect(err.limit).toBe(task);
    expect(err.resetsAt).toBeNull();
    expect(err.userMessage).toBe("Budget exceeded: task 1 total limit $1.00, spent $0.90 (this call needs up to $0.50). This limit does not reset.");
    expect(await reservationRows()).toEqual([]);
    expect(await db.selectFrom("budget_alerts").selectAll().execute()).toEqual([]);
  });

  it("ignores limits that do not apply to the subject", async () => {
    const other = limit({ scope: "repository", repository: "octo/gadgets", limitNanoUsd: usd(0.01) });
    const reviewer = limit({ scope: "agent", agent: "reviewer", limitNanoUsd: usd(0.01) });
    await expect(reserve(db, { subject: subject(), limits: [other, reviewer], amountNanoUsd: usd(1), now: T })).resolves.toMatchObject({
      amountNanoUsd: usd(1),
    });
  });

  it("never blocks on a warn limit, and alerts when it is exceeded", async () => {
    const warn = limit({ limitNanoUsd: usd(1), action: "warn" });
    const first = await reserve(db, { subject: subject(), limits: [warn], amountNanoUsd: usd(0.9), now: T });
    expect(first.alerts.map((a) => [a.kind, a.spentNanoUsd])).toEqual([["threshold", usd(0.9)]]);
    const second = await reserve(db, { subject: subject(), limits: [warn], amountNanoUsd: usd(0.5), now: T });
    expect(second.alerts).toEqual([
      expect.objectContaining({
        kind: "exceeded",
        spentNanoUsd: usd(1.4),
        limitNanoUsd: usd(1),
        percent: expect.closeTo(140, 9),
        scopeKey: "*",
        resetsAt: at("2026-11-22T00:00:00Z"),
      }),
    ]);
    const third = await reserve(db, { subject: subject(), limits: [warn], amountNanoUsd: usd(5), now: T });
    expect(third.alerts).toEqual([]);
    expect(await spentOf(warn)).toBe(usd(6.4));
  });

  it("alerts exactly once per scope, period and window", async () => {
    const daily = limit({ period: "daily", limitNanoUsd: usd(10), threshold: 0.8 });
    const monthly = limit({ period: "monthly", limitNanoUsd: usd(100), threshold: 0.8 });
    const limits = [daily, monthly];
    expect((await reserve(db, { subject: subject(), limits, amountNanoUsd: usd(7), now: T })).alerts).toEqual([]);
    const crossing = await reserve(db, { subject: subject(), limits, amountNanoUsd: usd(1), now: T });
    expect(crossing.alerts).toEqual([
      expect.objectContaining({ limit: daily, kind: "threshold", spentNanoUsd: usd(8), percent: 80, windowStart: at("2026-11-21T00:00:00Z") }),
    ]);
    expect((await reserve(db, { subject: subject(), limits, amountNanoUsd: usd(1), now: T + 1_000 })).alerts).toEqual([]);

    const nextDay = at("2026-11-22T09:00:00Z");
    const again = await reserve(db, { subject: subject(), limits, amountNanoUsd: usd(8.5), now: nextDay });
    expect(again.alerts).toEqual([
      expect.objectContaining({ limit: daily, kind: "threshold", spentNanoUsd: usd(8.5), windowStart: at("2026-11-22T00:00:00Z") }),
    ]);
    expect(await db.selectFrom("budget_alerts").select(["scope", "scope_key", "period", "period_start", "threshold"]).orderBy("id").execute()).toEqual([
      { scope: "global", scope_key: "*", period: "daily", period_start: at("2026-11-21T00:00:00Z"), threshold: 0.8 },
      { scope: "global", scope_key: "*", period: "daily", period_start: at("2026-11-22T00:00:00Z"), threshold: 0.8 },
    ]);
  });

  it("alerts a repository's lower warn limit and the server's block ceiling separately", async () => {
    const limits = mergeLimits(
      [limit({ scope: "repository", period: "monthly", limitNanoUsd: usd(10), action: "block" })],
      [
        limit({
          scope: "repository",
          period: "monthly",
          limitNanoUsd: usd(5),
          action: "warn",
          repository: "octo/widgets",
          source: ".github/mission-control.yml",
        }),
      ],
    );
    const kinds = async (amountUsd: number) =>
      (await reserve(db, { subject: subject(), limits, amountNanoUsd: usd(amountUsd), now: T })).alerts.map((a) => `${a.limit.action}:${a.kind}`);
    expect(await kinds(4)).toEqual(["warn:threshold"]);
    expect(await kinds(2)).toEqual(["warn:exceeded"]);
    expect(await kinds(2)).toEqual(["block:threshold"]);
    await expect(reserve(db, { subject: subject(), limits, amountNanoUsd: usd(2.5), now: T })).rejects.toBeInstanceOf(BudgetExceededError);
  });

  it("refuses a negative, fractional or non-finite amount of nano-dollars", async () => {
    await expect(reserve(db, { subject: subject(), limits: [], amountNanoUsd: -1, now: T })).rejects.toBeInstanceOf(RangeError);
    await expect(reserve(db, { subject: subject(), limits: [], amountNanoUsd: 0.5, now: T })).rejects.toBeInstanceOf(RangeError);
    await expect(reserve(db, { subject: subject(), limits: [], amountNanoUsd: Number.NaN, now: T })).rejects.toBeInstanceOf(RangeError);
    expect(await reservationRows()).toEqual([]);
  });
});

describe("settle and release", () => {
  it("are idempotent, and release frees the amount", async () => {
    const l = limit({ limitNanoUsd: usd(1) });
    const a = await reserve(db, { subject: subject({ jobId: "3" }), limits: [l], amountNanoUsd: usd(0.5), now: T });
    const b = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.5), now: T });
    await expect(reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.5), now: T })).rejects.toBeInstanceOf(BudgetExceededError);

    expect(await release(db, a.id, T + 5)).toBe(true);
    expect(await release(db, a.id, T + 6)).toBe(false);
    expect(await settle(db, a.id, T + 7)).toBe(false); // a released reservation stays released
    const c = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.5), now: T });

    expect(await settle(db, b.id, T + 8)).toBe(true);
    expect(await settle(db, b.id, T + 9)).toBe(false);
    expect(await release(db, b.id, T + 10)).toBe(false); // a settled reservation stays settled
    expect(await settle(db, 999_999)).toBe(false);

    const rows = await reservationRows();
    expect(rows.map((r) => [r.id, r.status, r.settled_at, r.job_id])).toEqual([
      [a.id, "released", T + 5, 3],
      [b.id, "settled", T + 8, null],
      [c.id, "held", null, null],
    ]);
  });

  it("releases reservations abandoned for longer than the cutoff", async () => {
    const old = await reserve(db, { subject: subject(), limits: [], amountNanoUsd: usd(1), now: T - 3_600_000 });
    const recent = await reserve(db, { subject: subject(), limits: [], amountNanoUsd: usd(1), now: T - 60_000 });
    expect(await releaseStaleReservations(db, { olderThanMs: 30 * 60_000, now: T })).toBe(1);
    expect(await releaseStaleReservations(db, { olderThanMs: 30 * 60_000, now: T })).toBe(0);
    expect((await reservationRows()).map((r) => [r.id, r.status])).toEqual([
      [old.id, "released"],
      [recent.id, "held"],
    ]);
  });
});

describe("concurrency", () => {
  type Outcome = { ok: true; amount: number } | { ok: false; amount: number };

  /** Amounts, sums and the limit in nano-dollars: compared exactly. */
  function checkOutcomes(outcomes: Outcome[], heldSum: number, limitNanoUsd: number): void {
    const successes = outcomes.filter((o) => o.ok);
    const refused = outcomes.filter((o) => !o.ok);
    expect(successes.length + refused.length).toBe(200);
    expect(successes.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    expect(heldSum).toBeLessThanOrEqual(limitNanoUsd);
    expect(heldSum).toBe(successes.reduce((sum, o) => sum + o.amount, 0));
    // Spend only grows, so every refusal was justified: even the smallest refused amount does not fit now.
    expect(heldSum + Math.min(...refused.map((o) => o.amount))).toBeGreaterThan(limitNanoUsd);
  }

  async function heldSum(): Promise<number> {
    const row = await db
      .selectFrom("budget_reservations")
      .where("status", "=", "held")
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>("amount_nano_usd"), eb.lit(0)).as("total"))
      .executeTakeFirstOrThrow();
    return Number(row.total);
  }

  it("200 concurrent reservations from two connections never overshoot one limit", async () => {
    const second = openDatabase(testDb.file);
    try {
      const l = limit({ limitNanoUsd: usd(5) });
      const amounts = randomAmounts(20261121, 200);
      const outcomes = await Promise.all(
        amounts.map((amount, i) =>
          reserve(i % 2 === 0 ? db : second, { subject: subject({ taskId: i }), limits: [l], amountNanoUsd: amount, now: T }).then(
            (): Outcome => ({ ok: true, amount }),
            (err: unknown): Outcome => {
              if (err instanceof BudgetExceededError) return { ok: false, amount };
              throw err;
            },
          ),
        ),
      );
      checkOutcomes(outcomes, await heldSum(), usd(5));
    } finally {
      await second.destroy();
    }
  });

  it("200 concurrent reservations from two processes never overshoot one limit", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mc-budget-procs-"));
    try {
      const script = path.join(dir, "reserve-many.mts");
      const url = (rel: string) => pathToFileURL(path.join(ROOT, rel)).href;
      await writeFile(
        script,
        `
import { openDatabase } from ${JSON.stringify(url("src/store/db.ts"))};
import { reserve } from ${JSON.stringify(url("src/store/budgets.ts"))};
import { BudgetExceededError } from ${JSON.stringify(url("src/domain/errors.ts"))};
const [file, amountsJson, now] = process.argv.slice(2);
const amounts = JSON.parse(amountsJson);
const db = openDatabase(file);
const limit = { scope: "global", period: "daily", limitNanoUsd: 5_000_000_000, threshold: 0.8, action: "block", source: "server" };
process.stdout.write("ready\\n");
await new Promise((resolve) => process.stdin.once("data", resolve));
process.stdin.destroy();
const outcomes = await Promise.all(amounts.map((amount, i) =>
  reserve(db, { subject: { installationId: 1, repository: "octo/widgets", agent: "coder", taskId: i, subjectNumber: 1, jobId: null }, limits: [limit], amountNanoUsd: amount, now: Number(now) })
    .then(() => ({ ok: true, amount }), (err) => {
      if (err instanceof BudgetExceededError) return { ok: false, amount };
      return { error: String(err && err.stack || err), amount };
    })));
await db.destroy();
process.stdout.write("result " + JSON.stringify(outcomes) + "\\n");
`,
      );
      const amounts = randomAmounts(424242, 200);
      const halves = [amounts.slice(0, 100), amounts.slice(100)];
      const children = halves.map((half) => {
        const child = spawn(process.execPath, ["--import", "tsx", script, testDb.file, JSON.stringify(half), String(T)], {
          cwd: ROOT,
          stdio: ["pipe", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        let onReady: () => void = () => undefined;
        const ready = new Promise<void>((resolve) => (onReady = resolve));
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
          if (stdout.includes("ready\n")) onReady();
        });
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        const exited = new Promise<string>((resolve, reject) => {
          child.on("error", reject);
          child.on("close", (code) => (code === 0 ? resolve(stdout) : reject(new Error(`child exited ${code}: ${stderr}`))));
        });
        return { child, ready: Promise.race([ready, exited.then(() => undefined)]), exited };
      });
      await Promise.all(children.map((c) => c.ready));
      for (const c of children) c.child.stdin.end("go\n"); // both start together
      const outputs = await Promise.all(children.map((c) => c.exited));
      const outcomes = outputs.flatMap((out) => {
        const line = out.split("\n").find((l) => l.startsWith("result "));
        if (!line) throw new Error(`no result in child output: ${out}`);
        return JSON.parse(line.slice("result ".length)) as Array<Outcome | { error: string }>;
      });
      expect(outcomes.filter((o) => "error" in o)).toEqual([]);
      checkOutcomes(outcomes as Outcome[], await heldSum(), usd(5));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("reservationLockScopes (PostgreSQL's per-scope ledger locks)", () => {
  const shared = ["agent:coder", "global", "installation:1", "repository:octo/widgets", "task:1"];
  const exclusiveKeys = (limits: BudgetLimit[], s = subject()) =>
    reservationLockScopes(s, limits)
      .filter((l) => l.exclusive)
      .map((l) => l.key);

  it("takes every scope the reservation adds spend to, shared, sorted, when it checks no limit", () => {
    expect(reservationLockScopes(subject(), [])).toEqual(shared.map((key) => ({ key, exclusive: false })));
  });

  it("takes exclusive the scope each checked limit sums: its own, or the repository when the limit is restricted to one", () => {
    expect(exclusiveKeys([limit({ scope: "global" })])).toEqual(["global"]);
    expect(exclusiveKeys([limit({ scope: "installation" }), limit({ scope: "task", period: "total" })])).toEqual(["installation:1", "task:1"]);
    expect(exclusiveKeys([limit({ scope: "agent", agent: "coder" })])).toEqual(["agent:coder"]);
    expect(exclusiveKeys([limit({ scope: "global", repository: "octo/widgets" }), limit({ scope: "agent", repository: "octo/widgets" })])).toEqual([
      "repository:octo/widgets",
    ]);
    // Limits that do not apply to the subject are not checked, so they lock nothing exclusively.
    expect(exclusiveKeys([limit({ scope: "repository", repository: "octo/other" }), limit({ scope: "agent", agent: "reviewer" })])).toEqual([]);
    expect(reservationLockScopes(subject(), [limit({ scope: "global" })])).toHaveLength(5);
  });

  it("two reservations share a lock, one side exclusive, whenever one checks a limit that counts the other's spend", () => {
    const a = subject({ repository: "octo/a", taskId: 1 });
    const b = subject({ repository: "octo/b", taskId: 2 });
    const c = subject({ repository: "octo/c", taskId: 3, installationId: 2, agent: "reviewer" });
    const conflict = (x: BudgetSubject, xl: BudgetLimit[], y: BudgetSubject, yl: BudgetLimit[]) => {
      const ys = new Map(reservationLockScopes(y, yl).map((l) => [l.key, l.exclusive]));
      return reservationLockScopes(x, xl).some((l) => ys.has(l.key) && (l.exclusive || ys.get(l.key) === true));
    };
    const perRepo = [limit({ scope: "repository", period: "monthly" }), limit({ scope: "task", period: "total" })];
    // The defaults (repository and task limits): different repositories never wait for each other.
    expect(conflict(a, perRepo, b, perRepo)).toBe(false);
    // Same repository: they do.
    expect(conflict(a, perRepo, subject({ repository: "octo/a", taskId: 9 }), perRepo)).toBe(true);
    // An installation limit from octo/a's own configuration counts octo/b's spend, though octo/b does not check it.
    expect(conflict(a, [limit({ scope: "installation" })], b, [])).toBe(true);
    expect(conflict(a, [limit({ scope: "installation" })], c, [])).toBe(false);
    // A global limit counts everyone's; an agent limit counts that role's.
    expect(conflict(a, [limit({ scope: "global" })], c, [])).toBe(true);
    expect(conflict(a, [limit({ scope: "agent" })], b, [])).toBe(true);
    expect(conflict(a, [limit({ scope: "agent" })], c, [])).toBe(false);
  });

  it("two reservations that write the same budget_alerts row take the same exclusive lock (no row-lock wait after the advisory locks)", () => {
    const b = subject({ repository: "octo/b", taskId: 2 });
    const c = subject({ repository: "octo/c", taskId: 3 });
    const shapes: BudgetLimit[] = [
      limit({ scope: "global" }),
      limit({ scope: "global", repository: "octo/b" }),
      limit({ scope: "global", repository: "octo/c" }),
      limit({ scope: "installation" }),
      limit({ scope: "installation", repository: "octo/b" }),
      limit({ scope: "installation", repository: "octo/c" }),
      limit({ scope: "agent" }),
      limit({ scope: "agent", repository: "octo/b" }),
      limit({ scope: "repository" }),
      limit({ scope: "task", period: "total" }),
    ];
    const exclusive = (s: BudgetSubject, l: BudgetLimit) => reservationLockScopes(s, [l]).find((x) => x.exclusive)?.key;
    for (const x of shapes) {
      for (const y of shapes) {
        for (const [sx, sy] of [
          [b, c],
          [b, b],
          [c, c],
        ] as const) {
          if (!limitApplies(x, sx) || !limitApplies(y, sy)) continue;
          if (x.scope === y.scope && x.period === y.period && alertKey(x, sx) === alertKey(y, sy)) expect(exclusive(sx, x)).toBe(exclusive(sy, y));
        }
      }
    }
    // A limit restricted to one repository counts other spend than the unrestricted one: its own alert key.
    expect(budgetScopeKey(limit({ scope: "global", repository: "octo/b" }), b)).toBe("*@octo/b");
    expect(budgetScopeKey(limit({ scope: "installation", repository: "octo/b" }), b)).toBe("1@octo/b");
    expect(budgetScopeKey(limit({ scope: "global" }), b)).toBe("*");
  });

  it("budgetAdvisoryLocks maps each scope to one 32-bit lock, exclusive when any scope on it is, in ascending order", () => {
    const locks = budgetAdvisoryLocks(reservationLockScopes(subject(), [limit({ scope: "repository", period: "monthly" })]));
    expect(locks).toHaveLength(5);
    expect(locks.map((l) => l.id)).toEqual([...locks.map((l) => l.id)].sort((x, y) => x - y));
    for (const l of locks) expect(Number.isInteger(l.id) && l.id >= -(2 ** 31) && l.id < 2 ** 31).toBe(true);
    expect(locks.filter((l) => l.exclusive)).toEqual(budgetAdvisoryLocks([{ key: "repository:octo/widgets", exclusive: true }]));
    // The same scope twice, once exclusive: one lock, exclusive.
    expect(
      budgetAdvisoryLocks([
        { key: "global", exclusive: false },
        { key: "global", exclusive: true },
      ]),
    ).toEqual([{ id: budgetAdvisoryLocks([{ key: "global", exclusive: false }])[0]!.id, exclusive: true }]);
  });
});

describe("mergeLimits", () => {
  const server = (o: Partial<BudgetLimit>) => limit({ source: "server", ...o });
  const repo = (o: Partial<BudgetLimit>) => limit({ source: ".github/mission-control.yml", repository: "octo/widgets", ...o });

  it("takes the lower of two block limits on the same scope and period", () => {
    expect(
      mergeLimits(
        [server({ scope: "repository", period: "monthly", limitNanoUsd: usd(10) })],
        [repo({ scope: "repository", period: "monthly", limitNanoUsd: usd(5) })],
      ),
    ).toEqual([repo({ scope: "repository", period: "monthly", limitNanoUsd: usd(5) })]);
    expect(
      mergeLimits(
        [server({ scope: "repository", period: "monthly", limitNanoUsd: usd(5) })],
        [repo({ scope: "repository", period: "monthly", limitNanoUsd: usd(50) })],
      ),
    ).toEqual([server({ scope: "repository", period: "monthly", limitNanoUsd: usd(5) })]);
  });

  it("keeps a server block when the repository only warns", () => {
    const ceiling = server({ scope: "task", period: "total", limitNanoUsd: usd(10) });
    expect(mergeLimits([ceiling], [repo({ scope: "task", period: "total", limitNanoUsd: usd(5), action: "warn" })])).toEqual([
      ceiling,
      repo({ scope: "task", period: "total", limitNanoUsd: usd(5), action: "warn" }),
    ]);
    expect(mergeLimits([ceiling], [repo({ scope: "task", period: "total", limitNanoUsd: usd(50), action: "warn" })])).toEqual([ceiling]);
    // a repository may turn a server warning into a (lower or equal) block
    expect(mergeLimits([server({ limitNanoUsd: usd(10), action: "warn" })], [repo({ scope: "global", limitNanoUsd: usd(5), repository: undefined })])).toEqual([
      repo({ scope: "global", limitNanoUsd: usd(5), repository: undefined }),
    ]);
  });

  it("keeps limits that count different spend", () => {
    const limits = [
      server({ scope: "global", period: "daily", limitNanoUsd: usd(1) }),
      server({ scope: "global", period: "monthly", limitNanoUsd: usd(2) }),
      server({ scope: "agent", agent: "coder", period: "daily", limitNanoUsd: usd(3) }),
    ];
    const repoLimits = [
      repo({ scope: "agent", agent: "coder", period: "daily", limitNanoUsd: usd(4) }), // this repository's coder, not all coders
      repo({ scope: "agent", agent: "reviewer", period: "daily", limitNanoUsd: usd(5) }),
      repo({ scope: "repository", period: "weekly", limitNanoUsd: usd(6) }),
    ];
    expect(mergeLimits(limits, repoLimits)).toEqual([...limits, ...repoLimits]);
  });

  it("never raises a server ceiling", () => {
    const next = prng(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
    const random = (source: string): BudgetLimit => ({
      scope: pick(["global", "installation", "repository", "agent", "task"] as const),
      period: pick(["daily", "weekly", "monthly", "total"] as const),
      limitNanoUsd: (Math.round(next() * 1000) + 1) * 10_000_000, // $0.01 to $10.01
      threshold: 0.8,
      action: pick(["warn", "block"] as const),
      source,
      ...(next() < 0.5 ? { agent: pick(["coder", "reviewer"]) } : {}),
    });
    for (let round = 0; round < 200; round += 1) {
      const s = Array.from({ length: 4 }, () => random("server"));
      const r = Array.from({ length: 4 }, () => random("repo"));
      const merged = mergeLimits(s, r);
      for (const ceiling of s.filter((l) => l.action === "block")) {
        const same = merged.filter(
          (m) => m.action === "block" && m.scope === ceiling.scope && m.period === ceiling.period && (m.scope !== "agent" || m.agent === ceiling.agent),
        );
        expect(same).toHaveLength(1);
        expect(same[0]!.limitNanoUsd).toBeLessThanOrEqual(ceiling.limitNanoUsd);
      }
    }
  });
});

describe("configuration", () => {
  it("serverBudgetLimits reads every variable", () => {
    expect(
      serverBudgetLimits({
        BUDGET_GLOBAL_DAILY_USD: "20",
        BUDGET_GLOBAL_WEEKLY_USD: "100",
        BUDGET_GLOBAL_MONTHLY_USD: "300.5",
        BUDGET_INSTALLATION_MONTHLY_USD: "50",
        BUDGET_REPOSITORY_MONTHLY_USD: "25",
        BUDGET_TASK_USD: " 2.5 ",
        BUDGET_THRESHOLD: "0.9",
        BUDGET_ACTION: "warn",
        PATH: "/usr/bin",
      }),
    ).toEqual([
      { scope: "global", period: "daily", limitNanoUsd: 20_000_000_000, threshold: 0.9, action: "warn", source: "server" },
      { scope: "global", period: "weekly", limitNanoUsd: 100_000_000_000, threshold: 0.9, action: "warn", source: "server" },
      { scope: "global", period: "monthly", limitNanoUsd: 300_500_000_000, threshold: 0.9, action: "warn", source: "server" },
      { scope: "installation", period: "monthly", limitNanoUsd: 50_000_000_000, threshold: 0.9, action: "warn", source: "server" },
      { scope: "repository", period: "monthly", limitNanoUsd: 25_000_000_000, threshold: 0.9, action: "warn", source: "server" },
      { scope: "task", period: "total", limitNanoUsd: 2_500_000_000, threshold: 0.9, action: "warn", source: "server" },
    ]);
  });

  it("serverBudgetLimits defaults to USD 10 per task and USD 100 per repository and month — never unlimited — with threshold 0.8 and block", () => {
    expect(serverBudgetLimits({})).toEqual([
      { scope: "repository", period: "monthly", limitNanoUsd: 100_000_000_000, threshold: 0.8, action: "block", source: "server" },
      { scope: "task", period: "total", limitNanoUsd: 10_000_000_000, threshold: 0.8, action: "block", source: "server" },
    ]);
    expect(serverBudgetLimits({ BUDGET_TASK_USD: "3", BUDGET_GLOBAL_DAILY_USD: "", BUDGET_THRESHOLD: "" })).toEqual([
      { scope: "repository", period: "monthly", limitNanoUsd: 100_000_000_000, threshold: 0.8, action: "block", source: "server" },
      { scope: "task", period: "total", limitNanoUsd: 3_000_000_000, threshold: 0.8, action: "block", source: "server" },
    ]);
  });

  it.each([
    ["BUDGET_TASK_USD", "abc"],
    ["BUDGET_TASK_USD", "-1"],
    ["BUDGET_GLOBAL_DAILY_USD", "0"],
    ["BUDGET_GLOBAL_MONTHLY_USD", "Infinity"],
    ["BUDGET_GLOBAL_WEEKLY_USD", "1.0000000001"], // more than 9 decimals: not a whole number of nano-dollars
    ["BUDGET_TASK_USD", "0.0000000001"],
    ["BUDGET_THRESHOLD", "1"],
    ["BUDGET_THRESHOLD", "0"],
    ["BUDGET_ACTION", "stop"],
    ["BUDGET_GLOBAL_DAILY", "5"],
  ])("serverBudgetLimits rejects %s=%s naming the variable", (name, value) => {
    let caught: unknown;
    try {
      serverBudgetLimits({ [name]: value });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).message).toContain(name);
  });

  it("serverBudgetLimits converts amounts exactly from their decimal text", () => {
    const [daily] = serverBudgetLimits({ BUDGET_GLOBAL_DAILY_USD: "0.1", BUDGET_TASK_USD: "0.000000001" }).filter((l) => l.scope === "global");
    expect(daily?.limitNanoUsd).toBe(100_000_000);
    expect(serverBudgetLimits({ BUDGET_TASK_USD: "0.000000001" }).find((l) => l.scope === "task")?.limitNanoUsd).toBe(1);
    expect(serverBudgetLimits({ BUDGET_TASK_USD: "1e2" }).find((l) => l.scope === "task")?.limitNanoUsd).toBe(100_000_000_000);
  });

  it("repoBudgetLimits turns the budget section into limits on that repository", () => {
    const config = RepoBudgetConfig.parse({
      daily_usd: 2,
      monthly_usd: 20,
      per_task_usd: 1.5,
      threshold: 0.5,
      agents: { coder: { daily_usd: 1 }, reviewer: { weekly_usd: 0.5 } },
    });
    const base = { threshold: 0.5, action: "block", source: ".github/mission-control.yml", repository: "octo/widgets" };
    expect(repoBudgetLimits(config, "octo/widgets")).toEqual([
      { ...base, scope: "repository", period: "daily", limitNanoUsd: 2_000_000_000 },
      { ...base, scope: "repository", period: "monthly", limitNanoUsd: 20_000_000_000 },
      { ...base, scope: "task", period: "total", limitNanoUsd: 1_500_000_000 },
      { ...base, scope: "agent", agent: "coder", period: "daily", limitNanoUsd: 1_000_000_000 },
      { ...base, scope: "agent", agent: "reviewer", period: "weekly", limitNanoUsd: 500_000_000 },
    ]);
    expect(repoBudgetLimits(RepoBudgetConfig.parse({}), "octo/widgets")).toEqual([]);
    expect(repoBudgetLimits(undefined, "octo/widgets")).toEqual([]);
    expect(RepoBudgetConfig.parse({ weekly_usd: 3, action: "warn" })).toMatchObject({ threshold: 0.8, action: "warn" });
    // YAML gives 0.1 as the double nearest 0.1; its decimal text converts exactly.
    expect(repoBudgetLimits(RepoBudgetConfig.parse({ daily_usd: 0.1, per_task_usd: 0.000000001 }), "octo/widgets").map((l) => l.limitNanoUsd)).toEqual([
      100_000_000, 1,
    ]);
  });

  it.each([
    [{ daily_usd: -1 }],
    [{ daily_usd: 0 }],
    [{ monthly_usd: "5" }],
    [{ threshold: 1 }],
    [{ action: "stop" }],
    [{ dayly_usd: 5 }],
    [{ agents: { designer: { daily_usd: 1 } } }],
    [{ agents: { coder: { per_task_usd: 1 } } }],
    [{ daily_usd: 0.0000000001 }], // more than 9 decimals
    [{ agents: { coder: { daily_usd: 1.0000000001 } } }],
  ])("RepoBudgetConfig rejects %j", (raw) => {
    expect(RepoBudgetConfig.safeParse(raw).success).toBe(false);
  });
});

describe("estimates", () => {
  const sonnet = toNanoPrice({ input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3 } satisfies ModelPrice);

  it("estimateWorstCaseNanoUsd prices every input token at the dearest input rate plus max_tokens of output, in integers", () => {
    // 10,000 × 6,000 n$ (1-hour cache write, $6/M) + 2,000 × 15,000 n$ ($15/M) = $0.06 + $0.03
    expect(estimateWorstCaseNanoUsd(sonnet, 10_000, 2_000)).toBe(90_000_000);
    // without cache premiums: 1,000,000 × $2/M + 1,000 × $10/M = $2.01
    expect(estimateWorstCaseNanoUsd(toNanoPrice({ input: 2, output: 10, cache_write_5m: 2, cache_write_1h: 2, cache_read: 0.2 }), 1_000_000, 1_000)).toBe(
      2_010_000_000,
    );
    expect(estimateWorstCaseNanoUsd(sonnet, 0, 0)).toBe(0);
  });

  it("compares spend with a limit exactly: reaching it is allowed, one nano-dollar more is not", () => {
    const l = limit({ limitNanoUsd: usd(0.3), threshold: 0.8 });
    expect(exceedsLimit(usd(0.3), l)).toBe(false);
    expect(exceedsLimit(usd(0.3) + 1, l)).toBe(true);
    // $0.1 + $0.2 is $0.30000000000000004 in floats: over a $0.3 limit. In n$ it is exactly the limit.
    expect(0.1 + 0.2 > 0.3).toBe(true);
    expect(exceedsLimit(usd(0.1) + usd(0.2), l)).toBe(false);
    // Threshold 0.8 of $0.3 = $0.24 exactly (0.8 × 0.3 is 0.24000000000000002 in floats).
    expect(reachesThreshold(usd(0.24), l)).toBe(true);
    expect(reachesThreshold(usd(0.24) - 1, l)).toBe(false);
    // 0.1 + 0.7 = 0.7999999999999999 reads as 0.8 at 9 decimals (half-up)
    expect(reachesThreshold(usd(0.24), limit({ limitNanoUsd: usd(0.3), threshold: 0.1 + 0.7 }))).toBe(true);
  });

  it("estimateInputTokens counts one token per three UTF-8 bytes, rounded up", () => {
    expect(estimateInputTokens("")).toBe(0);
    expect(estimateInputTokens("abc")).toBe(1);
    expect(estimateInputTokens("abcd")).toBe(2);
    expect(estimateInputTokens("é")).toBe(1); // 2 bytes
    expect(estimateInputTokens("日本語")).toBe(3); // 9 bytes
    const request = JSON.stringify({ model: "claude-sonnet-5-5", max_tokens: 1024, messages: [{ role: "user", content: "Hello, world" }] });
    expect(estimateInputTokens(request)).toBe(Math.ceil(Buffer.byteLength(request) / 3));
  });
});
