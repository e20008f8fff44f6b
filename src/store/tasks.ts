import { sql } from "kysely";

import type { RepositoryRename } from "../domain/repository.js";
import type { DbOrTrx } from "./db.js";
import { isPostgres } from "./dialect.js";
import type { NewTask, Task, TaskUpdate } from "./schema.js";

/** @throws kysely's `NoResultError` when there is no task `taskId` */
export async function loadTask(db: DbOrTrx, taskId: number): Promise<Task> {
  return db.selectFrom("tasks").selectAll().where("id", "=", taskId).executeTakeFirstOrThrow();
}

/** Updates a task's columns (and `updated_at`), returning the row as updated. */
export async function updateTask(db: DbOrTrx, taskId: number, update: TaskUpdate): Promise<Task> {
  return db
    .updateTable("tasks")
    .set({ ...update, updated_at: Date.now() })
    .where("id", "=", taskId)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** The task of issue `owner/repo#issue`, if any. */
export async function findTaskByIssue(db: DbOrTrx, owner: string, repo: string, issue: number): Promise<Task | undefined> {
  return db
    .selectFrom("tasks")
    .selectAll()
    .where("owner", "=", owner)
    .where("repo", "=", repo)
    .where("issue_number", "=", issue)
    .orderBy("id", "desc")
    .executeTakeFirst();
}

/** The task whose pull request is `owner/repo#pr`, if any. */
export async function findTaskByPullRequest(db: DbOrTrx, owner: string, repo: string, pr: number): Promise<Task | undefined> {
  return db
    .selectFrom("tasks")
    .selectAll()
    .where("owner", "=", owner)
    .where("repo", "=", repo)
    .where("pr_number", "=", pr)
    .orderBy("id", "desc")
    .executeTakeFirst();
}

/** Inserts a task (state `new` unless given) and returns it. */
export async function createTask(db: DbOrTrx, row: NewTask): Promise<Task> {
  return db.insertInto("tasks").values(row).returningAll().executeTakeFirstOrThrow();
}

/** Who started a run: the GitHub login and user id (for the `Co-authored-by` trailer). */
export interface RunStarter {
  login: string;
  /** GitHub user id; `null` when unknown (the trailer then names the login only). */
  id: number | null;
}

/**
 * The fields every new run resets — the one rule for "a new run starts from scratch": a new
 * plan, a new branch, and the pull request, review, test result, approvals, rework count,
 * tracking notes and times of the last run cleared; who started it and when recorded.
 *
 * @param now - epoch ms the run starts
 */
export function newRunFields(starter: RunStarter, now: number) {
  return {
    triggered_by: starter.login,
    triggered_by_id: starter.id,
    tracking_notes: null,
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
    started_at: now,
    finished_at: null,
    updated_at: now,
  } satisfies TaskUpdate;
}

/**
 * What a trigger knew when it started the run: the repository config (and its problems), the
 * issue's text as the maintainer saw it, and the repository's coordinates from the delivery.
 */
export type RunSnapshot = Pick<TaskUpdate, "config" | "config_problems" | "issue_title" | "issue_body" | "installation_id" | "clone_url" | "default_branch">;

/**
 * Starts a new run of an existing task — used by every trigger (the trigger label, `/plan`):
 * `run` + 1 and {@link newRunFields}, plus what the trigger knew ({@link RunSnapshot}). The
 * state is left as it is (the plan stage moves it).
 *
 * @returns the task as updated
 */
export async function startNewRun(db: DbOrTrx, taskId: number, starter: RunStarter, snapshot: RunSnapshot = {}, now = Date.now()): Promise<Task> {
  return db
    .updateTable("tasks")
    .set((eb) => ({ ...snapshot, ...newRunFields(starter, now), run: eb("run", "+", 1) }))
    .where("id", "=", taskId)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** The notes stored on a task (`tasks.tracking_notes`), by key, in the order they were added. */
export function trackingNotesOf(task: Pick<Task, "tracking_notes">): Record<string, string> {
  if (!task.tracking_notes) return {};
  try {
    const parsed: unknown = JSON.parse(task.tracking_notes);
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** The tracking notes as they are in the database now (a webhook's intake may have added one since a task was loaded). */
export async function currentTrackingNotes(db: DbOrTrx, taskId: number): Promise<Record<string, string>> {
  const row = await db.selectFrom("tasks").select("tracking_notes").where("id", "=", taskId).executeTakeFirst();
  return row ? trackingNotesOf(row) : {};
}

/** The JSON key a note is stored under (letters, digits and `-` only). */
const noteKey = (key: string): string => key.replace(/[^a-z0-9-]/gi, "");

/**
 * Stores the tracking comment's note `key` on the task in one atomic step, so concurrent
 * writers never lose each other's notes: on SQLite one UPDATE (`json_set`, or `json_insert`
 * when `replace` is false); on PostgreSQL the row is read `FOR UPDATE` and written back in one
 * transaction (keeping the notes in the order they were added, which `jsonb` would not).
 *
 * @param text - Markdown written by the app (never untrusted text: logins only)
 * @returns `true` when the note was added or changed, `false` when it was already there
 */
export async function setTrackingNote(db: DbOrTrx, taskId: number, key: string, text: string, options: { replace?: boolean } = {}): Promise<boolean> {
  if (isPostgres(db)) {
    return editTrackingNotes(db, taskId, (notes) => {
      const name = noteKey(key);
      if (options.replace === false ? notes[name] !== undefined : notes[name] === text) return false;
      notes[name] = text;
      return true;
    });
  }
  const path = `$."${noteKey(key)}"`;
  const write = options.replace === false ? sql.raw("json_insert") : sql.raw("json_set");
  const guard =
    options.replace === false
      ? sql<boolean>`json_extract(coalesce(tracking_notes, '{}'), ${path}) is null`
      : sql<boolean>`json_extract(coalesce(tracking_notes, '{}'), ${path}) is not ${text}`;
  const result = await db
    .updateTable("tasks")
    .set({ tracking_notes: sql<string>`${write}(coalesce(tracking_notes, '{}'), ${path}, ${text})`, updated_at: Date.now() })
    .where("id", "=", taskId)
    .where(guard)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Removes the tracking comment's note `key` from the task (SQLite: one UPDATE with `json_remove`). */
export async function clearTrackingNote(db: DbOrTrx, taskId: number, key: string): Promise<void> {
  if (isPostgres(db)) {
    await editTrackingNotes(
      db,
      taskId,
      (notes) => {
        const name = noteKey(key);
        if (!(name in notes)) return false;
        delete notes[name];
        return true;
      },
      { touch: false },
    );
    return;
  }
  const path = `$."${noteKey(key)}"`;
  await db
    .updateTable("tasks")
    .set({ tracking_notes: sql<string>`json_remove(tracking_notes, ${path})` })
    .where("id", "=", taskId)
    .where("tracking_notes", "is not", null)
    .execute();
}

/**
 * PostgreSQL: reads the task's notes `FOR UPDATE`, lets `edit` change them, writes them back
 * when it returns `true` — in the caller's transaction, or in a new one.
 */
async function editTrackingNotes(
  db: DbOrTrx,
  taskId: number,
  edit: (notes: Record<string, string>) => boolean,
  options: { touch?: boolean } = {},
): Promise<boolean> {
  const run = async (trx: DbOrTrx): Promise<boolean> => {
    const row = await trx.selectFrom("tasks").select("tracking_notes").where("id", "=", taskId).forUpdate().executeTakeFirst();
    if (!row) return false;
    const notes = trackingNotesOf(row);
    if (!edit(notes)) return false;
    await trx
      .updateTable("tasks")
      .set({ tracking_notes: JSON.stringify(notes), ...(options.touch === false ? {} : { updated_at: Date.now() }) })
      .where("id", "=", taskId)
      .execute();
    return true;
  };
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}

/** Problems of an invalid repository config stored on the task (`tasks.config_problems`). */
export function configProblemsOf(task: Pick<Task, "config_problems">): string[] {
  if (!task.config_problems) return [];
  try {
    const parsed: unknown = JSON.parse(task.config_problems);
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    return ["the stored problems could not be read"];
  }
}

/** `tasks.config` and `tasks.config_problems` for a config as read (problems: empty when valid). */
export function configColumns(config: unknown, problems: readonly string[]): { config: string; config_problems: string | null } {
  return { config: JSON.stringify(config), config_problems: problems.length > 0 ? JSON.stringify(problems) : null };
}

/**
 * `true` when a task is stored under `owner/repo`, compared as GitHub compares names
 * (case-insensitively), in any installation — tasks are unique by name and issue number, and
 * found by name alone — or only in `installationId`'s.
 */
export async function repositoryHasTasks(db: DbOrTrx, owner: string, repo: string, installationId?: number): Promise<boolean> {
  const row = await db
    .selectFrom("tasks")
    .select("id")
    .where(sql<boolean>`lower(owner) = ${owner.toLowerCase()} and lower(repo) = ${repo.toLowerCase()}`)
    .$if(installationId !== undefined, (qb) => qb.where("installation_id", "=", installationId ?? 0))
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * The rename of a repository (`store/repository-rename.ts`), for this table: the installation's
 * tasks stored under `owner/from` (as GitHub spelled it) take the new name and clone URL.
 *
 * @returns how many tasks moved
 */
export async function renameRepositoryTasks(db: DbOrTrx, rename: RepositoryRename): Promise<number> {
  const result = await db
    .updateTable("tasks")
    .set({ repo: rename.to, clone_url: rename.cloneUrl })
    .where("installation_id", "=", rename.installationId)
    .where("owner", "=", rename.owner)
    .where("repo", "=", rename.from)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
