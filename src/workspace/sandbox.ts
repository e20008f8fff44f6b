import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { access, lstat, mkdir, mkdtemp, readFile, realpath, rm, rmdir, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";

import { JobAbortedError, SandboxUnavailableError, ToolInputError } from "../errors.js";
import { redactSecrets } from "../redact.js";

// Every command the app runs from a repository (its tests, its build, the Coder's
// run_command) goes through runSandboxed. Nothing else in the app spawns repository code.

/** Resource limits of one sandboxed command. */
export interface SandboxLimits {
  /** Wall-clock limit in milliseconds; at expiry every process of the command is killed. */
  timeoutMs: number;
  /**
   * Memory limit in bytes, per process: RLIMIT_DATA (heap and other private writable
   * memory; address-space reservations such as V8's or Go's are not counted). Also the size
   * of the sandbox's private `/tmp`.
   */
  memoryBytes: number;
  /** Most tasks (processes and threads) alive at once inside the sandbox. */
  maxProcesses: number;
  /** Most bytes kept per stream (stdout, stderr); the rest is read and dropped. */
  outputBytes: number;
}

/**
 * Defaults: 10 minutes, 2 GiB per process, 1024 tasks (threads count: one Node.js process
 * alone has about ten), 1 MiB per stream.
 */
export const DEFAULT_SANDBOX_LIMITS: Readonly<SandboxLimits> = Object.freeze({
  timeoutMs: 10 * 60_000,
  memoryBytes: 2 * 1024 ** 3,
  maxProcesses: 1024,
  outputBytes: 1024 ** 2,
});

/** How commands are isolated. */
export interface SandboxOptions {
  /**
   * `"bwrap"`: run inside bubblewrap (the default everywhere). `"off"`: run with `sh -c`
   * directly, keeping only the cleared environment, the limits and the output cap. `"off"`
   * is set only by the operator's server environment (`SANDBOX=off`) — never by repository
   * configuration, an issue, or a model.
   */
  mode: "bwrap" | "off";
  /** The bubblewrap binary; default `bwrap` from `PATH`. */
  bwrapPath?: string;
  /**
   * Share the host's network with the sandbox (bwrap `--share-net`). Only for a set-up step
   * the operator allowed (e.g. installing dependencies); tests and the Coder's commands run
   * without network.
   */
  network?: boolean;
  /** Overrides of {@link DEFAULT_SANDBOX_LIMITS}. */
  limits?: Partial<SandboxLimits>;
  /**
   * Absolute paths the command must not see even read-only (directories become an empty
   * tmpfs, files read as empty). Default: {@link defaultHiddenPaths} — the app's `.env`, its
   * database folder, the workspaces root (other clones) and the private key file. The
   * command's own `cwd` stays visible even when it lies under a hidden folder.
   */
  hidePaths?: string[];
}

/** One command to run. */
export interface SandboxRequest {
  /** Working directory (the clone); the only host folder the command can write. Must exist. */
  cwd: string;
  /** A shell command line, run with `sh -c` (the repository's own test or build command). */
  command: string;
  /**
   * Extra environment variables. Names must match `^[A-Z][A-Z0-9_]{0,63}$` and must not look
   * like a credential (TOKEN, KEY, SECRET, PASSWORD, PRIVATE, CREDENTIAL, AUTH, …); values must
   * not look like a token. Anything else is dropped (see {@link filterCommandEnv}).
   */
  env?: Record<string, string>;
  /** Aborting kills every process of the command; the call then rejects with {@link JobAbortedError}. */
  signal?: AbortSignal;
}

/** What a command did. */
export interface CommandResult {
  command: string;
  /** The exit status, or `null` when the command was killed by a signal. */
  exitCode: number | null;
  /** The signal that killed the command (e.g. `"SIGKILL"` at the timeout), or `null`. */
  signal: string | null;
  /** `true` when the wall-clock limit was reached and the command was killed. */
  timedOut: boolean;
  /** Wall-clock time in milliseconds. */
  durationMs: number;
  /** Standard output, capped (see `truncated`). */
  stdout: string;
  /** Standard error, capped (see `truncated`). */
  stderr: string;
  /** `true` when either stream exceeded `outputBytes`; the text then says how many bytes were cut. */
  truncated: boolean;
  /** `false` only in mode `"off"`. */
  sandboxed: boolean;
}

// ---------------------------------------------------------------------------------------------
// Environment

const ENV_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
const SECRET_NAME = /TOKEN|KEY|SECRET|PASSWORD|PASSWD|PASSPHRASE|PRIVATE|CREDENTIAL|AUTH|COOKIE|SESSION|CERT/;
/** Set by the sandbox itself, or loader hooks. */
const RESERVED_NAME = /^(PATH|HOME|LANG|CI|TMPDIR|LD_[A-Z0-9_]*|BASH_ENV|ENV)$/;

/**
 * Splits requested environment variables into those a command may get and those refused:
 * names outside `^[A-Z][A-Z0-9_]{0,63}$`, credential-like names (containing TOKEN, KEY, SECRET,
 * PASSWORD, PRIVATE, CREDENTIAL, AUTH, …), names the sandbox sets itself (PATH, HOME, LANG, CI,
 * TMPDIR) or loader hooks (LD_*), and values that contain NUL or look like a token.
 *
 * @returns the accepted variables and the refused names, sorted
 */
export function filterCommandEnv(env: Record<string, string> = {}): { env: Record<string, string>; refused: string[] } {
  const accepted: Record<string, string> = {};
  const refused: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    const ok =
      ENV_NAME.test(name) &&
      !SECRET_NAME.test(name) &&
      !RESERVED_NAME.test(name) &&
      typeof value === "string" &&
      !value.includes("\0") &&
      redactSecrets(value) === value;
    if (ok) accepted[name] = value;
    else refused.push(name);
  }
  return { env: accepted, refused: refused.sort() };
}

