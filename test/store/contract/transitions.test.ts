import { expect, it } from "vitest";

import { IllegalTransitionError } from "../../../src/domain/errors.js";
import { loadTask } from "../../../src/store/tasks.js";
import { stateBefore, transition, transitionsOf } from "../../../src/store/transitions.js";
import { insertTask } from "../../helpers/db.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

describeStoreContract("transitions", (getDb) => {
  it("records each transition with the task's update; resting states set finished_at", async () => {
    const db = getDb();
    const id = await insertTask(db, { stage: "new" });
    await transition(db, id, "planning", { reason: "label", actor: "octocat", now: 1_800_000_000_001 });
    const task = await transition(db, id, "blocked", { reason: "config", actor: "mission-control", now: 1_800_000_000_002 });
    expect(task).toMatchObject({ stage: "blocked", finished_at: 1_800_000_000_002, updated_at: 1_800_000_000_002 });
    expect(await loadTask(db, id)).toEqual(task);
    const rows = await transitionsOf(db, id);
    expect(rows.map((r) => [r.from_state, r.to_state, r.actor, r.created_at])).toEqual([
      [null, "planning", "octocat", 1_800_000_000_001],
      ["planning", "blocked", "mission-control", 1_800_000_000_002],
    ]);
    expect(await stateBefore(db, id, "blocked")).toBe("planning");
    expect(await stateBefore(db, id, "merged")).toBeNull();
    const back = await transition(db, id, "planning", { reason: "retry", actor: "octocat", now: 1_800_000_000_003 });
    expect(back.finished_at).toBeNull();
  });

  it("moving to the current state is a no-op; an illegal transition writes nothing", async () => {
    const db = getDb();
    const id = await insertTask(db, { stage: "planning" });
    await transition(db, id, "planning", { reason: "again", actor: "x" });
    await expect(transition(db, id, "merged", { reason: "no", actor: "x" })).rejects.toBeInstanceOf(IllegalTransitionError);
    expect(await transitionsOf(db, id)).toEqual([]);
    expect((await loadTask(db, id)).stage).toBe("planning");
  });
});
