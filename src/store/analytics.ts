/**
 * Spend analytics over the LLM ledger (`llm_usage`), computed in SQL on both backends: spend and
 * tokens over time and by group, cache share, cost per merged pull request, statistics per agent
 * role, budget use per limit, and the raw rows for export.
 *
 * Units: money in integer nano-dollars (`cost_nano_usd`, 1 USD = 10⁹ n$, `domain/money.ts`),
 * summed exactly (as decimal text, parsed with `parseNanoUsd`); tokens as the Messages API
 * reports them in `usage`; times in epoch milliseconds, buckets in UTC.
 *
 * Every query reads from the ledger and the `tasks`/`transitions` tables only, never from the job
 * queue: on PostgreSQL jobs live in pg-boss and are deleted after its retention period, so a
 * statistic computed from them would change as they expire.
 *
 * Indexes: `2026-11-29T0000-analytics-indexes` (time, installation + time, repository + time);
 * measured in `bench/analytics.ts`.
 */
import { type RawBuilder, sql } from "kysely";

import { BUDGET_AGENTS, type BudgetLimit, type BudgetStatus, type BudgetSubject, periodWindow } from "../domain/budget-rules.js";
import { addNanoUsd, parseNanoUsd } from "../domain/money.js";
import { NO_USAGE, type UsageTotals } from "../domain/usage.js";
import { RESTING_STATES } from "../domain/task-state.js";
import { spendReport } from "./budgets.js";
import type { Db, DbOrTrx } from "./db.js";
import { isPostgres } from "./dialect.js";
import type { LlmUsage } from "./schema.js";

/** Size of a time bucket, in UTC: a calendar day, an ISO week (Monday 00:00 UTC), a calendar month. */
export type AnalyticsBucket = "day" | "week" | "month";

/**
 * What spend is grouped by. `none`: one group (key `null`); `installation`: the installation id
 * as decimal text; `repository`: `owner/repo`; `agent`: the agent role; `model`: the model id;
 * `task`: the task id as decimal text (`null` for calls made outside a task).
 */
export type AnalyticsGroup = "none" | "installation" | "repository" | "agent" | "model" | "task";

/** The ledger rows a query reads. */
export interface AnalyticsFilter {
  /** Epoch ms, inclusive: calls made at or after it. */
  from: number;
  /** Epoch ms, exclusive: calls made before it. */
  to: number;
  /** Only these installations. `undefined` = all; `[]` = none (a user with no access sees nothing). */
  installationIds?: readonly number[];
  /** Only these repositories (`owner/repo`). `undefined` = all; `[]` = none. */
  repositories?: readonly string[];
  /** Only this agent role (`coder`). */
  agent?: string;
  /** Only this model id. */
  model?: string;
}

/** Sums of one group of ledger rows. */
export interface SpendRow extends UsageTotals {
  /** The group's key (see {@link AnalyticsGroup}); `null` for `none`, or a call without a task under `task`. */
  key: string | null;
}

/** {@link SpendRow} of one time bucket. */
export interface SpendBucketRow extends SpendRow {
  /** Epoch ms (UTC) the bucket starts: 00:00 of the day, of the week's Monday, of the month's 1st. */
  bucket_start: number;
}

const DAY_MS = 86_400_000;
const WEEK_MS = 7 * DAY_MS;
/** 1970-01-01 was a Thursday: shifting by 3 days puts Monday at a multiple of 7 days. */
const MONDAY_SHIFT_MS = 3 * DAY_MS;

// ---------------------------------------------------------------------------------------------
// Filters

/** `true` when the filter selects nothing without asking the database (an empty list). */
function selectsNothing(filter: AnalyticsFilter): boolean {
  return filter.installationIds?.length === 0 || filter.repositories?.length === 0;
}

function assertFilter(filter: AnalyticsFilter): void {
  if (!Number.isSafeInteger(filter.from) || !Number.isSafeInteger(filter.to))
    throw new RangeError(`from and to must be whole epoch milliseconds, got ${filter.from} and ${filter.to}`);
  for (const id of filter.installationIds ?? []) {
    if (!Number.isSafeInteger(id)) throw new RangeError(`installation id ${id} is not a whole number`);
  }
}

