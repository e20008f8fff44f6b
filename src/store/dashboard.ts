import { type ExpressionBuilder, sql } from "kysely";

import { parseNanoUsd } from "../domain/money.js";
import { RESTING_STATES, STOPPED_STATES, type TaskState } from "../domain/task-state.js";
import type { Db, DbOrTrx } from "./db.js";
import { isPostgres } from "./dialect.js";
import { type LiveJob, liveJobsOfTask } from "./queue.js";
import type { Database, DashboardSession, LlmUsage, Task, Transition } from "./schema.js";
import { transitionsOf } from "./transitions.js";
import { sumNanoUsd } from "./usage.js";

// The dashboard's reads that `analytics.ts` does not cover (live tasks, failures, one task's
// timeline) and its sessions. Every read takes a {@link DashboardScope}: what the signed-in
// person may see.

/**
 * What one dashboard session may see: `null` for all (the operator), else only these
 * installations' and these repositories' rows (an empty list: nothing).
 */
export interface DashboardScope {
  installationIds: readonly number[] | null;
  /** `owner/repo` names. */
  repositories: readonly string[] | null;
}

/** The scope of the operator's server-wide view. */
export const EVERYTHING: DashboardScope = { installationIds: null, repositories: null };

// ---------------------------------------------------------------------------------------------
// Sessions

/** A new session row: the id's hash, never the id. */
export interface NewDashboardSession {
  idHash: string;
  login: string;
  userId: number | null;
  scope: DashboardScope;
  csrfToken: string;
  /** Operator sessions: SHA-256 (hex) of the DASHBOARD_TOKEN they were opened with; `null` for a GitHub user. */
  operatorTokenSha256: string | null;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms. */
  expiresAt: number;
}

/** A session as read back: who, what they may see, the CSRF token, when it expires. */
export interface StoredDashboardSession {
  login: string;
  userId: number | null;
  scope: DashboardScope;
  csrfToken: string;
  /** Operator sessions: SHA-256 (hex) of the DASHBOARD_TOKEN they were opened with; `null` for a GitHub user. */
  operatorTokenSha256: string | null;
  /** Epoch ms. */
  expiresAt: number;
}

/** Stores a session (and removes expired ones, so the table does not grow). */
export async function createDashboardSession(db: Db, session: NewDashboardSession): Promise<void> {
  await db.deleteFrom("dashboard_sessions").where("expires_at", "<=", session.createdAt).execute();
  await db
    .insertInto("dashboard_sessions")
    .values({
      id_hash: session.idHash,
      login: session.login,
      user_id: session.userId,
      installation_ids: session.scope.installationIds === null ? null : JSON.stringify(session.scope.installationIds),
      repositories: session.scope.repositories === null ? null : JSON.stringify(session.scope.repositories),
      csrf_token: session.csrfToken,
      operator_token_sha256: session.operatorTokenSha256,
      created_at: session.createdAt,
      expires_at: session.expiresAt,
    })
    .execute();
}

/**
 * The session whose id hashes to `idHash`, unless it expired by `now` (epoch ms).
 *
 * @returns `undefined` for an unknown or expired session
 */
export async function findDashboardSession(db: Db, idHash: string, now = Date.now()): Promise<StoredDashboardSession | undefined> {
  const row = await db.selectFrom("dashboard_sessions").selectAll().where("id_hash", "=", idHash).where("expires_at", ">", now).executeTakeFirst();
  return row ? sessionOf(row) : undefined;
}

/** Ends a session (sign-out). */
export async function deleteDashboardSession(db: Db, idHash: string): Promise<void> {
  await db.deleteFrom("dashboard_sessions").where("id_hash", "=", idHash).execute();
}

function sessionOf(row: DashboardSession): StoredDashboardSession {
  return {
    login: row.login,
    userId: row.user_id === null ? null : Number(row.user_id),
    scope: { installationIds: jsonList(row.installation_ids, (v) => Number(v)), repositories: jsonList(row.repositories, (v) => String(v)) },
    csrfToken: row.csrf_token,
    operatorTokenSha256: row.operator_token_sha256,
    expiresAt: Number(row.expires_at),
  };
}

