import { afterEach, beforeEach, describe, expect, it } from "vitest";

import type { Db } from "../../src/store/db.js";
import type { NewLlmUsage } from "../../src/store/schema.js";
import { recordUsage, usageTotalsForTask } from "../../src/store/usage.js";
import { createTestDatabase, insertTask, type TestDatabase, usageRow } from "../helpers/db.js";

let testDb: TestDatabase;
let db: Db;

beforeEach(async () => {
  testDb = await createTestDatabase();
  db = testDb.db;
});

afterEach(async () => {
  await testDb.cleanup();
});

function usage(overrides: Partial<NewLlmUsage>): NewLlmUsage {
  return usageRow({ ...overrides });
}

describe("usage ledger", () => {
  it("sums exactly the rows of one task", async () => {
    const taskA = await insertTask(db);
    const taskB = await insertTask(db);
    await recordUsage(
      db,
      usage({
        task_id: taskA,
        input_tokens: 1_200,
        output_tokens: 340,
        cache_creation_input_tokens: 5_000,
        cache_read_input_tokens: 0,
        cost_nano_usd: 18_100_000, // $0.0181
        request_id: "req_1",
      }),
    );
    await recordUsage(
      db,
      usage({
        task_id: taskA,
        agent: "coder",
        input_tokens: 800,
        output_tokens: 2_000,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 5_000,
        cost_nano_usd: 22_600_000, // $0.0226
        request_id: "req_2",
      }),
    );
    await recordUsage(
      db,
      usage({
        task_id: taskB,
        input_tokens: 999_999,
        output_tokens: 888_888,
        cache_creation_input_tokens: 77_777,
        cache_read_input_tokens: 66_666,
        cost_nano_usd: 10_500_000_000,
      }),
    );

    const totals = await usageTotalsForTask(db, taskA);
    expect(totals).toEqual({
      calls: 2,
      input_tokens: 2_000,
      output_tokens: 2_340,
      cache_creation_input_tokens: 5_000,
      cache_read_input_tokens: 5_000,
      cost_nano_usd: 40_700_000, // exactly; 0.0181 + 0.0226 is 0.040699999999999996 in floats
    });
    for (const value of Object.values(totals)) expect(typeof value).toBe("number");

    expect(await usageTotalsForTask(db, taskB)).toEqual({
      calls: 1,
      input_tokens: 999_999,
      output_tokens: 888_888,
      cache_creation_input_tokens: 77_777,
      cache_read_input_tokens: 66_666,
      cost_nano_usd: 10_500_000_000,
    });
  });

  it("answers zeros for a task without usage", async () => {
    expect(await usageTotalsForTask(db, 12345)).toEqual({
      calls: 0,
      input_tokens: 0,
      output_tokens: 0,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cost_nano_usd: 0,
    });
  });

  it("stores every field of a row", async () => {
    const taskId = await insertTask(db);
    await recordUsage(db, usage({ task_id: taskId, job_id: "3", input_tokens: 10, output_tokens: 20, cost_nano_usd: 220_000, request_id: "req_abc" }));
    const rows = await db.selectFrom("llm_usage").selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      task_id: taskId,
      job_id: 3,
      agent: "architect",
      model: "claude-sonnet-5-5",
      request_id: "req_abc",
      cost_nano_usd: 220_000,
    });
  });

  it("rejects a negative or fractional cost (recordUsage, and the CHECK constraints behind it) and stores nothing", async () => {
    const taskId = await insertTask(db);
    await expect(recordUsage(db, usage({ task_id: taskId, cost_nano_usd: -1 }))).rejects.toBeInstanceOf(RangeError);
    await expect(recordUsage(db, usage({ task_id: taskId, cost_nano_usd: 0.5 }))).rejects.toBeInstanceOf(RangeError);
    // Past the store's own check, the table refuses them too (SQLite would otherwise keep 0.5 as REAL).
    await expect(
      db
        .insertInto("llm_usage")
        .values(usage({ task_id: taskId, cost_nano_usd: -1 }))
        .execute(),
    ).rejects.toThrow(/CHECK constraint/i);
    await expect(
      db
        .insertInto("llm_usage")
        .values(usage({ task_id: taskId, cost_nano_usd: 0.5 }))
        .execute(),
    ).rejects.toThrow(/CHECK constraint/i);
    const rows = await db.selectFrom("llm_usage").selectAll().execute();
    expect(rows).toHaveLength(0);
    // Zero is allowed.
    await recordUsage(db, usage({ task_id: taskId, cost_nano_usd: 0 }));
    expect((await usageTotalsForTask(db, taskId)).calls).toBe(1);
  });
});
