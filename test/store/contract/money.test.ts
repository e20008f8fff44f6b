import { expect, it } from "vitest";

import type { BudgetLimit, BudgetSubject } from "../../../src/domain/budget-rules.js";
import { BudgetExceededError } from "../../../src/domain/errors.js";
import { formatNanoUsd, usdToNano } from "../../../src/domain/money.js";
import { PriceTable } from "../../../src/domain/pricing.js";
import { reserve, spendReport } from "../../../src/store/budgets.js";
import type { NewLlmUsage } from "../../../src/store/schema.js";
import { recordUsage, spendByAgentAndModel, usageByAgentModelRepository, usageTotalsForTask } from "../../../src/store/usage.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

/** Saturday 2026-11-21, mid-day UTC. */
const T = Date.parse("2026-11-21T12:00:00Z");
const TASK = 7;

/** A model whose cache reads cost $0.03 per million tokens (30 n$ per token). */
const prices = new PriceTable(JSON.stringify({ "cheap-model": { input: 0.1, output: 0.2, cache_write_5m: 0.125, cache_write_1h: 0.2, cache_read: 0.03 } }));

function subject(): BudgetSubject {
  return { installationId: 1, repository: "octo/widgets", agent: "coder", taskId: TASK, subjectNumber: 7, jobId: null };
}

function limit(overrides: Partial<BudgetLimit>): BudgetLimit {
  return { scope: "task", period: "total", limitNanoUsd: usdToNano("1"), threshold: 0.8, action: "block", source: "server", ...overrides };
}

function row(costNanoUsd: number, overrides: Partial<NewLlmUsage> = {}): NewLlmUsage {
  return {
    created_at: T,
    installation_id: 1,
    repository: "octo/widgets",
    subject_number: 7,
    task_id: TASK,
    job_id: null,
    agent: "coder",
    model: "cheap-model",
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cost_nano_usd: costNanoUsd,
    request_id: null,
    ...overrides,
  };
}

/** Records a call of `model` with these tokens, priced by the table (as the metered client does). */
async function recordCall(db: Parameters<typeof recordUsage>[0], tokens: { input?: number; output?: number; cacheRead?: number }): Promise<void> {
  const usage = { input_tokens: tokens.input ?? 0, output_tokens: tokens.output ?? 0, cache_read_input_tokens: tokens.cacheRead ?? 0 };
  await recordUsage(db, row(prices.costNanoUsd("cheap-model", usage), usage));
}

