import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";

import { simpleGit, type SimpleGit } from "simple-git";

import { GitCommandError, ToolInputError } from "../errors.js";
import { redactSecrets } from "../redact.js";

// The only importer of simple-git.

/** The identity commits are made with. */
export interface GitIdentity {
  name: string;
  email: string;
}

/** Options for {@link cloneRepository}. */
export interface CloneOptions {
  /** The payload's `repository.clone_url` (works for GitHub Enterprise), or a local path in tests. */
  cloneUrl: string;
  /** Folder to clone into; replaced if it exists. */
  dir: string;
  /** Installation access token, sent per command as an HTTP header; `null` for unauthenticated remotes. */
  token: string | null;
  /** Branch to check out; defaults to the remote's HEAD. */
  branch?: string;
  /** Shallow clone depth in commits; omit for full history. */
  depth?: number;
}

/**
 * The environment every git child process gets: an allowlist, never `process.env`, so no
 * secret of the app reaches git or its hooks. Every command also ignores hooks and fsmonitor
 * whatever the clone's config says (`core.hooksPath=/dev/null`, `core.fsmonitor=false` through
 * GIT_CONFIG_*, which outrank `.git/config`): repository content never runs on the host.
 *
 * The token, when given (network commands only: clone, fetch, ls-remote, push), travels as
 * `http.<origin>/.extraHeader` through GIT_CONFIG_* — never in argv, a URL, or `.git/config`
 * — and only for that origin.
 */
function gitEnv(remoteUrl: string, token: string | null, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    LANG: "C.UTF-8",
    GIT_TERMINAL_PROMPT: "0",
    GIT_CONFIG_NOSYSTEM: "1",
    ...extra,
  };
  const config: Array<[string, string]> = [
    ["core.hooksPath", "/dev/null"],
    ["core.fsmonitor", "false"],
  ];
  if (token && /^https?:\/\//i.test(remoteUrl)) {
    const origin = new URL(remoteUrl).origin;
    const basic = Buffer.from(`x-access-token:${token}`).toString("base64");
    config.push([`http.${origin}/.extraheader`, `AUTHORIZATION: basic ${basic}`]);
  }
  env.GIT_CONFIG_COUNT = String(config.length);
  config.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return env;
}

function git(baseDir: string, env: Record<string, string>): SimpleGit {
  // GIT_CONFIG_* carries the auth header and the hook/fsmonitor overrides; simple-git asks for
  // each of those to be allowed explicitly (they only ever make git safer here).
  return simpleGit({ baseDir, unsafe: { allowUnsafeConfigEnvCount: true, allowUnsafeHooksPath: true, allowUnsafeFsMonitor: true } }).env(env);
}

async function run<T>(command: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const text = redactSecrets(err instanceof Error ? err.message : String(err));
    const retryable = /Could not resolve host|Connection (timed out|reset)|HTTP 5\d\d|early EOF|The remote end hung up/i.test(text);
    throw new GitCommandError(command, text, { retryable });
  }
}

/** A clone on disk. Every network command authenticates with the token given at creation. */
export class GitWorkspace {
  readonly root: string;
  readonly #remoteUrl: string;
  #token: string | null;

  constructor(root: string, remoteUrl: string, token: string | null) {
    this.root = root;
    this.#remoteUrl = remoteUrl;
    this.#token = token;
  }

