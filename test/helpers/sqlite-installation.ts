import { sql } from "kysely";

import type { Db } from "../../src/store/db.js";
import { recordDelivery } from "../../src/store/deliveries.js";
import { addLearning, addLearningProposal } from "../../src/store/memory.js";
import { pauseInstallation } from "../../src/store/pauses.js";
import { enqueueJob } from "../../src/store/queue.js";
import { createTask, setTrackingNote, startNewRun, updateTask } from "../../src/store/tasks.js";
import { transition } from "../../src/store/transitions.js";

// An SQLite installation as the app leaves it after some work, written through the store's own
// functions: tasks with runs, plans, pull requests and transitions, deliveries, a pause, finished
// jobs, and the money tables (LLM usage ledger, budget reservations and alerts).
//
// The money tables are written by column name as the migrations define them (any column whose
// name contains `usd`: a float USD column, or an integer nano-dollar one when the name says
// `nano`), so the fixture follows a migration that changes how money is stored.

/** Saturday 2026-11-21, mid-day UTC. */
export const T0 = Date.parse("2026-11-21T12:00:00Z");

/** The ids the fixture wrote, for tests that refer to them. */
export interface Installation {
  taskIds: number[];
  finishedJobIds: string[];
}

/** Inserts `row` into `table`; every column whose name contains `usd` gets `usd` (nano-dollars when the name says `nano`). */
async function insertWithMoney(db: Db, table: string, row: Record<string, unknown>, usd: number): Promise<number> {
  const columns = (await sql<{ name: string }>`select name from pragma_table_info(${table})`.execute(db)).rows.map((r) => r.name);
  const money = Object.fromEntries(columns.filter((c) => /usd/i.test(c)).map((c) => [c, /nano/i.test(c) ? Math.round(usd * 1e9) : usd]));
  const values = { ...row, ...money };
  const names = Object.keys(values);
  const inserted = await sql<{ id: number }>`insert into ${sql.id(table)} (${sql.join(names.map((n) => sql.id(n)))}) values (${sql.join(
    names.map((n) => values[n]),
  )}) returning id`.execute(db);
  return inserted.rows[0]?.id ?? Number.NaN;
}

