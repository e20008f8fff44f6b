import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { access, mkdir, readFile, readdir, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";

import { SandboxUnavailableError } from "../../domain/errors.js";

// One control group per sandboxed command, holding its total memory (tmpfs pages included:
// they are charged to the cgroup of the process that wrote them), CPU time and process count.
// cgroup v2 (memory.max, cpu.max, pids.max) and the v1 controllers of hybrid hosts
// (memory.limit_in_bytes, cpu.cfs_quota_us, pids.max) are both supported: the kernel's
// documentation is Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/*.rst.

/** The limits a command's control group enforces. */
export interface CgroupLimits {
  /** Total memory of every process of the command plus what it wrote to tmpfs, in bytes (no swap). */
  memoryBytes: number;
  /** CPU time, in cores (1.5 = one and a half cores' worth per period). */
  cpus: number;
  /** Most tasks (processes and threads) alive at once. */
  maxProcesses: number;
}

/** The controllers a command needs. */
export const CGROUP_CONTROLLERS = ["memory", "cpu", "pids"] as const;
export type CgroupController = (typeof CGROUP_CONTROLLERS)[number];

/** Where each controller lives for this process. */
interface ControllerHome {
  controller: CgroupController;
  version: 1 | 2;
  /** This process's own cgroup folder in that hierarchy; command cgroups are made below it. */
  parent: string;
}

/** What the host offers, found once. */
export type CgroupSupport = { ok: true; homes: readonly ControllerHome[]; summary: string } | { ok: false; reason: string };

/** A command's control group(s): one folder in v2, one per controller in v1. */
export interface CommandCgroup {
  /** `cgroup.procs` files the command's first process writes its pid to before it execs. */
  readonly procsFiles: readonly string[];
  /** SIGKILLs every process in the group (v2 `cgroup.kill`, else one by one). */
  kill(): Promise<void>;
  /** Which limits the command ran into. */
  events(): Promise<{ oomKills: number; pidsRefused: number }>;
  /** Kills what is left and removes the folders. Never throws. */
  remove(): Promise<void>;
}

interface Mount {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

function parseMounts(text: string): Mount[] {
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [pre = "", post = ""] = line.split(" - ");
      const fields = pre.split(" ");
      const [fsType = "", , superOptions = ""] = post.split(" ");
      return { root: fields[3] ?? "", mountPoint: fields[4] ?? "", fsType, superOptions: superOptions.split(",") };
    });
}

function joinCgroup(mount: Mount, cgroupPath: string): string {
  const relative = mount.root !== "/" && cgroupPath.startsWith(mount.root) ? cgroupPath.slice(mount.root.length) : cgroupPath;
  return path.join(mount.mountPoint, relative);
}

async function writable(dir: string): Promise<boolean> {
  return access(dir, fsConstants.W_OK).then(
    () => true,
    () => false,
  );
}

async function readWords(file: string): Promise<string[]> {
  return (await readFile(file, "utf8").catch(() => "")).split(/\s+/).filter(Boolean);
}

/**
 * In cgroup v2 a folder's children get a controller only when the folder lists it in
 * `cgroup.subtree_control`, and a folder with processes of its own cannot do that ("no internal
 * processes"). When this process's cgroup has processes, they move to a leaf `mission-control`
 * below it first — what container runtimes do with a delegated cgroup.
 */
async function enableV2Controllers(dir: string, wanted: readonly CgroupController[]): Promise<string | null> {
  const enabled = await readWords(path.join(dir, "cgroup.subtree_control"));
  const missing = wanted.filter((c) => !enabled.includes(c));
  if (missing.length === 0) return null;
  const request = missing.map((c) => `+${c}`).join(" ");
  try {
    await writeFile(path.join(dir, "cgroup.subtree_control"), request);
    return null;
  } catch {
    // Most likely EBUSY: processes in this folder. Move them to a leaf and try again.
  }
  try {
    const leaf = path.join(dir, "mission-control");
    await mkdir(leaf, { recursive: true });
    for (const pid of (await readFile(path.join(dir, "cgroup.procs"), "utf8")).split("\n").filter(Boolean)) {
      await writeFile(path.join(leaf, "cgroup.procs"), pid).catch(() => undefined);
    }
    await writeFile(path.join(dir, "cgroup.subtree_control"), request);
    return null;
  } catch (err) {
    return `cannot enable ${missing.join(", ")} for child cgroups of ${dir} (${err instanceof Error ? err.message : String(err)})`;
  }
}

