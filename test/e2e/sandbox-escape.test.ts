import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { runSandboxed } from "../../src/workspace/sandbox.js";
import { text, toolUse } from "../helpers/anthropic-fake.js";
import { git } from "../helpers/git-fixtures.js";
import { deliver } from "../helpers/webhooks.js";
import { useE2E, waitForState } from "./harness.js";
import { labeledPayload, OWNER, PLAN, REPO, REPO_FILES, SECRET, USAGE } from "./scenario.js";

// Issue 9, findings 1 and 5, attacked end to end: signed deliveries through the real Probot
// server, a real bare repository, real bubblewrap and cgroups. The app runs as root in CI, so
// these also prove that sandboxed code runs as the unprivileged sandbox user.

const boot = useE2E();
const BRANCH = "mc/issue-7-friendlier-greeting";
const cleanup: string[] = [];
afterEach(() => {
  for (const p of cleanup.splice(0)) rmSync(p, { recursive: true, force: true });
});

/** A host path that the attack's payload tries to create. */
function hostMarker(): string {
  const marker = path.join(tmpdir(), `mc-pwned-${randomBytes(6).toString("hex")}`);
  cleanup.push(marker);
  return marker;
}

/**
 * Plants `vendor/evil` as a nested repository with one commit, whose own config holds a clean
 * filter (and upload-pack and ssh commands) that would create `marker`, and a modified file so
 * that a `git status` recursing into it runs the filter.
 */
function plantNestedRepository(marker: string): string {
  const id = "-c user.name=x -c user.email=x@example.test";
  return [
    "mkdir -p vendor/evil && cd vendor/evil && git init -q",
    `git config filter.evil.clean 'touch ${marker}; cat'`,
    `git config remote.origin.uploadpack 'touch ${marker}; git-upload-pack'`,
    `git config core.sshCommand 'touch ${marker}; ssh'`,
    "echo '* filter=evil' > .gitattributes && echo one > payload.txt",
    `git add . && git ${id} commit -qm planted && echo two > payload.txt`,
    "echo planted",
  ].join(" && ");
}

describe("a nested repository planted by sandboxed code (finding 1)", () => {
  it("never runs on the host, is never committed or pushed, and the pull request says so", async () => {
    const { app, world } = await boot();
    const marker = hostMarker();
    world.anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    world.anthropic.script(
      "coder",
      { content: [toolUse("run_command", { command: plantNestedRepository(marker) })], usage: USAGE.coder[0]! },
      { content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: '"Hello, " + name + "!"' })], usage: USAGE.coder[1]! },
      { content: [toolUse("commit", { message: "Greet with a comma" })], usage: USAGE.coder[1]! },
      { content: [text("- Changed the greeting.")], usage: USAGE.coder[2]! },
    );
    world.anthropic.script("tester", { content: [toolUse("submit_judgement", { items: [] })], usage: USAGE.tester });
    world.anthropic.script("reviewer", { content: [toolUse("submit_review", { event: "approve", body: "ok", comments: [] })], usage: USAGE.reviewer });

    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "ready_for_merge");

    // The planting ran (in the sandbox) ...
    const coderRequests = world.anthropic.requestsOf("coder");
    expect(JSON.stringify(coderRequests[1])).toContain("planted");
    // ... but nothing of it ran on the host: status, add, commit, fetch and push all happened.
    expect(existsSync(marker)).toBe(false);

    // Nothing but the real change reached the remote: no gitlink (mode 160000), no vendor/.
    const tree = git(["--git-dir", world.bare, "ls-tree", "-r", BRANCH]);
    expect(tree).not.toMatch(/^160000 /m);
    expect(tree).not.toContain("vendor/evil");
    expect(tree).toContain("src/greet.js");

    // The pull request says what was left out, and why.
    const created = world.github.requestsTo("POST", /\/pulls$/);
    expect(created).toHaveLength(1);
    expect(String((created[0]!.body as { body: string }).body)).toContain("Nested git repositories were left out of the commits");
    expect(String((created[0]!.body as { body: string }).body)).toContain("`vendor/evil`");

    // Control: planted again (the Tester's sync removed it), the host's own git, run as the old
    // design did, does execute it — so the assertions above can fail.
    const clone = path.join(app.env.WORKSPACES_DIR, OWNER, REPO, "issue-7", "code");
    const replant = await runSandboxed({ mode: "bwrap" }, { cwd: clone, command: plantNestedRepository(marker) });
    expect(replant.stdout).toContain("planted");
    expect(existsSync(marker)).toBe(false);
    git(["add", "--all"], clone);
    git(["status", "--short"], clone);
    expect(existsSync(marker)).toBe(true);
  });
});

