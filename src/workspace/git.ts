import { existsSync } from "node:fs";
import { spawn } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { simpleGit, type SimpleGit } from "simple-git";

import { GitCommandError, ToolInputError, UnsafeChangeError } from "../domain/errors.js";
import { redactSecrets } from "../domain/redact.js";
import { removeTree } from "./remove-tree.js";
import { runSandboxed, sandboxOwner, type CommandResult, type SandboxBind, type SandboxOptions } from "./sandbox.js";

// The only importer of simple-git.
//
// Two repositories per clone, so that the host's git never runs what sandboxed code wrote:
//
//   <dir>.mirror   a bare repository that only the host's git touches: it fetches from and
//                  pushes to GitHub (with the installation token), and reads objects. Sandboxed
//                  commands never see it (it lies under the hidden workspaces root).
//   <dir>          the work tree. Every git command on it (clone from the mirror, status, add,
//                  commit, diff, grep, checkout, bundle) runs inside the sandbox, without the
//                  token or network; the mirror is bound read-only there.
//
// Commits travel from the work tree to the mirror as a bundle file that the host's git fetches
// with fsck on; before a push the host refuses any gitlink the base branch does not have.

/** The identity commits are made with. */
export interface GitIdentity {
  name: string;
  email: string;
}

/** How git runs on this server (from the operator's environment). */
export interface GitSettings {
  /** Sandbox for the work tree's git commands; the same isolation as repository commands. */
  sandbox: SandboxOptions;
  /**
   * Protocols the host's git may use for the remote (`GIT_ALLOW_PROTOCOL`); default
   * `["https", "http"]`. `file` only for local test or mirror set-ups (`GIT_ALLOWED_PROTOCOLS`).
   */
  allowedProtocols?: readonly string[];
  /** Most bytes of one sandboxed git command's output the app parses (default 64 MiB); larger output is refused, never cut. */
  outputBytes?: number;
}

/** Options for {@link cloneRepository}. */
export interface CloneOptions {
  /** The payload's `repository.clone_url` (works for GitHub Enterprise). */
  cloneUrl: string;
  /** Folder of the work tree; replaced if it exists (the mirror is `<dir>.mirror`). */
  dir: string;
  /** Installation access token, sent per network command as an HTTP header; `null` for unauthenticated remotes. */
  token: string | null;
  /** Branch to check out; defaults to the remote's HEAD. */
  branch?: string;
  /** Shallow clone depth in commits; omit for full history. */
  depth?: number;
  settings: GitSettings;
}

const DEFAULT_PROTOCOLS = ["https", "http"] as const;

/** Configuration every git command gets, host or sandbox: nothing of the repository runs. */
const SAFE_CONFIG: ReadonlyArray<[string, string]> = [
  ["core.hooksPath", "/dev/null"],
  ["core.fsmonitor", "false"],
  ["submodule.recurse", "false"],
  ["fetch.recurseSubmodules", "false"],
  ["push.recurseSubmodules", "no"],
  ["diff.ignoreSubmodules", "all"],
  ["status.submoduleSummary", "false"],
  ["transfer.fsckObjects", "true"],
  ["core.symlinks", "true"],
];

function configEnv(config: ReadonlyArray<[string, string]>): Record<string, string> {
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(config.length) };
  config.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return env;
}

/** Variables that keep the system's and the user's git configuration out. */
const NO_OUTSIDE_CONFIG = {
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_SYSTEM: "/dev/null",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_TERMINAL_PROMPT: "0",
};

/**
 * The environment of the host's git: an allowlist, never `process.env`; no system or global
 * config; only the allowed protocols; hooks, fsmonitor and submodule recursion off. The token,
 * when given (network commands only), travels as `http.<origin>/.extraHeader` through
 * GIT_CONFIG_* — never in argv, a URL, or a config file — and only for that origin.
 */
