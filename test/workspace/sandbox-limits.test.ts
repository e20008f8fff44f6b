import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, realpath, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { removeTree } from "../../src/workspace/remove-tree.js";
import { describeSandbox, ETC_SECRETS, runSandboxed, type SandboxOptions } from "../../src/workspace/sandbox.js";
import { giveToSandboxUser } from "../helpers/git-fixtures.js";

// Issue 9, findings 5 and 6, as an attacker would try them: a fork bomb, a memory hog through
// tmpfs, a disk filler, a CPU spinner, and a walk through the host's files. Real bubblewrap and
// real cgroups: these need root (CI runs as root) — the names say so.

const NODE = process.execPath;
const ROOT = process.getuid?.() === 0;
let cwd: string;

beforeEach(async () => {
  cwd = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-limits-")));
  giveToSandboxUser(cwd);
});
afterEach(async () => {
  await rm(cwd, { recursive: true, force: true });
});

function q(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

const small = (limits: SandboxOptions["limits"]): SandboxOptions => ({ mode: "bwrap", limits: { timeoutMs: 30_000, ...limits } });

describe("limits that hold (needs root and cgroups)", () => {
  it("runs as root in CI, so that the cgroup and uid assertions below mean something", () => {
    expect(ROOT, "these tests need root: run them as root (CI does)").toBe(true);
  });

  it("a fork bomb stops at the process limit, the command ends, and nothing survives", async () => {
    const result = await runSandboxed(small({ maxProcesses: 64 }), { cwd, command: "bomb() { bomb | bomb & }; bomb; sleep 1; echo survived-the-bomb" });
    expect(result.limitExceeded).toBe("processes");
    expect(result.stderr).toContain("the process limit of 64 refused new processes");
    expect(result.timedOut).toBe(false);
    // The cgroup is gone, and with it every process of the bomb.
    const groups = await readdir("/sys/fs/cgroup/pids").catch(() => []);
    expect(groups.filter((g) => g.startsWith(`mc-sandbox-${process.pid}-`))).toEqual([]);
  });

  it("memory written to tmpfs counts: filling /dev/shm and /tmp past the total limit kills the command", async () => {
    const result = await runSandboxed(small({ memoryBytes: 128 * 1024 ** 2, tmpBytes: 1024 ** 3 }), {
      cwd,
      command: "head -c 100000000 /dev/zero > /tmp/a; head -c 60000000 /dev/zero > /dev/shm/b; echo filled",
    });
    expect(result.stdout).not.toContain("filled");
    expect(result.limitExceeded).toBe("memory");
  });

  it("the same writes fit under a larger limit (so the case above can fail)", async () => {
    const result = await runSandboxed(small({ memoryBytes: 1024 ** 3, tmpBytes: 512 * 1024 ** 2 }), {
      cwd,
      command: "head -c 100000000 /dev/zero > /tmp/a; head -c 60000000 /dev/zero > /dev/shm/b; echo filled",
    });
    expect(result.stdout).toBe("filled\n");
    expect(result.limitExceeded).toBeNull();
  });

  it("every tmpfs is sized: /tmp, /dev/shm and /run; /dev and / are read-only", async () => {
    const result = await runSandboxed(small({ tmpBytes: 32 * 1024 ** 2 }), {
      cwd,
      command: "df -k /tmp /dev/shm /run | tail -n 3 | awk '{print $6, $2}'; touch /dev/x /x 2>&1 | sed 's/.*: //'",
    });
    expect(result.stdout).toContain("/tmp 32768\n");
    expect(result.stdout).toContain("/dev/shm 65536\n");
    expect(result.stdout).toContain("/run 1024\n");
    expect(result.stdout.match(/Read-only file system/g)).toHaveLength(2);
  });

  it("a command that fills the disk past the limit is killed", async () => {
    const result = await runSandboxed(small({ diskBytes: 20 * 1024 ** 2 }), {
      cwd,
      command: "i=0; while [ $i -lt 200 ]; do head -c 1000000 /dev/urandom > f$i; i=$((i+1)); sleep 0.02; done; echo wrote-everything",
    });
    expect(result.stdout).not.toContain("wrote-everything");
    expect(result.limitExceeded).toBe("disk");
    expect(result.stderr).toContain("disk limit");
  });

  it("the disk limit also holds for a tree deeper than PATH_MAX, which removeTree then removes", async () => {
    const deep = `perl -e 'mkdir "deep"; chdir "deep"; my $n = "d" x 200; for (1..30) { mkdir $n or die; chdir $n or die } system("head -c 200000000 /dev/urandom > big"); system("sleep 3"); print "depth ok\\n"'; echo still-alive`;
    const result = await runSandboxed(small({ diskBytes: 20 * 1024 ** 2 }), { cwd, command: deep });
    expect(result.limitExceeded).toBe("disk");
    expect(result.stdout).not.toContain("still-alive");
    await removeTree(cwd);
    expect(existsSync(cwd)).toBe(false);
  });

  it("the disk limit also holds for a file deleted while still open", async () => {
    const result = await runSandboxed(small({ diskBytes: 20 * 1024 ** 2 }), {
      cwd,
      command: "exec 3>hidden; rm hidden; head -c 200000000 /dev/urandom >&3; sleep 3; echo still-alive",
    });
    expect(result.limitExceeded).toBe("disk");
    expect(result.stdout).not.toContain("still-alive");
  });

  it("a command that creates more files than the inode limit is killed", async () => {
    const result = await runSandboxed(small({ diskInodes: 5_000 }), {
      cwd,
      command: "mkdir many && cd many && i=0; while [ $i -lt 50000 ]; do : > f$i; i=$((i+1)); done; echo made-them-all",
    });
    expect(result.limitExceeded).toBe("disk");
    expect(result.stdout).not.toContain("made-them-all");
  });

  it("CPU is limited: two busy processes for one second get about a fifth of a core", async () => {
    const spin = `${q(NODE)} -e ${q("const end = Date.now() + 1000; while (Date.now() < end); const u = process.cpuUsage(); console.log(u.user + u.system)")}`;
    const result = await runSandboxed(small({ cpus: 0.2 }), { cwd, command: `${spin} & ${spin}; wait` });
    const micros = result.stdout.trim().split("\n").map(Number);
    expect(micros).toHaveLength(2);
    // Unlimited, each would use about 1 000 000 µs; capped at 0.2 cores together about 200 000.
    expect(micros.reduce((a, b) => a + b, 0)).toBeLessThan(450_000);
  });

  it("commands run as the unprivileged sandbox user and see no host secrets, HOME or other folders", async () => {
    const result = await runSandboxed(
      { mode: "bwrap" },
      {
        cwd,
        command: "id -u; ls -A /; cat /etc/shadow /etc/gshadow /etc/sudoers 2>&1; ls -A /etc/ssh 2>&1; ls /root /home /var /opt /srv /work 2>&1",
      },
    );
    const [uid] = result.stdout.split("\n");
    expect(uid).toBe("65534");
    const top = result.stdout.split("\n").slice(1, 12);
    for (const name of ["root", "home", "var", "opt", "srv", "work", "mnt", "boot"]) expect(top).not.toContain(name);
    expect(result.stdout).not.toMatch(/^root:/m);
    expect(ETC_SECRETS).toEqual(expect.arrayContaining(["shadow", "gshadow", "ssh", "sudoers"]));
    for (const dir of ["/root", "/home", "/var", "/opt", "/srv", "/work"]) expect(result.stdout).toContain(`${dir}': No such file or directory`);
  });

  it("reports which limits hold for /healthz and the start-up line", async () => {
    const report = await describeSandbox({ mode: "bwrap" });
    expect(report.ok).toBe(true);
    expect(report.user).toBe("uid 65534");
    expect(report.limits).toEqual(expect.arrayContaining(["timeout", "output", "disk", "tmpfs sizes"]));
    expect(report.limits.join(" ")).toMatch(/memory \(v[12]\).*cpu \(v[12]\).*pids \(v[12]\)/);
  });
});

describe("fail closed (needs root, to run a child as another user)", () => {
  it("a user who may not create cgroups gets no command: the error names the missing piece", async () => {
    // A child process as uid 65534 (no cgroup access), running the real module.
    const script = [
      `import { runSandboxed } from ${JSON.stringify(path.resolve("src/workspace/sandbox.ts"))};`,
      `try { await runSandboxed({ mode: "bwrap" }, { cwd: ${JSON.stringify(cwd)}, command: "echo ran > ran.txt" }); console.log("RAN"); }`,
      `catch (e) { console.log(e.code + ": " + e.message); }`,
    ].join("\n");
    const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) =>
      execFile(
        "setpriv",
        ["--reuid=65534", "--regid=65534", "--clear-groups", "--", NODE, "--import", "tsx", "--input-type=module", "-e", script],
        { cwd: process.cwd(), env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cwd } },
        (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve({ stdout: out })),
      ),
    );
    expect(stdout).not.toContain("RAN");
    expect(stdout).toContain("sandbox_unavailable: ");
    expect(stdout).toMatch(/resource limits cannot be applied: .*(memory|cpu|pids)/);
    expect(await readdir(cwd)).toEqual([]);
  });
});
