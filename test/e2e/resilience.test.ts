import path from "node:path";

import { afterEach, describe, expect, it, vi } from "vitest";

import { text, toolUse } from "../helpers/anthropic-fake.js";
import { type RunningApp, startApp, tempDir } from "../helpers/app-harness.js";
import { git } from "../helpers/git-fixtures.js";
import { deliver } from "../helpers/webhooks.js";
import { createWorld, ISSUE, labeledPayload, PLAN, scriptHappyPath, SECRET, USAGE } from "./scenario.js";

const apps: RunningApp[] = [];
let world: ReturnType<typeof createWorld> | undefined;
let dirs: ReturnType<typeof tempDir> | undefined;

afterEach(async () => {
  for (const app of apps.splice(0)) await app.stop(0).catch(() => {});
  world?.github.stop();
  world?.anthropic.stop();
  dirs?.cleanup();
  world = undefined;
  dirs = undefined;
});

async function launch(env: Record<string, string> = {}): Promise<RunningApp> {
  if (!dirs) throw new Error("no temp dir");
  const app = await startApp({
    databasePath: path.join(dirs.dir, "mc.sqlite"),
    workspacesDir: path.join(dirs.dir, "workspaces"),
    env,
  });
  apps.push(app);
  return app;
}

function setup(options: Parameters<typeof createWorld>[0] = {}) {
  dirs = tempDir();
  world = createWorld(options);
  return world;
}

async function settled(app: RunningApp): Promise<{ stage: string | undefined; jobs: Array<{ kind: string; state: string; attempts: number }> }> {
  const jobs = await app.db.selectFrom("jobs").select(["kind", "state", "attempts"]).orderBy("id").execute();
  const task = await app.db.selectFrom("tasks").select("stage").executeTakeFirst();
  return { stage: task?.stage, jobs };
}

async function waitForStage(app: RunningApp, stage: string): Promise<void> {
  await vi.waitFor(
    async () => {
      const s = await settled(app);
      expect(s.jobs.some((j) => j.state === "queued" || j.state === "running")).toBe(false);
      expect(s.stage).toBe(stage);
    },
    { timeout: 20_000, interval: 50 },
  );
  await app.worker.idle(); // failure handlers run inside the job's promise
}

const BRANCH = "mc/issue-7-friendlier-greeting";

describe("a job interrupted mid-way", () => {
  it("is resumed by a second instance on the same database and completes exactly once", async () => {
    const { github, anthropic, bare } = setup();
    scriptHappyPath(anthropic);
    // Instance A creates the PR on GitHub, then "dies" before it hears the answer.
    github.hangNext("POST", /\/pulls$/);
    const first = await launch({ JOB_LEASE_MS: "600" });
    await deliver(first.url, { event: "issues", payload: labeledPayload({ cloneUrl: bare }), secret: SECRET });
    await vi.waitFor(() => expect(github.pulls).toHaveLength(1), { timeout: 20_000, interval: 25 });
    // Stopped with a zero deadline mid-job: the job is aborted and its lease handed back.
    await first.worker.stop(0);

    const second = await launch({ JOB_LEASE_MS: "600" });
    await waitForStage(second, "ready_for_merge");

    const { jobs } = await settled(second);
    expect(jobs.map((j) => [j.kind, j.state])).toEqual([
      ["plan", "succeeded"],
      ["code", "succeeded"],
      ["test", "succeeded"],
      ["review", "succeeded"],
    ]);
    expect(jobs[1]?.attempts).toBe(1); // a released lease does not count as an attempt
    expect(github.pulls).toHaveLength(1);
    expect(github.requestsTo("POST", /\/pulls$/)).toHaveLength(1);
    expect(github.comments.filter((c) => c.body.startsWith("<!-- mission-control:plan -->"))).toHaveLength(1);
    expect(github.comments.filter((c) => c.body.startsWith("<!-- mission-control:tracking -->"))).toHaveLength(1);
    expect(github.reviews).toHaveLength(1);
    // The Coder's work was pushed once and not redone: one commit on the branch, three coder calls in all.
    expect(git(["--git-dir", bare, "rev-list", "--count", `main..${BRANCH}`])).toBe("1");
    expect(anthropic.requestsOf("coder")).toHaveLength(3);
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
    // The resumed job authenticated through app.auth(installationId) against the Enterprise host.
    expect(github.requestsTo("POST", /^\/app\/installations\/4242\/access_tokens$/).length).toBeGreaterThanOrEqual(4);
  });
});

