/**
 * Spending budgets for Messages API calls.
 *
 * Before a call, the caller reserves the call's worst-case cost ({@link estimateWorstCaseUsd})
 * with {@link reserve}; the reservation counts against every applicable limit until the call
 * ends. After the call the caller records the real cost in `llm_usage` and then {@link settle}s
 * the reservation; if the call failed without being billed it {@link release}s it instead.
 *
 * Amounts are USD as JS numbers; times are epoch milliseconds; every period is a UTC calendar
 * period (see {@link periodWindow}).
 */
import { type Kysely, type RawBuilder, sql } from "kysely";
import { z } from "zod";

import { BudgetExceededError, ConfigError } from "../errors.js";
import type { ModelPrice } from "../llm/pricing.js";
import type { Db } from "./db.js";
import type { Database } from "./schema.js";

/** What a limit counts: all spend, one installation's, one repository's, one agent role's, one task's. */
export type BudgetScope = "global" | "installation" | "repository" | "agent" | "task";

/** The window a limit counts in. `total` = no window (all time): used with scope `task` for a per-task total. */
export type BudgetPeriod = "daily" | "weekly" | "monthly" | "total";

/** `block` refuses a call that would exceed the limit; `warn` only alerts. */
export type BudgetAction = "warn" | "block";

/** The agent roles a repository config may budget separately. */
export const BUDGET_AGENTS = ["architect", "coder", "reviewer", "tester"] as const;

/** Where repository-configured limits come from (`BudgetLimit.source`). */
export const REPO_BUDGET_SOURCE = ".github/mission-control.yml";

/** Where server-configured limits come from (`BudgetLimit.source`). */
export const SERVER_BUDGET_SOURCE = "server";

/** One spending limit. */
export interface BudgetLimit {
  scope: BudgetScope;
  period: BudgetPeriod;
  /** USD; spend in the window may reach it but not exceed it (for `block`). */
  limitUsd: number;
  /** Fraction of `limitUsd` (0 < threshold < 1; 0.8 by default) at which an alert is raised once per window. */
  threshold: number;
  action: BudgetAction;
  /** Who set it, for messages: `server`, `.github/mission-control.yml`. */
  source: string;
  /**
   * `owner/repo`: the limit applies only to calls made for this repository, and counts only that
   * repository's spend (an agent limit from a repository config counts that role in that
   * repository only). Unset: the limit counts spend across repositories.
   */
  repository?: string;
  /** Scope `agent` only: the role it limits (`coder`). Unset: every role has its own limit of this size. */
  agent?: string;
}

/** Who a call is made for: selects which limits apply and what each one counts. */
export interface BudgetSubject {
  installationId: number;
  /** `owner/repo`. */
  repository: string;
  /** Agent role making the call: `architect`, `coder`, `reviewer`, `tester`. */
  agent: string;
  taskId: number;
  /** Issue or pull request number (informational; not stored with the reservation). */
  subjectNumber: number | null;
  jobId: number | null;
}

/** A half-open time window `[start, end)` in epoch ms. */
export interface BudgetWindow {
  start: number;
  /** `Infinity` for `total`. */
  end: number;
}

/** A limit's alert, raised once per scope, window and kind. */
export interface BudgetAlert {
  limit: BudgetLimit;
  /** See {@link budgetScopeKey}. */
  scopeKey: string;
  /** Human name of the scope, e.g. `repository octo/widgets`. */
  scopeLabel: string;
  /** `threshold`: spend reached `threshold × limitUsd`; `exceeded`: a `warn` limit was exceeded. */
  kind: "threshold" | "exceeded";
  /** USD spent in the window, this reservation included. */
  spentUsd: number;
  limitUsd: number;
  /** `spentUsd / limitUsd × 100`. */
  percent: number;
  /** Epoch ms the window started (0 for `total`). */
  windowStart: number;
  /** Epoch ms the window ends; `null` for `total`. */
  resetsAt: number | null;
}

/** A held reservation, as {@link reserve} returns it. */
export interface Reservation {
  id: number;
  /** USD held. */
  amountUsd: number;
  /** Alerts this reservation raised (first crossing in the window only); usually empty. */
  alerts: BudgetAlert[];
}

