import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";

import { JobAbortedError, SandboxUnavailableError } from "../../src/domain/errors.js";
import { checkSandbox, DEFAULT_SANDBOX_LIMITS, filterCommandEnv, runSandboxed, type CommandResult, type SandboxOptions } from "../../src/workspace/sandbox.js";
import { giveToSandboxUser } from "../helpers/git-fixtures.js";

// Real processes, real bubblewrap (/usr/bin/bwrap), real temp folders. No network beyond a
// loopback server opened by the test itself.

const BWRAP: SandboxOptions = { mode: "bwrap" };
const OFF: SandboxOptions = { mode: "off" };
const NODE = process.execPath;

let cwd: string;

beforeEach(async () => {
  cwd = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-sandbox-")));
  giveToSandboxUser(cwd);
});

afterEach(async () => {
  await rm(cwd, { recursive: true, force: true });
});

/** Command lines of live processes whose command line contains `marker` (pgrep -f). */
function processesMatching(marker: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile("pgrep", ["-af", marker], (err, stdout) => {
      if (err && (err as { code?: unknown }).code === 1) resolve([]);
      else if (err) reject(new Error(`pgrep failed: ${err.message}`, { cause: err }));
      else resolve(stdout.split("\n").filter(Boolean));
    });
  });
}

/** Waits (at most ~3 s) for every process matching `marker` to be gone; returns the survivors. */
async function survivors(marker: string): Promise<string[]> {
  let left = await processesMatching(marker);
  for (let i = 0; i < 60 && left.length > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    left = await processesMatching(marker);
  }
  return left;
}

