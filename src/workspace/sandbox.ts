import { spawn, type ChildProcess } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import { access, chmod, chown, lstat, mkdtemp, readlink, realpath, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";

import { JobAbortedError, SandboxUnavailableError, ToolInputError } from "../domain/errors.js";
import { redactSecrets } from "../domain/redact.js";
import { cgroupSupport, createCommandCgroup, type CommandCgroup } from "./sandbox/cgroup.js";
import { watchDiskUsage } from "./sandbox/disk-usage.js";

// Every command the app runs from a repository (its tests, its build, the Coder's
// run_command) goes through runSandboxed — and so do the app's own git commands on a clone's
// work tree (workspace/git.ts), so that nothing a command left in the clone runs on the host.

/** Resource limits of one sandboxed command. */
export interface SandboxLimits {
  /** Wall-clock limit in milliseconds; at expiry every process of the command is killed. */
  timeoutMs: number;
  /**
   * Total memory of the command in bytes — every process, plus what it writes to the
   * sandbox's tmpfs folders (`/tmp`, `/dev/shm`, `/run`) — enforced by a cgroup (`memory.max`,
   * or `memory.limit_in_bytes` on cgroup v1), without swap.
   */
  memoryBytes: number;
  /** CPU time in cores (cgroup `cpu.max`, or `cpu.cfs_quota_us` on v1). */
  cpus: number;
  /** Most tasks (processes and threads) alive at once inside the sandbox (cgroup `pids.max`). */
  maxProcesses: number;
  /** Most bytes kept per stream (stdout, stderr); the rest is read and dropped. */
  outputBytes: number;
  /**
   * Bytes the filesystem holding the clone may lose while the command runs (`statfs`, every
   * 250 ms); the command is killed past it. Counts whatever took the space — deep trees, files
   * deleted but open — and errs towards stopping when other writers share the filesystem.
   */
  diskBytes: number;
  /** Files (inodes) that filesystem may lose while the command runs; killed past it. */
  diskInodes: number;
  /** Size of the private `/tmp` (HOME lives there) in bytes. */
  tmpBytes: number;
}

/**
 * Defaults: 10 minutes, 2 GiB in total, 1 core, 1024 tasks (threads count: one Node.js process
 * alone has about ten), 1 MiB per stream, 5 GiB and 500,000 files of disk, a 512 MiB `/tmp`.
 */
export const DEFAULT_SANDBOX_LIMITS: Readonly<SandboxLimits> = Object.freeze({
  timeoutMs: 10 * 60_000,
  memoryBytes: 2 * 1024 ** 3,
  cpus: 1,
  maxProcesses: 1024,
  outputBytes: 1024 ** 2,
  diskBytes: 5 * 1024 ** 3,
  diskInodes: 500_000,
  tmpBytes: 512 * 1024 ** 2,
});

/** Size of `/dev/shm` and `/run` inside the sandbox, in bytes. */
const SHM_BYTES = 64 * 1024 ** 2;
const RUN_BYTES = 1024 ** 2;
/** How often the disk the command takes is measured while it runs, in milliseconds. */
const DISK_POLL_MS = 250;

/** The network a command gets. */
export type SandboxNetwork =
  | { mode: "none" }
  /**
   * Only through the app's egress proxy (`sandbox/egress-proxy.ts`): the folder holding its Unix
   * socket is bound read-only into the sandbox, `env` points the command's proxy variables at
   * the forwarder, and the command line already starts that forwarder (`egressShellCommand`).
   */
  | { mode: "proxy"; socketPath: string; env: Record<string, string> };

/** How commands are isolated. Set by the operator's server environment only. */
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
  /** Overrides of {@link DEFAULT_SANDBOX_LIMITS}. */
  limits?: Partial<SandboxLimits>;
  /**
   * `"required"` (default): a command runs only when its cgroup limits (memory, CPU, processes)
   * can be applied; otherwise it is refused with {@link SandboxUnavailableError} naming the
   * missing piece. `"off"`: the operator accepts per-process rlimits instead
   * (`SANDBOX_CGROUPS=off`) — memory then holds per process only, and CPU is not limited.
   */
  cgroups?: "required" | "off";
  /**
   * Absolute paths the command must not see even where they lie inside a bound folder
   * (directories become an empty tmpfs, files read as empty) — the composition root passes the
   * app's `.env`, database folder, workspaces root and key files. Default: none (nothing of the
   * host outside the system folders and the clone is bound anyway). The command's own `cwd`
   * stays visible.
   */
  hidePaths?: string[];
  /**
   * Extra host folders bound read-only (`SANDBOX_READONLY_PATHS`), e.g. a toolchain in
   * `/opt/hostedtoolcache` or `/opt/node`. `/usr`, `/bin`, `/sbin`, `/lib*` and `/etc` (without
   * its secrets) are always there.
   */
  readonlyPaths?: string[];
  /**
   * The host uid and gid commands run as when the app runs as root (`SANDBOX_UID`,
   * `SANDBOX_GID`; default 65534, `nobody`). As any other user, commands run as that user.
   */
  uid?: number;
  gid?: number;
}

