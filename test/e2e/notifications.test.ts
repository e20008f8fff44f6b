import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";

import { afterEach, describe, expect, it, vi } from "vitest";

import { type RunningApp, startApp, tempDir } from "../helpers/app-harness.js";
import { FakeHttpReceiver } from "../helpers/notify-fakes.js";
import { deliver } from "../helpers/webhooks.js";
import { createWorld, labeledPayload, scriptHappyPath, SECRET } from "./scenario.js";

let world: ReturnType<typeof createWorld> | undefined;
let dirs: ReturnType<typeof tempDir> | undefined;
const apps: RunningApp[] = [];
const fakes: FakeHttpReceiver[] = [];

afterEach(async () => {
  for (const app of apps.splice(0)) await app.stop(0).catch(() => undefined);
  for (const fake of fakes.splice(0)) await fake.stop();
  world?.github.stop();
  world?.anthropic.stop();
  dirs?.cleanup();
  world = undefined;
  dirs = undefined;
});

const HOOK_SECRET = "e2e-hook-secret";

/** A Slack-compatible receiver and a generic webhook receiver, and the operator's file routing to them. */
async function setup(options: { slack?: number[]; hook?: number[]; routes?: string } = {}) {
  dirs = tempDir();
  world = createWorld();
  const slack = await new FakeHttpReceiver().respond(...(options.slack ?? [200])).start();
  const hook = await new FakeHttpReceiver().respond(...(options.hook ?? [200])).start();
  fakes.push(slack, hook);
  const file = path.join(dirs.dir, "notifications.yml");
  writeFileSync(
    file,
    [
      "channels:",
      `  ops: { type: slack, url: "${slack.url}/hooks/T1/B1/secret" }`,
      `  hooks: { type: webhook, url: "${hook.url}/in", secret: "${HOOK_SECRET}" }`,
      "routes:",
      options.routes ?? "  task_ready_for_merge: [ops, hooks]\n  budget_threshold: [ops]",
      "",
    ].join("\n"),
  );
  return { world, slack, hook, file };
}

async function launch(env: Record<string, string>): Promise<RunningApp> {
  if (!dirs) throw new Error("setup() first");
  const app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "workspaces"), env });
  apps.push(app);
  return app;
}

/** Waits until the task rests in `state` and no job (notifications included) is queued or running. */
async function settled(app: RunningApp, state: string): Promise<void> {
  await vi.waitFor(
    async () => {
      const open = await app.db.selectFrom("jobs").select(["id", "kind"]).where("state", "in", ["queued", "running"]).execute();
      expect(open).toEqual([]);
      expect((await app.db.selectFrom("tasks").select("stage").executeTakeFirstOrThrow()).stage).toBe(state);
    },
    { timeout: 30_000, interval: 50 },
  );
  await app.worker.idle();
  await app.mission.notifyWorker?.idle();
}

async function notifyJobs(app: RunningApp) {
  return app.db.selectFrom("jobs").select(["dedupe_key", "state", "attempts"]).where("kind", "=", "notify").orderBy("id").execute();
}

