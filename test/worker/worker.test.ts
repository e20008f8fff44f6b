import { setTimeout as delay } from "node:timers/promises";

import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { AgentOutputError, GitHubApiError, LlmApiError, MissionControlError } from "../../src/domain/errors.js";
import { enqueueJob, type JobSpec } from "../../src/store/queue.js";
import { decideFailure, type JobFailureHandler, type JobRunner, Worker, type WorkerOptions } from "../../src/worker/worker.js";
import type { Db } from "../../src/store/db.js";
import { createTestDatabase, insertTask, type TestDatabase } from "../helpers/db.js";

const log = pino({ level: "silent" });
const WAIT = { timeout: 10_000, interval: 20 } as const;

let testDb: TestDatabase;
let db: Db;
let taskId: number;
let worker: Worker | undefined;

beforeEach(async () => {
  testDb = await createTestDatabase();
  db = testDb.db;
  taskId = await insertTask(db);
});

afterEach(async () => {
  await worker?.stop(5_000);
  worker = undefined;
  await testDb.cleanup();
});

let dedupe = 0;
function spec(overrides: Partial<JobSpec> = {}): JobSpec {
  dedupe += 1;
  return {
    kind: "plan",
    taskId,
    installationId: 7,
    lockKey: "octo-org/octo-repo#1",
    dedupeKey: `worker-test-${dedupe}`,
    maxAttempts: 3,
    ...overrides,
  };
}

function startWorker(run: JobRunner, onFailed: JobFailureHandler, overrides: Partial<WorkerOptions> = {}): Worker {
  worker = new Worker({
    db,
    log,
    run,
    onFailed,
    concurrency: 1,
    pollMs: 20,
    leaseMs: 2_000,
    retryBaseMs: 10,
    retryMaxMs: 50,
    ...overrides,
  });
  worker.start();
  return worker;
}

async function jobRow(id: string) {
  return db.selectFrom("jobs").selectAll().where("id", "=", Number(id)).executeTakeFirstOrThrow();
}

async function waitForState(id: string, state: string) {
  await vi.waitFor(async () => {
    expect((await jobRow(id)).state).toBe(state);
  }, WAIT);
}

const noFailure: JobFailureHandler = async () => {
  throw new Error("onFailed must not be called");
};