/** A stored JSON array (`null`: all); anything unreadable reads as "nothing", never as "all". */
function jsonList<T>(text: string | null, map: (value: unknown) => T): T[] | null {
  if (text === null) return null;
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.map(map) : [];
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------
// Tasks

/** `owner/repo` of a task row, in SQL (the same text on SQLite and PostgreSQL). */
const repositoryOf = sql<string>`${sql.ref("tasks.owner")} || '/' || ${sql.ref("tasks.repo")}`;

/** Restricts a `tasks` query to the scope. */
function taskScope(eb: ExpressionBuilder<Database, "tasks">, scope: DashboardScope) {
  const conditions = [];
  if (scope.installationIds !== null)
    conditions.push(scope.installationIds.length === 0 ? sql<boolean>`1 = 0` : eb("tasks.installation_id", "in", [...scope.installationIds]));
  if (scope.repositories !== null) conditions.push(scope.repositories.length === 0 ? sql<boolean>`1 = 0` : eb(repositoryOf, "in", [...scope.repositories]));
  return eb.and(conditions);
}

/** A task that is not resting, with its spend so far and its queued or running jobs. */
export interface LiveTask {
  id: number;
  installationId: number;
  /** `owner/repo`. */
  repository: string;
  issueNumber: number;
  issueTitle: string | null;
  prNumber: number | null;
  prUrl: string | null;
  state: Task["stage"];
  /** Epoch ms the current run started (or the task was created). */
  startedAt: number;
  /** Nano-dollars spent by the task so far (all its runs). */
  spentNanoUsd: number;
  /** LLM calls so far. */
  calls: number;
  jobs: LiveJob[];
}

const RESTING: TaskState[] = [...RESTING_STATES];

/** The task columns {@link liveTasks} selects and groups its spend by. */
const LIVE_TASK_COLUMNS = [
  "tasks.id",
  "tasks.installation_id",
  "tasks.owner",
  "tasks.repo",
  "tasks.issue_number",
  "tasks.issue_title",
  "tasks.pr_number",
  "tasks.pr_url",
  "tasks.stage",
  "tasks.started_at",
  "tasks.created_at",
] as const;

/**
 * Tasks in the scope that are not in a resting state (`new`, planning, coding, testing,
 * reviewing, changes_requested), newest first, each with its spend so far (from `llm_usage`)
 * and its queued or running jobs (`liveJobsOfTask`, on either queue backend; not `notify` jobs).
 *
 * @param limit - at most this many tasks (default 200)
 */
export async function liveTasks(db: Db, scope: DashboardScope, limit = 200): Promise<LiveTask[]> {
  const rows = await db
    .selectFrom("tasks")
    .leftJoin("llm_usage", "llm_usage.task_id", "tasks.id")
    .where("tasks.stage", "not in", RESTING)
    .where((eb) => taskScope(eb, scope))
    .select((eb) => [...LIVE_TASK_COLUMNS, eb.fn.count<number>("llm_usage.id").as("calls"), sumNanoUsd("cost_nano_usd").as("spent")])
    .groupBy(LIVE_TASK_COLUMNS)
    .orderBy("tasks.id", "desc")
    .limit(limit)
    .execute();
  const tasks: LiveTask[] = [];
  for (const r of rows) {
    tasks.push({
      id: r.id,
      installationId: Number(r.installation_id),
      repository: `${r.owner}/${r.repo}`,
      issueNumber: r.issue_number,
      issueTitle: r.issue_title,
      prNumber: r.pr_number,
      prUrl: r.pr_url,
      state: r.stage,
      startedAt: Number(r.started_at ?? r.created_at),
      spentNanoUsd: parseNanoUsd(r.spent),
      calls: Number(r.calls),
      // `notify` jobs are the operator's (see {@link taskTimeline}), not the task's work.
      jobs: (await liveJobsOfTask(db, r.id)).filter((j) => j.kind !== "notify"),
    });
  }
  return tasks;
}

/** A task that stopped (failed, budget_exceeded, blocked, cancelled) and why. */
export interface FailedTask {
  id: number;
  repository: string;
  issueNumber: number;
  issueTitle: string | null;
  state: Task["stage"];
  /** `failure_reason`, else `blocked_reason`, else the reason of the transition into the state. */
  reason: string;
  /** Epoch ms it stopped. */
  at: number;
}

/**
 * The scope's tasks that stopped most recently (failed, budget_exceeded, blocked, cancelled),
 * newest first, with the reason recorded on the task or on its last transition.
 */
export async function recentFailures(db: Db, scope: DashboardScope, limit = 20): Promise<FailedTask[]> {
  const rows = await db
    .selectFrom("tasks")
    .where("tasks.stage", "in", [...STOPPED_STATES])
    .where((eb) => taskScope(eb, scope))
    .select(["id", "owner", "repo", "issue_number", "issue_title", "stage", "failure_reason", "blocked_reason", "finished_at", "updated_at"])
    .select((eb) =>
      eb
        .selectFrom("transitions")
        .select("transitions.reason")
        .whereRef("transitions.task_id", "=", "tasks.id")
        .orderBy("transitions.id", "desc")
        .limit(1)
        .as("last_reason"),
    )
    .orderBy(sql`coalesce(finished_at, updated_at)`, "desc")
    .orderBy("id", "desc")
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    repository: `${r.owner}/${r.repo}`,
    issueNumber: r.issue_number,
    issueTitle: r.issue_title,
    state: r.stage,
    reason: r.failure_reason ?? r.blocked_reason ?? r.last_reason ?? "",
    at: Number(r.finished_at ?? r.updated_at),
  }));
}