describeStoreContract("money is exact", (getDb) => {
  it("1,000,000 cache-read tokens at $0.03/MTok, called 1 token at a time, sum to exactly $0.03 (floats drift)", async () => {
    const db = getDb();
    // What float USD would have stored: 3e-8 per call, summed a million times.
    let floatSum = 0;
    for (let i = 0; i < 1_000_000; i += 1) floatSum += (1 * 0.03) / 1_000_000;
    expect(floatSum).not.toBe(0.03);

    // The same million tokens as a few big rows and a few 1-token calls (30 n$ each).
    await recordCall(db, { cacheRead: 400_000 });
    await recordCall(db, { cacheRead: 333_333 });
    await recordCall(db, { cacheRead: 266_664 });
    for (let i = 0; i < 3; i += 1) await recordCall(db, { cacheRead: 1 });

    const totals = await usageTotalsForTask(db, TASK);
    expect(totals).toMatchObject({ calls: 6, cache_read_input_tokens: 1_000_000, cost_nano_usd: 30_000_000 });
    expect(formatNanoUsd(totals.cost_nano_usd)).toBe("$0.0300");
    expect((await spendByAgentAndModel(db, TASK)).map((r) => r.cost_nano_usd)).toEqual([30_000_000]);
    expect((await usageByAgentModelRepository(db)).map((r) => r.nano_usd)).toEqual([30_000_000]);
    const [status] = await spendReport(db, subject(), [limit({ limitNanoUsd: usdToNano("0.03") })], T);
    expect(status).toMatchObject({ spentNanoUsd: 30_000_000, usageNanoUsd: 30_000_000, heldNanoUsd: 0, remainingNanoUsd: 0, percent: 100 });
  });

  it("$0.1 + $0.2 is exactly $0.3 in the ledger, the reservations and the spend", async () => {
    const db = getDb();
    expect(0.1 + 0.2).not.toBe(0.3);
    await recordCall(db, { input: 1_000_000 }); // $0.1
    await recordCall(db, { output: 1_000_000 }); // $0.2
    expect((await usageTotalsForTask(db, TASK)).cost_nano_usd).toBe(300_000_000);

    const big = limit({ limitNanoUsd: usdToNano("10") });
    await reserve(db, { subject: subject(), limits: [big], amountNanoUsd: usdToNano("0.1"), now: T });
    await reserve(db, { subject: subject(), limits: [big], amountNanoUsd: usdToNano("0.2"), now: T });
    const [status] = await spendReport(db, subject(), [big], T);
    expect(status).toMatchObject({ usageNanoUsd: 300_000_000, heldNanoUsd: 300_000_000, spentNanoUsd: 600_000_000 });
  });

  it("a limit exactly equal to spend is reached, not under: the call that lands on it is granted, one nano-dollar more is refused", async () => {
    const db = getDb();
    await recordUsage(db, row(usdToNano("0.1")));
    await recordUsage(db, row(usdToNano("0.2")));
    const block = limit({ limitNanoUsd: usdToNano("0.6"), threshold: 0.5 });
    const warn = limit({ limitNanoUsd: usdToNano("0.6"), threshold: 0.5, action: "warn" });

    // $0.3 spent + $0.3 requested = exactly the $0.6 limit: granted; the 50 % threshold is reached exactly.
    const landing = await reserve(db, { subject: subject(), limits: [block, warn], amountNanoUsd: usdToNano("0.3"), now: T });
    expect(landing.alerts.map((a) => [a.limit.action, a.kind, a.spentNanoUsd, a.percent])).toEqual([
      ["block", "threshold", 600_000_000, 100],
      ["warn", "threshold", 600_000_000, 100],
    ]); // at the limit, not over it: no "exceeded"
    const [status] = await spendReport(db, subject(), [block], T);
    expect(status).toMatchObject({ spentNanoUsd: 600_000_000, limitNanoUsd: 600_000_000, remainingNanoUsd: 0, percent: 100 });

    // Reached: nothing more fits, not even one nano-dollar; a free call still does.
    const refused = await reserve(db, { subject: subject(), limits: [block], amountNanoUsd: 1, now: T }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BudgetExceededError);
    expect(refused).toMatchObject({ spentNanoUsd: 600_000_000, requestedNanoUsd: 1 });
    await expect(reserve(db, { subject: subject(), limits: [block], amountNanoUsd: 0, now: T })).resolves.toMatchObject({ amountNanoUsd: 0 });
    // A warn limit one nano-dollar over says so.
    const over = await reserve(db, { subject: subject(), limits: [warn], amountNanoUsd: 1, now: T });
    expect(over.alerts.map((a) => [a.kind, a.spentNanoUsd])).toEqual([["exceeded", 600_000_001]]);
  });

  it("a threshold is compared exactly: 80 % of $0.3 is reached at $0.24 (0.8 × 0.3 is 0.24000000000000002 in floats)", async () => {
    const db = getDb();
    const l = limit({ limitNanoUsd: usdToNano("0.3"), threshold: 0.8 });
    const below = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: usdToNano("0.24") - 1, now: T });
    expect(below.alerts).toEqual([]);
    const at = await reserve(db, { subject: subject(), limits: [l], amountNanoUsd: 1, now: T });
    expect(at.alerts.map((a) => [a.kind, a.spentNanoUsd])).toEqual([["threshold", 240_000_000]]);
  });

  it("sums past 32 bits are exact, and a sum past 2^53 n$ is refused rather than rounded", async () => {
    const db = getDb();
    await recordUsage(db, row(4_000_000_000_000)); // $4,000
    await recordUsage(db, row(4_000_000_000_001));
    expect((await usageTotalsForTask(db, TASK)).cost_nano_usd).toBe(8_000_000_000_001);

    await recordUsage(db, row(2 ** 52, { task_id: TASK + 1 }));
    await recordUsage(db, row(2 ** 52, { task_id: TASK + 1 }));
    await expect(usageTotalsForTask(db, TASK + 1)).rejects.toThrow(RangeError);
  });
});
