/**
 * Slack-compatible incoming webhooks: Slack (https://api.slack.com/messaging/webhooks),
 * Mattermost, and Discord's Slack-compatible endpoint (`…/slack`). Body `{ text }`, with Slack's
 * `&`, `<`, `>` escaped (https://api.slack.com/reference/surfaces/formatting#escaping), so no
 * text can form `<!channel>` or a `<@U…>` mention; the renderer already broke `@` mentions.
 */
import type { NotificationChannel, NotificationMessage, SendOptions } from "../../ports/notifications.js";
import { postJson } from "./http.js";

/** Slack's escaping of message text. */
export function escapeSlack(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A Slack-compatible incoming webhook. */
export function slackChannel(name: string, url: string): NotificationChannel {
  return {
    name,
    type: "slack",
    async send(message: NotificationMessage, options: SendOptions) {
      // `parse: none` and no link names: Slack turns nothing in the text into a mention.
      const body = JSON.stringify({ text: escapeSlack(message.text), link_names: false, parse: "none", unfurl_links: false });
      await postJson(name, url, body, { signal: options.signal });
    },
  };
}
