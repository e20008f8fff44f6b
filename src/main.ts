import { getPrivateKey } from "@probot/get-private-key";
import { run } from "probot";

import { bootstrapLogLevel, parseServerEnv } from "./config/env.js";
import { openStore } from "./store/open-store.js";
import { createLogger } from "./app/logger.js";
import { startMissionControl, stopOnSignals } from "./app/server.js";

/** Milliseconds running jobs get to finish on SIGTERM before they are aborted and released. */
const SHUTDOWN_DEADLINE_MS = 30_000;

/**
 * Start-up: environment → store (SQLite, or PostgreSQL with pg-boss) and migrations → Probot server and worker. Without APP_ID
 * and a private key, Probot's own setup page runs instead, and registers the GitHub App from
 * app.yml (then restart).
 */
async function main(): Promise<void> {
  try {
    process.loadEnvFile(".env");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const log = createLogger(bootstrapLogLevel(process.env));
  const privateKey = getPrivateKey({ env: process.env });
  if (!process.env.APP_ID || !privateKey) {
    log.info("APP_ID or the private key is missing: starting Probot's setup page to register the GitHub App");
    await run(() => {}, { log });
    return;
  }

  const env = parseServerEnv(process.env);
  // DATABASE_URL selects PostgreSQL (tables and the pg-boss queue, shared by replicas); else the SQLite file.
  const store = await openStore({
    databaseUrl: env.DATABASE_URL,
    databasePath: env.DATABASE_PATH,
    heartbeatSeconds: env.JOB_HEARTBEAT_SECONDS,
    onError: (err) => log.warn({ err }, "database or job queue error"),
  });
  log.info({ backend: store.backend }, store.backend === "postgres" ? "store: PostgreSQL with the pg-boss queue" : `store: SQLite file ${env.DATABASE_PATH}`);
  const app = await startMissionControl({ env, db: store.db, scheduler: store.scheduler, log, privateKey });
  log.info({ port: app.port }, "Mission Control is ready");

  stopOnSignals(app, store, log, SHUTDOWN_DEADLINE_MS);
}

main().catch((err: unknown) => {
  // Start-up errors (invalid environment, unreadable database) are fatal and printed plainly.
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
