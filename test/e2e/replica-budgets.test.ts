import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import type { BudgetLimit } from "../../src/domain/budget-rules.js";
import { usdToNano } from "../../src/domain/money.js";
import type { Db } from "../../src/store/db.js";
import { migrateToLatest } from "../../src/store/migrate.js";
import { openPostgres } from "../../src/store/postgres.js";
import { createPostgresDatabase, type PostgresTestDatabase, postgresAdminUrl } from "../helpers/store-backends.js";

const REPLICAS = 3;
const RESERVATIONS = 40;

/** Starts one reserving process and resolves once it is connected and waiting for `go`. */
function startReplica(options: Record<string, unknown>): Promise<{ child: ChildProcess; result: Promise<{ granted: number; refused: number }> }> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "reserve-child.ts"), JSON.stringify(options)], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" },
  });
  let out = "";
  let err = "";
  child.stderr?.on("data", (chunk: Buffer) => (err += chunk.toString()));
  const result = new Promise<{ granted: number; refused: number }>((resolve, reject) => {
    child.once("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (code === 0 && line) resolve(JSON.parse(line) as { granted: number; refused: number });
      else reject(new Error(`reserving process exited ${code}: ${err.slice(-2000)}`));
    });
  });
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("READY\n")) resolve({ child, result });
    });
    child.once("exit", (code) => reject(new Error(`reserving process exited ${code} before it was ready: ${err.slice(-2000)}`)));
  });
}

const adminUrl = postgresAdminUrl();
(adminUrl === null ? describe.skip : describe)("budgets across processes on one PostgreSQL database", () => {
  let database: PostgresTestDatabase | undefined;
  let db: Db | undefined;
  beforeAll(async () => {
    database = await createPostgresDatabase(adminUrl ?? "");
    db = openPostgres(database.url);
    await migrateToLatest(db);
  });
  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  it(`${RESERVATIONS} concurrent reservations from ${REPLICAS} processes against a limit that fits 10 grant exactly 10`, async () => {
    const limit: BudgetLimit = { scope: "global", period: "daily", limitNanoUsd: usdToNano(1), threshold: 0.8, action: "block", source: "server" };
    const shares = Array.from({ length: REPLICAS }, (_, i) => Math.floor(RESERVATIONS / REPLICAS) + (i < RESERVATIONS % REPLICAS ? 1 : 0));
    const replicas = await Promise.all(
      shares.map((reservations, replica) => startReplica({ url: database?.url, replica, reservations, limit, amountNanoUsd: usdToNano(0.1) })),
    );
    for (const { child } of replicas) child.stdin?.write("go\n");
    const results = await Promise.all(replicas.map((r) => r.result));

    expect(results.reduce((sum, r) => sum + r.granted, 0)).toBe(10);
    expect(results.reduce((sum, r) => sum + r.refused, 0)).toBe(RESERVATIONS - 10);
    const held = await (db as Db).selectFrom("budget_reservations").select(["amount_nano_usd"]).execute();
    expect(held).toHaveLength(10);
    expect(held.reduce((sum, r) => sum + Number(r.amount_nano_usd), 0)).toBe(usdToNano(1));
  }, 60_000);
});