/** A host folder bound into the sandbox at the same path (app-internal requests only). */
export interface SandboxBind {
  path: string;
  writable: boolean;
}

/** One command to run. */
export interface SandboxRequest {
  /** Working directory (the clone); the only host folder the command can write. Must exist. */
  cwd: string;
  /** A shell command line, run with `sh -c` (the repository's own test or build command). */
  command?: string;
  /** Or an argument vector, run without a shell (the app's own git). */
  argv?: readonly string[];
  /**
   * Extra environment variables. Names must match `^[A-Z][A-Z0-9_]{0,63}$` and must not look
   * like a credential (TOKEN, KEY, SECRET, PASSWORD, PRIVATE, CREDENTIAL, AUTH, …); values must
   * not look like a token. Anything else is dropped (see {@link filterCommandEnv}).
   */
  env?: Record<string, string>;
  /** Network for this command; default none. Only the operator-allowed set-up step gets the proxy. */
  network?: SandboxNetwork;
  /** Aborting kills every process of the command; the call then rejects with {@link JobAbortedError}. */
  signal?: AbortSignal;
  /**
   * For the app's own git commands only, never for repository commands: variables set by the
   * app (author identity, GIT_CONFIG_*), passed without {@link filterCommandEnv}.
   */
  internalEnv?: Record<string, string>;
  /** For the app's own git commands only: `cwd/.git` writable (it is read-only for every other command). */
  gitWritable?: boolean;
  /** For the app's own git commands only: more host folders at the same path (a mirror, read-only). */
  binds?: readonly SandboxBind[];
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
  /** The resource limit the command ran into, if any (`"timeout"` also sets `timedOut`). */
  limitExceeded: "timeout" | "memory" | "processes" | "disk" | null;
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
/** Set by the sandbox itself, loader hooks, or proxy settings (only the app sets those). */
const RESERVED_NAME = /^(PATH|HOME|LANG|CI|TMPDIR|LD_[A-Z0-9_]*|BASH_ENV|ENV|GIT_[A-Z0-9_]*|(HTTPS?|ALL|NO)_PROXY|NPM_CONFIG_[A-Z_]*PROXY)$/;

/**
 * Splits requested environment variables into those a command may get and those refused:
 * names outside `^[A-Z][A-Z0-9_]{0,63}$`, credential-like names (containing TOKEN, KEY, SECRET,
 * PASSWORD, PRIVATE, CREDENTIAL, AUTH, …), names the sandbox sets itself (PATH, HOME, LANG, CI,
 * TMPDIR), loader hooks (LD_*), git's own (GIT_*) and proxy settings, and values that contain
 * NUL or look like a token.
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
function commandEnv(home: string, request: SandboxRequest): Record<string, string> {
  return {
    ...filterCommandEnv(request.env).env,
    ...(request.network?.mode === "proxy" ? request.network.env : {}),
    ...request.internalEnv,
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
 * Files and folders of `/etc` that hold secrets or say how to become root; masked in the
 * sandbox (folders as an empty tmpfs, files as empty).
 */
export const ETC_SECRETS: readonly string[] = [
  "shadow",
  "shadow-",
  "gshadow",
  "gshadow-",
  "sudoers",
  "sudoers.d",
  "ssh",
  "ssl/private",
  "security/opasswd",
  "krb5.keytab",
  "docker",
  "containerd",
  "kubernetes",
  "netrc",
  "wireguard",
  "NetworkManager/system-connections",
  "ipsec.secrets",
  "mission-control",
  "machine-id",
];

/** Top-level folders bound read-only (or re-created as the same symlink, on merged-/usr systems). */
const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

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
    throw new SandboxUnavailableError(`bubblewrap was not found at ${wanted} (install the Debian package bubblewrap)`);
  }
  const found = await findOnPath(wanted);
  if (!found) throw new SandboxUnavailableError(`bubblewrap (${wanted}) was not found on PATH (install it: apt-get install -y bubblewrap)`);
  return found;
}

