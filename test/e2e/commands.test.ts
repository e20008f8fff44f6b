import path from "node:path";

import nock from "nock";
import { afterEach, describe, expect, it, vi } from "vitest";

import { ANTHROPIC_TEST_URL } from "../helpers/anthropic-fake.js";
import { type RunningApp, startApp, tempDir } from "../helpers/app-harness.js";
import { branches } from "../helpers/git-fixtures.js";
import { deliver } from "../helpers/webhooks.js";
import { commentPayload, expectedCost, openJobs, replyTo, settledStage, sumUsage, trackingComments, waitForReply } from "./command-helpers.js";
import { createWorld, INSTALLATION_ID, ISSUE, labeledPayload, OWNER, PLAN, REPO, scriptHappyPath, SECRET, USAGE } from "./scenario.js";

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

/** Logins of the scenarios: `reader` (and anyone unlisted) only has read permission. */
const PERMISSIONS = { maintainer: "write", "owner-login": "write", approver: "write" } as const;

function setup(options: Parameters<typeof createWorld>[0] = {}) {
  dirs = tempDir();
  world = createWorld({ permissions: { ...PERMISSIONS }, ...options });
  return world;
}

/** Starts an app on this test's database file; `env` is the server environment it is started with. */
async function launch(env: Record<string, string> = {}): Promise<RunningApp> {
  if (!dirs) throw new Error("setup() first");
  const app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "workspaces"), env });
  apps.push(app);
  return app;
}

async function stopApp(app: RunningApp): Promise<void> {
  apps.splice(apps.indexOf(app), 1);
  await app.stop();
}

/** Sends a comment on the issue (or PR) as `sender`; returns the delivery's answer and the comment id. */
async function comment(app: RunningApp, body: string, options: Omit<Parameters<typeof commentPayload>[0], "cloneUrl" | "body"> = {}) {
  if (!world) throw new Error("setup() first");
  const { payload, commentId } = commentPayload({ cloneUrl: world.bare, body, ...options });
  const response = await deliver(app.url, { event: "issue_comment", payload, secret: SECRET });
  expect(response.status).toBeLessThan(300);
  return { response, commentId };
}

async function label(app: RunningApp) {
  if (!world) throw new Error("setup() first");
  const response = await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
  expect(response.status).toBeLessThan(300);
  return response;
}

async function transitions(app: RunningApp) {
  const rows = await app.db.selectFrom("transitions").select(["from_state", "to_state", "actor"]).orderBy("id").execute();
  return rows.map((t) => [t.from_state, t.to_state]);
}

const HAPPY_TRANSITIONS = [
  [null, "planning"],
  ["planning", "coding"],
  ["coding", "testing"],
  ["testing", "reviewing"],
  ["reviewing", "ready_for_merge"],
];

const MODEL = "claude-sonnet-5-5";
const fmt = (n: number) => n.toLocaleString("en-US");
const usd4 = (n: number) => `$${n.toFixed(4)}`;
/** Scripted usage of each agent over the happy path. */
const AGENT_USAGE = {
  architect: [USAGE.architect],
  coder: USAGE.coder,
  reviewer: [USAGE.reviewer],
  tester: [USAGE.tester],
};
const TOTAL_USD = Object.values(AGENT_USAGE)
  .flat()
  .reduce((sum, u) => sum + expectedCost(u), 0);

// ---------------------------------------------------------------------------------------------