function hostGitEnv(remoteUrl: string, token: string | null, protocols: readonly string[]): Record<string, string> {
  const config: Array<[string, string]> = [...SAFE_CONFIG];
  if (token && /^https?:\/\//i.test(remoteUrl)) {
    const origin = new URL(remoteUrl).origin;
    const basic = Buffer.from(`x-access-token:${token}`).toString("base64");
    config.push([`http.${origin}/.extraheader`, `AUTHORIZATION: basic ${basic}`]);
  }
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: os.tmpdir(),
    LANG: "C.UTF-8",
    ...NO_OUTSIDE_CONFIG,
    GIT_ALLOW_PROTOCOL: protocols.join(":"),
    ...configEnv(config),
  };
}

function hostGit(gitDir: string, env: Record<string, string>): SimpleGit {
  // GIT_CONFIG_* carries the auth header and the safety overrides, GIT_CONFIG_GLOBAL/SYSTEM
  // point nowhere; simple-git asks for each to be allowed explicitly (they only make git safer).
  return simpleGit({
    baseDir: path.dirname(gitDir),
    unsafe: { allowUnsafeConfigEnvCount: true, allowUnsafeHooksPath: true, allowUnsafeFsMonitor: true, allowUnsafeConfigPaths: true },
  }).env(env);
}

function isTransient(text: string): boolean {
  return /Could not resolve host|Connection (timed out|reset)|HTTP 5\d\d|early EOF|The remote end hung up/i.test(text);
}

async function run<T>(command: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const text = redactSecrets(err instanceof Error ? err.message : String(err));
    throw new GitCommandError(command, text, { retryable: isTransient(text) });
  }
}

let sandboxGlobalConfig: Promise<string> | undefined;
/**
 * The global git config of the sandboxed git: `safe.directory = *` only. The mirror belongs to
 * the app's user and the work tree to the sandbox user; git 2.39 honours `safe.directory` from a
 * global file only (not from `-c` or GIT_CONFIG_*). Written once, bound read-only.
 */
function sandboxGitConfig(): Promise<string> {
  sandboxGlobalConfig ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "mc-git-config-"));
    await chmod(dir, 0o755);
    const file = path.join(dir, "gitconfig");
    await writeFile(file, "[safe]\n\tdirectory = *\n", { mode: 0o444 });
    return file;
  })();
  return sandboxGlobalConfig;
}

/** Largest output of one sandboxed git command kept (ls-files of a big repository). */
const GIT_OUTPUT_BYTES = 64 * 1024 ** 2;
/** Wall-clock limit of one sandboxed git command, in milliseconds. */
const GIT_TIMEOUT_MS = 5 * 60_000;

/** Parses `git diff-tree -r -z` / `diff --raw -z` output into entries. */
function parseRaw(out: string): Array<{ oldMode: string; newMode: string; oldSha: string; newSha: string; path: string }> {
  const parts = out.split("\0");
  const entries = [];
  for (let i = 0; i < parts.length; i++) {
    const head = parts[i];
    if (!head?.startsWith(":")) continue;
    const [oldMode = "", newMode = "", oldSha = "", newSha = "", status = ""] = head.slice(1).split(" ");
    const file = parts[++i] ?? "";
    if (/^[RC]/.test(status)) i++; // renames and copies carry a second path
    entries.push({ oldMode, newMode, oldSha, newSha, path: file });
  }
  return entries;
}

/**
 * A clone on disk: the work tree at `root`, its mirror at `root.mirror`. Every network command
 * authenticates with the token given at creation.
 */
export class GitWorkspace {
  readonly root: string;
  readonly mirror: string;
  readonly #remoteUrl: string;
  readonly #settings: GitSettings;
  #token: string | null;
  /** Nested repositories found staged and left out of commits in this session. */
  readonly #refused = new Set<string>();