/**
 * SQL conditions on `llm_usage` (aliased `u`) for `filter`. The time range comes first and each
 * list becomes an `in (…)` so the planner can use the `(installation_id, created_at)` and
 * `(repository, created_at)` indexes.
 */
function usageConditions(filter: AnalyticsFilter): RawBuilder<unknown> {
  const conditions: RawBuilder<unknown>[] = [sql`u.created_at >= ${filter.from}`, sql`u.created_at < ${filter.to}`];
  if (filter.installationIds !== undefined) conditions.push(sql`u.installation_id in (${sql.join(filter.installationIds.map((id) => sql`${id}`))})`);
  if (filter.repositories !== undefined) conditions.push(sql`u.repository in (${sql.join(filter.repositories.map((r) => sql`${r}`))})`);
  if (filter.agent !== undefined) conditions.push(sql`u.agent = ${filter.agent}`);
  if (filter.model !== undefined) conditions.push(sql`u.model = ${filter.model}`);
  return sql.join(conditions, sql` and `);
}

/**
 * The same installation, repository, agent and model conditions without the time range (for
 * the whole-life spend of merged tasks).
 */
function usageConditionsAnyTime(filter: AnalyticsFilter): RawBuilder<unknown> {
  const conditions: RawBuilder<unknown>[] = [sql`1 = 1`];
  if (filter.installationIds !== undefined) conditions.push(sql`u.installation_id in (${sql.join(filter.installationIds.map((id) => sql`${id}`))})`);
  if (filter.repositories !== undefined) conditions.push(sql`u.repository in (${sql.join(filter.repositories.map((r) => sql`${r}`))})`);
  if (filter.agent !== undefined) conditions.push(sql`u.agent = ${filter.agent}`);
  if (filter.model !== undefined) conditions.push(sql`u.model = ${filter.model}`);
  return sql.join(conditions, sql` and `);
}

/** Conditions on `tasks` (aliased `t`) for the filter's installation and repository lists. */
function taskConditions(filter: AnalyticsFilter): RawBuilder<unknown> {
  const conditions: RawBuilder<unknown>[] = [sql`1 = 1`];
  if (filter.installationIds !== undefined) conditions.push(sql`t.installation_id in (${sql.join(filter.installationIds.map((id) => sql`${id}`))})`);
  if (filter.repositories !== undefined) conditions.push(sql`(t.owner || '/' || t.repo) in (${sql.join(filter.repositories.map((r) => sql`${r}`))})`);
  return sql.join(conditions, sql` and `);
}

// ---------------------------------------------------------------------------------------------
// Buckets and groups

/**
 * Start of the UTC bucket containing `u.created_at`, in epoch ms, the same on both backends.
 * Day and week are integer arithmetic on the epoch (UTC has no leap seconds in epoch time);
 * month needs the calendar: SQLite's `strftime(… 'start of month')`, PostgreSQL's `date_trunc`
 * on the UTC timestamp.
 */
function bucketStart(db: DbOrTrx, bucket: AnalyticsBucket, column: RawBuilder<unknown> = sql.ref("u.created_at")): RawBuilder<number> {
  switch (bucket) {
    case "day":
      return sql<number>`(${column} - (${column} % ${sql.lit(DAY_MS)}))`;
    case "week":
      return sql<number>`(${column} - ((${column} + ${sql.lit(MONDAY_SHIFT_MS)}) % ${sql.lit(WEEK_MS)}))`;
    case "month":
      return isPostgres(db)
        ? sql<number>`(cast(extract(epoch from date_trunc('month', to_timestamp(${column} / 1000) at time zone 'UTC')) as bigint) * 1000)`
        : sql<number>`(cast(strftime('%s', ${column} / 1000, 'unixepoch', 'start of month') as integer) * 1000)`;
  }
}

