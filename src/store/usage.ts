import type { Db } from "./db.js";
import type { NewLlmUsage } from "./schema.js";

/**
 * Writes one Messages API call to the ledger.
 *
 * @param row - tokens as reported in `usage`, `cost_usd` in USD, `created_at` in epoch ms
 */
export async function recordUsage(db: Db, row: NewLlmUsage): Promise<void> {
  await db.insertInto("llm_usage").values(row).execute();
}

/** Token and cost totals. Token counts are in tokens, cost in USD. */
export interface UsageTotals {
  calls: number;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cost_usd: number;
}

/** Sums the ledger rows of one task (all its agents and runs). */
export async function usageTotalsForTask(db: Db, taskId: number): Promise<UsageTotals> {
  const row = await db
    .selectFrom("llm_usage")
    .where("task_id", "=", taskId)
    .select((eb) => [
      eb.fn.countAll<number>().as("calls"),
      eb.fn.coalesce(eb.fn.sum<number>("input_tokens"), eb.lit(0)).as("input_tokens"),
      eb.fn.coalesce(eb.fn.sum<number>("output_tokens"), eb.lit(0)).as("output_tokens"),
      eb.fn.coalesce(eb.fn.sum<number>("cache_creation_input_tokens"), eb.lit(0)).as("cache_creation_input_tokens"),
      eb.fn.coalesce(eb.fn.sum<number>("cache_read_input_tokens"), eb.lit(0)).as("cache_read_input_tokens"),
      eb.fn.coalesce(eb.fn.sum<number>("cost_usd"), eb.lit(0)).as("cost_usd"),
    ])
    .executeTakeFirstOrThrow();
  return {
    calls: Number(row.calls),
    input_tokens: Number(row.input_tokens),
    output_tokens: Number(row.output_tokens),
    cache_creation_input_tokens: Number(row.cache_creation_input_tokens),
    cache_read_input_tokens: Number(row.cache_read_input_tokens),
    cost_usd: Number(row.cost_usd),
  };
}
