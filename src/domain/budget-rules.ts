/**
 * Budget rules for Messages API calls, without I/O: limits, scopes, UTC calendar periods,
 * worst-case estimates and how a repository's limits merge with the server's. The store
 * (`store/budgets.ts`) reserves and settles against them.
 *
 * Amounts are integer nano-dollars (`…NanoUsd`, 1 USD = 10⁹ n$, see `money.ts`): spend, limits
 * and reservations are summed and compared exactly. Times are epoch milliseconds; every period
 * is a UTC calendar period (see {@link periodWindow}).
 */
import { NANO_USD_PER_USD, parseDecimal, USD_DECIMALS } from "./money.js";
import type { ModelPriceNanoUsd } from "./pricing.js";

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
  /** Nano-dollars; spend in the window may reach it but not exceed it (for `block`). */
  limitNanoUsd: number;
  /** Fraction of `limitNanoUsd` (0 < threshold < 1; 0.8 by default) at which an alert is raised once per window (see {@link reachesThreshold}). */
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
  jobId: string | null;
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
  /** `threshold`: spend reached `threshold × limitNanoUsd`; `exceeded`: a `warn` limit was exceeded. */
  kind: "threshold" | "exceeded";
  /** Nano-dollars spent in the window, this reservation included. */
  spentNanoUsd: number;
  /** Nano-dollars. */
  limitNanoUsd: number;
  /** `spentNanoUsd / limitNanoUsd × 100` (for display). */
  percent: number;
  /** Epoch ms the window started (0 for `total`). */
  windowStart: number;
  /** Epoch ms the window ends; `null` for `total`. */
  resetsAt: number | null;
}

/** A held reservation, as {@link reserve} returns it. */
export interface Reservation {
  id: number;
  /** Nano-dollars held. */
  amountNanoUsd: number;
  /**
   * Epoch ms the reservation counts at (the windows it was checked in). The call's usage row is
   * recorded at this time too, so a call that ends after midnight UTC (or a week's or month's
   * end) costs in the window its reservation was checked in, never in one that did not see it.
   */
  createdAt: number;
  /** Alerts this reservation raised (first crossing in the window only); usually empty. */
  alerts: BudgetAlert[];
}

/** One line of the `/budget` report. */
export interface BudgetStatus {
  limit: BudgetLimit;
  scopeKey: string;
  scopeLabel: string;
  /** Nano-dollars: recorded usage plus held reservations in the current window. */
  spentNanoUsd: number;
  /** Nano-dollars of `spentNanoUsd` that are recorded usage. */
  usageNanoUsd: number;
  /** Nano-dollars of `spentNanoUsd` that are held by calls in flight. */
  heldNanoUsd: number;
  /** Nano-dollars. */
  limitNanoUsd: number;
  /** Nano-dollars left before the limit (0 when exceeded). */
  remainingNanoUsd: number;
  /** `spentNanoUsd / limitNanoUsd × 100` (for display). */
  percent: number;
  windowStart: number;
  /** Epoch ms the window ends; `null` for `total`. */
  resetsAt: number | null;
}

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
 * What `limit` counts for `subject`: global → `*`; installation → the installation id (both
 * suffixed `@owner/repo` when the limit is restricted to one repository, which counts other
 * spend than the unrestricted limit and so alerts on its own);
 * repository → `owner/repo`; agent → the agent role (limits on a role apply across
 * repositories), or `owner/repo:role` when the limit is restricted to one repository;
 * task → the task id.
 */