/** The group key's expression on `llm_usage` (aliased `u`), as text or null. */
function groupKey(group: AnalyticsGroup): RawBuilder<string | null> {
  switch (group) {
    case "none":
      return sql<null>`null`;
    case "installation":
      return sql<string>`cast(u.installation_id as text)`;
    case "repository":
      return sql<string>`u.repository`;
    case "agent":
      return sql<string>`u.agent`;
    case "model":
      return sql<string>`u.model`;
    case "task":
      return sql<string | null>`cast(u.task_id as text)`;
  }
}

/** The sums every spend query selects. */
const SPEND_SUMS = sql`count(*) as calls,
  coalesce(sum(u.input_tokens), 0) as input_tokens,
  coalesce(sum(u.output_tokens), 0) as output_tokens,
  coalesce(sum(u.cache_creation_input_tokens), 0) as cache_creation_input_tokens,
  coalesce(sum(u.cache_read_input_tokens), 0) as cache_read_input_tokens,
  cast(coalesce(sum(u.cost_nano_usd), 0) as text) as cost_nano_usd`;

interface RawSpend {
  key: string | number | null;
  calls: number | string;
  input_tokens: number | string;
  output_tokens: number | string;
  cache_creation_input_tokens: number | string;
  cache_read_input_tokens: number | string;
  cost_nano_usd: string | number;
}

/** A token sum as a number (PostgreSQL returns `sum(bigint)` as numeric text); exact below 2⁵³. */
function count(value: number | string | null | undefined): number {
  const n = Number(value ?? 0);
  if (!Number.isSafeInteger(n)) throw new RangeError(`count ${String(value)} is not a safe integer`);
  return n;
}

function toSpendRow(r: RawSpend): SpendRow {
  return {
    key: r.key === null ? null : String(r.key),
    calls: count(r.calls),
    input_tokens: count(r.input_tokens),
    output_tokens: count(r.output_tokens),
    cache_creation_input_tokens: count(r.cache_creation_input_tokens),
    cache_read_input_tokens: count(r.cache_read_input_tokens),
    cost_nano_usd: parseNanoUsd(r.cost_nano_usd),
  };
}

/**
 * Orders group keys the same on both backends (not by the database's collation): `null` first,
 * numeric keys (installation, task) by value, others by UTF-16 code units.
 */
function compareKeys(group: AnalyticsGroup, a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  if (group === "installation" || group === "task") return Number(a) - Number(b);
  return a < b ? -1 : 1;
}

// ---------------------------------------------------------------------------------------------
// Spend

/**
 * Spend and tokens per UTC time bucket and group: one row per (bucket, key) that has calls,
 * ordered by bucket start, then key ({@link compareKeys}). Buckets without calls are absent.
 *
 * @param filter - the rows counted, `[from, to)` in epoch ms
 * @param bucket - day, ISO week (starting Monday 00:00 UTC) or calendar month, in UTC
 * @param group - what each bucket is split by ({@link AnalyticsGroup})
 */
export async function spendOverTime(db: DbOrTrx, filter: AnalyticsFilter, bucket: AnalyticsBucket, group: AnalyticsGroup): Promise<SpendBucketRow[]> {
  assertFilter(filter);
  if (selectsNothing(filter)) return [];
  const key = groupKey(group);
  let rows: Array<RawSpend & { bucket_start: number | string }>;
  if (bucket === "month") {
    // Calendar functions run once per (day, key) of a pre-aggregated day series, not once per row.
    const { rows: raw } = await sql<RawSpend & { bucket_start: number | string }>`
      select ${bucketStart(db, "month", sql.ref("d.day_start"))} as bucket_start, d.key as key,
        sum(d.calls) as calls, sum(d.input_tokens) as input_tokens, sum(d.output_tokens) as output_tokens,
        sum(d.cache_creation_input_tokens) as cache_creation_input_tokens, sum(d.cache_read_input_tokens) as cache_read_input_tokens,
        cast(sum(d.cost_nano_usd) as text) as cost_nano_usd
      from (
        select ${bucketStart(db, "day")} as day_start, ${key} as key, count(*) as calls,
          sum(u.input_tokens) as input_tokens, sum(u.output_tokens) as output_tokens,
          sum(u.cache_creation_input_tokens) as cache_creation_input_tokens, sum(u.cache_read_input_tokens) as cache_read_input_tokens,
          sum(u.cost_nano_usd) as cost_nano_usd
        from llm_usage u
        where ${usageConditions(filter)}
        group by 1, 2
      ) d
      group by 1, 2
    `.execute(db);
    rows = raw;
  } else {
    const { rows: raw } = await sql<RawSpend & { bucket_start: number | string }>`
      select ${bucketStart(db, bucket)} as bucket_start, ${key} as key, ${SPEND_SUMS}
      from llm_usage u
      where ${usageConditions(filter)}
      group by 1, 2
    `.execute(db);
    rows = raw;
  }
  return rows
    .map((r) => ({ ...toSpendRow(r), bucket_start: count(r.bucket_start) }))
    .sort((a, b) => a.bucket_start - b.bucket_start || compareKeys(group, a.key, b.key));
}

