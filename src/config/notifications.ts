/**
 * The operator's notification channels and routes: the YAML file NOTIFICATIONS_FILE points to,
 * parsed with `yaml` and validated here. Secret values (webhook URLs, bot tokens, SMTP URLs,
 * signing secrets) are given by environment-variable name (`*_env`) or inline — the file is the
 * operator's, never a repository's. An invalid file stops the start-up with the problem named.
 */
import { readFileSync } from "node:fs";

import { parse as parseYaml } from "yaml";
import { z } from "zod";

import { ConfigError } from "../domain/errors.js";
import { NOTIFICATION_EVENTS, type NotificationEventType } from "../domain/jobs.js";

/** A channel name: what routes (server-wide and per repository) refer to. */
const ChannelName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "channel names are lower-case letters, digits, `-` and `_` (at most 64)");

const httpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });

/**
 * The operator's opt-in that lets repositories route their events to a channel (their
 * `.github/mission-control.yml` `notifications.routes`). Off by default: a repository must not
 * be able to send to, say, a finance mailbox the operator meant for budget alerts only.
 */
const repositories = z.boolean().default(false);

/** Either the value inline (`<key>`) or the name of the environment variable holding it (`<key>_env`). */
function secretPair<K extends string>(key: K) {
  return {
    [key]: z.string().min(1).optional(),
    [`${key}_env`]: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name")
      .optional(),
  } as Record<K | `${K}_env`, z.ZodOptional<z.ZodString>>;
}

const SlackChannel = z
  .object({
    /** Slack-compatible incoming webhook: Slack, Mattermost, Discord's `/slack` endpoint. */
    type: z.literal("slack"),
    repositories,
    ...secretPair("url"),
  })
  .strict();

const TelegramChannel = z
  .object({
    /** Telegram Bot API `sendMessage` to `chat_id`. */
    type: z.literal("telegram"),
    repositories,
    ...secretPair("bot_token"),
    chat_id: z.union([z.string().min(1), z.number().int()]).transform(String),
    /** The Bot API's base URL (default `https://api.telegram.org`; a local Bot API server or a test fake otherwise). */
    api_url: httpUrl.default("https://api.telegram.org"),
  })
  .strict();

const EmailChannel = z
  .object({
    /** E-mail over SMTP (nodemailer): `smtp://user:pass@host:587` or `smtps://…`. */
    type: z.literal("email"),
    repositories,
    ...secretPair("smtp_url"),
    from: z.string().min(3),
    to: z.array(z.string().min(3)).min(1).max(50),
  })
  .strict();

const WebhookChannel = z
  .object({
    /** Generic JSON webhook, signed with HMAC-SHA256 (`X-Mission-Control-Signature-256`). */
    type: z.literal("webhook"),
    repositories,
    ...secretPair("url"),
    ...secretPair("secret"),
  })
  .strict();

const ChannelConfig = z.discriminatedUnion("type", [SlackChannel, TelegramChannel, EmailChannel, WebhookChannel]);
type ChannelConfig = z.infer<typeof ChannelConfig>;

/** Routes: event type → channel names. */
export const NotificationRoutes = z.partialRecord(z.enum(NOTIFICATION_EVENTS), z.array(ChannelName).max(20));
export type NotificationRoutes = z.infer<typeof NotificationRoutes>;

/** The file's shape. */
export const NotificationsFile = z
  .object({
    channels: z.record(ChannelName, ChannelConfig).default({}),
    routes: NotificationRoutes.default({}),
    digest: z
      .object({
        /** The UTC hour (0–23) after which the previous UTC day's digest is sent. */
        hour_utc: z.number().int().min(0).max(23).default(8),
      })
      .strict()
      .default({ hour_utc: 8 }),
  })
  .strict()
  .superRefine((file, ctx) => {
    for (const [event, names] of Object.entries(file.routes)) {
      for (const name of names ?? []) {
        if (!(name in file.channels))
          ctx.addIssue({ code: "custom", path: ["routes", event], message: `no channel named "${name}" is defined under channels` });
      }
    }
  });

/** A channel with its secrets resolved: ready for `adapters/notify`. */
export type ResolvedChannel = {
  name: string;
  /** Whether repositories may route their events here (`repositories: true`). */
  repositories: boolean;
} & (
  | { type: "slack"; url: string }
  | { type: "telegram"; botToken: string; chatId: string; apiUrl: string }
  | { type: "email"; smtpUrl: string; from: string; to: string[] }
  | { type: "webhook"; url: string; secret: string }
);

/** The operator's notification settings, resolved. */
export interface NotificationsConfig {
  channels: ReadonlyMap<string, ResolvedChannel>;
  routes: NotificationRoutes;
  /** UTC hour after which the previous day's digest goes out. */
  digestHourUtc: number;
}

