// Runs once before any test file (vitest `globalSetup`). The suite drives the real sandbox:
// bubblewrap (`bwrap`), util-linux (`prlimit`, and `setpriv` as root) and git. Without them
// most tests would fail one by one after long timeouts; instead the run stops here at once,
// with one line that names what is missing and the command that installs it.
//
// Self-contained on purpose (node: modules, `pg` and `ioredis` only): it must work whatever state src/ is in.
//
// It also probes PostgreSQL once for the contract suites (test/store/contract/*): when it does
// not answer, the PostgreSQL half of those suites is skipped with ONE line saying so, and the
// run fails instead when MC_REQUIRE_POSTGRES=1 (CI, which has PostgreSQL). Redis likewise, for
// the shared-throttling test (test/app/redis-throttling.test.ts), with MC_REQUIRE_REDIS=1.
import { spawnSync } from "node:child_process";
import { accessSync, constants, statSync, writeSync } from "node:fs";
import path from "node:path";

import type { TestProject } from "vitest/node";

import { openDatabase } from "../src/store/db.js";
import { POSTGRES_MODE_MIN_NODE, supportsPostgresMode } from "../src/store/open-store.js";

const INSTALL = "apt-get install -y bubblewrap git util-linux";
const PROBE_TIMEOUT_MS = 10_000;

/** Where `name` is on PATH, or null. */
function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Runs `true` in bubblewrap with the namespaces the sandbox asks for (as root: no user
 * namespace, as in `workspace/sandbox`; otherwise an unprivileged user namespace).
 *
 * @returns null when it worked, else bwrap's first line of error
 */
function probeBwrap(bwrap: string): string | null {
  const unshare = isRoot() ? ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"] : ["--unshare-all"];
  const result = spawnSync(bwrap, ["--die-with-parent", ...unshare, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"], {
    encoding: "utf8",
    timeout: PROBE_TIMEOUT_MS,
    stdio: ["ignore", "ignore", "pipe"],
  });
  if (result.status === 0) return null;
  if (result.error) return result.error.message;
  const detail = result.stderr.trim().split("\n")[0]?.replace(/\.$/, "");
  return detail || `exited with ${result.status ?? result.signal}`;
}

/** The one line that says why the suite cannot run here, or null when it can. */
export function missingPrerequisites(): string | null {
  const wanted: Array<[command: string, pkg: string]> = [
    ["bwrap", "bubblewrap"],
    ["prlimit", "util-linux"],
    ["git", "git"],
  ];
  if (isRoot()) wanted.push(["setpriv", "util-linux"]);
  const missing = wanted.filter(([command]) => onPath(command) === null);
  if (missing.length > 0) {
    const names = missing.map(([command, pkg]) => (command === pkg ? command : `${command} (${pkg})`)).join(", ");
    return `Cannot run the tests: ${names} not found on PATH. Install the prerequisites with: ${INSTALL}`;
  }
  const failure = probeBwrap(onPath("bwrap")!);
  if (failure !== null) {
    return `Cannot run the tests: bwrap cannot create the sandbox's namespaces here (${failure}). Run them as root or allow unprivileged user namespaces (docs/OPERATIONS.md, "The sandbox in a container").`;
  }
  return null;
}

/** Where the contract suites reach PostgreSQL (a database to connect to for `CREATE DATABASE`). */
const DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres";
const POSTGRES_PROBE_TIMEOUT_MS = 5_000;

declare module "vitest" {
  export interface ProvidedContext {
    /** The PostgreSQL server the contract suites create their databases on; `null` when it did not answer. */
    postgresAdminUrl: string | null;
    /** `false` when better-sqlite3's native module does not load on this Node (a Node 22 run of the PostgreSQL-mode suites). */
    sqliteLoads: boolean;
    /** The Redis server of the shared-throttling test; `null` when it did not answer. */
    redisUrl: string | null;
  }
}

/** Connects to PostgreSQL and runs `select 1`: null when it answered, else why not. */
async function probePostgres(url: string): Promise<string | null> {
  try {
    const { default: pg } = await import("pg");
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: POSTGRES_PROBE_TIMEOUT_MS });
    try {
      await client.connect();
      await client.query("select 1");
      return null;
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (err) {
    return err instanceof Error ? err.message || err.name : String(err);
  }
}

/** `postgres://user:secret@host/db` → `postgres://user:***@host/db` (for the one line). */
function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(invalid URL)";
  }
}

/** Where the shared-throttling test reaches Redis. */
const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";
const REDIS_PROBE_TIMEOUT_MS = 5_000;

