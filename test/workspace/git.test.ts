import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { GitCommandError, ToolInputError, UnsafeChangeError } from "../../src/domain/errors.js";
import { runSandboxed } from "../../src/workspace/sandbox.js";
import { cloneRepository, type GitWorkspace, removeWorkspace } from "../../src/workspace/git.js";
import { TEST_GIT_SETTINGS } from "../helpers/git-fixtures.js";
import {
  cleanupTempDirs,
  createSeededBareRepo,
  FAKE_TOKEN,
  filesContaining,
  type GitHttpServer,
  gitSync,
  makeTempDir,
  startGitHttpServer,
} from "./fixtures.js";

const SEED_FILES = {
  "README.md": "# Demo\n",
  ".gitignore": "*.log\n",
  "src/app.ts": "export function login() {\n  return 'TODO: login';\n}\n",
  "src/util.ts": "export const Answer = 42;\n",
};

const BOT = { name: "mission-control[bot]", email: "123+mission-control[bot]@users.noreply.github.com" };

/** The token, and the Basic credential that carries it, must never be written to disk. */
const TOKEN_FORMS = [FAKE_TOKEN, Buffer.from(`x-access-token:${FAKE_TOKEN}`).toString("base64")];

function expectNoTokenUnder(dir: string): void {
  for (const form of TOKEN_FORMS) expect(filesContaining(dir, form)).toEqual([]);
}

afterAll(() => {
  cleanupTempDirs();
});

