import { Writable } from "node:stream";

import pino from "pino";
import { expect, it } from "vitest";

import { parseNotificationsConfig } from "../../src/config/notifications.js";
import { parseJobData } from "../../src/domain/jobs.js";
import { notificationId, Notifier } from "../../src/pipeline/notifications.js";
import type { NotificationChannel, NotificationMessage } from "../../src/ports/notifications.js";
import { reserve } from "../../src/store/budgets.js";
import { observeStore } from "../../src/store/events.js";
import type { Store } from "../../src/store/open-store.js";
import type { QueuedJob } from "../../src/store/queue.js";
import { transition } from "../../src/store/transitions.js";
import { insertTask } from "../helpers/db.js";
import { describeQueueContract } from "../helpers/queue-backends.js";

const NOTIFY = { only: ["notify"] } as const;
const LEASE_MS = 60_000;

/** A channel that records what it was asked to send. */
function recordingChannel(name: string): NotificationChannel & { sent: Array<{ message: NotificationMessage; id: string }> } {
  const sent: Array<{ message: NotificationMessage; id: string }> = [];
  return {
    name,
    type: "webhook",
    sent,
    send(message, options) {
      sent.push({ message, id: options.idempotencyKey });
      return Promise.resolve();
    },
  };
}

function notifierFor(store: Store, log = pino({ level: "silent" })) {
  const config = parseNotificationsConfig(
    {
      channels: {
        ops: { type: "slack", url: "https://hooks.example.test/ops" },
        hooks: { type: "webhook", url: "https://hooks.example.test/in", secret: "s", repositories: true },
        finance: { type: "slack", url: "https://hooks.example.test/finance" },
      },
      routes: { task_ready_for_merge: ["ops"], budget_threshold: ["ops"], daily_digest: ["hooks"] },
      digest: { hour_utc: 8 },
    },
    {},
  );
  const channels = new Map([
    ["ops", recordingChannel("ops")],
    ["hooks", recordingChannel("hooks")],
    ["finance", recordingChannel("finance")],
  ]);
  const notifier = new Notifier({ config, channels, githubWebUrl: "https://github.com", log });
  notifier.attach(store.db);
  return { notifier, channels };
}

/** Claims every queued `notify` job (completing each, so the next of the same channel can be claimed). */
async function drainNotify(store: Store): Promise<QueuedJob[]> {
  const jobs: QueuedJob[] = [];
  for (;;) {
    const job = await store.queue.claim(store.db, "t", LEASE_MS, NOTIFY);
    if (!job) return jobs;
    jobs.push(job);
    await store.db.transaction().execute((trx) => store.queue.complete(trx, job, "t"));
  }
}

