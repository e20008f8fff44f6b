import { IllegalTransitionError } from "../errors.js";
import type { Db } from "../ledger/db.js";
import type { Task, Transition } from "../ledger/schema.js";

/**
 * Where an issue stands. The `tasks.stage` column holds it; exactly one `mc:<state>` label
 * mirrors it on GitHub.
 */
export const TASK_STATES = [
  "planning",
  "coding",
  "testing",
  "reviewing",
  "changes_requested",
  "ready_for_merge",
  "merged",
  "blocked",
  "cancelled",
  "budget_exceeded",
  "failed",
] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** States after which no job runs until a person acts (re-label, /retry, /approve). */
export const RESTING_STATES: ReadonlySet<TaskState> = new Set(["ready_for_merge", "merged", "blocked", "cancelled", "budget_exceeded", "failed"]);

/** States a new run may start from (the trigger label added again). */
export const RESTARTABLE_STATES: ReadonlySet<TaskState> = new Set(["merged", "cancelled", "failed", "budget_exceeded", "blocked", "ready_for_merge"]);

const WORK: TaskState[] = ["planning", "coding", "testing", "reviewing"];
const STOPS: TaskState[] = ["blocked", "cancelled", "budget_exceeded", "failed"];

/**
 * The legal transitions. A stop (blocked, cancelled, budget_exceeded, failed) can happen from
 * any working state; a person resumes a stopped task into the stage it stopped in. A person
 * may merge the pull request at any point once it exists.
 */
export const TRANSITIONS: Readonly<Record<TaskState | "new", readonly TaskState[]>> = {
  new: ["planning", "reviewing", "cancelled"],
  planning: ["coding", ...STOPS],
  coding: ["testing", "reviewing", "merged", ...STOPS],
  testing: ["reviewing", "changes_requested", "merged", ...STOPS],
  reviewing: ["ready_for_merge", "changes_requested", "merged", ...STOPS],
  changes_requested: ["coding", "reviewing", "merged", ...STOPS],
  ready_for_merge: ["merged", "changes_requested", "testing", "reviewing", "planning", "cancelled", "budget_exceeded", "failed"],
  merged: ["planning"],
  blocked: [...WORK, "changes_requested", "merged", "cancelled", "failed", "budget_exceeded"],
  cancelled: ["planning", "merged"],
  budget_exceeded: [...WORK, "changes_requested", "merged", "cancelled", "blocked"],
  failed: [...WORK, "changes_requested", "merged", "cancelled"],
};

/** `true` when `from → to` is legal. `from` null means a task that has no state yet. */
export function canTransition(from: TaskState | null, to: TaskState): boolean {
  return TRANSITIONS[from ?? "new"].includes(to);
}

/** `true` for a known state name. */
export function isTaskState(value: string | null | undefined): value is TaskState {
  return value !== null && value !== undefined && (TASK_STATES as readonly string[]).includes(value);
}

/** Label colour (hex, no `#`) and description of each state's `mc:` label. */
export const STATE_LABELS: Readonly<Record<TaskState, { color: string; description: string }>> = {
  planning: { color: "c5def5", description: "Mission Control: the Architect is planning" },
  coding: { color: "1d76db", description: "Mission Control: the Coder is working" },
  testing: { color: "5319e7", description: "Mission Control: the Tester is running the tests" },
  reviewing: { color: "fbca04", description: "Mission Control: the Reviewer is reviewing" },
  changes_requested: { color: "d93f0b", description: "Mission Control: changes were requested" },
  ready_for_merge: { color: "0e8a16", description: "Mission Control: ready for a human to merge" },
  merged: { color: "6f42c1", description: "Mission Control: merged" },
  blocked: { color: "b60205", description: "Mission Control: waiting for a human" },
  cancelled: { color: "cfd3d7", description: "Mission Control: cancelled" },
  budget_exceeded: { color: "e99695", description: "Mission Control: stopped at a budget limit" },
  failed: { color: "b60205", description: "Mission Control: failed" },
};

/** The `mc:` label of a state. */
export function stateLabel(state: TaskState): string {
  return `mc:${state}`;
}

/**
 * Moves a task to `to`, recording the transition (from, to, reason, actor, time) in the same
 * transaction that updates the task. Moving to the state the task is already in is a no-op.
 *
 * @param actor - GitHub login of the person, or `mission-control` for the app itself
 * @returns the task as updated
 * @throws {IllegalTransitionError} for a transition {@link TRANSITIONS} does not allow; nothing is written
 */
export async function transition(
  db: Db,
  taskId: number,
  to: TaskState,
  details: { reason: string; actor: string; now?: number },
): Promise<Task> {
  const now = details.now ?? Date.now();
  return db.transaction().execute(async (trx) => {
    const task = await trx.selectFrom("tasks").selectAll().where("id", "=", taskId).executeTakeFirstOrThrow();
    const from = isTaskState(task.stage) ? task.stage : null;
    if (from === to) return task;
    if (!canTransition(from, to)) throw new IllegalTransitionError(taskId, from, to);
    await trx
      .insertInto("transitions")
      .values({ task_id: taskId, from_state: from, to_state: to, reason: details.reason.slice(0, 500), actor: details.actor, created_at: now })
      .execute();
    const resting = RESTING_STATES.has(to);
    return trx
      .updateTable("tasks")
      .set({ stage: to, updated_at: now, ...(resting ? { finished_at: now } : { finished_at: null }) })
      .where("id", "=", taskId)
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

/** A task's transitions, oldest first. */
export async function transitionsOf(db: Db, taskId: number): Promise<Transition[]> {
  return db.selectFrom("transitions").selectAll().where("task_id", "=", taskId).orderBy("id").execute();
}
