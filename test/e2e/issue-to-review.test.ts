import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";

import { afterEach, describe, expect, it, vi } from "vitest";

import type { FakeAnthropic } from "../helpers/anthropic-fake.js";
import { type RunningApp, startApp, TEST_ANTHROPIC_KEY, TEST_PRIVATE_KEY, tempDir } from "../helpers/app-harness.js";
import { canTransition } from "../../src/domain/task-state.js";
import { branches, fileAt, git } from "../helpers/git-fixtures.js";
import type { FakeGitHub } from "../helpers/github-fake.js";
import { deliver, examplePayload } from "../helpers/webhooks.js";
import { createWorld, ISSUE, labeledPayload, OWNER, PLAN, REPO, scriptHappyPath, SECRET, USAGE } from "./scenario.js";

let app: RunningApp | undefined;
let world: ReturnType<typeof createWorld> | undefined;
let dirs: ReturnType<typeof tempDir> | undefined;

afterEach(async () => {
  await app?.stop();
  world?.github.stop();
  world?.anthropic.stop();
  dirs?.cleanup();
  app = undefined;
  world = undefined;
  dirs = undefined;
});

async function boot(options: Parameters<typeof createWorld>[0] = {}) {
  dirs = tempDir();
  world = createWorld(options);
  app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "workspaces") });
  return { app, world, dirs };
}

/** The task's stage once no job of it is queued or running any more. */
async function settledStage(running: RunningApp): Promise<string | undefined> {
  const open = await running.db.selectFrom("jobs").select("id").where("state", "in", ["queued", "running"]).execute();
  if (open.length > 0) return undefined;
  const task = await running.db.selectFrom("tasks").select("stage").executeTakeFirst();
  return task?.stage;
}

/** USD of one call at claude-sonnet-5-5 prices ($2 input, $10 output, $2.50 cache write, $0.20 cache read per MTok). */
function expectedCost(u: { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number }) {
  return (u.input_tokens * 2 + u.output_tokens * 10 + u.cache_creation_input_tokens * 2.5 + u.cache_read_input_tokens * 0.2) / 1_000_000;
}

function trackingComment(github: FakeGitHub) {
  return github.comments.filter((c) => c.body.startsWith("<!-- mission-control:tracking -->"));
}

function planComments(github: FakeGitHub) {
  return github.comments.filter((c) => c.body.startsWith("<!-- mission-control:plan -->"));
}

function assertNoSecretSent(anthropic: FakeAnthropic, github: FakeGitHub) {
  for (const request of anthropic.requests) {
    for (const token of github.tokens) expect(request.raw).not.toContain(token);
    expect(request.raw).not.toContain(TEST_ANTHROPIC_KEY);
    expect(request.raw).not.toContain("PRIVATE KEY");
  }
}

