import { run } from "probot";

import { createApp } from "./app.js";
import { parseServerEnv } from "./config/env.js";
import type { Worker } from "./jobs/worker.js";
import { migrateToLatest, openDatabase } from "./ledger/db.js";
import { createLogger } from "./logger.js";

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
  const log = createLogger(process.env.LOG_LEVEL ?? "info");
  const hasKey = Boolean(process.env.PRIVATE_KEY || process.env.PRIVATE_KEY_PATH);
  if (!process.env.APP_ID || !hasKey) {
    log.info("APP_ID or the private key is missing: starting Probot's setup page to register the GitHub App");
    await run(() => {}, { log });
    return;
  }

  const env = parseServerEnv(process.env);
  const db = openDatabase(env.DATABASE_PATH);
  await migrateToLatest(db);
  let worker: Worker | undefined;
  const server = await run(createApp({ env, db, log, onWorker: (w) => (worker = w) }), { log });

  const shutdown = async (signal: string) => {
    log.info({ signal }, "shutting down: no new jobs, waiting for running ones");
    await server.stop().catch((err: unknown) => log.error({ err }, "stopping the HTTP server failed"));
    await worker?.stop(30_000);
    await db.destroy();
    log.info("stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
}

main().catch((err: unknown) => {
  // Start-up errors (invalid environment, unreadable database) are fatal and printed plainly.
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