/** One line of the `/budget` report. */
export interface BudgetStatus {
  limit: BudgetLimit;
  scopeKey: string;
  scopeLabel: string;
  /** USD: recorded usage plus held reservations in the current window. */
  spentUsd: number;
  /** USD of `spentUsd` that is recorded usage. */
  usageUsd: number;
  /** USD of `spentUsd` that is held by calls in flight. */
  heldUsd: number;
  limitUsd: number;
  /** USD left before the limit (0 when exceeded). */
  remainingUsd: number;
  /** `spentUsd / limitUsd × 100`. */
  percent: number;
  windowStart: number;
  /** Epoch ms the window ends; `null` for `total`. */
  resetsAt: number | null;
}

/** Spend and limits are compared with this tolerance (USD) so that float sums do not block at exactly the limit. */
const EPSILON_USD = 1e-9;

const DAY_MS = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Periods, scopes

/**
 * The UTC calendar window of `period` containing `now`.
 *
 * - `daily`: 00:00 UTC to the next 00:00 UTC;
 * - `weekly`: ISO week, Monday 00:00 UTC to the next Monday;
 * - `monthly`: the 1st 00:00 UTC to the next month's 1st;
 * - `total`: `{ start: 0, end: Infinity }`.
 *
 * @param now - epoch ms
 * @returns the half-open window `[start, end)` in epoch ms
 */
export function periodWindow(period: BudgetPeriod, now: number): BudgetWindow {
  const d = new Date(now);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const day = d.getUTCDate();
  switch (period) {
    case "daily": {
      const start = Date.UTC(y, m, day);
      return { start, end: start + DAY_MS };
    }
    case "weekly": {
      const sinceMonday = (d.getUTCDay() + 6) % 7;
      const start = Date.UTC(y, m, day - sinceMonday);
      return { start, end: start + 7 * DAY_MS };
    }
    case "monthly":
      return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) };
    case "total":
      return { start: 0, end: Number.POSITIVE_INFINITY };
  }
}

/**
 * `true` when `limit` applies to a call for `subject`: its `repository` filter (if any) is the
 * subject's repository and, for an agent limit naming a role, the role is the subject's agent.
 */
export function limitApplies(limit: BudgetLimit, subject: BudgetSubject): boolean {
  if (limit.repository !== undefined && limit.repository !== subject.repository) return false;
  if (limit.scope === "agent" && limit.agent !== undefined && limit.agent !== subject.agent) return false;
  return true;
}

/**
 * What `limit` counts for `subject`: global → `*`; installation → the installation id;
 * repository → `owner/repo`; agent → the agent role (limits on a role apply across
 * repositories), or `owner/repo:role` when the limit is restricted to one repository;
 * task → the task id.
 */
export function budgetScopeKey(limit: BudgetLimit, subject: BudgetSubject): string {
  switch (limit.scope) {
    case "global":
      return "*";
    case "installation":
      return String(subject.installationId);
    case "repository":
      return subject.repository;
    case "agent":
      return limit.repository === undefined ? subject.agent : `${limit.repository}:${subject.agent}`;
    case "task":
      return String(subject.taskId);
  }
}

/** Human name of what `limit` counts for `subject`: `global`, `installation 7`, `repository octo/widgets`, `agent coder in octo/widgets`, `task 42`. */
export function budgetScopeLabel(limit: BudgetLimit, subject: BudgetSubject): string {
  switch (limit.scope) {
    case "global":
      return limit.repository === undefined ? "global" : `global (${limit.repository})`;
    case "installation":
      return `installation ${subject.installationId}` + (limit.repository === undefined ? "" : ` (${limit.repository})`);
    case "repository":
      return `repository ${subject.repository}`;
    case "agent":
      return `agent ${subject.agent}` + (limit.repository === undefined ? "" : ` in ${limit.repository}`);
    case "task":
      return `task ${subject.taskId}`;
  }
}

/**
 * Key of a limit's rows in `budget_alerts`: the scope key, suffixed for `warn` limits so that a
 * repository's lower `warn` limit and the server's `block` ceiling on the same scope and period
 * (both kept by {@link mergeLimits}) alert independently.
 */
function alertKey(limit: BudgetLimit, subject: BudgetSubject): string {
  const key = budgetScopeKey(limit, subject);
  return limit.action === "warn" ? `${key}#warn` : key;
}

// ---------------------------------------------------------------------------------------------
// Spend

