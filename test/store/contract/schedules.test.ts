import { sql } from "kysely";
import pino from "pino";
import { expect, it } from "vitest";

import { parseRepoConfig } from "../../../src/config/repo-config.js";
import { enqueueDueStandups, syncStandupSchedule } from "../../../src/pipeline/orchestrator.js";
import { type Db, inTransaction } from "../../../src/store/db.js";
import type { Store } from "../../../src/store/open-store.js";
import { addProposals, findSchedule, repositoryKey, upsertSchedule } from "../../../src/store/orchestrator.js";
import { queueDepth, type QueuedJob } from "../../../src/store/queue.js";
import { describeQueueContract } from "../../helpers/queue-backends.js";

const TARGET = { installationId: 98_765_432_101, owner: "Octo-Org", repo: "Widgets" };
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
    expect((await findSchedule(b.db, "octo-org", "widgets", "standup"))?.next_run_at).toBe(Date.UTC(2026, 10, 29, 8, 0));

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
    expect((await findSchedule(a.db, "octo-org", "widgets", "standup"))?.next_run_at).toBe(after);
    expect(await enqueueDueStandups(b.db, after - 1, { log })).toBe(0);
    expect(await enqueueDueStandups(b.db, after, { log })).toBe(1);
    expect((await findSchedule(a.db, "octo-org", "widgets", "standup"))?.next_run_at).toBe(Date.UTC(2026, 2, 30, 7, 0));
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
    expect((await findSchedule(a.db, "octo-org", "widgets", "standup"))?.next_run_at).toBe(Date.UTC(2026, 10, 28, 9, 30));
  });

  it("follows the repository config: kept when unchanged, moved when changed, removed when off", async () => {
    const { a } = replicas();
    await clean(a.db);
    const now = Date.UTC(2026, 10, 27, 10, 0);
    await syncStandupSchedule(a.db, TARGET, config({ cron: "0 9 * * 1-5", timezone: "America/New_York" }), now);
    const first = await findSchedule(a.db, "octo-org", "widgets", "standup");
    // Friday 27 November 2026, 10:00 UTC is 05:00 in New York: 09:00 EST the same day is 14:00 UTC.
    expect(first).toMatchObject({
      repository: "octo-org/widgets",
      cron: "0 9 * * 1-5",
      timezone: "America/New_York",
      next_run_at: Date.UTC(2026, 10, 27, 14, 0),
    });
    await syncStandupSchedule(a.db, TARGET, config({ cron: "0 9 * * 1-5", timezone: "America/New_York" }), now + 3_600_000);
    expect((await findSchedule(a.db, "octo-org", "widgets", "standup"))?.next_run_at).toBe(first?.next_run_at);
    await syncStandupSchedule(a.db, TARGET, config({ cron: "0 17 * * *" }), now);
    expect((await findSchedule(a.db, "octo-org", "widgets", "standup"))?.next_run_at).toBe(Date.UTC(2026, 10, 27, 17, 0));
    await syncStandupSchedule(a.db, TARGET, config(), now);
    expect(await findSchedule(a.db, "octo-org", "widgets", "standup")).toBeUndefined();
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
    const day1 = await addProposals(a.db, "Octo-Org", "Widgets", [1, 2, 3, 4].map(candidate), { proposedOn: "2026-11-27", maxPerDay: 3 });
    expect(day1.map((p) => [p.number, p.fingerprint])).toEqual([
      [1, "todo:1"],
      [2, "todo:2"],
      [3, "todo:3"],
    ]);
    // The same day again (a retried stand-up): nothing new.
    expect(await addProposals(a.db, "Octo-Org", "Widgets", [1, 2, 3, 4].map(candidate), { proposedOn: "2026-11-27", maxPerDay: 3 })).toEqual([]);
    const day2 = await addProposals(a.db, "octo-org", "widgets", [1, 4, 5].map(candidate), { proposedOn: "2026-11-28", maxPerDay: 3 });
    expect(day2.map((p) => [p.number, p.fingerprint, p.repository])).toEqual([
      [4, "todo:4", repositoryKey("Octo-Org", "Widgets")],
      [5, "todo:5", "octo-org/widgets"],
    ]);
  });
});