/** The whole environment of a command: an allowlist, never `process.env`. */
function commandEnv(home: string, extra: Record<string, string> | undefined): Record<string, string> {
  return {
    ...filterCommandEnv(extra).env,
    PATH: hostPath(),
    HOME: home,
    LANG: "C.UTF-8",
    CI: "true",
  };
}

function hostPath(): string {
  return process.env.PATH || "/usr/local/bin:/usr/bin:/bin";
}

/**
 * Paths hidden from sandboxed commands unless {@link SandboxOptions.hidePaths} says otherwise:
 * `<app cwd>/.env`, the folder of `DATABASE_PATH`, `WORKSPACES_DIR` and `PRIVATE_KEY_PATH`
 * (read from the server environment, with the app's defaults), those that exist.
 */
export function defaultHiddenPaths(): string[] {
  const candidates = [
    path.resolve(".env"),
    path.dirname(path.resolve(process.env.DATABASE_PATH || "data/mission-control.sqlite")),
    path.resolve(process.env.WORKSPACES_DIR || "data/workspaces"),
  ];
  if (process.env.PRIVATE_KEY_PATH) candidates.push(path.resolve(process.env.PRIVATE_KEY_PATH));
  return [...new Set(candidates)];
}

// ---------------------------------------------------------------------------------------------
// Helpers found on the host

