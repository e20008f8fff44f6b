import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { type Db, migrateToLatest, openDatabase } from "../../src/store/db.js";
import type { NewLlmUsage, NewTask } from "../../src/store/schema.js";

/** A migrated SQLite database in a fresh temporary folder. */
export interface TestDatabase {
  db: Db;
  /** Path of the SQLite file: open it again with `openDatabase` to get a second connection. */
  file: string;
  /** Destroys the Kysely instance and removes the temporary folder. */
  cleanup(): Promise<void>;
}

/** Creates a real SQLite file (WAL mode) in a new temp dir and applies every migration. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const dir = await mkdtemp(path.join(tmpdir(), "mc-test-db-"));
  const file = path.join(dir, "test.sqlite");
  const db = openDatabase(file);
  try {
    await migrateToLatest(db);
  } catch (err) {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let cleaned = false;
  return {
    db,
    file,
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await db.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let issueCounter = 0;

/**
 * Inserts a row into `tasks` and returns its id. Each call uses a new issue number unless
 * `overrides.issue_number` is given (owner/repo/issue_number is unique).
 */
export async function insertTask(db: Db, overrides: Partial<NewTask> = {}): Promise<number> {
  const now = Date.now();
  issueCounter += 1;
  const row: NewTask = {
    installation_id: 1,
    owner: "octo-org",
    repo: "octo-repo",
    issue_number: issueCounter,
    run: 1,
    stage: "planning",
    triggered_by: "octocat",
    clone_url: "https://github.com/octo-org/octo-repo.git",
    default_branch: "main",
    config: "{}",
    created_at: now,
    updated_at: now,
    ...overrides,
  };
  const inserted = await db.insertInto("tasks").values(row).returning("id").executeTakeFirstOrThrow();
  return inserted.id;
}

/**
 * An `llm_usage` row of no tokens and no cost (1 installation, `octo-org/octo-repo`, architect on
 * claude-sonnet-5-5, no task or job, at `1_800_000_000_000`), with `overrides` applied.
 */
export function usageRow(overrides: Partial<NewLlmUsage> = {}): NewLlmUsage {
  return {
    created_at: 1_800_000_000_000,
    installation_id: 1,
    repository: "octo-org/octo-repo",
    subject_number: 1,
    task_id: null,
    job_id: null,
    agent: "architect",
    model: "claude-sonnet-5-5",
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cost_nano_usd: 0,
    request_id: null,
    ...overrides,
  };
}
