/**
 * The port a notification is sent through: one implementation per channel type
 * (`adapters/notify/`: Slack-compatible webhook, Telegram, e-mail, signed JSON webhook).
 */
import type { NotificationEvent, NotificationEventType } from "../domain/jobs.js";

/** One rendered notification (`render/notification.ts`), the same for every channel type. */
export interface NotificationMessage {
  /** The event's type (the generic webhook's `event` field and `X-Mission-Control-Event` header). */
  event: NotificationEventType;
  /** A short subject line (e-mail subject, first line elsewhere); escaped. */
  title: string;
  /** The short text, escaped: a few lines, ending with the link when there is one. */
  text: string;
  /** The or pull request's URL, if any. */
  url: string | null;
  /** The facts, for the generic webhook's JSON body (free text in them escaped). */
  facts: NotificationEvent;
  /** Epoch ms the event happened. */
  createdAt: number;
}

/** Options of one send. */
export interface SendOptions {
  /** Aborts the send (the job's lease was lost or the worker stops). */
  signal?: AbortSignal;
  /**
   * Stable id of this notification (a hash of its dedupe key): the generic webhook's
   * `X-Mission-Control-Delivery`, the e-mail's Message-ID, so a receiver can drop a repeat.
   */
  idempotencyKey: string;
}

/** A configured channel. */
export interface NotificationChannel {
  readonly name: string;
  readonly type: "slack" | "telegram" | "email" | "webhook";
  /**
   * Sends one message.
   *
   * @throws {NotificationDeliveryError} retryable (network, timeout, 429, 5xx) or not (other 4xx)
   */
  send(message: NotificationMessage, options: SendOptions): Promise<void>;
  /** Releases what the channel holds (an SMTP pool). */
  close?(): void;
}
