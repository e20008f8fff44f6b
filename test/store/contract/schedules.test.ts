import { sql } from "kysely";
import pino from "pino";
import { expect, it } from "vitest";

import { parseRepoConfig } from "../../../src/config/repo-config.js";
import { enqueueDueStandups, isStandupIssue, syncStandupSchedule } from "../../../src/pipeline/orchestrator.js";
import { type Db, inTransaction } from "../../../src/store/db.js";
import type { Store } from "../../../src/store/open-store.js";
import { addProposals, findProposal, findSchedule, proposalsToList, recordStandupRun, repositoryKey, upsertSchedule } from "../../../src/store/orchestrator.js";
import { queueDepth, type QueuedJob } from "../../../src/store/queue.js";
import { describeQueueContract } from "../../helpers/queue-backends.js";

const TARGET = { installationId: 98_765_432_101, owner: "Octo-Org", repo: "Widgets" };
/** The same repository as GitHub compares names: case-insensitively. */
const LOWER = { ...TARGET, owner: "octo-org", repo: "widgets" };
const HOUR_MS = 3_600_000;
const LEASE_MS = 60_000;
const log = pino({ level: "silent" });

/** The schedule tables are not in the suites' truncate list: emptied here. */
async function clean(db: Db): Promise<void> {
  await sql`delete from repository_schedules`.execute(db);
  await sql`delete from follow_up_proposals`.execute(db);
}

function config(standup?: { cron: string; timezone?: string }) {
  const result = parseRepoConfig(standup ? { orchestrator: { standup } } : {});
  expect(result.problems).toEqual([]);
  return result.config;
}

/** Claims every queued job of `store`, oldest first. */
async function claimAll(store: Store) {
  const jobs: QueuedJob[] = [];
  for (;;) {
    const job = await store.queue.claim(store.db, "test", LEASE_MS, { except: ["intake", "notify"] });
    if (!job) return jobs;
    jobs.push(job);
    // One per lock key at a time: complete it so the next of the same repository can be claimed.
    await inTransaction(store.db, (trx) => store.queue.complete(trx, job, "test"));
  }
}