/**
 * Finds, for each of memory, cpu and pids, a cgroup folder this process may create children in:
 * the v1 hierarchy that carries the controller when there is one (hybrid hosts), else the v2
 * hierarchy.
 *
 * @returns `{ ok: false, reason }` naming the missing controller or permission; never throws
 */
async function probeCgroups(): Promise<CgroupSupport> {
  let membership: string[];
  let mounts: Mount[];
  try {
    membership = (await readFile("/proc/self/cgroup", "utf8")).split("\n").filter(Boolean);
    mounts = parseMounts(await readFile("/proc/self/mountinfo", "utf8"));
  } catch (err) {
    return { ok: false, reason: `cannot read /proc/self/cgroup (${err instanceof Error ? err.message : String(err)})` };
  }
  const homes: ControllerHome[] = [];
  const problems: string[] = [];
  const v2Line = membership.find((l) => l.startsWith("0::"));
  const v2Mount = mounts.find((m) => m.fsType === "cgroup2");
  const v2Dir = v2Line && v2Mount ? joinCgroup(v2Mount, v2Line.slice(3)) : null;
  const v2Available = v2Dir ? await readWords(path.join(v2Dir, "cgroup.controllers")) : [];
  const wantedV2: CgroupController[] = [];
  for (const controller of CGROUP_CONTROLLERS) {
    const v1 = membership.map((l) => l.split(":")).find((p) => p.length >= 3 && (p[1] ?? "").split(",").includes(controller));
    const v1Mount = mounts.find((m) => m.fsType === "cgroup" && m.superOptions.includes(controller));
    if (v1 && v1Mount) {
      const dir = joinCgroup(v1Mount, v1.slice(2).join(":"));
      if (await writable(dir)) homes.push({ controller, version: 1, parent: dir });
      else problems.push(`the ${controller} cgroup ${dir} is not writable by this user`);
    } else if (v2Dir && v2Available.includes(controller)) {
      wantedV2.push(controller);
    } else {
      problems.push(`no ${controller} cgroup controller is available to this process`);
    }
  }
  if (v2Dir && wantedV2.length > 0) {
    if (!(await writable(v2Dir))) {
      problems.push(`the cgroup v2 folder ${v2Dir} is not writable by this user (${wantedV2.join(", ")})`);
    } else {
      const problem = await enableV2Controllers(v2Dir, wantedV2);
      if (problem) problems.push(problem);
      else for (const controller of wantedV2) homes.push({ controller, version: 2, parent: v2Dir });
    }
  }
  if (problems.length > 0) return { ok: false, reason: problems.join("; ") };
  const summary = homes.map((h) => `${h.controller} (v${h.version})`).join(", ");
  return { ok: true, homes, summary };
}

let support: Promise<CgroupSupport> | undefined;

/** {@link probeCgroups}, cached for the life of the process. */
export function cgroupSupport(): Promise<CgroupSupport> {
  support ??= probeCgroups();
  return support;
}

/** The files that set each limit, and their values. */
function limitFiles(home: ControllerHome, limits: CgroupLimits, dir: string): Array<[string, string, boolean]> {
  const periodUs = 100_000;
  const quotaUs = Math.max(1_000, Math.round(limits.cpus * periodUs));
  const memory = String(Math.max(16 * 1024 ** 2, Math.floor(limits.memoryBytes)));
  const at = (name: string): string => path.join(dir, name);
  switch (`${home.controller}/v${home.version}`) {
    case "memory/v2":
      return [
        [at("memory.max"), memory, true],
        [at("memory.swap.max"), "0", false],
      ];
    case "memory/v1":
      return [
        [at("memory.limit_in_bytes"), memory, true],
        // Present only with swap accounting; must be set after limit_in_bytes (it may not be lower).
        [at("memory.memsw.limit_in_bytes"), memory, false],
      ];
    case "cpu/v2":
      return [[at("cpu.max"), `${quotaUs} ${periodUs}`, true]];
    case "cpu/v1":
      return [
        [at("cpu.cfs_period_us"), String(periodUs), true],
        [at("cpu.cfs_quota_us"), String(quotaUs), true],
      ];
    default:
      return [[at("pids.max"), String(Math.max(1, Math.floor(limits.maxProcesses))), true]];
  }
}

function counter(text: string, name: string): number {
  const match = new RegExp(`^${name}\\s+(\\d+)`, "m").exec(text);
  return match ? Number(match[1]) : 0;
}