export function budgetScopeKey(limit: BudgetLimit, subject: BudgetSubject): string {
  switch (limit.scope) {
    case "global":
      return limit.repository === undefined ? "*" : `*@${limit.repository}`;
    case "installation":
      return limit.repository === undefined ? String(subject.installationId) : `${subject.installationId}@${limit.repository}`;
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
export function alertKey(limit: BudgetLimit, subject: BudgetSubject): string {
  const key = budgetScopeKey(limit, subject);
  return limit.action === "warn" ? `${key}#warn` : key;
}

/**
 * The alert key ({@link alertKey}) that `key` becomes once repository `from` (`owner/repo`) is
 * renamed `to`: every form {@link budgetScopeKey} builds with a repository's name — the
 * repository scope (`owner/repo`), and limits restricted to one repository (`*@owner/repo`,
 * `<installation>@owner/repo`, `owner/repo:<role>`) — with its `#warn` suffix kept. `null` when
 * `key` does not name `from` (an unrestricted limit's key, a task's, another repository's).
 */
export function renamedAlertKey(scope: string, key: string, from: string, to: string): string | null {
  const warn = key.endsWith("#warn") ? "#warn" : "";
  const base = warn ? key.slice(0, -warn.length) : key;
  switch (scope) {
    case "repository":
      return base === from ? `${to}${warn}` : null;
    case "global":
      return base === `*@${from}` ? `*@${to}${warn}` : null;
    case "installation": {
      const at = base.indexOf("@");
      return at > 0 && base.slice(at + 1) === from ? `${base.slice(0, at + 1)}${to}${warn}` : null;
    }
    case "agent":
      return base.startsWith(`${from}:`) ? `${to}:${base.slice(from.length + 1)}${warn}` : null;
    default:
      return null;
  }
}

/** One lock of a reservation's set (see {@link reservationLockScopes}). */
export interface LedgerLockScope {
  /** `global`, `installation:<id>`, `repository:<owner/repo>`, `agent:<role>` or `task:<id>`. */
  key: string;
  /** `true`: this reservation checks a limit that counts this scope's spend; `false`: it only adds to it. */
  exclusive: boolean;
}

/**
 * The scopes a reservation must lock so that no limit is ever overshot, while reservations that
 * share no limit run side by side (PostgreSQL; `store/budgets.ts` maps each key to an advisory
 * lock).
 *
 * A reservation adds to the spend of five scopes — global, its installation, its repository,
 * its agent role and its task — and takes each of them **shared**. For every limit it checks, it
 * takes **exclusive** the scope whose rows that limit sums: the limit's scope, or the repository
 * when the limit is restricted to one (a coarser lock that still covers every row it counts).
 * Two reservations therefore wait for each other whenever one of them checks a limit that counts
 * the other's spend — whichever repository's configuration that limit came from, because every
 * writer takes every scope it adds to — and otherwise only when they share a repository under a
 * limit restricted to it (the coarser lock). Keys are returned sorted, each once (exclusive
 * wins). Two reservations that write the same `budget_alerts` row ({@link alertKey}) hold the
 * same exclusive lock, so no row lock is waited for after the advisory locks, and locks taken in
 * one order never deadlock.
 *
 * @param limits - the limits the reservation checks (those that do not apply to `subject` are ignored)
 */
export function reservationLockScopes(subject: BudgetSubject, limits: readonly BudgetLimit[]): LedgerLockScope[] {
  const own = {
    global: "global",
    installation: `installation:${subject.installationId}`,
    repository: `repository:${subject.repository}`,
    agent: `agent:${subject.agent}`,
    task: `task:${subject.taskId}`,
  } as const;
  const scopes = new Map<string, boolean>(Object.values(own).map((key) => [key, false]));
  for (const limit of limits) {
    if (!limitApplies(limit, subject)) continue;
    scopes.set(limit.repository !== undefined ? own.repository : own[limit.scope], true);
  }
  return [...scopes].map(([key, exclusive]) => ({ key, exclusive })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** `spent / limit × 100`, for display only (both in nano-dollars); decisions use {@link exceedsLimit} and {@link reachesThreshold}. */
export function percentOf(spentNanoUsd: number, limitNanoUsd: number): number {
  if (limitNanoUsd > 0) return (spentNanoUsd / limitNanoUsd) * 100;
  return spentNanoUsd > 0 ? Number.POSITIVE_INFINITY : 0;
}

/** `true` when `spentNanoUsd` is over the limit: spend may reach a limit exactly, never pass it. */
export function exceedsLimit(spentNanoUsd: number, limit: BudgetLimit): boolean {
  return spentNanoUsd > limit.limitNanoUsd;
}

/**
 * `true` when `spentNanoUsd` reached `threshold × limitNanoUsd`, compared exactly: the threshold
 * is read from its decimal text (`0.8`) to 9 decimals, half-up, and both sides are multiplied
 * out in integers (`spent × 10⁹ ≥ threshold × 10⁹ × limit`).
 */
export function reachesThreshold(spentNanoUsd: number, limit: BudgetLimit): boolean {
  const thresholdPpb = parseDecimal(String(limit.threshold), USD_DECIMALS, "half-up");
  return BigInt(spentNanoUsd) * BigInt(NANO_USD_PER_USD) >= thresholdPpb * BigInt(limit.limitNanoUsd);
}

export const resetsAtOf = (window: BudgetWindow): number | null => (Number.isFinite(window.end) ? window.end : null);

// ---------------------------------------------------------------------------------------------
// Estimates

/**
 * Upper bound of a call's cost in nano-dollars: every input token at the most expensive input
 * rate (plain input, or a 5-minute or 1-hour cache write — the agents' loop marks prompts with
 * `cache_control`, and cache writes cost 1.25×/2× the input price) plus `maxTokens` output
 * tokens, in integers.
 *
 * @param price - nano-dollars per token (`PriceTable.nanoPriceOf`)
 * @param inputTokens - estimated input tokens ({@link estimateInputTokens})
 * @param maxTokens - the request's `max_tokens`
 * @throws {RangeError} when the estimate does not fit a safe integer
 */
export function estimateWorstCaseNanoUsd(price: ModelPriceNanoUsd, inputTokens: number, maxTokens: number): number {
  const inputRate = Math.max(price.input, price.cache_write_5m, price.cache_write_1h);
  const nano = BigInt(inputTokens) * BigInt(inputRate) + BigInt(maxTokens) * BigInt(price.output);
  const result = Number(nano);
  if (!Number.isSafeInteger(result)) throw new RangeError(`worst-case estimate ${nano} n$ does not fit a JS number exactly`);
  return result;
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
    limits.reduce<BudgetLimit | undefined>((min, l) => (min === undefined || l.limitNanoUsd < min.limitNanoUsd ? l : min), undefined);
  const merged: BudgetLimit[] = [];
  for (const group of groups.values()) {
    const block = lowest(group.filter((l) => l.action === "block"));
    const warn = lowest(group.filter((l) => l.action === "warn"));
    if (block) merged.push(block);
    if (warn && (!block || warn.limitNanoUsd < block.limitNanoUsd)) merged.push(warn);
  }
  return merged;
}