/** Connects to Redis once (no retries) and sends PING: null when it answered, else why not. */
async function probeRedis(url: string): Promise<string | null> {
  try {
    const { Redis } = await import("ioredis");
    const client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: REDIS_PROBE_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    let first: Error | undefined;
    client.on("error", (err: Error) => (first ??= err));
    try {
      await client.connect();
      await client.ping();
      return null;
    } catch (err) {
      const cause = first ?? err;
      return cause instanceof Error ? cause.message || cause.name : String(cause);
    } finally {
      client.disconnect();
    }
  } catch (err) {
    return err instanceof Error ? err.message || err.name : String(err);
  }
}

/** Probes Redis and provides `redisUrl`; one line when it did not answer, a failed run when MC_REQUIRE_REDIS=1. */
async function setupRedis(project: TestProject): Promise<void> {
  const url = process.env.MC_TEST_REDIS_URL || DEFAULT_REDIS_URL;
  const problem = await probeRedis(url);
  project.provide("redisUrl", problem === null ? url : null);
  if (problem === null) return;
  const line = `The Redis tests of test/app/redis-throttling.test.ts did not run: ${withoutPassword(url)} did not answer (${problem}); set MC_TEST_REDIS_URL to reach one.`;
  if (process.env.MC_REQUIRE_REDIS === "1") {
    writeSync(2, `\n${line} MC_REQUIRE_REDIS=1: failing.\n\n`);
    process.exit(1);
  }
  writeSync(2, `\n${line}\n\n`);
}

/** Opens an in-memory SQLite database: null when the native module loads on this Node, else why not. */
function probeSqlite(): string | null {
  try {
    void openDatabase(":memory:").destroy();
    return null;
  } catch (err) {
    // better-sqlite3's message spans lines ("…compiled against a different Node.js version using\n
    // NODE_MODULE_VERSION 115…"): joined, so the one line still says which versions differ.
    return (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, " ");
  }
}

/**
 * The PostgreSQL mode (pg-boss 12) needs Node 22.12: on an older Node its suites (the pg-boss
 * halves of the queue, schedules and notifications suites, the replica test) say so in one line, and fail the run under
 * MC_REQUIRE_POSTGRES_MODE=1. `npm run test:postgres` runs them under Node 22, as .ci/run does.
 */
function setupPostgresMode(): void {
  if (supportsPostgresMode()) return;
  const line = `PostgreSQL-mode suites did not run (the pg-boss halves of test/store/contract/queue.test.ts, test/store/contract/schedules.test.ts and test/pipeline/notifications.test.ts, and test/e2e/replicas.test.ts): pg-boss 12 needs Node ${POSTGRES_MODE_MIN_NODE}, this is Node ${process.versions.node}; run \`npm run test:postgres\` under Node 22.`;
  if (process.env.MC_REQUIRE_POSTGRES_MODE === "1") {
    writeSync(2, `\n${line} MC_REQUIRE_POSTGRES_MODE=1: failing.\n\n`);
    process.exit(1);
  }
  writeSync(2, `\n${line}\n\n`);
}

export async function setup(project: TestProject): Promise<void> {
  const problem = missingPrerequisites();
  if (problem !== null) {
    // Printed and exited rather than thrown: vitest 4 answers an error thrown here with a stack and
    // a misleading "No test files found" block around it.
    writeSync(2, `\n${problem}\n\n`);
    process.exit(1);
  }

  await setupRedis(project);

  const sqliteProblem = probeSqlite();
  project.provide("sqliteLoads", sqliteProblem === null);
  if (sqliteProblem !== null) {
    writeSync(
      2,
      `\nThe SQLite tests did not run: better-sqlite3 does not load on Node ${process.versions.node} (${sqliteProblem}); run them with the Node it was installed for.\n\n`,
    );
  }

  const url = process.env.MC_TEST_POSTGRES_URL || DEFAULT_POSTGRES_URL;
  const postgresProblem = await probePostgres(url);
  project.provide("postgresAdminUrl", postgresProblem === null ? url : null);
  if (postgresProblem === null) {
    setupPostgresMode();
    return;
  }
  const line = `PostgreSQL suites did not run (the PostgreSQL halves of the contract suites in test/store/contract/ and of test/pipeline/notifications.test.ts, the PostgreSQL migration tests, the migrate-sqlite-to-postgres command, test/e2e/replica-budgets.test.ts and test/e2e/replicas.test.ts): ${withoutPassword(url)} did not answer (${postgresProblem}); set MC_TEST_POSTGRES_URL to reach one.`;
  if (process.env.MC_REQUIRE_POSTGRES === "1") {
    writeSync(2, `\n${line} MC_REQUIRE_POSTGRES=1: failing.\n\n`);
    process.exit(1);
  }
  writeSync(2, `\n${line}\n\n`);
}