describe("labelling an issue `agent` runs plan → code → test → review on GitHub", () => {
  it("posts the plan, pushes the branch, opens the PR, tests and reviews it, and records every call's cost", async () => {
    const { app, world } = await boot();
    scriptHappyPath(world.anthropic);

    const response = await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    expect(response.status).toBeLessThan(300);

    await vi.waitFor(async () => expect(await settledStage(app)).toBe("ready_for_merge"), { timeout: 20_000, interval: 50 });
    await app.worker.idle();
    const { github, anthropic, bare } = world;

    // Plan comment: one, with the Definition of Done and test plan.
    const plans = planComments(github);
    expect(plans).toHaveLength(1);
    expect(plans[0]?.body).toContain("### Definition of Done");
    expect(plans[0]?.body).toContain(PLAN.definition_of_done[0]);
    expect(plans[0]?.body).toContain("### Test plan");

    // Branch pushed to the real remote, with the scripted change, authored by the app's bot.
    const branch = "mc/issue-7-friendlier-greeting";
    expect(branches(bare).sort()).toEqual(["main", branch].sort());
    expect(fileAt(bare, branch, "src/greet.js")).toContain('return "Hello, " + name + "!";');
    expect(fileAt(bare, "main", "src/greet.js")).toContain('return "Hello " + name;');

    // The PR closes the issue and carries the plan's summary.
    expect(github.pulls).toHaveLength(1);
    const pr = github.pulls[0]!;
    expect(pr).toMatchObject({ head: branch, base: "main", state: "open" });
    expect(pr.body).toContain(`Closes #${ISSUE}`);
    expect(pr.body).toContain(PLAN.summary);

    // The Tester ran the repository's tests in the sandbox and reported a check run on the head sha.
    const headSha = git(["--git-dir", bare, "rev-parse", branch]);
    const testsCheck = github.checkRuns.find((c) => c.name === "Mission Control / Tests");
    expect(testsCheck).toMatchObject({ head_sha: headSha, status: "completed", conclusion: "success" });
    expect(testsCheck?.output?.summary).toContain("**Command:** `npm test`");
    expect(testsCheck?.output?.summary).toContain("**Exit code:** 0");
    expect(testsCheck?.output?.text).toContain(`✅ ${PLAN.definition_of_done[0]}`);

    // The review: COMMENT (the app authored the PR), verdict in the body and as a check run.
    expect(github.reviews).toHaveLength(1);
    expect(github.reviews[0]).toMatchObject({ pull_number: pr.number, event: "COMMENT", commit_id: headSha });
    expect(github.reviews[0]?.body).toContain("Verdict: **approve**");
    const reviewCheck = github.checkRuns.find((c) => c.name === "Mission Control / Review");
    expect(reviewCheck).toMatchObject({ head_sha: headSha, status: "completed", conclusion: "success" });

    // Labels: one state label at a time, created with colours and descriptions, ending on mc:ready_for_merge.
    const added = github.labelEvents.filter((e) => e.action === "add").map((e) => e.label);
    expect(added).toEqual(["mc:planning", "mc:coding", "mc:testing", "mc:reviewing", "mc:ready_for_merge"]);
    expect(github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:ready_for_merge"]);
    expect(github.repoLabels.get("mc:testing")).toEqual({ color: "5319e7", description: "Mission Control: the Tester is running the tests" });

    // Every transition was legal and recorded, with its reason and actor.
    const transitions = await app.db.selectFrom("transitions").selectAll().orderBy("id").execute();
    expect(transitions.map((t) => [t.from_state, t.to_state])).toEqual([
      [null, "planning"],
      ["planning", "coding"],
      ["coding", "testing"],
      ["testing", "reviewing"],
      ["reviewing", "ready_for_merge"],
    ]);
    for (const t of transitions) {
      expect(canTransition(t.from_state, t.to_state)).toBe(true);
      expect(t.actor).toBe("maintainer");
      expect(t.reason.length).toBeGreaterThan(0);
    }

    // One tracking comment, created once and edited in place as stages completed.
    const tracking = trackingComment(github);
    expect(tracking).toHaveLength(1);
    const history = github.commentHistory.get(tracking[0]!.id)!;
    expect(history.length).toBeGreaterThanOrEqual(4);
    expect(history[0]).toContain("| Plan | ⏳ running |");
    const final = history.at(-1)!;
    expect(final).toContain("**Ready for merge.**");
    expect(final).toContain("| Test | ✅ passed |");
    expect(final).not.toContain("⏳");
    expect(final).toContain(`[#${pr.number}]`);
    expect(github.requestsTo("POST", /\/issues\/7\/comments$/)).toHaveLength(2); // tracking + plan, nothing else

    // Ledger: a row per Messages API call, cost = tokens × prices.
    const rows = await app.db.selectFrom("llm_usage").selectAll().orderBy("id").execute();
    expect(rows.map((r) => r.agent)).toEqual(["architect", "coder", "coder", "coder", "tester", "reviewer"]);
    const scripted = [USAGE.architect, ...USAGE.coder, USAGE.tester, USAGE.reviewer];
    rows.forEach((row, i) => {
      const usage = scripted[i]!;
      expect(row).toMatchObject({ ...usage, model: "claude-sonnet-5-5", installation_id: 4242, repository: `${OWNER}/${REPO}`, subject_number: ISSUE });
      expect(row.cost_nano_usd).toBe(Math.round(expectedCost(usage) * 1e9)); // whole nano-dollars
      expect(row.request_id).toMatch(/^req_test_\d+$/);
      expect(row.job_id).toBeGreaterThan(0);
    });
    const total = rows.reduce((sum, r) => sum + r.cost_nano_usd, 0);
    expect(total).toBe(27_540_000); // $0.02754, exactly
    expect(final).toContain("$0.0275");

    // Requests: the issue went in the user turn, never the system prompt; prompts are cached.
    const architectRequest = anthropic.requestsOf("architect")[0]!.body;
    expect(JSON.stringify(architectRequest.system)).not.toContain("Hello, <name>!");
    const userText = architectRequest.messages[0].content.map((b: { text?: string }) => b.text ?? "").join("");
    expect(userText).toContain('<issue number="7" author="reporter">');
    expect(userText).toContain("greet() should say `Hello, <name>!`.");
    expect(architectRequest.system[0].cache_control).toEqual({ type: "ephemeral" });
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
    // Every reservation was settled against the recorded usage.
    const reservations = await app.db.selectFrom("budget_reservations").select("status").execute();
    expect(reservations.map((r) => r.status)).toEqual(Array(6).fill("settled"));

    // No secret reached the model; every GitHub call went to the Enterprise host (nock refuses others).
    assertNoSecretSent(anthropic, github);

    // The clone is kept for the PR's revisions (the Architect's shallow clone is gone); no token landed in it.
    const workspaces = path.join(app.env.WORKSPACES_DIR, OWNER, REPO, "issue-7");
    // The work tree and its mirror (the only repository that talks to the remote).
    expect(existsSync(workspaces) ? readdirSync(workspaces) : []).toEqual(["code", "code.mirror"]);
    const gitConfig = readFileSync(path.join(workspaces, "code", ".git", "config"), "utf8");
    for (const token of github.tokens) expect(gitConfig).not.toContain(token);
    expect(gitConfig).not.toMatch(/extraheader|x-access-token/i);

    // Log lines of the job carry delivery, job, repository and issue.
    const jobLines = app.logs.filter((l) => l.msg === "job succeeded");
    expect(jobLines).toHaveLength(4);
    for (const line of jobLines) {
      expect(line).toMatchObject({ deliveryId: response.id, lockKey: `${OWNER}/${REPO}#${ISSUE}` });
      expect(line.jobId).toEqual(expect.stringMatching(/^\d+$/));
    }
    // GitHub request lines of a job carry its fields too.
    const requestLines = app.logs.filter((l) => String(l.msg).startsWith("GitHub request: PATCH"));
    expect(requestLines.length).toBeGreaterThan(0);
    for (const line of requestLines)
      expect(line).toMatchObject({ deliveryId: response.id, repo: `${OWNER}/${REPO}`, issue: ISSUE, jobId: expect.stringMatching(/^\d+$/) });
    const allLogs = JSON.stringify(app.logs);
    for (const token of github.tokens) expect(allLogs).not.toContain(token);
    expect(allLogs).not.toContain(TEST_ANTHROPIC_KEY);
    expect(allLogs).not.toContain(TEST_PRIVATE_KEY.slice(40, 80));
  });
});

describe("webhook guards", () => {
  it("refuses a delivery with a wrong signature: 4xx, no job, no GitHub call", async () => {
    const { app, world } = await boot();
    const response = await deliver(app.url, {
      event: "issues",
      payload: labeledPayload({ cloneUrl: world.bare }),
      secret: SECRET,
      signWith: "not-the-secret",
    });
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect(await app.db.selectFrom("jobs").selectAll().execute()).toEqual([]);
    expect(world.github.requests).toEqual([]);
  });

  it("ignores a sender with read permission: no LLM call, no push", async () => {
    const { app, world } = await boot({ permissions: { maintainer: "write" } });
    const response = await deliver(app.url, {
      event: "issues",
      payload: labeledPayload({ cloneUrl: world.bare, sender: "drive-by" }),
      secret: SECRET,
    });
    expect(response.status).toBeLessThan(300);
    expect(world.github.requestsTo("GET", /\/collaborators\/drive-by\/permission$/)).toHaveLength(1);
    expect(await app.db.selectFrom("jobs").selectAll().execute()).toEqual([]);
    expect(world.anthropic.requests).toEqual([]);
    expect(branches(world.bare)).toEqual(["main"]);
    expect(world.github.comments).toEqual([]);
  });

  it("ignores bots, this app included, without asking GitHub anything", async () => {
    const { app, world } = await boot();
    const response = await deliver(app.url, {
      event: "issues",
      payload: labeledPayload({ cloneUrl: world.bare, sender: "mission-control-test[bot]", senderType: "Bot" }),
      secret: SECRET,
    });
    expect(response.status).toBeLessThan(300);
    expect(world.github.requests).toEqual([]);
    expect(await app.db.selectFrom("jobs").selectAll().execute()).toEqual([]);
  });

  it("ignores other labels", async () => {
    const { app, world } = await boot();
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare, label: "bug" }), secret: SECRET });
    expect(await app.db.selectFrom("jobs").selectAll().execute()).toEqual([]);
    expect(world.github.requestsTo("GET", /permission$/)).toEqual([]);
  });

  it("honours the trigger label from .github/mission-control.yml on the default branch", async () => {
    const { app, world } = await boot({ repoConfigYaml: "trigger_label: ai-please\n" });
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare, label: "agent" }), secret: SECRET });
    expect(await app.db.selectFrom("jobs").selectAll().execute()).toEqual([]);
    await app.worker.stop(0);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare, label: "ai-please" }), secret: SECRET });
    const jobs = await app.db.selectFrom("jobs").selectAll().execute();
    expect(jobs.map((j) => j.kind)).toEqual(["plan"]);
    const configReads = world.github.requestsTo("GET", /\/contents\/\.github\/mission-control\.yml$/);
    expect(configReads.every((r) => !r.query.has("ref"))).toBe(true);
  });

  it("processes the same delivery id once", async () => {
    const { app, world } = await boot();
    await app.worker.stop(0); // keep the job queued: only the enqueue is under test
    const payload = labeledPayload({ cloneUrl: world.bare });
    const first = await deliver(app.url, { event: "issues", payload, secret: SECRET, id: "delivery-1" });
    const second = await deliver(app.url, { event: "issues", payload, secret: SECRET, id: "delivery-1" });
    expect(first.status).toBeLessThan(300);
    expect(second.status).toBeLessThan(300);
    const jobs = await app.db.selectFrom("jobs").selectAll().execute();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]?.delivery_id).toBe("delivery-1");
    expect(await app.db.selectFrom("deliveries").selectAll().execute()).toHaveLength(1);
  });

  it("starts on issues.opened when the new issue already carries the label", async () => {
    const { app, world } = await boot();
    await app.worker.stop(0);
    const payload = examplePayload("issues", "opened");
    const labeled = labeledPayload({ cloneUrl: world.bare });
    Object.assign(payload, { repository: labeled.repository, sender: labeled.sender, installation: labeled.installation });
    payload.issue.number = ISSUE;
    payload.issue.state = "open";
    payload.issue.labels = [{ ...labeled.label, name: "agent" }];
    const response = await deliver(app.url, { event: "issues", payload, secret: SECRET });
    expect(response.status).toBeLessThan(300);
    const jobs = await app.db.selectFrom("jobs").select(["kind", "delivery_id"]).execute();
    expect(jobs).toEqual([{ kind: "plan", delivery_id: response.id }]);

    payload.issue.labels = [];
    await deliver(app.url, { event: "issues", payload: { ...payload, issue: { ...payload.issue, number: ISSUE + 1 } }, secret: SECRET });
    expect(await app.db.selectFrom("jobs").select("id").execute()).toHaveLength(1);
  });

  it("accepts signed deliveries at the server root too (the URL Probot's manifest flow registers), still verifying them", async () => {
    const { app, world } = await boot();
    await app.worker.stop(0);
    const forged = await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET, signWith: "wrong", path: "/" });
    expect(forged.status).toBeGreaterThanOrEqual(400);
    expect(await app.db.selectFrom("jobs").selectAll().execute()).toEqual([]);
    const signed = await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET, path: "/" });
    expect(signed.status).toBeLessThan(300);
    expect((await app.db.selectFrom("jobs").select("kind").execute()).map((j) => j.kind)).toEqual(["plan"]);
  });

  it("answers /healthz with the database, its backend, queue depth, and the sandbox's user and limits", async () => {
    const { app } = await boot();
    const response = await fetch(`${app.url}/healthz`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown> & { sandbox: { ok: boolean; mode: string; user: string; limits: string[] } };
    expect({ ...body, sandbox: undefined }).toEqual({
      status: "ok",
      database: "reachable",
      backend: "sqlite",
      queue: { queued: 0, running: 0 },
      sandbox: undefined,
    });
    expect(body.sandbox).toMatchObject({ ok: true, mode: "bwrap" });
    expect(body.sandbox.limits).toEqual(expect.arrayContaining(["timeout", "output", "disk", "tmpfs sizes"]));
    expect(body.sandbox.limits.join(" ")).toMatch(/memory \(v[12]\)/);
  });
});
