import pino from "pino";
import { describe, expect, it } from "vitest";

import { periodicTasks } from "../../src/app/server.js";
import { parseServerEnv } from "../../src/config/env.js";
import { parseNotificationsConfig } from "../../src/config/notifications.js";
import { Notifier } from "../../src/pipeline/notifications.js";
import type { Db } from "../../src/store/db.js";

const env = parseServerEnv({ APP_ID: "1", WEBHOOK_SECRET: "s", ANTHROPIC_API_KEY: "sk-ant-test-0123456789abcdefghij" });
const log = pino({ level: "silent" });
const db = {} as Db; // the tasks are only listed here, never run

function notifier(routes: Record<string, string[]>) {
  const config = parseNotificationsConfig({ channels: { ops: { type: "slack", url: "https://hooks.example.test/ops" } }, routes }, {});
  return new Notifier({ config, channels: new Map(), githubWebUrl: "https://github.com", log });
}

describe("periodicTasks", () => {
  it("runs the daily digest with the app's own notifier, and only when notifications are on", () => {
    const names = (n?: Notifier) => periodicTasks(env, db, log, n).map((t) => t.name);
    expect(names()).toEqual(["sweep-reservations", "prune-workspaces", "orchestrator-tick"]);
    expect(names(notifier({ daily_digest: ["ops"] }))).toEqual(["sweep-reservations", "prune-workspaces", "notification-digest", "orchestrator-tick"]);
  });
});
