import type { UsageTotals } from "../domain/usage.js";
import type { Db, DbOrTrx } from "./db.js";
import type { NewLlmUsage } from "./schema.js";

/**
 * Writes one Messages API call to the ledger.
 *
 * @param row - tokens as reported in `usage`, `cost_usd` in USD, `created_at` in epoch ms
 */
export async function recordUsage(db: DbOrTrx, row: NewLlmUsage): Promise<void> {
  await db.insertInto("llm_usage").values(row).execute();
}

export type { UsageTotals };

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

/** Spend of a task by agent and model: calls, tokens of each kind and USD. */
export async function spendByAgentAndModel(db: Db, taskId: number) {
  return db
    .selectFrom("llm_usage")
    .where("task_id", "=", taskId)
    .select((eb) => [
      "agent",
      "model",
      eb.fn.countAll<number>().as("calls"),
      eb.fn.sum<number>("input_tokens").as("input_tokens"),
      eb.fn.sum<number>("output_tokens").as("output_tokens"),
      eb.fn.sum<number>("cache_creation_input_tokens").as("cache_creation_input_tokens"),
      eb.fn.sum<number>("cache_read_input_tokens").as("cache_read_input_tokens"),
      eb.fn.sum<number>("cost_usd").as("cost_usd"),
    ])
    .groupBy(["agent", "model"])
    .orderBy("agent")
    .orderBy("model")
    .execute();
}

/** Every call recorded, summed by agent, model and repository (for `/metrics`): calls, tokens, USD. */
export async function usageByAgentModelRepository(db: Db) {
  return db
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
      eb.fn.sum<number>("cost_usd").as("usd"),
    ])
    .groupBy(["agent", "model", "repository"])
    .execute();
}