/**
 * Spend and tokens per group over the whole filter window, ordered by cost (highest first),
 * then key. `group: "none"` gives one row (with zeros when nothing matched).
 */
export async function spendTotals(db: DbOrTrx, filter: AnalyticsFilter, group: AnalyticsGroup): Promise<SpendRow[]> {
  assertFilter(filter);
  const empty: SpendRow = { key: null, ...NO_USAGE };
  if (selectsNothing(filter)) return group === "none" ? [empty] : [];
  const query =
    group === "none"
      ? sql<RawSpend>`select null as key, ${SPEND_SUMS} from llm_usage u where ${usageConditions(filter)}`
      : sql<RawSpend>`select ${groupKey(group)} as key, ${SPEND_SUMS} from llm_usage u where ${usageConditions(filter)} group by 1`;
  const { rows } = await query.execute(db);
  return rows.map(toSpendRow).sort((a, b) => b.cost_nano_usd - a.cost_nano_usd || compareKeys(group, a.key, b.key));
}

/** Input tokens by kind and the share read from the prompt cache. */
export interface CacheShare {
  /** Uncached input tokens. */
  input_tokens: number;
  /** Tokens written to the cache (billed at 1.25× or 2× input). */
  cache_creation_input_tokens: number;
  /** Tokens read from the cache (billed at 0.1× input). */
  cache_read_input_tokens: number;
  /** `cache_read / (input + cache_creation + cache_read)`, 0 to 1; 0 when there were no input tokens. */
  share: number;
}

/** How much of the input the prompt cache served: {@link CacheShare}. */
export async function cacheShare(db: DbOrTrx, filter: AnalyticsFilter): Promise<CacheShare> {
  const [totals] = await spendTotals(db, filter, "none");
  const input = totals?.input_tokens ?? 0;
  const write = totals?.cache_creation_input_tokens ?? 0;
  const read = totals?.cache_read_input_tokens ?? 0;
  const all = input + write + read;
  return { input_tokens: input, cache_creation_input_tokens: write, cache_read_input_tokens: read, share: all === 0 ? 0 : read / all };
}

/** {@link costPerMergedPr}'s answer. */
export interface CostPerMergedPr {
  /** Tasks that entered `merged` in the window. */
  merged_prs: number;
  /** Nano-dollars: every ledger row of those tasks (all runs, any time), within the filter's installation, repository, agent and model. */
  cost_nano_usd: number;
  /** `cost_nano_usd / merged_prs` rounded to the nearest n$; `null` when nothing was merged. */
  per_pr_nano_usd: number | null;
}

/**
 * What a merged pull request cost. A merged PR is a task with a transition into `merged`
 * (`domain/task-state.ts`; written when GitHub reports the PR merged, `pipeline/stages/pr-closed.ts`)
 * whose time lies in `[from, to)`, counted once per task even when it entered `merged` twice in
 * the window. Its cost is the task's whole ledger spend — also calls made before `from`, since
 * the work on a PR usually starts before it is merged — restricted by the filter's installation,
 * repository, agent and model. A task that was merged, started again and merged again counts the
 * spend of every run. Tasks are matched to the installation and repository lists by their own
 * columns.
 */
