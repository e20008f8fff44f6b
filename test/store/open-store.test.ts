import { execFile } from "node:child_process";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { openStore, POSTGRES_MODE_MIN_NODE, supportsPostgresMode, UnsupportedRuntimeError } from "../../src/store/open-store.js";
import { TEST_APP_ID, TEST_PRIVATE_KEY, tempDir } from "../helpers/app-harness.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const TSX = path.join(ROOT, "node_modules", ".bin", "tsx");
/** Nothing listens here: a connection attempt would fail with ECONNREFUSED, not with the runtime check. */
const UNREACHABLE_URL = "postgres://mc@127.0.0.1:1/mission_control";

describe("the PostgreSQL mode's Node requirement (pg-boss 12 needs Node 22.12)", () => {
  it("supportsPostgresMode compares major, minor and patch against 22.12.0", () => {
    expect(POSTGRES_MODE_MIN_NODE).toBe("22.12.0");
    for (const v of ["22.12.0", "22.12.1", "22.13.0", "23.0.0", "24.11.1", "26.0.0"]) expect(supportsPostgresMode(v), v).toBe(true);
    for (const v of ["22.11.9", "22.0.0", "21.99.99", "20.20.2", "20.18.0", "18.20.4"]) expect(supportsPostgresMode(v), v).toBe(false);
  });

  it("openStore refuses DATABASE_URL on an older Node before connecting, naming both versions and the way out", async () => {
    const opening = openStore({ databaseUrl: UNREACHABLE_URL, databasePath: "unused.db", heartbeatSeconds: 30, nodeVersion: "22.11.0" });
    await expect(opening).rejects.toBeInstanceOf(UnsupportedRuntimeError);
    await expect(opening).rejects.toThrow(/needs Node 22\.12\.0 or later; this is Node 22\.11\.0\. Run Node 22, or unset DATABASE_URL/);
  });

  it("openStore on an older Node still opens the SQLite file when DATABASE_URL is unset", async () => {
    const dir = tempDir("mc-open-store-");
    const store = await openStore({ databasePath: path.join(dir.dir, "mc.db"), heartbeatSeconds: 30, nodeVersion: "20.18.0" });
    try {
      expect(store.backend).toBe("sqlite");
    } finally {
      await store.close();
      dir.cleanup();
    }
  });

  it.skipIf(supportsPostgresMode())(
    "src/main.ts with DATABASE_URL on this Node (< 22.12) exits 1 with the one-line reason (skipped on a Node that runs the PostgreSQL mode)",
    async () => {
      const dir = tempDir("mc-main-old-node-");
      try {
        const env = {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: dir.dir,
          APP_ID: TEST_APP_ID,
          PRIVATE_KEY: TEST_PRIVATE_KEY,
          WEBHOOK_SECRET: "secret",
          ANTHROPIC_API_KEY: "sk-ant-test",
          DATABASE_URL: UNREACHABLE_URL,
          LOG_LEVEL: "warn" as const,
        };
        const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
          execFile(TSX, [path.join(ROOT, "src", "main.ts")], { cwd: dir.dir, env, timeout: 30_000 }, (err, _stdout, stderr) => {
            resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stderr });
          });
        });
        expect(result.code).toBe(1);
        const lines = result.stderr.trim().split("\n");
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain(`needs Node 22.12.0 or later; this is Node ${process.versions.node}`);
        expect(lines[0]).not.toContain("ECONNREFUSED");
      } finally {
        dir.cleanup();
      }
    },
    40_000,
  );
});