const helpers = new Map<string, Promise<string | null>>();
function findHelper(name: string): Promise<string | null> {
  let found = helpers.get(name);
  if (!found) {
    found = findOnPath(name);
    helpers.set(name, found);
  }
  return found;
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/**
 * The host uid and gid a sandboxed command runs as, and so the owner a clone's files must
 * have: `options.uid`/`gid` (default 65534) when the app runs as root in mode `"bwrap"`,
 * otherwise `null` (the app's own user).
 */
export function sandboxOwner(options: Pick<SandboxOptions, "mode" | "uid" | "gid">): { uid: number; gid: number } | null {
  if (options.mode === "off" || !isRoot()) return null;
  return { uid: options.uid ?? 65534, gid: options.gid ?? options.uid ?? 65534 };
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
/** The same for an argument vector. */
const STARTER_ARGV = `printf ${STARTED} >&3 && exec 3>&- && exec "$@"`;
/** Moves itself into each cgroup whose `cgroup.procs` is listed before `--`, then execs the rest. */
const CGROUP_JOIN = `while [ "$1" != "--" ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"`;
/** Home folder inside the sandbox (on its private /tmp). */
const SANDBOX_HOME = "/tmp/home";
/** The uid and gid commands see for themselves inside the sandbox. */
const INNER_ID = "1000";

function resolveLimits(partial: Partial<SandboxLimits> | undefined): SandboxLimits {
  const limits = { ...DEFAULT_SANDBOX_LIMITS, ...partial };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isFinite(value) || value < 0) throw new ToolInputError(`sandbox limit ${name} must be a non-negative number`);
  }
  return {
    timeoutMs: Math.floor(limits.timeoutMs),
    memoryBytes: Math.floor(limits.memoryBytes),
    cpus: Math.max(0.01, limits.cpus),
    maxProcesses: Math.max(1, Math.floor(limits.maxProcesses)),
    outputBytes: Math.floor(limits.outputBytes),
    diskBytes: Math.floor(limits.diskBytes),
    diskInodes: Math.floor(limits.diskInodes),
    tmpBytes: Math.max(1024 ** 2, Math.floor(limits.tmpBytes)),
  };
}

/**
 * `prlimit … --`: no core dumps, and — without cgroups — RLIMIT_DATA per process and
 * RLIMIT_NPROC (when it counts only the sandbox's processes).
 */
function limitArgs(prlimit: string, limits: SandboxLimits, perProcess: boolean, withNproc: boolean): string[] {
  const args = [prlimit, "--core=0"];
  if (perProcess) args.push(`--data=${limits.memoryBytes}`);
  if (withNproc) args.push(`--nproc=${limits.maxProcesses}`);
  return [...args, "--"];
}

/** `--ro-bind` (or `--symlink`, for a merged-/usr link) for each system folder that exists. */
async function systemMounts(): Promise<string[]> {
  const args: string[] = [];
  for (const dir of SYSTEM_DIRS) {
    const info = await lstat(dir).catch(() => null);
    if (!info) continue;
    if (info.isSymbolicLink()) args.push("--symlink", await readlink(dir), dir);
    else if (info.isDirectory()) args.push("--ro-bind", dir, dir);
  }
  return args;
}

