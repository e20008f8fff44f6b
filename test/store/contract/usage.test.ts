import { expect, it } from "vitest";

import type { NewLlmUsage } from "../../../src/store/schema.js";
import { recordUsage, spendByAgentAndModel, usageByAgentModelRepository, usageTotalsForTask } from "../../../src/store/usage.js";
import { insertTask, usageRow } from "../../helpers/db.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

function usage(overrides: Partial<NewLlmUsage>): NewLlmUsage {
  return usageRow({ installation_id: 98_765_432_101, ...overrides });
}

describeStoreContract("usage ledger", (getDb) => {
  it("records rows and sums a task's totals, as numbers", async () => {
    const db = getDb();
    const taskId = await insertTask(db);
    await recordUsage(
      db,
      usage({
        task_id: taskId,
        input_tokens: 1000,
        output_tokens: 200,
        cache_creation_input_tokens: 30,
        cache_read_input_tokens: 4,
        cost_nano_usd: 125_000_000,
      }),
    );
    await recordUsage(db, usage({ task_id: taskId, agent: "coder", input_tokens: 10, output_tokens: 20, cost_nano_usd: 500_000_000, request_id: "req_1" }));
    await recordUsage(db, usage({ task_id: null, input_tokens: 99, cost_nano_usd: 9_000_000_000 }));
    expect(await usageTotalsForTask(db, taskId)).toEqual({
      calls: 2,
      input_tokens: 1010,
      output_tokens: 220,
      cache_creation_input_tokens: 30,
      cache_read_input_tokens: 4,
      cost_nano_usd: 625_000_000,
    });
    expect(await usageTotalsForTask(db, taskId + 1000)).toEqual({
      calls: 0,
      input_tokens: 0,
      output_tokens: 0,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cost_nano_usd: 0,
    });
    const rows = await db.selectFrom("llm_usage").selectAll().where("request_id", "=", "req_1").execute();
    expect(rows).toEqual([expect.objectContaining({ created_at: 1_800_000_000_000, installation_id: 98_765_432_101, cost_nano_usd: 500_000_000 })]);
  });

  it("groups spend by agent and model, and by agent, model and repository", async () => {
    const db = getDb();
    const taskId = await insertTask(db);
    await recordUsage(db, usage({ task_id: taskId, agent: "coder", input_tokens: 5, cost_nano_usd: 250_000_000 }));
    await recordUsage(db, usage({ task_id: taskId, agent: "coder", input_tokens: 7, cost_nano_usd: 500_000_000 }));
    await recordUsage(db, usage({ task_id: taskId, agent: "architect", input_tokens: 1, cost_nano_usd: 1_000_000_000 }));
    const byAgent = await spendByAgentAndModel(db, taskId);
    expect(byAgent.map((r) => [r.agent, r.calls, r.input_tokens, r.cost_nano_usd])).toEqual([
      ["architect", 1, 1, 1_000_000_000],
      ["coder", 2, 12, 750_000_000],
    ]);
    const all = await usageByAgentModelRepository(db);
    expect(all.map((r) => r.calls).reduce((a, b) => a + b, 0)).toBe(3);
    expect(all.map((r) => r.nano_usd).sort((a, b) => a - b)).toEqual([750_000_000, 1_000_000_000]);
  });

  it("refuses a negative or fractional cost, in the store and in the table", async () => {
    const db = getDb();
    await expect(recordUsage(db, usage({ cost_nano_usd: -1 }))).rejects.toThrow(RangeError);
    await expect(
      db
        .insertInto("llm_usage")
        .values(usage({ cost_nano_usd: -1 }))
        .execute(),
    ).rejects.toThrow();
    await expect(
      db
        .insertInto("llm_usage")
        .values(usage({ cost_nano_usd: 0.5 }))
        .execute(),
    ).rejects.toThrow();
    expect(await db.selectFrom("llm_usage").select("id").execute()).toEqual([]);
  });
});
