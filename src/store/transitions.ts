import { IllegalTransitionError } from "../domain/errors.js";
import { canTransition, isTaskState, RESTING_STATES, type TaskState } from "../domain/task-state.js";
import type { DbOrTrx } from "./db.js";
import { inheritObservers, reportTransition } from "./events.js";
import { isPostgres } from "./dialect.js";
import { inheritQueue } from "./queue.js";
import type { Task, Transition } from "./schema.js";

/**
 * Moves a task to `to`, recording the transition (from, to, reason, actor, time) in the same
 * transaction that updates the task. Moving to the state the task is already in is a no-op.
 * Entering a resting state sets `finished_at`; any other state clears it. Runs in the caller's
 * transaction when given one.
 *
 * @param actor - GitHub login of the person, or `mission-control` for the app itself
 * @returns the task as updated
 * @throws {IllegalTransitionError} for a transition `TRANSITIONS` does not allow; nothing is written
 */
export async function transition(db: DbOrTrx, taskId: number, to: TaskState, details: { reason: string; actor: string; now?: number }): Promise<Task> {
  return (await transitionIf(db, taskId, to, details)) as Task;
}

/**
 * {@link transition}, only when `holds` is true of the task and its latest transition as they are
 * when the move is made: the task's row is read `FOR UPDATE` on PostgreSQL (and SQLite writes one
 * transaction at a time), so a concurrent write to the task — a `/stop` clearing a note, say —
 * is either seen by `holds` or waits until the move is committed.
 *
 * @param holds - the condition (none: always); its `last` is the task's latest transition
 * @returns the task as updated, or `null` when `holds` was false (nothing written)
 * @throws {IllegalTransitionError} for a transition `TRANSITIONS` does not allow; nothing is written
 */
export async function transitionIf(
  db: DbOrTrx,
  taskId: number,
  to: TaskState,
  details: { reason: string; actor: string; now?: number },
  holds?: (task: Task, last: Transition | undefined) => boolean,
): Promise<Task | null> {
  const now = details.now ?? Date.now();
  const run = async (trx: DbOrTrx): Promise<Task | null> => {
    const task = await trx
      .selectFrom("tasks")
      .selectAll()
      .where("id", "=", taskId)
      .$if(isPostgres(trx), (qb) => qb.forUpdate())
      .executeTakeFirstOrThrow();
    if (holds) {
      const last = await trx.selectFrom("transitions").selectAll().where("task_id", "=", taskId).orderBy("id", "desc").limit(1).executeTakeFirst();
      if (!holds(task, last)) return null;
    }
    const from = isTaskState(task.stage) ? task.stage : null;
    if (from === to) return task;
    if (!canTransition(from, to)) throw new IllegalTransitionError(taskId, from, to);
    const recorded = await trx
      .insertInto("transitions")
      .values({ task_id: taskId, from_state: from, to_state: to, reason: details.reason.slice(0, 500), actor: details.actor, created_at: now })
      .returning("id")
      .executeTakeFirstOrThrow();
    const resting = RESTING_STATES.has(to);
    const updated = await trx
      .updateTable("tasks")
      .set({ stage: to, updated_at: now, ...(resting ? { finished_at: now } : { finished_at: null }) })
      .where("id", "=", taskId)
      .returningAll()
      .executeTakeFirstOrThrow();
    await reportTransition(trx, { transitionId: recorded.id, task: updated, from, to, reason: details.reason.slice(0, 500), actor: details.actor, at: now });
    return updated;
  };
  if (db.isTransaction) return run(db);
  return db.transaction().execute((trx) => {
    // Observers (`events.ts`) enqueue in this transaction, on the database's queue.
    inheritQueue(db, trx);
    inheritObservers(db, trx);
    return run(trx);
  });
}

/** A task's transitions, oldest first. */
export async function transitionsOf(db: DbOrTrx, taskId: number): Promise<Transition[]> {
  return db.selectFrom("transitions").selectAll().where("task_id", "=", taskId).orderBy("id").execute();
}

/**
 * The state the task was in before it last entered `state` (the stage a stopped task stopped
 * in), or `null` when it never entered it or came from no state.
 */
export async function stateBefore(db: DbOrTrx, taskId: number, state: TaskState): Promise<TaskState | null> {
  const last = await db
    .selectFrom("transitions")
    .select("from_state")
    .where("task_id", "=", taskId)
    .where("to_state", "=", state)
    .orderBy("id", "desc")
    .executeTakeFirst();
  return isTaskState(last?.from_state) ? last.from_state : null;
}
