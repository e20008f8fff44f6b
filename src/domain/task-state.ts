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

/** The state of a task that has none yet (its row exists, no stage started). */
export type TaskStage = TaskState | "new";

/** States in which an agent works: each is the entry state of one stage. */
const WORKING_STATES: readonly TaskState[] = ["planning", "coding", "testing", "reviewing"];

/**
 * States a run stops in before it is done: it waits for a person (`blocked`), was stopped
 * (`cancelled`), hit a budget limit or failed. The tracking comment says which stage it stopped
 * in; `/retry` resumes that stage.
 */
export const STOPPED_STATES: ReadonlySet<TaskState> = new Set(["blocked", "cancelled", "budget_exceeded", "failed"]);

/**
 * States after which no job runs until a person acts (re-label, `/retry`, `/approve`): the
 * stopped states plus `ready_for_merge` and `merged`. A new run (the trigger label again,
 * `/plan`) may start from any of them, and only from them.
 */
export const RESTING_STATES: ReadonlySet<TaskState> = new Set(["ready_for_merge", "merged", ...STOPPED_STATES]);

/** States in which the run is over for good: closing the issue changes nothing. */
export const ENDED_STATES: ReadonlySet<TaskState> = new Set(["merged", "cancelled"]);

/** `true` when `state` is one of {@link STOPPED_STATES}. */
export function isStopped(state: TaskStage | null | undefined): boolean {
  return state !== null && state !== undefined && state !== "new" && STOPPED_STATES.has(state);
}

/** `true` when `state` is one of {@link RESTING_STATES}. */
export function isResting(state: TaskStage | null | undefined): boolean {
  return state !== null && state !== undefined && state !== "new" && RESTING_STATES.has(state);
}

const WORK = WORKING_STATES;
const STOPS: readonly TaskState[] = [...STOPPED_STATES];

/**
 * The legal transitions. A stop (blocked, cancelled, budget_exceeded, failed) can happen from
 * any working state; a person resumes a stopped task into the stage it stopped in. A person
 * may merge the pull request at any point once it exists. `blocked → ready_for_merge` has one
 * use: a task stopped because a CI revision found nothing to fix (its head reviewed, unchanged)
 * whose checks then pass on a re-run (`pipeline/ci-intake.ts`); no stage enters
 * `ready_for_merge` on start, so no command resumes into it.
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
  blocked: [...WORK, "changes_requested", "ready_for_merge", "merged", "cancelled", "failed", "budget_exceeded"],
  cancelled: ["planning", "merged"],
  budget_exceeded: [...WORK, "changes_requested", "merged", "cancelled", "blocked"],
  failed: [...WORK, "changes_requested", "merged", "cancelled"],
};

/** `true` when `from → to` is legal. `from` null means a task that has no state yet. */
export function canTransition(from: TaskStage | null, to: TaskState): boolean {
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
 * The state each working stage moves the task into when it starts: the one map behind command
 * resumption (`pipeline/commands.ts`), the invalid-config guard (`pipeline/stage-context.ts`)
 * and the tracking comment's stage rows (`render/tracking-comment.ts`).
 */
export const STAGE_ENTRY_STATE = {
  plan: "planning",
  code: "coding",
  revise: "changes_requested",
  test: "testing",
  review: "reviewing",
} as const satisfies Record<string, TaskState>;
export type WorkingStage = keyof typeof STAGE_ENTRY_STATE;
