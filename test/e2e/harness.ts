import path from "node:path";

import { afterEach, expect, vi } from "vitest";

import { type RunningApp, startApp, tempDir } from "../helpers/app-harness.js";
import { createWorld } from "./scenario.js";

/** One test's world (fake GitHub and Anthropic, bare repository) and app. */
export interface E2E {
  app: RunningApp;
  world: ReturnType<typeof createWorld>;
}

/**
 * Registers an `afterEach` that stops the app and the fakes and removes the temp folder, and
 * returns `boot`, which builds a fresh world and starts the app on a new SQLite file.
 */
export function useE2E(): (options?: Parameters<typeof createWorld>[0], env?: Record<string, string>, startWorker?: boolean) => Promise<E2E> {
  let current: (E2E & { dirs: ReturnType<typeof tempDir> }) | undefined;
  afterEach(async () => {
    await current?.app.stop(0);
    current?.world.github.stop();
    current?.world.anthropic.stop();
    current?.dirs.cleanup();
    current = undefined;
  });
  return async (options = {}, env = {}, startWorker = true) => {
    const dirs = tempDir();
    const world = createWorld(options);
    const app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "workspaces"), env, startWorker });
    current = { app, world, dirs };
    return { app, world };
  };
}

/** Waits until no job is queued or running and the task rests in `state`; then lets the worker finish its hooks. */
export async function waitForState(app: RunningApp, state: string): Promise<void> {
  await vi.waitFor(
    async () => {
      const open = await app.db.selectFrom("jobs").select("id").where("state", "in", ["queued", "running"]).execute();
      expect(open).toEqual([]);
      const task = await app.db.selectFrom("tasks").select("stage").executeTakeFirstOrThrow();
      expect(task.stage).toBe(state);
    },
    { timeout: 30_000, interval: 50 },
  );
  await app.worker.idle();
}