export async function costPerMergedPr(db: DbOrTrx, filter: AnalyticsFilter): Promise<CostPerMergedPr> {
  assertFilter(filter);
  if (selectsNothing(filter)) return { merged_prs: 0, cost_nano_usd: 0, per_pr_nano_usd: null };
  const { rows } = await sql<{ merged_prs: number | string; cost_nano_usd: string }>`
    with merged as (
      select distinct tr.task_id as task_id
      from transitions tr join tasks t on t.id = tr.task_id
      where tr.to_state = 'merged' and tr.created_at >= ${filter.from} and tr.created_at < ${filter.to} and ${taskConditions(filter)}
    )
    select
      (select count(*) from merged) as merged_prs,
      (select cast(coalesce(sum(u.cost_nano_usd), 0) as text) from llm_usage u where u.task_id in (select task_id from merged) and ${usageConditionsAnyTime(filter)}) as cost_nano_usd
  `.execute(db);
  const merged = count(rows[0]?.merged_prs);
  const cost = parseNanoUsd(rows[0]?.cost_nano_usd ?? "0");
  return { merged_prs: merged, cost_nano_usd: cost, per_pr_nano_usd: merged === 0 ? null : Math.round(cost / merged) };
}

// ---------------------------------------------------------------------------------------------
// Agent statistics

/** Task states counted as a success by {@link agentStatistics}: the work is done (a human may merge, or did). */
export const SUCCEEDED_STATES = ["ready_for_merge", "merged"] as const;
/** Task states counted as a failure by {@link agentStatistics}: the run ended without a result. */
export const FAILED_STATES = ["failed", "cancelled", "budget_exceeded"] as const;

/** One agent role's statistics (see {@link agentStatistics} for the definitions). */
export interface AgentStatistics {
  agent: string;
  /** Distinct jobs with at least one call of this role (a retried job is one run). */
  runs: number;
  /** Calls of this role. */
  calls: number;
  /** Distinct tasks with at least one call of this role. */
  tasks: number;
  /** Of `tasks`, those now in `ready_for_merge` or `merged`. */
  succeeded_tasks: number;
  /** Of `tasks`, those now in `failed`, `cancelled` or `budget_exceeded`. */
  failed_tasks: number;
  /** `succeeded / (succeeded + failed)`, 0 to 1; `null` while none of its tasks has an outcome. */
  success_rate: number | null;
  /** Sum of `tasks.rework_cycles` (Coder revisions after a review or failing tests, current run) over `tasks`. */
  rework_cycles: number;
  /** Nano-dollars: this role's spend. */
  cost_nano_usd: number;
  /** Nano-dollars: `cost_nano_usd / runs`, rounded to the nearest n$ (every call, also calls outside a job); 0 without runs. */
  avg_cost_nano_usd: number;
  /** Milliseconds from a run's first to its last call (recorded when each call ended), averaged over runs and rounded; `null` without runs. */
  avg_duration_ms: number | null;
}

/**
 * Statistics per agent role over the ledger rows of `filter`, ordered by role name.
 *
 * - A **run** of a role is one job (a stage's job, `job_id`) in which the role made calls: the
 *   distinct `(agent, job_id)` pairs. Calls without a job id count towards calls and cost, not runs.
 * - **Tasks** are the distinct `task_id`s of the role's calls; a task's outcome is its *current*
 *   state: `ready_for_merge`/`merged` succeeded, `failed`/`cancelled`/`budget_exceeded` failed,
 *   any other state (working, blocked, changes requested) has no outcome yet and is left out of
 *   the success rate.
 * - **Rework cycles** are `tasks.rework_cycles` summed over those tasks (the counter of the task's
 *   current run: a new run resets it).
 * - **Duration** of a run is its last call's time minus its first call's (the ledger stores when
 *   each call ended, not when the job started): a run of one call lasts 0 ms, and the time before
 *   the first call and after the last is not counted. The jobs table cannot be used: on
 *   PostgreSQL jobs live in pg-boss, which deletes them after its retention period.
 */
