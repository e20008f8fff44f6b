import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { createAnthropic } from "../../../src/adapters/anthropic/client.js";
import { createMeteredLlm } from "../../../src/adapters/anthropic/metered-llm.js";
import { RepoBudgetConfig } from "../../../src/config/repo-config.js";
import { serverBudgetLimits } from "../../../src/config/env.js";
import { PriceTable } from "../../../src/domain/pricing.js";
import { spendReport } from "../../../src/store/budgets.js";
import { ANTHROPIC_TEST_URL, FakeAnthropic, text } from "../../helpers/anthropic-fake.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.js";

/** One second before midnight UTC, 2026-11-30 → 2026-12-01 (a day's, and a month's, end). */
const BEFORE_MIDNIGHT = Date.parse("2026-11-30T23:59:59.000Z");
const MIDNIGHT = Date.parse("2026-12-01T00:00:00.000Z");

let testDb: TestDatabase;
let anthropic: FakeAnthropic;

beforeEach(async () => {
  testDb = await createTestDatabase();
  anthropic = new FakeAnthropic().start();
});

afterEach(async () => {
  vi.restoreAllMocks();
  anthropic.stop();
  await testDb.cleanup();
});

describe("the metered client's ledger rows", () => {
  it("records a call's usage at its reservation's time, so a call answered after midnight UTC costs in the window its reservation was checked in", async () => {
    // The clock reads one second before midnight until the Messages API has the request (the
    // reservation is taken before it is sent), and half a second after midnight from then on.
    vi.spyOn(Date, "now").mockImplementation(() => (anthropic.requests.length === 0 ? BEFORE_MIDNIGHT : MIDNIGHT + 500));
    const limits = serverBudgetLimits({ BUDGET_GLOBAL_DAILY_USD: "100", BUDGET_REPOSITORY_MONTHLY_USD: "100" });
    const llm = createMeteredLlm(
      {
        db: testDb.db,
        anthropic: createAnthropic({ apiKey: "sk-ant-test-x", baseURL: ANTHROPIC_TEST_URL, maxRetries: 0, timeoutMs: 5000 }),
        prices: new PriceTable(),
        serverLimits: limits,
        pausedByOperator: false,
        log: pino({ level: "silent" }),
      },
      {
        installationId: 1,
        repository: "octo/widgets",
        subjectNumber: 7,
        taskId: 1,
        jobId: "1",
        agent: "architect",
        config: { budget: RepoBudgetConfig.parse({}) },
        onAlert: async () => {},
      },
    );
    anthropic.script("architect", { content: [text("A plan.")], usage: { input_tokens: 1000, output_tokens: 200 } });

    await llm.createMessage({
      model: "claude-sonnet-5-5",
      max_tokens: 1024,
      system: "You are the Architect.",
      messages: [{ role: "user", content: "Plan it." }],
    });

    const reservation = await testDb.db.selectFrom("budget_reservations").select(["created_at", "status"]).executeTakeFirstOrThrow();
    const usage = await testDb.db.selectFrom("llm_usage").select(["created_at", "cost_nano_usd"]).executeTakeFirstOrThrow();
    expect(reservation.status).toBe("settled");
    expect(reservation.created_at).toBeLessThan(MIDNIGHT);
    expect(Date.now()).toBeGreaterThan(MIDNIGHT);
    expect(usage.created_at).toBe(reservation.created_at);
    expect(usage.cost_nano_usd).toBeGreaterThan(0);
    // The new day's and month's windows start empty; the old ones hold the call.
    const subject = { installationId: 1, repository: "octo/widgets", agent: "architect", taskId: 1, subjectNumber: 7, jobId: "1" };
    const windowed = limits.filter((l) => l.period === "daily" || l.period === "monthly");
    expect(windowed).toHaveLength(2);
    const after = await spendReport(testDb.db, subject, windowed, MIDNIGHT + 1);
    expect(after.map((s) => s.spentNanoUsd)).toEqual([0, 0]);
    const before = await spendReport(testDb.db, subject, windowed, MIDNIGHT - 1);
    expect(before.map((s) => s.spentNanoUsd)).toEqual([usage.cost_nano_usd, usage.cost_nano_usd]);
  });
});
