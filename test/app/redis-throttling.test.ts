import { type ChildProcess, spawn } from "node:child_process";
import { randomInt, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import path from "node:path";
import { Writable } from "node:stream";

import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, onTestFailed, vi } from "vitest";

import { createLogger } from "../../src/app/logger.js";
import { checkRedis, createRedisProbe, redisAddress } from "../../src/app/redis.js";
import { probotClass, startMissionControl } from "../../src/app/server.js";
import { parseServerEnv } from "../../src/config/env.js";
import { ConfigError } from "../../src/domain/errors.js";
import { openDatabase } from "../../src/store/db.js";
import { freePort, TEST_PRIVATE_KEY, tempDir } from "../helpers/app-harness.js";

/** The Redis server global-setup reached; `null` (with one line printed there) when it did not answer. */
const redisUrl = inject("redisUrl");

/** A loopback port nothing listens on. */
async function closedRedisUrl(password?: string): Promise<string> {
  return `redis://${password ? `:${password}@` : ""}127.0.0.1:${await freePort()}`;
}

describe("REDIS_URL: start-up check and health probe", () => {
  it("names host:port of an unreachable server and why, never the password", async () => {
    const password = `pw-${randomUUID()}`;
    const url = await closedRedisUrl(password);
    const failure = await checkRedis(url, { timeoutMs: 2_000 }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ConfigError);
    const message = (failure as Error).message;
    expect(message).toMatch(new RegExp(`^REDIS_URL: cannot reach redis at ${redisAddress(url).replace(/\./g, "\\.")} \\(connect ECONNREFUSED .*\\)$`));
    expect(message).not.toContain(password);
  });

  it("stops startMissionControl before anything starts", async () => {
    const dirs = tempDir();
    const db = openDatabase(path.join(dirs.dir, "mc.sqlite"));
    try {
      const env = parseServerEnv({
        APP_ID: "31337",
        WEBHOOK_SECRET: "test-webhook-secret",
        ANTHROPIC_API_KEY: "sk-ant-test-0123456789abcdefghijklmnop",
        GHE_HOST: "ghe.example.test",
        HOST: "127.0.0.1",
        PORT: String(await freePort()),
        REDIS_URL: await closedRedisUrl(),
      });
      const log = createLogger("silent");
      await expect(startMissionControl({ env, db, log, privateKey: TEST_PRIVATE_KEY })).rejects.toThrow(
        /^REDIS_URL: cannot reach redis at 127\.0\.0\.1:\d+ \(/,
      );
    } finally {
      await db.destroy();
      dirs.cleanup();
    }
  });

  it("redisAddress keeps host and port only", () => {
    expect(redisAddress("rediss://mc:secret@cache.example.test:6380/2")).toBe("cache.example.test:6380");
    expect(redisAddress("redis://localhost")).toBe("localhost:6379");
  });

  it("the health probe answers unreachable at once for a server that is not there", async () => {
    const probe = await createRedisProbe(await closedRedisUrl(), { timeoutMs: 1_000 });
    try {
      expect(await probe.ping()).toBe("unreachable");
    } finally {
      probe.close();
    }
  });

  it("an ioredis AUTH error logged the way Probot logs Bottleneck's errors does not show the password", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger("info", sink).child({ name: "octokit" });
    const password = `pw-${randomUUID()}`;
    const error = Object.assign(new Error("WRONGPASS invalid username-password pair or user is disabled."), {
      command: { name: "auth", args: ["mc", password] },
    });
    log.error(Object.assign(error, { source: "bottleneck" }));
    log.info(
      { env: { REDIS_URL: `redis://mc:${password}@h`, DATABASE_URL: `postgres://mc:${password}@h/db` }, redisConfig: `redis://:${password}@h` },
      "settings",
    );
    expect(lines.join("")).toContain("WRONGPASS");
    expect(lines.join("")).not.toContain(password);
  });
});

