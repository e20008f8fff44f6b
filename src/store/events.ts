/**
 * Observers of the store's facts, called INSIDE the transaction that records the fact: a task's
 * transition (`transitions.ts`) and a budget alert (`budgets.ts`). Whatever an observer writes
 * through the transaction it is given (a `notify` job, say) commits or rolls back with the fact
 * itself, so an event is never lost nor recorded twice. The store knows nothing of what the
 * observers do with it.
 *
 * Observers are registered per database handle; a transaction opened on a handle inherits its
 * observers (like the job queue: see `inheritQueue` in `queue.ts`).
 */
import type { BudgetAlert, BudgetSubject } from "../domain/budget-rules.js";
import type { TaskState } from "../domain/task-state.js";
import type { DbOrTrx } from "./db.js";
import type { Task } from "./schema.js";

/** A transition as recorded: the `transitions` row's id and the task as updated. */
export interface TransitionFact {
  transitionId: number;
  task: Task;
  from: TaskState | null;
  to: TaskState;
  reason: string;
  actor: string;
  /** Epoch ms. */
  at: number;
}

/** A budget alert as recorded: the `budget_alerts` row's id, the alert, and the reservation's subject. */
export interface BudgetAlertFact {
  alertId: number;
  alert: BudgetAlert;
  subject: BudgetSubject;
  /** Epoch ms. */
  at: number;
}

/** What an observer may watch. Each hook runs in the recording transaction; a throw rolls the fact back. */
export interface StoreObserver {
  onTransition?(trx: DbOrTrx, fact: TransitionFact): Promise<void>;
  onBudgetAlert?(trx: DbOrTrx, fact: BudgetAlertFact): Promise<void>;
}

type Observers = Map<string, StoreObserver>;

/** Handles (databases and their open transactions) → their observers by name. */
const registry = new WeakMap<object, Observers>();

/**
 * Registers `observer` on database handle `db` under `name` (replacing an earlier one of that
 * name: an app restarted on the same handle does not observe twice).
 *
 * @returns a function that removes it
 */
export function observeStore(db: DbOrTrx, name: string, observer: StoreObserver): () => void {
  let observers = registry.get(db);
  if (!observers) {
    observers = new Map();
    registry.set(db, observers);
  }
  observers.set(name, observer);
  const mine = observers;
  return () => {
    if (mine.get(name) === observer) mine.delete(name);
  };
}

/** Called when a transaction opens on `db`: the transaction reports to `db`'s observers. */
export function inheritObservers(db: DbOrTrx, trx: DbOrTrx): void {
  const observers = registry.get(db);
  if (observers) registry.set(trx, observers);
}

/** Tells `trx`'s observers about a transition (in that transaction). */
export async function reportTransition(trx: DbOrTrx, fact: TransitionFact): Promise<void> {
  for (const observer of registry.get(trx)?.values() ?? []) await observer.onTransition?.(trx, fact);
}

/** Tells `trx`'s observers about a budget alert (in that transaction). */
export async function reportBudgetAlert(trx: DbOrTrx, fact: BudgetAlertFact): Promise<void> {
  for (const observer of registry.get(trx)?.values() ?? []) await observer.onBudgetAlert?.(trx, fact);
}
