#!/usr/bin/env node
// `mission-control <command>`: operator commands, run beside (never inside) the server. Process
// entry only, like main.ts: parse the arguments, call the store, print, exit 0 or 1.
import { parseArgs } from "node:util";

import { ServerEnvVariables } from "./config/env.js";
import type { Db } from "./store/db.js";
import { checkConnection, type CopyResult, copySqliteToPostgres, openSqliteSource } from "./store/copy-to-postgres.js";

/** Milliseconds PostgreSQL has to answer a first query before the command gives up. */
const CONNECT_TIMEOUT_MS = 10_000;

/** Milliseconds closing the PostgreSQL pool may take before the command exits regardless. */
const CLOSE_TIMEOUT_MS = 2_000;

const USAGE = `Usage: mission-control <command> [options]

Commands:
  migrate-sqlite-to-postgres   Copy an SQLite installation into PostgreSQL: every table (tasks,
                               transitions, deliveries, the LLM usage ledger, budgets, pauses,
                               repository memory, stand-up schedules and proposals, ...) but the
                               job queue and the dashboard's sign-in sessions.

Options of migrate-sqlite-to-postgres:
  --from <path>      SQLite file to copy (default: DATABASE_PATH, else data/mission-control.sqlite).
                     Never created: a missing file is an error.
  --to <url>         postgres:// or postgresql:// connection string (default: DATABASE_URL).
                     Its migrations run first.
  --skip-live-jobs   Copy although jobs are queued or running in the SQLite file; those jobs are
                     not copied (the job queue never is: on PostgreSQL it is pg-boss).
  -h, --help         Show this text.

Stop the app first. The copy is one transaction (all or nothing) and idempotent: running it
again inserts only rows PostgreSQL does not have yet and never changes a row it has.
Then set DATABASE_URL and start the app.
`;

/** An error the operator can fix; printed as one line, without a stack. */
class CliError extends Error {}

/** `postgres://user:secret@host/db` → `postgres://user:***@host/db`. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(invalid URL)";
  }
}

/** The passwords of every URL the command was given (arguments, DATABASE_URL), as written and URL-decoded. */
function passwordsIn(values: readonly (string | undefined)[]): string[] {
  const secrets: string[] = [];
  for (const value of values) {
    if (!value) continue;
    let password = "";
    try {
      password = new URL(value.replace(/^--[\w-]+=/, "")).password;
    } catch {
      continue;
    }
    if (!password) continue;
    secrets.push(password);
    try {
      secrets.push(decodeURIComponent(password));
    } catch {
      // only as written
    }
  }
  return secrets;
}

/** `text` with every password of `values` replaced by `***`, in case a driver's message quotes one. */
function withoutPasswords(text: string, values: readonly (string | undefined)[]): string {
  return passwordsIn(values).reduce((t, secret) => t.split(secret).join("***"), text);
}

function loadDotEnv(): void {
  try {
    process.loadEnvFile(".env");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

function parseTargetUrl(url: string | undefined): string {
  if (!url) throw new CliError("no PostgreSQL database given: pass --to postgres://… or set DATABASE_URL");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CliError("--to (or DATABASE_URL) is not a valid URL: expected postgres://user:password@host:5432/database");
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new CliError(`--to (or DATABASE_URL) must be a postgres:// or postgresql:// URL, not ${parsed.protocol}//…`);
  }
  if (!parsed.hostname) throw new CliError("--to (or DATABASE_URL) names no host: expected postgres://user:password@host:5432/database");
  return url;
}

function summary(result: CopyResult, skipLiveJobs: boolean): string[] {
  const header = ["table", "read", "inserted", "skipped"];
  const rows = result.tables.map((t) => [t.table, String(t.read), String(t.inserted), String(t.skipped)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  const lines = [line(header), ...rows.map(line)];
  const total = (key: "read" | "inserted" | "skipped") => result.tables.reduce((sum, t) => sum + t[key], 0);
  for (const t of result.tables) {
    if (t.differing > 0) {
      lines.push(`warning: ${t.differing} row(s) of ${t.table} were already in PostgreSQL with different content; the PostgreSQL rows were kept`);
    }
    if (t.sourceOnlyColumns.length > 0) {
      lines.push(`warning: column(s) ${t.sourceOnlyColumns.join(", ")} of ${t.table} do not exist in PostgreSQL and were not copied`);
    }
  }
  const { live, finished } = result.jobsNotCopied;
  if (skipLiveJobs) lines.push(`${live} queued or running job(s) were skipped (--skip-live-jobs): they were not copied.`);
  if (finished > 0) lines.push(`${finished} finished job(s) were not copied (the queue's history; on PostgreSQL the queue is pg-boss).`);
  lines.push(`Done: ${total("inserted")} row(s) copied, ${total("skipped")} already in PostgreSQL, ${total("read")} read.`);
  return lines;
}

/**
 * Ends the pool, waiting at most `ms`: a connection attempt that never answered (the reason the
 * command gives up) would keep `destroy()` waiting; the process exits right after anyway.
 */
async function closeWithin(db: Db, ms: number): Promise<void> {
  await Promise.race([db.destroy().catch(() => undefined), new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
}

/** Resolves when `promise` does, or rejects after `ms` with `message`. */
async function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CliError(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function migrateSqliteToPostgres(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      from: { type: "string" },
      to: { type: "string" },
      "skip-live-jobs": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const from = values.from ?? (process.env.DATABASE_PATH || ServerEnvVariables.shape.DATABASE_PATH.parse(undefined));
  const to = parseTargetUrl(values.to ?? process.env.DATABASE_URL);
  const skipLiveJobs = values["skip-live-jobs"];

  const source = openSqliteSource(from);
  let target: Db | undefined;
  try {
    // Loaded only here: nothing else of the command needs pg (the SQLite mode never loads it).
    const { openPostgres } = await import("./store/postgres.js");
    target = openPostgres(to, { maxConnections: 2 });
    const where = redactUrl(to);
    try {
      await within(checkConnection(target), CONNECT_TIMEOUT_MS, `PostgreSQL at ${where} did not answer within ${CONNECT_TIMEOUT_MS / 1000} s`);
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`cannot connect to PostgreSQL at ${where}: ${err instanceof Error ? err.message || err.name : String(err)}`);
    }
    process.stdout.write(`Copying ${from} → ${where}\n`);
    const result = await copySqliteToPostgres(source, target, { skipLiveJobs });
    process.stdout.write(`${summary(result, skipLiveJobs).join("\n")}\n`);
    return 0;
  } finally {
    await source.destroy();
    if (target) await closeWithin(target, CLOSE_TIMEOUT_MS);
  }
}

async function main(argv: string[]): Promise<number> {
  loadDotEnv();
  const [command, ...rest] = argv;
  if (command === undefined) {
    process.stderr.write(USAGE);
    return 1;
  }
  if (command === "-h" || command === "--help" || command === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === "migrate-sqlite-to-postgres") return migrateSqliteToPostgres(rest);
  throw new CliError(`unknown command ${JSON.stringify(command)}: see mission-control --help`);
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // One line, no stack: operator errors (refusals, bad arguments, an unreachable database) and
    // anything else alike; the connection string's password never appears.
    const message = err instanceof Error ? err.message || err.name : String(err);
    const line = withoutPasswords(message, [...argv, process.env.DATABASE_URL]).replace(/\s*\n\s*/g, " ");
    process.stderr.write(`mission-control: ${line}\n`);
    // A connection attempt that never answered may still hold the event loop open.
    process.exit(1);
  },
);