/**
 * Creates the control group(s) for one command with every limit set.
 *
 * @throws {SandboxUnavailableError} when a controller is missing or a limit cannot be written —
 *   naming the missing piece; nothing is left behind
 */
export async function createCommandCgroup(limits: CgroupLimits): Promise<CommandCgroup> {
  const found = await cgroupSupport();
  if (!found.ok) throw new SandboxUnavailableError(`resource limits cannot be applied: ${found.reason}`);
  const name = `mc-sandbox-${process.pid}-${randomBytes(6).toString("hex")}`;
  const dirs = new Map<string, ControllerHome[]>();
  for (const home of found.homes) {
    const dir = path.join(home.parent, name);
    dirs.set(dir, [...(dirs.get(dir) ?? []), home]);
  }
  const group = new Group(
    [...dirs.keys()],
    found.homes.filter((h) => h.controller === "memory").map((h) => path.join(h.parent, name)),
    found.homes.filter((h) => h.controller === "pids").map((h) => path.join(h.parent, name)),
  );
  try {
    for (const [dir, homes] of dirs) {
      await mkdir(dir);
      for (const home of homes) {
        for (const [file, value, required] of limitFiles(home, limits, dir)) {
          try {
            await writeFile(file, value);
          } catch (err) {
            if (required)
              throw new SandboxUnavailableError(
                `resource limits cannot be applied: writing ${value} to ${file} failed (${err instanceof Error ? err.message : String(err)})`,
              );
          }
        }
      }
    }
  } catch (err) {
    await group.remove();
    throw err instanceof SandboxUnavailableError
      ? err
      : new SandboxUnavailableError(`resource limits cannot be applied: ${err instanceof Error ? err.message : String(err)}`);
  }
  return group;
}

class Group implements CommandCgroup {
  readonly procsFiles: readonly string[];
  readonly #dirs: readonly string[];
  readonly #memoryDirs: readonly string[];
  readonly #pidsDirs: readonly string[];

  constructor(dirs: string[], memoryDirs: string[], pidsDirs: string[]) {
    this.#dirs = dirs;
    this.#memoryDirs = memoryDirs;
    this.#pidsDirs = pidsDirs;
    this.procsFiles = dirs.map((d) => path.join(d, "cgroup.procs"));
  }

  async kill(): Promise<void> {
    for (const dir of this.#dirs) {
      await writeFile(path.join(dir, "cgroup.kill"), "1").catch(() => undefined); // v2, Linux 5.14+
      const procs = await readFile(path.join(dir, "cgroup.procs"), "utf8").catch(() => "");
      for (const pid of procs
        .split("\n")
        .map(Number)
        .filter((n) => n > 0)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  }

  async events(): Promise<{ oomKills: number; pidsRefused: number }> {
    let oomKills = 0;
    let pidsRefused = 0;
    for (const dir of this.#memoryDirs) {
      const v2 = await readFile(path.join(dir, "memory.events"), "utf8").catch(() => null);
      const text = v2 ?? (await readFile(path.join(dir, "memory.oom_control"), "utf8").catch(() => ""));
      oomKills += counter(text, "oom_kill");
    }
    for (const dir of this.#pidsDirs) pidsRefused += counter(await readFile(path.join(dir, "pids.events"), "utf8").catch(() => ""), "max");
    return { oomKills, pidsRefused };
  }

  async remove(): Promise<void> {
    for (const dir of this.#dirs) {
      // Killed processes take a moment to leave the group: retry quickly at first (1, 2, 4 … ms,
      // at most 50 ms apart, about 2 s in all), killing again each time.
      for (let attempt = 0, waited = 0; waited < 2_000; attempt++) {
        await this.kill();
        try {
          await rmdir(dir);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") break;
          const delay = Math.min(50, 2 ** attempt);
          waited += delay;
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    }
  }
}

/**
 * Removes command cgroups a previous process of the app left behind (it died mid-command).
 * Called at start-up; never throws.
 */
export async function removeStaleCgroups(): Promise<void> {
  const found = await cgroupSupport();
  if (!found.ok) return;
  for (const home of found.homes) {
    for (const entry of await readdir(home.parent).catch(() => [])) {
      const match = /^mc-sandbox-(\d+)-/.exec(entry);
      if (!match || Number(match[1]) === process.pid) continue;
      const alive = (() => {
        try {
          process.kill(Number(match[1]), 0);
          return true;
        } catch {
          return false;
        }
      })();
      if (!alive) await new Group([path.join(home.parent, entry)], [], []).remove();
    }
  }
}