let emptyFilePath: Promise<string> | undefined;
/** An empty, read-only regular file bound over hidden files (a device node would not open on bwrap's `nodev` binds). */
function emptyFile(): Promise<string> {
  emptyFilePath ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "mc-sandbox-empty-"));
    const file = path.join(dir, "empty");
    await writeFile(file, "", { mode: 0o444 });
    await chmod(dir, 0o755);
    return file;
  })();
  return emptyFilePath;
}

async function mask(target: string, info: { isDirectory(): boolean }): Promise<string[]> {
  return info.isDirectory() ? ["--size", "4096", "--tmpfs", target, "--remount-ro", target] : ["--ro-bind", await emptyFile(), target];
}

async function existing(candidate: string): Promise<{ target: string; isDirectory(): boolean } | null> {
  const target = await realpath(path.resolve(candidate)).catch(() => null);
  if (target === null || target === "/") return null;
  const info = await stat(target).catch(() => null);
  return info ? { target, isDirectory: () => info.isDirectory() } : null;
}

async function bwrapArgs(
  options: SandboxOptions,
  cwd: string,
  limits: SandboxLimits,
  env: Record<string, string>,
  request: SandboxRequest,
  inner: string[],
): Promise<string[]> {
  const owner = sandboxOwner(options);
  const args = ["--die-with-parent", "--new-session"];
  if (owner) {
    // As root: bwrap sets the mounts up with root's access (the clone's parents may be private),
    // keeps only the capabilities to change uid, and the command starts through setpriv as the
    // unprivileged host user — no user namespace, so host files keep their real owners.
    args.push("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try");
    args.push("--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP");
  } else {
    // As any other user: a user namespace, in which the command is an ordinary uid without capabilities.
    args.push("--unshare-all", "--uid", INNER_ID, "--gid", INNER_ID, "--cap-drop", "ALL");
  }
  // Only what commands need of the host: the system folders and /etc without its secrets.
  args.push(...(await systemMounts()), "--ro-bind", "/etc", "/etc");
  for (const name of ETC_SECRETS) {
    const found = await existing(path.join("/etc", name));
    if (found?.target.startsWith("/etc/")) args.push(...(await mask(found.target, found)));
  }
  const hidden = await Promise.all((options.hidePaths ?? []).map(existing));
  const bound: string[] = [];
  for (const extra of options.readonlyPaths ?? []) {
    const found = await existing(extra);
    if (!found) continue;
    args.push("--ro-bind", found.target, found.target);
    bound.push(found.target);
  }
  // Every tmpfs is sized; their pages also count against the cgroup's memory limit.
  args.push("--dev", "/dev", "--perms", "1777", "--size", String(SHM_BYTES), "--tmpfs", "/dev/shm", "--remount-ro", "/dev");
  args.push("--proc", "/proc");
  args.push("--perms", "1777", "--size", String(limits.tmpBytes), "--tmpfs", "/tmp", "--perms", "1777", "--dir", SANDBOX_HOME);
  args.push("--perms", "0755", "--size", String(RUN_BYTES), "--tmpfs", "/run");
  if (request.network?.mode === "proxy") {
    const socketDir = path.dirname(request.network.socketPath);
    args.push("--ro-bind", socketDir, socketDir);
  }
  // Parent folders of the binds are made 0755 (bwrap would copy a private parent's mode, and the
  // unprivileged user could not reach the clone).
  const made = new Set<string>();
  const parents = (target: string): string[] => {
    const out: string[] = [];
    for (let dir = path.dirname(target); dir !== "/" && !["/tmp", "/run", "/dev"].includes(dir); dir = path.dirname(dir)) out.unshift(dir);
    return out.filter((dir) => !made.has(dir) && (made.add(dir), true)).flatMap((dir) => ["--perms", "0755", "--dir", dir]);
  };
  for (const bind of request.binds ?? []) args.push(...parents(bind.path), bind.writable ? "--bind" : "--ro-bind", bind.path, bind.path);
  args.push(...parents(cwd), "--bind", cwd, cwd);
  // Hidden paths inside anything bound (an operator's read-only folder, the clone).
  for (const found of hidden) {
    if (!found || found.target === cwd || `${cwd}/`.startsWith(`${found.target}/`)) continue;
    const inside = [cwd, ...bound].some((root) => found.target.startsWith(`${root}/`));
    if (inside) args.push(...(await mask(found.target, found)));
  }
  // The clone's .git stays read-only for repository commands: they must not plant hooks, filters
  // or config that the app's own (sandboxed) git would later run.
  const gitDir = path.join(cwd, ".git");
  if (!request.gitWritable && (await lstat(gitDir).catch(() => null))) args.push("--ro-bind", gitDir, gitDir);
  // Nothing else is writable: the sandbox's own root folder is made read-only last.
  args.push("--remount-ro", "/", "--clearenv");
  // As root, bwrap itself may not enter the sandbox user's folder: the shell after setpriv does.
  if (!owner) args.push("--chdir", cwd);
  for (const [name, value] of Object.entries(env)) args.push("--setenv", name, value);
  const drop = owner
    ? [
        "/usr/bin/setpriv",
        `--reuid=${owner.uid}`,
        `--regid=${owner.gid}`,
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        "/bin/sh",
        "-c",
        'cd -- "$0" && unset OLDPWD && exec "$@"',
        cwd,
      ]
    : [];
  return [...args, "--", ...drop, ...inner];
}

