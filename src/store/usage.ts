import { type ExpressionBuilder, type RawBuilder, sql } from "kysely";

import { assertNanoUsd, parseNanoUsd } from "../domain/money.js";
import type { RepositoryRename } from "../domain/repository.js";
import type { UsageTotals } from "../domain/usage.js";
import type { Db, DbOrTrx } from "./db.js";
import type { Database, NewLlmUsage } from "./schema.js";

/**
 * Writes one Messages API call to the ledger.
 *
 * @param row - tokens as reported in `usage`, `cost_nano_usd` in nano-dollars, `created_at` in epoch ms
 * @throws {RangeError} when `cost_nano_usd` is not a non-negative whole number of nano-dollars (nothing is written)
 */
export async function recordUsage(db: DbOrTrx, row: NewLlmUsage): Promise<void> {
  assertNanoUsd(row.cost_nano_usd, "cost_nano_usd");
  await db.insertInto("llm_usage").values(row).execute();
}

/**
 * The exact sum of a nano-dollar column (0 when no row matches), as decimal text on both
 * backends: PostgreSQL's `sum(bigint)` is a `numeric` (pg returns text anyway), and SQLite's
 * integer sum would be rounded by better-sqlite3 past 2⁵³ instead of failing. Parse it with
 * `parseNanoUsd`, which refuses rather than rounds.
 */
export function sumNanoUsd(column: "cost_nano_usd" | "amount_nano_usd"): RawBuilder<string> {
  return sql<string>`cast(coalesce(sum(${sql.ref(column)}), 0) as text)`;
}

export type { UsageTotals };

/**
 * The sums of {@link UsageTotals} as selections on `llm_usage`: calls, tokens of each kind (0
 * when no row matches) and the exact nano-dollar sum; read a row back with {@link toUsageTotals}.
 */
export function usageSums(eb: ExpressionBuilder<Database, "llm_usage">) {
  return [
    eb.fn.countAll<number>().as("calls"),
    eb.fn.coalesce(eb.fn.sum<number>("input_tokens"), eb.lit(0)).as("input_tokens"),
    eb.fn.coalesce(eb.fn.sum<number>("output_tokens"), eb.lit(0)).as("output_tokens"),
    eb.fn.coalesce(eb.fn.sum<number>("cache_creation_input_tokens"), eb.lit(0)).as("cache_creation_input_tokens"),
    eb.fn.coalesce(eb.fn.sum<number>("cache_read_input_tokens"), eb.lit(0)).as("cache_read_input_tokens"),
    sumNanoUsd("cost_nano_usd").as("cost_nano_usd"),
  ] as const;
}

/** A row selected with {@link usageSums} as {@link UsageTotals} (tokens as numbers, nano-dollars parsed exactly). */
export function toUsageTotals(row: Record<Exclude<keyof UsageTotals, "cost_nano_usd">, number | string> & { cost_nano_usd: string }): UsageTotals {
  return {
    calls: Number(row.calls),
    input_tokens: Number(row.input_tokens),
    output_tokens: Number(row.output_tokens),
    cache_creation_input_tokens: Number(row.cache_creation_input_tokens),
    cache_read_input_tokens: Number(row.cache_read_input_tokens),
    cost_nano_usd: parseNanoUsd(row.cost_nano_usd),
  };
}

/** Sums the ledger rows of one task (all its agents and runs). */
export async function usageTotalsForTask(db: Db, taskId: number): Promise<UsageTotals> {
  const row = await db.selectFrom("llm_usage").where("task_id", "=", taskId).select(usageSums).executeTakeFirstOrThrow();
  return toUsageTotals(row);
}

/**
 * Records one call's usage and settles its reservation in one transaction, so the spend is
 * never counted twice (usage and hold) nor zero times.
 */
export async function recordUsageAndSettle(db: Db, row: NewLlmUsage, reservationId: number, now = Date.now()): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await recordUsage(trx, row);
    await trx
      .updateTable("budget_reservations")
      .set({ status: "settled", settled_at: now })
      .where("id", "=", reservationId)
      .where("status", "=", "held")
      .execute();
  });
}

/** One group of ledger rows: calls, tokens of each kind, and nano-dollars. */
export interface SpendByAgentAndModel extends UsageTotals {
  agent: string;
  model: string;
}

/** Spend of a task by agent and model: calls, tokens of each kind and nano-dollars, ordered by agent and model. */
export async function spendByAgentAndModel(db: Db, taskId: number): Promise<SpendByAgentAndModel[]> {
  const rows = await db
    .selectFrom("llm_usage")
    .where("task_id", "=", taskId)
    // Each group has rows, so the token sums are never null (the `coalesce` of usageSums changes nothing).
    .select((eb) => ["agent", "model", ...usageSums(eb)])
    .groupBy(["agent", "model"])
    .orderBy("agent")
    .orderBy("model")
    .execute();
  return rows.map((r) => ({ agent: r.agent, model: r.model, ...toUsageTotals(r) }));
}

/** One group of {@link usageByAgentModelRepository}. */
export interface UsageByAgentModelRepository {
  agent: string;
  model: string;
  repository: string;
  calls: number;
  input: number;
  output: number;
  cache_write: number;
  cache_read: number;
  /** Exact sum, nano-dollars. */
  nano_usd: number;
}

/** Every call recorded, summed by agent, model and repository (for `/metrics`): calls, tokens, nano-dollars. */
export async function usageByAgentModelRepository(db: Db): Promise<UsageByAgentModelRepository[]> {
  const rows = await db
    .selectFrom("llm_usage")
    .select((eb) => [
      "agent",
      "model",
      "repository",
      eb.fn.countAll<number>().as("calls"),
      eb.fn.sum<number>("input_tokens").as("input"),
      eb.fn.sum<number>("output_tokens").as("output"),
      eb.fn.sum<number>("cache_creation_input_tokens").as("cache_write"),
      eb.fn.sum<number>("cache_read_input_tokens").as("cache_read"),
      sumNanoUsd("cost_nano_usd").as("nano_usd"),
    ])
    .groupBy(["agent", "model", "repository"])
    .execute();
  return rows.map((r) => ({
    agent: r.agent,
    model: r.model,
    repository: r.repository,
    calls: Number(r.calls),
    input: Number(r.input),
    output: Number(r.output),
    cache_write: Number(r.cache_write),
    cache_read: Number(r.cache_read),
    nano_usd: parseNanoUsd(r.nano_usd),
  }));
}

/**
 * The rename of a repository (`store/repository-rename.ts`), for the ledger: the installation's
 * calls recorded under `owner/from` count for `owner/to` from now on (its budgets included).
 *
 * @returns how many ledger rows moved
 */
export async function renameRepositoryUsage(db: DbOrTrx, rename: RepositoryRename): Promise<number> {
  const result = await db
    .updateTable("llm_usage")
    .set({ repository: `${rename.owner}/${rename.to}` })
    .where("installation_id", "=", rename.installationId)
    .where("repository", "=", `${rename.owner}/${rename.from}`)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
