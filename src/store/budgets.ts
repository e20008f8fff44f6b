/**
 * Spending budgets for Messages API calls.
 *
 * Before a call, the caller reserves the call's worst-case cost ({@link estimateWorstCaseNanoUsd})
 * with {@link reserve}; the reservation counts against every applicable limit until the call
 * ends. After the call the caller records the real cost in `llm_usage` and settles the
 * reservation in one transaction (`recordUsageAndSettle` in `usage.ts`, what the metered client
 * calls; {@link settle} marks one settled alone); if the call failed without being billed it
 * {@link release}s it instead.
 *
 * Amounts are integer nano-dollars (1 USD = 10⁹ n$, `domain/money.ts`): the ledger's columns are
 * integers, sums come back as exact decimal text, and limits are compared in integers — spend
 * may reach a limit exactly, never pass it. Times are epoch milliseconds; every period is a UTC
 * calendar period (see {@link periodWindow}).
 */
import { createHash } from "node:crypto";

import { type Kysely, type RawBuilder, sql } from "kysely";

import {
  alertKey,
  type BudgetAlert,
  type BudgetLimit,
  budgetScopeKey,
  budgetScopeLabel,
  type BudgetStatus,
  type BudgetSubject,
  type BudgetWindow,
  exceedsLimit,
  type LedgerLockScope,
  limitApplies,
  percentOf,
  periodWindow,
  reachesThreshold,
  renamedAlertKey,
  reservationLockScopes,
  type Reservation,
  resetsAtOf,
} from "../domain/budget-rules.js";
import { BudgetExceededError } from "../domain/errors.js";
import { addNanoUsd, assertNanoUsd, parseNanoUsd } from "../domain/money.js";
import type { RepositoryRename } from "../domain/repository.js";
import type { Db, DbOrTrx } from "./db.js";
import { ADVISORY_LOCKS, isPostgres } from "./dialect.js";
import { inheritObservers, reportBudgetAlert } from "./events.js";
import { inheritQueue } from "./queue.js";
import type { Database } from "./schema.js";
import { sumNanoUsd } from "./usage.js";

// ---------------------------------------------------------------------------------------------
// Spend

/** Nano-dollars. */
interface Spend {
  usageNanoUsd: number;
  heldNanoUsd: number;
}

/** SQL conditions selecting the rows (of `llm_usage` or `budget_reservations`, same column names) `limit` counts. */
function spendConditions(limit: BudgetLimit, subject: BudgetSubject, window: BudgetWindow): RawBuilder<unknown>[] {
  const conditions: RawBuilder<unknown>[] = [sql`created_at >= ${window.start}`];
  if (Number.isFinite(window.end)) conditions.push(sql`created_at < ${window.end}`);
  switch (limit.scope) {
    case "global":
      break;
    case "installation":
      conditions.push(sql`installation_id = ${subject.installationId}`);
      break;
    case "repository":
      conditions.push(sql`repository = ${subject.repository}`);
      break;
    case "agent":
      conditions.push(sql`agent = ${subject.agent}`);
      break;
    case "task":
      conditions.push(sql`task_id = ${subject.taskId}`);
      break;
  }
  if (limit.repository !== undefined) conditions.push(sql`repository = ${limit.repository}`);
  return conditions;
}

/** Recorded usage plus held reservations that `limit` counts in `window`, in nano-dollars (exact sums). */
async function spendIn(q: Kysely<Database>, limit: BudgetLimit, subject: BudgetSubject, window: BudgetWindow): Promise<Spend> {
  const where = sql.join(spendConditions(limit, subject, window), sql` and `);
  const { rows } = await sql<{ usage_nano_usd: string; held_nano_usd: string }>`
    select
      (select ${sumNanoUsd("cost_nano_usd")} from llm_usage where ${where}) as usage_nano_usd,
      (select ${sumNanoUsd("amount_nano_usd")} from budget_reservations where status = 'held' and ${where}) as held_nano_usd
  `.execute(q);
  const row = rows[0];
  return { usageNanoUsd: parseNanoUsd(row?.usage_nano_usd ?? 0), heldNanoUsd: parseNanoUsd(row?.held_nano_usd ?? 0) };
}

/**
 * Current spend against each applicable limit, for the `/budget` command. Limits that do not
 * apply to `subject` ({@link limitApplies}) are left out; the others keep their order.
 *
 * @param limits - usually `mergeLimits(serverBudgetLimits(env), repoBudgetLimits(config, repo))`
 * @param now - epoch ms; selects each limit's current window (default `Date.now()`)
 */
