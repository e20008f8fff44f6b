import { expect, it } from "vitest";

import {
  clearTrackingNote,
  createTask,
  currentTrackingNotes,
  findTaskByIssue,
  findTaskByPullRequest,
  loadTask,
  setTrackingNote,
  startNewRun,
  updateTask,
} from "../../../src/store/tasks.js";
import { insertTask } from "../../helpers/db.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

/** A GitHub comment id past 2^31 (ids that large exist): a `bigint` column on PostgreSQL. */
const BIG_COMMENT_ID = 2_712_345_678_901;

describeStoreContract("tasks", (getDb) => {
  it("creates a task and reads it back with the same types (epoch ms and large ids as numbers)", async () => {
    const db = getDb();
    const created = await createTask(db, {
      installation_id: 98_765_432_101,
      owner: "octo-org",
      repo: "octo-repo",
      issue_number: 7,
      run: 1,
      stage: "new",
      triggered_by: "octocat",
      clone_url: "https://github.com/octo-org/octo-repo.git",
      default_branch: "main",
      config: "{}",
      tracking_comment_id: BIG_COMMENT_ID,
      created_at: 1_800_000_000_123,
      updated_at: 1_800_000_000_123,
    });
    expect(created).toMatchObject({ id: expect.any(Number), run: 1, rework_cycles: 0, tracking_comment_id: BIG_COMMENT_ID, installation_id: 98_765_432_101 });
    expect(typeof created.created_at).toBe("number");
    expect(created.created_at).toBe(1_800_000_000_123);
    expect(await loadTask(db, created.id)).toEqual(created);
    expect(await findTaskByIssue(db, "octo-org", "octo-repo", 7)).toEqual(created);
    expect(await findTaskByIssue(db, "octo-org", "octo-repo", 8)).toBeUndefined();
  });

  it("one task per issue: a second insert for the same owner/repo/issue fails", async () => {
    const db = getDb();
    await insertTask(db, { issue_number: 4242 });
    await expect(insertTask(db, { issue_number: 4242 })).rejects.toThrow();
  });

  it("updateTask returns the row as updated; findTaskByPullRequest finds it by PR", async () => {
    const db = getDb();
    const id = await insertTask(db);
    const updated = await updateTask(db, id, { pr_number: 31, branch: "mc/x", plan_comment_id: BIG_COMMENT_ID });
    expect(updated).toMatchObject({ id, pr_number: 31, branch: "mc/x", plan_comment_id: BIG_COMMENT_ID });
    expect((await findTaskByPullRequest(db, "octo-org", "octo-repo", 31))?.id).toBe(id);
  });

  it("startNewRun increments run, resets every field of the last run and records the starter and snapshot", async () => {
    const db = getDb();
    const id = await insertTask(db, { triggered_by: "alice", triggered_by_id: 111, run: 2, started_at: 1_000, finished_at: 2_000 });
    await updateTask(db, id, {
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
    const task = await startNewRun(db, id, { login: "bob", id: 222 }, { issue_title: "New title", config: '{"a":1}' }, 1_800_000_005_000);
    expect(task).toMatchObject({
      run: 3,
      triggered_by: "bob",
      triggered_by_id: 222,
      started_at: 1_800_000_005_000,
      updated_at: 1_800_000_005_000,
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
      issue_title: "New title",
      config: '{"a":1}',
    });
    expect(await loadTask(db, id)).toEqual(task);
  });

  it("tracking notes: set, replace, insert-only, remove, in the order they were added", async () => {
    const db = getDb();
    const id = await insertTask(db);
    expect(await setTrackingNote(db, id, "b-note", "first")).toBe(true);
    expect(await setTrackingNote(db, id, "a-note", "second")).toBe(true);
    expect(await setTrackingNote(db, id, "b-note", "first")).toBe(false);
    expect(await setTrackingNote(db, id, "b-note", "changed")).toBe(true);
    expect(await setTrackingNote(db, id, "a-note", "ignored", { replace: false })).toBe(false);
    expect(Object.entries(await currentTrackingNotes(db, id))).toEqual([
      ["b-note", "changed"],
      ["a-note", "second"],
    ]);
    await clearTrackingNote(db, id, "b-note");
    await clearTrackingNote(db, id, "missing");
    expect(await currentTrackingNotes(db, id)).toEqual({ "a-note": "second" });
  });

  it("concurrent notes from two connections are all kept", async () => {
    const db = getDb();
    const id = await insertTask(db);
    const keys = Array.from({ length: 10 }, (_, i) => `note-${i}`);
    await Promise.all(keys.map((key) => setTrackingNote(db, id, key, key)));
    expect(Object.keys(await currentTrackingNotes(db, id)).sort()).toEqual([...keys].sort());
  });

  it("a note set inside a caller's transaction commits with it", async () => {
    const db = getDb();
    const id = await insertTask(db);
    await db.transaction().execute(async (trx) => {
      await setTrackingNote(trx, id, "in-trx", "yes");
    });
    expect(await currentTrackingNotes(db, id)).toEqual({ "in-trx": "yes" });
  });
});
