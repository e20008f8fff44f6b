import { describe, expect, it } from "vitest";

import { mayStartRevision } from "../../../../src/adapters/github/inbound/review-submitted.js";
import { TASK_STATES } from "../../../../src/domain/task-state.js";

describe("mayStartRevision: which task states a review or inline comment on the app's pull request is taken in", () => {
  it("every state but merged and cancelled: now, or (planning, coding) after the work under way", () => {
    expect(TASK_STATES.filter((state) => mayStartRevision(state))).toEqual([
      "planning",
      "coding",
      "testing",
      "reviewing",
      "changes_requested",
      "ready_for_merge",
      "blocked",
      "budget_exceeded",
      "failed",
    ]);
  });

  it("an ended task, a task with no state yet, or an unknown state starts nothing", () => {
    for (const stage of ["merged", "cancelled", "new", "", "bogus"]) expect(mayStartRevision(stage), stage).toBe(false);
  });
});