export async function spendReport(db: Db, subject: BudgetSubject, limits: readonly BudgetLimit[], now: number = Date.now()): Promise<BudgetStatus[]> {
  const report: BudgetStatus[] = [];
  for (const limit of limits) {
    if (!limitApplies(limit, subject)) continue;
    const window = periodWindow(limit.period, now);
    const { usageNanoUsd, heldNanoUsd } = await spendIn(db, limit, subject, window);
    const spentNanoUsd = addNanoUsd(usageNanoUsd, heldNanoUsd);
    report.push({
      limit,
      scopeKey: budgetScopeKey(limit, subject),
      scopeLabel: budgetScopeLabel(limit, subject),
      spentNanoUsd,
      usageNanoUsd,
      heldNanoUsd,
      limitNanoUsd: limit.limitNanoUsd,
      remainingNanoUsd: Math.max(0, limit.limitNanoUsd - spentNanoUsd),
      percent: percentOf(spentNanoUsd, limit.limitNanoUsd),
      windowStart: window.start,
      resetsAt: resetsAtOf(window),
    });
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// Reservations

/**
 * Serialises this module's writes within one process.
 *
 * better-sqlite3 is synchronous: while one connection holds the write lock across `await`s
 * (as {@link reserve}'s transaction does), a second connection *in the same process* that asks
 * for the lock waits inside SQLite's busy handler, blocking the event loop, so the first can
 * never commit and the second fails with SQLITE_BUSY after the busy timeout. A process-wide
 * queue keeps a second in-process connection from asking while the first holds the lock.
 * Separate processes have separate event loops: there SQLite's lock and busy timeout do the job.
 * Not used on PostgreSQL, whose connections wait without blocking the event loop.
 */
let writeQueue: Promise<unknown> = Promise.resolve();

function serialized<T>(fn: () => Promise<T>): Promise<T> {
  const run = writeQueue.then(fn, fn);
  writeQueue = run.catch(() => undefined);
  return run;
}

/**
 * Runs `fn` in a transaction that holds the budget ledger's write lock from its first statement,
 * so that reading the spend, checking it and inserting the reservation are one atomic step
 * across connections, processes and replicas.
 *
 * SQLite: Kysely's `transaction()` issues a deferred `BEGIN`: the lock is taken only at the
 * first write, after the spend was read, so two processes could both read the same spend and
 * both reserve (in WAL mode the second would then fail with SQLITE_BUSY_SNAPSHOT). `BEGIN
 * IMMEDIATE` makes the read-check-insert atomic across processes: the second writer waits (busy
 * timeout) until the first commits, then reads the spend including the first one's reservation.
 * In-process callers are queued first ({@link serialized}).
 *
 * PostgreSQL: transaction-scoped advisory locks (`pg_advisory_xact_lock[_shared]`), one per
 * scope of the reservation ({@link reservationLockScopes}): shared on every scope it adds spend
 * to (global, installation, repository, agent, task), exclusive on every scope a limit it checks
 * sums. Two reservations wait for each other whenever one checks a limit that counts the other's
 * spend; reservations of different repositories under repository and task limits (the
 * defaults) no longer take turns, while a global limit still serialises every reservation that
 * checks it. Locks are taken first, in ascending lock-id order (no deadlock), and released by
 * commit or rollback; READ COMMITTED is then enough: each statement after the locks sees every
 * reservation committed before they were granted. The previous versions' single ledger lock is
 * also taken, shared, so replicas of both versions exclude each other during a rolling upgrade.
 *
 * Chosen over counter rows locked `FOR UPDATE`: a limit's spend is a sum over rows selected by
 * scope and calendar window, and one reservation touches up to six limits. Counter rows would
 * need a row per scope key and window, created on the fly (an upsert race of its own), locked in
 * a fixed order and kept in step with `llm_usage` and every settle/release; locking existing rows
 * `FOR UPDATE` alone cannot stop a concurrent insert (a phantom). Measured (bench/results.md,
 * 3 processes on 2 cores): competing for one scope, 308 calls/s against the counter-row
 * prototype's 470 on an empty ledger, and 112 against 441 with 50,000 usage rows in the month,
 * because the sums grow with the window's rows; with a repository and task each, 3 processes
 * make 1.7× the calls of one. Far above the rate of Messages API calls (seconds each); counter
 * rows are the next step when one scope's monthly ledger reaches ~10⁵ rows.
 *
 * `fn` must use the connection it is given, never `db` (the connection is held until the end).
 */
async function ledgerTransaction<T>(db: Db, scopes: readonly LedgerLockScope[], fn: (conn: Kysely<Database>) => Promise<T>): Promise<T> {
  if (isPostgres(db)) {
    return db.transaction().execute(async (trx) => {
      // Observers of budget alerts (`events.ts`) enqueue in this transaction, on the database's queue.
      inheritQueue(db, trx);
      inheritObservers(db, trx);
      // Shared: waits only for a replica of the previous version, which takes it exclusively.
      await sql`select pg_advisory_xact_lock_shared(${ADVISORY_LOCKS.budgets})`.execute(trx);
      for (const lock of budgetAdvisoryLocks(scopes)) {
        await (
          lock.exclusive
            ? sql`select pg_advisory_xact_lock(${ADVISORY_LOCKS.budgetScopes}, ${lock.id})`
            : sql`select pg_advisory_xact_lock_shared(${ADVISORY_LOCKS.budgetScopes}, ${lock.id})`
        ).execute(trx);
      }
      return fn(trx);
    });
  }
  return serialized(() =>
    db.connection().execute(async (conn) => {
      inheritObservers(db, conn);
      await sql`begin immediate`.execute(conn);
      try {
        const result = await fn(conn);
        await sql`commit`.execute(conn);
        return result;
      } catch (err) {
        // If commit itself failed the transaction is still open; if it is not, rollback's own error
        // ("no transaction is active") must not hide the original one.
        await sql`rollback`.execute(conn).catch(() => undefined);
        throw err;
      }
    }),
  );
}

/**
 * The advisory locks of `scopes` (PostgreSQL's two-key form: {@link ADVISORY_LOCKS.budgetScopes}
 * and a 32-bit hash of the scope key), each once — exclusive when any scope mapped to it is —
 * in ascending id order. A hash collision only makes two scopes share a lock.
 */
export function budgetAdvisoryLocks(scopes: readonly LedgerLockScope[]): Array<{ id: number; exclusive: boolean }> {
  const locks = new Map<number, boolean>();
  for (const { key, exclusive } of scopes) {
    const id = createHash("sha256").update(key).digest().readInt32BE(0);
    locks.set(id, (locks.get(id) ?? false) || exclusive);
  }
  return [...locks].map(([id, exclusive]) => ({ id, exclusive })).sort((a, b) => a.id - b.id);
}

/** Runs a single write: queued behind this process's other ledger writes on SQLite ({@link serialized}), directly on PostgreSQL. */
function ledgerWrite<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  return isPostgres(db) ? fn() : serialized(fn);
}

/** One applicable limit, as {@link reserve} evaluates it. */
interface LimitCheck {
  limit: BudgetLimit;
  window: BudgetWindow;
  /** Nano-dollars counted before this reservation. */
  spentNanoUsd: number;
  /** Nano-dollars counted with this reservation. */
  afterNanoUsd: number;
}

/** Arguments of {@link reserve}. */
export interface ReserveRequest {
  subject: BudgetSubject;
  /** Every limit in force; those that do not apply to `subject` are ignored. */
  limits: readonly BudgetLimit[];
  /** Nano-dollars to hold: the call's worst-case cost ({@link estimateWorstCaseNanoUsd}). */
  amountNanoUsd: number;
  /** Epoch ms (default `Date.now()`): the reservation counts in the windows containing it. */
  now?: number;
}

/**
 * Holds `amountNanoUsd` against every applicable limit, atomically across connections and processes
 * (one transaction under the ledger's write lock: read spend, check, insert; see {@link ledgerTransaction}).
 *
 * For each applicable limit the spend of its current window (recorded usage + held
 * reservations) is computed, exactly. If `spend + amountNanoUsd > limitNanoUsd` for any `block` limit, nothing is
 * written and {@link BudgetExceededError} is thrown for the most binding such limit (the one that
 * resets last). Otherwise a `held` reservation is inserted, and every limit whose
 * `spend + amountNanoUsd` reached `threshold × limitNanoUsd` ({@link reachesThreshold}) raises an alert — once per scope, period and
 * window (recorded in `budget_alerts`); an exceeded `warn` limit raises an `exceeded` alert, also
 * once per window.
 *
 * @returns the reservation id (pass it to {@link settle} or {@link release}), the amount and the new alerts
 * @throws {BudgetExceededError} when a `block` limit would be exceeded; carries the limit, spent and requested nano-dollars and reset time
 * @throws {RangeError} when `amountNanoUsd` is not a non-negative safe integer
 */
export async function reserve(db: Db, request: ReserveRequest): Promise<Reservation> {
  const { subject, amountNanoUsd } = request;
  assertNanoUsd(amountNanoUsd, "amountNanoUsd");
  const now = request.now ?? Date.now();
  const limits = request.limits.filter((limit) => limitApplies(limit, subject));

  return ledgerTransaction(db, reservationLockScopes(subject, limits), async (conn) => {
    const checks: LimitCheck[] = [];
    for (const limit of limits) {
      const window = periodWindow(limit.period, now);
      const spend = await spendIn(conn, limit, subject, window);
      const spentNanoUsd = addNanoUsd(spend.usageNanoUsd, spend.heldNanoUsd);
      checks.push({ limit, window, spentNanoUsd, afterNanoUsd: addNanoUsd(spentNanoUsd, amountNanoUsd) });
    }

    const blocking = checks.filter((c) => c.limit.action === "block" && exceedsLimit(c.afterNanoUsd, c.limit));
    if (blocking.length > 0) {
      // The limit that resets last is the one the user must wait for (or raise).
      const worst = blocking.reduce((a, b) => (b.window.end > a.window.end ? b : a));
      throw new BudgetExceededError({
        limit: worst.limit,
        scopeKey: budgetScopeKey(worst.limit, subject),
        scopeLabel: budgetScopeLabel(worst.limit, subject),
        spentNanoUsd: worst.spentNanoUsd,
        requestedNanoUsd: amountNanoUsd,
        resetsAt: resetsAtOf(worst.window),
      });
    }

    const inserted = await conn
      .insertInto("budget_reservations")
      .values({
        created_at: now,
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

    const alerts: BudgetAlert[] = [];
    const raise = async (check: LimitCheck, kind: BudgetAlert["kind"], threshold: number): Promise<void> => {
      const row = await conn
        .insertInto("budget_alerts")
        .values({
          scope: check.limit.scope,
          scope_key: alertKey(check.limit, subject),
          period: check.limit.period,
          period_start: check.window.start,
          threshold,
          created_at: now,
        })
        .onConflict((oc) => oc.doNothing())
        .returning("id")
        .executeTakeFirst();
      if (!row) return; // already raised in this window
      const alert: BudgetAlert = {
        limit: check.limit,
        scopeKey: budgetScopeKey(check.limit, subject),
        scopeLabel: budgetScopeLabel(check.limit, subject),
        kind,
        spentNanoUsd: check.afterNanoUsd,
        limitNanoUsd: check.limit.limitNanoUsd,
        percent: percentOf(check.afterNanoUsd, check.limit.limitNanoUsd),
        windowStart: check.window.start,
        resetsAt: resetsAtOf(check.window),
      };
      alerts.push(alert);
      // In the ledger's transaction: an observer's notification commits with the alert's row.
      await reportBudgetAlert(conn, { alertId: row.id, alert, subject, at: now });
    };
    for (const check of checks) {
      if (reachesThreshold(check.afterNanoUsd, check.limit)) await raise(check, "threshold", check.limit.threshold);
      if (check.limit.action === "warn" && exceedsLimit(check.afterNanoUsd, check.limit)) await raise(check, "exceeded", 1);
    }

    return { id: inserted.id, amountNanoUsd, createdAt: now, alerts };
  });
}

/**
 * Marks a reservation `settled`: the call was made and its real cost is already in `llm_usage`.
 * The app records the usage and settles in one transaction (`recordUsageAndSettle` in
 * `usage.ts`), so that the cost is never counted twice nor zero times; this is the settle alone.
 * Idempotent; a reservation that is not `held` (settled, released, unknown id) is left as it is.
 *
 * @param now - epoch ms stored as `settled_at` (default `Date.now()`)
 * @returns `true` when this call settled it
 */
export async function settle(db: Db, reservationId: number, now: number = Date.now()): Promise<boolean> {
  return finish(db, reservationId, "settled", now);
}

/**
 * Marks a reservation `released`: the call failed and nothing was billed, so the amount is
 * free again. Idempotent; a reservation that is not `held` is left as it is.
 *
 * @param now - epoch ms stored as `settled_at` (default `Date.now()`)
 * @returns `true` when this call released it
 */
export async function release(db: Db, reservationId: number, now: number = Date.now()): Promise<boolean> {
  return finish(db, reservationId, "released", now);
}

async function finish(db: Db, reservationId: number, status: "settled" | "released", now: number): Promise<boolean> {
  const result = await ledgerWrite(db, () =>
    db.updateTable("budget_reservations").set({ status, settled_at: now }).where("id", "=", reservationId).where("status", "=", "held").executeTakeFirst(),
  );
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Releases reservations still `held` after `olderThanMs`: left by a worker that died between
 * reserving and settling. Choose `olderThanMs` well above the longest call (the API timeout
 * plus SDK retries): a call still in flight would otherwise lose its hold.
 *
 * @param options.olderThanMs - age in ms of a reservation considered abandoned
 * @param options.now - epoch ms (default `Date.now()`)
 * @returns how many were released
 */
export async function releaseStaleReservations(db: Db, options: { olderThanMs: number; now?: number }): Promise<number> {
  const now = options.now ?? Date.now();
  const result = await ledgerWrite(db, () =>
    db
      .updateTable("budget_reservations")
      .set({ status: "released", settled_at: now })
      .where("status", "=", "held")
      .where("created_at", "<", now - options.olderThanMs)
      .executeTakeFirst(),
  );
  return Number(result.numUpdatedRows);
}

// ---------------------------------------------------------------------------------------------
// Rename

/**
 * The rename of a repository (`store/repository-rename.ts`), for the budget tables: the
 * installation's reservations under `owner/from` move to `owner/to`, and so do the alerts whose
 * key names the repository ({@link renamedAlertKey}), so that an alert already raised in a window
 * is not raised again under the new name. `budget_alerts` has no installation column: a key
 * without one (`owner/repo`, `*@owner/repo`, `owner/repo:<role>`) moves whichever installation
 * raised it. An alert whose new key the window already has stays as it is (nothing to repeat).
 *
 * @returns how many reservations and alerts moved
 */
export async function renameRepositoryBudgets(db: DbOrTrx, rename: RepositoryRename): Promise<{ reservations: number; alerts: number }> {
  const from = `${rename.owner}/${rename.from}`;
  const to = `${rename.owner}/${rename.to}`;
  const reservations = await db
    .updateTable("budget_reservations")
    .set({ repository: to })
    .where("installation_id", "=", rename.installationId)
    .where("repository", "=", from)
    .executeTakeFirst();
  const keys = (key: string) => [key, `${key}#warn`];
  const prefix = `${from}:`;
  const rows = await db
    .selectFrom("budget_alerts")
    .select(["id", "scope", "scope_key"])
    .where((eb) =>
      eb.or([
        eb.and([eb("scope", "=", "repository"), eb("scope_key", "in", keys(from))]),
        eb.and([eb("scope", "=", "global"), eb("scope_key", "in", keys(`*@${from}`))]),
        eb.and([eb("scope", "=", "installation"), eb("scope_key", "in", keys(`${rename.installationId}@${from}`))]),
        eb.and([eb("scope", "=", "agent"), eb(eb.fn<string>("substr", ["scope_key", eb.lit(1), eb.lit(prefix.length)]), "=", prefix)]),
      ]),
    )
    .orderBy("id")
    .execute();
  let alerts = 0;
  for (const row of rows) {
    const key = renamedAlertKey(row.scope, row.scope_key, from, to);
    if (key === null) continue;
    const moved = await db
      .updateTable("budget_alerts")
      .set({ scope_key: key })
      .where("id", "=", row.id)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom("budget_alerts as other")
              .select("other.id")
              .where("other.scope_key", "=", key)
              .whereRef("other.scope", "=", "budget_alerts.scope")
              .whereRef("other.period", "=", "budget_alerts.period")
              .whereRef("other.period_start", "=", "budget_alerts.period_start")
              .whereRef("other.threshold", "=", "budget_alerts.threshold"),
          ),
        ),
      )
      .executeTakeFirst();
    alerts += Number(moved.numUpdatedRows);
  }
  return { reservations: Number(reservations.numUpdatedRows), alerts };
}
