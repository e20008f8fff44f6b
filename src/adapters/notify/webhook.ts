/**
 * The generic JSON webhook: `POST` of `{ id, event, created_at, title, text, url, data }`, signed
 * like GitHub's webhooks (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries):
 *
 * - `X-Mission-Control-Event: <event>`
 * - `X-Mission-Control-Delivery: <id>` — the notification's id, the same on every retry: a
 *   receiver drops a delivery it has already seen
 * - `X-Mission-Control-Signature-256: sha256=<hex>` — HMAC-SHA256 of the raw body with the
 *   channel's secret; compare it in constant time before trusting the body.
 */
import { createHmac } from "node:crypto";

import type { NotificationChannel, NotificationMessage, SendOptions } from "../../ports/notifications.js";
import { postJson } from "./http.js";

/** `sha256=<hex>` of `body` under `secret`. */
export function signatureOf(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** The body of one delivery, as JSON text (signed as is). */
export function webhookBody(message: NotificationMessage, id: string): string {
  return JSON.stringify({
    id,
    event: message.event,
    created_at: new Date(message.createdAt).toISOString(),
    title: message.title,
    text: message.text,
    url: message.url,
    data: message.facts,
  });
}

/** A signed generic webhook. */
export function webhookChannel(name: string, settings: { url: string; secret: string }): NotificationChannel {
  return {
    name,
    type: "webhook",
    async send(message: NotificationMessage, options: SendOptions) {
      const body = webhookBody(message, options.idempotencyKey);
      await postJson(name, settings.url, body, {
        signal: options.signal,
        headers: {
          "x-mission-control-event": message.event,
          "x-mission-control-delivery": options.idempotencyKey,
          "x-mission-control-signature-256": signatureOf(settings.secret, body),
        },
      });
    },
  };
}