interface Spend {
  usageUsd: number;
  heldUsd: number;
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

/** Recorded usage plus held reservations that `limit` counts in `window`, in USD. */
async function spendIn(q: Kysely<Database>, limit: BudgetLimit, subject: BudgetSubject, window: BudgetWindow): Promise<Spend> {
  const where = sql.join(spendConditions(limit, subject, window), sql` and `);
  const { rows } = await sql<{ usage_usd: number; held_usd: number }>`
    select
      (select coalesce(sum(cost_usd), 0) from llm_usage where ${where}) as usage_usd,
      (select coalesce(sum(amount_usd), 0) from budget_reservations where status = 'held' and ${where}) as held_usd
  `.execute(q);
  const row = rows[0];
  return { usageUsd: Number(row?.usage_usd ?? 0), heldUsd: Number(row?.held_usd ?? 0) };
}

function percentOf(spentUsd: number, limitUsd: number): number {
  if (limitUsd > 0) return (spentUsd / limitUsd) * 100;
  return spentUsd > 0 ? Number.POSITIVE_INFINITY : 0;
}

const resetsAtOf = (window: BudgetWindow): number | null => (Number.isFinite(window.end) ? window.end : null);

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
    const { usageUsd, heldUsd } = await spendIn(db, limit, subject, window);
    const spentUsd = usageUsd + heldUsd;
    report.push({
      limit,
      scopeKey: budgetScopeKey(limit, subject),
      scopeLabel: budgetScopeLabel(limit, subject),
      spentUsd,
      usageUsd,
      heldUsd,
      limitUsd: limit.limitUsd,
      remainingUsd: Math.max(0, limit.limitUsd - spentUsd),
      percent: percentOf(spentUsd, limit.limitUsd),
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
 */
let writeQueue: Promise<unknown> = Promise.resolve();

function serialized<T>(fn: () => Promise<T>): Promise<T> {
  const run = writeQueue.then(fn, fn);
  writeQueue = run.catch(() => undefined);
  return run;
}

/**
 * Runs `fn` in a transaction that takes SQLite's write lock with its first statement.
 *
 * Kysely's `transaction()` issues a deferred `BEGIN`: the lock is taken only at the first
 * write, after the spend was read, so two processes could both read the same spend and both
 * reserve (in WAL mode the second would then fail with SQLITE_BUSY_SNAPSHOT). `BEGIN IMMEDIATE`
 * makes the read-check-insert atomic across processes: the second writer waits (busy timeout)
 * until the first commits, then reads the spend including the first one's reservation.
 *
 * `fn` must use the connection it is given, never `db` (the connection is held until the end).
 */
async function immediateTransaction<T>(db: Db, fn: (conn: Kysely<Database>) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
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
  });
}

/** One applicable limit, as {@link reserve} evaluates it. */
interface LimitCheck {
  limit: BudgetLimit;
  window: BudgetWindow;
  /** USD counted before this reservation. */
  spentUsd: number;
  /** USD counted with this reservation. */
  afterUsd: number;
}

/** Arguments of {@link reserve}. */
export interface ReserveRequest {
  subject: BudgetSubject;
  /** Every limit in force; those that do not apply to `subject` are ignored. */
  limits: readonly BudgetLimit[];
  /** USD to hold: the call's worst-case cost ({@link estimateWorstCaseUsd}). */
  amountUsd: number;
  /** Epoch ms (default `Date.now()`): the reservation counts in the windows containing it. */
  now?: number;
}

/**
 * Holds `amountUsd` against every applicable limit, atomically across connections and processes
 * (one `BEGIN IMMEDIATE` transaction: read spend, check, insert).
 *
 * For each applicable limit the spend of its current window (recorded usage + held
 * reservations) is computed. If `spend + amountUsd > limitUsd` for any `block` limit, nothing is
 * written and {@link BudgetExceededError} is thrown for the most binding such limit (the one that
 * resets last). Otherwise a `held` reservation is inserted, and every limit whose
 * `spend + amountUsd` reached `threshold × limitUsd` raises an alert — once per scope, period and
 * window (recorded in `budget_alerts`); an exceeded `warn` limit raises an `exceeded` alert, also
 * once per window.
 *
 * @returns the reservation id (pass it to {@link settle} or {@link release}), the amount and the new alerts
 * @throws {BudgetExceededError} when a `block` limit would be exceeded; carries the limit, spent USD, requested USD and reset time
 * @throws {RangeError} when `amountUsd` is negative or not finite
 */
export async function reserve(db: Db, request: ReserveRequest): Promise<Reservation> {
  const { subject, amountUsd } = request;
  if (!Number.isFinite(amountUsd) || amountUsd < 0) throw new RangeError(`amountUsd must be a finite, non-negative number of USD, got ${amountUsd}`);
  const now = request.now ?? Date.now();
  const limits = request.limits.filter((limit) => limitApplies(limit, subject));

  return serialized(() =>
    immediateTransaction(db, async (conn) => {
      const checks: LimitCheck[] = [];
      for (const limit of limits) {
        const window = periodWindow(limit.period, now);
        const spend = await spendIn(conn, limit, subject, window);
        const spentUsd = spend.usageUsd + spend.heldUsd;
        checks.push({ limit, window, spentUsd, afterUsd: spentUsd + amountUsd });
      }

      const blocking = checks.filter((c) => c.limit.action === "block" && c.afterUsd - c.limit.limitUsd > EPSILON_USD);
      if (blocking.length > 0) {
        // The limit that resets last is the one the user must wait for (or raise).
        const worst = blocking.reduce((a, b) => (b.window.end > a.window.end ? b : a));
        throw new BudgetExceededError({
          limit: worst.limit,
          scopeKey: budgetScopeKey(worst.limit, subject),
          scopeLabel: budgetScopeLabel(worst.limit, subject),
          spentUsd: worst.spentUsd,
          requestedUsd: amountUsd,
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
          amount_usd: amountUsd,
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
        alerts.push({
          limit: check.limit,
          scopeKey: budgetScopeKey(check.limit, subject),
          scopeLabel: budgetScopeLabel(check.limit, subject),
          kind,
          spentUsd: check.afterUsd,
          limitUsd: check.limit.limitUsd,
          percent: percentOf(check.afterUsd, check.limit.limitUsd),
          windowStart: check.window.start,
          resetsAt: resetsAtOf(check.window),
        });
      };
      for (const check of checks) {
        if (check.afterUsd >= check.limit.threshold * check.limit.limitUsd - EPSILON_USD) await raise(check, "threshold", check.limit.threshold);
        if (check.limit.action === "warn" && check.afterUsd - check.limit.limitUsd > EPSILON_USD) await raise(check, "exceeded", 1);
      }

      return { id: inserted.id, amountUsd, alerts };
    }),
  );
}

/**
 * Marks a reservation `settled`: the call was made and its real cost is already in `llm_usage`
 * (record it right before, so that the cost is never counted zero times). Idempotent; a
 * reservation that is not `held` (settled, released, unknown id) is left as it is.
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
  const result = await serialized(() =>
    db
      .updateTable("budget_reservations")
      .set({ status, settled_at: now })
      .where("id", "=", reservationId)
      .where("status", "=", "held")
      .executeTakeFirst(),
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
  const result = await serialized(() =>
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
// Estimates

/**
 * Upper bound of a call's cost in USD: every input token at the most expensive input rate
 * (plain input, or a 5-minute or 1-hour cache write — the agents' loop marks prompts with
 * `cache_control`, and cache writes cost 1.25×/2× the input price) plus `maxTokens` output
 * tokens. Prices are USD per million tokens.
 *
 * @param inputTokens - estimated input tokens ({@link estimateInputTokens})
 * @param maxTokens - the request's `max_tokens`
 */
export function estimateWorstCaseUsd(price: ModelPrice, inputTokens: number, maxTokens: number): number {
  const inputRate = Math.max(price.input, price.cache_write_5m, price.cache_write_1h);
  return (inputTokens * inputRate + maxTokens * price.output) / 1_000_000;
}

/** Bytes per token assumed by {@link estimateInputTokens}. */
const ESTIMATE_BYTES_PER_TOKEN = 3;

/**
 * A deliberately conservative (high) estimate of a request's input tokens:
 * `ceil(UTF-8 bytes of the JSON request / 3)`. No tokenizer is reachable offline. English
 * prose and code average about 4 bytes per token, and JSON keys and escapes add bytes that are
 * not billed, so this usually overestimates; CJK text is close to 3 bytes per token. Base64
 * images are grossly overestimated (they are billed by pixels).
 *
 * @param requestJson - the Messages API request body as JSON (system, tools, messages)
 */
export function estimateInputTokens(requestJson: string): number {
  return Math.ceil(Buffer.byteLength(requestJson, "utf8") / ESTIMATE_BYTES_PER_TOKEN);
}

// ---------------------------------------------------------------------------------------------
// Configuration

/**
 * Limits in force for one repository: the server's plus the repository's, where the repository
 * may add limits or lower them but never raise a server ceiling.
 *
 * Limits that count the same spend (same scope, period, agent role and — for global,
 * installation and agent scopes — the same repository filter) are merged: the lowest `block`
 * limit is kept, and the lowest `warn` limit too if it lies below that ceiling (a repository's
 * `warn` never replaces a server `block`; a `warn` at or above a `block` could never fire).
 * On equal amounts the server's limit (listed first) wins. Order of first appearance is kept.
 *
 * @param server - {@link serverBudgetLimits}
 * @param repo - {@link repoBudgetLimits} of the repository the calls are made for
 */
export function mergeLimits(server: readonly BudgetLimit[], repo: readonly BudgetLimit[]): BudgetLimit[] {
  const groups = new Map<string, BudgetLimit[]>();
  for (const limit of [...server, ...repo]) {
    const filter = limit.scope === "repository" || limit.scope === "task" ? "" : (limit.repository ?? "");
    const key = [limit.scope, limit.period, limit.scope === "agent" ? (limit.agent ?? "") : "", filter].join("\u0000");
    const group = groups.get(key);
    if (group) group.push(limit);
    else groups.set(key, [limit]);
  }
  const lowest = (limits: BudgetLimit[]): BudgetLimit | undefined =>
    limits.reduce<BudgetLimit | undefined>((min, l) => (min === undefined || l.limitUsd < min.limitUsd ? l : min), undefined);
  const merged: BudgetLimit[] = [];
  for (const group of groups.values()) {
    const block = lowest(group.filter((l) => l.action === "block"));
    const warn = lowest(group.filter((l) => l.action === "warn"));
    if (block) merged.push(block);
    if (warn && (!block || warn.limitUsd < block.limitUsd)) merged.push(warn);
  }
  return merged;
}

const usdAmount = z.number().positive().finite();

const PeriodBudget = z
  .object({
    daily_usd: usdAmount.optional(),
    weekly_usd: usdAmount.optional(),
    monthly_usd: usdAmount.optional(),
  })
  .strict();

/**
 * The `budget:` section of `.github/mission-control.yml`. Amounts are USD per UTC day, ISO week
 * (Monday 00:00 UTC) and calendar month; `per_task_usd` caps one task over its whole life.
 * Per-agent amounts count that role's spend in this repository. A repository can only add or
 * lower limits: see {@link mergeLimits}.
 */
export const RepoBudgetConfig = z
  .object({
    daily_usd: usdAmount.optional(),
    weekly_usd: usdAmount.optional(),
    monthly_usd: usdAmount.optional(),
    per_task_usd: usdAmount.optional(),
    /** Fraction of each limit at which an alert is posted, once per window. */
    threshold: z.number().gt(0).lt(1).default(0.8),
    /** `block` refuses calls over the limit; `warn` only alerts. */
    action: z.enum(["warn", "block"]).default("block"),
    agents: z
      .object({
        architect: PeriodBudget.optional(),
        coder: PeriodBudget.optional(),
        reviewer: PeriodBudget.optional(),
        tester: PeriodBudget.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type RepoBudgetConfig = z.infer<typeof RepoBudgetConfig>;

/**
 * The limits a repository's (validated) budget config sets, each restricted to `repository`
 * and with `source` {@link REPO_BUDGET_SOURCE}.
 *
 * @param config - output of `RepoBudgetConfig.parse` (or `undefined`: no limits)
 * @param repository - `owner/repo`
 */
export function repoBudgetLimits(config: RepoBudgetConfig | undefined, repository: string): BudgetLimit[] {
  if (!config) return [];
  const base = { threshold: config.threshold, action: config.action, source: REPO_BUDGET_SOURCE, repository };
  const limits: BudgetLimit[] = [];
  const periods = (amounts: z.infer<typeof PeriodBudget>): Array<[BudgetPeriod, number]> =>
    (
      [
        ["daily", amounts.daily_usd],
        ["weekly", amounts.weekly_usd],
        ["monthly", amounts.monthly_usd],
      ] as Array<[BudgetPeriod, number | undefined]>
    ).filter((entry): entry is [BudgetPeriod, number] => entry[1] !== undefined);
  for (const [period, limitUsd] of periods(config)) limits.push({ ...base, scope: "repository", period, limitUsd });
  if (config.per_task_usd !== undefined) limits.push({ ...base, scope: "task", period: "total", limitUsd: config.per_task_usd });
  for (const agent of BUDGET_AGENTS) {
    const amounts = config.agents?.[agent];
    if (!amounts) continue;
    for (const [period, limitUsd] of periods(amounts)) limits.push({ ...base, scope: "agent", agent, period, limitUsd });
  }
  return limits;
}

/** An optional USD amount from the environment; an empty value counts as unset. */
const envUsd = z.preprocess(
  (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
  z.coerce.number<unknown>().positive().finite().optional(),
);

/**
 * Ceilings that apply when the operator sets none, so that spend is never unlimited: USD 10 per
 * task and USD 100 per repository and calendar month. Raise them with the variables.
 */
export const DEFAULT_SERVER_BUDGETS: Readonly<Record<string, string>> = {
  BUDGET_TASK_USD: "10",
  BUDGET_REPOSITORY_MONTHLY_USD: "100",
};

/** The server's budget variables. Amounts are optional; unset means no such limit, except the {@link DEFAULT_SERVER_BUDGETS}. */
export const ServerBudgetEnv = z.object({
  BUDGET_GLOBAL_DAILY_USD: envUsd,
  BUDGET_GLOBAL_WEEKLY_USD: envUsd,
  BUDGET_GLOBAL_MONTHLY_USD: envUsd,
  BUDGET_INSTALLATION_MONTHLY_USD: envUsd,
  /** Default monthly ceiling of every repository. */
  BUDGET_REPOSITORY_MONTHLY_USD: envUsd,
  /** Ceiling of one task over its whole life. */
  BUDGET_TASK_USD: envUsd,
  BUDGET_THRESHOLD: z.preprocess(
    (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
    z.coerce.number<unknown>().gt(0).lt(1).default(0.8),
  ),
  BUDGET_ACTION: z.preprocess(
    (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
    z.enum(["warn", "block"]).default("block"),
  ),
});
export type ServerBudgetEnv = z.infer<typeof ServerBudgetEnv>;

/**
 * The server's budget limits, from the environment (source {@link SERVER_BUDGET_SOURCE}):
 * BUDGET_GLOBAL_DAILY_USD, BUDGET_GLOBAL_WEEKLY_USD, BUDGET_GLOBAL_MONTHLY_USD (all spend),
 * BUDGET_INSTALLATION_MONTHLY_USD (each installation), BUDGET_REPOSITORY_MONTHLY_USD (default
 * ceiling of every repository), BUDGET_TASK_USD (each task, in total); BUDGET_THRESHOLD
 * (0 < t < 1, default 0.8) and BUDGET_ACTION (`warn` | `block`, default `block`) apply to all.
 * Amounts are positive USD; unset or empty = no such limit, except BUDGET_TASK_USD and
 * BUDGET_REPOSITORY_MONTHLY_USD, which default to {@link DEFAULT_SERVER_BUDGETS}.
 *
 * @param env - usually `process.env`
 * @throws {ConfigError} naming each invalid variable, or an unknown `BUDGET_*` variable (a typo would silently lift a ceiling)
 */
export function serverBudgetLimits(env: Record<string, string | undefined>): BudgetLimit[] {
  const known = new Set(Object.keys(ServerBudgetEnv.shape));
  const unknown = Object.keys(env).filter((name) => name.startsWith("BUDGET_") && !known.has(name));
  const withDefaults: Record<string, string | undefined> = { ...env };
  for (const [name, value] of Object.entries(DEFAULT_SERVER_BUDGETS)) {
    if (withDefaults[name] === undefined || withDefaults[name]?.trim() === "") withDefaults[name] = value;
  }
  const result = ServerBudgetEnv.safeParse(withDefaults);
  const problems = [
    ...unknown.map((name) => `${name}: unknown budget variable (known: ${[...known].join(", ")})`),
    ...(result.success ? [] : result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`)),
  ];
  if (problems.length > 0 || !result.success) throw new ConfigError(`Invalid budget environment:\n  ${problems.join("\n  ")}`);
  const e = result.data;
  const base = { threshold: e.BUDGET_THRESHOLD, action: e.BUDGET_ACTION, source: SERVER_BUDGET_SOURCE };
  const entries: Array<[BudgetScope, BudgetPeriod, number | undefined]> = [
    ["global", "daily", e.BUDGET_GLOBAL_DAILY_USD],
    ["global", "weekly", e.BUDGET_GLOBAL_WEEKLY_USD],
    ["global", "monthly", e.BUDGET_GLOBAL_MONTHLY_USD],
    ["installation", "monthly", e.BUDGET_INSTALLATION_MONTHLY_USD],
    ["repository", "monthly", e.BUDGET_REPOSITORY_MONTHLY_USD],
    ["task", "total", e.BUDGET_TASK_USD],
  ];
  return entries.flatMap(([scope, period, limitUsd]) => (limitUsd === undefined ? [] : [{ ...base, scope, period, limitUsd }]));
}