describe("Worker", () => {
  it("runs a job, marks it succeeded, enqueues its next job and runs that too", async () => {
    const ran: string[] = [];
    const onFailed = vi.fn(noFailure);
    const firstId = (await enqueueJob(db, spec({ kind: "plan", payload: { n: 1 } })))!;
    const run = vi.fn<JobRunner>(async (job) => {
      ran.push(job.kind);
      if (job.kind === "plan") {
        return { next: spec({ kind: "code", dedupeKey: "next-code", payload: { from: job.id } }) };
      }
      // The next job only exists once its predecessor is committed as succeeded.
      expect((await jobRow(firstId)).state).toBe("succeeded");
      return {};
    });
    startWorker(run, onFailed);

    await waitForState(firstId, "succeeded");
    const next = await vi.waitFor(async () => {
      const row = await db.selectFrom("jobs").selectAll().where("dedupe_key", "=", "next-code").executeTakeFirst();
      expect(row?.state).toBe("succeeded");
      return row!;
    }, WAIT);

    expect(next).toMatchObject({ kind: "code", task_id: taskId, attempts: 1, last_error: null });
    expect(JSON.parse(next.payload)).toEqual({ from: firstId });
    expect(await jobRow(firstId)).toMatchObject({ attempts: 1, lease_owner: null, last_error: null });
    expect(ran).toEqual(["plan", "code"]);
    expect(onFailed).not.toHaveBeenCalled();
  });

  it("completes and enqueues in one transaction: a failing enqueue rolls back the completion", async () => {
    const onFailed = vi.fn<JobFailureHandler>(async () => {});
    const id = (await enqueueJob(db, spec()))!;
    // task_id 999_999 violates the jobs → tasks foreign key, so the enqueue inside the transaction throws.
    startWorker(async () => ({ next: spec({ kind: "code", taskId: 999_999, dedupeKey: "orphan" }) }), onFailed);

    await vi.waitFor(() => expect(onFailed).toHaveBeenCalledTimes(1), WAIT);
    await worker!.stop();
    const row = await jobRow(id);
    // Had the completion been committed on its own, the job would be `succeeded` and failJob would not apply.
    expect(row.state).toBe("failed");
    expect(row.last_error).toMatch(/FOREIGN KEY/i);
    const orphan = await db.selectFrom("jobs").select("id").where("dedupe_key", "=", "orphan").executeTakeFirst();
    expect(orphan).toBeUndefined();
  });

  it("discards the result (no next job) when the lease was lost while running", async () => {
    const id = (await enqueueJob(db, spec()))!;
    let finished = false;
    startWorker(async (job) => {
      // Another worker takes the job over (e.g. our lease expired).
      await db.updateTable("jobs").set({ lease_owner: "someone-else" }).where("id", "=", Number(job.id)).execute();
      finished = true;
      return { next: spec({ kind: "code", dedupeKey: "must-not-exist" }) };
    }, noFailure);

    await vi.waitFor(() => expect(finished).toBe(true), WAIT);
    await vi.waitFor(() => expect(worker!.activeJobs).toBe(0), WAIT);
    await worker!.stop();
    expect(await jobRow(id)).toMatchObject({ state: "running", lease_owner: "someone-else" });
    const next = await db.selectFrom("jobs").select("id").where("dedupe_key", "=", "must-not-exist").executeTakeFirst();
    expect(next).toBeUndefined();
  });

  it("retries a retryable error and succeeds on the second attempt", async () => {
    const onFailed = vi.fn(noFailure);
    const id = (await enqueueJob(db, spec({ maxAttempts: 3 })))!;
    const attemptsSeen: number[] = [];
    startWorker(async (job) => {
      attemptsSeen.push(job.attempts);
      if (job.attempts === 1) throw new LlmApiError(529, "overloaded", { retryable: true });
      return {};
    }, onFailed);

    await waitForState(id, "succeeded");
    expect(await jobRow(id)).toMatchObject({ state: "succeeded", attempts: 2, last_error: null });
    expect(attemptsSeen).toEqual([1, 2]);
    expect(onFailed).not.toHaveBeenCalled();
  });

  it("fails a non-retryable error at once, records last_error and calls onFailed once with a human reason", async () => {
    const onFailed = vi.fn<JobFailureHandler>(async () => {});
    const id = (await enqueueJob(db, spec({ maxAttempts: 5 })))!;
    const run = vi.fn<JobRunner>(async () => {
      throw new AgentOutputError("Architect", "never called submit_plan");
    });
    startWorker(run, onFailed);

    await vi.waitFor(() => expect(onFailed).toHaveBeenCalled(), WAIT);
    await worker!.stop();

    expect(onFailed).toHaveBeenCalledTimes(1);
    const [failedJob, reason] = onFailed.mock.calls[0]!;
    expect(failedJob.id).toBe(id);
    expect(reason).toBe("The Architect did not produce a usable result: never called submit_plan");
    expect(run).toHaveBeenCalledTimes(1);
    const row = await jobRow(id);
    expect(row).toMatchObject({ state: "failed", attempts: 1, lease_owner: null });
    expect(row.last_error).toBe("AgentOutputError: Architect: never called submit_plan");
    expect(row.finished_at).toEqual(expect.any(Number));
  });

  it("treats an untyped error as permanent, with a generic reason and a redacted last_error", async () => {
    const onFailed = vi.fn<JobFailureHandler>(async () => {});
    const token = "ghs_abcdefghijklmnopqrstuvwxyz0123456789";
    const id = (await enqueueJob(db, spec()))!;
    startWorker(async () => {
      throw new TypeError(`cannot read property of undefined (token ${token})`);
    }, onFailed);

    await vi.waitFor(() => expect(onFailed).toHaveBeenCalled(), WAIT);
    await worker!.stop();
    expect(onFailed).toHaveBeenCalledTimes(1);
    const reason = onFailed.mock.calls[0]![1];
    expect(reason).not.toContain(token);
    expect(reason).toMatch(/internal error/i);
    const row = await jobRow(id);
    expect(row.state).toBe("failed");
    expect(row.last_error).toContain("TypeError: cannot read property of undefined");
    expect(row.last_error).not.toContain(token);
    expect(row.last_error).toContain("[REDACTED]");
  });

  it("stops retrying at max_attempts and calls onFailed exactly once", async () => {
    const onFailed = vi.fn<JobFailureHandler>(async () => {});
    const id = (await enqueueJob(db, spec({ maxAttempts: 3 })))!;
    const run = vi.fn<JobRunner>(async () => {
      throw new LlmApiError(529, "overloaded", { retryable: true });
    });
    startWorker(run, onFailed);

    await vi.waitFor(() => expect(onFailed).toHaveBeenCalled(), WAIT);
    await worker!.stop();

    expect(onFailed).toHaveBeenCalledTimes(1);
    expect(onFailed.mock.calls[0]![1]).toBe("The Anthropic API answered 529.");
    expect(run).toHaveBeenCalledTimes(3);
    const row = await jobRow(id);
    expect(row).toMatchObject({ state: "failed", attempts: 3 });
    expect(row.last_error).toContain("LlmApiError");
    expect(row.last_error).toContain("overloaded");
  });

  it("keeps working when onFailed throws", async () => {
    const onFailed = vi.fn<JobFailureHandler>(async () => {
      throw new Error("GitHub is down");
    });
    const bad = (await enqueueJob(db, spec({ lockKey: "a" })))!;
    startWorker(async (job) => {
      if (job.id === bad) throw new AgentOutputError("Coder", "no diff");
      return {};
    }, onFailed);

    await waitForState(bad, "failed");
    const good = (await enqueueJob(db, spec({ lockKey: "b" })))!;
    worker!.notify();
    await waitForState(good, "succeeded");
    expect(onFailed).toHaveBeenCalledTimes(1);
  });

  it("runs at most `concurrency` jobs at once", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await enqueueJob(db, spec({ lockKey: `owner/repo#${i}` })))!);

    let active = 0;
    let maxActive = 0;
    let started = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    startWorker(
      async () => {
        active += 1;
        started += 1;
        maxActive = Math.max(maxActive, active);
        try {
          await gate;
          await delay(5);
        } finally {
          active -= 1;
        }
        return {};
      },
      noFailure,
      { concurrency: 2 },
    );

    await vi.waitFor(() => expect(started).toBeGreaterThanOrEqual(2), WAIT);
    expect(worker!.activeJobs).toBe(2);
    const running = await db.selectFrom("jobs").select("id").where("state", "=", "running").execute();
    expect(running).toHaveLength(2);
    release();

    for (const id of ids) await waitForState(id, "succeeded");
    expect(started).toBe(4);
    expect(maxActive).toBe(2);
  });

  it("never overlaps two jobs with the same lock key, even with spare concurrency", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await enqueueJob(db, spec({ lockKey: "octo-org/octo-repo#9" })))!);
    const events: string[] = [];
    startWorker(
      async (job) => {
        events.push(`start:${job.id}`);
        await delay(30);
        events.push(`end:${job.id}`);
        return {};
      },
      noFailure,
      { concurrency: 3 },
    );

    for (const id of ids) await waitForState(id, "succeeded");
    expect(events).toHaveLength(6);
    for (let i = 0; i < events.length; i += 2) {
      const start = events[i]!;
      const end = events[i + 1]!;
      expect(start.startsWith("start:")).toBe(true);
      expect(end).toBe(`end:${start.slice("start:".length)}`);
    }
    // Run in queue order.
    expect(events.filter((e) => e.startsWith("start:"))).toEqual(ids.map((id) => `start:${id}`));
  });
});

