import { CompiledQuery, sql } from "kysely";
import pino from "pino";
import { expect, it, vi } from "vitest";

import { inTransaction } from "../../../src/store/db.js";
import {
  cancelTaskJobs,
  enqueueJob,
  intakePending,
  jobExistsForDelivery,
  type JobSpec,
  liveJobsOfTask,
  queueDepth,
  type QueuedJob,
} from "../../../src/store/queue.js";
import type { PgBossQueue } from "../../../src/store/pg-queue.js";
import { Worker } from "../../../src/worker/worker.js";
import { insertTask } from "../../helpers/db.js";
import { describeQueueContract, TEST_HEARTBEAT_SECONDS } from "../../helpers/queue-backends.js";
import { postgresAdminUrl } from "../../helpers/store-backends.js";

const WORK = { except: ["intake"] } as const;
const INTAKE = { only: ["intake"] } as const;
const LEASE_MS = 60_000;

function spec(taskId: number | null, overrides: Partial<JobSpec> = {}): JobSpec {
  return { kind: "plan", taskId, installationId: 98_765_432_101, lockKey: "octo/repo#1", dedupeKey: `dedupe-${Math.random()}`, maxAttempts: 3, ...overrides };
}

describeQueueContract("job queue", (replicas) => {
  it("enqueues once per dedupe key across replicas; an intake job has no task and its own lane", async () => {
    const { a, b } = replicas();
    const taskId = await insertTask(a.db);
    const id = await enqueueJob(a.db, spec(taskId, { dedupeKey: "d-1", deliveryId: "delivery-1", payload: { a: 1 } }));
    expect(id).toEqual(expect.any(String));
    expect(await enqueueJob(b.db, spec(taskId, { dedupeKey: "d-1" }))).toBeNull();
    expect(await enqueueJob(b.db, spec(null, { kind: "intake", lockKey: "intake:octo/repo#1", dedupeKey: "intake-1", deliveryId: "delivery-2" }))).toEqual(
      expect.any(String),
    );
    expect(await queueDepth(b.db)).toEqual({ queued: 2, running: 0 });
    expect(await intakePending(a.db, "delivery-2")).toBe(true);

    const intake = await b.queue.claim(b.db, "b", LEASE_MS, INTAKE);
    expect(intake).toMatchObject({ kind: "intake", task_id: null, attempts: 1, delivery_id: "delivery-2" });
    const job = await a.queue.claim(a.db, "a", LEASE_MS, WORK);
    expect(job).toMatchObject({ id, kind: "plan", task_id: taskId, attempts: 1, max_attempts: 3, payload: '{"a":1}', installation_id: 98_765_432_101 });
    expect(await queueDepth(a.db)).toEqual({ queued: 0, running: 2 });
    expect(await inTransaction(b.db, (trx) => b.queue.complete(trx, intake as QueuedJob, "b"))).toBe(true);
    expect(await intakePending(a.db, "delivery-2")).toBe(false);
  });

  it("runs one job per lock key at a time, without blocking other keys", async () => {
    const { a, b } = replicas();
    const first = await enqueueJob(a.db, spec(null, { lockKey: "r#1" }));
    const second = await enqueueJob(a.db, spec(null, { lockKey: "r#1" }));
    const other = await enqueueJob(a.db, spec(null, { lockKey: "r#2" }));
    const claimedFirst = await a.queue.claim(a.db, "a", LEASE_MS, WORK);
    expect(claimedFirst?.id).toBe(first);
    expect((await b.queue.claim(b.db, "b", LEASE_MS, WORK))?.id).toBe(other);
    expect(await b.queue.claim(b.db, "b", LEASE_MS, WORK)).toBeUndefined();
    expect(await inTransaction(a.db, (trx) => a.queue.complete(trx, claimedFirst as QueuedJob, "a"))).toBe(true);
    expect((await b.queue.claim(b.db, "b", LEASE_MS, WORK))?.id).toBe(second);
  });

  it("holds a lock key across lanes: the command an intake enqueued waits until the intake is done", async () => {
    const { a, b } = replicas();
    const intake = await enqueueJob(a.db, spec(null, { kind: "intake", lockKey: "cmd:lane#1", dedupeKey: "intake" }));
    const claimedIntake = (await a.queue.claim(a.db, "a", LEASE_MS, INTAKE)) as QueuedJob;
    expect(claimedIntake.id).toBe(intake);
    const command = await inTransaction(a.db, (trx) => enqueueJob(trx, spec(null, { kind: "command", lockKey: "cmd:lane#1", dedupeKey: "command" })));
    expect(await b.queue.claim(b.db, "b", LEASE_MS, WORK)).toBeUndefined();
    expect(await inTransaction(a.db, (trx) => a.queue.complete(trx, claimedIntake, "a"))).toBe(true);
    expect((await b.queue.claim(b.db, "b", LEASE_MS, WORK))?.id).toBe(command);
  });

  it("a job handed back at shutdown resumes at once without losing an attempt, also on its last attempt", async () => {
    const { a, b } = replicas();
    await enqueueJob(a.db, spec(null, { lockKey: "deploy#1", maxAttempts: 2 }));
    const first = (await a.queue.claim(a.db, "a", LEASE_MS, WORK)) as QueuedJob;
    expect(await inTransaction(a.db, (trx) => a.queue.retry(trx, first, "a", Date.now(), "HTTP 502"))).toBe(true);
    const last = (await a.queue.claim(a.db, "a", LEASE_MS, WORK)) as QueuedJob;
    expect(last.attempts).toBe(2);
    expect(await a.queue.release(a.db, last, "a")).toBe(true);
    const resumed = await b.queue.claim(b.db, "b", LEASE_MS, WORK);
    expect(resumed).toMatchObject({ id: last.id, attempts: 2, max_attempts: 2 });
  });

  it("completes a job and enqueues the next one in one transaction: all or nothing", async () => {
    const { a } = replicas();
    await enqueueJob(a.db, spec(null, { lockKey: "t#1" }));
    const job = (await a.queue.claim(a.db, "a", LEASE_MS, WORK)) as QueuedJob;
    await expect(
      inTransaction(a.db, async (trx) => {
        expect(await a.queue.complete(trx, job, "a")).toBe(true);
        await a.queue.enqueue(trx, spec(null, { kind: "code", lockKey: "t#1", dedupeKey: "next" }));
        throw new Error("the process fails before commit");
      }),
    ).rejects.toThrow("before commit");
    expect(await queueDepth(a.db)).toEqual({ queued: 0, running: 1 });
    await inTransaction(a.db, async (trx) => {
      expect(await a.queue.complete(trx, job, "a")).toBe(true);
      await a.queue.enqueue(trx, spec(null, { kind: "code", lockKey: "t#1", dedupeKey: "next" }));
    });
    expect(await a.queue.claim(a.db, "a", LEASE_MS, WORK)).toMatchObject({ kind: "code", attempts: 1 });
  });

  it("retries after the delay the worker chose (backoff or retry-after), counting attempts; fails for good when asked", async () => {
    const { a, b } = replicas();
    const taskId = await insertTask(a.db);
    await enqueueJob(a.db, spec(taskId, { lockKey: "k#1", maxAttempts: 5 }));
    const job = (await a.queue.claim(a.db, "a", LEASE_MS, WORK)) as QueuedJob;
    const retryAt = Date.now() + 1_500;
    expect(await inTransaction(a.db, (trx) => a.queue.retry(trx, job, "a", retryAt, "HTTP 429, retry-after 1.5 s"))).toBe(true);
    expect(await b.queue.claim(b.db, "b", LEASE_MS, WORK)).toBeUndefined();
    const again = await vi.waitFor(
      async () => {
        const claimed = await b.queue.claim(b.db, "b", LEASE_MS, WORK);
        if (!claimed) throw new Error("not yet");
        return claimed;
      },
      { timeout: 10_000, interval: 100 },
    );
    expect(Date.now()).toBeGreaterThanOrEqual(retryAt - 50);
    expect(again).toMatchObject({ id: job.id, attempts: 2 });
    // A permanent failure ends it although attempts are left.
    expect(await inTransaction(b.db, (trx) => b.queue.fail(trx, again, "b", "not retryable"))).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await a.queue.claim(a.db, "a", LEASE_MS, WORK)).toBeUndefined();
    expect(await queueDepth(a.db)).toEqual({ queued: 0, running: 0 });
    expect((await a.queue.countsByState(a.db)).find((c) => c.state === "failed")?.count).toBe(1);
  });

  it(
    "hands a job whose process died to another replica after the heartbeat expires; the old claim is fenced",
    async () => {
      const { backend, a, b } = replicas();
      await enqueueJob(a.db, spec(null, { lockKey: "dead#1" }));
      // SQLite: the lease is the heartbeat; PostgreSQL: pg-boss's heartbeatSeconds (its minimum, 10 s).
      const leaseMs = backend === "sqlite" ? 300 : LEASE_MS;
      const lost = (await a.queue.claim(a.db, "a", leaseMs, WORK)) as QueuedJob;
      expect(await b.queue.claim(b.db, "b", leaseMs, WORK)).toBeUndefined();
      // Replica a dies: no more heartbeats.
      const taken = await vi.waitFor(
        async () => {
          const claimed = await b.queue.claim(b.db, "b", leaseMs, WORK);
          if (!claimed) throw new Error("not yet");
          return claimed;
        },
        { timeout: (TEST_HEARTBEAT_SECONDS + 10) * 1000, interval: 200 },
      );
      expect(taken).toMatchObject({ id: lost.id, attempts: 2, takeovers: 1 });
      expect(await a.queue.heartbeat(a.db, lost, "a", leaseMs)).toBe(false);
      expect(await inTransaction(a.db, (trx) => a.queue.complete(trx, lost, "a"))).toBe(false);
      expect(await b.queue.heartbeat(b.db, taken, "b", leaseMs)).toBe(true);
      expect(await inTransaction(b.db, (trx) => b.queue.complete(trx, taken, "b"))).toBe(true);
    },
    (TEST_HEARTBEAT_SECONDS + 20) * 1000,
  );

  it("/stop cancels queued and running jobs on whichever replica holds them", async () => {
    const { a, b } = replicas();
    const taskId = await insertTask(a.db);
    await enqueueJob(a.db, spec(taskId, { kind: "code", lockKey: "stop#1", dedupeKey: "running" }));
    await enqueueJob(a.db, spec(taskId, { kind: "review", lockKey: "stop#2", dedupeKey: "queued", runAfter: Date.now() + 60_000 }));
    await enqueueJob(a.db, spec(taskId, { kind: "command", lockKey: "cmd:stop#1", dedupeKey: "command", runAfter: Date.now() + 60_000 }));
    let aborted: unknown;
    let markStarted!: () => void;
    const started = new Promise<void>((resolve) => (markStarted = resolve));
    const worker = new Worker({
      db: b.db,
      log: pino({ level: "silent" }),
      concurrency: 1,
      pollMs: 50,
      leaseMs: 600,
      retryBaseMs: 10,
      retryMaxMs: 50,
      lane: WORK,
      onFailed: () => Promise.reject(new Error("must not fail")),
      run: async (_job, signal) => {
        markStarted();
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        aborted = signal.reason;
        return { next: spec(taskId, { kind: "test", dedupeKey: "must-not-exist" }) };
      },
    });
    worker.start();
    try {
      await started;
      expect((await liveJobsOfTask(a.db, taskId)).map((j) => [j.kind, j.state])).toEqual([
        ["code", "running"],
        ["review", "queued"],
        ["command", "queued"],
      ]);
      expect(await inTransaction(a.db, (trx) => cancelTaskJobs(trx, taskId))).toBe(2);
      await vi.waitFor(() => expect(aborted).toBeDefined(), { timeout: 5_000 });
      await worker.idle();
      expect((await liveJobsOfTask(a.db, taskId)).map((j) => j.kind)).toEqual(["command"]);
      expect((await a.queue.countsByState(a.db)).find((c) => c.state === "cancelled")?.count).toBe(2);
    } finally {
      await worker.stop(1_000);
    }
  });

  it("concurrent claimers on both replicas claim each of 30 jobs exactly once, and one job of a busy key", async () => {
    const { a, b } = replicas();
    for (let i = 0; i < 30; i++) await enqueueJob(a.db, spec(null, { lockKey: `r#${i}`, dedupeKey: `job-${i}` }));
    for (let i = 0; i < 10; i++) await enqueueJob(a.db, spec(null, { lockKey: "same#1", dedupeKey: `same-${i}` }));
    const stores = [a, b];
    const claimed: string[] = [];
    const keys: string[] = [];
    for (let round = 0; round < 20; round++) {
      const jobs = await Promise.all(
        Array.from({ length: 12 }, (_, i) => {
          const store = stores[i % 2] ?? a;
          return store.queue.claim(store.db, `worker-${i}`, LEASE_MS, WORK);
        }),
      );
      const got = jobs.filter((j): j is QueuedJob => j !== undefined);
      claimed.push(...got.map((j) => j.id));
      keys.push(...got.map((j) => j.lock_key));
      if (got.length === 0) break;
    }
    expect(claimed).toHaveLength(31);
    expect(new Set(claimed).size).toBe(31);
    expect(keys.filter((k) => k === "same#1")).toHaveLength(1);
    expect(await queueDepth(b.db)).toEqual({ queued: 9, running: 31 });
  });

  it("notify jobs have a lane of their own, one job per channel at a time, without blocking stages or intake", async () => {
    const { a, b } = replicas();
    const STAGES = { except: ["intake", "notify"] } as const;
    const NOTIFY = { only: ["notify"] } as const;
    const notify = (channel: string, key: string) =>
      spec(null, { kind: "notify", lockKey: `notify:${channel}`, dedupeKey: `notify:${key}:${channel}`, payload: { channel }, maxAttempts: 8 });
    const ops1 = await enqueueJob(a.db, notify("ops", "transition:1"));
    const ops2 = await enqueueJob(a.db, notify("ops", "transition:2"));
    const hooks = await enqueueJob(a.db, notify("hooks", "transition:1"));
    expect(await enqueueJob(b.db, notify("ops", "transition:1"))).toBeNull();
    const stage = await enqueueJob(a.db, spec(null, { lockKey: "octo/repo#9" }));
    // The stage lane and the intake lane never take a notification.
    expect((await b.queue.claim(b.db, "b", LEASE_MS, STAGES))?.id).toBe(stage);
    expect(await b.queue.claim(b.db, "b", LEASE_MS, STAGES)).toBeUndefined();
    expect(await b.queue.claim(b.db, "b", LEASE_MS, INTAKE)).toBeUndefined();
    // The notification lane takes one per channel: ops#1 and hooks, not ops#2 while ops#1 runs.
    const first = (await a.queue.claim(a.db, "a", LEASE_MS, NOTIFY)) as QueuedJob;
    const second = (await b.queue.claim(b.db, "b", LEASE_MS, NOTIFY)) as QueuedJob;
    expect([first.id, second.id].sort()).toEqual([ops1, hooks].sort());
    expect(first).toMatchObject({ kind: "notify", task_id: null, max_attempts: 8 });
    expect(await a.queue.claim(a.db, "a", LEASE_MS, NOTIFY)).toBeUndefined();
    const opsJob = first.id === ops1 ? first : second;
    expect(await inTransaction(a.db, (trx) => a.queue.complete(trx, opsJob, opsJob === first ? "a" : "b"))).toBe(true);
    expect((await a.queue.claim(a.db, "a", LEASE_MS, NOTIFY))?.id).toBe(ops2);
  });

  it("a claim after a lapsed lease counts a takeover; a retry after an error does not", async () => {
    const { a, b } = replicas();
    const id = await enqueueJob(a.db, spec(null, { lockKey: "stuck#1", payload: { x: 1 }, maxAttempts: 9 }));
    const start = Date.now();
    const first = (await a.queue.claim(a.db, "a", 10, WORK)) as QueuedJob;
    expect(first).toMatchObject({ id, takeovers: 0 });
    // An error and a retry: not a takeover.
    expect(await inTransaction(a.db, (trx) => a.queue.retry(trx, first, "a", start, "boom"))).toBe(true);
    const second = (await b.queue.claim(b.db, "b", 10, WORK)) as QueuedJob;
    expect(second).toMatchObject({ id, attempts: 2, takeovers: 0 });
    // PostgreSQL: a heartbeat lapse takes pg-boss's minimum of 10 s; its takeover count is checked in the "process died" test above.
    if (a.backend === "postgres") return;
    // Its lease lapses twice (the worker died each time): two takeovers.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const third = (await a.queue.claim(a.db, "a", 10, WORK)) as QueuedJob;
    expect(third).toMatchObject({ id, attempts: 3, takeovers: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const fourth = (await b.queue.claim(b.db, "b", LEASE_MS, WORK)) as QueuedJob;
    expect(fourth).toMatchObject({ id, attempts: 4, takeovers: 2 });
    // The payload still parses as the job's own (the count is bookkeeping).
    expect(JSON.parse(fourth.payload)).toMatchObject({ x: 1 });
  });

  it("finds a delivery's job of a kind, finished or not; PostgreSQL: through our index on pg-boss's job table, rebuilt at start", async () => {
    const { a, b } = replicas();
    const taskId = await insertTask(a.db);
    await enqueueJob(a.db, spec(taskId, { lockKey: "lookup#1", dedupeKey: "plan-x", deliveryId: 'delivery-"x"' }));
    await enqueueJob(a.db, spec(null, { kind: "intake", lockKey: "cmd:lookup#2", dedupeKey: "intake-y", deliveryId: "delivery-y" }));
    const plan = (await a.queue.claim(a.db, "a", LEASE_MS, WORK)) as QueuedJob;
    expect(await inTransaction(a.db, (trx) => a.queue.complete(trx, plan, "a"))).toBe(true);
    expect(await jobExistsForDelivery(b.db, 'delivery-"x"', "plan")).toBe(true);
    expect(await jobExistsForDelivery(b.db, 'delivery-"x"', "intake")).toBe(false);
    expect(await jobExistsForDelivery(b.db, "delivery-y", "intake")).toBe(true);
    expect(await jobExistsForDelivery(b.db, "delivery-y", "plan")).toBe(false);
    expect(await jobExistsForDelivery(b.db, "delivery-z", "plan")).toBe(false);
    // The rest is about pg-boss's job table (PostgreSQL only).
    if (a.backend === "sqlite") return;

    const { DELIVERY_INDEX, PgBossQueue } = await import("../../../src/store/pg-queue.js");
    const indexed = () =>
      sql<{ indexdef: string }>`select indexdef from pg_indexes where schemaname = 'pgboss' and tablename = 'job' and indexname = ${DELIVERY_INDEX}`.execute(
        a.db,
      );
    expect((await indexed()).rows.map((r) => r.indexdef)).toEqual([expect.stringContaining("(data -> 'deliveryId'::text)")]);
    // The lookup's own statement, explained: its expression is the index's. Sequential scans are
    // off because on a test-sized table the planner rightly prefers one; a containment query
    // (`data @> …`), which no btree serves, gets pg-boss's (name, created_on) index here instead.
    const explained = await inTransaction(a.db, async (trx) => {
      await sql`set local enable_seqscan = off`.execute(trx);
      const executeQuery = vi.spyOn(trx, "executeQuery");
      expect(await a.queue.jobExistsForDelivery(trx, 'delivery-"x"', "plan")).toBe(true);
      const lookup = executeQuery.mock.calls[0]?.[0] as CompiledQuery;
      executeQuery.mockRestore();
      const result = await trx.executeQuery<{ "QUERY PLAN": unknown }>(CompiledQuery.raw(`explain (format json) ${lookup.sql}`, [...lookup.parameters]));
      return JSON.stringify(result.rows[0]?.["QUERY PLAN"]);
    });
    const partitions = await sql<{ relname: string }>`
      select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = ${`pgboss.${DELIVERY_INDEX}`}::regclass`.execute(a.db);
    expect(partitions.rows.length).toBeGreaterThan(0);
    expect(explained).not.toContain("Seq Scan");
    const usedIndexes = [...explained.matchAll(/"Index Name":"([^"]+)"/g)].map((m) => m[1]);
    expect(usedIndexes.length).toBeGreaterThan(0);
    expect(partitions.rows.map((r) => r.relname)).toEqual(expect.arrayContaining(usedIndexes));

    // Dropped (a pg-boss upgrade rebuilding its table), it is back after the next start.
    await sql`drop index ${sql.id("pgboss", DELIVERY_INDEX)}`.execute(a.db);
    expect((await indexed()).rows).toHaveLength(0);
    const { rows } = await sql<{ name: string }>`select current_database() as name`.execute(a.db);
    const url = new URL(postgresAdminUrl() ?? "");
    url.pathname = `/${rows[0]?.name ?? ""}`;
    const replica = new PgBossQueue({ url: url.toString(), heartbeatSeconds: TEST_HEARTBEAT_SECONDS });
    try {
      await replica.start();
    } finally {
      await replica.stop();
    }
    expect((await indexed()).rows).toHaveLength(1);
    expect(await jobExistsForDelivery(b.db, 'delivery-"x"', "plan")).toBe(true);

    // A role that may use pg-boss's tables but does not own them cannot build the index: the queue
    // still starts, and the error names the statement to run by hand.
    await sql`drop index ${sql.id("pgboss", DELIVERY_INDEX)}`.execute(a.db);
    const role = `mc_dml_${rows[0]?.name ?? ""}`.slice(0, 60);
    await sql`do ${sql.raw(`$$ begin if not exists (select 1 from pg_roles where rolname = '${role}') then create role ${role} login; end if; end $$`)}`.execute(
      a.db,
    );
    await sql
      .raw(
        `grant connect on database ${rows[0]?.name ?? ""} to ${role}; grant usage on schema pgboss to ${role};
       grant select, insert, update, delete on all tables in schema pgboss to ${role};
       grant usage on all sequences in schema pgboss to ${role}; grant execute on all functions in schema pgboss to ${role}`,
      )
      .execute(a.db);
    const errors: Error[] = [];
    url.username = role;
    const restricted = new PgBossQueue({ url: url.toString(), heartbeatSeconds: TEST_HEARTBEAT_SECONDS, onError: (err) => errors.push(err) });
    try {
      await restricted.start();
    } finally {
      await restricted.stop();
      await sql.raw(`drop owned by ${role}; drop role ${role}`).execute(a.db);
    }
    expect((await indexed()).rows).toHaveLength(0);
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/^the index pgboss\.mc_job_delivery_id could not be created \(must be owner of .*CREATE INDEX IF NOT EXISTS mc_job_delivery_id/),
    ]);
  }, 30_000);

  it("periodic work runs once per occurrence across replicas", async () => {
    const { a, b } = replicas();
    if (a.backend === "sqlite") {
      // One process owns a SQLite file: its scheduler runs the task at start and then on its timer.
      const runs: string[] = [];
      await a.scheduler.start([{ name: "sweep", everyMinutes: 10, run: () => Promise.resolve(void runs.push("a")) }]);
      expect(runs).toEqual(["a"]);
      await a.scheduler.stop();
      return;
    }
    const runs: string[] = [];
    await a.scheduler.start([{ name: "sweep-test", everyMinutes: 10, run: () => Promise.resolve(void runs.push("a")) }]);
    await b.scheduler.start([{ name: "sweep-test", everyMinutes: 10, run: () => Promise.resolve(void runs.push("b")) }]);
    try {
      // Both replicas registered the same schedule: pg-boss keeps one, and sends one job per occurrence.
      const boss = (a.queue as PgBossQueue).boss;
      expect(await boss.getSchedules("sweep-test")).toHaveLength(1);
      await boss.send("sweep-test", {});
      await vi.waitFor(() => expect(runs).toHaveLength(1), { timeout: 15_000, interval: 100 });
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      expect(runs).toHaveLength(1);
    } finally {
      await a.scheduler.stop();
      await b.scheduler.stop();
    }
  }, 30_000);
});