describe("who may run commands", () => {
  it("/status: ignored from a reader; from a writer an 👀 reaction and the status reply", async () => {
    const { github } = setup();
    const app = await launch();

    const fromReader = await comment(app, "/status", { sender: "reader" });
    expect(github.requestsTo("GET", /\/collaborators\/reader\/permission$/)).toHaveLength(1);
    expect(github.reactions).toEqual([]);
    expect(await app.db.selectFrom("jobs").selectAll().execute()).toEqual([]);
    expect(github.comments).toEqual([]);
    expect(replyTo(github, fromReader.commentId)).toBeUndefined();

    const fromWriter = await comment(app, "/status", { sender: "maintainer" });
    expect(github.reactions).toEqual([{ commentId: fromWriter.commentId, content: "eyes" }]);
    const body = await waitForReply(github, fromWriter.commentId);
    expect(body).toContain(`### 📍 Status of #${ISSUE}`);
    expect(body).toContain("**State:** `new`");
    await settledStage(app);
    const jobs = await app.db.selectFrom("jobs").select(["kind", "state", "delivery_id"]).execute();
    expect(jobs).toEqual([{ kind: "command", state: "succeeded", delivery_id: fromWriter.response.id }]);
    // Only the reply: the reader got nothing.
    expect(github.comments).toHaveLength(1);
  });

  it("every command from a reader is ignored: no reaction, no job", async () => {
    const { github, anthropic } = setup();
    const app = await launch();
    const names = ["plan", "code", "test", "review", "status", "budget", "stop", "retry", "approve", "report", "help"];
    for (const name of names) await comment(app, `/${name}`, { sender: "reader" });
    await comment(app, "/stop all", { sender: "reader" });

    // Every comment was recognised as a command and reached the permission check…
    expect(github.requestsTo("GET", /\/collaborators\/reader\/permission$/)).toHaveLength(names.length + 1);
    // …and nothing followed it.
    expect(await app.db.selectFrom("jobs").selectAll().execute()).toEqual([]);
    expect(await app.db.selectFrom("tasks").selectAll().execute()).toEqual([]);
    expect(await app.db.selectFrom("pauses").selectAll().execute()).toEqual([]);
    expect(github.reactions).toEqual([]);
    expect(github.comments).toEqual([]);
    expect(github.requestsTo("GET", /\/orgs\//)).toEqual([]);
    expect(anthropic.requests).toEqual([]);
  });

  it("/stop all: a writer who does not own the organisation gets 😕 and pauses nothing; an owner pauses the installation", async () => {
    const { github } = setup();
    github.orgRoles.set("maintainer", "member");
    github.orgRoles.set("owner-login", "admin");
    const app = await launch();

    const byWriter = await comment(app, "/stop all", { sender: "maintainer" });
    expect(github.requestsTo("GET", new RegExp(`^/orgs/${OWNER}/memberships/maintainer$`))).toHaveLength(1);
    expect(github.reactions).toEqual([{ commentId: byWriter.commentId, content: "confused" }]);
    expect(await app.db.selectFrom("jobs").selectAll().execute()).toEqual([]);
    expect(await app.db.selectFrom("pauses").selectAll().execute()).toEqual([]);

    const byOwner = await comment(app, "/stop all", { sender: "owner-login" });
    expect(github.reactions).toContainEqual({ commentId: byOwner.commentId, content: "eyes" });
    const body = await waitForReply(github, byOwner.commentId);
    expect(body).toContain("@owner-login paused every new LLM call of this installation");
    const pauses = await app.db.selectFrom("pauses").select(["installation_id", "paused_by"]).execute();
    expect(pauses).toEqual([{ installation_id: INSTALLATION_ID, paused_by: "owner-login" }]);
    expect(replyTo(github, byWriter.commentId)).toBeUndefined();
  });
});

describe("comments that are not commands", () => {
  it("ignores commands in a code block or a quote, ordinary comments and edited comments; answers an unknown command with the help", async () => {
    const { github } = setup();
    const app = await launch();

    await comment(app, "```\n/plan\n```", { sender: "maintainer" });
    await comment(app, "> /plan\n\nWhat would this do?", { sender: "maintainer" });
    await comment(app, "Thanks, looks good to me.", { sender: "maintainer" });
    // An edit that turns a comment into a command does not run it.
    await comment(app, "/plan", { sender: "maintainer", action: "edited" });

    expect(github.reactions).toEqual([]);
    expect(await app.db.selectFrom("jobs").selectAll().execute()).toEqual([]);
    expect(await app.db.selectFrom("tasks").selectAll().execute()).toEqual([]);
    expect(github.requestsTo("GET", /\/permission$/)).toEqual([]);
    expect(github.comments).toEqual([]);

    const unknown = await comment(app, "/deploy to production", { sender: "maintainer" });
    expect(github.reactions).toEqual([{ commentId: unknown.commentId, content: "eyes" }]);
    const body = await waitForReply(github, unknown.commentId);
    expect(body).toContain("| Command | What it does | Who may use it |");
    expect(body).toContain("| `/plan [notes]` |");
    expect(body).toContain("| `/stop [all]` |");
    expect(body).toContain("@mission-control-test status");
    await settledStage(app);
    const jobs = await app.db.selectFrom("jobs").select(["kind", "state"]).execute();
    expect(jobs).toEqual([{ kind: "command", state: "succeeded" }]);
  });
});

describe("/budget", () => {
  it("lists the spend by agent and model with the hand-computed USD", async () => {
    const { github, anthropic } = setup();
    scriptHappyPath(anthropic);
    const app = await launch();
    await label(app);
    expect(await settledStage(app)).toBe("ready_for_merge");

    const { commentId } = await comment(app, "/budget", { sender: "maintainer" });
    const body = await waitForReply(github, commentId);
    expect(body).toContain(`### 💰 Budget for #${ISSUE}`);
    expect(body).toContain("| Agent | Model | Calls | Input | Output | Cache write | Cache read | USD |");
    const positions: number[] = [];
    for (const [agent, usages] of Object.entries(AGENT_USAGE)) {
      const u = sumUsage(usages);
      const cost = usages.reduce((sum, x) => sum + expectedCost(x), 0);
      const row = `| ${agent} | ${MODEL} | ${usages.length} | ${fmt(u.input_tokens)} | ${fmt(u.output_tokens)} | ${fmt(u.cache_creation_input_tokens)} | ${fmt(u.cache_read_input_tokens)} | ${usd4(cost)} |`;
      expect(body).toContain(row);
      positions.push(body.indexOf(row));
    }
    // Hand-computed: architect $0.0079, coder $0.0132, reviewer $0.0038, tester $0.0026.
    expect(body).toContain("| architect | claude-sonnet-5-5 | 1 | 1,200 | 300 | 1,000 | 0 | $0.0079 |");
    expect(body).toContain("| coder | claude-sonnet-5-5 | 3 | 2,400 | 330 | 1,800 | 3,200 | $0.0132 |");
    expect(body).toContain("| reviewer | claude-sonnet-5-5 | 1 | 900 | 200 | 0 | 0 | $0.0038 |");
    expect(body).toContain("| tester | claude-sonnet-5-5 | 1 | 700 | 120 | 0 | 0 | $0.0026 |");
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    // One row per agent and model, nothing else.
    expect(body.split("\n").filter((l) => l.includes(`| ${MODEL} |`))).toHaveLength(4);
    // No budget variables set: the server's default ceilings apply (never unlimited).
    const task = await app.db.selectFrom("tasks").select("id").executeTakeFirstOrThrow();
    expect(body).toContain(`| task ${task.id} | total | $0.0275 | $10.00 | 0.3 % | block | never (per task) | server |`);
    expect(body).toMatch(/\| repository octo-org\/widgets \| monthly \| \$0\.0275 \| \$100\.00 \| 0\.0 % \| block \| \d{4}-\d\d-01 00:00 UTC \| server \|/);
  });

  it("lists every server limit with its spend, percentage and reset time", async () => {
    const { github, anthropic } = setup();
    scriptHappyPath(anthropic);
    const app = await launch({ BUDGET_TASK_USD: "1", BUDGET_REPOSITORY_MONTHLY_USD: "5" });
    await label(app);
    expect(await settledStage(app)).toBe("ready_for_merge");
    const task = await app.db.selectFrom("tasks").select("id").executeTakeFirstOrThrow();

    const before = new Date();
    const { commentId } = await comment(app, "/budget", { sender: "maintainer" });
    const body = await waitForReply(github, commentId);
    const after = new Date();
    expect(body).toContain("| coder | claude-sonnet-5-5 | 3 | 2,400 | 330 | 1,800 | 3,200 | $0.0132 |");
    expect(body).toContain("| Scope | Period | Spent | Limit | Used | Action | Resets | Set by |");
    const spent = usd4(TOTAL_USD); // $0.0275
    expect(spent).toBe("$0.0275");
    expect(body).toContain(`| task ${task.id} | total | ${spent} | $1.00 | ${((TOTAL_USD / 1) * 100).toFixed(1)} % | block | never (per task) | server |`);
    expect(body).toContain(`| task ${task.id} | total | $0.0275 | $1.00 | 2.8 % | block | never (per task) | server |`);
    const nextMonth = (d: Date) => `${new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)).toISOString().slice(0, 10)} 00:00 UTC`;
    const monthly = (resets: string) =>
      `| repository ${OWNER}/${REPO} | monthly | ${spent} | $5.00 | ${((TOTAL_USD / 5) * 100).toFixed(1)} % | block | ${resets} | server |`;
    expect([monthly(nextMonth(before)), monthly(nextMonth(after))].some((row) => body.includes(row))).toBe(true);
    expect(body).toContain("| $5.00 | 0.6 % |");
    expect(body).not.toContain("_No budget limits apply._");
  });
});

describe("budget limits stop work", () => {
  it("a task limit below one call's worst case stops before any request; /retry after raising it resumes from planning", async () => {
    const { github, anthropic } = setup();
    const first = await launch({ BUDGET_TASK_USD: "0.001" });
    await label(first);
    expect(await settledStage(first)).toBe("budget_exceeded");

    // Refused before the request: nothing sent, nothing recorded, nothing held.
    expect(anthropic.requests).toEqual([]);
    expect(await first.db.selectFrom("llm_usage").selectAll().execute()).toEqual([]);
    expect(await first.db.selectFrom("budget_reservations").selectAll().execute()).toEqual([]);
    const jobs = await first.db.selectFrom("jobs").select(["kind", "state", "attempts"]).execute();
    expect(jobs).toEqual([{ kind: "plan", state: "failed", attempts: 1 }]);
    expect(github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:budget_exceeded"]);
    const stops = github.comments.filter((c) => c.body.includes("Budget limit reached"));
    expect(stops).toHaveLength(1);
    expect(stops[0]?.body).toMatch(/Budget exceeded: task \d+ total limit \$0\.0010, spent \$0\.00 \(this call needs up to \$\d+\.\d+\)/);
    expect(stops[0]?.body).toContain("/retry");
    const tracking = trackingComments(github);
    expect(tracking).toHaveLength(1);
    expect(tracking[0]?.body).toContain("| Plan | ⏸️ stopped |");
    expect(tracking[0]?.body).toContain("**Stopped at a budget limit:**");
    expect(tracking[0]?.body).not.toContain("⏳");
    expect(await transitions(first)).toEqual([
      [null, "planning"],
      ["planning", "budget_exceeded"],
    ]);

    // The operator raises the server limit: a restart with the new environment, same database.
    await stopApp(first);
    const second = await launch({ BUDGET_TASK_USD: "10" });
    scriptHappyPath(anthropic);
    const retry = await comment(second, "/retry", { sender: "maintainer" });
    expect(github.reactions).toContainEqual({ commentId: retry.commentId, content: "eyes" });
    expect(await settledStage(second)).toBe("ready_for_merge");

    expect(await transitions(second)).toEqual([
      [null, "planning"],
      ["planning", "budget_exceeded"],
      ["budget_exceeded", "planning"],
      ["planning", "coding"],
      ["coding", "testing"],
      ["testing", "reviewing"],
      ["reviewing", "ready_for_merge"],
    ]);
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
    expect(github.pulls).toHaveLength(1);
    expect(github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:ready_for_merge"]);
    const task = await second.db.selectFrom("tasks").select(["failure_reason", "stage"]).executeTakeFirstOrThrow();
    expect(task).toEqual({ failure_reason: null, stage: "ready_for_merge" });
    expect(trackingComments(github)).toHaveLength(1);
    expect(trackingComments(github)[0]?.body).toContain("**Ready for merge.**");
    expect(trackingComments(github)[0]?.body).not.toContain("⏳");
    expect(github.comments.filter((c) => c.body.includes("Budget limit reached"))).toHaveLength(1);
    const reservations = await second.db.selectFrom("budget_reservations").select("status").execute();
    expect(reservations.map((r) => r.status)).toEqual(Array(6).fill("settled"));
  });

  it.each<{ source: string; env: Record<string, string>; repoConfigYaml: string | undefined; scopes: RegExp[] }>([
    {
      source: "the server environment",
      env: { BUDGET_TASK_USD: "10", BUDGET_THRESHOLD: "0.0001" },
      repoConfigYaml: undefined,
      // The threshold applies to both server ceilings: one alert for each scope and period.
      scopes: [/task \d+ total spend is \$\d+\.\d\d of \$10\.00/, /repository octo-org\/widgets monthly spend is \$\d+\.\d\d of \$100\.00/],
    },
    {
      source: "the repository config",
      env: {},
      repoConfigYaml: "budget:\n  per_task_usd: 5\n  threshold: 0.0001\n",
      scopes: [/task \d+ total spend is \$\d+\.\d\d of \$5\.00/],
    },
  ])("posts one budget alert per scope for the whole run when the first call crosses the threshold set by $source", async ({ env, repoConfigYaml, scopes }) => {
    const { github, anthropic } = setup(repoConfigYaml === undefined ? {} : { repoConfigYaml });
    scriptHappyPath(anthropic);
    const app = await launch(env);
    await label(app);
    expect(await settledStage(app)).toBe("ready_for_merge");

    expect(await app.db.selectFrom("llm_usage").select("id").execute()).toHaveLength(6);
    const alerts = github.comments.filter((c) => c.body.includes("Budget alert"));
    expect(alerts).toHaveLength(scopes.length);
    for (const scope of scopes) expect(alerts.filter((a) => scope.test(a.body))).toHaveLength(1);
    // Raised by the first call (the Architect's), before the plan was posted.
    const plan = github.comments.find((c) => c.body.startsWith("<!-- mission-control:plan -->"));
    expect(plan).toBeDefined();
    for (const alert of alerts) expect(alert.id).toBeLessThan(plan!.id);
    expect(await app.db.selectFrom("budget_alerts").select("id").execute()).toHaveLength(scopes.length);
  });
});

describe("an invalid repository config", () => {
  const PROBLEMS = "<!-- mission-control:config-problems -->";
  const problemComments = (github: ReturnType<typeof createWorld>["github"]) => github.comments.filter((c) => c.body.startsWith(PROBLEMS));

  it("stops before any model call, posts the problems once, and runs the plan once the file is fixed and /retry", async () => {
    // The attack: a typo anywhere in the file used to replace it by the defaults, silently lifting
    // the tiny budget the maintainer set (USD 0.0001 per task) to the server's ceiling.
    const { github, anthropic } = setup({ repoConfigYaml: "trigger_label: agent\nbudget:\n  per_task_usd: 0.0001\ncoder:\n  max_turnz: 5\n" });
    scriptHappyPath(anthropic);
    const app = await launch();
    const first = await label(app);
    expect(await settledStage(app)).toBe("blocked");

    expect(anthropic.requests).toEqual([]);
    expect(problemComments(github)).toHaveLength(1);
    const problems = problemComments(github)[0]!;
    expect(problems.user.login).toBe(github.appLogin);
    expect(problems.body).toContain("`coder");
    expect(problems.body).toContain("max_turnz");
    expect(problems.body).toContain("stopped before any model call");
    expect(problems.body).toContain("`/retry`");
    expect(problems.body).not.toContain("safe defaults");
    expect(github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:blocked"]);
    expect(trackingComments(github)).toHaveLength(1);
    expect(trackingComments(github)[0]?.body).toContain("**Waiting for a human:** `.github/mission-control.yml` is invalid");
    expect(await transitions(app)).toEqual([
      [null, "planning"],
      ["planning", "blocked"],
    ]);

    // A redelivery, and a /retry while the file is still invalid: no model call, no second comment.
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world!.bare }), secret: SECRET, id: first.id });
    await comment(app, "/retry", { sender: "maintainer" });
    expect(await settledStage(app)).toBe("blocked");
    expect(anthropic.requests).toEqual([]);
    expect(problemComments(github)).toHaveLength(1);
    expect(github.commentHistory.get(problems.id)).toHaveLength(1);

    // Fixed on the default branch, then /retry: the plan runs, and the whole run completes.
    github.setRepoConfig("trigger_label: agent\nbudget:\n  per_task_usd: 5\n");
    await comment(app, "/retry", { sender: "maintainer" });
    expect(await settledStage(app)).toBe("ready_for_merge");
    expect(anthropic.requestsOf("architect")).toHaveLength(1);
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
    const task = await app.db.selectFrom("tasks").select(["config", "config_problems"]).executeTakeFirstOrThrow();
    expect(task.config_problems).toBeNull();
    expect(JSON.parse(task.config).budget.per_task_usd).toBe(5);
    expect(problemComments(github)).toHaveLength(1);
    expect((await transitions(app)).slice(0, 6)).toEqual([
      [null, "planning"],
      ["planning", "blocked"],
      ["blocked", "planning"],
      ["planning", "blocked"],
      ["blocked", "planning"],
      ["planning", "coding"],
    ]);
  });

  it("a file that is not valid YAML stops the work the same way", async () => {
    const { github, anthropic } = setup({ repoConfigYaml: "budget:\n  per_task_usd: 0.0001\ncoder: [unclosed\n" });
    scriptHappyPath(anthropic);
    const app = await launch();
    await label(app);
    expect(await settledStage(app)).toBe("blocked");
    expect(anthropic.requests).toEqual([]);
    expect(problemComments(github)).toHaveLength(1);
    expect(problemComments(github)[0]?.body).toContain("not valid YAML");
  });
});

describe("/stop", () => {
  it("while the Coder waits on the Messages API: the task ends cancelled and no pull request is opened", async () => {
    dirs = tempDir();
    // Registered before the fake's own interceptor, so the Coder's first request lands here and is
    // held (never answered): the code job is running, in the middle of its loop.
    let coderRequests = 0;
    nock(ANTHROPIC_TEST_URL)
      .post("/v1/messages", (body: { system?: unknown }) => JSON.stringify(body?.system ?? "").includes("You are the Coder"))
      .reply((_uri, _body, _callback) => {
        coderRequests++;
      });
    world = createWorld({ permissions: { ...PERMISSIONS } });
    const { github, anthropic, bare } = world;
    // If the cancelled job went on, these would let it push and open the pull request.
    scriptHappyPath(anthropic);
    const app = await launch();
    await label(app);

    await vi.waitFor(() => expect(coderRequests).toBe(1), { timeout: 30_000, interval: 25 });
    const running = await openJobs(app);
    expect(running).toEqual([expect.objectContaining({ kind: "code", state: "running" })]);
    expect((await app.db.selectFrom("tasks").select("stage").executeTakeFirstOrThrow()).stage).toBe("coding");

    const stop = await comment(app, "/stop", { sender: "maintainer" });
    expect(github.reactions).toContainEqual({ commentId: stop.commentId, content: "eyes" });
    expect(await settledStage(app)).toBe("cancelled");
    await app.worker.idle(); // the aborted code job has returned

    const jobs = await app.db.selectFrom("jobs").select(["kind", "state"]).orderBy("id").execute();
    expect(jobs).toEqual([
      { kind: "plan", state: "succeeded" },
      { kind: "code", state: "cancelled" },
      { kind: "command", state: "succeeded" },
      { kind: "cancel", state: "succeeded" },
    ]);
    expect(await transitions(app)).toEqual([
      [null, "planning"],
      ["planning", "coding"],
      ["coding", "cancelled"],
    ]);
    expect(github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:cancelled"]);
    expect(github.pulls).toEqual([]);
    expect(github.requestsTo("POST", /\/pulls$/)).toEqual([]);
    expect(branches(bare)).toEqual(["main"]);
    expect(coderRequests).toBe(1);
    expect(anthropic.requestsOf("coder")).toEqual([]);
    expect(anthropic.remaining().coder).toBe(3);
    const tracking = trackingComments(github);
    expect(tracking).toHaveLength(1);
    expect(tracking[0]?.body).toContain("| Code | ⏹️ cancelled |");
    expect(tracking[0]?.body).toContain("**Cancelled.** Stopped by @maintainer.");
    expect(tracking[0]?.body).not.toContain("⏳");
    const task = await app.db.selectFrom("tasks").select(["stage", "failure_reason"]).executeTakeFirstOrThrow();
    expect(task).toEqual({ stage: "cancelled", failure_reason: "Stopped by @maintainer." });
  });
});

describe("/approve", () => {
  it("with require_plan_approval the Coder waits for a writer's /approve, then the run completes", async () => {
    const { github, anthropic } = setup({ repoConfigYaml: "require_plan_approval: true\n" });
    scriptHappyPath(anthropic);
    const app = await launch();
    await label(app);
    expect(await settledStage(app)).toBe("blocked");

    const plans = github.comments.filter((c) => c.body.startsWith("<!-- mission-control:plan -->"));
    expect(plans).toHaveLength(1);
    expect(plans[0]?.body).toContain(PLAN.summary);
    expect(anthropic.requestsOf("architect")).toHaveLength(1);
    expect(anthropic.requestsOf("coder")).toEqual([]);
    expect(github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:blocked"]);
    expect(trackingComments(github)[0]?.body).toContain("**Waiting for a human:**");
    let task = await app.db.selectFrom("tasks").selectAll().executeTakeFirstOrThrow();
    expect(task.plan_approved_by).toBeNull();
    expect(task.blocked_reason).toContain("/approve");

    const approve = await comment(app, "/approve", { sender: "approver" });
    expect(github.reactions).toContainEqual({ commentId: approve.commentId, content: "eyes" });
    const reply = await waitForReply(github, approve.commentId);
    expect(reply).toContain("Approved by @approver: the plan");
    expect(await settledStage(app)).toBe("ready_for_merge");

    task = await app.db.selectFrom("tasks").selectAll().executeTakeFirstOrThrow();
    expect(task.plan_approved_by).toBe("approver");
    // Approving the plan does not unlock protected paths.
    expect(task.approved_by).toBeNull();
    expect(await transitions(app)).toEqual([
      [null, "planning"],
      ["planning", "blocked"],
      ["blocked", "coding"],
      ["coding", "testing"],
      ["testing", "reviewing"],
      ["reviewing", "ready_for_merge"],
    ]);
    expect(anthropic.requestsOf("coder")).toHaveLength(3);
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
    expect(github.pulls).toHaveLength(1);
    // The plan was not made again.
    expect(github.comments.filter((c) => c.body.startsWith("<!-- mission-control:plan -->"))).toHaveLength(1);
  });
});

describe("/report", () => {
  it("after a run: the timeline, the agents and the total cost", async () => {
    const { github, anthropic } = setup();
    scriptHappyPath(anthropic);
    const app = await launch();
    await label(app);
    expect(await settledStage(app)).toBe("ready_for_merge");

    const { commentId } = await comment(app, "/report", { sender: "maintainer" });
    const body = await waitForReply(github, commentId);
    expect(body).toContain(`### 📋 Report for #${ISSUE}`);
    expect(body).toContain("**State:** `ready_for_merge`");
    expect(body).toContain("| Time | From | To | Reason | By |");
    let last = -1;
    for (const [from, to] of HAPPY_TRANSITIONS) {
      const row = new RegExp(`\\| \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC \\| ${from ?? "new"} \\| ${to} \\| [^|\\n]+ \\| @maintainer \\|`);
      const match = row.exec(body);
      expect(match, `timeline row ${from ?? "new"} → ${to}`).not.toBeNull();
      expect(match!.index).toBeGreaterThan(last);
      last = match!.index;
    }
    for (const [agent, usages] of Object.entries(AGENT_USAGE)) {
      const cost = usages.reduce((sum, x) => sum + expectedCost(x), 0);
      expect(body).toContain(`- **${agent}** (${MODEL}): ${usages.length} calls, ${usd4(cost)}`);
    }
    const total = sumUsage(Object.values(AGENT_USAGE).flat());
    expect(body).toContain(
      `**Total:** ${fmt(total.input_tokens)} input · ${fmt(total.output_tokens)} output · ${fmt(total.cache_creation_input_tokens)} cache write · ${fmt(total.cache_read_input_tokens)} cache read tokens · **${usd4(TOTAL_USD)}**`,
    );
    expect(body).toContain("**Total:** 5,200 input · 950 output · 2,800 cache write · 3,200 cache read tokens · **$0.0275**");
    expect(body).toContain("**Check runs:** Tests — success");
  });
});
