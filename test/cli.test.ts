import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { openPostgres } from "../src/store/postgres.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { seedInstallation } from "./helpers/sqlite-installation.js";
import { createPostgresDatabase, postgresAdminUrl, type PostgresTestDatabase } from "./helpers/store-backends.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const TSX = path.join(ROOT, "node_modules", ".bin", "tsx");
const CLI = path.join(ROOT, "src", "cli.ts");
const PASSWORD = "s3cret-Pa55word";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `mission-control <args>` (src/cli.ts through tsx) in `cwd`, with an environment that has
 * no DATABASE_PATH or DATABASE_URL unless `env` gives one (a `.env` in `cwd` is read by the CLI).
 */
function runCli(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      TSX,
      [CLI, ...args],
      { cwd, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `url` with user `postgres` and a password (trust auth accepts it; it must never be printed). */
function withPassword(url: string): string {
  const parsed = new URL(url);
  parsed.username = "postgres";
  parsed.password = PASSWORD;
  return parsed.toString();
}

describe("mission-control CLI", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mc-cli-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("prints its usage with --help", async () => {
    const run = await runCli(["migrate-sqlite-to-postgres", "--help"], dir);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    expect(run.stdout).toContain("migrate-sqlite-to-postgres");
    expect(run.stdout).toContain("--skip-live-jobs");
  });

  it("fails in one line, without a stack or the password, for a missing file, a bad URL, an unreachable database, an unknown option", async () => {
    const missing = path.join(dir, "data", "mission-control.sqlite");
    // The missing file comes from DATABASE_PATH in .env, as for the server.
    await writeFile(path.join(dir, ".env"), `DATABASE_PATH=${missing}\n`);
    const sqlite = await createTestDatabase();
    try {
      const runs = await Promise.all([
        runCli(["migrate-sqlite-to-postgres", "--to", `postgres://u:${PASSWORD}@127.0.0.1:5432/db`], dir),
        runCli(["migrate-sqlite-to-postgres", "--from", sqlite.file, "--to", `mysql://u:${PASSWORD}@127.0.0.1/db`], dir),
        runCli(["migrate-sqlite-to-postgres", "--from", sqlite.file, "--to", "not a url"], dir),
        runCli(["migrate-sqlite-to-postgres", "--from", sqlite.file], dir),
        runCli(["migrate-sqlite-to-postgres", "--from", sqlite.file, `--to=postgres://u:${PASSWORD}@127.0.0.1:1/db`], dir),
        runCli(["migrate-sqlite-to-postgres", "--form", sqlite.file], dir),
        runCli(["migrate-postgres-to-sqlite"], dir),
      ]);
      const [missingFile, mysql, notUrl, noUrl, unreachable, typo, unknown] = runs;
      for (const run of runs) {
        expect(run.code, run.stderr).toBe(1);
        expect(run.stdout).toBe("");
        expect(run.stderr.trimEnd().split("\n"), run.stderr).toHaveLength(1);
        expect(run.stderr).toMatch(/^mission-control: /);
        expect(run.stderr).not.toMatch(/\bat .*\(.*:\d+:\d+\)|node:internal/);
        expect(run.stderr).not.toContain(PASSWORD);
      }
      expect(missingFile?.stderr).toBe(`mission-control: no SQLite file at ${missing} (nothing was created)\n`);
      expect(existsSync(path.dirname(missing))).toBe(false);
      expect(mysql?.stderr).toContain("must be a postgres:// or postgresql:// URL");
      expect(notUrl?.stderr).toContain("is not a valid URL");
      expect(noUrl?.stderr).toContain("pass --to postgres://… or set DATABASE_URL");
      expect(unreachable?.stderr).toMatch(/^mission-control: cannot connect to PostgreSQL at postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/db: .*ECONNREFUSED/);
      expect(typo?.stderr).toContain("--form");
      expect(unknown?.stderr).toContain('unknown command "migrate-postgres-to-sqlite"');
    } finally {
      await sqlite.cleanup();
      await rm(path.join(dir, ".env"), { force: true });
    }
  }, 90_000);

  const adminUrl = postgresAdminUrl();
  // Skipped with the one line printed by test/global-setup.ts when PostgreSQL did not answer.
  (adminUrl === null ? describe.skip : describe)("migrate-sqlite-to-postgres against PostgreSQL", () => {
    let sqlite: TestDatabase;
    let database: PostgresTestDatabase;
    beforeAll(async () => {
      sqlite = await createTestDatabase();
      database = await createPostgresDatabase(adminUrl ?? "");
    });
    afterAll(async () => {
      await database?.drop();
      await sqlite?.cleanup();
    });

    it("copies an installation, prints a per-table summary without the password, refuses live jobs, and copies nothing on a second run", async () => {
      const { taskIds } = await seedInstallation(sqlite.db);
      const url = withPassword(database.url);
      const redacted = url.replace(PASSWORD, "***");

      const first = await runCli(["migrate-sqlite-to-postgres", "--from", sqlite.file, "--to", url], dir);
      expect(first.stderr).toBe("");
      expect(first.code).toBe(0);
      expect(`${first.stdout}${first.stderr}`).not.toContain(PASSWORD);
      const lines = first.stdout.trimEnd().split("\n");
      expect(lines[0]).toBe(`Copying ${sqlite.file} → ${redacted}`);
      expect(lines[1]).toMatch(/^table\s+read\s+inserted\s+skipped$/);
      expect(lines).toContainEqual(expect.stringMatching(/^tasks\s+3\s+3\s+0$/));
      expect(lines).toContainEqual(expect.stringMatching(/^transitions\s+\d+\s+\d+\s+0$/));
      expect(lines).toContainEqual(expect.stringMatching(/^llm_usage\s+3\s+3\s+0$/));
      expect(lines).toContainEqual(expect.stringMatching(/^budget_reservations\s+5\s+5\s+0$/));
      expect(lines).toContain("3 finished job(s) were not copied (the queue's history; on PostgreSQL the queue is pg-boss).");
      expect(lines.at(-1)).toMatch(/^Done: \d+ row\(s\) copied, 0 already in PostgreSQL, \d+ read\.$/);

      const pg = openPostgres(database.url, { maxConnections: 1 });
      try {
        const tasks = await sql<{ id: number }>`select id from tasks order by id`.execute(pg);
        expect(tasks.rows.map((r) => r.id)).toEqual(taskIds);
      } finally {
        await pg.destroy();
      }

      // A job queued since: refused, with its count; then copied past it with the flag.
      await sql`insert into jobs (kind, task_id, installation_id, lock_key, dedupe_key, payload, state, attempts, max_attempts, run_after, created_at, updated_at)
                values ('code', ${taskIds[0] ?? 0}, 1, 'octo-org/widgets#12', 'code:live', '{}', 'queued', 0, 5, 0, 0, 0)`.execute(sqlite.db);
      const refused = await runCli(["migrate-sqlite-to-postgres", "--from", sqlite.file, "--to", url], dir);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe(
        "mission-control: 1 job(s) are queued or running in the SQLite file and would be lost: stop the app, let it finish, or pass --skip-live-jobs\n",
      );

      const again = await runCli(["migrate-sqlite-to-postgres", "--from", sqlite.file, "--to", url, "--skip-live-jobs"], dir);
      expect(again.stderr).toBe("");
      expect(again.code).toBe(0);
      expect(again.stdout).toContain("1 queued or running job(s) were skipped (--skip-live-jobs): they were not copied.");
      expect(again.stdout).toMatch(/^tasks\s+3\s+0\s+3$/m);
      expect(again.stdout).toMatch(/Done: 0 row\(s\) copied, \d+ already in PostgreSQL/);
      expect(again.stdout).not.toContain(PASSWORD);
    }, 90_000);
  });
});