/** Shell-quotes one argument. */
function q(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function envNames(result: CommandResult): string[] {
  return result.stdout
    .split("\n")
    .filter((line) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(line))
    .map((line) => line.slice(0, line.indexOf("=")))
    .sort();
}

describe("runSandboxed", () => {
  it("runs a shell command in the clone and reports its exit code and output", async () => {
    const result = await runSandboxed(BWRAP, { cwd, command: "echo out; echo err >&2; pwd; exit 3" });
    expect(result).toMatchObject({
      command: "echo out; echo err >&2; pwd; exit 3",
      exitCode: 3,
      signal: null,
      timedOut: false,
      stdout: `out\n${cwd}\n`,
      stderr: "err\n",
      truncated: false,
      sandboxed: true,
    });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
  });

  it("runs a command line starting with a dash as a command, not as shell options", async () => {
    const result = await runSandboxed(BWRAP, { cwd, command: "-x" });
    expect(result.exitCode).toBe(127);
  });

  describe("network", () => {
    let server: net.Server;
    let port: number;
    let connections = 0;

    beforeEach(async () => {
      connections = 0;
      server = net.createServer((socket) => {
        connections++;
        socket.end();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as net.AddressInfo).port;
    });

    afterEach(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    function connectCommand(): string {
      const script = [
        `const s = require("net").connect(${port}, "127.0.0.1");`,
        `s.on("connect", () => { console.log("CONNECTED"); process.exit(0); });`,
        `s.on("error", (e) => { console.log("FAILED " + e.code); process.exit(7); });`,
        `setTimeout(() => { console.log("FAILED timeout"); process.exit(8); }, 5000);`,
      ].join(" ");
      return `${q(NODE)} -e ${q(script)}`;
    }

    it("cannot reach a loopback port on the host from inside the sandbox", async () => {
      const result = await runSandboxed(BWRAP, { cwd, command: connectCommand() });
      expect(result.stdout).toMatch(/^FAILED/);
      expect(result.stdout).not.toContain("CONNECTED");
      expect(result.exitCode).not.toBe(0);
      expect(connections).toBe(0);
    });

    it("does reach it with mode off (so the sandboxed case can fail)", async () => {
      const result = await runSandboxed(OFF, { cwd, command: connectCommand() });
      expect(result.stdout).toBe("CONNECTED\n");
      expect(result.exitCode).toBe(0);
      expect(result.sandboxed).toBe(false);
    });
  });

  describe("environment", () => {
    const SECRETS = {
      ANTHROPIC_API_KEY: `sk-ant-api03-${randomUUID()}`,
      GITHUB_TOKEN: `ghs_${randomUUID().replace(/-/g, "")}`,
      WEBHOOK_SECRET: `whsec-${randomUUID()}`,
      // Connection URLs of the shared backends carry a password.
      REDIS_URL: `redis://:${randomUUID()}@127.0.0.1:6379/0`,
      DATABASE_URL: `postgres://mission:${randomUUID()}@127.0.0.1:5432/mission`,
    };
    const saved: Record<string, string | undefined> = {};

    beforeEach(() => {
      for (const [name, value] of Object.entries(SECRETS)) {
        saved[name] = process.env[name];
        process.env[name] = value;
      }
    });

    afterEach(() => {
      for (const name of Object.keys(SECRETS)) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    });

    it.each([
      ["bwrap", BWRAP],
      ["off", OFF],
    ])("never passes the app's environment through (mode %s)", async (_mode, options) => {
      const result = await runSandboxed(options, { cwd, command: "env" });
      expect(result.exitCode).toBe(0);
      for (const value of Object.values(SECRETS)) {
        expect(result.stdout).not.toContain(value);
        expect(result.stderr).not.toContain(value);
      }
      const names = envNames(result);
      expect(names).toEqual(expect.arrayContaining(["CI", "HOME", "LANG", "PATH"]));
      // PWD is exported by the shell itself.
      expect(names.filter((n) => !["CI", "HOME", "LANG", "PATH", "PWD"].includes(n))).toEqual([]);
      expect(result.stdout).toContain("CI=true\n");
      expect(result.stdout).toContain("LANG=C.UTF-8\n");
    });

    it("uses a private HOME inside the sandbox", async () => {
      const result = await runSandboxed(BWRAP, { cwd, command: 'echo "$HOME"; touch "$HOME/.probe" && echo writable' });
      expect(result.stdout).toBe("/tmp/home\nwritable\n");
    });

    it("passes allowed request variables and drops credential-like ones", async () => {
      const result = await runSandboxed(BWRAP, {
        cwd,
        command: "env",
        env: {
          MY_FLAG: "on",
          NODE_ENV: "test",
          GITHUB_TOKEN: "requested-token-value",
          NPM_AUTH_THING: "auth-value",
          AWS_SECRET_ACCESS_KEY: "aws-value",
          DB_PASSWORD: "pw-value",
          PATH: "/evil",
          LD_PRELOAD: "/tmp/evil.so",
          lower_case: "x",
          LOOKS_FINE: `ghp_${"a".repeat(36)}`,
        },
      });
      const names = envNames(result);
      expect(names).toContain("MY_FLAG");
      expect(names).toContain("NODE_ENV");
      for (const refused of ["GITHUB_TOKEN", "NPM_AUTH_THING", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "LD_PRELOAD", "lower_case", "LOOKS_FINE"]) {
        expect(names).not.toContain(refused);
      }
      for (const value of ["requested-token-value", "auth-value", "aws-value", "pw-value", "/evil", "ghp_"]) {
        expect(result.stdout).not.toContain(value);
      }
    });

    it("filterCommandEnv reports what it refused", () => {
      expect(filterCommandEnv({ OK_NAME: "1", GITHUB_TOKEN: "x", API_KEY: "y", PRIVATE_KEY_PATH: "z", HOME: "/", "BAD-NAME": "1", NUL: "a\0b" })).toEqual({
        env: { OK_NAME: "1" },
        refused: ["API_KEY", "BAD-NAME", "GITHUB_TOKEN", "HOME", "NUL", "PRIVATE_KEY_PATH"],
      });
    });
  });

  describe("timeout and abort", () => {
    it.each([
      ["bwrap", BWRAP],
      ["off", OFF],
    ])("kills a runaway command at the timeout (mode %s)", async (_mode, options) => {
      const marker = `mc-timeout-${randomUUID()}`;
      const result = await runSandboxed({ ...options, limits: { timeoutMs: 300 } }, { cwd, command: `sleep 30; echo ${marker}` });
      expect(result.timedOut).toBe(true);
      expect(result.exitCode).toBeNull();
      expect(result.signal).toBe("SIGKILL");
      expect(await survivors(marker)).toEqual([]);
    });

    it("kills the command when the signal aborts, then rejects with JobAbortedError", async () => {
      const marker = `mc-abort-${randomUUID()}`;
      const controller = new AbortController();
      const started = runSandboxed(BWRAP, { cwd, command: `sleep 30; echo ${marker}`, signal: controller.signal });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await processesMatching(marker)).not.toEqual([]);
      controller.abort(new Error("lease lost"));
      await expect(started).rejects.toBeInstanceOf(JobAbortedError);
      expect(await survivors(marker)).toEqual([]);
    });

    it("does not start a command whose signal has already aborted", async () => {
      const controller = new AbortController();
      controller.abort();
      await expect(runSandboxed(BWRAP, { cwd, command: "touch ran", signal: controller.signal })).rejects.toBeInstanceOf(JobAbortedError);
      expect(existsSync(path.join(cwd, "ran"))).toBe(false);
    });

    it("kills what the command left running in the background when it ends", async () => {
      const marker = `mc-bg-${randomUUID()}`;
      const result = await runSandboxed(BWRAP, { cwd, command: `sh -c 'sleep 30; echo ${marker}' & echo started` });
      expect(result.stdout).toBe("started\n");
      expect(await survivors(marker)).toEqual([]);
    });
  });

  describe("filesystem", () => {
    const OUTSIDE = "/usr/local/mc-sandbox-test";

    afterAll(async () => {
      await rm(OUTSIDE, { force: true });
    });

    it("cannot write outside the clone, can write inside it", async () => {
      const outside = await runSandboxed(BWRAP, { cwd, command: `touch ${OUTSIDE}` });
      expect(outside.exitCode).not.toBe(0);
      expect(outside.stderr).toMatch(/Read-only file system/);
      expect(existsSync(OUTSIDE)).toBe(false);

      const inside = await runSandboxed(BWRAP, { cwd, command: "mkdir -p out && echo built > out/result.txt" });
      expect(inside.exitCode).toBe(0);
      expect(await readFile(path.join(cwd, "out", "result.txt"), "utf8")).toBe("built\n");
    });

    it("has a private /tmp: files written there stay there, and the host's /tmp is not visible", async () => {
      const name = `mc-private-${randomUUID()}`;
      const hostFile = path.join("/tmp", `mc-host-${randomUUID()}`);
      await writeFile(hostFile, "host");
      try {
        const result = await runSandboxed(BWRAP, {
          cwd,
          command: `echo inside > /tmp/${name} && cat /tmp/${name}; cat ${hostFile} || echo HOST-HIDDEN`,
        });
        expect(result.stdout).toBe("inside\nHOST-HIDDEN\n");
        expect(existsSync(path.join("/tmp", name))).toBe(false);
      } finally {
        await rm(hostFile, { force: true });
      }
    });

    it("runs without capabilities, so the read-only root cannot be remounted", async () => {
      const result = await runSandboxed(BWRAP, {
        cwd,
        command: `ls -A /run | wc -l; grep CapEff /proc/self/status; mount -o remount,rw,bind / && touch ${OUTSIDE}`,
      });
      // /run (host daemons' sockets) is an empty tmpfs; no capability is left.
      expect(result.stdout).toMatch(/^0\nCapEff:\s+0+\n$/);
      expect(result.exitCode).not.toBe(0);
      expect(existsSync(OUTSIDE)).toBe(false);
    });

    it("hides the configured paths, even around the clone", async () => {
      const secrets = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-sandbox-secrets-")));
      try {
        await writeFile(path.join(secrets, "private-key.pem"), "KEY MATERIAL");
        await mkdir(path.join(secrets, "data"));
        await writeFile(path.join(secrets, "data", "db.sqlite"), "DATABASE");
        const clone = path.join(secrets, "data", "clone");
        await mkdir(clone);
        giveToSandboxUser(clone);
        const result = await runSandboxed(
          { mode: "bwrap", hidePaths: [path.join(secrets, "data"), path.join(secrets, "private-key.pem")] },
          { cwd: clone, command: `cat ${secrets}/private-key.pem; ls -A ${secrets}/data; echo ok > made.txt` },
        );
        expect(result.stdout).not.toContain("KEY MATERIAL");
        expect(result.stdout).not.toContain("db.sqlite");
        expect(result.stdout).toBe("clone\n");
        expect(await readFile(path.join(clone, "made.txt"), "utf8")).toBe("ok\n");
      } finally {
        await rm(secrets, { recursive: true, force: true });
      }
    });
  });

  describe("limits", () => {
    it("caps each stream while reading and says how many bytes were cut", async () => {
      const result = await runSandboxed(
        { mode: "bwrap", limits: { outputBytes: 1_000 } },
        { cwd, command: "head -c 50000 /dev/zero | tr '\\0' a; echo small >&2" },
      );
      expect(result.exitCode).toBe(0);
      expect(result.truncated).toBe(true);
      expect(result.stdout).toContain("[output truncated: 49000 bytes cut");
      const [head, tail] = result.stdout.split(/\n\[output truncated: [^\]]*\]\n/);
      expect(head).toBe("a".repeat(500));
      expect(tail).toBe("a".repeat(500));
      expect(result.stderr).toBe("small\n");
    });

    it("stops a loop of background processes at the process limit and leaves none behind", async () => {
      const duration = `7.${Math.floor(Math.random() * 1e6)
        .toString()
        .padStart(6, "1")}`;
      const result = await runSandboxed(
        { mode: "bwrap", limits: { maxProcesses: 20, timeoutMs: 20_000 } },
        { cwd, command: `for i in $(seq 1 100); do sleep ${duration} & done; echo all-started; wait` },
      );
      expect(result.timedOut).toBe(false);
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toMatch(/fork/i);
      expect(result.stdout).not.toContain("all-started");
      expect(await survivors(`sleep ${duration}`)).toEqual([]);
    });

    it("lets the same loop run under the default process limit (so the limited case can fail)", async () => {
      const duration = `7.${Math.floor(Math.random() * 1e6)
        .toString()
        .padStart(6, "2")}`;
      const result = await runSandboxed(BWRAP, {
        cwd,
        command: `for i in $(seq 1 100); do sleep ${duration} & done; echo all-started`,
      });
      expect(result.stdout).toBe("all-started\n");
      expect(result.stderr).toBe("");
      expect(await survivors(`sleep ${duration}`)).toEqual([]);
    });

    const allocate = `${q(NODE)} -e ${q('const b = Buffer.alloc(1024 ** 3, 1); console.log("ALLOCATED " + b.length)')}`;

    it("fails a process that allocates more than the memory limit", async () => {
      const result = await runSandboxed({ mode: "bwrap", limits: { memoryBytes: 256 * 1024 ** 2 } }, { cwd, command: allocate });
      expect(result.exitCode).not.toBe(0);
      expect(result.stdout).not.toContain("ALLOCATED");
    });

    it("lets the same allocation succeed under the default memory limit", async () => {
      expect(DEFAULT_SANDBOX_LIMITS.memoryBytes).toBeGreaterThan(1024 ** 3);
      const result = await runSandboxed(BWRAP, { cwd, command: allocate });
      expect(result.stdout).toBe(`ALLOCATED ${1024 ** 3}\n`);
      expect(result.exitCode).toBe(0);
    });
  });

  describe("when bubblewrap is unavailable", () => {
    it("throws SandboxUnavailableError for a missing binary and runs nothing", async () => {
      const promise = runSandboxed({ mode: "bwrap", bwrapPath: "/nonexistent/bwrap" }, { cwd, command: "touch ran" });
      await expect(promise).rejects.toBeInstanceOf(SandboxUnavailableError);
      const err = (await promise.catch((e: unknown) => e)) as SandboxUnavailableError;
      expect(err.code).toBe("sandbox_unavailable");
      expect(err.retryable).toBe(false);
      expect(err.userMessage).toMatch(/bubblewrap/);
      expect(err.userMessage).toMatch(/SANDBOX=off/);
      expect(existsSync(path.join(cwd, "ran"))).toBe(false);
    });

    it("throws SandboxUnavailableError when bwrap fails before the command starts", async () => {
      // /bin/false stands in for a bwrap that exits with its own set-up error.
      await expect(runSandboxed({ mode: "bwrap", bwrapPath: "/bin/false" }, { cwd, command: "touch ran" })).rejects.toBeInstanceOf(SandboxUnavailableError);
      expect(existsSync(path.join(cwd, "ran"))).toBe(false);
    });

    it("reports a real bwrap set-up error with bwrap's message", async () => {
      const shell = path.join(cwd, "fake-bwrap");
      await writeFile(shell, '#!/bin/sh\necho "bwrap: Creating new namespace failed: Operation not permitted" >&2\nexit 1\n', { mode: 0o755 });
      const failure = await runSandboxed({ mode: "bwrap", bwrapPath: shell }, { cwd, command: "true" }).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(SandboxUnavailableError);
      expect((failure as Error).message).toContain("Creating new namespace failed");
    });
  });
});

describe("checkSandbox", () => {
  it("is ok with the real bwrap and with mode off", async () => {
    expect(await checkSandbox(BWRAP)).toEqual({ ok: true });
    expect(await checkSandbox(OFF)).toEqual({ ok: true });
  });

  it("is not ok when bwrap is missing or fails", async () => {
    const missing = await checkSandbox({ mode: "bwrap", bwrapPath: "/nonexistent/bwrap" });
    expect(missing.ok).toBe(false);
    expect(missing.ok ? "" : missing.reason).toMatch(/\/nonexistent\/bwrap/);
    expect((await checkSandbox({ mode: "bwrap", bwrapPath: "/bin/false" })).ok).toBe(false);
  });
});

afterAll(async () => {
  // Every per-command pids cgroup (made only when running as root) is removed again.
  const left = await readdir("/sys/fs/cgroup/pids").catch(() => [] as string[]);
  expect(left.filter((name) => name.startsWith(`mission-control-sandbox-${process.pid}-`))).toEqual([]);
});
