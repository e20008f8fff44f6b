import { expect, it } from "vitest";

import type { BudgetLimit } from "../../../src/domain/budget-rules.js";
import { spendReport } from "../../../src/store/budgets.js";
import type { RepositoryRename } from "../../../src/domain/repository.js";
import { type Db, inTransaction } from "../../../src/store/db.js";
import { addLearning, addLearningProposal, listLearnings, pendingLearningProposals } from "../../../src/store/memory.js";
import { addProposals, findProposal, findSchedule, recordStandupRun, upsertSchedule } from "../../../src/store/orchestrator.js";
import { renameRepository } from "../../../src/store/repository-rename.js";
import { findTaskByIssue, findTaskByPullRequest, loadTask } from "../../../src/store/tasks.js";
import { recordUsage } from "../../../src/store/usage.js";
import { insertTask, usageRow } from "../../helpers/db.js";
import { describeStoreContract } from "../../helpers/store-backends.js";

/** An installation id past 2^32 (a `bigint` on PostgreSQL), and another installation. */
const INST = 98_765_432_101;
const OTHER = 5;
const OWNER = "Octo-Org";
const FROM = "Widgets";
const TO = "Gadgets";
const RENAME: RepositoryRename = { installationId: INST, owner: OWNER, from: FROM, to: TO, cloneUrl: "https://github.com/Octo-Org/Gadgets.git" };
const NOW = Date.UTC(2026, 10, 15, 12, 0);
const MONTH = Date.UTC(2026, 10, 1);
const DAY = Date.UTC(2026, 10, 15);
const MONTHLY: BudgetLimit = { scope: "repository", period: "monthly", limitNanoUsd: 10_000_000_000, threshold: 0.8, action: "block", source: "server" };

const subject = (installationId: number, repo: string) => ({
  installationId,
  repository: `${OWNER}/${repo}`,
  agent: "coder",
  taskId: 1,
  subjectNumber: null,
  jobId: null,
});

/** Nano-dollars the repository's monthly limit counts: recorded usage and held reservations. */
async function monthlySpend(db: Db, installationId: number, repo: string) {
  const [status] = await spendReport(db, subject(installationId, repo), [MONTHLY], NOW);
  return { usage: status?.usageNanoUsd, held: status?.heldNanoUsd };
}

async function alert(db: Db, scope: string, scopeKey: string, period = "monthly", periodStart = MONTH): Promise<void> {
  await db.insertInto("budget_alerts").values({ scope, scope_key: scopeKey, period, period_start: periodStart, threshold: 0.8, created_at: NOW }).execute();
}

async function reservation(db: Db, installationId: number, repository: string, taskId: number, amount: number): Promise<void> {
  await db
    .insertInto("budget_reservations")
    .values({
      created_at: NOW - 500,
      installation_id: installationId,
      repository,
      agent: "coder",
      task_id: taskId,
      job_id: null,
      amount_nano_usd: amount,
      status: "held",
      settled_at: null,
    })
    .execute();
}

let comment = 1;
async function learn(db: Db, installationId: number, repo: string): Promise<void> {
  const n = comment++;
  await addLearning(db, {
    installationId,
    repository: `${OWNER}/${repo}`,
    text: `Learning ${n}: run npm test before pushing.`,
    sourceUrl: `https://github.com/${OWNER}/${repo}/issues/1#issuecomment-${n}`,
    sourceKey: `comment:${n}`,
    author: "maintainer",
    createdAt: NOW - 10_000,
  });
}

async function schedule(db: Db, installationId: number, repo: string) {
  return upsertSchedule(
    db,
    { installationId, owner: OWNER, repo, kind: "standup", cron: "0 9 * * *", timezone: "UTC" },
    () => NOW + 3_600_000,
    NOW - 86_400_000,
  );
}

async function propose(db: Db, installationId: number, repo: string, fingerprint: string): Promise<void> {
  await addProposals(
    db,
    { installationId, owner: OWNER, repo },
    [{ fingerprint, title: `Follow up ${fingerprint}`, body: "…", sourceKind: "todo", sourceUrl: "https://github.com/x" }],
    { proposedOn: "2026-11-15", maxPerDay: 3, now: NOW },
  );
}

/**
 * Rows of the renamed repository in every table that keys by name, and rows that must stay: the
 * same name in another installation, and another repository whose name starts like it.
 */
