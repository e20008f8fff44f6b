import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import { afterEach, describe, expect, it, vi } from "vitest";

import { type Db, openDatabase } from "../../src/store/db.js";
import { tempDir } from "../helpers/app-harness.js";
import { createBareRepo, git } from "../helpers/git-fixtures.js";
import { deliver } from "../helpers/webhooks.js";
import { labeledPayload, REPO_FILES, SECRET } from "./scenario.js";

const children: ChildProcess[] = [];
let dirs: ReturnType<typeof tempDir> | undefined;
let db: Db | undefined;

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
  await db?.destroy();
  db = undefined;
  dirs?.cleanup();
  dirs = undefined;
});

/** Starts a Mission Control process and resolves with its URL once it listens. */
function startChild(options: Record<string, unknown>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "child-app.ts"), JSON.stringify(options)], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" },
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const ready = /READY (\S+)/.exec(out);
      if (ready?.[1]) resolve({ child, url: ready[1] });
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.once("exit", (code) => reject(new Error(`the app process exited (${code}) before it was ready: ${err.slice(-2000)}`)));
  });
}

describe("a process stopped with SIGTERM mid-job", () => {
  it("exits cleanly, hands its lease back, and the next process finishes without duplicates", async () => {
    dirs = tempDir();
    const bare = createBareRepo(REPO_FILES);
    const stateFile = path.join(dirs.dir, "github-state.json");
    const common = { databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "ws"), bare, stateFile };
    const state = () => (existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, "utf8")) : null);

    const first = await startChild({ ...common, script: "full", hangPullRequest: true });
    await deliver(first.url, { event: "issues", payload: labeledPayload({ cloneUrl: bare }), secret: SECRET });
    await vi.waitFor(() => expect(state()?.pulls).toHaveLength(1), { timeout: 30_000, interval: 50 });
    first.child.kill("SIGTERM");
    const exitCode = await new Promise((resolve) => first.child.once("exit", resolve));
    expect(exitCode).toBe(0);

    db = openDatabase(common.databasePath);
    const database = db;
    const released = await database
      .selectFrom("jobs")
      .select(["kind", "state", "attempts", "lease_owner"])
      .where("kind", "=", "code")
      .executeTakeFirstOrThrow();
    expect(released).toEqual({ kind: "code", state: "queued", attempts: 0, lease_owner: null });

    await startChild({ ...common, script: "after-code", hangPullRequest: false });
    await vi.waitFor(
      async () => {
        const task = await database.selectFrom("tasks").select("stage").executeTakeFirstOrThrow();
        expect(task.stage).toBe("ready_for_merge");
      },
      { timeout: 30_000, interval: 100 },
    );
    const final = state();
    expect(final.pulls).toHaveLength(1);
    expect(final.comments.filter((c: { body: string }) => c.body.startsWith("<!-- mission-control:tracking -->"))).toHaveLength(1);
    const code = await database.selectFrom("jobs").select(["state", "attempts"]).where("kind", "=", "code").executeTakeFirstOrThrow();
    expect(code).toEqual({ state: "succeeded", attempts: 1 });
  }, 90_000);
});

describe("a process killed with SIGKILL mid-job", () => {
  it("resumes after restart with no duplicate pull request or comment", async () => {
    dirs = tempDir();
    const bare = createBareRepo(REPO_FILES);
    const stateFile = path.join(dirs.dir, "github-state.json");
    const common = { databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "ws"), bare, stateFile };
    const state = () => (existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, "utf8")) : null);

    const first = await startChild({ ...common, script: "full", hangPullRequest: true });
    const response = await deliver(first.url, { event: "issues", payload: labeledPayload({ cloneUrl: bare }), secret: SECRET });
    expect(response.status).toBeLessThan(300);
    // The first process pushed the branch and created the PR on GitHub, but never heard back.
    await vi.waitFor(() => expect(state()?.pulls).toHaveLength(1), { timeout: 30_000, interval: 50 });
    first.child.kill("SIGKILL");
    await new Promise((resolve) => first.child.once("exit", resolve));

    await startChild({ ...common, script: "after-code", hangPullRequest: false });
    db = openDatabase(common.databasePath);
    const database = db;
    await vi.waitFor(
      async () => {
        const task = await database.selectFrom("tasks").select("stage").executeTakeFirstOrThrow();
        expect(task.stage).toBe("ready_for_merge");
        // The review job moves the task before it finishes (tracking comment, then completion).
        const open = await database.selectFrom("jobs").select("id").where("state", "in", ["queued", "running"]).execute();
        expect(open).toEqual([]);
      },
      { timeout: 30_000, interval: 100 },
    );

    const final = state();
    expect(final.pulls).toHaveLength(1);
    expect(final.comments.filter((c: { body: string }) => c.body.startsWith("<!-- mission-control:plan -->"))).toHaveLength(1);
    expect(final.comments.filter((c: { body: string }) => c.body.startsWith("<!-- mission-control:tracking -->"))).toHaveLength(1);
    expect(final.reviews).toHaveLength(1);
    expect(git(["--git-dir", bare, "rev-list", "--count", "main..mc/issue-7-friendlier-greeting"])).toBe("1");
    const jobs = await database.selectFrom("jobs").select(["kind", "state", "attempts"]).orderBy("id").execute();
    expect(jobs).toEqual([
      { kind: "plan", state: "succeeded", attempts: 1 },
      // Killed while holding the lease: reclaimed after it expired, so a second attempt.
      { kind: "code", state: "succeeded", attempts: 2 },
      { kind: "test", state: "succeeded", attempts: 1 },
      { kind: "review", state: "succeeded", attempts: 1 },
    ]);
    const coderCalls = await database.selectFrom("llm_usage").select("id").where("agent", "=", "coder").execute();
    expect(coderCalls).toHaveLength(2); // the Coder's loop was not run again
  }, 90_000);
});
