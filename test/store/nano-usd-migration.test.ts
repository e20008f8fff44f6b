import { type Kysely, Migrator, sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";

import { type Db, migrateToLatest, openDatabase } from "../../src/store/db.js";
import { dialectOf } from "../../src/store/dialect.js";
import { migrations } from "../../src/store/migrations/index.js";
import { openPostgres } from "../../src/store/postgres.js";
import { recordUsage, usageTotalsForTask } from "../../src/store/usage.js";
import { createPostgresDatabase, postgresAdminUrl, type PostgresTestDatabase } from "../helpers/store-backends.js";

const NANO_USD = "2026-11-28T0000-nano-usd";
const BEFORE_NANO_USD = Object.keys(migrations)
  .sort()
  .filter((name) => name < NANO_USD)
  .at(-1)!;

async function migrateTo(db: Db, name: string): Promise<void> {
  const { error } = await new Migrator({ db: db as Kysely<unknown>, provider: { getMigrations: () => Promise.resolve(migrations) } }).migrateTo(name);
  if (error) throw error instanceof Error ? error : new Error("migration failed", { cause: error });
}

/** Float costs as the old code wrote them (tokens × USD/MTok / 10⁶), and what each must become. */
const COSTS: Array<[id: number, costUsd: number, nanoUsd: number]> = [
  [1, (1_000 * 2 + 500 * 10 + 200 * 2.5 + 3_000 * 0.2) / 1_000_000, 8_100_000], // 0.0081
  [2, 0.1 + 0.2, 300_000_000], // 0.30000000000000004
  [3, 0.0181 + 0.0226, 40_700_000], // 0.040699999999999996
  [7, 10.5, 10_500_000_000], // ids are kept, gaps too
  [8, 0, 0],
];
const AMOUNTS: Array<[id: number, amountUsd: number, nanoUsd: number, status: string]> = [
  [1, 0.09, 90_000_000, "settled"],
  [4, 2.01, 2_010_000_000, "held"],
  [5, 0.7 + 0.1, 800_000_000, "released"], // 0.7999999999999999
];

/** Writes rows into the pre-migration (float) tables, with raw SQL: the store no longer knows those columns. */
async function seedFloatRows(db: Db): Promise<void> {
  for (const [id, costUsd] of COSTS) {
    await sql`insert into llm_usage (id, created_at, installation_id, repository, subject_number, task_id, job_id, agent, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, request_id)
      values (${id}, ${1_800_000_000_000 + id}, 1, 'o/r', 1, 42, null, 'coder', 'claude-sonnet-5-5', 1, 2, 3, 4, ${costUsd}, ${`req_${id}`})`.execute(db);
  }
  for (const [id, amountUsd, , status] of AMOUNTS) {
    await sql`insert into budget_reservations (id, created_at, installation_id, repository, agent, task_id, job_id, amount_usd, status, settled_at)
      values (${id}, ${1_800_000_000_000 + id}, 1, 'o/r', 'coder', 42, null, ${amountUsd}, ${status}, null)`.execute(db);
  }
  if (dialectOf(db) === "postgres") {
    // Explicit ids do not move a serial's sequence; the app never writes ids, so follow them as it would have.
    await sql`select setval(pg_get_serial_sequence('llm_usage', 'id'), 8)`.execute(db);
    await sql`select setval(pg_get_serial_sequence('budget_reservations', 'id'), 5)`.execute(db);
  }
}

/** The backfill kept every row and id and rounded every float to the nano-dollar it stood for. */
async function expectBackfilled(db: Db): Promise<void> {
  const usage = await db.selectFrom("llm_usage").select(["id", "cost_nano_usd", "request_id", "input_tokens"]).orderBy("id").execute();
  expect(usage).toEqual(COSTS.map(([id, , nanoUsd]) => ({ id, cost_nano_usd: nanoUsd, request_id: `req_${id}`, input_tokens: 1 })));
  const held = await db.selectFrom("budget_reservations").select(["id", "amount_nano_usd", "status"]).orderBy("id").execute();
  expect(held).toEqual(AMOUNTS.map(([id, , nanoUsd, status]) => ({ id, amount_nano_usd: nanoUsd, status })));
  // The sum is exact: 0.0081 + 0.30000000000000004 + 0.040699999999999996 + 10.5 in floats is not 10.8488.
  expect((await usageTotalsForTask(db, 42)).cost_nano_usd).toBe(10_848_800_000);

  // New rows get new ids (the id sequence survived the rebuild) and integer money only.
  await recordUsage(db, {
    created_at: 1_800_000_000_100,
    installation_id: 1,
    repository: "o/r",
    subject_number: 1,
    task_id: 42,
    job_id: null,
    agent: "coder",
    model: "claude-sonnet-5-5",
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 1_000_000,
    cost_nano_usd: 30_000_000,
    request_id: null,
  });
  const last = await db.selectFrom("llm_usage").select(["id"]).orderBy("id", "desc").executeTakeFirstOrThrow();
  expect(last.id).toBe(9);
}

describe("2026-11-28T0000-nano-usd on SQLite", () => {
  it("rebuilds both tables, backfills integer nano-dollars from the floats, keeps ids; down goes back to float USD", async () => {
    const db = openDatabase(":memory:");
    try {
      await migrateTo(db, BEFORE_NANO_USD);
      await seedFloatRows(db);
      await migrateToLatest(db);
      await expectBackfilled(db);
      const columns = await sql<{ name: string }>`select name from pragma_table_info('llm_usage')`.execute(db);
      expect(columns.rows.map((c) => c.name)).not.toContain("cost_usd");

      await migrateTo(db, BEFORE_NANO_USD);
      const back = await sql<{ id: number; cost_usd: number }>`select id, cost_usd from llm_usage order by id`.execute(db);
      expect(back.rows.slice(0, 5)).toEqual(COSTS.map(([id, , nanoUsd]) => ({ id, cost_usd: nanoUsd / 1e9 })));
    } finally {
      await db.destroy();
    }
  });
});

const adminUrl = postgresAdminUrl();

(adminUrl === null ? describe.skip : describe)("2026-11-28T0000-nano-usd on PostgreSQL", () => {
  let database: PostgresTestDatabase | undefined;
  afterEach(async () => {
    await database?.drop();
    database = undefined;
  });

  it("adds bigint columns, backfills them through numeric, drops the floats; down goes back to double precision", async () => {
    database = await createPostgresDatabase(adminUrl ?? "");
    const db = openPostgres(database.url, { maxConnections: 2 });
    try {
      await migrateTo(db, BEFORE_NANO_USD);
      await seedFloatRows(db);
      await migrateToLatest(db);
      await expectBackfilled(db);

      const types = await sql<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>`
        select table_name, column_name, data_type, is_nullable from information_schema.columns
         where table_schema = 'public' and table_name in ('llm_usage', 'budget_reservations') and column_name like '%usd%'
         order by table_name, column_name`.execute(db);
      expect(types.rows).toEqual([
        { table_name: "budget_reservations", column_name: "amount_nano_usd", data_type: "bigint", is_nullable: "NO" },
        { table_name: "llm_usage", column_name: "cost_nano_usd", data_type: "bigint", is_nullable: "NO" },
      ]);
      await expect(
        sql`insert into llm_usage (created_at, installation_id, repository, agent, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_nano_usd)
        values (1, 1, 'o/r', 'coder', 'm', 0, 0, 0, 0, -1)`.execute(db),
      ).rejects.toThrow(/llm_usage_cost_nano_usd_nonnegative/);

      await migrateTo(db, BEFORE_NANO_USD);
      const back = await sql<{ id: number; cost_usd: number }>`select id, cost_usd from llm_usage where id <= 8 order by id`.execute(db);
      expect(back.rows).toEqual(COSTS.map(([id, , nanoUsd]) => ({ id, cost_usd: nanoUsd / 1e9 })));
      const floats = await sql<{ data_type: string }>`
        select data_type from information_schema.columns where table_name = 'budget_reservations' and column_name = 'amount_usd'`.execute(db);
      expect(floats.rows).toEqual([{ data_type: "double precision" }]);
    } finally {
      await db.destroy();
    }
  });
});