describe("transient failures retry with backoff", () => {
  it("retries a 403 secondary rate limit and a 502 without writing anything twice", async () => {
    const { github, anthropic, bare } = setup();
    scriptHappyPath(anthropic);
    // The review is not stored when GitHub answers 502, so the Reviewer runs a second time.
    anthropic.script("reviewer", {
      content: [toolUse("submit_review", { event: "approve", body: "Still fine.", comments: [] })],
      usage: USAGE.reviewer,
    });
    github.failNext("POST", /\/pulls$/, [
      403,
      { message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again." },
      { "content-type": "application/json", "retry-after": "0" },
    ]);
    github.failNext("POST", /\/pulls\/\d+\/reviews$/, [502, { message: "Server Error" }, { "content-type": "application/json" }]);
    const app = await launch();
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: bare }), secret: SECRET });
    await waitForStage(app, "ready_for_merge");

    const { jobs } = await settled(app);
    expect(jobs.map((j) => [j.kind, j.state, j.attempts])).toEqual([
      ["plan", "succeeded", 1],
      ["code", "succeeded", 2],
      ["test", "succeeded", 1],
      ["review", "succeeded", 2],
    ]);
    expect(github.pulls).toHaveLength(1);
    expect(github.reviews).toHaveLength(1);
    expect(github.comments.filter((c) => c.body.startsWith("<!-- mission-control:plan -->"))).toHaveLength(1);
    expect(github.comments.filter((c) => c.body.startsWith("<!-- mission-control:tracking -->"))).toHaveLength(1);
    expect(git(["--git-dir", bare, "rev-list", "--count", `main..${BRANCH}`])).toBe("1");
    // The Coder's loop ran once; the retry found the pushed branch and only opened the PR.
    expect(anthropic.requestsOf("coder")).toHaveLength(3);
    // The reviewer ran again after the 502 (its review was never stored): two calls, two ledger rows.
    const reviewerRows = await app.db.selectFrom("llm_usage").select("agent").where("agent", "=", "reviewer").execute();
    expect(reviewerRows).toHaveLength(2);
  });

  it("retries an Anthropic 529 overloaded answer; the failed call costs nothing", async () => {
    const { github, anthropic, bare } = setup();
    anthropic.script("architect", { status: 529, content: [], usage: { input_tokens: 0, output_tokens: 0 } });
    scriptHappyPath(anthropic);
    const app = await launch();
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: bare }), secret: SECRET });
    await waitForStage(app, "ready_for_merge");

    const { jobs } = await settled(app);
    expect(jobs[0]).toMatchObject({ kind: "plan", state: "succeeded", attempts: 2 });
    expect(anthropic.requestsOf("architect")).toHaveLength(2);
    const architectRows = await app.db.selectFrom("llm_usage").selectAll().where("agent", "=", "architect").execute();
    expect(architectRows).toHaveLength(1);
    expect(architectRows[0]).toMatchObject(USAGE.architect);
    expect(github.pulls).toHaveLength(1);
  });
});

describe("a permanent failure", () => {
  it("marks the job failed, labels mc:failed and finalises the tracking comment with a reason", async () => {
    const { github, anthropic, bare } = setup();
    anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    anthropic.script("coder", { content: [text("I think it is fine as it is.")], usage: USAGE.coder[0]! });
    const app = await launch();
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: bare }), secret: SECRET });
    await waitForStage(app, "failed");

    const { jobs } = await settled(app);
    expect(jobs.map((j) => [j.kind, j.state, j.attempts])).toEqual([
      ["plan", "succeeded", 1],
      ["code", "failed", 1],
    ]);
    expect(github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:failed"]);
    const tracking = github.comments.find((c) => c.body.startsWith("<!-- mission-control:tracking -->"));
    expect(tracking?.body).toContain("| Code | ❌ failed |");
    expect(tracking?.body).toContain("**Stopped:** The coder did not produce a usable result: the model finished without changing any file");
    expect(tracking?.body).not.toContain("⏳");
    expect(github.pulls).toEqual([]);
    expect(git(["--git-dir", bare, "for-each-ref", "--format=%(refname:short)", "refs/heads"])).toBe("main");
  });
});
