import { expect, it } from "vitest";

import type { BudgetLimit } from "../../../src/domain/budget-rules.js";
import type { TaskState } from "../../../src/domain/task-state.js";
import {
  agentStatistics,
  type AnalyticsFilter,
  budgetUse,
  cacheShare,
  costPerMergedPr,
  ledgerRows,
  spendOverTime,
  spendTotals,
} from "../../../src/store/analytics.js";
import { reserve } from "../../../src/store/budgets.js";
import type { Db } from "../../../src/store/db.js";
import { transition } from "../../../src/store/transitions.js";
import { recordUsage } from "../../../src/store/usage.js";
import { insertTask } from "../../helpers/db.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

/** Epoch ms of an ISO time (UTC). */
const at = (iso: string): number => Date.parse(iso);
const day = (iso: string): number => at(`${iso}T00:00:00.000Z`);

/** The window of most tests: the first quarter of 2026, `[2026-01-01, 2026-04-01)`. */
const W: AnalyticsFilter = { from: day("2026-01-01"), to: day("2026-04-01") };

/**
 * The generated ledger. Costs are distinct powers of two × 1,000 n$, so every sum below is a
 * sum of distinct terms that can be checked by eye (rows 1–11: 1,000 … 1,024,000; their total
 * is (2¹¹ − 1) × 1,000 = 2,047,000). Installation 11 owns acme/api and acme/web, 22 owns beta/app.
 *
 * | #  | time (UTC)               | inst | repository | agent     | model   | task | job   | in  | out | cw | cr  | n$        |
 * |----|--------------------------|------|------------|-----------|---------|------|-------|-----|-----|----|-----|-----------|
 * | 1  | 2026-01-30 10:00 (Fri)   | 11   | acme/api   | architect | m-large | T1   | job-1 | 100 | 10  | 20 | 0   | 1,000     |
 * | 2  | 2026-01-30 10:05         | 11   | acme/api   | architect | m-large | T1   | job-1 | 50  | 5   | 0  | 30  | 2,000     |
 * | 3  | 2026-01-31 09:00 (Sat)   | 11   | acme/api   | coder     | m-small | T1   | job-2 | 200 | 40  | 0  | 100 | 4,000     |
 * | 4  | 2026-02-01 23:59:59.999  | 11   | acme/web   | coder     | m-small | T2   | job-3 | 300 | 60  | 10 | 0   | 8,000     |
 * | 5  | 2026-02-02 00:00 (Mon)   | 11   | acme/web   | reviewer  | m-large | T2   | job-4 | 20  | 2   | 0  | 0   | 16,000    |
 * | 6  | 2026-02-02 12:00         | 22   | beta/app   | architect | m-large | T3   | job-5 | 10  | 1   | 0  | 50  | 32,000    |
 * | 7  | 2026-02-03 08:00 (Tue)   | 22   | beta/app   | coder     | m-small | T3   | job-6 | 400 | 80  | 40 | 200 | 64,000    |
 * | 8  | 2026-02-03 08:30         | 22   | beta/app   | coder     | m-small | T3   | job-6 | 100 | 20  | 0  | 300 | 128,000   |
 * | 9  | 2026-03-02 00:00 (Mon)   | 22   | beta/app   | reviewer  | m-large | T3   | job-7 | 30  | 3   | 0  | 0   | 256,000   |
 * | 10 | 2026-03-02 06:00         | 11   | acme/web   | coder     | m-large | T4   | job-8 | 60  | 6   | 0  | 0   | 512,000   |
 * | 11 | 2026-01-30 11:00         | 22   | beta/app   | reviewer  | m-small | —    | —     | 5   | 1   | 0  | 0   | 1,024,000 |
 * | 12 | 2025-12-31 23:59:59.999  | 11   | acme/api   | coder     | m-small | T1   | job-2 | 1   | 1   | 0  | 0   | 2,048,000 |
 * | 13 | 2026-04-01 00:00         | 22   | beta/app   | architect | m-small | —    | —     | 1   | 1   | 0  | 0   | 4,096,000 |
 *
 * Rows 12 and 13 lie just outside W. Tasks (state now, rework cycles): T1 acme/api merged on
 * 2026-02-05 (1), T2 acme/web failed (0), T3 beta/app merged on 2026-03-03 (2), T4 acme/web
 * coding (0), T5 acme/api merged on 2026-04-02 with no calls (0). A reservation of 100,000 n$
 * for beta/app (installation 22, architect, T3) is held on 2026-03-02 07:00.
 */
