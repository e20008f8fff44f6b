import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";

import { migrateToLatest } from "../../src/store/db.js";
import { migrations } from "../../src/store/migrations/index.js";
import { openPostgres } from "../../src/store/postgres.js";
import { createPostgresDatabase, postgresAdminUrl, type PostgresTestDatabase } from "../helpers/store-backends.js";

const adminUrl = postgresAdminUrl();

// Skipped with the one line printed by test/global-setup.ts when PostgreSQL did not answer.
(adminUrl === null ? describe.skip : describe)("migrations on PostgreSQL", () => {
  let database: PostgresTestDatabase | undefined;
  afterEach(async () => {
    await database?.drop();
    database = undefined;
  });

  it("four replicas starting together migrate once (transaction-scoped advisory lock); a later start is a no-op", async () => {
    database = await createPostgresDatabase(adminUrl ?? "");
    const url = database.url;
    const replicas = Array.from({ length: 4 }, () => openPostgres(url, { maxConnections: 2 }));
    try {
      await Promise.all(replicas.map((db) => migrateToLatest(db)));
      const [first] = replicas;
      if (!first) throw new Error("no replica");
      const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(first);
      expect(applied.rows.map((r) => r.name)).toEqual(Object.keys(migrations).sort());
      await migrateToLatest(first);
      expect((await sql`select name from kysely_migration`.execute(first)).rows).toHaveLength(Object.keys(migrations).length);

      // Epoch-ms and GitHub-id columns are bigint; money is integer nano-dollars (bigint), never a float.
      const types = await sql<{ table_name: string; column_name: string; data_type: string }>`
        select table_name, column_name, data_type from information_schema.columns
         where table_schema = 'public' and column_name in ('created_at', 'tracking_comment_id', 'cost_usd', 'amount_usd', 'cost_nano_usd', 'amount_nano_usd', 'task_id')
           and table_name in ('tasks', 'llm_usage', 'budget_reservations', 'jobs')`.execute(first);
      const typeOf = (table: string, column: string) => types.rows.find((r) => r.table_name === table && r.column_name === column)?.data_type;
      expect(typeOf("tasks", "created_at")).toBe("bigint");
      expect(typeOf("tasks", "tracking_comment_id")).toBe("bigint");
      expect(typeOf("llm_usage", "cost_nano_usd")).toBe("bigint");
      expect(typeOf("budget_reservations", "amount_nano_usd")).toBe("bigint");
      expect(typeOf("llm_usage", "cost_usd")).toBeUndefined();
      expect(typeOf("budget_reservations", "amount_usd")).toBeUndefined();
      const nullable = await sql<{ is_nullable: string }>`
        select is_nullable from information_schema.columns where table_name = 'jobs' and column_name = 'task_id'`.execute(first);
      expect(nullable.rows[0]?.is_nullable).toBe("YES");
    } finally {
      await Promise.all(replicas.map((db) => db.destroy()));
    }
  });

  it("a failing migration leaves nothing behind (one transaction)", async () => {
    database = await createPostgresDatabase(adminUrl ?? "");
    const db = openPostgres(database.url, { maxConnections: 1 });
    try {
      await sql`create table deliveries (x int)`.execute(db); // the first migration's table: it fails
      await expect(migrateToLatest(db)).rejects.toThrow(/already exists/);
      const tables = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = 'public' order by 1`.execute(db);
      expect(tables.rows.map((r) => r.table_name)).toEqual(["deliveries"]);
    } finally {
      await db.destroy();
    }
  });
});
