import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";

import type { Logger } from "pino";
import { ProbotOctokit } from "probot";

import { parseServerEnv, type ServerEnv } from "../../src/config/env.js";
import type { Worker } from "../../src/worker/worker.js";
import { type MissionControl, startMissionControl } from "../../src/app/server.js";
import { type Db, migrateToLatest, openDatabase } from "../../src/store/db.js";
import { intakePending } from "../../src/store/queue.js";
import { createLogger } from "../../src/app/logger.js";
import { ANTHROPIC_TEST_URL } from "./anthropic-fake.js";
import { intakeWaiters } from "./webhooks.js";

/** A private key generated once per test process (the app's JWTs are signed with it). */
export const TEST_PRIVATE_KEY = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
}).privateKey;

export const TEST_WEBHOOK_SECRET = "test-webhook-secret";
export const TEST_ANTHROPIC_KEY = "sk-ant-test-0123456789abcdefghijklmnop";
export const TEST_APP_ID = "31337";

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A temporary folder for one test's database and workspaces. */
export function tempDir(prefix = "mc-test-"): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A running app under test. */
export interface RunningApp {
  url: string;
  db: Db;
  env: ServerEnv;
  worker: Worker;
  /** Every log line, parsed. */
  logs: Array<Record<string, unknown>>;
  /** The running app as `startMissionControl` returned it. */
  mission: MissionControl;
  log: Logger;
  /** Stops the HTTP server and the worker (waiting up to `deadlineMs` for running jobs). */
  stop(deadlineMs?: number): Promise<void>;
}

/**
 * Starts the real Probot server with the app on a free loopback port, against a real SQLite
 * file. GitHub is reached at `https://${gheHost}/api/v3` (a GitHub Enterprise Server URL, so
 * any call to api.github.com fails the test) and Anthropic at {@link ANTHROPIC_TEST_URL}.
 * Octokit's own retry and throttling plugins are off: the job layer's retries are under test.
 */
export async function startApp(options: {
  databasePath: string;
  workspacesDir: string;
  gheHost?: string;
  env?: Record<string, string>;
  startWorker?: boolean;
}): Promise<RunningApp> {
  const port = await freePort();
  const env = parseServerEnv({
    APP_ID: TEST_APP_ID,
    WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
    GHE_HOST: options.gheHost ?? "ghe.example.test",
    GHE_PROTOCOL: "https",
    PORT: String(port),
    ANTHROPIC_API_KEY: TEST_ANTHROPIC_KEY,
    ANTHROPIC_BASE_URL: ANTHROPIC_TEST_URL,
    ANTHROPIC_MAX_RETRIES: "0",
    DATABASE_PATH: options.databasePath,
    WORKSPACES_DIR: options.workspacesDir,
    WORKER_POLL_MS: "50",
    JOB_LEASE_MS: "5000",
    JOB_RETRY_BASE_MS: "20",
    JOB_RETRY_MAX_MS: "200",
    LOG_LEVEL: "debug",
    // The tests' remotes are local bare repositories: the host's git may use `file` too.
    GIT_ALLOWED_PROTOCOLS: "https:http:file",
    HOST: "127.0.0.1",
    ...options.env,
  });
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const log = createLogger(env.LOG_LEVEL, sink);
  const db = openDatabase(env.DATABASE_PATH);
  await migrateToLatest(db);
  const app = await startMissionControl({
    env,
    db,
    log,
    privateKey: TEST_PRIVATE_KEY,
    startWorker: options.startWorker ?? true,
    // A function default runs after Probot's own option merging, so it really switches the plugins off.
    Octokit: ProbotOctokit.defaults((octokitOptions: Record<string, unknown>) => ({
      ...octokitOptions,
      retry: { enabled: false },
      throttle: { enabled: false },
    })),
  });
  const w = app.worker;
  const url = `http://127.0.0.1:${port}`;
  intakeWaiters.set(url, async (deliveryId) => {
    for (const deadline = Date.now() + 30_000; await intakePending(db, deliveryId);) {
      if (Date.now() > deadline) throw new Error(`the intake of delivery ${deliveryId} did not finish`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });
  return {
    url: `http://127.0.0.1:${port}`,
    db,
    env,
    worker: w,
    logs,
    mission: app,
    log,
    async stop(deadlineMs = 5_000) {
      intakeWaiters.delete(url);
      await app.stop(deadlineMs);
      await db.destroy();
    },
  };
}
