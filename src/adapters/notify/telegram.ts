/**
 * Telegram Bot API `sendMessage` (https://core.telegram.org/bots/api#sendmessage): plain text (no
 * `parse_mode`, so nothing in it is markup), link previews off. The bot token is in the URL path
 * and never in a log line or error.
 */
import type { NotificationChannel, NotificationMessage, SendOptions } from "../../ports/notifications.js";
import { postJson } from "./http.js";

/** Telegram's limit of one message, in characters. */
const TELEGRAM_MAX_CHARS = 4096;

/** A Telegram chat, reached through a bot. */
export function telegramChannel(name: string, settings: { apiUrl: string; botToken: string; chatId: string }): NotificationChannel {
  return {
    name,
    type: "telegram",
    async send(message: NotificationMessage, options: SendOptions) {
      const body = JSON.stringify({
        chat_id: settings.chatId,
        text: [...message.text].slice(0, TELEGRAM_MAX_CHARS).join(""),
        disable_web_page_preview: true,
        link_preview_options: { is_disabled: true },
      });
      await postJson(name, `${settings.apiUrl}/bot${settings.botToken}/sendMessage`, body, { signal: options.signal });
    },
  };
}