async function seed(db: Db) {
  const clone = `https://github.com/${OWNER}/${FROM}.git`;
  const task = await insertTask(db, { installation_id: INST, owner: OWNER, repo: FROM, issue_number: 7, pr_number: 12, clone_url: clone });
  const second = await insertTask(db, { installation_id: INST, owner: OWNER, repo: FROM, issue_number: 8, clone_url: clone });
  const otherRepo = await insertTask(db, { installation_id: INST, owner: OWNER, repo: `${FROM}2`, issue_number: 7, pr_number: 12 });
  const otherInstallation = await insertTask(db, { installation_id: OTHER, owner: OWNER, repo: FROM, issue_number: 9, pr_number: 13, clone_url: clone });

  for (const [installationId, repo, taskId, cost] of [
    [INST, FROM, task, 1_000],
    [INST, FROM, second, 2_000],
    [INST, `${FROM}2`, otherRepo, 500],
    [OTHER, FROM, otherInstallation, 700],
  ] as const) {
    await recordUsage(
      db,
      usageRow({ installation_id: installationId, repository: `${OWNER}/${repo}`, task_id: taskId, cost_nano_usd: cost, created_at: NOW - 1_000 }),
    );
  }
  await reservation(db, INST, `${OWNER}/${FROM}`, task, 300);
  await reservation(db, OTHER, `${OWNER}/${FROM}`, otherInstallation, 400);

  for (const [scope, key] of [
    ["repository", `${OWNER}/${FROM}`],
    ["repository", `${OWNER}/${FROM}#warn`],
    ["agent", `${OWNER}/${FROM}:coder`],
    ["agent", `${OWNER}/${FROM}:reviewer#warn`],
    ["global", `*@${OWNER}/${FROM}`],
    ["installation", `${INST}@${OWNER}/${FROM}`],
    ["installation", `${OTHER}@${OWNER}/${FROM}`],
    ["repository", `${OWNER}/${FROM}2`],
    ["agent", `${OWNER}/${FROM}2:coder`],
    ["agent", "coder"],
    ["task", String(task)],
  ] as const)
    await alert(db, scope, key);
  // The day's alert was raised under both names (a call made under the new name before the rename was handled).
  await alert(db, "repository", `${OWNER}/${FROM}`, "daily", DAY);
  await alert(db, "repository", `${OWNER}/${TO}`, "daily", DAY);

  await learn(db, INST, FROM);
  await learn(db, INST, FROM);
  await learn(db, INST, `${FROM}2`);
  await learn(db, OTHER, FROM);
  await addLearningProposal(db, {
    installationId: INST,
    repository: `${OWNER}/${FROM}`,
    pullNumber: 12,
    commentId: 5_001,
    text: "Prefer const.",
    sourceUrl: "https://x/1",
    createdAt: NOW,
  });
  await addLearningProposal(db, {
    installationId: OTHER,
    repository: `${OWNER}/${FROM}`,
    pullNumber: 13,
    commentId: 5_002,
    text: "Prefer let.",
    sourceUrl: "https://x/2",
    createdAt: NOW,
  });

  const standup = await schedule(db, INST, FROM);
  await recordStandupRun(db, standup.id, NOW - 3_600_000, 42);
  await schedule(db, OTHER, FROM);
  await schedule(db, INST, `${FROM}2`);
  await propose(db, INST, FROM, "todo:a");
  await propose(db, OTHER, FROM, "todo:b");
  return { task, second, otherRepo, otherInstallation };
}

/** Every name-keyed column of every table, to show that a run changed nothing. */
async function snapshot(db: Db) {
  return {
    tasks: await db.selectFrom("tasks").select(["id", "installation_id", "owner", "repo", "clone_url"]).orderBy("id").execute(),
    usage: await db.selectFrom("llm_usage").select(["id", "installation_id", "repository"]).orderBy("id").execute(),
    reservations: await db.selectFrom("budget_reservations").select(["id", "installation_id", "repository"]).orderBy("id").execute(),
    alerts: await db.selectFrom("budget_alerts").select(["id", "scope", "scope_key"]).orderBy("id").execute(),
    learnings: await db.selectFrom("learnings").select(["id", "installation_id", "repository"]).orderBy("id").execute(),
    learningProposals: await db.selectFrom("learning_proposals").select(["id", "installation_id", "repository"]).orderBy("id").execute(),
    schedules: await db.selectFrom("repository_schedules").select(["id", "installation_id", "repository", "owner", "repo"]).orderBy("id").execute(),
    followUps: await db.selectFrom("follow_up_proposals").select(["id", "installation_id", "repository", "number"]).orderBy("id").execute(),
  };
}

