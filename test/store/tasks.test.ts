import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { loadTask, startNewRun, updateTask } from "../../src/store/tasks.js";
import { createTestDatabase, insertTask, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;
beforeEach(async () => {
  t = await createTestDatabase();
});
afterEach(async () => {
  await t.cleanup();
});

describe("startNewRun (the one rule for a new run)", () => {
  it("pairs the new starter's login with their own id, and resets started_at and everything of the last run", async () => {
    const id = await insertTask(t.db, { triggered_by: "alice", triggered_by_id: 111, run: 2, started_at: 1_000, finished_at: 2_000 });
    await updateTask(t.db, id, {
      plan: "{}",
      branch: "mc/issue-1-x",
      pr_number: 9,
      pr_url: "https://x/pull/9",
      head_sha: "abc",
      review_url: "https://x/r",
      review_verdict: "approve",
      reviewed_sha: "abc",
      tests_conclusion: "success",
      failure_reason: "f",
      blocked_reason: "b",
      approved_by: "carol",
      plan_approved_by: "carol",
      rework_cycles: 2,
      tracking_notes: '{"issue-edited":"x"}',
    });
    const task = await startNewRun(t.db, id, { login: "bob", id: 222 }, {}, 5_000);
    expect(task).toMatchObject({
      run: 3,
      triggered_by: "bob",
      triggered_by_id: 222,
      started_at: 5_000,
      finished_at: null,
      plan: null,
      branch: null,
      pr_number: null,
      pr_url: null,
      head_sha: null,
      review_url: null,
      review_verdict: null,
      reviewed_sha: null,
      tests_conclusion: null,
      failure_reason: null,
      blocked_reason: null,
      approved_by: null,
      plan_approved_by: null,
      rework_cycles: 0,
      tracking_notes: null,
    });
    expect(await loadTask(t.db, id)).toEqual(task);
  });

  it("an unknown id is stored as null, never the previous starter's", async () => {
    const id = await insertTask(t.db, { triggered_by: "alice", triggered_by_id: 111 });
    const task = await startNewRun(t.db, id, { login: "bob", id: null });
    expect(task).toMatchObject({ triggered_by: "bob", triggered_by_id: null });
  });
});