describe("decideFailure", () => {
  const BASE = 1_000;
  const MAX = 60_000;

  it("does not retry a non-retryable error", () => {
    const d = decideFailure(new AgentOutputError("Coder", "gave up"), 1, 5, BASE, MAX);
    expect(d.retry).toBe(false);
    expect(d.reason).toBe("The Coder did not produce a usable result: gave up");
  });

  it("does not retry an untyped error, and gives a generic reason", () => {
    const d = decideFailure(new Error("ECONNRESET something internal"), 1, 5, BASE, MAX);
    expect(d.retry).toBe(false);
    expect(d.reason).not.toContain("ECONNRESET");
    expect(d.reason.length).toBeGreaterThan(0);
  });

  it("retries a retryable error with exponential backoff and ±20 % jitter", () => {
    for (let attempts = 1; attempts <= 4; attempts++) {
      for (let i = 0; i < 20; i++) {
        const d = decideFailure(new LlmApiError(529, "overloaded", { retryable: true }), attempts, 10, BASE, MAX);
        const nominal = BASE * 2 ** (attempts - 1);
        expect(d.retry).toBe(true);
        expect(d.delayMs).toBeGreaterThanOrEqual(Math.floor(nominal * 0.8));
        expect(d.delayMs).toBeLessThanOrEqual(Math.ceil(nominal * 1.2));
      }
    }
  });

  it("honours retryAfterMs: the delay is at least 5000 ms", () => {
    for (let i = 0; i < 20; i++) {
      const d = decideFailure(new GitHubApiError(403, "secondary rate limit", { retryable: true, retryAfterMs: 5_000 }), 1, 5, 10, 50);
      expect(d.retry).toBe(true);
      expect(d.delayMs).toBeGreaterThanOrEqual(5_000);
    }
  });

  it("does not retry once attempts reach max_attempts", () => {
    const err = new LlmApiError(529, "overloaded", { retryable: true });
    expect(decideFailure(err, 2, 3, BASE, MAX).retry).toBe(true);
    expect(decideFailure(err, 3, 3, BASE, MAX)).toMatchObject({ retry: false, delayMs: 0 });
    expect(decideFailure(err, 4, 3, BASE, MAX).retry).toBe(false);
  });

  it("never puts a token from the error into the reason", () => {
    const token = "ghs_abcdefghijklmnopqrstuvwxyz0123456789";
    const typed = new MissionControlError("x", `push failed with https://x-access-token:${token}@github.com: ${token}`, { retryable: true });
    for (const err of [typed, new Error(`boom ${token}`), new GitHubApiError(401, `bad credentials ${token}`, { retryable: false })]) {
      const d = decideFailure(err, 1, 3, BASE, MAX);
      expect(d.reason).not.toContain(token);
      expect(d.reason).not.toContain("abcdefghijklmnopqrstuvwxyz0123456789");
    }
    expect(decideFailure(typed, 1, 3, BASE, MAX).reason).toContain("[REDACTED]");
  });

  it("keeps the reason short", () => {
    const d = decideFailure(new MissionControlError("x", "y".repeat(5_000)), 1, 3, BASE, MAX);
    expect(d.reason.length).toBeLessThanOrEqual(500);
  });
});