describe.skipIf(redisUrl === null)("REDIS_URL against a real Redis", () => {
  const url = redisUrl ?? "";

  it("the start-up check and the health probe pass", async () => {
    await checkRedis(url, { timeoutMs: 2_000 });
    const probe = await createRedisProbe(url);
    try {
      expect(await probe.ping()).toBe("ok");
    } finally {
      probe.close();
    }
  });

  it("a refused login is reported with Redis's reason, without the password", async () => {
    const password = `pw-${randomUUID()}`;
    const parsed = new URL(url);
    parsed.username = `mc-test-nobody-${randomInt(1e9)}`;
    parsed.password = password;
    await expect(checkRedis(parsed.toString(), { timeoutMs: 2_000 })).rejects.toThrow(/^REDIS_URL: cannot reach redis at [^ ]+ \(WRONGPASS /);
    await checkRedis(parsed.toString(), { timeoutMs: 2_000 }).catch((err: unknown) => expect((err as Error).message).not.toContain(password));
  });
});

// ---------------------------------------------------------------------------------------------
// Two replicas, one limit

const OWNER = "acme";
const REPO = "widgets";

/** GitHub's REST API over plain HTTP on loopback, reachable from other processes: issue reads are held until released. */
class HeldGitHub {
  /** Issue numbers in the order their requests arrived, with the time. */
  readonly arrivals: Array<{ issue: number; at: number }> = [];
  readonly #held = new Map<number, ServerResponse>();
  readonly #server: Server = createServer((req, res) => this.#handle(req, res));

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    const address = this.#server.address();
    return `127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  }

  arrived(issue: number): boolean {
    return this.arrivals.some((a) => a.issue === issue);
  }

  release(issue: number): void {
    const res = this.#held.get(issue);
    this.#held.delete(issue);
    res?.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ number: issue, title: `Issue ${issue}` }));
  }

  releaseAll(): void {
    for (const issue of [...this.#held.keys()]) this.release(issue);
  }

  async stop(): Promise<void> {
    this.releaseAll();
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const pathname = new URL(req.url ?? "/", "http://github.test").pathname;
    if (req.method === "POST" && /^\/api\/v3\/app\/installations\/\d+\/access_tokens$/.test(pathname)) {
      const body = { token: `ghs_${"t".repeat(36)}`, expires_at: new Date(Date.now() + 3_600_000).toISOString(), permissions: {}, repository_selection: "all" };
      res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify(body));
      return;
    }
    const issue = new RegExp(`^/api/v3/repos/${OWNER}/${REPO}/issues/(\\d+)$`).exec(pathname)?.[1];
    if (req.method === "GET" && issue) {
      this.arrivals.push({ issue: Number(issue), at: Date.now() });
      this.#held.set(Number(issue), res);
      return;
    }
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "Not Found" }));
  }
}

/** A replica process (test/app/redis-replica.ts) and what it printed. */
interface Replica {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** Resolves once the replica printed READY. */
  ready: Promise<void>;
  send(line: string): void;
}

function startReplica(options: Record<string, unknown>, env: Record<string, string>): Replica {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "redis-replica.ts"), JSON.stringify(options)], {
    stdio: ["pipe", "pipe", "pipe"],
    env,
  });
  const lines: string[] = [];
  let err = "";
  let out = "";
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const parts = out.split("\n");
      out = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (line === "READY") resolve();
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.once("exit", (code) => reject(new Error(`the replica exited (${code}) before it was ready: ${err.slice(-2000)}`)));
  });
  // Awaited later; a failure meanwhile is not an unhandled rejection.
  ready.catch(() => undefined);
  return { child, lines, stderr: () => err, ready, send: (line) => child.stdin?.write(`${line}\n`) };
}

describe.skipIf(redisUrl === null)("GitHub throttling shared through REDIS_URL", () => {
  const url = redisUrl ?? "";
  // A fresh installation per run: the limiters' Redis keys are b_octokit-<group>-<installation id>_*.
  const installationId = randomInt(1e9, 2 ** 31 - 1);
  const github = new HeldGitHub();
  const replicas: Replica[] = [];
  let redis: Redis;

  beforeAll(() => {
    redis = new Redis(url, { maxRetriesPerRequest: 1 });
  });

  afterEach(async () => {
    for (const replica of replicas.splice(0)) {
      replica.child.stdin?.end();
      if (replica.child.exitCode === null) replica.child.kill("SIGKILL");
    }
    await github.stop();
  });

  afterAll(async () => {
    // Only the keys this run created (Bottleneck would expire them after 2 minutes anyway); never FLUSHALL.
    const keys: string[] = [];
    for await (const batch of redis.scanStream({ match: `b_octokit-*-${installationId}_*`, count: 100 })) keys.push(...(batch as string[]));
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it("two processes hold one concurrency limit for an installation: the second waits for the first's requests", async () => {
    const gheHost = await github.start();

    // Replica B: its own process (the throttling plugin keeps its limiters in module state, so
    // only another process shows what Redis shares). No package runner is on its PATH, and it runs
    // as if under `npx` (npx-import's other path): ioredis must come from node_modules.
    const b = startReplica(
      { gheHost, redisUrl: url, installationId, owner: OWNER, repo: REPO },
      { PATH: path.join(import.meta.dirname, "no-such-bin"), HOME: process.env.HOME ?? "/tmp", npm_lifecycle_event: "npx" },
    );
    replicas.push(b);
    onTestFailed(() => console.error(`replica B's stderr:\n${b.stderr().slice(-4000)}`));

    // Replica A: this process, the Probot class startMissionControl uses, with REDIS_URL and throttling on.
    const env = parseServerEnv({
      APP_ID: "31337",
      WEBHOOK_SECRET: "test-webhook-secret",
      ANTHROPIC_API_KEY: "sk-ant-test-0123456789abcdefghijklmnop",
      GHE_HOST: gheHost,
      GHE_PROTOCOL: "http",
      REDIS_URL: url,
    });
    const ProbotA = probotClass({ env, log: createLogger("warn"), privateKey: TEST_PRIVATE_KEY });
    const a = await new ProbotA().auth(installationId);
    const aStatuses: number[] = [];
    const read = (issue: number) =>
      a.request("GET /repos/{owner}/{repo}/issues/{issue_number}", { owner: OWNER, repo: REPO, issue_number: issue }).then((r) => aStatuses.push(r.status));

    // A fills the global group's ten slots (maxConcurrent 10) with reads GitHub holds open; Redis counts them.
    const aReads = Array.from({ length: 10 }, (_, i) => read(i + 1));
    await vi.waitFor(() => expect(github.arrivals).toHaveLength(10), { timeout: 5_000, interval: 20 });
    expect(await redis.hget(`b_octokit-global-${installationId}_settings`, "running")).toBe("10");

    // B's read of the same installation queues in Redis behind them instead of going out.
    await b.ready;
    b.send("GET 11");
    await vi.waitFor(
      async () => {
        const perClient = Object.values(await redis.hgetall(`b_octokit-global-${installationId}_client_num_queued`)).map(Number);
        expect(perClient.sort((x, y) => x - y)).toEqual([0, 1]); // two clients (the replicas) in one group, one request waiting
      },
      { timeout: 5_000, interval: 20 },
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(github.arrived(11)).toBe(false);

    // One of A's requests finishes: B's goes out.
    const releasedAt = Date.now();
    github.release(1);
    await vi.waitFor(() => expect(github.arrived(11)).toBe(true), { timeout: 5_000, interval: 20 });
    expect(github.arrivals.find((x) => x.issue === 11)?.at).toBeGreaterThanOrEqual(releasedAt);

    github.releaseAll();
    await Promise.all(aReads);
    expect(aStatuses).toEqual(Array.from({ length: 10 }, () => 200));
    await vi.waitFor(() => expect(b.lines.filter((l) => /^(DONE|FAIL) /.test(l))).toEqual(["DONE 11 200"]), { timeout: 5_000, interval: 20 });
  });
});
