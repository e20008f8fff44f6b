import { expect, it } from "vitest";

import type { JobKind } from "../../../src/domain/jobs.js";
import type { TaskStage } from "../../../src/domain/task-state.js";
import {
  createDashboardSession,
  type DashboardScope,
  deleteDashboardSession,
  EVERYTHING,
  findDashboardSession,
  ledgerDimensions,
  liveTasks,
  type NewDashboardSession,
  recentFailures,
  taskInScope,
  taskTimeline,
} from "../../../src/store/dashboard.js";
import type { Db } from "../../../src/store/db.js";
import { attachQueue, type JobQueue, type LiveJob } from "../../../src/store/queue.js";
import type { NewLlmUsage, NewTask } from "../../../src/store/schema.js";
import { transition } from "../../../src/store/transitions.js";
import { recordUsage } from "../../../src/store/usage.js";
import { insertTask, usageRow } from "../../helpers/db.js";
import { describeStoreContract, type StoreBackend } from "../../helpers/store-backends.js";

// The dashboard's store reads on both backends. On SQLite a task's jobs are rows of the `jobs`
// table. On PostgreSQL they live in pg-boss, which needs Node 22 and is not started here: the
// dashboard reads them through `liveJobsOfTask` of the queue attached to the handle, so the
// PostgreSQL half attaches a stand-in queue holding the jobs a test seeds (what pg-boss itself
// returns is covered by test/store/contract/queue.test.ts), and one test shows what happens on a
// handle with no queue attached.

/** Installation ids past 2³¹, as GitHub's are: `bigint` on PostgreSQL. */
const INST_A = 98_765_432_101;
const INST_B = 12_345_678_901;

const T0 = Date.UTC(2026, 2, 2, 10, 0, 0); // 2026-03-02T10:00:00Z

/** A job a test seeds, on whichever queue the backend has. */
interface SeedJob {
  kind: JobKind;
  state: "queued" | "running" | "succeeded" | "failed" | "cancelled";
  attempts: number;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms. */
  updatedAt: number;
  finishedAt?: number | null;
  lastError?: string | null;
  /** Default: the task's issue lock key. */
  lockKey?: string;
  /** Default: the task's installation. */
  installationId?: number;
}

/** The stand-in for the pg-boss queue: the jobs tests seeded, by task; only `liveJobsOfTask` is served. */
const pgJobs = new Map<number, Array<{ id: string; job: SeedJob }>>();
let pgJobCounter = 0;
const standInQueue: Pick<JobQueue, "liveJobsOfTask"> = {
  // As pg-queue.ts does: queued and running jobs only, oldest first.
  liveJobsOfTask(_db, taskId) {
    const live: LiveJob[] = [];
    for (const { id, job } of pgJobs.get(taskId) ?? []) {
      if (job.state === "queued" || job.state === "running")
        live.push({ id, kind: job.kind, state: job.state, attempts: job.attempts, updated_at: job.updatedAt });
    }
    return Promise.resolve(live);
  },
};

/** The database of the test, with the stand-in queue attached on PostgreSQL. */
function dbOf(getDb: () => Db, backend: StoreBackend): Db {
  const db = getDb();
  if (backend.name === "postgres") {
    // Task ids restart with every test (the tables are truncated): so do the stand-in's jobs.
    pgJobs.clear();
    attachQueue(db, standInQueue as JobQueue);
  }
  return db;
}

