import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { sql } from "kysely";
import { afterAll, afterEach, beforeAll, beforeEach, describe, inject } from "vitest";

import { openStore, type Store, supportsPostgresMode } from "../../src/store/open-store.js";
import { createPostgresDatabase, type PostgresTestDatabase, postgresAdminUrl } from "./store-backends.js";

/** `true` when this Node can run the PostgreSQL mode (pg-boss 12 needs 22.12). */
export const nodeRunsPostgresMode = (): boolean => supportsPostgresMode();

/** Seconds without a heartbeat before pg-boss takes a job over (its minimum). */
export const TEST_HEARTBEAT_SECONDS = 10;

/** Two replicas of one store: two independent opens of the same database, as two processes would have. */
export interface Replicas {
  backend: "sqlite" | "postgres";
  a: Store;
  b: Store;
}

/**
 * Declares a queue contract suite once and runs it against both backends: two stores on one
 * SQLite file, and two stores (each with its pg-boss) on one fresh PostgreSQL database. The
 * PostgreSQL half needs a reachable server and Node ≥ 22.12; test/global-setup.ts prints one
 * line when it cannot run (and fails the run under MC_REQUIRE_POSTGRES_MODE=1).
 */
export function describeQueueContract(name: string, suite: (replicas: () => Replicas) => void): void {
  // A Node 22 run of the PostgreSQL-mode suites cannot load better-sqlite3 (built for the installing Node): the global setup said so.
  (inject("sqliteLoads") ? describe : describe.skip)(`${name} [sqlite]`, () => {
    let dir = "";
    let current: Replicas | undefined;
    beforeEach(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "mc-queue-"));
      const file = path.join(dir, "store.sqlite");
      const a = await openStore({ databasePath: file, heartbeatSeconds: TEST_HEARTBEAT_SECONDS });
      const b = await openStore({ databasePath: file, heartbeatSeconds: TEST_HEARTBEAT_SECONDS });
      current = { backend: "sqlite", a, b };
    });
    afterEach(async () => {
      await current?.a.close();
      await current?.b.close();
      await rm(dir, { recursive: true, force: true });
    });
    suite(() => {
      if (!current) throw new Error("no store outside a test");
      return current;
    });
  });

  const adminUrl = postgresAdminUrl();
  const runnable = adminUrl !== null && nodeRunsPostgresMode();
  (runnable ? describe : describe.skip)(`${name} [postgres]`, () => {
    let database: PostgresTestDatabase | undefined;
    let current: Replicas | undefined;
    beforeAll(async () => {
      database = await createPostgresDatabase(adminUrl ?? "");
      const open = () =>
        openStore({ databaseUrl: database?.url, databasePath: "unused", heartbeatSeconds: TEST_HEARTBEAT_SECONDS, superviseIntervalSeconds: 1 });
      const [a, b] = await Promise.all([open(), open()]);
      current = { backend: "postgres", a, b };
    }, 60_000);
    afterAll(async () => {
      await current?.a.close();
      await current?.b.close();
      await database?.drop();
    });
    beforeEach(async () => {
      const db = current?.a.db;
      if (!db) return;
      await sql`truncate deliveries, jobs, tasks, llm_usage, transitions, budget_reservations, budget_alerts, pauses restart identity cascade`.execute(db);
      await sql`delete from pgboss.job`.execute(db);
    });
    suite(() => {
      if (!current) throw new Error("no store outside a test");
      return current;
    });
  });
}