describeQueueContract("notifications enqueued with the facts that raise them", (replicas) => {
  it("a transition to ready_for_merge enqueues one job per channel (server routes plus the repository's known names), sent once", async () => {
    const { a } = replicas();
    const { notifier, channels } = notifierFor(a);
    const taskId = await insertTask(a.db, {
      stage: "reviewing",
      pr_number: 12,
      pr_url: "https://github.com/octo-org/octo-repo/pull/12",
      config: JSON.stringify({ notifications: { routes: { task_ready_for_merge: ["hooks", "undefined-channel"] } } }),
    });
    await transition(a.db, taskId, "ready_for_merge", { reason: "review approved", actor: "mission-control" });
    const jobs = await drainNotify(a);
    expect(jobs.map((j) => [j.kind, j.lock_key, j.task_id, j.max_attempts]).sort()).toEqual([
      ["notify", "notify:hooks", taskId, 8],
      ["notify", "notify:ops", taskId, 8],
    ]);
    expect(jobs.map((j) => j.dedupe_key).sort()).toEqual([
      expect.stringMatching(/^notify:transition:\d+:hooks$/),
      expect.stringMatching(/^notify:transition:\d+:ops$/),
    ]);
    for (const job of jobs) {
      const data = parseJobData(job.kind, job.payload);
      if (data.kind !== "notify") throw new Error("not a notify job");
      await notifier.run({ ...job, data }, new AbortController().signal, pino({ level: "silent" }));
    }
    const ops = channels.get("ops")?.sent ?? [];
    expect(ops).toHaveLength(1);
    // The id the channel gets (webhook delivery id, e-mail Message-ID) is the hash of the job's dedupe key: the same on every retry.
    const opsJob = jobs.find((j) => j.lock_key === "notify:ops");
    expect(ops[0]?.id).toBe(notificationId(opsJob?.dedupe_key ?? ""));
    expect(ops[0]?.id).toMatch(/^[0-9a-f]{32}$/);
    expect(ops[0]?.message.text).toContain("octo-org/octo-repo#");
    expect(ops[0]?.message.url).toBe("https://github.com/octo-org/octo-repo/pull/12");
    expect(channels.get("hooks")?.sent).toHaveLength(1);
    // A transition that raises no event (planning → coding) enqueues nothing.
    const other = await insertTask(a.db, { stage: "planning" });
    await transition(a.db, other, "coding", { reason: "plan posted", actor: "mission-control" });
    expect(await drainNotify(a)).toEqual([]);
  });

  it("a repository's route to a channel the operator did not open to repositories is ignored, with a warning", async () => {
    const { a } = replicas();
    const lines: string[] = [];
    const log = pino(
      { level: "warn" },
      new Writable({
        write(chunk, _encoding, callback) {
          lines.push(String(chunk));
          callback();
        },
      }),
    );
    notifierFor(a, log);
    const taskId = await insertTask(a.db, {
      stage: "reviewing",
      config: JSON.stringify({ notifications: { routes: { task_failed: ["finance", "hooks"] } } }),
    });
    await transition(a.db, taskId, "failed", { reason: "tests failed", actor: "mission-control" });
    const jobs = await drainNotify(a);
    expect(jobs.map((j) => j.lock_key)).toEqual(["notify:hooks"]);
    const warning = lines.map((l) => JSON.parse(l) as { msg: string; closed?: string[]; repository?: string }).find((l) => l.closed);
    expect(warning).toMatchObject({ closed: ["finance"], repository: "octo-org/octo-repo" });
    expect(warning?.msg).toContain("repositories: true");
  });

  it("a transition rolled back enqueues nothing", async () => {
    const { a } = replicas();
    notifierFor(a);
    const remove = observeStore(a.db, "zz-failing", {
      onTransition: () => Promise.reject(new Error("observer failed after the notifier enqueued")),
    });
    try {
      const taskId = await insertTask(a.db, { stage: "reviewing" });
      await expect(transition(a.db, taskId, "ready_for_merge", { reason: "x", actor: "mission-control" })).rejects.toThrow("observer failed");
      expect((await a.db.selectFrom("tasks").select("stage").where("id", "=", taskId).executeTakeFirstOrThrow()).stage).toBe("reviewing");
      expect(await drainNotify(a)).toEqual([]);
    } finally {
      remove();
    }
  });

  it("a budget threshold enqueues one notification per scope and window", async () => {
    const { a } = replicas();
    notifierFor(a);
    const taskId = await insertTask(a.db);
    const subject = { installationId: 1, repository: "octo-org/octo-repo", agent: "coder", taskId, subjectNumber: 1, jobId: null };
    const limits = [
      { scope: "repository" as const, period: "monthly" as const, limitNanoUsd: 1_000_000_000, threshold: 0.5, action: "block" as const, source: "server" },
    ];
    const first = await reserve(a.db, { subject, limits, amountNanoUsd: 600_000_000 });
    expect(first.alerts).toHaveLength(1);
    await reserve(a.db, { subject, limits, amountNanoUsd: 100_000_000 });
    const jobs = await drainNotify(a);
    expect(jobs).toHaveLength(1);
    const data = parseJobData("notify", jobs[0]?.payload ?? "");
    expect(data).toMatchObject({
      kind: "notify",
      payload: { channel: "ops", event: { type: "budget_threshold", scope: "repository", spentNanoUsd: 600_000_000, limitNanoUsd: 1_000_000_000 } },
    });
  });

  it("the daily digest goes out once per installation and day, after the configured hour", async () => {
    const { a } = replicas();
    const { notifier } = notifierFor(a);
    const today = Date.UTC(2026, 10, 27);
    const yesterday = today - 86_400_000;
    const taskId = await insertTask(a.db, { installation_id: 7, stage: "reviewing" });
    await transition(a.db, taskId, "failed", { reason: "tests failed", actor: "mission-control", now: yesterday + 3_600_000 });
    await a.db
      .insertInto("llm_usage")
      .values({
        created_at: yesterday + 7_200_000,
        installation_id: 7,
        repository: "octo-org/octo-repo",
        subject_number: 1,
        task_id: taskId,
        job_id: null,
        agent: "coder",
        model: "m",
        input_tokens: 1,
        output_tokens: 1,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        cost_nano_usd: 1_250_000_000,
        request_id: null,
      })
      .execute();
    expect(await notifier.enqueueDigests(a.db, today + 7 * 3_600_000)).toBe(0);
    expect(await notifier.enqueueDigests(a.db, today + 8 * 3_600_000 + 1)).toBe(1);
    expect(await notifier.enqueueDigests(a.db, today + 9 * 3_600_000)).toBe(0);
    const jobs = await drainNotify(a);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]?.dedupe_key).toBe("notify:digest:7:2026-11-26:hooks");
    expect(parseJobData("notify", jobs[0]?.payload ?? "")).toMatchObject({
      payload: { event: { type: "daily_digest", installationId: 7, day: "2026-11-26", failed: 1, spendNanoUsd: 1_250_000_000 } },
    });
  });

  it("a stand-up goes to the digest's channels once per repository and date, rendered without pings", async () => {
    const { a } = replicas();
    const { notifier, channels } = notifierFor(a);
    const event = {
      type: "standup" as const,
      subject: { repository: "octo-org/octo-repo", issueNumber: 40, issueUrl: "https://github.com/octo-org/octo-repo/issues/40" },
      date: "2026-11-27",
      started: 2,
      prsOpened: 1,
      merged: 1,
      failed: 0,
      waiting: 1,
      proposals: 3,
      spendNanoUsd: 1_500_000_000,
    };
    await notifier.standupWritten(a.db, { installationId: 7, event });
    await notifier.standupWritten(a.db, { installationId: 7, event }); // a retried stand-up job
    const jobs = await drainNotify(a);
    expect(jobs.map((j) => j.dedupe_key)).toEqual(["notify:standup:octo-org/octo-repo:2026-11-27:hooks"]);
    const job = jobs[0];
    const data = job && parseJobData("notify", job.payload);
    if (!job || data?.kind !== "notify") throw new Error("no notify job");
    await notifier.run({ ...job, data }, new AbortController().signal, pino({ level: "silent" }));
    const sent = channels.get("hooks")?.sent ?? [];
    expect(sent).toHaveLength(1);
    expect(sent[0]?.message.title).toBe("🧭 Stand-up of octo-org/octo-repo for 2026-11-27");
    expect(sent[0]?.message.text).toContain(
      "2 task(s) started, 1 pull request(s) opened, 1 merged, 0 failed; 1 waiting for a person; 3 follow-up(s) proposed; spend $1.50.",
    );
    expect(sent[0]?.message.url).toBe("https://github.com/octo-org/octo-repo/issues/40");
    expect(channels.get("ops")?.sent).toEqual([]);
  });
});
