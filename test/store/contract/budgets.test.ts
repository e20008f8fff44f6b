import { sql } from "kysely";
import { expect, it, onTestFinished } from "vitest";

import type { BudgetLimit, BudgetSubject } from "../../../src/domain/budget-rules.js";
import { BudgetExceededError } from "../../../src/domain/errors.js";
import { usdToNano } from "../../../src/domain/money.js";
import { budgetAdvisoryLocks, release, releaseStaleReservations, reserve, settle, spendReport } from "../../../src/store/budgets.js";
import { ADVISORY_LOCKS } from "../../../src/store/dialect.js";
import type { Db } from "../../../src/store/db.js";
import type { NewLlmUsage } from "../../../src/store/schema.js";
import { recordUsageAndSettle } from "../../../src/store/usage.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

/** Saturday 2026-11-21, mid-day UTC. */
const T = Date.parse("2026-11-21T12:00:00Z");
/** USD → nano-dollars, exactly. */
const usd = (amount: number): number => usdToNano(amount);

function subject(overrides: Partial<BudgetSubject> = {}): BudgetSubject {
  return { installationId: 1, repository: "octo/widgets", agent: "coder", taskId: 1, subjectNumber: 7, jobId: null, ...overrides };
}

function limit(overrides: Partial<BudgetLimit> = {}): BudgetLimit {
  return { scope: "global", period: "daily", limitNanoUsd: usd(1), threshold: 0.8, action: "block", source: "server", ...overrides };
}

function usage(costUsd: number): NewLlmUsage {
  return {
    created_at: T,
    installation_id: 1,
    repository: "octo/widgets",
    subject_number: 7,
    task_id: 1,
    job_id: null,
    agent: "coder",
    model: "claude-sonnet-5-5",
    input_tokens: 10,
    output_tokens: 10,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cost_nano_usd: usd(costUsd),
    request_id: null,
  };
}

/** Each reservation's status and nano-dollars. */
async function statuses(db: Db) {
  return (await db.selectFrom("budget_reservations").select(["status", "amount_nano_usd"]).orderBy("id").execute()).map((r) => [r.status, r.amount_nano_usd]);
}

/** Nano-dollars `l` counts. */
async function spent(db: Db, l: BudgetLimit): Promise<number> {
  const [status] = await spendReport(db, subject(), [l], T);
  return status?.spentNanoUsd ?? Number.NaN;
}

/**
 * Takes locks in a transaction on `conn` (`take`) and holds them until `release()` (idempotent),
 * which ends the transaction; resolves once they are held.
 */
async function holdLocks(conn: Db, take: (trx: Db) => Promise<void>): Promise<{ release: () => Promise<void> }> {
  let end!: () => void;
  const ending = new Promise<void>((resolve) => (end = resolve));
  let held!: () => void;
  const isHeld = new Promise<void>((resolve) => (held = resolve));
  const transaction = conn.transaction().execute(async (trx) => {
    await take(trx);
    held();
    await ending;
  });
  await Promise.race([isHeld, transaction]);
  return {
    release: async () => {
      end();
      await transaction;
    },
  };
}

