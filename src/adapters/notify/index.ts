/**
 * Builds the operator's channels (`config/notifications.ts`) as {@link NotificationChannel}s.
 */
import type { ResolvedChannel } from "../../config/notifications.js";
import type { NotificationChannel } from "../../ports/notifications.js";
import { emailChannel } from "./email.js";
import { slackChannel } from "./slack.js";
import { telegramChannel } from "./telegram.js";
import { webhookChannel } from "./webhook.js";

/** One channel of the configuration. */
export function createChannel(channel: ResolvedChannel): NotificationChannel {
  switch (channel.type) {
    case "slack":
      return slackChannel(channel.name, channel.url);
    case "telegram":
      return telegramChannel(channel.name, channel);
    case "email":
      return emailChannel(channel.name, channel);
    case "webhook":
      return webhookChannel(channel.name, channel);
  }
}

/** Every channel of the configuration, by name. */
export function createChannels(channels: ReadonlyMap<string, ResolvedChannel>): Map<string, NotificationChannel> {
  return new Map([...channels].map(([name, channel]) => [name, createChannel(channel)]));
}