interface Ledger {
  T1: number;
  T2: number;
  T3: number;
  T4: number;
  T5: number;
}

async function seed(db: Db): Promise<Ledger> {
  const task = async (repository: string, installation: number, rework: number, path: Array<[TaskState, string]>): Promise<number> => {
    const [owner = "", repo = ""] = repository.split("/");
    const id = await insertTask(db, { installation_id: installation, owner, repo, stage: "new", rework_cycles: rework });
    for (const [state, when] of path) await transition(db, id, state, { reason: "test", actor: "mission-control", now: at(when) });
    return id;
  };
  const T1 = await task("acme/api", 11, 1, [
    ["planning", "2026-01-30T09:00:00Z"],
    ["coding", "2026-01-31T08:00:00Z"],
    ["reviewing", "2026-02-01T08:00:00Z"],
    ["ready_for_merge", "2026-02-04T08:00:00Z"],
    ["merged", "2026-02-05T08:00:00Z"],
  ]);
  const T2 = await task("acme/web", 11, 0, [
    ["planning", "2026-02-01T08:00:00Z"],
    ["coding", "2026-02-01T09:00:00Z"],
    ["reviewing", "2026-02-01T23:00:00Z"],
    ["failed", "2026-02-02T13:00:00Z"],
  ]);
  const T3 = await task("beta/app", 22, 2, [
    ["planning", "2026-02-02T11:00:00Z"],
    ["coding", "2026-02-03T07:00:00Z"],
    ["testing", "2026-02-03T09:00:00Z"],
    ["reviewing", "2026-02-03T10:00:00Z"],
    ["changes_requested", "2026-02-03T11:00:00Z"],
    ["coding", "2026-02-04T11:00:00Z"],
    ["reviewing", "2026-03-01T11:00:00Z"],
    ["ready_for_merge", "2026-03-02T11:00:00Z"],
    ["merged", "2026-03-03T11:00:00Z"],
  ]);
  const T4 = await task("acme/web", 11, 0, [
    ["planning", "2026-03-01T08:00:00Z"],
    ["coding", "2026-03-02T05:00:00Z"],
  ]);
  const T5 = await task("acme/api", 11, 0, [
    ["planning", "2026-03-30T08:00:00Z"],
    ["coding", "2026-03-31T08:00:00Z"],
    ["merged", "2026-04-02T08:00:00Z"],
  ]);

  type Row = [string, number, string, string, string, number | null, string | null, number, number, number, number, number];
  const rows: Row[] = [
    ["2026-01-30T10:00:00.000Z", 11, "acme/api", "architect", "m-large", T1, "job-1", 100, 10, 20, 0, 1_000],
    ["2026-01-30T10:05:00.000Z", 11, "acme/api", "architect", "m-large", T1, "job-1", 50, 5, 0, 30, 2_000],
    ["2026-01-31T09:00:00.000Z", 11, "acme/api", "coder", "m-small", T1, "job-2", 200, 40, 0, 100, 4_000],
    ["2026-02-01T23:59:59.999Z", 11, "acme/web", "coder", "m-small", T2, "job-3", 300, 60, 10, 0, 8_000],
    ["2026-02-02T00:00:00.000Z", 11, "acme/web", "reviewer", "m-large", T2, "job-4", 20, 2, 0, 0, 16_000],
    ["2026-02-02T12:00:00.000Z", 22, "beta/app", "architect", "m-large", T3, "job-5", 10, 1, 0, 50, 32_000],
    ["2026-02-03T08:00:00.000Z", 22, "beta/app", "coder", "m-small", T3, "job-6", 400, 80, 40, 200, 64_000],
    ["2026-02-03T08:30:00.000Z", 22, "beta/app", "coder", "m-small", T3, "job-6", 100, 20, 0, 300, 128_000],
    ["2026-03-02T00:00:00.000Z", 22, "beta/app", "reviewer", "m-large", T3, "job-7", 30, 3, 0, 0, 256_000],
    ["2026-03-02T06:00:00.000Z", 11, "acme/web", "coder", "m-large", T4, "job-8", 60, 6, 0, 0, 512_000],
    ["2026-01-30T11:00:00.000Z", 22, "beta/app", "reviewer", "m-small", null, null, 5, 1, 0, 0, 1_024_000],
    ["2025-12-31T23:59:59.999Z", 11, "acme/api", "coder", "m-small", T1, "job-2", 1, 1, 0, 0, 2_048_000],
    ["2026-04-01T00:00:00.000Z", 22, "beta/app", "architect", "m-small", null, null, 1, 1, 0, 0, 4_096_000],
  ];
  let n = 0;
  for (const [time, installation, repository, agent, model, taskId, jobId, input, output, cw, cr, cost] of rows) {
    n += 1;
    await recordUsage(db, {
      created_at: at(time),
      installation_id: installation,
      repository,
      subject_number: 1,
      task_id: taskId,
      job_id: jobId,
      agent,
      model,
      input_tokens: input,
      output_tokens: output,
      cache_creation_input_tokens: cw,
      cache_read_input_tokens: cr,
      cost_nano_usd: cost,
      request_id: `req_${n}`,
    });
  }
  await reserve(db, {
    subject: { installationId: 22, repository: "beta/app", agent: "architect", taskId: T3, subjectNumber: 1, jobId: null },
    limits: [],
    amountNanoUsd: 100_000,
    now: at("2026-03-02T07:00:00Z"),
  });
  return { T1, T2, T3, T4, T5 };
}

