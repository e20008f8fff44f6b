import { getPrivateKey } from "@probot/get-private-key";
import { run } from "probot";

import { bootstrapLogLevel, parseServerEnv } from "./config/env.js";
import { migrateToLatest, openDatabase } from "./store/db.js";
import { createLogger } from "./app/logger.js";
import { startMissionControl, stopOnSignals } from "./app/server.js";

/** Milliseconds running jobs get to finish on SIGTERM before they are aborted and released. */
const SHUTDOWN_DEADLINE_MS = 30_000;

/**
 * Start-up: environment → database and migrations → Probot server and worker. Without APP_ID
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
  const db = openDatabase(env.DATABASE_PATH);
  await migrateToLatest(db);
  const app = await startMissionControl({ env, db, log, privateKey });
  log.info({ port: app.port }, "Mission Control is ready");

  stopOnSignals(app, db, log, SHUTDOWN_DEADLINE_MS);
}

main().catch((err: unknown) => {
  // Start-up errors (invalid environment, unreadable database) are fatal and printed plainly.
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
