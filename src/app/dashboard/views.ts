import { z } from "zod";

import type { BudgetLimit } from "../../domain/budget-rules.js";
import { formatNanoUsd, NANO_USD_PER_USD } from "../../domain/money.js";
import {
  type AgentStatistics,
  agentStatistics,
  type AnalyticsFilter,
  budgetUse,
  cacheShare,
  costPerMergedPr,
  spendOverTime,
  spendTotals,
} from "../../store/analytics.js";
import { type DashboardScope, type LedgerDimensions, ledgerDimensions, liveTasks, recentFailures } from "../../store/dashboard.js";
import type { Db } from "../../store/db.js";

const DAY_MS = 86_400_000;

/** The periods the spend filter offers, in days. */
export const PERIODS = { "7d": 7, "30d": 30, "90d": 90, "365d": 365 } as const;
export type Period = keyof typeof PERIODS;

/**
 * The spend filter as it comes in the query string (`?period=30d&bucket=day&group=agent&…`).
 * An invalid value falls back to the default rather than failing the page.
 */
export const SpendQuery = z.object({
  period: z.enum(Object.keys(PERIODS) as [Period, ...Period[]]).catch("30d"),
  bucket: z.enum(["day", "week", "month"]).catch("day"),
  group: z.enum(["none", "installation", "repository", "agent", "model"]).catch("agent"),
  installation: z.coerce.number().int().positive().optional().catch(undefined),
  repository: z
    .string()
    .regex(/^[\w.-]+\/[\w.-]+$/)
    .max(200)
    .optional()
    .catch(undefined),
  agent: z.string().min(1).max(100).optional().catch(undefined),
  model: z.string().min(1).max(200).optional().catch(undefined),
});
export type SpendQuery = z.infer<typeof SpendQuery>;

/** The spend filter of a query string (empty values count as unset). */
export function spendQueryOf(params: URLSearchParams): SpendQuery {
  const raw: Record<string, string> = {};
  for (const [key, value] of params) if (value !== "") raw[key] = value;
  return SpendQuery.parse(raw);
}

/** The query string of a spend filter (only the values set), for links (CSV export). */
export function spendQueryString(query: SpendQuery): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  return params.toString();
}

/** `requested` narrowed to what `allowed` holds: `undefined` (all) when neither restricts, `[]` when the request is outside the scope. */
function narrow<T>(allowed: readonly T[] | null, requested: T | undefined): readonly T[] | undefined {
  if (requested === undefined) return allowed ?? undefined;
  if (allowed === null) return [requested];
  return allowed.includes(requested) ? [requested] : [];
}

/** The analytics filter of a spend query within the viewer's scope, over the period ending at `now` (epoch ms). */
export function analyticsFilterOf(scope: DashboardScope, query: SpendQuery, now: number): AnalyticsFilter {
  return {
    from: now - PERIODS[query.period] * DAY_MS,
    to: now + 1,
    installationIds: narrow(scope.installationIds, query.installation),
    repositories: narrow(scope.repositories, query.repository),
    ...(query.agent ? { agent: query.agent } : {}),
    ...(query.model ? { model: query.model } : {}),
  };
}

/** Nano-dollars as USD for a chart axis (display only; every sum stays exact in n$). */
const usd = (nano: number) => nano / NANO_USD_PER_USD;

/** The spend chart's data: labels (bucket starts), one series per group key, and the rows behind them. */
export interface SpendView {
  query: SpendQuery;
  /** Bucket starts as `YYYY-MM-DD` (UTC). */
  labels: string[];
  series: Array<{ key: string; usd: number[] }>;
  rows: Array<{ bucket: string; key: string; calls: number; inputTokens: number; outputTokens: number; cost: string }>;
  totals: { cost: string; calls: number; cacheShare: string; perMergedPr: string; mergedPrs: number };
  /** `/dashboard/export.csv?…` for the same filter. */
  csvUrl: string;
}