/** [bucket start as ISO date, key, calls, n$] of each row. */
const series = (rows: Array<{ bucket_start: number; key: string | null; calls: number; cost_nano_usd: number }>) =>
  rows.map((r) => [new Date(r.bucket_start).toISOString().slice(0, 10), r.key, r.calls, r.cost_nano_usd]);
/** [key, calls, n$] of each row. */
const totals = (rows: Array<{ key: string | null; calls: number; cost_nano_usd: number }>) => rows.map((r) => [r.key, r.calls, r.cost_nano_usd]);

describeStoreContract("spend analytics", (getDb) => {
  it("sums spend and every kind of token over the window, [from, to) to the millisecond", async () => {
    const db = getDb();
    await seed(db);
    // Rows 1–11. input 100+50+200+300+20+10+400+100+30+60+5 = 1275; output 10+5+40+60+2+1+80+20+3+6+1 = 228;
    // cache write 20+10+40 = 70; cache read 30+100+50+200+300 = 680; n$ 2,047,000.
    expect(await spendTotals(db, W, "none")).toEqual([
      { key: null, calls: 11, input_tokens: 1275, output_tokens: 228, cache_creation_input_tokens: 70, cache_read_input_tokens: 680, cost_nano_usd: 2_047_000 },
    ]);
    // One millisecond wider on each side takes in rows 12 and 13: 2,047,000 + 2,048,000 + 4,096,000.
    const wider = { from: at("2025-12-31T23:59:59.999Z"), to: at("2026-04-01T00:00:00.001Z") };
    expect(totals(await spendTotals(db, wider, "none"))).toEqual([[null, 13, 8_191_000]]);
  });

  it("buckets by UTC day, by week starting Monday and by calendar month", async () => {
    const db = getDb();
    await seed(db);
    // Days: Jan 30 = rows 1, 2, 11; Feb 1 = row 4 (23:59:59.999 stays in its day); Feb 2 = rows 5, 6; Feb 3 = 7, 8; Mar 2 = 9, 10.
    expect(series(await spendOverTime(db, W, "day", "none"))).toEqual([
      ["2026-01-30", null, 3, 1_027_000],
      ["2026-01-31", null, 1, 4_000],
      ["2026-02-01", null, 1, 8_000],
      ["2026-02-02", null, 2, 48_000],
      ["2026-02-03", null, 2, 192_000],
      ["2026-03-02", null, 2, 768_000],
    ]);
    // Weeks: Mon Jan 26 = rows 1, 2, 3, 4, 11 (Sunday Feb 1 included); Mon Feb 2 = rows 5–8 (Monday 00:00 starts it); Mon Mar 2 = 9, 10.
    expect(series(await spendOverTime(db, W, "week", "none"))).toEqual([
      ["2026-01-26", null, 5, 1_039_000],
      ["2026-02-02", null, 4, 240_000],
      ["2026-03-02", null, 2, 768_000],
    ]);
    // Months: January = rows 1, 2, 3, 11; February = 4–8; March = 9, 10.
    expect(series(await spendOverTime(db, W, "month", "none"))).toEqual([
      ["2026-01-01", null, 4, 1_031_000],
      ["2026-02-01", null, 5, 248_000],
      ["2026-03-01", null, 2, 768_000],
    ]);
  });

  it("splits buckets by group, ordered by bucket then key", async () => {
    const db = getDb();
    await seed(db);
    expect(series(await spendOverTime(db, W, "week", "agent"))).toEqual([
      ["2026-01-26", "architect", 2, 3_000],
      ["2026-01-26", "coder", 2, 12_000],
      ["2026-01-26", "reviewer", 1, 1_024_000],
      ["2026-02-02", "architect", 1, 32_000],
      ["2026-02-02", "coder", 2, 192_000],
      ["2026-02-02", "reviewer", 1, 16_000],
      ["2026-03-02", "coder", 1, 512_000],
      ["2026-03-02", "reviewer", 1, 256_000],
    ]);
    expect(series(await spendOverTime(db, W, "month", "repository"))).toEqual([
      ["2026-01-01", "acme/api", 3, 7_000],
      ["2026-01-01", "beta/app", 1, 1_024_000],
      ["2026-02-01", "acme/web", 2, 24_000],
      ["2026-02-01", "beta/app", 3, 224_000],
      ["2026-03-01", "acme/web", 1, 512_000],
      ["2026-03-01", "beta/app", 1, 256_000],
    ]);
    const days = await spendOverTime(db, W, "day", "installation");
    expect(series(days)).toEqual([
      ["2026-01-30", "11", 2, 3_000],
      ["2026-01-30", "22", 1, 1_024_000],
      ["2026-01-31", "11", 1, 4_000],
      ["2026-02-01", "11", 1, 8_000],
      ["2026-02-02", "11", 1, 16_000],
      ["2026-02-02", "22", 1, 32_000],
      ["2026-02-03", "22", 2, 192_000],
      ["2026-03-02", "11", 1, 512_000],
      ["2026-03-02", "22", 1, 256_000],
    ]);
    // Row 7 + row 8 tokens, on Feb 3, installation 22.
    expect(days[6]).toEqual({
      bucket_start: day("2026-02-03"),
      key: "22",
      calls: 2,
      input_tokens: 500,
      output_tokens: 100,
      cache_creation_input_tokens: 40,
      cache_read_input_tokens: 500,
      cost_nano_usd: 192_000,
    });
  });

  it("totals each group, highest cost first", async () => {
    const db = getDb();
    const { T1, T2, T3, T4 } = await seed(db);
    // 22: rows 6, 7, 8, 9, 11 = 32,000+64,000+128,000+256,000+1,024,000; 11: rows 1–5, 10 = 1,000+2,000+4,000+8,000+16,000+512,000.
    expect(totals(await spendTotals(db, W, "installation"))).toEqual([
      ["22", 5, 1_504_000],
      ["11", 6, 543_000],
    ]);
    expect(totals(await spendTotals(db, W, "repository"))).toEqual([
      ["beta/app", 5, 1_504_000],
      ["acme/web", 3, 536_000],
      ["acme/api", 3, 7_000],
    ]);
    // reviewer: rows 5, 9, 11; coder: 3, 4, 7, 8, 10; architect: 1, 2, 6.
    expect(totals(await spendTotals(db, W, "agent"))).toEqual([
      ["reviewer", 3, 1_296_000],
      ["coder", 5, 716_000],
      ["architect", 3, 35_000],
    ]);
    // m-small: rows 3, 4, 7, 8, 11; m-large: 1, 2, 5, 6, 9, 10.
    expect(totals(await spendTotals(db, W, "model"))).toEqual([
      ["m-small", 5, 1_228_000],
      ["m-large", 6, 819_000],
    ]);
    expect(totals(await spendTotals(db, W, "task"))).toEqual([
      [null, 1, 1_024_000],
      [String(T4), 1, 512_000],
      [String(T3), 4, 480_000],
      [String(T2), 2, 24_000],
      [String(T1), 3, 7_000],
    ]);
  });

  it("filters by installation list, repository list, agent and model; an empty list selects nothing", async () => {
    const db = getDb();
    await seed(db);
    expect(totals(await spendTotals(db, { ...W, installationIds: [22] }, "none"))).toEqual([[null, 5, 1_504_000]]);
    expect(totals(await spendTotals(db, { ...W, repositories: ["acme/api", "acme/web"] }, "repository"))).toEqual([
      ["acme/web", 3, 536_000],
      ["acme/api", 3, 7_000],
    ]);
    // coder on m-small: rows 3, 4, 7, 8.
    expect(totals(await spendTotals(db, { ...W, agent: "coder", model: "m-small" }, "none"))).toEqual([[null, 4, 204_000]]);
    // Installation 11 has no beta/app rows.
    expect(totals(await spendTotals(db, { ...W, installationIds: [11], repositories: ["beta/app"] }, "none"))).toEqual([[null, 0, 0]]);
    expect(await spendOverTime(db, { ...W, installationIds: [] }, "day", "none")).toEqual([]);
    expect(await spendOverTime(db, { ...W, repositories: [] }, "week", "repository")).toEqual([]);
    expect(await spendTotals(db, { ...W, installationIds: [] }, "agent")).toEqual([]);
    expect(totals(await spendTotals(db, { ...W, repositories: [] }, "none"))).toEqual([[null, 0, 0]]);
    expect(await agentStatistics(db, { ...W, installationIds: [] })).toEqual([]);
    expect(await ledgerRows(db, { ...W, repositories: [] })).toEqual([]);
    expect((await cacheShare(db, { ...W, installationIds: [] })).share).toBe(0);
  });

  it("reports the share of input tokens read from the prompt cache", async () => {
    const db = getDb();
    await seed(db);
    // 680 / (1275 + 70 + 680) = 680 / 2025.
    const share = await cacheShare(db, W);
    expect(share).toMatchObject({ input_tokens: 1275, cache_creation_input_tokens: 70, cache_read_input_tokens: 680 });
    expect(share.share).toBeCloseTo(680 / 2025, 12);
    // beta/app: input 10+400+100+30+5 = 545, write 40, read 50+200+300 = 550.
    const beta = await cacheShare(db, { ...W, repositories: ["beta/app"] });
    expect(beta.share).toBeCloseTo(550 / 1135, 12);
    expect(await cacheShare(db, { from: day("2020-01-01"), to: day("2020-02-01") })).toEqual({
      input_tokens: 0,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      share: 0,
    });
  });

  it("costs each pull request merged in the window with its task's whole spend", async () => {
    const db = getDb();
    await seed(db);
    // Merged in W: T1 (Feb 5) and T3 (Mar 3); T5 is merged on Apr 2. T1 = rows 1, 2, 3 and 12 (before W) = 2,055,000; T3 = rows 6–9 = 480,000.
    expect(await costPerMergedPr(db, W)).toEqual({ merged_prs: 2, cost_nano_usd: 2_535_000, per_pr_nano_usd: 1_267_500 });
    // February: T1 only.
    expect(await costPerMergedPr(db, { from: day("2026-02-01"), to: day("2026-03-01") })).toEqual({
      merged_prs: 1,
      cost_nano_usd: 2_055_000,
      per_pr_nano_usd: 2_055_000,
    });
    // The coder's part: T1 rows 3, 12 = 2,052,000; T3 rows 7, 8 = 192,000.
    expect(await costPerMergedPr(db, { ...W, agent: "coder" })).toEqual({ merged_prs: 2, cost_nano_usd: 2_244_000, per_pr_nano_usd: 1_122_000 });
    expect(await costPerMergedPr(db, { ...W, installationIds: [22] })).toEqual({ merged_prs: 1, cost_nano_usd: 480_000, per_pr_nano_usd: 480_000 });
    expect(await costPerMergedPr(db, { ...W, repositories: ["acme/web"] })).toEqual({ merged_prs: 0, cost_nano_usd: 0, per_pr_nano_usd: null });
    // Up to Apr 3: T5 too, with no spend. 2,535,000 / 3 = 845,000.
    expect(await costPerMergedPr(db, { from: W.from, to: day("2026-04-03") })).toEqual({ merged_prs: 3, cost_nano_usd: 2_535_000, per_pr_nano_usd: 845_000 });
    expect(await costPerMergedPr(db, { ...W, repositories: [] })).toEqual({ merged_prs: 0, cost_nano_usd: 0, per_pr_nano_usd: null });
  });

  it("computes statistics per agent role from the ledger and the tasks", async () => {
    const db = getDb();
    await seed(db);
    // architect: jobs 1 (rows 1, 2: 5 min apart) and 5; tasks T1 (merged, 1 rework) and T3 (merged, 2).
    // coder: jobs 2 (row 12 is outside W), 3, 6 (rows 7, 8: 30 min apart), 8; tasks T1, T2 (failed), T3, T4 (coding: no outcome).
    // reviewer: jobs 4 and 7 (row 11 has no job); tasks T2 and T3.
    expect(await agentStatistics(db, W)).toEqual([
      {
        agent: "architect",
        runs: 2,
        calls: 3,
        tasks: 2,
        succeeded_tasks: 2,
        failed_tasks: 0,
        success_rate: 1,
        rework_cycles: 3,
        cost_nano_usd: 35_000,
        avg_cost_nano_usd: 17_500,
        avg_duration_ms: 150_000,
      },
      {
        agent: "coder",
        runs: 4,
        calls: 5,
        tasks: 4,
        succeeded_tasks: 2,
        failed_tasks: 1,
        success_rate: 2 / 3,
        rework_cycles: 3,
        cost_nano_usd: 716_000,
        avg_cost_nano_usd: 179_000,
        avg_duration_ms: 450_000,
      },
      {
        agent: "reviewer",
        runs: 2,
        calls: 3,
        tasks: 2,
        succeeded_tasks: 1,
        failed_tasks: 1,
        success_rate: 0.5,
        rework_cycles: 2,
        cost_nano_usd: 1_296_000,
        avg_cost_nano_usd: 648_000,
        avg_duration_ms: 0,
      },
    ]);
    // acme/web only: coder jobs 3 and 8 (T2 failed, T4 open), reviewer job 4 (T2).
    expect((await agentStatistics(db, { ...W, repositories: ["acme/web"] })).map((s) => [s.agent, s.runs, s.tasks, s.success_rate, s.cost_nano_usd])).toEqual([
      ["coder", 2, 2, 0, 520_000],
      ["reviewer", 1, 1, 0, 16_000],
    ]);
  });

  it("reports budget use for each limit in its current window, within the user's installations", async () => {
    const db = getDb();
    const { T4 } = await seed(db);
    const limit = (l: Partial<BudgetLimit>): BudgetLimit => ({
      scope: "global",
      period: "monthly",
      limitNanoUsd: 10_000_000,
      threshold: 0.8,
      action: "block",
      source: "server",
      ...l,
    });
    const limits = [
      limit({}),
      limit({ scope: "installation", limitNanoUsd: 1_000_000 }),
      limit({ scope: "repository", limitNanoUsd: 600_000 }),
      limit({ scope: "agent", agent: "coder", limitNanoUsd: 1_000_000 }),
      limit({ scope: "task", period: "total", limitNanoUsd: 500_000 }),
    ];
    const now = at("2026-03-02T12:00:00Z");
    const view = (rows: Awaited<ReturnType<typeof budgetUse>>) => rows.map((s) => [s.limit.scope, s.scopeKey, s.usageNanoUsd, s.heldNanoUsd, s.spentNanoUsd]);
    // March: row 9 (22, beta/app, 256,000), row 10 (11, acme/web, coder, T4, 512,000), held 100,000 (22, beta/app).
    // Task limit: T4 is the only task in progress; its whole spend is row 10.
    const all = await budgetUse(db, { limits, now });
    expect(view(all)).toEqual([
      ["global", "*", 768_000, 100_000, 868_000],
      ["installation", "11", 512_000, 0, 512_000],
      ["installation", "22", 256_000, 100_000, 356_000],
      ["repository", "acme/web", 512_000, 0, 512_000],
      ["repository", "beta/app", 256_000, 100_000, 356_000],
      ["agent", "coder", 512_000, 0, 512_000],
      ["task", String(T4), 512_000, 0, 512_000],
    ]);
    expect(all[0]).toMatchObject({ windowStart: day("2026-03-01"), resetsAt: day("2026-04-01"), remainingNanoUsd: 9_132_000 });
    expect(all[6]).toMatchObject({ remainingNanoUsd: 0, resetsAt: null });
    expect(all[6]?.percent).toBeCloseTo(102.4, 9);
    // A user of installation 22 sees neither the cross-installation limits nor installation 11.
    expect(view(await budgetUse(db, { limits, now, installationIds: [22] }))).toEqual([
      ["installation", "22", 256_000, 100_000, 356_000],
      ["repository", "beta/app", 256_000, 100_000, 356_000],
    ]);
    expect(await budgetUse(db, { limits, now, installationIds: [] })).toEqual([]);
    expect(view(await budgetUse(db, { limits: [limits[2] as BudgetLimit], now, repositories: ["acme/api"] }))).toEqual([["repository", "acme/api", 0, 0, 0]]);
  });

  it("pages through the ledger rows by id", async () => {
    const db = getDb();
    await seed(db);
    const ids: string[][] = [];
    let afterId: number | undefined;
    for (;;) {
      const page = await ledgerRows(db, W, { limit: 4, afterId });
      if (page.length === 0) break;
      ids.push(page.map((r) => r.request_id ?? ""));
      afterId = page.at(-1)?.id;
    }
    expect(ids).toEqual([
      ["req_1", "req_2", "req_3", "req_4"],
      ["req_5", "req_6", "req_7", "req_8"],
      ["req_9", "req_10", "req_11"],
    ]);
    const coder = await ledgerRows(db, { ...W, agent: "coder" }, { limit: 2 });
    expect(coder.map((r) => r.request_id)).toEqual(["req_3", "req_4"]);
    expect(coder[0]).toMatchObject({
      installation_id: 11,
      repository: "acme/api",
      cost_nano_usd: 4_000,
      cache_read_input_tokens: 100,
      created_at: at("2026-01-31T09:00:00Z"),
    });
    await expect(ledgerRows(db, W, { limit: 0 })).rejects.toThrow(RangeError);
  });
});