/** Seeds a job of task `taskId` (of `owner/repo#issue`); returns its id as the dashboard shows it. */
async function seedJob(db: Db, backend: StoreBackend, taskId: number, job: SeedJob): Promise<string> {
  const task = await db.selectFrom("tasks").select(["installation_id", "owner", "repo", "issue_number"]).where("id", "=", taskId).executeTakeFirstOrThrow();
  if (backend.name === "postgres") {
    pgJobCounter += 1;
    const id = `00000000-0000-4000-8000-${String(pgJobCounter).padStart(12, "0")}`;
    pgJobs.set(taskId, [...(pgJobs.get(taskId) ?? []), { id, job }]);
    return id;
  }
  const row = await db
    .insertInto("jobs")
    .values({
      kind: job.kind,
      task_id: taskId,
      installation_id: job.installationId ?? task.installation_id,
      lock_key: job.lockKey ?? `${task.owner}/${task.repo}#${task.issue_number}`,
      dedupe_key: `dedupe-${taskId}-${job.kind}-${job.createdAt}-${Math.random()}`,
      delivery_id: null,
      payload: "{}",
      state: job.state,
      attempts: job.attempts,
      max_attempts: 3,
      run_after: job.createdAt,
      lease_owner: job.state === "running" ? "worker-1" : null,
      lease_expires_at: job.state === "running" ? job.updatedAt + 60_000 : null,
      last_error: job.lastError ?? null,
      created_at: job.createdAt,
      updated_at: job.updatedAt,
      finished_at: job.finishedAt ?? null,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return String(row.id);
}

function usage(overrides: Partial<NewLlmUsage>): NewLlmUsage {
  return usageRow({ created_at: T0, installation_id: INST_A, ...overrides });
}

function task(overrides: Partial<NewTask>): Partial<NewTask> {
  return { installation_id: INST_A, owner: "octo-org", repo: "octo-repo", created_at: T0, updated_at: T0, ...overrides };
}

function session(overrides: Partial<NewDashboardSession>): NewDashboardSession {
  return {
    idHash: "a".repeat(64),
    login: "octocat",
    userId: 583_231,
    scope: { installationIds: [INST_A], repositories: ["octo-org/octo-repo"] },
    csrfToken: "csrf-1",
    operatorTokenSha256: null,
    createdAt: T0,
    expiresAt: T0 + 3_600_000,
    ...overrides,
  };
}

describeStoreContract("dashboard store", (getDb, backend) => {
  it("stores a session under its id's hash, reads it back until it expires, and deletes it", async () => {
    const db = dbOf(getDb, backend);
    // The PostgreSQL half empties only the queue's and ledger's tables between tests.
    await db.deleteFrom("dashboard_sessions").execute();
    const userHash = "1f".repeat(32);
    const operatorHash = "2e".repeat(32);
    const tokenSha = "9c".repeat(32);
    await createDashboardSession(db, session({ idHash: userHash }));
    await createDashboardSession(
      db,
      session({
        idHash: operatorHash,
        login: "operator",
        userId: null,
        scope: EVERYTHING,
        csrfToken: "csrf-2",
        operatorTokenSha256: tokenSha,
        expiresAt: T0 + 7_200_000,
      }),
    );

    expect(await db.selectFrom("dashboard_sessions").selectAll().orderBy("id_hash").execute()).toEqual([
      {
        id_hash: userHash,
        login: "octocat",
        user_id: 583_231,
        installation_ids: `[${INST_A}]`,
        repositories: '["octo-org/octo-repo"]',
        csrf_token: "csrf-1",
        operator_token_sha256: null,
        created_at: T0,
        expires_at: T0 + 3_600_000,
      },
      {
        id_hash: operatorHash,
        login: "operator",
        user_id: null,
        installation_ids: null,
        repositories: null,
        csrf_token: "csrf-2",
        operator_token_sha256: tokenSha,
        created_at: T0,
        expires_at: T0 + 7_200_000,
      },
    ]);

    expect(await findDashboardSession(db, userHash, T0 + 3_599_999)).toEqual({
      login: "octocat",
      userId: 583_231,
      scope: { installationIds: [INST_A], repositories: ["octo-org/octo-repo"] },
      csrfToken: "csrf-1",
      operatorTokenSha256: null,
      expiresAt: T0 + 3_600_000,
    });
    expect(await findDashboardSession(db, operatorHash, T0)).toEqual({
      login: "operator",
      userId: null,
      scope: { installationIds: null, repositories: null },
      csrfToken: "csrf-2",
      operatorTokenSha256: tokenSha,
      expiresAt: T0 + 7_200_000,
    });
    // Expired at its expiry instant; unknown hashes and the hash of a hash are unknown.
    expect(await findDashboardSession(db, userHash, T0 + 3_600_000)).toBeUndefined();
    expect(await findDashboardSession(db, "3d".repeat(32), T0)).toBeUndefined();

    // A new session sweeps the expired ones (the user's), not the live one (the operator's).
    const thirdHash = "4c".repeat(32);
    await createDashboardSession(db, session({ idHash: thirdHash, createdAt: T0 + 3_600_000, expiresAt: T0 + 9_000_000 }));
    expect((await db.selectFrom("dashboard_sessions").select("id_hash").orderBy("id_hash").execute()).map((r) => r.id_hash)).toEqual([operatorHash, thirdHash]);

    await deleteDashboardSession(db, operatorHash);
    expect(await findDashboardSession(db, operatorHash, T0)).toBeUndefined();
    expect(await findDashboardSession(db, thirdHash, T0 + 3_600_000)).toMatchObject({ login: "octocat" });
  });

  it("reads an unreadable stored scope as nothing, never as everything", async () => {
    const db = dbOf(getDb, backend);
    await db.deleteFrom("dashboard_sessions").execute();
    const hash = "5b".repeat(32);
    await createDashboardSession(db, session({ idHash: hash }));
    await db
      .updateTable("dashboard_sessions")
      .set({ installation_ids: "not json", repositories: '{"octo-org/octo-repo":true}' })
      .where("id_hash", "=", hash)
      .execute();
    expect((await findDashboardSession(db, hash, T0))?.scope).toEqual({ installationIds: [], repositories: [] });
    await db.updateTable("dashboard_sessions").set({ installation_ids: "[]", repositories: "[]" }).where("id_hash", "=", hash).execute();
    expect((await findDashboardSession(db, hash, T0))?.scope).toEqual({ installationIds: [], repositories: [] });
  });

  it("lists the tasks that are not resting, newest first, with their exact spend and live jobs", async () => {
    const db = dbOf(getDb, backend);
    const stages: TaskStage[] = [
      "new",
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
    ];
    const ids: Partial<Record<TaskStage, number>> = {};
    for (const [i, stage] of stages.entries()) {
      ids[stage] = await insertTask(db, task({ stage, issue_number: 100 + i, issue_title: `Issue ${100 + i}`, created_at: T0 + i * 1000 }));
    }
    const coding = ids.coding ?? 0;
    await db
      .updateTable("tasks")
      .set({ started_at: T0 + 50_000, pr_number: 7, pr_url: "https://github.com/octo-org/octo-repo/pull/7" })
      .where("id", "=", coding)
      .execute();
    // Two calls whose sum is past 2⁵² n$ and exact only as an integer sum: 9,000,000,000,000,003.
    await recordUsage(db, usage({ task_id: coding, cost_nano_usd: 4_000_000_000_000_001 }));
    await recordUsage(db, usage({ task_id: coding, agent: "coder", cost_nano_usd: 5_000_000_000_000_002 }));
    await recordUsage(db, usage({ task_id: ids.planning ?? 0, cost_nano_usd: 123_456_789 }));
    await recordUsage(db, usage({ task_id: ids.merged ?? 0, cost_nano_usd: 1_000 }));
    await recordUsage(db, usage({ task_id: null, cost_nano_usd: 7 }));

    const succeeded = { kind: "plan", state: "succeeded", attempts: 1, createdAt: T0 + 1_000, updatedAt: T0 + 2_000, finishedAt: T0 + 2_000 } as const;
    await seedJob(db, backend, coding, succeeded);
    const running = await seedJob(db, backend, coding, { kind: "code", state: "running", attempts: 2, createdAt: T0 + 3_000, updatedAt: T0 + 60_000 });
    const queued = await seedJob(db, backend, coding, { kind: "tracking", state: "queued", attempts: 0, createdAt: T0 + 4_000, updatedAt: T0 + 4_000 });
    // The operator's notifications are not the task's work: never its running job.
    await seedJob(db, backend, coding, { kind: "notify", state: "running", attempts: 1, createdAt: T0 + 2_500, updatedAt: T0 + 70_000, lockKey: "notify:ops" });

    const all = await liveTasks(db, EVERYTHING);
    expect(all.map((t) => t.state)).toEqual(["changes_requested", "reviewing", "testing", "coding", "planning", "new"]);
    expect(all.find((t) => t.id === coding)).toEqual({
      id: coding,
      installationId: INST_A,
      repository: "octo-org/octo-repo",
      issueNumber: 102,
      issueTitle: "Issue 102",
      prNumber: 7,
      prUrl: "https://github.com/octo-org/octo-repo/pull/7",
      state: "coding",
      startedAt: T0 + 50_000,
      spentNanoUsd: 9_000_000_000_000_003,
      calls: 2,
      jobs: [
        { id: running, kind: "code", state: "running", attempts: 2, updated_at: T0 + 60_000 },
        { id: queued, kind: "tracking", state: "queued", attempts: 0, updated_at: T0 + 4_000 },
      ],
    });
    expect(all.find((t) => t.id === ids.planning)).toMatchObject({ startedAt: T0 + 1_000, spentNanoUsd: 123_456_789, calls: 1, jobs: [] });
    expect(all.find((t) => t.id === ids.new)).toMatchObject({ startedAt: T0, spentNanoUsd: 0, calls: 0, jobs: [], prNumber: null });
    expect((await liveTasks(db, EVERYTHING, 2)).map((t) => t.state)).toEqual(["changes_requested", "reviewing"]);
  });

  it("scopes the live tasks by installation and repository; an empty list sees nothing", async () => {
    const db = dbOf(getDb, backend);
    const mine = await insertTask(db, task({ stage: "coding" }));
    const sibling = await insertTask(db, task({ stage: "coding", repo: "octo-web" }));
    const otherInstallation = await insertTask(db, task({ stage: "coding", installation_id: INST_B, owner: "beta-org", repo: "app" }));
    const ids = async (scope: DashboardScope) => (await liveTasks(db, scope)).map((t) => t.id);

    expect(await ids(EVERYTHING)).toEqual([otherInstallation, sibling, mine]);
    expect(await ids({ installationIds: [INST_A], repositories: null })).toEqual([sibling, mine]);
    expect(await ids({ installationIds: [INST_B, INST_A], repositories: ["octo-org/octo-repo", "beta-org/app"] })).toEqual([otherInstallation, mine]);
    expect(await ids({ installationIds: null, repositories: ["octo-org/octo-web"] })).toEqual([sibling]);
    // The repository is in the list but the installation is not: both must hold.
    expect(await ids({ installationIds: [INST_B], repositories: ["octo-org/octo-repo"] })).toEqual([]);
    expect(await ids({ installationIds: [], repositories: null })).toEqual([]);
    expect(await ids({ installationIds: null, repositories: [] })).toEqual([]);
    expect(await ids({ installationIds: [INST_A], repositories: [] })).toEqual([]);
  });

  it("lists recent failures newest first with the task's or the transition's reason, in scope", async () => {
    const db = dbOf(getDb, backend);
    const failed = await insertTask(
      db,
      task({ stage: "failed", issue_number: 1, issue_title: "Crash", failure_reason: "The Coder hit an API error.", finished_at: T0 + 4_000 }),
    );
    const blocked = await insertTask(db, task({ stage: "blocked", issue_number: 2, blocked_reason: "Waiting for /approve.", finished_at: T0 + 3_000 }));
    const budget = await insertTask(
      db,
      task({ stage: "budget_exceeded", issue_number: 3, failure_reason: "Over the monthly budget.", blocked_reason: "not this one", finished_at: T0 + 5_000 }),
    );
    // No reason on the task, no finished_at: the last transition's reason, at updated_at.
    const cancelled = await insertTask(db, task({ stage: "cancelled", issue_number: 4, updated_at: T0 + 2_000 }));
    await db
      .insertInto("transitions")
      .values([
        { task_id: cancelled, from_state: null, to_state: "planning", reason: "label added", actor: "octocat", created_at: T0 },
        { task_id: cancelled, from_state: "planning", to_state: "cancelled", reason: "issue closed", actor: "octocat", created_at: T0 + 2_000 },
      ])
      .execute();
    // Same instant as `blocked`: the higher id first. No reason anywhere: "".
    const silent = await insertTask(db, task({ stage: "failed", issue_number: 5, finished_at: T0 + 3_000 }));
    const elsewhere = await insertTask(
      db,
      task({
        stage: "failed",
        installation_id: INST_B,
        owner: "beta-org",
        repo: "app",
        issue_number: 6,
        failure_reason: "beta broke",
        finished_at: T0 + 9_000,
      }),
    );
    await insertTask(db, task({ stage: "merged", issue_number: 7, finished_at: T0 + 10_000 }));
    await insertTask(db, task({ stage: "coding", issue_number: 8, updated_at: T0 + 10_000 }));

    expect(await recentFailures(db, EVERYTHING)).toEqual([
      { id: elsewhere, repository: "beta-org/app", issueNumber: 6, issueTitle: null, state: "failed", reason: "beta broke", at: T0 + 9_000 },
      {
        id: budget,
        repository: "octo-org/octo-repo",
        issueNumber: 3,
        issueTitle: null,
        state: "budget_exceeded",
        reason: "Over the monthly budget.",
        at: T0 + 5_000,
      },
      {
        id: failed,
        repository: "octo-org/octo-repo",
        issueNumber: 1,
        issueTitle: "Crash",
        state: "failed",
        reason: "The Coder hit an API error.",
        at: T0 + 4_000,
      },
      { id: silent, repository: "octo-org/octo-repo", issueNumber: 5, issueTitle: null, state: "failed", reason: "", at: T0 + 3_000 },
      { id: blocked, repository: "octo-org/octo-repo", issueNumber: 2, issueTitle: null, state: "blocked", reason: "Waiting for /approve.", at: T0 + 3_000 },
      { id: cancelled, repository: "octo-org/octo-repo", issueNumber: 4, issueTitle: null, state: "cancelled", reason: "issue closed", at: T0 + 2_000 },
    ]);
    expect((await recentFailures(db, EVERYTHING, 2)).map((f) => f.id)).toEqual([elsewhere, budget]);
    expect((await recentFailures(db, { installationIds: [INST_B], repositories: null })).map((f) => f.id)).toEqual([elsewhere]);
    expect((await recentFailures(db, { installationIds: null, repositories: ["octo-org/octo-repo"] })).map((f) => f.id)).toEqual([
      budget,
      failed,
      silent,
      blocked,
      cancelled,
    ]);
    expect(await recentFailures(db, { installationIds: [], repositories: null })).toEqual([]);
    expect(await recentFailures(db, { installationIds: null, repositories: [] })).toEqual([]);
  });

  it("gives a task only to a scope that may see it", async () => {
    const db = dbOf(getDb, backend);
    const id = await insertTask(db, task({ stage: "coding", issue_number: 42, issue_title: "Add a flag" }));
    const other = await insertTask(db, task({ stage: "coding", installation_id: INST_B, owner: "beta-org", repo: "app", issue_number: 42 }));

    expect(await taskInScope(db, EVERYTHING, id)).toMatchObject({
      id,
      installation_id: INST_A,
      owner: "octo-org",
      repo: "octo-repo",
      issue_number: 42,
      issue_title: "Add a flag",
      stage: "coding",
      created_at: T0,
    });
    expect(await taskInScope(db, { installationIds: [INST_A], repositories: ["octo-org/octo-repo"] }, id)).toMatchObject({ id });
    // A task of another repository (even in an installation the scope holds) is refused.
    expect(await taskInScope(db, { installationIds: [INST_A], repositories: ["octo-org/octo-web"] }, id)).toBeUndefined();
    expect(await taskInScope(db, { installationIds: [INST_A, INST_B], repositories: ["octo-org/octo-repo"] }, other)).toBeUndefined();
    expect(await taskInScope(db, { installationIds: [INST_B], repositories: null }, id)).toBeUndefined();
    expect(await taskInScope(db, { installationIds: [], repositories: null }, id)).toBeUndefined();
    expect(await taskInScope(db, { installationIds: null, repositories: [] }, id)).toBeUndefined();
    expect(await taskInScope(db, EVERYTHING, other + 1000)).toBeUndefined();
  });

  it("builds a task's timeline: transitions in order, its jobs without notify, its LLM calls with tokens and cost", async () => {
    const db = dbOf(getDb, backend);
    const id = await insertTask(db, task({ stage: "new", issue_number: 9 }));
    const other = await insertTask(db, task({ stage: "new", issue_number: 10 }));
    await transition(db, id, "planning", { reason: "label added", actor: "octocat", now: T0 + 1_000 });
    await transition(db, other, "planning", { reason: "other task", actor: "octocat", now: T0 + 1_500 });
    await transition(db, id, "coding", { reason: "plan posted", actor: "mission-control", now: T0 + 2_000 });
    await transition(db, id, "failed", { reason: "The Coder hit an API error.", actor: "mission-control", now: T0 + 3_000 });

    await recordUsage(
      db,
      usage({
        task_id: id,
        subject_number: 9,
        job_id: "job-1",
        created_at: T0 + 1_100,
        input_tokens: 1_200,
        output_tokens: 340,
        cache_creation_input_tokens: 56,
        cache_read_input_tokens: 7_800,
        cost_nano_usd: 4_000_000_000_000_001,
        request_id: "req_1",
      }),
    );
    await recordUsage(
      db,
      usage({
        task_id: id,
        subject_number: 9,
        agent: "coder",
        model: "claude-opus-5",
        created_at: T0 + 2_100,
        input_tokens: 10,
        output_tokens: 20,
        cost_nano_usd: 0,
      }),
    );
    await recordUsage(db, usage({ task_id: other, subject_number: 10, cost_nano_usd: 5 }));

    const plan = await seedJob(db, backend, id, {
      kind: "plan",
      state: "succeeded",
      attempts: 1,
      createdAt: T0 + 1_000,
      updatedAt: T0 + 2_000,
      finishedAt: T0 + 2_000,
    });
    const code = await seedJob(db, backend, id, {
      kind: "code",
      state: "running",
      attempts: 2,
      createdAt: T0 + 2_000,
      updatedAt: T0 + 2_500,
      lastError: "timeout",
    });
    const command = await seedJob(db, backend, id, {
      kind: "command",
      state: "queued",
      attempts: 0,
      createdAt: T0 + 2_600,
      updatedAt: T0 + 2_600,
      lockKey: "cmd:octo-org/octo-repo#9",
    });
    await seedJob(db, backend, id, { kind: "notify", state: "queued", attempts: 0, createdAt: T0 + 2_700, updatedAt: T0 + 2_700 });

    const timeline = await taskTimeline(db, id);
    expect(timeline.transitions).toEqual([
      { id: expect.any(Number), task_id: id, from_state: null, to_state: "planning", reason: "label added", actor: "octocat", created_at: T0 + 1_000 },
      {
        id: expect.any(Number),
        task_id: id,
        from_state: "planning",
        to_state: "coding",
        reason: "plan posted",
        actor: "mission-control",
        created_at: T0 + 2_000,
      },
      {
        id: expect.any(Number),
        task_id: id,
        from_state: "coding",
        to_state: "failed",
        reason: "The Coder hit an API error.",
        actor: "mission-control",
        created_at: T0 + 3_000,
      },
    ]);
    expect(timeline.calls).toEqual([
      {
        id: expect.any(Number),
        created_at: T0 + 1_100,
        installation_id: INST_A,
        repository: "octo-org/octo-repo",
        subject_number: 9,
        task_id: id,
        job_id: "job-1",
        agent: "architect",
        model: "claude-sonnet-5-5",
        input_tokens: 1_200,
        output_tokens: 340,
        cache_creation_input_tokens: 56,
        cache_read_input_tokens: 7_800,
        cost_nano_usd: 4_000_000_000_000_001,
        request_id: "req_1",
      },
      {
        id: expect.any(Number),
        created_at: T0 + 2_100,
        installation_id: INST_A,
        repository: "octo-org/octo-repo",
        subject_number: 9,
        task_id: id,
        job_id: null,
        agent: "coder",
        model: "claude-opus-5",
        input_tokens: 10,
        output_tokens: 20,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        cost_nano_usd: 0,
        request_id: null,
      },
    ]);

    if (backend.name === "sqlite") {
      // Every job of the table, with its times and error.
      expect(timeline.jobs).toEqual([
        { id: plan, kind: "plan", state: "succeeded", attempts: 1, createdAt: T0 + 1_000, updatedAt: T0 + 2_000, finishedAt: T0 + 2_000, lastError: null },
        { id: code, kind: "code", state: "running", attempts: 2, createdAt: T0 + 2_000, updatedAt: T0 + 2_500, finishedAt: null, lastError: "timeout" },
        { id: command, kind: "command", state: "queued", attempts: 0, createdAt: T0 + 2_600, updatedAt: T0 + 2_600, finishedAt: null, lastError: null },
      ]);
    } else {
      // pg-boss archives finished jobs: the queued and running ones, without times it does not keep.
      expect(timeline.jobs).toEqual([
        { id: code, kind: "code", state: "running", attempts: 2, createdAt: null, updatedAt: T0 + 2_500, finishedAt: null, lastError: null },
        { id: command, kind: "command", state: "queued", attempts: 0, createdAt: null, updatedAt: T0 + 2_600, finishedAt: null, lastError: null },
      ]);
    }
    expect(await taskTimeline(db, other + 1000)).toEqual({ transitions: [], jobs: [], calls: [] });
  });

  it("leaves out a job of another installation or repository (SQLite; pg-boss jobs are selected by task id)", async () => {
    const db = dbOf(getDb, backend);
    const id = await insertTask(db, task({ stage: "coding", issue_number: 11 }));
    const own = await seedJob(db, backend, id, { kind: "code", state: "queued", attempts: 0, createdAt: T0, updatedAt: T0, lockKey: "Octo-Org/Octo-Repo#11" });
    if (backend.name === "postgres") {
      // pg-boss jobs carry no lock key column the dashboard reads: the task id alone selects them.
      expect((await taskTimeline(db, id)).jobs.map((j) => j.id)).toEqual([own]);
      return;
    }
    await seedJob(db, backend, id, { kind: "code", state: "queued", attempts: 0, createdAt: T0, updatedAt: T0, lockKey: "octo-org/octo-repo-fork#11" });
    await seedJob(db, backend, id, { kind: "command", state: "queued", attempts: 0, createdAt: T0, updatedAt: T0, lockKey: "cmd:beta-org/app#11" });
    await seedJob(db, backend, id, { kind: "code", state: "queued", attempts: 0, createdAt: T0, updatedAt: T0, installationId: INST_B });
    expect((await taskTimeline(db, id)).jobs.map((j) => j.id)).toEqual([own]);
  });

  it("reads live jobs through the handle's queue: on PostgreSQL a handle without one refuses", async () => {
    const db = dbOf(getDb, backend);
    const id = await insertTask(db, task({ stage: "coding" }));
    const bare = backend.openConnection();
    if (backend.name === "sqlite") {
      expect((await liveTasks(bare, EVERYTHING)).map((t) => t.id)).toEqual([id]);
      expect((await taskTimeline(bare, id)).jobs).toEqual([]);
      return;
    }
    await expect(liveTasks(bare, EVERYTHING)).rejects.toThrow("no job queue attached");
    await expect(taskTimeline(bare, id)).rejects.toThrow("no job queue attached");
    // What needs no queue works on any handle.
    expect((await recentFailures(bare, EVERYTHING)).length).toBe(0);
    expect((await taskInScope(bare, EVERYTHING, id))?.id).toBe(id);
  });

  it("offers the scope's installations, repositories, agents and models as filter choices, sorted", async () => {
    const db = dbOf(getDb, backend);
    await recordUsage(db, usage({ installation_id: INST_A, repository: "octo-org/octo-repo", agent: "coder", model: "claude-sonnet-5-5" }));
    await recordUsage(db, usage({ installation_id: INST_A, repository: "octo-org/octo-repo", agent: "architect", model: "claude-sonnet-5-5" }));
    await recordUsage(db, usage({ installation_id: INST_A, repository: "octo-org/docs", agent: "reviewer", model: "claude-opus-5" }));
    await recordUsage(db, usage({ installation_id: INST_B, repository: "beta-org/app", agent: "tester", model: "claude-haiku-5" }));

    expect(await ledgerDimensions(db, EVERYTHING)).toEqual({
      installationIds: [INST_B, INST_A],
      repositories: ["beta-org/app", "octo-org/docs", "octo-org/octo-repo"],
      agents: ["architect", "coder", "reviewer", "tester"],
      models: ["claude-haiku-5", "claude-opus-5", "claude-sonnet-5-5"],
    });
    expect(await ledgerDimensions(db, { installationIds: [INST_A], repositories: ["octo-org/octo-repo", "beta-org/app"] })).toEqual({
      installationIds: [INST_A],
      repositories: ["octo-org/octo-repo"],
      agents: ["architect", "coder"],
      models: ["claude-sonnet-5-5"],
    });
    expect(await ledgerDimensions(db, { installationIds: null, repositories: ["beta-org/app"] })).toEqual({
      installationIds: [INST_B],
      repositories: ["beta-org/app"],
      agents: ["tester"],
      models: ["claude-haiku-5"],
    });
    const nothing = { installationIds: [], repositories: [], agents: [], models: [] };
    expect(await ledgerDimensions(db, { installationIds: [], repositories: null })).toEqual(nothing);
    expect(await ledgerDimensions(db, { installationIds: null, repositories: [] })).toEqual(nothing);
    expect(await ledgerDimensions(db, { installationIds: [INST_B], repositories: ["octo-org/docs"] })).toEqual(nothing);
  });
});