  constructor(root: string, remoteUrl: string, token: string | null, settings: GitSettings) {
    this.root = root;
    this.mirror = `${root}.mirror`;
    this.#remoteUrl = remoteUrl;
    this.#token = token;
    this.#settings = settings;
  }

  /** Replaces the token used for later network commands (tokens expire after an hour). */
  setToken(token: string | null): void {
    this.#token = token;
  }

  /** Paths of nested repositories that were left out of commits (refused), sorted. */
  get refusedNestedRepositories(): string[] {
    return [...this.#refused].sort();
  }

  // ---- host side: the mirror only --------------------------------------------------------

  #outputBytes(): number {
    return this.#settings.outputBytes ?? GIT_OUTPUT_BYTES;
  }

  #protocols(): readonly string[] {
    return this.#settings.allowedProtocols ?? DEFAULT_PROTOCOLS;
  }

  /** The host's git in the mirror; with the token for network commands. */
  #host(network: boolean, extraProtocols: readonly string[] = []): SimpleGit {
    const env = hostGitEnv(this.#remoteUrl, network ? this.#token : null, [...this.#protocols(), ...extraProtocols]);
    return hostGit(this.mirror, { ...env, GIT_DIR: this.mirror });
  }

  /** Fetches `branch` from GitHub into the mirror's `refs/heads/<branch>`. */
  async #fetchIntoMirror(branch: string, depth?: number, name = "fetch"): Promise<void> {
    const args = ["fetch", "--no-tags", "--no-recurse-submodules", "--force"];
    if (depth) args.push("--depth", String(depth));
    args.push("origin", `+refs/heads/${branch}:refs/heads/${branch}`);
    await run(name, () => this.#host(true).raw(args));
  }

  /** Creates the bare mirror with `origin` set to the remote. */
  async createMirror(branch: string | undefined, depth?: number): Promise<void> {
    await removeTree(this.mirror);
    await mkdir(this.mirror, { recursive: true });
    // Reported as one "clone", which is what it is.
    await run("clone", () => this.#host(false).raw(["init", "--bare", "--quiet", this.mirror]));
    await run("clone", () => this.#host(false).raw(["remote", "add", "origin", this.#remoteUrl]));
    const target = branch ?? (await this.#remoteHead());
    await this.#fetchIntoMirror(target, depth, "clone");
    await run("clone", () => this.#host(false).raw(["symbolic-ref", "HEAD", `refs/heads/${target}`]));
  }

  async #remoteHead(): Promise<string> {
    const out = await run("clone", () => this.#host(true).raw(["ls-remote", "--symref", "origin", "HEAD"]));
    const match = /^ref: refs\/heads\/(\S+)\s+HEAD/m.exec(out);
    if (!match?.[1]) throw new GitCommandError("clone", "the remote has no HEAD branch");
    return match[1];
  }

  /** `true` when the remote has the branch. */
  async remoteBranchExists(branch: string): Promise<boolean> {
    const out = await run("ls-remote", () => this.#host(true).raw(["ls-remote", "--heads", "origin", `refs/heads/${branch}`]));
    return out.trim().length > 0;
  }

  /**
   * Gitlinks (mode 160000) that `sha` has and `base` does not have at the same path and commit.
   * Reads objects in the mirror only.
   */
  async #gitlinksIntroduced(base: string, sha: string): Promise<string[]> {
    const out = await run("diff-tree", () =>
      this.#host(false).raw(["diff-tree", "-r", "-z", "--no-renames", "--no-ext-diff", "--ignore-submodules=none", base, sha]),
    );
    return parseRaw(out)
      .filter((e) => e.newMode === "160000")
      .map((e) => e.path)
      .sort();
  }

  // ---- sandbox side: the work tree -------------------------------------------------------

  /**
   * Runs git on the work tree inside the sandbox, with the mirror visible read-only and no
   * token. `.git` is writable for these commands only.
   *
   * @throws {GitCommandError} on a non-zero exit (unless `okExit` accepts it)
   */
  async #sandbox(
    args: readonly string[],
    options: { env?: Record<string, string>; binds?: SandboxBind[]; okExit?: (code: number | null) => boolean } = {},
  ): Promise<CommandResult> {
    const command = args[0] ?? "git";
    const globalConfig = await sandboxGitConfig();
    const result = await runSandboxed(
      { ...this.#settings.sandbox, limits: { ...this.#settings.sandbox.limits, timeoutMs: GIT_TIMEOUT_MS, outputBytes: this.#outputBytes() } },
      {
        cwd: this.root,
        argv: ["git", ...args],
        gitWritable: true,
        binds: [
          { path: path.dirname(globalConfig), writable: false },
          ...(existsSync(this.mirror) ? [{ path: this.mirror, writable: false }] : []),
          ...(options.binds ?? []),
        ],
        internalEnv: {
          ...NO_OUTSIDE_CONFIG,
          GIT_CONFIG_GLOBAL: globalConfig,
          // The mirror is a local path; nothing else is reachable from the sandbox anyway.
          GIT_ALLOW_PROTOCOL: "file",
          ...configEnv(SAFE_CONFIG),
          ...options.env,
        },
      },
    );
    // Output the app parses must be whole: a cut list of changed files would hide protected paths or gitlinks.
    if (result.truncated) throw new GitCommandError(command, `its output is larger than ${this.#outputBytes()} bytes; refusing to work from a partial list`);
    const ok = options.okExit ? options.okExit(result.exitCode) : result.exitCode === 0;
    if (!ok || result.timedOut) {
      const text = redactSecrets(`${result.stderr}`.trim() || `exit code ${result.exitCode ?? result.signal}`);
      throw new GitCommandError(command, text);
    }
    return result;
  }

  async #out(args: readonly string[]): Promise<string> {
    return (await this.#sandbox(args)).stdout;
  }

  /** Excludes the refused nested repositories from pathspecs. */
  #excludes(): string[] {
    return [...this.#refused].map((p) => `:(exclude,literal)${p}`);
  }

  /** Clones the mirror into the (empty) work tree, on `branch` (default: the mirror's HEAD). */
  async cloneFromMirror(branch?: string): Promise<void> {
    await this.#sandbox(["clone", "--quiet", "--no-hardlinks", "--no-tags", ...(branch ? ["--branch", branch] : []), this.mirror, "."]);
  }

  /** Paths of tracked files plus untracked files not ignored by .gitignore, sorted, `/`-separated. */
  async listFiles(): Promise<string[]> {
    const out = await this.#out(["ls-files", "--cached", "--others", "--exclude-standard", "-z"]);
    return [...new Set(out.split("\0").filter(Boolean))].sort();
  }

  /**
   * Searches tracked and untracked, not-ignored files with `git grep -E`.
   *
   * @returns `path:line:text` lines; empty when nothing matched
   * @throws {ToolInputError} when git rejects the pattern (e.g. an unbalanced parenthesis)
   */
  async grep(pattern: string, options: { ignoreCase?: boolean; pathspec?: string } = {}): Promise<string[]> {
    const args = ["grep", "-n", "-I", "-E", "--untracked", "--no-color", "--full-name"];
    if (options.ignoreCase) args.push("-i");
    args.push("-e", pattern);
    if (options.pathspec) args.push("--", options.pathspec);
    let result: CommandResult;
    try {
      result = await this.#sandbox(args, { okExit: (code) => code === 0 || code === 1 });
    } catch (err) {
      // Anything else is almost always the model's pattern: tell it.
      const message = err instanceof GitCommandError ? err.stderr : String(err);
      throw new ToolInputError(`search failed: ${redactSecrets(message).trim().slice(0, 300)}`);
    }
    return result.exitCode === 1 ? [] : result.stdout.split("\n").filter(Boolean);
  }

  /** Fetches `branch` from the remote into the mirror, then into the work tree's `origin/<branch>`. */
  async #bringIn(branch: string): Promise<void> {
    await this.#fetchIntoMirror(branch);
    await this.#sandbox([
      "fetch",
      "--quiet",
      "--no-tags",
      "--no-recurse-submodules",
      "--force",
      "origin",
      `+refs/heads/${branch}:refs/remotes/origin/${branch}`,
    ]);
  }

  /** Fetches `branch` from origin and checks it out, tracking the remote branch. */
  async checkoutRemoteBranch(branch: string): Promise<void> {
    await this.#bringIn(branch);
    await this.#sandbox(["checkout", "--quiet", "-B", branch, `origin/${branch}`]);
  }

  /** Creates (or resets) `branch` at the current HEAD and checks it out. */
  async createBranch(branch: string): Promise<void> {
    await this.#sandbox(["checkout", "--quiet", "-B", branch]);
  }

  async #status(): Promise<string[]> {
    const out = await this.#out(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules=all", "--", ".", ...this.#excludes()]);
    const parts = out.split("\0");
    const files: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const entry = parts[i];
      if (!entry || entry.length < 4) continue;
      files.push(entry.slice(3));
      if (/^[RC]/.test(entry)) i++; // the original path follows a rename
    }
    return files;
  }

  /** `true` when the work tree has changes (including untracked, not-ignored files). */
  async hasChanges(): Promise<boolean> {
    return (await this.#status()).length > 0;
  }

  /** Paths changed in the work tree, relative to the root. */
  async changedFiles(): Promise<string[]> {
    return [...new Set(await this.#status())].sort();
  }

  /** Puts `paths` back as they are at HEAD; untracked ones are removed. */
  async discardChanges(paths: readonly string[]): Promise<void> {
    if (paths.length === 0) return;
    const literal = paths.map((p) => `:(literal)${p}`);
    const tracked = (await this.#out(["ls-files", "-z", "--", ...literal])).split("\0").filter(Boolean);
    if (tracked.length > 0) await this.#sandbox(["checkout", "HEAD", "--", ...tracked.map((p) => `:(literal)${p}`)]);
    await this.#sandbox(["clean", "-f", "-q", "--", ...literal]);
  }

  /** Paths changed by the commits after `sha` (up to HEAD), sorted. */
  async filesChangedSince(sha: string): Promise<string[]> {
    const out = await this.#out(["diff", "--no-ext-diff", "--name-only", "-z", `${sha}..HEAD`]);
    return out.split("\0").filter(Boolean).sort();
  }

  /**
   * Stages everything and commits as `author` (also the committer). Nested repositories
   * (gitlinks) that HEAD does not already have are unstaged and left out, and listed in
   * {@link refusedNestedRepositories}.
   *
   * @returns the new commit's sha
   * @throws {GitCommandError} when nothing is left to commit
   */
  async commitAll(message: string, author: GitIdentity): Promise<string> {
    const env = {
      GIT_AUTHOR_NAME: author.name,
      GIT_AUTHOR_EMAIL: author.email,
      GIT_COMMITTER_NAME: author.name,
      GIT_COMMITTER_EMAIL: author.email,
    };
    await this.#sandbox(["add", "--all", "--", ".", ...this.#excludes()], { env });
    // --ignore-submodules=none overrides SAFE_CONFIG's diff.ignoreSubmodules: gitlinks must show here.
    const staged = parseRaw(await this.#out(["diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev", "--ignore-submodules=none", "HEAD"]));
    const nested = staged.filter((e) => e.newMode === "160000").map((e) => e.path);
    if (nested.length > 0) {
      await this.#sandbox(["rm", "--cached", "--force", "--quiet", "-r", "--ignore-unmatch", "--", ...nested.map((p) => `:(literal)${p}`)]);
      nested.forEach((p) => this.#refused.add(p));
    }
    await this.#sandbox(["commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message], { env });
    return this.headSha();
  }

  /** The sha of HEAD. */
  async headSha(): Promise<string> {
    return (await this.#out(["rev-parse", "HEAD"])).trim();
  }

  /** Commits on HEAD that `base` (a ref such as `origin/main`) does not have. */
  async commitsAhead(base: string): Promise<number> {
    return Number((await this.#out(["rev-list", "--count", `${base}..HEAD`])).trim());
  }

  /**
   * Brings the work tree to the remote's `branch` (fetch, hard reset, remove untracked files
   * and nested repositories that are not ignored), so a reused clone starts from exactly what
   * is on GitHub — including commits a person pushed to the branch.
   *
   * @returns `false` when the remote has no such branch (nothing changed)
   */
  async syncTo(branch: string): Promise<boolean> {
    if (!(await this.remoteBranchExists(branch))) return false;
    await this.#bringIn(branch);
    await this.#sandbox(["checkout", "--quiet", "--force", "-B", branch, `origin/${branch}`]);
    await this.#sandbox(["reset", "--quiet", "--hard", `origin/${branch}`]);
    await this.#sandbox(["clean", "-ffdq"]);
    this.#refused.clear();
    return true;
  }

  /** Subjects of the last `count` commits on HEAD, newest first (to follow the repository's style). */
  async recentSubjects(count = 20): Promise<string[]> {
    const out = await this.#out(["log", `-${count}`, "--format=%s"]);
    return out.split("\n").filter(Boolean);
  }

  /**
   * Pushes the work tree's HEAD to the remote's `branch`. Never forces: a rejected push is an
   * error. The commits reach the mirror as a bundle that the host's git fetches with
   * `transfer.fsckObjects`; the host then refuses gitlinks that the base branch does not have.
   *
   * @param base - the base branch (the repository's default branch), already in the mirror
   * @throws {UnsafeChangeError} when the commits add or move a gitlink
   * @throws {GitCommandError} when git fails (retryable for network failures)
   */
  async push(branch: string, base: string): Promise<void> {
    const sha = await this.headSha();
    if (!/^[0-9a-f]{40,64}$/.test(sha)) throw new GitCommandError("rev-parse", `unexpected HEAD ${sha.slice(0, 80)}`);
    const known = await this.#host(false)
      .raw(["cat-file", "-e", `${sha}^{commit}`])
      .then(
        () => true,
        () => false,
      );
    if (!known) await this.#importCommits(branch);
    const introduced = await this.#gitlinksIntroduced(`refs/heads/${base}`, sha);
    if (introduced.length > 0) throw new UnsafeChangeError(introduced);
    await run("update-ref", () => this.#host(false).raw(["update-ref", `refs/heads/${branch}`, sha]));
    await run("push", () => this.#host(true).raw(["push", "--no-verify", "--recurse-submodules=no", "origin", `${sha}:refs/heads/${branch}`]));
  }

  /**
   * Reads a bundle written by the sandboxed git: its header (v2 only) on the host, its pack
   * through `git index-pack --strict --fix-thin` in the mirror — every object checked by fsck
   * (malformed trees, `.gitmodules` with option-like URLs or paths, `.git` path components), which
   * `git fetch <bundle>` skips before git 2.46.
   *
   * @returns the sha of the bundle's `HEAD`
   * @throws {GitCommandError} for a malformed bundle or an object fsck refuses
   */
  async #indexBundle(bundle: string): Promise<string> {
    const data = await readFile(bundle);
    const end = data.indexOf("\n\n");
    const header = end > 0 ? data.subarray(0, end).toString("utf8").split("\n") : [];
    if (header[0] !== "# v2 git bundle") throw new GitCommandError("bundle", "the work tree's bundle is not a v2 git bundle");
    const head = header
      .slice(1)
      .find((line) => /^[0-9a-f]{40} HEAD$/.test(line))
      ?.slice(0, 40);
    if (!head) throw new GitCommandError("bundle", "the work tree's bundle has no HEAD");
    const env = { ...hostGitEnv(this.#remoteUrl, null, this.#protocols()), GIT_DIR: this.mirror };
    await new Promise<void>((resolve, reject) => {
      const child = spawn("git", ["index-pack", "--strict", "--fix-thin", "--stdin"], { cwd: this.mirror, env, stdio: ["pipe", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => (stderr = `${stderr}${chunk.toString("utf8")}`.slice(-4_000)));
      child.once("error", (err) => reject(new GitCommandError("index-pack", redactSecrets(err.message))));
      child.once("close", (code) => (code === 0 ? resolve() : reject(new GitCommandError("index-pack", redactSecrets(stderr.trim() || `exit code ${code}`)))));
      child.stdin.on("error", () => undefined); // reported through the exit code
      child.stdin.end(data.subarray(end + 2));
    });
    return head;
  }

  /** Moves the work tree's new commits into the mirror as a bundle (`refs/mc/incoming`). */
  async #importCommits(branch: string): Promise<void> {
    const exchange = `${this.root}.exchange`;
    await removeTree(exchange);
    await mkdir(exchange, { recursive: true, mode: 0o700 });
    const owner = sandboxOwner(this.#settings.sandbox);
    if (owner) await chown(exchange, owner.uid, owner.gid);
    try {
      const bundle = path.join(exchange, "push.bundle");
      await this.#sandbox(["bundle", "create", "--quiet", bundle, `HEAD`, "--not", "--remotes=origin"], { binds: [{ path: exchange, writable: true }] });
      const sha = await this.#indexBundle(bundle);
      await run("update-ref", () => this.#host(false).raw(["update-ref", `refs/mc/incoming/${branch}`, sha]));
    } finally {
      await removeTree(exchange);
    }
  }
}

async function makeWorkTree(dir: string, settings: GitSettings): Promise<void> {
  await removeTree(dir);
  await mkdir(dir, { recursive: true });
  const owner = sandboxOwner(settings.sandbox);
  if (owner) await chown(dir, owner.uid, owner.gid);
}

/**
 * Clones a repository: a bare mirror on the host (`<dir>.mirror`, the only repository that
 * talks to the remote), and the work tree at `dir` cloned from it inside the sandbox. Both are
 * removed first if present.
 *
 * @throws {GitCommandError} with credentials scrubbed from the message; `retryable` for network failures
 * @throws {SandboxUnavailableError} when the sandbox cannot run git
 */
export async function cloneRepository(options: CloneOptions): Promise<GitWorkspace> {
  const workspace = new GitWorkspace(options.dir, options.cloneUrl, options.token, options.settings);
  await workspace.createMirror(options.branch, options.depth);
  await makeWorkTree(options.dir, options.settings);
  await workspace.cloneFromMirror(options.branch);
  return workspace;
}

/**
 * Opens an existing clone at `dir` (work tree and mirror) for reuse, or returns `null` when
 * either is missing. Reads nothing from the work tree on the host.
 *
 * @param token - used for this clone's later network commands
 */
export async function openWorkspace(dir: string, remoteUrl: string, token: string | null, settings: GitSettings): Promise<GitWorkspace | null> {
  const isDir = (p: string) =>
    stat(p).then(
      (info) => info.isDirectory(),
      () => false,
    );
  if (!(await isDir(path.join(dir, ".git"))) || !(await isDir(path.join(`${dir}.mirror`, "objects")))) return null;
  return new GitWorkspace(dir, remoteUrl, token, settings);
}

/** Removes a workspace: the work tree, its mirror and any exchange folder. */
export async function removeWorkspace(dir: string): Promise<void> {
  await Promise.all([dir, `${dir}.mirror`, `${dir}.exchange`].map((p) => removeTree(p)));
}