/**
 * Runs a repository's command with limits, inside bubblewrap unless the operator set mode `"off"`.
 *
 * In mode `"bwrap"` the command runs in new user, PID, IPC, UTS, cgroup and network namespaces
 * (no network; with `request.network` only the app's egress proxy), with no capabilities, as an
 * unprivileged user (when the app runs as root, as host uid {@link SandboxOptions.uid}, through
 * `setpriv`), and sees only `/usr`, `/bin`, `/sbin`, `/lib*`, `/etc` without
 * {@link ETC_SECRETS}, the operator's {@link SandboxOptions.readonlyPaths} (all read-only),
 * `cwd` read-write (its `.git` read-only), a private sized `/tmp` (HOME is `/tmp/home`),
 * `/dev/shm` and `/run`, and a fresh `/dev` and `/proc`. The environment is PATH, HOME,
 * LANG=C.UTF-8, CI=true and the accepted `request.env` only.
 *
 * Limits: wall clock (every process is killed with SIGKILL); total memory including tmpfs, CPU
 * and process count through a cgroup per command (`SANDBOX_CGROUPS=off` falls back to
 * per-process rlimits); the disk space and files the command takes, measured every 250 ms; output per stream.
 * Everything the command started is killed when it ends.
 *
 * In mode `"off"` the command runs on the host with the same allowlisted environment (HOME is
 * a fresh temp folder, removed afterwards), limits and output cap — and nothing else.
 *
 * @returns the exit status and capped output; a non-zero exit, a timeout or a limit is a result, not an error
 * @throws {SandboxUnavailableError} bubblewrap, prlimit, setpriv or a cgroup controller is
 *   missing, or bwrap failed to set the sandbox up — naming the missing piece; the command is
 *   never run with weaker isolation instead
 * @throws {JobAbortedError} `request.signal` aborted (before the start, or during the run, after
 *   every process was killed)
 * @throws {ToolInputError} `cwd` is not a directory, no command was given, or a limit is not a number
 */