describeStoreContract("budgets", (getDb, backend) => {
  it("reserves under a limit and refuses over it, writing nothing for the refusal", async () => {
    const db = getDb();
    const l = limit({ limitNanoUsd: usd(1) });
    const first = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.6), now: T });
    expect(first).toMatchObject({ id: expect.any(Number), amountNanoUsd: usd(0.6) });
    const err = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.5), now: T }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ spentNanoUsd: usd(0.6), requestedNanoUsd: usd(0.5) });
    await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.4), now: T });
    expect(await statuses(db)).toEqual([
      ["held", usd(0.6)],
      ["held", usd(0.4)],
    ]);
    expect(await spent(db, l)).toBe(usd(1));
  });

  it("raises a threshold alert once per window", async () => {
    const db = getDb();
    const l = limit({ limitNanoUsd: usd(1), threshold: 0.5 });
    expect((await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.6), now: T })).alerts).toHaveLength(1);
    expect((await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(0.1), now: T })).alerts).toHaveLength(0);
  });

  it("settles a reservation together with its usage row, in one transaction", async () => {
    const db = getDb();
    const l = limit({ limitNanoUsd: usd(10) });
    const r = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(2), now: T });
    expect(await spent(db, l)).toBe(usd(2));
    await recordUsageAndSettle(db, usage(0.75), r.id, T + 1);
    expect(await statuses(db)).toEqual([["settled", usd(2)]]);
    expect(await db.selectFrom("llm_usage").select("cost_nano_usd").execute()).toEqual([{ cost_nano_usd: 750_000_000 }]);
    expect(await spent(db, l)).toBe(usd(0.75));
    // Settling again is a no-op, as is settling or releasing a settled reservation.
    expect(await settle(db, r.id)).toBe(false);
    expect(await release(db, r.id)).toBe(false);
  });

  it("a usage row that cannot be written leaves the reservation held (nothing half-done)", async () => {
    const db = getDb();
    const r = await reserve(db, { subject: subject(), limits: [limit({ limitNanoUsd: usd(10) })], amountNanoUsd: usd(2), now: T });
    await expect(recordUsageAndSettle(db, usage(-1), r.id, T + 1)).rejects.toThrow();
    expect(await statuses(db)).toEqual([["held", usd(2)]]);
    expect(await db.selectFrom("llm_usage").select("id").execute()).toEqual([]);
  });

  it("release frees the amount; stale reservations are released by age", async () => {
    const db = getDb();
    const l = limit({ limitNanoUsd: usd(10) });
    const a = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(1), now: T });
    await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usd(2), now: T + 60_000 });
    expect(await release(db, a.id, T + 1)).toBe(true);
    expect(await spent(db, l)).toBe(usd(2));
    expect(await releaseStaleReservations(db, { olderThanMs: 30_000, now: T + 100_000 })).toBe(1);
    expect(await spent(db, l)).toBe(usd(0));
  });

  it("40 concurrent reservations against a limit that fits exactly 10 grant exactly 10 (separate connections)", async () => {
    const connections = [getDb(), backend.openConnection(), backend.openConnection(), backend.openConnection()];
    const l = limit({ limitNanoUsd: usd(1) });
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        reserve(connections[i % connections.length] ?? getDb(), { subject: subject({ taskId: i }), limits: [l], amountNanoUsd: usd(0.1), now: T }).then(
          () => "granted" as const,
          (err: unknown) => {
            if (err instanceof BudgetExceededError) return "refused" as const;
            throw err;
          },
        ),
      ),
    );
    expect(outcomes.filter((o) => o === "granted")).toHaveLength(10);
    expect(outcomes.filter((o) => o === "refused")).toHaveLength(30);
    expect(await getDb().selectFrom("budget_reservations").select("id").execute()).toHaveLength(10);
  });

  // SQLite serialises every reservation (BEGIN IMMEDIATE); PostgreSQL locks per scope (budgets.ts).
  if (backend.name === "postgres") {
    it("PostgreSQL: a reservation waits only for a scope it shares — checked by a limit held elsewhere — and goes on at its commit", async () => {
      const other = backend.openConnection();
      const perRepo = [limit({ scope: "repository", period: "monthly", limitNanoUsd: usd(10) })];
      const settled = (p: Promise<unknown>, ms: number) =>
        Promise.race([p.then(() => "done" as const), new Promise<"waiting">((resolve) => setTimeout(() => resolve("waiting"), ms))]);
      // What a reservation of octo/widgets checking an installation limit and its repository limit holds.
      const holder = await holdLocks(other, async (trx) => {
        for (const lock of budgetAdvisoryLocks([
          { key: "installation:1", exclusive: true },
          { key: "repository:octo/widgets", exclusive: true },
        ])) {
          await sql`select pg_advisory_xact_lock(${ADVISORY_LOCKS.budgetScopes}, ${lock.id})`.execute(trx);
        }
      });
      onTestFinished(holder.release);
      const db = getDb();
      // Another installation's repository under the default kind of limits: not held up.
      const elsewhere = reserve(db, {
        subject: subject({ installationId: 2, repository: "octo/gadgets", taskId: 2 }),
        limits: perRepo,
        amountNanoUsd: usd(1),
        now: T,
      });
      expect(await settled(elsewhere, 5_000)).toBe("done");
      // Same installation, another repository, checking no limit at all: its spend counts in the
      // installation limit held, so it waits.
      const sameInstallation = reserve(db, { subject: subject({ repository: "octo/tools", taskId: 3 }), limits: [], amountNanoUsd: usd(1), now: T });
      // Same repository: waits.
      const sameRepository = reserve(db, { subject: subject({ taskId: 4 }), limits: perRepo, amountNanoUsd: usd(1), now: T });
      expect(await settled(Promise.any([sameInstallation, sameRepository]), 500)).toBe("waiting");
      await holder.release();
      expect(await settled(Promise.all([sameInstallation, sameRepository]), 5_000)).toBe("done");
      expect(await db.selectFrom("budget_reservations").select("task_id").orderBy("task_id").execute()).toEqual([
        { task_id: 2 },
        { task_id: 3 },
        { task_id: 4 },
      ]);
    });

    it("PostgreSQL: while a replica of the previous version holds the old ledger-wide lock, a reservation waits for it (rolling upgrade)", async () => {
      const old = backend.openConnection();
      const oldReplica = await holdLocks(old, async (trx) => {
        await sql`select pg_advisory_xact_lock(${ADVISORY_LOCKS.budgets})`.execute(trx);
      });
      onTestFinished(oldReplica.release);
      let done = false;
      const reservation = reserve(getDb(), { subject: subject(), limits: [], amountNanoUsd: usd(1), now: T }).then(() => (done = true));
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(done).toBe(false);
      await oldReplica.release();
      await reservation;
      expect(done).toBe(true);
    });
  }
});