async function findOnPath(name: string): Promise<string | null> {
  for (const dir of hostPath().split(":")) {
    if (!dir || !path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, name);
    try {
      await access(candidate, fsConstants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The bubblewrap binary to run: `bwrapPath` when it names an executable file (a bare name is
 * looked up on PATH), else `bwrap` from PATH.
 *
 * @throws {SandboxUnavailableError} no such executable
 */
async function findBwrap(bwrapPath: string | undefined): Promise<string> {
  const wanted = bwrapPath ?? "bwrap";
  if (wanted.includes("/")) {
    try {
      await access(wanted, fsConstants.X_OK);
      if ((await stat(wanted)).isFile()) return wanted;
    } catch {
      // reported below
    }
    throw new SandboxUnavailableError(`bubblewrap was not found at ${wanted}`);
  }
  const found = await findOnPath(wanted);
  if (!found) throw new SandboxUnavailableError(`bubblewrap (${wanted}) was not found on PATH`);
  return found;
}

let prlimitPath: Promise<string | null> | undefined;
function findPrlimit(): Promise<string | null> {
  prlimitPath ??= findOnPath("prlimit");
  return prlimitPath;
}

// ---------------------------------------------------------------------------------------------
// A pids cgroup, when the app runs as root. The kernel ignores RLIMIT_NPROC for uid 0, and the
// sandbox's uid 0 is the host's uid 0 when the app runs as root, so there the process limit
// needs the pids controller. As a non-root user RLIMIT_NPROC suffices.

let pidsRoot: Promise<string | null> | undefined;

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** The folder of this process's cgroup in a hierarchy with the pids controller, if writable. */
async function findPidsCgroupRoot(): Promise<string | null> {
  try {
    const membership = (await readFile("/proc/self/cgroup", "utf8")).split("\n");
    const mounts = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").map((line) => {
      const [pre = "", post = ""] = line.split(" - ");
      const fields = pre.split(" ");
      const [fsType = "", , superOptions = ""] = post.split(" ");
      return { root: fields[3] ?? "", mountPoint: fields[4] ?? "", fsType, superOptions: superOptions.split(",") };
    });
    const v1 = membership.map((l) => l.split(":")).find((p) => p.length >= 3 && (p[1] ?? "").split(",").includes("pids"));
    let dir: string | null = null;
    if (v1) {
      const mount = mounts.find((m) => m.fsType === "cgroup" && m.superOptions.includes("pids"));
      if (mount) dir = joinCgroup(mount.mountPoint, mount.root, v1.slice(2).join(":"));
    } else {
      const v2 = membership.find((l) => l.startsWith("0::"));
      const mount = mounts.find((m) => m.fsType === "cgroup2");
      if (v2 && mount) {
        dir = joinCgroup(mount.mountPoint, mount.root, v2.slice(3));
        const enabled = (await readFile(path.join(dir, "cgroup.subtree_control"), "utf8")).split(/\s+/);
        if (!enabled.includes("pids")) return null;
      }
    }
    if (!dir) return null;
    await access(dir, fsConstants.W_OK);
    return dir;
  } catch {
    return null;
  }
}

function joinCgroup(mountPoint: string, mountRoot: string, cgroupPath: string): string {
  const relative = mountRoot !== "/" && cgroupPath.startsWith(mountRoot) ? cgroupPath.slice(mountRoot.length) : cgroupPath;
  return path.join(mountPoint, relative);
}

/** A per-command pids cgroup with `pids.max` set, or `null` when none can be made. */
async function createPidsCgroup(maxProcesses: number): Promise<string | null> {
  if (!isRoot()) return null;
  pidsRoot ??= findPidsCgroupRoot();
  const root = await pidsRoot;
  if (!root) return null;
  const dir = path.join(root, `mission-control-sandbox-${process.pid}-${randomBytes(6).toString("hex")}`);
  try {
    await mkdir(dir);
    await writeFile(path.join(dir, "pids.max"), String(maxProcesses));
    return dir;
  } catch {
    await rmdir(dir).catch(() => undefined);
    return null;
  }
}

async function killCgroup(dir: string): Promise<void> {
  await writeFile(path.join(dir, "cgroup.kill"), "1").catch(() => undefined); // cgroup v2, Linux 5.14+
  const procs = await readFile(path.join(dir, "cgroup.procs"), "utf8").catch(() => "");
  for (const pid of procs.split("\n").map(Number).filter((n) => n > 0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

async function removeCgroup(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    await killCgroup(dir);
    try {
      await rmdir(dir);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Output

/** Keeps the first and last halves of a stream up to `cap` bytes; counts the rest. */
class CappedOutput {
  readonly #headCap: number;
  readonly #tailCap: number;
  readonly #head: Buffer[] = [];
  #headLength = 0;
  #tail: Buffer[] = [];
  #tailLength = 0;
  #total = 0;

  constructor(cap: number) {
    this.#headCap = Math.floor(cap / 2);
    this.#tailCap = cap - this.#headCap;
  }

  push(chunk: Buffer): void {
    this.#total += chunk.length;
    let rest = chunk;
    if (this.#headLength < this.#headCap) {
      const take = Math.min(rest.length, this.#headCap - this.#headLength);
      this.#head.push(rest.subarray(0, take));
      this.#headLength += take;
      rest = rest.subarray(take);
    }
    if (rest.length === 0 || this.#tailCap === 0) return;
    if (rest.length >= this.#tailCap) {
      this.#tail = [Buffer.from(rest.subarray(rest.length - this.#tailCap))];
      this.#tailLength = this.#tailCap;
      return;
    }
    this.#tail.push(rest);
    this.#tailLength += rest.length;
    while (this.#tailLength > this.#tailCap) {
      const first = this.#tail[0]!;
      const excess = this.#tailLength - this.#tailCap;
      if (first.length <= excess) {
        this.#tail.shift();
        this.#tailLength -= first.length;
      } else {
        this.#tail[0] = first.subarray(excess);
        this.#tailLength -= excess;
      }
    }
  }

  get truncated(): boolean {
    return this.#total > this.#headLength + this.#tailLength;
  }

  text(): string {
    const head = Buffer.concat(this.#head).toString("utf8");
    const tail = Buffer.concat(this.#tail).toString("utf8");
    if (!this.truncated) return head + tail;
    const cut = this.#total - this.#headLength - this.#tailLength;
    return `${head}\n[output truncated: ${cut} bytes cut from the middle; kept the first ${this.#headLength} and last ${this.#tailLength} of ${this.#total} bytes]\n${tail}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Running

/** Written to fd 3 by the first shell inside the sandbox: proof that bwrap and prlimit worked. */
const STARTED = "S";
/** Runs inside the limits: reports the start, closes fd 3, and execs the command as `sh -c`. */
const STARTER = `printf ${STARTED} >&3 && exec 3>&- && exec /bin/sh -c -- "$0"`;
/** Moves itself into the cgroup whose `cgroup.procs` is $1, then execs the rest. */
const CGROUP_JOIN = `echo $$ > "$1" && shift && exec "$@"`;
/** Home folder inside the sandbox (on its private /tmp). */
const SANDBOX_HOME = "/tmp/home";

function resolveLimits(partial: Partial<SandboxLimits> | undefined): SandboxLimits {
  const limits = { ...DEFAULT_SANDBOX_LIMITS, ...partial };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isFinite(value) || value < 0) throw new ToolInputError(`sandbox limit ${name} must be a non-negative number`);
  }
  return {
    timeoutMs: Math.floor(limits.timeoutMs),
    memoryBytes: Math.floor(limits.memoryBytes),
    maxProcesses: Math.max(1, Math.floor(limits.maxProcesses)),
    outputBytes: Math.floor(limits.outputBytes),
  };
}

/** `prlimit … --` or nothing: RLIMIT_DATA, RLIMIT_NPROC (when it counts only the sandbox) and no core dumps. */
function limitArgs(prlimit: string | null, limits: SandboxLimits, withNproc: boolean): string[] {
  if (!prlimit) return [];
  const args = [prlimit, `--data=${limits.memoryBytes}`, "--core=0"];
  if (withNproc) args.push(`--nproc=${limits.maxProcesses}`);
  return [...args, "--"];
}

async function bwrapArgs(
  options: SandboxOptions,
  cwd: string,
  limits: SandboxLimits,
  env: Record<string, string>,
  inner: string[],
): Promise<string[]> {
  const args = ["--die-with-parent", "--new-session", "--unshare-all"];
  if (options.network) args.push("--share-net");
  // As root, bwrap would otherwise keep every capability inside (enough to remount / read-write).
  args.push("--cap-drop", "ALL");
  args.push("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc");
  args.push("--size", String(Math.max(limits.memoryBytes, 1024 * 1024)), "--tmpfs", "/tmp", "--dir", SANDBOX_HOME);
  // Host daemons' sockets (docker.sock, D-Bus) live under /run; a read-only mount does not stop connect().
  args.push("--tmpfs", "/run");
  if (options.network) {
    const resolv = await realpath("/etc/resolv.conf").catch(() => null);
    if (resolv?.startsWith("/run/")) args.push("--ro-bind", resolv, resolv);
  }
  // A hidden folder may hold the clone (the workspaces root): hide it first, then bind the clone
  // back. A hidden path inside the clone is hidden after the bind.
  const before: string[] = [];
  const after: string[] = [];
  for (const hidden of options.hidePaths ?? defaultHiddenPaths()) {
    const target = await realpath(path.resolve(hidden)).catch(() => null);
    if (target === null || target === "/" || target === cwd) continue;
    const info = await stat(target).catch(() => null);
    if (!info) continue;
    const mount = info.isDirectory() ? ["--tmpfs", target] : ["--ro-bind", "/dev/null", target];
    (target.startsWith(`${cwd}/`) ? after : before).push(...mount);
  }
  // The clone's .git stays read-only: a command must not plant hooks, an fsmonitor, filters or
  // aliases that the app's own git (outside the sandbox) would later run.
  const gitDir = path.join(cwd, ".git");
  const gitInfo = await lstat(gitDir).catch(() => null);
  if (gitInfo) after.unshift("--ro-bind", gitDir, gitDir);
  args.push(...before, "--bind", cwd, cwd, ...after, "--chdir", cwd, "--clearenv");
  for (const [name, value] of Object.entries(env)) args.push("--setenv", name, value);
  return [...args, "--", ...inner];
}

/**
 * Runs a repository's shell command with limits, inside bubblewrap unless the operator set
 * mode `"off"`.
 *
 * In mode `"bwrap"` the command runs in new user, PID, IPC, UTS, cgroup and network namespaces
 * (no network unless `options.network`), with no capabilities, the host filesystem read-only,
 * `cwd` read-write, a private `/tmp` (HOME is `/tmp/home`), a fresh `/dev` and `/proc`, an
 * empty `/run`, {@link SandboxOptions.hidePaths} hidden, and an environment of PATH, HOME,
 * LANG=C.UTF-8, CI=true and the accepted `request.env` only. Limits: wall clock (every process
 * is killed with SIGKILL), memory per process (RLIMIT_DATA), process count (RLIMIT_NPROC in the
 * sandbox's user namespace; as root, where the kernel ignores it, a pids cgroup when one can be
 * created), output per stream. Everything the command started is killed when it ends.
 *
 * In mode `"off"` the command runs on the host with the same allowlisted environment (HOME is
 * a fresh temp folder, removed afterwards), timeout, output cap and RLIMIT_DATA; the process
 * count is limited only through the pids cgroup (as root) — without a user namespace
 * RLIMIT_NPROC would count every process of the app's user — and a process that leaves the
 * process group (`setsid`) survives the kill unless that cgroup exists.
 *
 * `/tmp` and HOME start empty on every call: a set-up step that fills caches should point them
 * into the clone through `request.env` (e.g. `CARGO_HOME`, `GOMODCACHE`, `NPM_CONFIG_CACHE`).
 *
 * @returns the exit status and capped output; a non-zero exit or a timeout is a result, not an error
 * @throws {SandboxUnavailableError} mode `"bwrap"` and bubblewrap (or prlimit) is missing or
 *   failed to set the sandbox up — the command is never run unsandboxed instead
 * @throws {JobAbortedError} `request.signal` aborted (before the start, or during the run, after
 *   every process was killed)
 * @throws {ToolInputError} `cwd` is not a directory, or a limit is not a number
 */
export async function runSandboxed(options: SandboxOptions, request: SandboxRequest): Promise<CommandResult> {
  const limits = resolveLimits(options.limits);
  if (request.signal?.aborted) throw new JobAbortedError(`command not started: ${abortReason(request.signal)}`);
  const cwd = await realpath(request.cwd).catch(() => null);
  if (!cwd || !(await stat(cwd)).isDirectory()) throw new ToolInputError(`working directory ${request.cwd} does not exist`);

  const sandboxed = options.mode !== "off";
  const prlimit = await findPrlimit();
  if (sandboxed && !prlimit) {
    throw new SandboxUnavailableError("prlimit (util-linux) was not found on PATH; it applies the memory and process limits");
  }

  let privateHome: string | null = null;
  let cgroup: string | null = null;
  try {
    cgroup = await createPidsCgroup(limits.maxProcesses);
    let file: string;
    let args: string[];
    let spawnEnv: Record<string, string>;
    if (sandboxed) {
      const env = commandEnv(SANDBOX_HOME, request.env);
      // In a user namespace RLIMIT_NPROC counts only the sandbox's processes.
      const inner = [...limitArgs(prlimit, limits, true), "/bin/sh", "-c", STARTER, request.command];
      file = await findBwrap(options.bwrapPath);
      args = await bwrapArgs(options, cwd, limits, env, inner);
      spawnEnv = { PATH: hostPath() };
    } else {
      privateHome = await mkdtemp(path.join(os.tmpdir(), "mc-sandbox-home-"));
      spawnEnv = commandEnv(privateHome, request.env);
      // Without a user namespace RLIMIT_NPROC would count every process of the app's user.
      const inner = [...limitArgs(prlimit, limits, false), "/bin/sh", "-c", STARTER, request.command];
      file = inner[0]!;
      args = inner.slice(1);
    }
    if (cgroup) {
      args = ["-c", CGROUP_JOIN, "mc-sandbox", path.join(cgroup, "cgroup.procs"), file, ...args];
      file = "/bin/sh";
    }
    return await execute({ file, args, cwd, env: spawnEnv, limits, request, sandboxed, cgroup });
  } finally {
    if (cgroup) await removeCgroup(cgroup);
    if (privateHome) await rm(privateHome, { recursive: true, force: true });
  }
}

function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason.message;
  return typeof reason === "string" ? reason : "aborted";
}

interface Execution {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  limits: SandboxLimits;
  request: SandboxRequest;
  sandboxed: boolean;
  cgroup: string | null;
}

/** How long streams may stay open after the main process exited (a holder that escaped). */
const STREAM_GRACE_MS = 1_000;

async function execute(run: Execution): Promise<CommandResult> {
  const started = performance.now();
  const stdout = new CappedOutput(run.limits.outputBytes);
  const stderr = new CappedOutput(run.limits.outputBytes);
  let reportedStart = false;
  let timedOut = false;
  let aborted = false;

  let child: ChildProcess;
  try {
    child = spawn(run.file, run.args, {
      cwd: run.cwd,
      env: run.env,
      detached: true, // its own process group, killed as a whole
      stdio: ["ignore", "pipe", "pipe", "pipe"],
    });
  } catch (err) {
    throw unavailable(`cannot start ${run.file}: ${err instanceof Error ? err.message : String(err)}`, err);
  }

  const killAll = (): void => {
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // the group is already gone
      }
    }
    if (run.cgroup) void killCgroup(run.cgroup);
  };

  const streams = [child.stdout, child.stderr, child.stdio[3]].filter((s): s is Readable => s !== null && s !== undefined);
  child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
  (child.stdio[3] as Readable | null | undefined)?.on("data", (chunk: Buffer) => {
    if (chunk.toString("latin1").includes(STARTED)) reportedStart = true;
  });
  const streamsClosed = Promise.all(
    streams.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.once("close", () => resolve())))),
  );

  const timer = setTimeout(() => {
    timedOut = true;
    killAll();
  }, run.limits.timeoutMs);
  const onAbort = (): void => {
    aborted = true;
    killAll();
  };
  run.request.signal?.addEventListener("abort", onAbort, { once: true });
  if (run.request.signal?.aborted) onAbort(); // aborted while the sandbox was being prepared

  try {
    const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: Error }>((resolve) => {
      child.once("error", (error) => resolve({ error }));
      child.once("exit", (code, signal) => {
        killAll(); // whatever the command left running in the background
        resolve({ code, signal });
      });
    });
    if ("error" in outcome) {
      killAll();
      streams.forEach((s) => s.destroy());
      throw unavailable(`cannot start ${run.file}: ${outcome.error.message}`, outcome.error);
    }
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([
      streamsClosed,
      new Promise<void>((resolve) => {
        grace = setTimeout(resolve, STREAM_GRACE_MS);
      }),
    ]);
    clearTimeout(grace);
    streams.forEach((s) => s.destroy());

    if (aborted) throw new JobAbortedError(`command killed: ${abortReason(run.request.signal!)}`);
    if (!reportedStart && !timedOut) {
      const detail = redactSecrets(stderr.text()).trim().slice(0, 1_000);
      throw unavailable(`${run.sandboxed ? "bwrap" : "the command wrapper"} exited with ${outcome.code ?? outcome.signal} before the command started${detail ? `: ${detail}` : ""}`);
    }
    return {
      command: run.request.command,
      exitCode: outcome.code,
      signal: outcome.signal,
      timedOut,
      durationMs: Math.round(performance.now() - started),
      stdout: stdout.text(),
      stderr: stderr.text(),
      truncated: stdout.truncated || stderr.truncated,
      sandboxed: run.sandboxed,
    };
  } finally {
    clearTimeout(timer);
    run.request.signal?.removeEventListener("abort", onAbort);
  }
}

function unavailable(reason: string, cause?: unknown): Error {
  return new SandboxUnavailableError(redactSecrets(reason), cause === undefined ? {} : { cause });
}

/**
 * Runs `true` in the sandbox once, e.g. at start-up, to find out whether commands can run.
 * Mode `"off"` is always ok.
 *
 * @returns `{ ok: true }`, or `{ ok: false, reason }` with bwrap's error; never throws
 */
export async function checkSandbox(options: SandboxOptions): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (options.mode === "off") return { ok: true };
  let dir: string | null = null;
  try {
    dir = await mkdtemp(path.join(os.tmpdir(), "mc-sandbox-check-"));
    const result = await runSandboxed(
      { ...options, limits: { ...options.limits, timeoutMs: Math.min(options.limits?.timeoutMs ?? 30_000, 30_000) } },
      { cwd: dir, command: "true" },
    );
    if (result.exitCode === 0) return { ok: true };
    const detail = redactSecrets(result.stderr).trim().slice(0, 500);
    return { ok: false, reason: `\`true\` ${result.timedOut ? "timed out" : `exited with ${result.exitCode ?? result.signal}`} in the sandbox${detail ? `: ${detail}` : ""}` };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Reporting

const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;

/** Removes ANSI colour and cursor codes. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

/** Characters kept per stream in {@link formatCommandResult} (GitHub allows 65,535 in a check run summary). */
const TAIL_CHARS = 12_000;

function fence(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  return "`".repeat(Math.max(3, longest + 1));
}

function inlineCode(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = "`".repeat(longest + 1);
  return `${ticks} ${text} ${ticks}`;
}

function tail(text: string, lines: number): { text: string; omitted: number } {
  const all = text.replace(/\r\n?/g, "\n").replace(/\n+$/, "").split("\n");
  let kept = all.slice(-Math.max(1, lines)).join("\n");
  if (kept.length > TAIL_CHARS) kept = `…${kept.slice(-TAIL_CHARS)}`;
  return { text: kept, omitted: Math.max(0, all.length - Math.max(1, lines)) };
}

function formatDuration(ms: number): string {
  return ms < 1_000 ? `${ms} ms` : `${(ms / 1_000).toFixed(1)} s`;
}

/**
 * A Markdown summary of a command's result for a check run or a tool result: the command, how
 * it ended, its duration, and the last `tailLines` lines of each non-empty stream in fenced
 * blocks. ANSI codes are stripped, token-like strings redacted, and fences are longer than any
 * backtick run in the text, so the output cannot break out of its block.
 *
 * @param tailLines - lines kept from the end of each stream (default 60)
 */
export function formatCommandResult(result: CommandResult, tailLines = 60): string {
  const command = redactSecrets(result.command).trim();
  const shown = command.length > 500 ? `${command.slice(0, 500)}…` : command;
  const lines: string[] = [];
  if (shown.includes("\n")) {
    const f = fence(shown);
    lines.push("**Command:**", "", `${f}sh`, shown, f);
  } else {
    lines.push(`**Command:** ${inlineCode(shown)}`);
  }
  const ending = result.timedOut
    ? `timed out after ${formatDuration(result.durationMs)} (killed)`
    : result.exitCode !== null
      ? `exit code ${result.exitCode}`
      : `killed by ${result.signal ?? "a signal"}`;
  const facts = [ending, formatDuration(result.durationMs), result.sandboxed ? "sandboxed" : "not sandboxed"];
  if (result.truncated) facts.push("output truncated");
  lines.push("", `**Result:** ${result.exitCode === 0 && !result.timedOut ? "✅" : "❌"} ${facts.join(" · ")}`);
  for (const [name, text] of [
    ["stdout", result.stdout],
    ["stderr", result.stderr],
  ] as const) {
    const clean = redactSecrets(stripAnsi(text));
    if (clean.trim() === "") continue;
    const t = tail(clean, tailLines);
    const f = fence(t.text);
    lines.push("", `**${name}**${t.omitted > 0 ? ` (last ${Math.max(1, tailLines)} lines)` : ""}:`, "", `${f}text`, t.text, f);
  }
  return lines.join("\n");
}