export async function agentStatistics(db: DbOrTrx, filter: AnalyticsFilter): Promise<AgentStatistics[]> {
  assertFilter(filter);
  if (selectsNothing(filter)) return [];
  // One pass over the window's rows (one sort), grouped by run and task; the roles are summed here.
  const { rows } = await sql<{
    agent: string;
    job_id: string | number | null;
    task_id: number | null;
    calls: number | string;
    cost_nano_usd: string;
    first_at: number | string;
    last_at: number | string;
    stage: string | null;
    rework_cycles: number | null;
  }>`
    select g.agent as agent, g.job_id as job_id, g.task_id as task_id, g.calls as calls, g.cost_nano_usd as cost_nano_usd,
      g.first_at as first_at, g.last_at as last_at, t.stage as stage, t.rework_cycles as rework_cycles
    from (
      select u.agent as agent, u.job_id as job_id, u.task_id as task_id, count(*) as calls, cast(sum(u.cost_nano_usd) as text) as cost_nano_usd,
        min(u.created_at) as first_at, max(u.created_at) as last_at
      from llm_usage u where ${usageConditions(filter)}
      group by u.agent, u.job_id, u.task_id
    ) g
    left join tasks t on t.id = g.task_id
  `.execute(db);
  interface Acc {
    calls: number;
    cost: number;
    runs: Map<string, { first: number; last: number }>;
    tasks: Map<number, { stage: string | null; rework: number }>;
  }
  const byAgent = new Map<string, Acc>();
  for (const r of rows) {
    let acc = byAgent.get(r.agent);
    if (!acc) {
      acc = { calls: 0, cost: 0, runs: new Map(), tasks: new Map() };
      byAgent.set(r.agent, acc);
    }
    acc.calls += count(r.calls);
    acc.cost = addNanoUsd(acc.cost, parseNanoUsd(r.cost_nano_usd));
    if (r.job_id !== null) {
      // A job spans one task, but a row per (job, task) is merged anyway.
      const key = String(r.job_id);
      const first = count(r.first_at);
      const last = count(r.last_at);
      const run = acc.runs.get(key);
      acc.runs.set(key, run ? { first: Math.min(run.first, first), last: Math.max(run.last, last) } : { first, last });
    }
    if (r.task_id !== null) acc.tasks.set(count(r.task_id), { stage: r.stage, rework: count(r.rework_cycles) });
  }
  const succeededStates: ReadonlySet<string> = new Set(SUCCEEDED_STATES);
  const failedStates: ReadonlySet<string> = new Set(FAILED_STATES);
  return [...byAgent.entries()]
    .map(([agent, acc]) => {
      const runs = acc.runs.size;
      const tasks = [...acc.tasks.values()];
      const succeeded = tasks.filter((t) => t.stage !== null && succeededStates.has(t.stage)).length;
      const failed = tasks.filter((t) => t.stage !== null && failedStates.has(t.stage)).length;
      const duration = [...acc.runs.values()].reduce((sum, r) => sum + (r.last - r.first), 0);
      return {
        agent,
        runs,
        calls: acc.calls,
        tasks: tasks.length,
        succeeded_tasks: succeeded,
        failed_tasks: failed,
        success_rate: succeeded + failed === 0 ? null : succeeded / (succeeded + failed),
        rework_cycles: tasks.reduce((sum, t) => sum + t.rework, 0),
        cost_nano_usd: acc.cost,
        avg_cost_nano_usd: runs === 0 ? 0 : Math.round(acc.cost / runs),
        avg_duration_ms: runs === 0 ? null : Math.round(duration / runs),
      };
    })
    .sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// Budgets

/** What {@link budgetUse} reports on. */
export interface BudgetUseRequest {
  /** The limits in force (usually the server's, `serverBudgetLimits(env)`). */
  limits: readonly BudgetLimit[];
  /** As in {@link AnalyticsFilter}: `undefined` = all; `[]` = none. */
  installationIds?: readonly number[];
  /** As in {@link AnalyticsFilter}: `undefined` = all; `[]` = none. */
  repositories?: readonly string[];
  /** Epoch ms selecting each limit's current window (default `Date.now()`). */
  now?: number;
  /** Task limits: how many tasks to show, those with the highest spend among tasks still in progress (default 20). */
  maxTasks?: number;
}

/**
 * Spend against each limit in its current window (`periodWindow`), as `/budget` computes it
 * (`spendReport`: recorded usage plus held reservations, exactly), one entry per limit and
 * scope key:
 *
 * - `global` limit: one entry; `agent` limit: one per role ({@link BUDGET_AGENTS}, or the limit's
 *   role). Both count every installation's spend, so they are left out when `installationIds`
 *   or `repositories` is given (a user who may see some installations must not see the others'
 *   spend) — unless the limit names one repository of `repositories`.
 * - When `repositories` is given, `installation` limits are left out too (unless the limit names
 *   one repository of the list): they count every repository of the installation, including
 *   those outside the list, so their figures would disclose the others' spend.
 * - `installation` limit: one per installation in `installationIds`, or, when it is not given,
 *   per installation with ledger rows or reservations in the window.
 * - `repository` limit: one per repository in `repositories`, or, when it is not given, per
 *   repository with ledger rows or reservations in the window (within `installationIds`).
 * - `task` limit (per task, in total): the `maxTasks` tasks still in progress (not in a resting
 *   state) with the highest spend, within the installation and repository lists.
 *
 * A limit restricted to one repository (`limit.repository`) is reported only for that
 * repository. Entries keep the order of `limits`, then scope key.
 */
export async function budgetUse(db: Db, request: BudgetUseRequest): Promise<BudgetStatus[]> {
  const now = request.now ?? Date.now();
  const { installationIds, repositories } = request;
  if (installationIds?.length === 0 || repositories?.length === 0) return [];
  const report: BudgetStatus[] = [];
  const seen = new Set<string>();
  const base: BudgetSubject = { installationId: 0, repository: "", agent: "", taskId: 0, subjectNumber: null, jobId: null };
  for (const limit of request.limits) {
    if (limit.repository !== undefined && repositories !== undefined && !repositories.includes(limit.repository)) continue;
    // Wider than one repository: its spend includes repositories outside the list.
    const wide = limit.repository === undefined && (limit.scope === "global" || limit.scope === "agent" || limit.scope === "installation");
    if (wide && repositories !== undefined) continue;
    const subjects: BudgetSubject[] = [];
    switch (limit.scope) {
      case "global":
      case "agent": {
        const crossInstallation = limit.repository === undefined;
        if (crossInstallation && installationIds !== undefined) break;
        const agents = limit.scope === "agent" ? (limit.agent !== undefined ? [limit.agent] : [...BUDGET_AGENTS]) : [""];
        for (const agent of agents) subjects.push({ ...base, repository: limit.repository ?? "", agent });
        break;
      }
      case "installation": {
        const ids = installationIds ?? (await activeKeys(db, "installation_id", limit, now, request));
        for (const id of ids) subjects.push({ ...base, installationId: Number(id), repository: limit.repository ?? "" });
        break;
      }
      case "repository": {
        const repos = limit.repository !== undefined ? [limit.repository] : (repositories ?? (await activeKeys(db, "repository", limit, now, request)));
        for (const repository of repos) subjects.push({ ...base, repository: String(repository) });
        break;
      }
      case "task": {
        for (const task of await costliestOpenTasks(db, request, request.maxTasks ?? 20)) {
          if (limit.repository !== undefined && task.repository !== limit.repository) continue;
          subjects.push({ ...base, installationId: task.installation_id, repository: task.repository, taskId: task.id });
        }
        break;
      }
    }
    for (const subject of subjects) {
      for (const status of await spendReport(db, subject, [limit], now)) {
        const key = `${limit.scope}\u0000${status.scopeKey}\u0000${limit.period}\u0000${limit.action}\u0000${limit.source}`;
        if (seen.has(key)) continue;
        seen.add(key);
        report.push(status);
      }
    }
  }
  return report;
}

/** Installations or repositories with ledger rows or reservations in `limit`'s current window, within the request's lists. */
async function activeKeys(
  db: Db,
  column: "installation_id" | "repository",
  limit: BudgetLimit,
  now: number,
  request: BudgetUseRequest,
): Promise<Array<string | number>> {
  const window = periodWindow(limit.period, now);
  const conditions: RawBuilder<unknown>[] = [sql`created_at >= ${window.start}`];
  if (Number.isFinite(window.end)) conditions.push(sql`created_at < ${window.end}`);
  if (request.installationIds !== undefined) conditions.push(sql`installation_id in (${sql.join(request.installationIds.map((id) => sql`${id}`))})`);
  if (request.repositories !== undefined) conditions.push(sql`repository in (${sql.join(request.repositories.map((r) => sql`${r}`))})`);
  if (limit.repository !== undefined) conditions.push(sql`repository = ${limit.repository}`);
  const where = sql.join(conditions, sql` and `);
  const { rows } = await sql<{ key: string | number }>`
    select ${sql.ref(column)} as key from llm_usage where ${where}
    union
    select ${sql.ref(column)} as key from budget_reservations where status = 'held' and ${where}
  `.execute(db);
  return rows.map((r) => (column === "installation_id" ? Number(r.key) : String(r.key))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The tasks not in a resting state with the highest whole-life spend, within the request's lists. */
async function costliestOpenTasks(db: Db, request: BudgetUseRequest, max: number): Promise<Array<{ id: number; installation_id: number; repository: string }>> {
  const resting = sql.join([...RESTING_STATES].map((s) => sql.lit(s)));
  const { rows } = await sql<{ id: number; installation_id: number | string; repository: string; spent: string }>`
    select t.id as id, t.installation_id as installation_id, t.owner || '/' || t.repo as repository,
      (select coalesce(sum(u.cost_nano_usd), 0) from llm_usage u where u.task_id = t.id) as spent
    from tasks t
    where t.stage not in (${resting}) and ${taskConditions({ from: 0, to: 0, installationIds: request.installationIds, repositories: request.repositories })}
    order by spent desc, t.id
    limit ${max}
  `.execute(db);
  return rows.map((r) => ({ id: Number(r.id), installation_id: Number(r.installation_id), repository: r.repository }));
}

// ---------------------------------------------------------------------------------------------
// Export

/** Most rows {@link ledgerRows} returns at once. */
export const LEDGER_PAGE_MAX = 10_000;

/**
 * The ledger rows of `filter`, oldest id first, one page at a time (keyset pagination: pass the
 * last row's `id` as `afterId` for the next page; an empty page is the end). For CSV export.
 *
 * @param options.limit - rows per page, 1 to {@link LEDGER_PAGE_MAX} (default 1,000)
 * @param options.afterId - return rows with a greater id only
 */
export async function ledgerRows(db: DbOrTrx, filter: AnalyticsFilter, options: { limit?: number; afterId?: number } = {}): Promise<LlmUsage[]> {
  assertFilter(filter);
  const limit = options.limit ?? 1_000;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > LEDGER_PAGE_MAX) throw new RangeError(`limit must be 1 to ${LEDGER_PAGE_MAX}, got ${limit}`);
  if (selectsNothing(filter)) return [];
  const after = options.afterId ?? 0;
  if (!Number.isSafeInteger(after)) throw new RangeError(`afterId ${after} is not a whole number`);
  const { rows } = await sql<LlmUsage>`
    select u.* from llm_usage u
    where ${usageConditions(filter)} and u.id > ${after}
    order by u.id
    limit ${limit}
  `.execute(db);
  return rows.map((r) => ({ ...r, cost_nano_usd: parseNanoUsd(r.cost_nano_usd) }));
}