/** Fills a migrated SQLite database with a realistic installation; no job is left queued or running. */
export async function seedInstallation(db: Db): Promise<Installation> {
  const taskIds: number[] = [];
  const issues = [
    { issue: 12, title: "Add a dark mode", body: "The settings page needs a **dark mode** toggle.\n\n- [ ] CSS\n- [ ] toggle" },
    { issue: 13, title: "Crash on empty config", body: "`mc.yml` with `{}` crashes — see log 🙃" },
    { issue: 14, title: "Typo in README", body: null },
  ];
  for (const [i, { issue, title, body }] of issues.entries()) {
    const now = T0 + i * 60_000;
    const task = await createTask(db, {
      installation_id: 987_654_321,
      owner: "octo-org",
      repo: "widgets",
      issue_number: issue,
      run: 1,
      stage: "new",
      triggered_by: "octocat",
      triggered_by_id: 583_231,
      clone_url: "https://github.com/octo-org/widgets.git",
      default_branch: "main",
      config: JSON.stringify({ budgets: { task: 5 }, test: { command: "npm test" } }),
      issue_title: title,
      issue_body: body,
      created_at: now,
      updated_at: now,
    });
    taskIds.push(task.id);
    await recordDelivery(db, `d0f1c2e3-0000-4000-8000-00000000000${i}`, "issues.labeled", now);
    await transition(db, task.id, "planning", { reason: "label mission-control added", actor: "octocat", now: now + 1 });
  }
  const [first, second, third] = taskIds as [number, number, number];

  // The first task went all the way to a pull request ready for merge.
  await updateTask(db, first, {
    tracking_comment_id: 2_345_678_901,
    plan_comment_id: 2_345_678_950,
    plan_url: "https://github.com/octo-org/widgets/issues/12#issuecomment-2345678950",
    plan: JSON.stringify({ summary: "Add a toggle", steps: ["css", "toggle"] }),
    branch: "mission-control/issue-12",
    pr_number: 40,
    pr_url: "https://github.com/octo-org/widgets/pull/40",
    head_sha: "4f9c2a7e1b3d5f6a8c0e2b4d6f8a0c2e4b6d8f0a",
    reviewed_sha: "4f9c2a7e1b3d5f6a8c0e2b4d6f8a0c2e4b6d8f0a",
    tests_conclusion: "success",
    review_verdict: "approve",
    rework_cycles: 1,
  });
  for (const to of ["coding", "testing", "reviewing", "changes_requested", "coding", "reviewing", "ready_for_merge"] as const) {
    await transition(db, first, to, { reason: `moved to ${to}`, actor: "mission-control", now: T0 + 600_000 });
  }
  await setTrackingNote(db, first, "edit", "The issue was edited after the trigger; the edit was **ignored**.");

  // The second failed, and was started again.
  await transition(db, second, "failed", { reason: "the Architect returned no plan", actor: "mission-control", now: T0 + 700_000 });
  await updateTask(db, second, { failure_reason: "the Architect returned no plan" });
  await startNewRun(db, second, { login: "hubot", id: 1_234 }, { issue_title: "Crash on empty config (again)" }, T0 + 800_000);
  await transition(db, second, "planning", { reason: "/retry", actor: "hubot", now: T0 + 800_001 });

  // The third was blocked by an invalid repository config.
  await updateTask(db, third, { config_problems: JSON.stringify(["budgets.task: expected a number"]), blocked_reason: "invalid config" });
  await transition(db, third, "blocked", { reason: "invalid .github/mission-control.yml", actor: "mission-control", now: T0 + 900_000 });

  await pauseInstallation(db, 987_654_321, "org-owner", T0 + 950_000);
  await pauseInstallation(db, 55, "someone-else", T0 + 960_000);

  // Jobs that ran and finished (the queue's history, never copied).
  const finishedJobIds: string[] = [];
  for (const [i, taskId] of taskIds.entries()) {
    const id = await enqueueJob(
      db,
      { kind: "plan", taskId, installationId: 987_654_321, lockKey: `octo-org/widgets#${12 + i}`, dedupeKey: `plan:${taskId}:1`, maxAttempts: 5 },
      T0 + i,
    );
    if (id !== null) finishedJobIds.push(id);
  }
  await sql`update jobs set state = 'succeeded', attempts = 1, finished_at = ${T0 + 1_000_000}`.execute(db);

  // The ledger: one row per Messages API call, and the reservations held before each call.
  const calls = [
    { taskId: first, agent: "architect", model: "claude-opus-4-1", usd: 0.412_345, held: 0.9, status: "settled" },
    { taskId: first, agent: "coder", model: "claude-sonnet-5-5", usd: 1.000_000_1, held: 2.5, status: "settled" },
    { taskId: first, agent: "reviewer", model: "claude-sonnet-5-5", usd: 0.000_42, held: 0.25, status: "settled" },
    { taskId: second, agent: "architect", model: "claude-opus-4-1", usd: 0, held: 0.9, status: "released" },
  ];
  for (const [i, call] of calls.entries()) {
    const jobId = finishedJobIds[i % finishedJobIds.length] ?? null;
    await insertWithMoney(
      db,
      "budget_reservations",
      {
        created_at: T0 + 100_000 + i,
        installation_id: 987_654_321,
        repository: "octo-org/widgets",
        agent: call.agent,
        task_id: call.taskId,
        job_id: jobId,
        status: call.status,
        settled_at: T0 + 100_500 + i,
      },
      call.held,
    );
    if (call.status !== "settled") continue;
    await insertWithMoney(
      db,
      "llm_usage",
      {
        created_at: T0 + 100_400 + i,
        installation_id: 987_654_321,
        repository: "octo-org/widgets",
        subject_number: 12,
        task_id: call.taskId,
        job_id: jobId,
        agent: call.agent,
        model: call.model,
        input_tokens: 12_345 + i,
        output_tokens: 2_048,
        cache_creation_input_tokens: i * 100,
        cache_read_input_tokens: 40_000,
        request_id: `req_011CV${i}xyz`,
      },
      call.usd,
    );
  }
  // A reservation still held (its call was cut short), and a budget alert raised once.
  await insertWithMoney(
    db,
    "budget_reservations",
    {
      created_at: T0 + 200_000,
      installation_id: 987_654_321,
      repository: "octo-org/widgets",
      agent: "tester",
      task_id: third,
      job_id: null,
      status: "held",
      settled_at: null,
    },
    0.33,
  );
  await sql`insert into budget_alerts (scope, scope_key, period, period_start, threshold, created_at)
            values ('repository', 'octo-org/widgets', 'daily', ${Date.parse("2026-11-21T00:00:00Z")}, 0.8, ${T0 + 100_450})`.execute(db);

  // Repository memory (issue 14), in a database migrated that far: two learnings. Their FTS5 index is not copied (PostgreSQL indexes the rows itself).
  const memoryTable = await sql<{ n: number }>`select count(*) as n from sqlite_master where type = 'table' and name = 'learnings'`.execute(db);
  if (Number(memoryTable.rows[0]?.n ?? 0) > 0) {
    for (const [n, text] of [
      [1, "Run npm test before pushing."],
      [2, "Migrations are frozen in time."],
    ] as const) {
      await addLearning(db, {
        installationId: 987_654_321,
        repository: "octo-org/widgets",
        text,
        sourceUrl: `https://github.com/octo-org/widgets/issues/1#issuecomment-${n}`,
        sourceKey: `comment:${n}`,
        author: "maintainer",
        createdAt: T0 + 300_000 + n,
      });
    }
    await addLearningProposal(db, {
      installationId: 987_654_321,
      repository: "octo-org/widgets",
      pullNumber: 12,
      commentId: 5_000_000_001,
      text: "Use tabs in src/.",
      sourceUrl: "https://github.com/octo-org/widgets/pull/12#discussion_r5000000001",
      createdAt: T0 + 300_100,
    });
  }

  // Orchestrator mode (issue 14): a stand-up schedule and one proposed follow-up.
  const orchestratorTable = await sql<{ n: number }>`select count(*) as n from sqlite_master where type = 'table' and name = 'repository_schedules'`.execute(
    db,
  );
  if (Number(orchestratorTable.rows[0]?.n ?? 0) > 0) {
    await sql`insert into repository_schedules (installation_id, repository, owner, repo, kind, cron, timezone, next_run_at, last_run_at, standup_issue_number, created_at, updated_at)
              values (987654321, 'octo-org/widgets', 'octo-org', 'widgets', 'standup', '0 9 * * 1-5', 'Europe/Berlin', ${T0 + 86_400_000}, ${T0}, 40, ${T0}, ${T0})`.execute(
      db,
    );
    await sql`insert into follow_up_proposals (installation_id, repository, number, fingerprint, title, body, source_kind, source_url, status, proposed_on, created_at)
              values (987654321, 'octo-org/widgets', 1, 'todo:src/a.ts:retry', 'Resolve the TODO in src/a.ts', 'A TODO the app added.', 'todo', 'https://github.com/octo-org/widgets/pull/12', 'proposed', '2026-11-21', ${T0})`.execute(
      db,
    );
  }

  return { taskIds, finishedJobIds };
}

/** Queues a job that nobody ran yet (a live job). */
export async function queueLiveJob(db: Db, taskId: number, dedupeKey = `code:${taskId}:live`): Promise<void> {
  await enqueueJob(db, { kind: "code", taskId, installationId: 987_654_321, lockKey: `octo-org/widgets#live-${taskId}`, dedupeKey, maxAttempts: 5 }, T0);
}