/** The task `taskId` if the scope may see it. */
export async function taskInScope(db: Db, scope: DashboardScope, taskId: number): Promise<Task | undefined> {
  return db
    .selectFrom("tasks")
    .selectAll()
    .where("id", "=", taskId)
    .where((eb) => taskScope(eb, scope))
    .executeTakeFirst();
}

/** One job of a task as the timeline shows it. */
export interface TimelineJob {
  id: string;
  kind: string;
  state: string;
  attempts: number;
  /** Epoch ms. */
  createdAt: number | null;
  /** Epoch ms of the last change. */
  updatedAt: number;
  finishedAt: number | null;
  lastError: string | null;
}

/** A task's timeline: transitions, jobs and LLM calls, each oldest first. */
export interface TaskTimeline {
  transitions: Transition[];
  jobs: TimelineJob[];
  calls: LlmUsage[];
}

/**
 * The timeline of task `taskId`: every transition, its jobs (on SQLite every job of the `jobs`
 * table; on PostgreSQL the queued and running ones, since pg-boss archives finished jobs) and
 * every LLM call with tokens and nano-dollars. `notify` jobs are left out (they are the
 * operator's: their errors name the operator's channels), and on SQLite any job whose
 * installation or lock key is not the task's repository.
 */
export async function taskTimeline(db: Db, taskId: number): Promise<TaskTimeline> {
  const transitions = await transitionsOf(db, taskId);
  const calls = (await db.selectFrom("llm_usage").selectAll().where("task_id", "=", taskId).orderBy("id").execute()).map((c) => ({
    ...c,
    cost_nano_usd: parseNanoUsd(c.cost_nano_usd),
  }));
  return { transitions, jobs: await jobsOfTask(db, taskId), calls };
}

async function jobsOfTask(db: DbOrTrx, taskId: number): Promise<TimelineJob[]> {
  // `notify` jobs are the operator's (their errors name the operator's channels), not the task's.
  if (isPostgres(db)) {
    return (await liveJobsOfTask(db, taskId))
      .filter((j) => j.kind !== "notify")
      .map((j) => ({
        id: j.id,
        kind: j.kind,
        state: j.state,
        attempts: j.attempts,
        createdAt: null,
        updatedAt: j.updated_at,
        finishedAt: null,
        lastError: null,
      }));
  }
  const task = await db.selectFrom("tasks").select(["installation_id", "owner", "repo"]).where("id", "=", taskId).executeTakeFirst();
  if (!task) return [];
  const rows = await db
    .selectFrom("jobs")
    .select(["id", "kind", "state", "attempts", "lock_key", "created_at", "updated_at", "finished_at", "last_error"])
    .where("task_id", "=", taskId)
    .where("kind", "!=", "notify")
    .where("installation_id", "=", task.installation_id)
    .orderBy("id")
    .execute();
  // Only the task's repository's jobs: their lock key names it (`owner/repo#n`, `cmd:owner/repo#n`).
  const repository = `${task.owner}/${task.repo}#`.toLowerCase();
  return rows
    .filter((r) =>
      r.lock_key
        .toLowerCase()
        .replace(/^[a-z-]+:/, "")
        .startsWith(repository),
    )
    .map((r) => ({
      id: String(r.id),
      kind: r.kind,
      state: r.state,
      attempts: r.attempts,
      createdAt: Number(r.created_at),
      updatedAt: Number(r.updated_at),
      finishedAt: r.finished_at === null ? null : Number(r.finished_at),
      lastError: r.last_error,
    }));
}

/** The values the dashboard's filters offer: what the scope's ledger rows and tasks hold. */
export interface LedgerDimensions {
  installationIds: number[];
  /** `owner/repo`. */
  repositories: string[];
  agents: string[];
  models: string[];
}

/** The distinct installations, repositories, agents and models of the scope's ledger rows, sorted. */
export async function ledgerDimensions(db: Db, scope: DashboardScope): Promise<LedgerDimensions> {
  if (scope.installationIds?.length === 0 || scope.repositories?.length === 0) return { installationIds: [], repositories: [], agents: [], models: [] };
  const distinct = async (column: "installation_id" | "repository" | "agent" | "model"): Promise<unknown[]> => {
    let query = db
      .selectFrom("llm_usage")
      .select(sql<string | number>`${sql.ref(column)}`.as("value"))
      .distinct();
    if (scope.installationIds !== null) query = query.where("installation_id", "in", [...scope.installationIds]);
    if (scope.repositories !== null) query = query.where("repository", "in", [...scope.repositories]);
    return (await query.orderBy("value").execute()).map((r) => r.value);
  };
  return {
    installationIds: (await distinct("installation_id")).map(Number),
    repositories: (await distinct("repository")).map(String),
    agents: (await distinct("agent")).map(String),
    models: (await distinct("model")).map(String),
  };
}