/** One series of the Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("notifications outside GitHub", () => {
  it("a task reaching ready_for_merge sends one Slack message and one signed webhook (after a 500), a budget threshold once, and nothing twice after a restart", async () => {
    const { world, slack, hook, file } = await setup({ hook: [500, 200] });
    // A warn-only task limit far below one call: the threshold (and exceeded) alerts are raised once, the work goes on.
    const env = { NOTIFICATIONS_FILE: file, BUDGET_TASK_USD: "0.000001", BUDGET_ACTION: "warn" };
    const app = await launch(env);
    scriptHappyPath(world.anthropic);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await settled(app, "ready_for_merge");

    const texts = slack.delivered.map((r) => (r.json as { text: string }).text);
    expect(texts.filter((t) => t.includes("is ready for merge"))).toHaveLength(1);
    expect(texts.filter((t) => t.includes("Budget threshold reached"))).toHaveLength(1);
    expect(slack.requests).toHaveLength(2);
    const ready = texts.find((t) => t.includes("is ready for merge")) ?? "";
    expect(ready).toContain("octo-org/widgets#7 (PR #");
    expect(ready).toMatch(/https:\/\/ghe\.example\.test\/octo-org\/widgets\/(pull|issues)\/\d+/);

    // The webhook: a 500, then the same delivery again, accepted once; signed over the raw body.
    expect(hook.requests.map((r) => r.status)).toEqual([500, 200]);
    const [failed, delivered] = hook.requests;
    expect(delivered?.headers["x-mission-control-delivery"]).toBe(failed?.headers["x-mission-control-delivery"]);
    expect(delivered?.headers["x-mission-control-event"]).toBe("task_ready_for_merge");
    const signature = `sha256=${createHmac("sha256", HOOK_SECRET)
      .update(delivered?.raw ?? "")
      .digest("hex")}`;
    expect(delivered?.headers["x-mission-control-signature-256"]).toBe(signature);
    expect(delivered?.json).toMatchObject({ event: "task_ready_for_merge", data: { subject: { repository: "octo-org/widgets", issueNumber: 7 } } });

    const jobs = await notifyJobs(app);
    expect(jobs.map((j) => j.state)).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect(jobs.find((j) => j.dedupe_key.endsWith(":hooks"))?.attempts).toBe(2);
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(sample(metrics, 'mission_control_notifications_total{channel="hooks",event="task_ready_for_merge",outcome="retry"}')).toBe(1);
    expect(sample(metrics, 'mission_control_notifications_total{channel="hooks",event="task_ready_for_merge",outcome="sent"}')).toBe(1);
    // Log lines name the channel, never its URL or secret.
    const lines = JSON.stringify(app.logs);
    expect(lines).not.toContain("/hooks/T1/B1/secret");
    expect(lines).not.toContain(HOOK_SECRET);

    // A restart on the same database sends nothing again.
    apps.splice(apps.indexOf(app), 1);
    await app.stop();
    const again = await launch(env);
    // Let the restarted workers poll the queue a few times (WORKER_POLL_MS is 50 in the harness).
    await new Promise((resolve) => setTimeout(resolve, 400));
    await again.mission.notifyWorker?.idle();
    expect(slack.requests).toHaveLength(2);
    expect(hook.requests).toHaveLength(2);
    expect((await notifyJobs(again)).map((j) => j.state)).toEqual(["succeeded", "succeeded", "succeeded"]);
  }, 30_000);

  it("a failing channel never changes the task's outcome: the notification fails alone, counted and logged", async () => {
    const { world, slack, hook, file } = await setup({ slack: [404], hook: [503], routes: "  task_ready_for_merge: [ops, hooks]" });
    const app = await launch({ NOTIFICATIONS_FILE: file });
    scriptHappyPath(world.anthropic);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await settled(app, "ready_for_merge");

    // Slack's 404 is permanent: one request. The webhook's 503 is retried up to the attempts (8), then dropped.
    expect(slack.requests).toHaveLength(1);
    expect(hook.requests).toHaveLength(8);
    expect((await notifyJobs(app)).map((j) => j.state)).toEqual(["failed", "failed"]);
    const task = await app.db.selectFrom("tasks").select(["stage", "failure_reason"]).executeTakeFirstOrThrow();
    expect(task).toEqual({ stage: "ready_for_merge", failure_reason: null });
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(sample(metrics, 'mission_control_notifications_total{channel="ops",event="task_ready_for_merge",outcome="failed"}')).toBe(1);
    expect(sample(metrics, 'mission_control_notifications_total{channel="hooks",event="task_ready_for_merge",outcome="retry"}')).toBe(7);
    expect(sample(metrics, 'mission_control_notifications_total{channel="hooks",event="task_ready_for_merge",outcome="failed"}')).toBe(1);
    expect(app.logs.some((l) => l.msg === "notification dropped after its attempts")).toBe(true);
  }, 30_000);

  it("an invalid notifications file stops the start-up, naming the problem", async () => {
    dirs = tempDir();
    world = createWorld();
    const file = path.join(dirs.dir, "notifications.yml");
    writeFileSync(file, "channels:\n  ops: { type: slack, url: 'https://hooks.example.test/x' }\nroutes:\n  task_failed: [oncall]\n");
    await expect(launch({ NOTIFICATIONS_FILE: file })).rejects.toThrow(/routes\.task_failed: no channel named "oncall"/);
  });
});
