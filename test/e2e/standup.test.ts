import { describe, expect, it } from "vitest";

import { enqueueDueStandups } from "../../src/pipeline/orchestrator.js";
import type { RunningApp } from "../helpers/app-harness.js";
import type { FakeAnthropic } from "../helpers/anthropic-fake.js";
import { deliver, examplePayload } from "../helpers/webhooks.js";
import { commentPayload, settleJobs as settle, waitForReply } from "./command-helpers.js";
import { useE2E } from "./harness.js";
import { INSTALLATION_ID, ISSUE, ISSUE_TITLE, labeledPayload, scriptHappyPath, SECRET } from "./scenario.js";

const boot = useE2E();

const CONFIG = [
  "orchestrator:",
  "  standup:",
  '    cron: "0 9 * * *"',
  "    timezone: Europe/Berlin",
  "  max_proposals: 3",
  "  proposal_label: follow-up",
  "",
].join("\n");

const STANDUP_MARKER = "<!-- mission-control:standup -->";

/** The happy path, with a Coder whose change adds a TODO and a FIXME line (the follow-ups to propose). */
function scriptRun(anthropic: FakeAnthropic): void {
  scriptHappyPath(anthropic, { newText: '"Hello, " + name + "!"; // TODO localise the greeting\n  // FIXME handle empty names\n  void 0' });
}

async function stageOf(app: RunningApp, issue: number): Promise<string | undefined> {
  return (await app.db.selectFrom("tasks").select("stage").where("issue_number", "=", issue).executeTakeFirst())?.stage;
}

async function schedule(app: RunningApp) {
  return app.db.selectFrom("repository_schedules").selectAll().executeTakeFirstOrThrow();
}

/** Fires the due stand-up with the fake clock at the schedule's next fire, and waits for the job. */
async function tick(app: RunningApp): Promise<number> {
  const fire = Number((await schedule(app)).next_run_at);
  const enqueued = await enqueueDueStandups(app.db, fire);
  await settle(app);
  return enqueued;
}

async function comment(app: RunningApp, bare: string, body: string, issue: number, commentId?: number) {
  const { payload, commentId: id } = commentPayload({ cloneUrl: bare, body, issue, ...(commentId ? { commentId } : {}) });
  const response = await deliver(app.url, { event: "issue_comment", payload, secret: SECRET });
  expect(response.status).toBeLessThan(300);
  return id;
}

