import { randomBytes } from "node:crypto";

import { sql } from "kysely";
import { afterAll, afterEach, beforeAll, beforeEach, describe, inject } from "vitest";

import { type Db, migrateToLatest, openDatabase } from "../../src/store/db.js";
import { openPostgres } from "../../src/store/postgres.js";
import { createTestDatabase, type TestDatabase } from "./db.js";

/** The backend a contract suite runs against, and what it offers beyond the main handle. */
export interface StoreBackend {
  name: "sqlite" | "postgres";
  /**
   * A second, independent handle on the same database (another SQLite connection, another
   * PostgreSQL pool), as another process or replica would have; closed after the test.
   */
  openConnection(): Db;
}

/** The tables the store owns (emptied between PostgreSQL tests). */
const TABLES = [
  "deliveries",
  "jobs",
  "tasks",
  "llm_usage",
  "transitions",
  "budget_reservations",
  "budget_alerts",
  "pauses",
  "dashboard_sessions",
  "learnings",
  "learning_proposals",
  "repository_schedules",
  "follow_up_proposals",
];

/** The PostgreSQL server of this run (probed once by test/global-setup.ts), or null. */
export function postgresAdminUrl(): string | null {
  return inject("postgresAdminUrl");
}

/** A PostgreSQL database created for one test file: `mc_test_<random>`. */
export interface PostgresTestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Creates a fresh, empty PostgreSQL database on the server at `adminUrl`. */
export async function createPostgresDatabase(adminUrl: string): Promise<PostgresTestDatabase> {
  const name = `mc_test_${randomBytes(6).toString("hex")}`;
  const admin = openPostgres(adminUrl, { maxConnections: 1 });
  try {
    await sql`create database ${sql.id(name)}`.execute(admin);
  } finally {
    await admin.destroy();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const admin = openPostgres(adminUrl, { maxConnections: 1 });
      try {
        await sql`drop database if exists ${sql.id(name)} with (force)`.execute(admin);
      } finally {
        await admin.destroy();
      }
    },
  };
}

/**
 * Declares a store contract suite once and runs it against every backend: (a) a fresh SQLite
 * file per test, (b) a PostgreSQL database created for this file (emptied before each test,
 * dropped at the end). When PostgreSQL did not answer, its half is skipped and the global
 * setup has printed one line saying so (or failed the run under MC_REQUIRE_POSTGRES=1).
 *
 * @param suite - the tests; `getDb()` is the migrated database of the current test
 */
export function describeStoreContract(name: string, suite: (getDb: () => Db, backend: StoreBackend) => void): void {
  describe(`${name} [sqlite]`, () => {
    let testDb: TestDatabase | undefined;
    const extra: Db[] = [];
    beforeEach(async () => {
      testDb = await createTestDatabase();
    });
    afterEach(async () => {
      await Promise.all(extra.splice(0).map((db) => db.destroy()));
      await testDb?.cleanup();
    });
    const getDb = (): Db => {
      if (!testDb) throw new Error("no database outside a test");
      return testDb.db;
    };
    suite(getDb, {
      name: "sqlite",
      openConnection() {
        const db = openDatabase(getTestFile(testDb));
        extra.push(db);
        return db;
      },
    });
  });

  const adminUrl = postgresAdminUrl();
  (adminUrl === null ? describe.skip : describe)(`${name} [postgres]`, () => {
    let database: PostgresTestDatabase | undefined;
    let db: Db | undefined;
    const extra: Db[] = [];
    beforeAll(async () => {
      database = await createPostgresDatabase(adminUrl ?? "");
      db = openPostgres(database.url);
      await migrateToLatest(db);
    });
    afterAll(async () => {
      await db?.destroy();
      await database?.drop();
    });
    beforeEach(async () => {
      await sql`truncate ${sql.join(TABLES.map((t) => sql.id(t)))} restart identity cascade`.execute(getDb());
    });
    afterEach(async () => {
      await Promise.all(extra.splice(0).map((d) => d.destroy()));
    });
    const getDb = (): Db => {
      if (!db) throw new Error("no database outside a test");
      return db;
    };
    suite(getDb, {
      name: "postgres",
      openConnection() {
        if (!database) throw new Error("no database outside a test");
        const other = openPostgres(database.url);
        extra.push(other);
        return other;
      },
    });
  });
}

function getTestFile(testDb: TestDatabase | undefined): string {
  if (!testDb) throw new Error("no database outside a test");
  return testDb.file;
}