/** The spend over time of a query within the scope, with its totals. */
export async function spendView(db: Db, scope: DashboardScope, query: SpendQuery, now = Date.now()): Promise<SpendView> {
  const filter = analyticsFilterOf(scope, query, now);
  const rows = await spendOverTime(db, filter, query.bucket, query.group);
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const labels = [...new Set(rows.map((r) => r.bucket_start))].sort((a, b) => a - b);
  const keys = [...new Set(rows.map((r) => r.key ?? "all"))].sort();
  const series = keys.map((key) => ({
    key,
    usd: labels.map((bucket) => usd(rows.filter((r) => r.bucket_start === bucket && (r.key ?? "all") === key).reduce((sum, r) => sum + r.cost_nano_usd, 0))),
  }));
  const [total] = await spendTotals(db, filter, "none");
  const cache = await cacheShare(db, filter);
  const merged = await costPerMergedPr(db, filter);
  return {
    query,
    labels: labels.map(day),
    series,
    rows: rows.map((r) => ({
      bucket: day(r.bucket_start),
      key: r.key ?? "all",
      calls: r.calls,
      inputTokens: r.input_tokens,
      outputTokens: r.output_tokens,
      cost: formatNanoUsd(r.cost_nano_usd),
    })),
    totals: {
      cost: formatNanoUsd(total?.cost_nano_usd ?? 0),
      calls: total?.calls ?? 0,
      cacheShare: `${(cache.share * 100).toFixed(1)} %`,
      perMergedPr: merged.per_pr_nano_usd === null ? "—" : formatNanoUsd(merged.per_pr_nano_usd),
      mergedPrs: merged.merged_prs,
    },
    csvUrl: `/dashboard/export.csv?${spendQueryString(query)}`,
  };
}

/** One row of the live view, ready to show. */
export interface LiveRow {
  id: number;
  repository: string;
  issueNumber: number;
  issueTitle: string | null;
  prNumber: number | null;
  prUrl: string | null;
  state: string;
  /** Epoch ms the run started. */
  startedAt: number;
  spent: string;
  calls: number;
  /** The running (or else the first queued) job: `code (running, attempt 1)`, or `—`. */
  job: string;
}

/** The live view: tasks not at rest in the scope. */
export async function liveView(db: Db, scope: DashboardScope): Promise<LiveRow[]> {
  return (await liveTasks(db, scope)).map((t) => {
    const job = t.jobs.find((j) => j.state === "running") ?? t.jobs[0];
    return {
      id: t.id,
      repository: t.repository,
      issueNumber: t.issueNumber,
      issueTitle: t.issueTitle,
      prNumber: t.prNumber,
      prUrl: t.prUrl,
      state: t.state,
      startedAt: t.startedAt,
      spent: formatNanoUsd(t.spentNanoUsd),
      calls: t.calls,
      job: job ? `${job.kind} (${job.state}, attempt ${job.attempts})` : "—",
    };
  });
}

/** One budget limit's use, ready to show. */
export interface BudgetRow {
  scope: string;
  period: string;
  spent: string;
  limit: string;
  /** 0..100+ */
  percent: number;
  action: string;
  /** ISO time, or `null` for per-task limits. */
  resetsAt: string | null;
  source: string;
}

/** The budgets in force and their use, within the scope. */
export async function budgetView(db: Db, scope: DashboardScope, limits: readonly BudgetLimit[], now = Date.now()): Promise<BudgetRow[]> {
  const statuses = await budgetUse(db, {
    limits,
    installationIds: scope.installationIds ?? undefined,
    repositories: scope.repositories ?? undefined,
    now,
  });
  return statuses.map((s) => ({
    scope: s.scopeLabel,
    period: s.limit.period,
    spent: formatNanoUsd(s.spentNanoUsd),
    limit: formatNanoUsd(s.limitNanoUsd, 2),
    percent: Math.round(s.percent * 10) / 10,
    action: s.limit.action,
    resetsAt: s.resetsAt === null ? null : new Date(s.resetsAt).toISOString(),
    source: s.limit.source,
  }));
}

/** Agent statistics over the query's period and filter, within the scope. */
export async function agentView(db: Db, scope: DashboardScope, query: SpendQuery, now = Date.now()): Promise<AgentStatistics[]> {
  return agentStatistics(db, analyticsFilterOf(scope, query, now));
}

export { recentFailures };

/** The filter's choices: what the scope's ledger holds. */
export function dimensionsOf(db: Db, scope: DashboardScope): Promise<LedgerDimensions> {
  return ledgerDimensions(db, scope);
}