describe("orchestrator mode: the daily stand-up", () => {
  it("creates the stand-up on the first fire, edits it on the next with the facts in between, and opens an approved proposal once", async () => {
    const { app, world } = await boot({ permissions: { maintainer: "write" }, repoConfigYaml: CONFIG });
    const { github } = world;

    // Any delivery that makes the app read the config records the schedule: here a `/help`.
    const help = await comment(app, world.bare, "/help", ISSUE);
    await waitForReply(github, help);
    await settle(app);
    const first = await schedule(app);
    expect(first).toMatchObject({ repository: "octo-org/widgets", cron: "0 9 * * *", timezone: "Europe/Berlin", standup_issue_number: null });
    // 09:00 in Berlin is 08:00 UTC in winter (or 07:00 in summer).
    expect([7, 8]).toContain(new Date(Number(first.next_run_at)).getUTCHours());

    // First fire: the stand-up issue is created (and pinned), with nothing to report yet.
    expect(await tick(app)).toBe(1);
    const created = github.requestsTo("POST", /^\/repos\/[^/]+\/[^/]+\/issues$/);
    expect(created).toHaveLength(1);
    const number = Number((await schedule(app)).standup_issue_number);
    const standup = github.issues.get(number)!;
    expect(standup.body.startsWith(STANDUP_MARKER)).toBe(true);
    expect(standup.title).toMatch(/^Mission Control stand-up — \d{4}-\d{2}-\d{2}$/);
    expect(standup.body).toContain("_Nothing happened in this period._");
    expect(standup.body).toContain("_No follow-up to propose._");
    expect(github.pinnedIssues.has(number)).toBe(true);
    // The fake clock's fire is in the future: the tick moved the schedule a day on, and the same time again enqueues nothing.
    expect(Number((await schedule(app)).next_run_at)).toBe(Number(first.next_run_at) + 86_400_000);
    expect(await enqueueDueStandups(app.db, Number(first.next_run_at))).toBe(0);

    // A run: plan → code (a pull request adding a TODO and a FIXME) → test → review → ready for merge.
    scriptRun(world.anthropic);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await settle(app);
    expect(await stageOf(app, ISSUE)).toBe("ready_for_merge");
    const pr = github.pulls[0]!;

    // Second fire: the same issue is edited in place (no second POST /issues) with the run's facts.
    expect(await tick(app)).toBe(1);
    expect(github.requestsTo("POST", /^\/repos\/[^/]+\/[^/]+\/issues$/)).toHaveLength(1);
    expect(github.issueEdits.filter((e) => e.number === number).length).toBeGreaterThanOrEqual(1);
    const body = github.issues.get(number)!.body;
    expect(body.startsWith(STANDUP_MARKER)).toBe(true);
    expect(body).toContain("**Since the last stand-up:** 1 started · 1 pull requests opened · 0 merged · 0 failed");
    expect(body).toContain(`- #${ISSUE} ${ISSUE_TITLE} — started, pull request opened, ready for merge; now \`ready_for_merge\` · [PR #${pr.number}](`);
    expect(body).toContain(`- #${ISSUE} ${ISSUE_TITLE} — ready for merge: [PR #${pr.number}](`);
    expect(body).toMatch(/\| architect \| 1 \| 1,200 \| 300 \| 1,000 \| 0 \| \$0\.\d{4} \|/);
    expect(body).toMatch(/\| coder \| 3 \|/);
    expect(body).toContain("**Review verdicts:** approve 1");
    expect(body).toContain("- [ ] **1.** Follow up a TODO in src/greet.js");
    expect(body).toContain("- [ ] **2.** Follow up a FIXME in src/greet.js");
    expect(github.pinnedIssues.size).toBe(1);
    // Every attempt of each check on the head was read (a check that failed, then passed, is flaky).
    expect(github.requestsTo("GET", /\/commits\/[0-9a-f]{40}\/check-runs$/).some((r) => r.query.get("filter") === "all")).toBe(true);

    // `/report` on the issue shows the repository's per-role statistics.
    const report = await waitForReply(github, await comment(app, world.bare, "/report", ISSUE));
    expect(report).toContain("**Agents in octo-org/widgets** (all tasks)");
    expect(report).toMatch(/\| coder \| 1 \| 100% \| 0 \| \$0\.\d{4} \| /);
    expect(report).toContain("**Review verdicts:** approve 1");

    // `/approve 2` on the stand-up opens exactly one issue, labelled, and ticks the checklist; a redelivered comment opens nothing more.
    const approve = await comment(app, world.bare, "/approve 2", number);
    expect(await waitForReply(github, approve)).toMatch(/Proposal 2 opened as #\d+/);
    await settle(app);
    const { payload } = commentPayload({ cloneUrl: world.bare, body: "/approve 2", issue: number, commentId: approve });
    await deliver(app.url, { event: "issue_comment", payload, secret: SECRET });
    await settle(app);
    const opened = [...github.issues.values()].filter((i) => i.number !== number && i.number !== ISSUE);
    expect(opened).toHaveLength(1);
    expect(opened[0]).toMatchObject({ title: "Follow up a FIXME in src/greet.js", labels: ["follow-up"] });
    expect(opened[0]!.body).toContain("> // FIXME handle empty names");
    expect(github.repoLabels.has("follow-up")).toBe(true);
    expect(github.issues.get(number)!.body).toContain(`- [x] **2.** Follow up a FIXME in src/greet.js — opened as #${opened[0]!.number}`);
    // The plan/protected-path meaning of `/approve` on the issue itself is untouched.
    expect(await app.db.selectFrom("tasks").select("approved_by").where("issue_number", "=", ISSUE).executeTakeFirst()).toEqual({ approved_by: null });

    // `/dismiss 1`: struck through, and never proposed again though its source is seen again the next day.
    const dismiss = await comment(app, world.bare, "/dismiss 1", number);
    expect(await waitForReply(github, dismiss)).toContain("Proposal 1 dismissed");
    await settle(app);
    expect(github.issues.get(number)!.body).toContain("- [ ] ~~**1.** Follow up a TODO in src/greet.js~~ — dismissed");

    // The pull request is merged (new activity on the same pull request), then the next day's stand-up.
    github.closePull(pr.number, true);
    const closed = examplePayload("pull_request", "closed");
    const labeled = labeledPayload({ cloneUrl: world.bare });
    closed.repository = labeled.repository;
    closed.installation = { id: INSTALLATION_ID };
    closed.sender = { ...labeled.sender, login: "maintainer", type: "User" };
    closed.pull_request.number = pr.number;
    closed.pull_request.merged = true;
    closed.number = pr.number;
    await deliver(app.url, { event: "pull_request", payload: closed, secret: SECRET });
    await settle(app);
    expect(await stageOf(app, ISSUE)).toBe("merged");

    expect(await tick(app)).toBe(1);
    expect(github.requestsTo("POST", /^\/repos\/[^/]+\/[^/]+\/issues$/)).toHaveLength(2); // the stand-up and the one approved follow-up
    const third = github.issues.get(number)!.body;
    expect(third).toContain("1 merged");
    expect(third).not.toContain("- [ ] **1.**");
    const proposals = await app.db.selectFrom("follow_up_proposals").select(["number", "status", "issue_number"]).orderBy("number").execute();
    expect(proposals).toEqual([
      { number: 1, status: "dismissed", issue_number: null },
      { number: 2, status: "accepted", issue_number: opened[0]!.number },
    ]);
  }, 60_000);

  it("turns the stand-up off when the config drops it, and leaves a pin refusal logged", async () => {
    const { app, world } = await boot({ permissions: { maintainer: "write" }, repoConfigYaml: CONFIG });
    world.github.pinRefused = true;
    await waitForReply(world.github, await comment(app, world.bare, "/help", ISSUE));
    await settle(app);
    expect(await tick(app)).toBe(1);
    const number = Number((await schedule(app)).standup_issue_number);
    expect(world.github.issues.get(number)?.body.startsWith(STANDUP_MARKER)).toBe(true);
    expect(world.github.pinnedIssues.size).toBe(0);
    expect(app.logs.some((l) => l.msg === "could not pin the stand-up issue")).toBe(true);

    // The file no longer asks for a stand-up: the job of the next fire disables the schedule (keeping its issue) and writes nothing.
    world.github.setRepoConfig("trigger_label: agent\n");
    const edits = world.github.issueEdits.length;
    expect(await tick(app)).toBe(1);
    expect(await schedule(app)).toMatchObject({ standup_issue_number: number });
    expect((await schedule(app)).disabled_at).not.toBeNull();
    expect(world.github.issueEdits.length).toBe(edits);
    expect(await tick(app)).toBe(0);
    // `/approve 1` on the old stand-up issue still means a proposal, not plan approval.
    expect(await waitForReply(world.github, await comment(app, world.bare, "/approve 1", number))).toContain("There is no proposal 1 in this repository.");
    await settle(app);

    // On again: the next delivery enables the schedule, and the next fire edits the same issue.
    world.github.setRepoConfig(CONFIG);
    await waitForReply(world.github, await comment(app, world.bare, "/help", ISSUE));
    await settle(app);
    expect((await schedule(app)).disabled_at).toBeNull();
    // Enabled again, the schedule starts from the test's clock, behind the fake clock of the ticks above: its first
    // fires are the ones those ticks enqueued already (the same dedupe keys, so not again), then a new day's.
    let enqueued = 0;
    for (let i = 0; i < 3 && enqueued === 0; i++) enqueued = await tick(app);
    expect(enqueued).toBe(1);
    expect(world.github.requestsTo("POST", /^\/repos\/[^/]+\/[^/]+\/issues$/)).toHaveLength(1);
    expect(world.github.issueEdits.filter((e) => e.number === number).length).toBeGreaterThan(0);
    expect(Number((await schedule(app)).standup_issue_number)).toBe(number);
  }, 30_000);

  it.each([
    [403, { message: "Resource not accessible by integration" }],
    [404, { message: "Not Found" }],
  ])(
    "disables the schedule without retrying when the app no longer reaches the repository (%i reading the config)",
    async (status, data) => {
      const { app, world } = await boot({ permissions: { maintainer: "write" }, repoConfigYaml: CONFIG });
      await waitForReply(world.github, await comment(app, world.bare, "/help", ISSUE));
      await settle(app);
      expect(await tick(app)).toBe(1);
      const number = Number((await schedule(app)).standup_issue_number);
      // The repository left the installation: GitHub answers the config read (every attempt) with `status`.
      world.github.failNext("GET", /\/contents\/\.github\/mission-control\.yml$/, [status, data, { "content-type": "application/json; charset=utf-8" }], 10);
      const edits = world.github.issueEdits.length;
      expect(await tick(app)).toBe(1);
      const jobs = await app.db.selectFrom("jobs").select(["state", "attempts"]).where("kind", "=", "standup").orderBy("id").execute();
      expect(jobs.at(-1)).toMatchObject({ state: "succeeded", attempts: 1 });
      expect(await schedule(app)).toMatchObject({ standup_issue_number: number });
      expect((await schedule(app)).disabled_at).not.toBeNull();
      expect(await tick(app)).toBe(0);
      expect(world.github.issueEdits.length).toBe(edits);
      // A 404 reads as "no config file" (Probot's config read), which turns the stand-up off; a 403 is the lost repository.
      const message =
        status === 404
          ? "the stand-up is off in the repository config: schedule disabled"
          : "the app no longer reaches the repository: stand-up schedule disabled";
      expect(app.logs.some((l) => l.msg === message)).toBe(true);
    },
    30_000,
  );
});