export async function runSandboxed(options: SandboxOptions, request: SandboxRequest): Promise<CommandResult> {
  const limits = resolveLimits(options.limits);
  if (request.signal?.aborted) throw new JobAbortedError(`command not started: ${abortReason(request.signal)}`);
  if (request.command === undefined && !request.argv?.length) throw new ToolInputError("no command given");
  const cwd = await realpath(request.cwd).catch(() => null);
  if (!cwd || !(await stat(cwd)).isDirectory()) throw new ToolInputError(`working directory ${request.cwd} does not exist`);

  const sandboxed = options.mode !== "off";
  const useCgroups = options.cgroups !== "off";
  const prlimit = await findHelper("prlimit");
  if (!prlimit) throw new SandboxUnavailableError("prlimit (util-linux) was not found on PATH; it sets the per-process limits");
  const owner = sandboxOwner(options);
  if (owner && !(await findHelper("setpriv")))
    throw new SandboxUnavailableError("setpriv (util-linux) was not found on PATH; it drops root inside the sandbox");
  if (request.network?.mode === "proxy" && !sandboxed) throw new SandboxUnavailableError("the egress proxy needs the bubblewrap sandbox (SANDBOX=bwrap)");

  let privateHome: string | null = null;
  let cgroup: CommandCgroup | null = null;
  try {
    if (useCgroups) cgroup = await createCommandCgroup(limits);
    const shown = request.command ?? request.argv!.join(" ");
    const starter =
      request.command === undefined ? ["/bin/sh", "-c", STARTER_ARGV, "mc-sandbox", ...request.argv!] : ["/bin/sh", "-c", STARTER, request.command];
    // Without cgroups, RLIMIT_NPROC counts only the sandbox's processes in its user namespace
    // (not for uid 0, which the kernel exempts, nor in mode off: it would count the app's own).
    const nproc = !useCgroups && sandboxed && !isRoot();
    const inner = [...limitArgs(prlimit, limits, !useCgroups, nproc), ...starter];
    let file: string;
    let args: string[];
    let spawnEnv: Record<string, string>;
    if (sandboxed) {
      file = await findBwrap(options.bwrapPath);
      args = await bwrapArgs(options, cwd, limits, commandEnv(SANDBOX_HOME, request), request, inner);
      spawnEnv = { PATH: hostPath() };
    } else {
      privateHome = await mkdtemp(path.join(os.tmpdir(), "mc-sandbox-home-"));
      spawnEnv = commandEnv(privateHome, request);
      file = inner[0]!;
      args = inner.slice(1);
    }
    if (cgroup) {
      args = ["-c", CGROUP_JOIN, "mc-sandbox", ...cgroup.procsFiles, "--", file, ...args];
      file = "/bin/sh";
    }
    return await execute({ file, args, cwd, env: spawnEnv, limits, request, sandboxed, cgroup, shown });
  } finally {
    if (cgroup) await cgroup.remove();
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
  cgroup: CommandCgroup | null;
  /** The command as reported. */
  shown: string;
}

/** How long streams may stay open after the main process exited (a holder that escaped). */
const STREAM_GRACE_MS = 1_000;

async function execute(run: Execution): Promise<CommandResult> {
  const started = performance.now();
  const stdout = new CappedOutput(run.limits.outputBytes);
  const stderr = new CappedOutput(run.limits.outputBytes);
  let reportedStart = false;
  let timedOut = false;
  let diskExceeded = false;
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
    if (run.cgroup) void run.cgroup.kill();
  };

  const streams = [child.stdout, child.stderr, child.stdio[3]].filter((s): s is Readable => s !== null && s !== undefined);
  child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
  (child.stdio[3] as Readable | null | undefined)?.on("data", (chunk: Buffer) => {
    if (chunk.toString("latin1").includes(STARTED)) reportedStart = true;
  });
  const streamsClosed = Promise.all(streams.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.once("close", () => resolve())))));

  const timer = setTimeout(() => {
    timedOut = true;
    killAll();
  }, run.limits.timeoutMs);
  // The app's own git commands are short and only write what git fetched; repository commands are measured.
  const stopDiskWatch = run.request.gitWritable
    ? () => undefined
    : watchDiskUsage(run.cwd, { bytes: run.limits.diskBytes, inodes: run.limits.diskInodes }, DISK_POLL_MS, () => {
        diskExceeded = true;
        killAll();
      });
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
    stopDiskWatch();
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
      throw unavailable(
        `${run.sandboxed ? "bwrap" : "the command wrapper"} exited with ${outcome.code ?? outcome.signal} before the command started${detail ? `: ${detail}` : ""}`,
      );
    }
    const events = run.cgroup ? await run.cgroup.events() : { oomKills: 0, pidsRefused: 0 };
    const limitExceeded = timedOut ? "timeout" : diskExceeded ? "disk" : events.oomKills > 0 ? "memory" : events.pidsRefused > 0 ? "processes" : null;
    const notes: Record<string, string> = {
      timeout: `[mission-control: killed at the time limit of ${run.limits.timeoutMs} ms]`,
      disk: `[mission-control: killed at the disk limit: the command took more than ${run.limits.diskBytes} bytes or ${run.limits.diskInodes} files]`,
      memory: `[mission-control: a process was killed at the memory limit of ${run.limits.memoryBytes} bytes]`,
      processes: `[mission-control: the process limit of ${run.limits.maxProcesses} refused new processes]`,
    };
    const errText = stderr.text();
    return {
      command: run.shown,
      exitCode: outcome.code,
      signal: outcome.signal,
      timedOut,
      limitExceeded,
      durationMs: Math.round(performance.now() - started),
      stdout: stdout.text(),
      stderr: limitExceeded ? `${errText}${errText && !errText.endsWith("\n") ? "\n" : ""}${notes[limitExceeded]}\n` : errText,
      truncated: stdout.truncated || stderr.truncated,
      sandboxed: run.sandboxed,
    };
  } finally {
    stopDiskWatch();
    clearTimeout(timer);
    run.request.signal?.removeEventListener("abort", onAbort);
  }
}