const NOTHING = { tasks: 0, llmUsage: 0, budgetReservations: 0, budgetAlerts: 0, learnings: 0, learningProposals: 0, schedules: 0, followUpProposals: 0 };

describeStoreContract("repository rename", (getDb) => {
  it("moves the installation's rows of the old name in every table, and nothing else", async () => {
    const db = getDb();
    const ids = await seed(db);

    expect(await renameRepository(db, RENAME)).toEqual({
      outcome: "renamed",
      moved: { tasks: 2, llmUsage: 2, budgetReservations: 1, budgetAlerts: 6, learnings: 2, learningProposals: 1, schedules: 1, followUpProposals: 1 },
    });

    // Deliveries under the new name find the app's pull request and the issues; the old name has none left in this installation.
    const task = await findTaskByPullRequest(db, OWNER, TO, 12);
    expect(task).toMatchObject({ id: ids.task, installation_id: INST, owner: OWNER, repo: TO, issue_number: 7, clone_url: RENAME.cloneUrl });
    expect((await findTaskByIssue(db, OWNER, TO, 8))?.id).toBe(ids.second);
    expect(await findTaskByIssue(db, OWNER, FROM, 7)).toBeUndefined();
    // The same name in another installation, and another repository, stay as they were.
    expect(await loadTask(db, ids.otherInstallation)).toMatchObject({
      installation_id: OTHER,
      repo: FROM,
      clone_url: `https://github.com/${OWNER}/${FROM}.git`,
    });
    expect((await findTaskByPullRequest(db, OWNER, FROM, 13))?.id).toBe(ids.otherInstallation);
    expect(await loadTask(db, ids.otherRepo)).toMatchObject({ repo: `${FROM}2` });

    // The month's spend and holds count under the new name: the budget does not restart.
    expect(await monthlySpend(db, INST, TO)).toEqual({ usage: 3_000, held: 300 });
    // The old name's repository limit now counts only the other installation's rows (it has no installation filter).
    expect(await monthlySpend(db, INST, FROM)).toEqual({ usage: 700, held: 400 });
    expect(await monthlySpend(db, INST, `${FROM}2`)).toEqual({ usage: 500, held: 0 });

    const alerts = await db.selectFrom("budget_alerts").select(["scope", "scope_key", "period"]).orderBy("id").execute();
    expect(alerts).toEqual([
      { scope: "repository", scope_key: `${OWNER}/${TO}`, period: "monthly" },
      { scope: "repository", scope_key: `${OWNER}/${TO}#warn`, period: "monthly" },
      { scope: "agent", scope_key: `${OWNER}/${TO}:coder`, period: "monthly" },
      { scope: "agent", scope_key: `${OWNER}/${TO}:reviewer#warn`, period: "monthly" },
      { scope: "global", scope_key: `*@${OWNER}/${TO}`, period: "monthly" },
      { scope: "installation", scope_key: `${INST}@${OWNER}/${TO}`, period: "monthly" },
      { scope: "installation", scope_key: `${OTHER}@${OWNER}/${FROM}`, period: "monthly" },
      { scope: "repository", scope_key: `${OWNER}/${FROM}2`, period: "monthly" },
      { scope: "agent", scope_key: `${OWNER}/${FROM}2:coder`, period: "monthly" },
      { scope: "agent", scope_key: "coder", period: "monthly" },
      { scope: "task", scope_key: String(ids.task), period: "monthly" },
      // Already raised under the new name in that window: the old row stays (no second alert, no unique violation).
      { scope: "repository", scope_key: `${OWNER}/${FROM}`, period: "daily" },
      { scope: "repository", scope_key: `${OWNER}/${TO}`, period: "daily" },
    ]);

    expect((await listLearnings(db, INST, `${OWNER}/${TO}`)).total).toBe(2);
    expect((await listLearnings(db, INST, `${OWNER}/${FROM}`)).total).toBe(0);
    expect((await listLearnings(db, OTHER, `${OWNER}/${FROM}`)).total).toBe(1);
    expect((await listLearnings(db, INST, `${OWNER}/${FROM}2`)).total).toBe(1);
    expect((await pendingLearningProposals(db, INST, `${OWNER}/${TO}`, 10, NOW)).map((p) => p.comment_id)).toEqual([5_001]);
    expect((await pendingLearningProposals(db, OTHER, `${OWNER}/${FROM}`, 10, NOW)).map((p) => p.comment_id)).toEqual([5_002]);

    // The stand-up keeps its issue, next fire and proposals (numbers included).
    expect(await findSchedule(db, { installationId: INST, owner: OWNER, repo: TO }, "standup")).toMatchObject({
      repository: "octo-org/gadgets",
      owner: OWNER,
      repo: TO,
      standup_issue_number: 42,
      next_run_at: NOW + 3_600_000,
      disabled_at: null,
    });
    expect(await findSchedule(db, { installationId: INST, owner: OWNER, repo: FROM }, "standup")).toBeUndefined();
    expect(await findSchedule(db, { installationId: OTHER, owner: OWNER, repo: FROM }, "standup")).toMatchObject({ repo: FROM });
    expect(await findSchedule(db, { installationId: INST, owner: OWNER, repo: `${FROM}2` }, "standup")).toBeDefined();
    expect(await findProposal(db, { installationId: INST, owner: OWNER, repo: TO }, 1)).toMatchObject({ fingerprint: "todo:a" });
    expect(await findProposal(db, { installationId: INST, owner: OWNER, repo: FROM }, 1)).toBeUndefined();
    expect(await findProposal(db, { installationId: OTHER, owner: OWNER, repo: FROM }, 1)).toMatchObject({ fingerprint: "todo:b" });
  });

  it("is idempotent: run again it moves nothing and changes nothing; a ledger row recorded late under the old name follows", async () => {
    const db = getDb();
    const ids = await seed(db);
    expect((await renameRepository(db, RENAME)).outcome).toBe("renamed");
    const after = await snapshot(db);
    expect(await renameRepository(db, RENAME)).toEqual({ outcome: "renamed", moved: NOTHING });
    expect(await snapshot(db)).toEqual(after);

    // A call that was in flight during the rename (its job had loaded the task before) is recorded under the old name.
    await recordUsage(db, usageRow({ installation_id: INST, repository: `${OWNER}/${FROM}`, task_id: ids.task, cost_nano_usd: 50, created_at: NOW - 10 }));
    expect(await renameRepository(db, RENAME)).toEqual({ outcome: "renamed", moved: { ...NOTHING, llmUsage: 1 } });
    expect(await monthlySpend(db, INST, TO)).toEqual({ usage: 3_050, held: 300 });
  });

  it.each([
    ["a task of the installation", (db: Db) => insertTask(db, { installation_id: INST, owner: OWNER, repo: TO, issue_number: 50 })],
    [
      "a task of another installation (tasks are unique by name and issue)",
      (db: Db) => insertTask(db, { installation_id: OTHER, owner: OWNER, repo: "gadgets", issue_number: 7 }),
    ],
    ["a stand-up schedule of the installation", (db: Db) => schedule(db, INST, TO)],
    ["a follow-up proposal of the installation", (db: Db) => propose(db, INST, TO, "todo:z")],
  ])("a name already in use (%s): refused, nothing moves", async (_what, occupy) => {
    const db = getDb();
    await seed(db);
    await occupy(db);
    const before = await snapshot(db);
    expect(await renameRepository(db, RENAME)).toEqual({ outcome: "refused", reason: expect.stringContaining("new name") });
    expect(await snapshot(db)).toEqual(before);
    expect(await findTaskByPullRequest(db, OWNER, FROM, 12)).toMatchObject({ installation_id: INST, repo: FROM });
  });

  it("a name used only in another installation by a schedule or proposal (keyed per installation) does not stop the rename", async () => {
    const db = getDb();
    await seed(db);
    await schedule(db, OTHER, TO);
    expect(await renameRepository(db, RENAME)).toMatchObject({ outcome: "renamed", moved: { tasks: 2, schedules: 1 } });
  });

  it("a learning or proposal whose source the new name already has (another installation's) stays: no unique violation", async () => {
    const db = getDb();
    await seed(db);
    const [first] = (await listLearnings(db, INST, `${OWNER}/${FROM}`)).learnings.slice(-1);
    await addLearning(db, {
      installationId: OTHER,
      repository: `${OWNER}/${TO}`,
      text: "Same comment.",
      sourceUrl: "https://x",
      sourceKey: first!.source_key,
      author: "a",
      createdAt: NOW,
    });
    await addLearningProposal(db, {
      installationId: OTHER,
      repository: `${OWNER}/${TO}`,
      pullNumber: 1,
      commentId: 5_001,
      text: "Same reply.",
      sourceUrl: "https://x",
      createdAt: NOW,
    });
    expect(await renameRepository(db, RENAME)).toMatchObject({ outcome: "renamed", moved: { tasks: 2, learnings: 1, learningProposals: 0 } });
    expect((await listLearnings(db, INST, `${OWNER}/${FROM}`)).learnings.map((l) => l.source_key)).toEqual([first!.source_key]);
  });

  it("a rename that changes only the case keeps the lower-case keys and respells the rest", async () => {
    const db = getDb();
    const ids = await seed(db);
    const lower = { ...RENAME, to: "widgets", cloneUrl: "https://github.com/Octo-Org/widgets.git" };
    expect(await renameRepository(db, lower)).toEqual({
      outcome: "renamed",
      moved: { tasks: 2, llmUsage: 2, budgetReservations: 1, budgetAlerts: 7, learnings: 0, learningProposals: 0, schedules: 1, followUpProposals: 0 },
    });
    expect(await loadTask(db, ids.task)).toMatchObject({ repo: "widgets", clone_url: lower.cloneUrl });
    expect(await monthlySpend(db, INST, "widgets")).toEqual({ usage: 3_000, held: 300 });
    expect((await listLearnings(db, INST, `${OWNER}/widgets`)).total).toBe(2);
    expect(await findSchedule(db, { installationId: INST, owner: OWNER, repo: "widgets" }, "standup")).toMatchObject({
      repo: "widgets",
      standup_issue_number: 42,
    });
    expect(await renameRepository(db, lower)).toEqual({ outcome: "renamed", moved: NOTHING });
  });

  it("renames in a row, applied in the order they arrived (A→B, then B→C), end under C", async () => {
    const db = getDb();
    const ids = await seed(db);
    const third = { ...RENAME, from: TO, to: "Doohickeys", cloneUrl: "https://github.com/Octo-Org/Doohickeys.git" };
    expect(await renameRepository(db, RENAME)).toMatchObject({ outcome: "renamed", moved: { tasks: 2, schedules: 1 } });
    expect(await renameRepository(db, third)).toMatchObject({ outcome: "renamed", moved: { tasks: 2, llmUsage: 2, learnings: 2, schedules: 1 } });

    expect(await findTaskByPullRequest(db, OWNER, "Doohickeys", 12)).toMatchObject({ id: ids.task, repo: "Doohickeys", clone_url: third.cloneUrl });
    expect(await findTaskByIssue(db, OWNER, TO, 7)).toBeUndefined();
    expect(await monthlySpend(db, INST, "Doohickeys")).toEqual({ usage: 3_000, held: 300 });
    expect(await monthlySpend(db, INST, TO)).toEqual({ usage: 0, held: 0 });
    expect((await listLearnings(db, INST, `${OWNER}/Doohickeys`)).total).toBe(2);
    expect(await findSchedule(db, { installationId: INST, owner: OWNER, repo: "Doohickeys" }, "standup")).toMatchObject({ standup_issue_number: 42 });
    expect(await findSchedule(db, { installationId: INST, owner: OWNER, repo: TO }, "standup")).toBeUndefined();
    // The other installation's rows never moved.
    expect(await loadTask(db, ids.otherInstallation)).toMatchObject({ repo: FROM });
  });

  it("given an open transaction, it writes in it: rolled back with the caller's other writes", async () => {
    const db = getDb();
    await seed(db);
    const before = await snapshot(db);
    await expect(
      inTransaction(db, async (trx) => {
        expect(await renameRepository(trx, RENAME)).toMatchObject({ outcome: "renamed", moved: { tasks: 2 } });
        throw new Error("the caller's next write failed");
      }),
    ).rejects.toThrow("the caller's next write failed");
    expect(await snapshot(db)).toEqual(before);
  });

  it("a repository the store never saw: nothing to move", async () => {
    expect(await renameRepository(getDb(), RENAME)).toEqual({ outcome: "renamed", moved: NOTHING });
  });
});
