import { writeFileSync } from "node:fs";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { channelsFor, loadNotificationsConfig, NO_NOTIFICATIONS, parseNotificationsConfig } from "../../src/config/notifications.js";
import { parseRepoConfig } from "../../src/config/repo-config.js";
import { ConfigError } from "../../src/domain/errors.js";
import { tempDir } from "../helpers/app-harness.js";

let dirs: ReturnType<typeof tempDir> | undefined;
afterEach(() => {
  dirs?.cleanup();
  dirs = undefined;
});

const FILE = `
channels:
  ops: { type: slack, url_env: SLACK_WEBHOOK_URL }
  oncall: { type: telegram, bot_token_env: TELEGRAM_BOT_TOKEN, chat_id: -1001234, api_url: "https://api.telegram.org/" }
  finance: { type: email, smtp_url_env: SMTP_URL, from: "mc@example.com", to: ["a@example.com"] }
  hooks: { type: webhook, url: "https://hooks.example.com/in", secret_env: NOTIFY_WEBHOOK_SECRET, repositories: true }
routes:
  budget_threshold: [ops]
  budget_exceeded: [ops, finance]
  task_failed: [oncall]
  daily_digest: [finance]
digest: { hour_utc: 6 }
`;
const ENV = {
  SLACK_WEBHOOK_URL: "https://hooks.slack.com/services/T/B/X",
  TELEGRAM_BOT_TOKEN: "1:abc",
  SMTP_URL: "smtp://u:p@mail.example.com:587",
  NOTIFY_WEBHOOK_SECRET: "s",
};

function write(text: string): string {
  dirs = tempDir();
  const file = path.join(dirs.dir, "n.yml");
  writeFileSync(file, text);
  return file;
}

describe("NOTIFICATIONS_FILE", () => {
  it("reads channels with their secrets from the environment, routes and the digest hour", () => {
    const config = loadNotificationsConfig(write(FILE), ENV);
    expect([...config.channels.values()]).toEqual([
      { name: "ops", repositories: false, type: "slack", url: ENV.SLACK_WEBHOOK_URL },
      { name: "oncall", repositories: false, type: "telegram", botToken: "1:abc", chatId: "-1001234", apiUrl: "https://api.telegram.org" },
      { name: "finance", repositories: false, type: "email", smtpUrl: ENV.SMTP_URL, from: "mc@example.com", to: ["a@example.com"] },
      { name: "hooks", repositories: true, type: "webhook", url: "https://hooks.example.com/in", secret: "s" },
    ]);
    expect(config.routes.budget_exceeded).toEqual(["ops", "finance"]);
    expect(config.digestHourUtc).toBe(6);
  });

  it("unset means no notifications", () => {
    expect(loadNotificationsConfig(undefined, {})).toBe(NO_NOTIFICATIONS);
  });

  it("refuses, naming the problem: an undefined channel in a route, an unknown key, a missing secret, a bad URL, bad YAML", () => {
    const problem = (raw: unknown, env: NodeJS.ProcessEnv = ENV) => {
      try {
        parseNotificationsConfig(raw, env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      return "accepted";
    };
    expect(problem({ channels: { ops: { type: "slack", url: "https://x.example" } }, routes: { task_failed: ["pager"] } })).toContain(
      'routes.task_failed: no channel named "pager"',
    );
    expect(problem({ channels: { ops: { type: "slack", url: "https://x.example", colour: "red" } } })).toContain("channels.ops");
    expect(problem({ routes: { task_exploded: [] } })).toContain("routes");
    expect(problem({ channels: { ops: { type: "slack", url_env: "NOPE" } } }, {})).toContain("the environment variable NOPE (url_env) is not set");
    expect(problem({ channels: { ops: { type: "slack", url: "ftp://x" } } })).toContain("channels.ops: url must be an http(s) URL");
    expect(problem({ channels: { ops: { type: "slack", url: "https://a", url_env: "SLACK_WEBHOOK_URL" } } })).toContain("either url or url_env");
    expect(problem({ channels: { ops: { type: "slack", url: "https://a", repositories: "yes" } } })).toContain("channels.ops.repositories");
    expect(() => loadNotificationsConfig(write("channels: [unclosed"), {})).toThrow(/not valid YAML/);
    expect(() => loadNotificationsConfig("/nonexistent/notifications.yml", {})).toThrow(/cannot read/);
  });

  it("the repository adds routes among the operator's channels only; it cannot remove the operator's", () => {
    const config = parseNotificationsConfig(
      {
        channels: { ops: { type: "slack", url: "https://a" }, team: { type: "slack", url: "https://b", repositories: true } },
        routes: { task_failed: ["ops"] },
      },
      {},
    );
    const repo = parseRepoConfig({ notifications: { routes: { task_failed: ["team", "ghost"], task_ready_for_merge: ["team"] } } });
    expect(repo.problems).toEqual([]);
    expect(channelsFor(config, "task_failed", repo.config.notifications?.routes)).toEqual({ channels: ["ops", "team"], unknown: ["ghost"], closed: [] });
    expect(channelsFor(config, "task_failed", { task_failed: [] })).toEqual({ channels: ["ops"], unknown: [], closed: [] });
    expect(channelsFor(config, "task_ready_for_merge", repo.config.notifications?.routes).channels).toEqual(["team"]);
    expect(parseRepoConfig({ notifications: { routes: { nonsense: ["team"] } } }).problems).toEqual([expect.stringContaining("notifications.routes")]);
  });

  it("a repository can route only to channels the operator opened to repositories (repositories: true, default false)", () => {
    const config = parseNotificationsConfig(
      {
        channels: {
          ops: { type: "slack", url: "https://a" },
          finance: { type: "email", smtp_url: "smtp://u:p@mail.example.com", from: "mc@example.com", to: ["cfo@example.com"] },
          team: { type: "webhook", url: "https://b", secret: "s", repositories: true },
        },
        routes: { budget_exceeded: ["finance"] },
      },
      {},
    );
    expect(config.channels.get("finance")?.repositories).toBe(false);
    const routes = { task_failed: ["finance", "ops", "team"], budget_exceeded: ["finance"] };
    expect(channelsFor(config, "task_failed", routes)).toEqual({ channels: ["team"], unknown: [], closed: ["finance", "ops"] });
    // Naming a channel the operator already routes the event to changes nothing (and is not refused).
    expect(channelsFor(config, "budget_exceeded", routes)).toEqual({ channels: ["finance"], unknown: [], closed: [] });
  });
});