describeQueueContract("repository schedules", (replicas) => {
  it("two replicas ticking together on one database enqueue each stand-up once", async () => {
    const { backend, a, b } = replicas();
    await clean(a.db);
    const fire = Date.UTC(2026, 10, 28, 8, 0);
    await upsertSchedule(a.db, { ...TARGET, kind: "standup", cron: "0 9 * * *", timezone: "Europe/Berlin" }, () => fire, fire - 3_600_000);

    // PostgreSQL: four ticks at once on two pools (two replicas). SQLite (embedded mode, one
    // process): two workers share the process's handle, whose transactions run one at a time —
    // two handles in one thread cannot interleave transactions — so the other handle ticks after.
    const handles = backend === "postgres" ? [a.db, b.db, a.db, b.db] : [a.db, a.db, a.db, a.db];
    const counts = await Promise.all(handles.map((db, i) => enqueueDueStandups(db, fire + 500 + i * 100, { log })));
    expect(counts.reduce((x, y) => x + y, 0)).toBe(1);
    expect(await enqueueDueStandups(b.db, fire + 1000, { log })).toBe(0);
    expect(await queueDepth(a.db)).toEqual({ queued: 1, running: 0 });
    // Not due again until the next day's 09:00 in Berlin.
    expect(await enqueueDueStandups(b.db, fire + 60_000, { log })).toBe(0);
    expect((await findSchedule(b.db, LOWER, "standup"))?.next_run_at).toBe(Date.UTC(2026, 10, 29, 8, 0));

    const [job] = await claimAll(a);
    expect(job).toMatchObject({ kind: "standup", task_id: null, lock_key: "standup:octo-org/widgets", dedupe_key: `standup:octo-org/widgets:${fire}` });
    expect(JSON.parse(job?.payload ?? "{}")).toEqual({ owner: "Octo-Org", repo: "Widgets", installationId: TARGET.installationId, scheduledFor: fire });
  });

  it("advances next_run_at in the schedule's time zone, across a daylight-saving change", async () => {
    const { a, b } = replicas();
    await clean(a.db);
    // 09:00 in Berlin is 08:00 UTC before the change (CET) and 07:00 UTC after it (CEST, 29 March 2026).
    const before = Date.UTC(2026, 2, 28, 8, 0);
    await upsertSchedule(a.db, { ...TARGET, kind: "standup", cron: "0 9 * * *", timezone: "Europe/Berlin" }, () => before, before - 1000);
    expect(await enqueueDueStandups(a.db, before, { log })).toBe(1);
    const after = Date.UTC(2026, 2, 29, 7, 0);
    expect((await findSchedule(a.db, LOWER, "standup"))?.next_run_at).toBe(after);
    expect(await enqueueDueStandups(b.db, after - 1, { log })).toBe(0);
    expect(await enqueueDueStandups(b.db, after, { log })).toBe(1);
    expect((await findSchedule(a.db, LOWER, "standup"))?.next_run_at).toBe(Date.UTC(2026, 2, 30, 7, 0));
    const jobs = await claimAll(b);
    expect(jobs.map((j) => (JSON.parse(j.payload) as { scheduledFor: number }).scheduledFor)).toEqual([before, after]);
  });

  it("skips fires missed while no replica ran: one stand-up, then the next regular time", async () => {
    const { a } = replicas();
    await clean(a.db);
    const fire = Date.UTC(2026, 10, 20, 9, 30);
    await upsertSchedule(a.db, { ...TARGET, kind: "standup", cron: "30 9 * * *", timezone: "UTC" }, () => fire, fire - 1000);
    const now = Date.UTC(2026, 10, 27, 12, 0);
    expect(await enqueueDueStandups(a.db, now, { log })).toBe(1);
    expect((await findSchedule(a.db, LOWER, "standup"))?.next_run_at).toBe(Date.UTC(2026, 10, 28, 9, 30));
  });

  it("follows the repository config: kept when unchanged, moved when changed, disabled when off", async () => {
    const { a } = replicas();
    await clean(a.db);
    const now = Date.UTC(2026, 10, 27, 10, 0);
    await syncStandupSchedule(a.db, TARGET, config({ cron: "0 9 * * 1-5", timezone: "America/New_York" }), now);
    const first = await findSchedule(a.db, LOWER, "standup");
    // Friday 27 November 2026, 10:00 UTC is 05:00 in New York: 09:00 EST the same day is 14:00 UTC.
    expect(first).toMatchObject({
      repository: "octo-org/widgets",
      cron: "0 9 * * 1-5",
      timezone: "America/New_York",
      next_run_at: Date.UTC(2026, 10, 27, 14, 0),
    });
    await syncStandupSchedule(a.db, TARGET, config({ cron: "0 9 * * 1-5", timezone: "America/New_York" }), now + 3_600_000);
    expect((await findSchedule(a.db, LOWER, "standup"))?.next_run_at).toBe(first?.next_run_at);
    await syncStandupSchedule(a.db, TARGET, config({ cron: "0 17 * * *" }), now);
    expect((await findSchedule(a.db, LOWER, "standup"))?.next_run_at).toBe(Date.UTC(2026, 10, 27, 17, 0));
    await syncStandupSchedule(a.db, TARGET, config(), now);
    expect(await findSchedule(a.db, LOWER, "standup")).toMatchObject({ disabled_at: now });
  });

  it("stores at most N new proposals a day and never one whose fingerprint it had", async () => {
    const { a } = replicas();
    await clean(a.db);
    const candidate = (n: number) => ({
      fingerprint: `todo:${n}`,
      title: `TODO ${n}`,
      body: "b",
      sourceKind: "todo" as const,
      sourceUrl: `https://ghe.example.test/x/${n}`,
    });
    const day1 = await addProposals(a.db, TARGET, [1, 2, 3, 4].map(candidate), { proposedOn: "2026-11-27", maxPerDay: 3 });
    expect(day1.map((p) => [p.number, p.fingerprint])).toEqual([
      [1, "todo:1"],
      [2, "todo:2"],
      [3, "todo:3"],
    ]);
    // The same day again (a retried stand-up): nothing new.
    expect(await addProposals(a.db, TARGET, [1, 2, 3, 4].map(candidate), { proposedOn: "2026-11-27", maxPerDay: 3 })).toEqual([]);
    const day2 = await addProposals(a.db, LOWER, [1, 4, 5].map(candidate), { proposedOn: "2026-11-28", maxPerDay: 3 });
    expect(day2.map((p) => [p.number, p.fingerprint, p.repository])).toEqual([
      [4, "todo:4", repositoryKey("Octo-Org", "Widgets")],
      [5, "todo:5", "octo-org/widgets"],
    ]);
  });
  it("never enqueues a stand-up within an hour of the last one, whatever the stored cron says", async () => {
    const { a, b } = replicas();
    await clean(a.db);
    // An every-minute schedule stored before the config refused it (the store does not check).
    const fire = Date.UTC(2026, 10, 28, 8, 0);
    const row = await upsertSchedule(a.db, { ...TARGET, kind: "standup", cron: "* * * * *", timezone: "UTC" }, () => fire, fire - 1000);
    // Before any stand-up ran: one fire, then nothing for an hour though the cron fires every minute.
    expect(await enqueueDueStandups(a.db, fire, { log })).toBe(1);
    expect((await findSchedule(a.db, LOWER, "standup"))?.next_run_at).toBe(fire + HOUR_MS);
    for (let minute = 1; minute < 60; minute++) expect(await enqueueDueStandups(b.db, fire + minute * 60_000, { log })).toBe(0);
    // The job wrote its stand-up 10 minutes after the fire: the next fire is not before an hour after that.
    await recordStandupRun(a.db, row.id, fire + 10 * 60_000, 41);
    expect(await enqueueDueStandups(a.db, fire + HOUR_MS, { log })).toBe(0);
    expect((await findSchedule(a.db, LOWER, "standup"))?.next_run_at).toBe(fire + HOUR_MS + 10 * 60_000);
    expect(await enqueueDueStandups(b.db, fire + HOUR_MS + 10 * 60_000, { log })).toBe(1);
    const jobs = await claimAll(a);
    expect(jobs.map((j) => (JSON.parse(j.payload) as { scheduledFor: number }).scheduledFor)).toEqual([fire, fire + HOUR_MS + 10 * 60_000]);
    // Once the stand-up issue exists, its job runs in that issue's command lane (where /approve and /dismiss run).
    expect(jobs.map((j) => j.lock_key)).toEqual(["standup:octo-org/widgets", "cmd:Octo-Org/Widgets#41"]);
  });

  it("keeps a disabled schedule and its stand-up issue, never fires it, and enables it again on the same issue", async () => {
    const { a } = replicas();
    await clean(a.db);
    const now = Date.UTC(2026, 10, 27, 10, 0);
    await syncStandupSchedule(a.db, TARGET, config({ cron: "0 9 * * *" }), now);
    const row = await findSchedule(a.db, LOWER, "standup");
    await recordStandupRun(a.db, Number(row?.id), now, 41);
    // The config turns the stand-up off: the row and the issue number stay, so /approve on issue 41 still means a proposal.
    await syncStandupSchedule(a.db, TARGET, config(), now + 1000);
    expect(await findSchedule(a.db, LOWER, "standup")).toMatchObject({ disabled_at: now + 1000, standup_issue_number: 41, last_run_at: now });
    expect(await isStandupIssue(a.db, "Octo-Org", "Widgets", 41, TARGET.installationId)).toBe(true);
    expect(await isStandupIssue(a.db, "Octo-Org", "Widgets", 41)).toBe(true);
    expect(await enqueueDueStandups(a.db, now + 10 * 86_400_000, { log })).toBe(0);
    expect(await queueDepth(a.db)).toEqual({ queued: 0, running: 0 });
    // On again (the same cron): enabled, a fresh next fire, the same issue.
    const later = Date.UTC(2026, 11, 1, 12, 0);
    await syncStandupSchedule(a.db, TARGET, config({ cron: "0 9 * * *" }), later);
    expect(await findSchedule(a.db, LOWER, "standup")).toMatchObject({
      id: row?.id,
      disabled_at: null,
      standup_issue_number: 41,
      next_run_at: Date.UTC(2026, 11, 2, 9, 0),
    });
    expect(await enqueueDueStandups(a.db, Date.UTC(2026, 11, 2, 9, 0), { log })).toBe(1);
  });

  it("keys schedules and proposals by installation: a repository name reused in another installation inherits nothing", async () => {
    const { a } = replicas();
    await clean(a.db);
    const other = { ...TARGET, installationId: 12_345 };
    const now = Date.UTC(2026, 10, 27, 10, 0);
    await syncStandupSchedule(a.db, TARGET, config({ cron: "0 9 * * *" }), now);
    await recordStandupRun(a.db, Number((await findSchedule(a.db, TARGET, "standup"))?.id), now, 41);
    const candidate = (n: number) => ({
      fingerprint: `todo:${n}`,
      title: `TODO ${n}`,
      body: "b",
      sourceKind: "todo" as const,
      sourceUrl: `https://ghe.example.test/x/${n}`,
    });
    await addProposals(a.db, TARGET, [1, 2].map(candidate), { proposedOn: "2026-11-27", maxPerDay: 3 });

    expect(await findSchedule(a.db, other, "standup")).toBeUndefined();
    expect(await findProposal(a.db, other, 1)).toBeUndefined();
    expect(await proposalsToList(a.db, other, 0)).toEqual([]);
    expect(await isStandupIssue(a.db, "Octo-Org", "Widgets", 41, other.installationId)).toBe(false);
    // The other installation's stand-up gets its own row (the first keeps its own), and its own proposals numbered from 1.
    await syncStandupSchedule(a.db, other, config({ cron: "0 17 * * *" }), now);
    expect(await findSchedule(a.db, other, "standup")).toMatchObject({ installation_id: 12_345, cron: "0 17 * * *", standup_issue_number: null });
    expect(await findSchedule(a.db, TARGET, "standup")).toMatchObject({ installation_id: TARGET.installationId, cron: "0 9 * * *", standup_issue_number: 41 });
    const added = await addProposals(a.db, other, [2, 3].map(candidate), { proposedOn: "2026-11-27", maxPerDay: 3 });
    expect(added.map((p) => [p.number, p.fingerprint, p.installation_id])).toEqual([
      [1, "todo:2", 12_345],
      [2, "todo:3", 12_345],
    ]);
    expect((await findProposal(a.db, TARGET, 2))?.fingerprint).toBe("todo:2");
    expect((await proposalsToList(a.db, TARGET, 0)).map((p) => p.number)).toEqual([1, 2]);
  });
});