describe("a nested repository planted by the repository's own tests (finding 1)", () => {
  it("is not run by the app's git in the revision that follows, and never reaches the branch", async () => {
    const marker = hostMarker();
    // The tests plant the repository, then fail, so the Coder revises in the same clone.
    const files = { ...REPO_FILES, "package.json": JSON.stringify({ name: "widgets", scripts: { test: `${plantNestedRepository(marker)}; exit 1` } }) };
    const { app, world } = await boot({ files });
    world.anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    world.anthropic.script(
      "coder",
      { content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: '"Hello, " + name + "!"' })], usage: USAGE.coder[0]! },
      { content: [text("- Changed the greeting.")], usage: USAGE.coder[1]! },
    );
    for (let i = 0; i < 4; i++) {
      world.anthropic.script("tester", { content: [toolUse("submit_judgement", { items: [] })], usage: USAGE.tester });
      world.anthropic.script(
        "coder",
        { content: [toolUse("write_file", { path: `notes-${i}.md`, content: "revision\n" })], usage: USAGE.coder[1]! },
        { content: [text("- Revised.")], usage: USAGE.coder[2]! },
      );
    }
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "blocked");
    // The tests ran (and planted) more than once, and revisions were committed and pushed after them.
    expect(world.github.requestsTo("POST", /\/check-runs$/).length).toBeGreaterThan(1);
    expect(git(["--git-dir", world.bare, "ls-tree", "-r", "--name-only", BRANCH])).toContain("notes-0.md");
    expect(existsSync(marker)).toBe(false);
    expect(git(["--git-dir", world.bare, "ls-tree", "-r", BRANCH])).not.toMatch(/^160000 /m);
  });
});

describe("the host's files, read by the repository's tests (finding 5)", () => {
  it("never reach the check run or the model: no /etc/shadow, no HOME, no app folder", async () => {
    const canaryDir = path.join(homedir(), `.mc-canary-${randomBytes(4).toString("hex")}`);
    const canary = `CANARY-${randomBytes(8).toString("hex")}`;
    writeFileSync(canaryDir, canary);
    cleanup.push(canaryDir);
    const appPackage = path.resolve("package.json");
    const probe = [
      "cat /etc/shadow /etc/gshadow",
      `cat ${canaryDir}`,
      "cat ~/.npmrc ~/.netrc /root/.npmrc",
      `cat ${appPackage}`,
      "ls -a /home /root /srv /var /opt /work",
      "id -u",
      "exit 1",
    ].join("; ");
    const files = { ...REPO_FILES, "package.json": JSON.stringify({ name: "widgets", scripts: { test: probe } }) };
    const { app, world } = await boot({ files });
    world.anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    world.anthropic.script(
      "coder",
      { content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: '"Hello, " + name + "!"' })], usage: USAGE.coder[0]! },
      { content: [text("- Changed the greeting.")], usage: USAGE.coder[1]! },
    );
    // The failing tests send the PR back once; a second Coder run and a second Tester judgement end in `blocked` or review.
    for (let i = 0; i < 4; i++) {
      world.anthropic.script("tester", { content: [toolUse("submit_judgement", { items: [] })], usage: USAGE.tester });
      world.anthropic.script("coder", { content: [text("- Nothing to change.")], usage: USAGE.coder[2]! });
    }
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await app.worker.idle();
    await waitForCheckRun(world);

    const checkRuns = world.github.requestsTo("POST", /\/check-runs$/).concat(world.github.requestsTo("PATCH", /\/check-runs\/\d+$/));
    const everything = JSON.stringify(checkRuns) + JSON.stringify(world.anthropic.requests);
    expect(everything).toContain("No such file"); // the probe ran and its output was reported
    expect(everything).not.toContain(canary);
    expect(everything).not.toMatch(/root:[^:\s]*:\d+:/); // a shadow line
    expect(everything).not.toContain(readFileSync(appPackage, "utf8").slice(0, 60));
    expect(everything).not.toContain('"name": "mission-control"');
    // Running as root, the app runs commands as the unprivileged sandbox user.
    if (process.getuid?.() === 0) expect(everything).toMatch(/\\n65534\\n/);
  });
});

async function waitForCheckRun(world: { github: { requestsTo(method: string, path: RegExp): unknown[] } }): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const done = world.github.requestsTo("PATCH", /\/check-runs\/\d+$/).concat(world.github.requestsTo("POST", /\/check-runs$/));
    if (JSON.stringify(done).includes('"completed"')) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("no completed check run within 30 s");
}