describe("typed jobs", () => {
  it("a claimed job with a malformed payload fails at once with a clear error; its runner never sees it", async () => {
    const run = vi.fn<JobRunner>(async () => ({}));
    const onFailed = vi.fn<JobFailureHandler>(async () => {});
    const id = (await enqueueJob(db, spec({ kind: "revise", payload: { feedback: { source: "telepathy", requestedBy: 5 } } })))!;
    startWorker(run, onFailed);
    await waitForState(id, "failed");
    await vi.waitFor(() => expect(onFailed).toHaveBeenCalledOnce(), WAIT);
    expect(run).not.toHaveBeenCalled();
    expect((await jobRow(id)).last_error).toMatch(/JobPayloadError: The revise job's payload is invalid: payload\.feedback\.source/);
    expect((await jobRow(id)).attempts).toBe(1);
  });

  it("the runner receives the payload parsed by its kind's schema", async () => {
    const seen: unknown[] = [];
    const id = (await enqueueJob(db, spec({ kind: "cancel", payload: { actor: "octocat", reason: "Stopped." } })))!;
    startWorker(async (job) => {
      seen.push(job.data);
      return {};
    }, noFailure);
    await waitForState(id, "succeeded");
    expect(seen).toEqual([{ kind: "cancel", payload: { actor: "octocat", reason: "Stopped." } }]);
  });
});