function unavailable(reason: string, cause?: unknown): Error {
  return new SandboxUnavailableError(redactSecrets(reason), cause === undefined ? {} : { cause });
}

/** Which isolation is in force, for the start-up log line and `/healthz`. */
export interface SandboxReport {
  ok: boolean;
  mode: "bwrap" | "off";
  /** Why commands are refused, when `ok` is false. */
  reason?: string;
  /** The limits that hold, e.g. `["memory (v1)", "cpu (v1)", "pids (v1)", "disk", "timeout", "output"]`. */
  limits: string[];
  /** The host user commands run as. */
  user: string;
  readonlyPaths: string[];
}

/**
 * Runs `true` in the sandbox once, e.g. at start-up, to find out whether commands can run.
 * Mode `"off"` is always ok.
 *
 * @param dir - a folder to run in; default a new temp folder. Use one beside the workspaces,
 *   so the sandbox user's access to them is checked too.
 * @returns `{ ok: true }`, or `{ ok: false, reason }` with bwrap's error; never throws
 */
export async function checkSandbox(options: SandboxOptions, dir?: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (options.mode === "off") return { ok: true };
  let made: string | null = null;
  try {
    if (!dir) made = await mkdtemp(path.join(os.tmpdir(), "mc-sandbox-check-"));
    const cwd = dir ?? made!;
    const owner = sandboxOwner(options);
    if (owner && made) await chown(made, owner.uid, owner.gid);
    const result = await runSandboxed(
      { ...options, limits: { ...options.limits, timeoutMs: Math.min(options.limits?.timeoutMs ?? 30_000, 30_000) } },
      { cwd, command: "true" },
    );
    if (result.exitCode === 0) return { ok: true };
    const detail = redactSecrets(result.stderr).trim().slice(0, 500);
    return {
      ok: false,
      reason: `\`true\` ${result.timedOut ? "timed out" : `exited with ${result.exitCode ?? result.signal}`} in the sandbox${detail ? `: ${detail}` : ""}`,
    };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  } finally {
    if (made) await rm(made, { recursive: true, force: true });
  }
}

/**
 * What isolation and which limits are in force with `options`: runs {@link checkSandbox} and
 * probes the cgroup controllers.
 *
 * @returns a report for the start-up log and `/healthz`; never throws
 */
export async function describeSandbox(options: SandboxOptions, dir?: string): Promise<SandboxReport> {
  const owner = sandboxOwner(options);
  const user = owner ? `uid ${owner.uid}` : `the app's user (uid ${process.getuid?.() ?? "?"})`;
  const check = await checkSandbox(options, dir);
  const limits = ["timeout", "output"];
  let reason = check.ok ? undefined : check.reason;
  if (options.cgroups === "off") {
    limits.push("memory per process (rlimit)");
  } else {
    const cgroups = await cgroupSupport();
    if (cgroups.ok) limits.push(...cgroups.summary.split(", "));
    else reason ??= `resource limits cannot be applied: ${cgroups.reason}`;
  }
  if (options.mode !== "off") limits.push("disk", "tmpfs sizes");
  return { ok: reason === undefined, mode: options.mode, ...(reason ? { reason } : {}), limits, user, readonlyPaths: options.readonlyPaths ?? [] };
}