  /** A git for local commands: no token in its environment. */
  #git(extra?: Record<string, string>): SimpleGit {
    return git(this.root, gitEnv(this.#remoteUrl, null, extra));
  }

  /** A git for network commands (fetch, ls-remote, push): the token in its environment. */
  #remote(): SimpleGit {
    return git(this.root, gitEnv(this.#remoteUrl, this.#token));
  }

  /** Replaces the token used for later network commands (tokens expire after an hour). */
  setToken(token: string | null): void {
    this.#token = token;
  }

  /** Paths of tracked files plus untracked files not ignored by .gitignore, sorted, `/`-separated. */
  async listFiles(): Promise<string[]> {
    const out = await run("ls-files", () =>
      this.#git().raw(["ls-files", "--cached", "--others", "--exclude-standard", "-z"]),
    );
    return [...new Set(out.split("\0").filter(Boolean))].sort();
  }

  /**
   * Searches tracked and untracked, not-ignored files with `git grep -E`.
   *
   * @returns `path:line:text` lines; empty when nothing matched
   */
  async grep(pattern: string, options: { ignoreCase?: boolean; pathspec?: string } = {}): Promise<string[]> {
    const args = ["grep", "-n", "-I", "-E", "--untracked", "--no-color", "--full-name"];
    if (options.ignoreCase) args.push("-i");
    args.push("-e", pattern);
    if (options.pathspec) args.push("--", options.pathspec);
    try {
      const out = await this.#git().raw(args);
      return out.split("\n").filter(Boolean);
    } catch (err) {
      // git grep exits 1 when nothing matched; simple-git reports that as an error with no output.
      const message = err instanceof Error ? err.message : String(err);
      if (message.trim() === "") return [];
      // Anything else is almost always the model's pattern (e.g. an unbalanced parenthesis): tell it.
      throw new ToolInputError(`search failed: ${redactSecrets(message).trim().slice(0, 300)}`);
    }
  }

  /** `true` when the remote has the branch. */
  async remoteBranchExists(branch: string): Promise<boolean> {
    const out = await run("ls-remote", () => this.#remote().raw(["ls-remote", "--heads", "origin", `refs/heads/${branch}`]));
    return out.trim().length > 0;
  }

  /** Fetches `branch` from origin and checks it out, tracking the remote branch. */
  async checkoutRemoteBranch(branch: string): Promise<void> {
    await run("fetch", () => this.#remote().raw(["fetch", "origin", `+refs/heads/${branch}:refs/remotes/origin/${branch}`]));
    await run("checkout", () => this.#git().raw(["checkout", "-B", branch, `origin/${branch}`]));
  }

  /** Creates (or resets) `branch` at the current HEAD and checks it out. */
  async createBranch(branch: string): Promise<void> {
    await run("checkout", () => this.#git().raw(["checkout", "-B", branch]));
  }

  /** `true` when the work tree has changes (including untracked, not-ignored files). */
  async hasChanges(): Promise<boolean> {
    const status = await run("status", () => this.#git().status());
    return !status.isClean();
  }

  /** Puts `paths` back as they are at HEAD; untracked ones are removed. */
  async discardChanges(paths: readonly string[]): Promise<void> {
    if (paths.length === 0) return;
    const tracked = (await run("ls-files", () => this.#git().raw(["ls-files", "-z", "--", ...paths]))).split("\0").filter(Boolean);
    if (tracked.length > 0) await run("checkout", () => this.#git().raw(["checkout", "HEAD", "--", ...tracked]));
    await run("clean", () => this.#git().raw(["clean", "-f", "--", ...paths]));
  }

  /** Paths changed by the commits after `sha` (up to HEAD), sorted. */
  async filesChangedSince(sha: string): Promise<string[]> {
    const out = await run("diff", () => this.#git().raw(["diff", "--name-only", "-z", `${sha}..HEAD`]));
    return out.split("\0").filter(Boolean).sort();
  }

  /** Paths changed in the work tree, relative to the root. */
  async changedFiles(): Promise<string[]> {
    const status = await run("status", () => this.#git().status());
    return status.files.map((f) => f.path).sort();
  }

  /**
   * Stages everything and commits as `author` (also the committer).
   *
   * @returns the new commit's sha
   */
  async commitAll(message: string, author: GitIdentity): Promise<string> {
    const env = {
      GIT_AUTHOR_NAME: author.name,
      GIT_AUTHOR_EMAIL: author.email,
      GIT_COMMITTER_NAME: author.name,
      GIT_COMMITTER_EMAIL: author.email,
    };
    await run("add", () => this.#git(env).raw(["add", "--all"]));
    await run("commit", () => this.#git(env).raw(["commit", "--no-verify", "-m", message]));
    return this.headSha();
  }

  /** The sha of HEAD. */
  async headSha(): Promise<string> {
    return (await run("rev-parse", () => this.#git().raw(["rev-parse", "HEAD"]))).trim();
  }

  /** Commits on HEAD that `base` (a ref such as `origin/main`) does not have. */
  async commitsAhead(base: string): Promise<number> {
    const out = await run("rev-list", () => this.#git().raw(["rev-list", "--count", `${base}..HEAD`]));
    return Number(out.trim());
  }

  /**
   * Brings the clone to the remote's `branch` (fetch, hard reset, remove untracked files that
   * are not ignored), so a reused clone starts from exactly what is on GitHub — including
   * commits a person pushed to the branch.
   *
   * @returns `false` when the remote has no such branch (nothing changed)
   */
  async syncTo(branch: string): Promise<boolean> {
    if (!(await this.remoteBranchExists(branch))) return false;
    await run("fetch", () => this.#remote().raw(["fetch", "--no-tags", "origin", `+refs/heads/${branch}:refs/remotes/origin/${branch}`]));
    await run("checkout", () => this.#git().raw(["checkout", "-B", branch, `origin/${branch}`]));
    await run("reset", () => this.#git().raw(["reset", "--hard", `origin/${branch}`]));
    await run("clean", () => this.#git().raw(["clean", "-ffd"]));
    return true;
  }

  /** Subjects of the last `count` commits on HEAD, newest first (to follow the repository's style). */
  async recentSubjects(count = 20): Promise<string[]> {
    const out = await run("log", () => this.#git().raw(["log", `-${count}`, "--format=%s"]));
    return out.split("\n").filter(Boolean);
  }

  /** Pushes `branch` to origin. Never forces: a rejected push is an error. */
  async push(branch: string): Promise<void> {
    await run("push", () => this.#remote().raw(["push", "--no-verify", "origin", `refs/heads/${branch}:refs/heads/${branch}`]));
  }
}

/**
 * Clones a repository into `options.dir` (removed first if present).
 *
 * @throws {GitCommandError} with credentials scrubbed from the message; `retryable` for network failures
 */
export async function cloneRepository(options: CloneOptions): Promise<GitWorkspace> {
  await rm(options.dir, { recursive: true, force: true });
  await mkdir(path.dirname(options.dir), { recursive: true });
  const args = ["--no-tags", "--single-branch"];
  if (options.depth) args.push("--depth", String(options.depth));
  if (options.branch) args.push("--branch", options.branch);
  await run("clone", () =>
    git(path.dirname(options.dir), gitEnv(options.cloneUrl, options.token)).clone(options.cloneUrl, options.dir, args),
  );
  return new GitWorkspace(options.dir, options.cloneUrl, options.token);
}

/**
 * Opens an existing clone at `dir` for reuse, or returns `null` when there is none.
 *
 * @param token - used for this clone's later network commands
 */
export async function openWorkspace(dir: string, remoteUrl: string, token: string | null): Promise<GitWorkspace | null> {
  try {
    const info = await stat(path.join(dir, ".git"));
    if (!info.isDirectory()) return null;
  } catch {
    return null;
  }
  const workspace = new GitWorkspace(dir, remoteUrl, token);
  try {
    await run("remote", () => git(dir, gitEnv(remoteUrl, null)).raw(["remote", "get-url", "origin"]));
  } catch {
    return null;
  }
  return workspace;
}

/** Removes a workspace folder. */
export async function removeWorkspace(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