describe("cloneRepository and GitWorkspace against a local bare repository", () => {
  let base: string;
  let bare: string;
  let ws: GitWorkspace;

  beforeEach(async () => {
    base = makeTempDir("mc-git-");
    bare = createSeededBareRepo(base, SEED_FILES);
    ws = await cloneRepository({ cloneUrl: bare, dir: path.join(base, "work", "clone"), token: FAKE_TOKEN, branch: "main", settings: TEST_GIT_SETTINGS });
  });

  afterEach(() => {
    cleanupTempDirs();
  });

  it("clones the branch into the given folder, creating its parents", async () => {
    expect(ws.root).toBe(path.join(base, "work", "clone"));
    expect(readFileSync(path.join(ws.root, "src", "app.ts"), "utf8")).toBe(SEED_FILES["src/app.ts"]);
    expect(await ws.headSha()).toBe(gitSync(base, ["--git-dir", bare, "rev-parse", "refs/heads/main"]).trim());
    expect(gitSync(ws.root, ["rev-parse", "--abbrev-ref", "HEAD"]).trim()).toBe("main");
  });

  it("replaces an existing folder at the clone destination", async () => {
    const dir = path.join(base, "again");
    await mkdir(dir);
    await writeFile(path.join(dir, "stale.txt"), "stale");
    const again = await cloneRepository({ cloneUrl: bare, dir, token: null, settings: TEST_GIT_SETTINGS });
    expect(existsSync(path.join(dir, "stale.txt"))).toBe(false);
    expect(await again.listFiles()).toContain("README.md");
  });

  it("listFiles lists tracked and untracked files but honours .gitignore", async () => {
    await writeFile(path.join(ws.root, "x.log"), "ignored\n");
    await writeFile(path.join(ws.root, "new.txt"), "untracked\n");
    const files = await ws.listFiles();
    expect(files).toContain("new.txt");
    expect(files).not.toContain("x.log");
    expect(files).toEqual([".gitignore", "README.md", "new.txt", "src/app.ts", "src/util.ts"]);
  });

  it("grep returns path:line:text matches and [] when nothing matches", async () => {
    expect(await ws.grep("TODO")).toEqual(["src/app.ts:2:  return 'TODO: login';"]);
    expect(await ws.grep("no-such-text-anywhere")).toEqual([]);
  });

  it("grep honours ignoreCase, pathspec, untracked files and .gitignore", async () => {
    await writeFile(path.join(ws.root, "notes.txt"), "answer pending\n");
    await writeFile(path.join(ws.root, "debug.log"), "answer in a log\n");
    expect(await ws.grep("answer")).toEqual(["notes.txt:1:answer pending"]);
    expect(await ws.grep("answer", { ignoreCase: true })).toEqual(["notes.txt:1:answer pending", "src/util.ts:1:export const Answer = 42;"]);
    expect(await ws.grep("answer", { ignoreCase: true, pathspec: "src" })).toEqual(["src/util.ts:1:export const Answer = 42;"]);
    expect(await ws.grep("(login|Answer) ")).toHaveLength(1); // extended regular expressions
  });

  it("grep turns a malformed pattern into a ToolInputError the model can act on", async () => {
    const error = await ws.grep("(").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ToolInputError);
    expect((error as ToolInputError).code).toBe("tool_input");
    expect((error as ToolInputError).message).toContain("search failed");
  });

  it("creates a branch, commits as the given identity and pushes it", async () => {
    const branch = "mc/issue-12-fix-the-login-page";
    expect(await ws.hasChanges()).toBe(false);
    await ws.createBranch(branch);
    await writeFile(path.join(ws.root, "src", "app.ts"), "export function login() {\n  return 'done';\n}\n");
    await mkdir(path.join(ws.root, "docs"));
    await writeFile(path.join(ws.root, "docs", "login.md"), "# Login\n");
    expect(await ws.hasChanges()).toBe(true);
    expect(await ws.changedFiles()).toEqual(["docs/login.md", "src/app.ts"]);

    const sha = await ws.commitAll("Resolve #12: Fix the login page", BOT);
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    expect(await ws.headSha()).toBe(sha);
    expect(await ws.hasChanges()).toBe(false);
    expect(await ws.commitsAhead("origin/main")).toBe(1);

    await ws.push(branch, "main");
    expect(gitSync(base, ["--git-dir", bare, "rev-parse", `refs/heads/${branch}`]).trim()).toBe(sha);
    const identity = gitSync(base, ["--git-dir", bare, "log", "-1", "--format=%an|%ae|%cn|%ce|%s", `refs/heads/${branch}`]).trim();
    expect(identity).toBe(`${BOT.name}|${BOT.email}|${BOT.name}|${BOT.email}|Resolve #12: Fix the login page`);
    // The default branch on the remote is untouched.
    expect(gitSync(base, ["--git-dir", bare, "rev-list", "--count", "refs/heads/main"]).trim()).toBe("1");

    expect(await ws.remoteBranchExists(branch)).toBe(true);
    expect(await ws.remoteBranchExists("mc/issue-99-something-else")).toBe(false);
  });

  it("never force-pushes: a push that is not a fast-forward fails with GitCommandError", async () => {
    await writeFile(path.join(ws.root, "a.txt"), "from the clone\n");
    await ws.commitAll("clone commit", BOT);

    const other = await cloneRepository({ cloneUrl: bare, dir: path.join(base, "other"), token: null, branch: "main", settings: TEST_GIT_SETTINGS });
    await writeFile(path.join(other.root, "b.txt"), "from elsewhere\n");
    const remoteSha = await other.commitAll("other commit", BOT);
    await other.push("main", "main");

    await expect(ws.push("main", "main")).rejects.toBeInstanceOf(GitCommandError);
    expect(gitSync(base, ["--git-dir", bare, "rev-parse", "refs/heads/main"]).trim()).toBe(remoteSha);
  });

  it("checkoutRemoteBranch fetches a pushed branch into a second clone and tracks it", async () => {
    const branch = "mc/issue-3-resume";
    await ws.createBranch(branch);
    await writeFile(path.join(ws.root, "resume.txt"), "pushed earlier\n");
    const sha = await ws.commitAll("earlier run", BOT);
    await ws.push(branch, "main");

    const second = await cloneRepository({ cloneUrl: bare, dir: path.join(base, "second"), token: FAKE_TOKEN, branch: "main", settings: TEST_GIT_SETTINGS });
    expect(existsSync(path.join(second.root, "resume.txt"))).toBe(false);
    expect(await second.remoteBranchExists(branch)).toBe(true);
    await second.checkoutRemoteBranch(branch);
    expect(await second.headSha()).toBe(sha);
    expect(gitSync(second.root, ["rev-parse", "--abbrev-ref", "HEAD"]).trim()).toBe(branch);
    expect(readFileSync(path.join(second.root, "resume.txt"), "utf8")).toBe("pushed earlier\n");
    expect(await second.commitsAhead("origin/main")).toBe(1);
    expect(await second.hasChanges()).toBe(false);
  });

  it("checkoutRemoteBranch of a branch the remote lacks fails with GitCommandError", async () => {
    await expect(ws.checkoutRemoteBranch("does-not-exist")).rejects.toBeInstanceOf(GitCommandError);
  });

  it("createBranch resets an existing local branch to HEAD instead of failing", async () => {
    const head = (await ws.headSha()).trim();
    await ws.createBranch("main");
    expect(await ws.headSha()).toBe(head);
  });

  it("writes the token nowhere under .git/ after clone, commit and push", async () => {
    await ws.createBranch("feature");
    await writeFile(path.join(ws.root, "f.txt"), "f\n");
    await ws.commitAll("feature", BOT);
    await ws.push("feature", "main");
    expect(readFileSync(path.join(ws.root, ".git", "config"), "utf8")).not.toContain(FAKE_TOKEN);
    expectNoTokenUnder(path.join(ws.root, ".git"));
  });

  it("removeWorkspace deletes the clone and its mirror", async () => {
    await removeWorkspace(ws.root);
    expect(existsSync(ws.root)).toBe(false);
    expect(existsSync(ws.mirror)).toBe(false);
  });

  it("commitAll leaves a nested repository out of the commit and lists it", async () => {
    await ws.createBranch("mc/issue-3-nested");
    await runSandboxed(TEST_GIT_SETTINGS.sandbox, {
      cwd: ws.root,
      command: "mkdir -p vendor/x && cd vendor/x && git init -q && echo x > f && git add f && git -c user.name=x -c user.email=x@x commit -qm x",
    });
    await writeFile(path.join(ws.root, "real.txt"), "real\n");
    const sha = await ws.commitAll("real change", BOT);
    expect(ws.refusedNestedRepositories).toEqual(["vendor/x"]);
    expect(gitSync(ws.root, ["ls-tree", "-r", "--name-only", sha]).split("\n")).not.toContain("vendor/x");
    expect(await ws.hasChanges()).toBe(false); // the refused repository no longer counts as a change
    await ws.push("mc/issue-3-nested", "main");
    expect(gitSync(base, ["--git-dir", bare, "ls-tree", "-r", "mc/issue-3-nested"])).not.toMatch(/^160000 /m);
  });

  it("push refuses a gitlink the base branch does not have, even when one reached a commit", async () => {
    // As if the sandbox-side check had been bypassed: a commit holding a gitlink.
    await ws.createBranch("mc/issue-4-gitlink");
    gitSync(ws.root, ["update-index", "--add", "--cacheinfo", `160000,${"1".repeat(40)},vendor/linked`]);
    gitSync(ws.root, ["-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "sneak a gitlink in"]);
    const error = await ws.push("mc/issue-4-gitlink", "main").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(UnsafeChangeError);
    expect((error as UnsafeChangeError).paths).toEqual(["vendor/linked"]);
    expect((error as UnsafeChangeError).userMessage).toContain("`vendor/linked`");
    expect(await ws.remoteBranchExists("mc/issue-4-gitlink")).toBe(false);
  });

  it("refuses to work from a cut list: git output over the cap is an error, never a partial list", async () => {
    const small = await cloneRepository({
      cloneUrl: bare,
      dir: path.join(base, "small-cap"),
      token: null,
      branch: "main",
      settings: { ...TEST_GIT_SETTINGS, outputBytes: 4096 },
    });
    await runSandboxed(TEST_GIT_SETTINGS.sandbox, {
      cwd: small.root,
      command: `for i in $(seq 1 200); do : > "untracked-file-with-a-rather-long-name-$i.txt"; done`,
    });
    const error = await small.changedFiles().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(GitCommandError);
    expect((error as GitCommandError).message).toContain("refusing to work from a partial list");
  });

  it("refuses a bundle whose objects fsck rejects (a .gitmodules with an option as its URL)", async () => {
    await ws.createBranch("mc/issue-6-gitmodules");
    await runSandboxed(TEST_GIT_SETTINGS.sandbox, {
      cwd: ws.root,
      command: `printf '[submodule "x"]\\n\\tpath = x\\n\\turl = --upload-pack=touch$\{IFS}/tmp/pwn\\n' > .gitmodules`,
    });
    await ws.commitAll("add .gitmodules", BOT);
    const error = await ws.push("mc/issue-6-gitmodules", "main").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(GitCommandError);
    expect((error as GitCommandError).stderr).toMatch(/gitmodulesUrl|disallowed submodule url/);
    expect(await ws.remoteBranchExists("mc/issue-6-gitmodules")).toBe(false);
  });

  it("the host's git only allows the configured protocols (GIT_ALLOW_PROTOCOL)", async () => {
    const dir = path.join(base, "https-only");
    const error = await cloneRepository({
      cloneUrl: bare,
      dir,
      token: null,
      branch: "main",
      settings: { ...TEST_GIT_SETTINGS, allowedProtocols: ["https", "http"] },
    }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(GitCommandError);
    expect((error as GitCommandError).stderr).toMatch(/transport 'file' not allowed/);
  });
});

describe("cloneRepository failures", () => {
  afterEach(() => {
    cleanupTempDirs();
  });

  it("throws GitCommandError (git_failed, not retryable) for a missing repository, without the token", async () => {
    const base = makeTempDir("mc-git-missing-");
    const error = await cloneRepository({
      cloneUrl: path.join(base, "does-not-exist.git"),
      dir: path.join(base, "clone"),
      token: FAKE_TOKEN,
      branch: "main",
      settings: TEST_GIT_SETTINGS,
    }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(GitCommandError);
    const gitError = error as GitCommandError;
    expect(gitError.code).toBe("git_failed");
    expect(gitError.retryable).toBe(false);
    expect(gitError.message).toMatch(/^git clone failed: /);
    for (const text of [gitError.message, gitError.stderr, gitError.userMessage]) {
      for (const form of TOKEN_FORMS) expect(text).not.toContain(form);
    }
  });

  it("throws GitCommandError for a branch the remote lacks", async () => {
    const base = makeTempDir("mc-git-branch-");
    const bare = createSeededBareRepo(base, SEED_FILES);
    await expect(
      cloneRepository({ cloneUrl: bare, dir: path.join(base, "c"), token: null, branch: "nope", settings: TEST_GIT_SETTINGS }),
    ).rejects.toBeInstanceOf(GitCommandError);
  });
});

/**
 * Over smart HTTP (loopback `git http-backend`) the token is actually used: the server answers
 * 401 to any request without `Authorization: basic base64(x-access-token:<token>)`.
 */
describe("GitWorkspace over HTTP with an installation token", () => {
  let projectRoot: string;
  let server: GitHttpServer;

  beforeAll(async () => {
    projectRoot = makeTempDir("mc-git-http-");
    createSeededBareRepo(projectRoot, SEED_FILES, "repo.git");
    server = await startGitHttpServer(projectRoot, FAKE_TOKEN);
  });

  afterAll(async () => {
    await server.close();
  });

  it("clones and pushes with the token as a header, and never writes it to disk or into a URL", async () => {
    const dir = path.join(makeTempDir("mc-git-http-clone-"), "clone");
    const ws = await cloneRepository({ cloneUrl: `${server.baseUrl}/repo.git`, dir, token: FAKE_TOKEN, branch: "main", settings: TEST_GIT_SETTINGS });
    await ws.createBranch("mc/issue-5-http");
    await writeFile(path.join(ws.root, "http.txt"), "over http\n");
    const sha = await ws.commitAll("http commit", BOT);
    await ws.push("mc/issue-5-http", "main");
    expect(await ws.remoteBranchExists("mc/issue-5-http")).toBe(true);

    expect(gitSync(projectRoot, ["--git-dir", path.join(projectRoot, "repo.git"), "rev-parse", "refs/heads/mc/issue-5-http"]).trim()).toBe(sha);
    expect(server.requests.some((r) => r.url.includes("git-receive-pack"))).toBe(true);
    for (const request of server.requests) expect(request.url).not.toContain(FAKE_TOKEN);

    // The mirror talks to the remote; the work tree only knows the mirror. Neither holds the token.
    const config = readFileSync(path.join(ws.mirror, "config"), "utf8");
    expect(config).toContain(`${server.baseUrl}/repo.git`);
    expect(config).not.toContain(FAKE_TOKEN);
    expect(config.toLowerCase()).not.toContain("extraheader");
    expect(readFileSync(path.join(ws.root, ".git", "config"), "utf8")).not.toContain(server.baseUrl);
    expectNoTokenUnder(ws.mirror);
    expectNoTokenUnder(path.join(ws.root, ".git"));
  });

  it("fails without a token (the server demands it), and setToken restores access", async () => {
    const dir = path.join(makeTempDir("mc-git-http-anon-"), "clone");
    await expect(cloneRepository({ cloneUrl: `${server.baseUrl}/repo.git`, dir, token: null, settings: TEST_GIT_SETTINGS })).rejects.toBeInstanceOf(
      GitCommandError,
    );

    const ws = await cloneRepository({ cloneUrl: `${server.baseUrl}/repo.git`, dir, token: FAKE_TOKEN, branch: "main", settings: TEST_GIT_SETTINGS });
    ws.setToken(null);
    await expect(ws.remoteBranchExists("main")).rejects.toBeInstanceOf(GitCommandError);
    ws.setToken(FAKE_TOKEN);
    await expect(ws.remoteBranchExists("main")).resolves.toBe(true);
  });

  it("keeps the token out of the error of a failed HTTP clone", async () => {
    const dir = path.join(makeTempDir("mc-git-http-missing-"), "clone");
    const error = await cloneRepository({ cloneUrl: `${server.baseUrl}/missing.git`, dir, token: FAKE_TOKEN, settings: TEST_GIT_SETTINGS }).catch(
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(GitCommandError);
    const gitError = error as GitCommandError;
    expect(gitError.code).toBe("git_failed");
    for (const text of [gitError.message, gitError.stderr, gitError.userMessage]) {
      for (const form of TOKEN_FORMS) expect(text).not.toContain(form);
    }
  });
});