/** No channels: nothing is ever sent (NOTIFICATIONS_FILE unset). */
export const NO_NOTIFICATIONS: NotificationsConfig = { channels: new Map(), routes: {}, digestHourUtc: 8 };

function resolveSecret(channel: string, key: string, inline: string | undefined, envName: string | undefined, env: NodeJS.ProcessEnv): string {
  if (inline && envName) throw new ConfigError(`NOTIFICATIONS_FILE: channels.${channel}: give either ${key} or ${key}_env, not both`);
  if (inline) return inline;
  if (!envName) throw new ConfigError(`NOTIFICATIONS_FILE: channels.${channel}: ${key} or ${key}_env is required`);
  const value = env[envName];
  if (!value) throw new ConfigError(`NOTIFICATIONS_FILE: channels.${channel}: the environment variable ${envName} (${key}_env) is not set`);
  return value;
}

function resolveChannel(name: string, channel: ChannelConfig, env: NodeJS.ProcessEnv): ResolvedChannel {
  const secret = (key: string) => {
    const raw = channel as unknown as Record<string, string | undefined>;
    return resolveSecret(name, key, raw[key], raw[`${key}_env`], env);
  };
  const url = (key: string) => {
    const value = secret(key);
    if (!httpUrl.safeParse(value).success) throw new ConfigError(`NOTIFICATIONS_FILE: channels.${name}: ${key} must be an http(s) URL`);
    return value;
  };
  const { repositories } = channel;
  switch (channel.type) {
    case "slack":
      return { name, repositories, type: "slack", url: url("url") };
    case "telegram":
      return {
        name,
        repositories,
        type: "telegram",
        botToken: secret("bot_token"),
        chatId: channel.chat_id,
        apiUrl: channel.api_url.replace(/\/+$/, ""),
      };
    case "email": {
      const smtpUrl = secret("smtp_url");
      if (!/^smtps?:\/\//.test(smtpUrl)) throw new ConfigError(`NOTIFICATIONS_FILE: channels.${name}: smtp_url must be an smtp:// or smtps:// URL`);
      return { name, repositories, type: "email", smtpUrl, from: channel.from, to: channel.to };
    }
    case "webhook":
      return { name, repositories, type: "webhook", url: url("url"), secret: secret("secret") };
  }
}

/**
 * Validates the notifications document (already parsed from YAML) and resolves its secrets.
 *
 * @param env - where `*_env` names are looked up (usually `process.env`)
 * @throws {ConfigError} naming every problem of the document, or the first missing secret
 */
export function parseNotificationsConfig(raw: unknown, env: NodeJS.ProcessEnv): NotificationsConfig {
  const result = NotificationsFile.safeParse(raw ?? {});
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "(top level)"}: ${i.message}`);
    throw new ConfigError(`NOTIFICATIONS_FILE is invalid:\n  ${problems.join("\n  ")}`);
  }
  const channels = new Map<string, ResolvedChannel>();
  for (const [name, channel] of Object.entries(result.data.channels)) channels.set(name, resolveChannel(name, channel, env));
  return { channels, routes: result.data.routes, digestHourUtc: result.data.digest.hour_utc };
}

/**
 * Reads the operator's notifications file (NOTIFICATIONS_FILE); {@link NO_NOTIFICATIONS} when unset.
 *
 * @throws {ConfigError} when the file cannot be read, is not YAML, or is invalid
 */
export function loadNotificationsConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): NotificationsConfig {
  if (!file) return NO_NOTIFICATIONS;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`NOTIFICATIONS_FILE: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`NOTIFICATIONS_FILE: ${file} is not valid YAML: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
  }
  return parseNotificationsConfig(raw, env);
}

/**
 * The channels an event goes to: the operator's routes for it plus the repository's. A
 * repository can only name channels the operator defined AND opened to repositories
 * (`repositories: true`); the other names are returned — `unknown` (not defined) or `closed`
 * (defined without `repositories: true`) — and ignored.
 */
export function channelsFor(
  config: NotificationsConfig,
  event: NotificationEventType,
  repoRoutes: NotificationRoutes | undefined,
): { channels: string[]; unknown: string[]; closed: string[] } {
  const names = new Set(config.routes[event] ?? []);
  const unknown: string[] = [];
  const closed: string[] = [];
  for (const name of repoRoutes?.[event] ?? []) {
    const channel = config.channels.get(name);
    if (!channel) unknown.push(name);
    else if (channel.repositories) names.add(name);
    else if (!names.has(name)) closed.push(name);
  }
  return { channels: [...names].sort(), unknown, closed };
}
