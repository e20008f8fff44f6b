import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { IllegalTransitionError } from "../../src/domain/errors.js";
import { canTransition, TASK_STATES, TRANSITIONS } from "../../src/domain/task-state.js";
import { transition, transitionsOf } from "../../src/store/transitions.js";
import { createTestDatabase, insertTask, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;

beforeEach(async () => {
  t = await createTestDatabase();
});

afterEach(async () => {
  await t.cleanup();
});

describe("the lifecycle state machine", () => {
  it("records each legal transition with from, to, reason, actor and time, and mirrors it on the task", async () => {
    const id = await insertTask(t.db, { stage: "new" });
    await transition(t.db, id, "planning", { reason: "labelled", actor: "maintainer", now: 1_000 });
    const task = await transition(t.db, id, "coding", { reason: "plan posted", actor: "mission-control", now: 2_000 });
    expect(task.stage).toBe("coding");
    const rows = await transitionsOf(t.db, id);
    expect(rows.map((r) => ({ from: r.from_state, to: r.to_state, reason: r.reason, actor: r.actor, at: r.created_at }))).toEqual([
      { from: null, to: "planning", reason: "labelled", actor: "maintainer", at: 1_000 },
      { from: "planning", to: "coding", reason: "plan posted", actor: "mission-control", at: 2_000 },
    ]);
  });

  it("rejects an illegal transition and writes nothing", async () => {
    const id = await insertTask(t.db, { stage: "new" });
    await transition(t.db, id, "planning", { reason: "labelled", actor: "maintainer" });
    const error = await transition(t.db, id, "merged", { reason: "?", actor: "x" }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(IllegalTransitionError);
    expect(error).toMatchObject({ code: "illegal_transition", from: "planning", to: "merged" });
    const task = await t.db.selectFrom("tasks").select("stage").where("id", "=", id).executeTakeFirstOrThrow();
    expect(task.stage).toBe("planning");
    expect(await transitionsOf(t.db, id)).toHaveLength(1);
  });

  it("treats a move to the current state as a no-op", async () => {
    const id = await insertTask(t.db, { stage: "new" });
    await transition(t.db, id, "planning", { reason: "a", actor: "x" });
    await transition(t.db, id, "planning", { reason: "b", actor: "x" });
    expect(await transitionsOf(t.db, id)).toHaveLength(1);
  });

  it("stamps finished_at on resting states and clears it when work resumes", async () => {
    const id = await insertTask(t.db, { stage: "new" });
    await transition(t.db, id, "planning", { reason: "a", actor: "x", now: 10 });
    const failed = await transition(t.db, id, "failed", { reason: "boom", actor: "x", now: 20 });
    expect(failed.finished_at).toBe(20);
    const resumed = await transition(t.db, id, "planning", { reason: "/retry", actor: "x", now: 30 });
    expect(resumed.finished_at).toBeNull();
  });

  it("allows merged once a PR can exist (a person may merge early), and every state can be stopped or resumed sensibly", () => {
    for (const from of TASK_STATES) expect(canTransition(from, "merged")).toBe(!["planning", "merged"].includes(from));
    expect(canTransition(null, "merged")).toBe(false);
    expect(canTransition("failed", "changes_requested")).toBe(true);
    for (const working of ["planning", "coding", "testing", "reviewing"] as const) {
      for (const stop of ["blocked", "cancelled", "budget_exceeded", "failed"] as const) expect(canTransition(working, stop)).toBe(true);
      expect(canTransition("failed", working)).toBe(true);
      expect(canTransition("budget_exceeded", working)).toBe(true);
    }
    expect(canTransition(null, "planning")).toBe(true);
    expect(canTransition(null, "coding")).toBe(false);
    expect(canTransition("testing", "changes_requested")).toBe(true);
    expect(canTransition("planning", "reviewing")).toBe(false);
    // Every target named in the table is a known state.
    for (const targets of Object.values(TRANSITIONS)) for (const to of targets) expect(TASK_STATES).toContain(to);
  });

  it("enters ready_for_merge from reviewing or blocked only, and only the review stage and the CI intake move a task there", () => {
    expect(TASK_STATES.filter((from) => canTransition(from, "ready_for_merge"))).toEqual(["reviewing", "blocked"]);
    expect(canTransition(null, "ready_for_merge")).toBe(false);
    // `blocked → ready_for_merge` is for one case (the checks passed on a re-run after a CI stop): no other code may start using it.
    const src = path.resolve(import.meta.dirname, "../../src");
    const movers = readdirSync(src, { recursive: true, encoding: "utf8" })
      .filter((file) => file.endsWith(".ts"))
      .filter((file) => /\b(?:move|transition|transitionIf)\([^;]*?"ready_for_merge"/s.test(readFileSync(path.join(src, file), "utf8")))
      .map((file) => file.split(path.sep).join("/"))
      .sort();
    expect(movers).toEqual(["pipeline/ci-intake.ts", "pipeline/stages/review.ts"]);
  });
});
