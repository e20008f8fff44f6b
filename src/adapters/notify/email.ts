/**
 * E-mail over SMTP with nodemailer (https://nodemailer.com/smtp/): `createTransport(smtpUrl)`,
 * plain text, a short subject, and the notification's id as Message-ID (a repeat is recognisable).
 * An SMTP 4xx reply or a connection problem is retryable; a 5xx reply (a refused address) is not.
 */
import nodemailer from "nodemailer";

import { NotificationDeliveryError } from "../../domain/errors.js";
import type { NotificationChannel, NotificationMessage, SendOptions } from "../../ports/notifications.js";
import { NOTIFY_TIMEOUT_MS } from "./http.js";

/** The fields of nodemailer's errors we read. */
interface SmtpError {
  code?: string;
  responseCode?: number;
}

/** An e-mail channel. */
export function emailChannel(name: string, settings: { smtpUrl: string; from: string; to: string[] }): NotificationChannel {
  // nodemailer reads host, port, credentials and TLS from `url`; the timeouts are ours.
  const transport = nodemailer.createTransport({
    url: settings.smtpUrl,
    connectionTimeout: NOTIFY_TIMEOUT_MS,
    greetingTimeout: NOTIFY_TIMEOUT_MS,
    socketTimeout: NOTIFY_TIMEOUT_MS,
    logger: false,
  });
  return {
    name,
    type: "email",
    async send(message: NotificationMessage, options: SendOptions) {
      options.signal?.throwIfAborted();
      const domain = settings.from.split("@")[1]?.replace(/[^A-Za-z0-9.-]/g, "") || "mission-control.invalid";
      try {
        await transport.sendMail({
          from: settings.from,
          to: settings.to,
          subject: [...message.title].slice(0, 120).join(""),
          text: message.text,
          messageId: `<${options.idempotencyKey}@${domain}>`,
          headers: { "X-Mission-Control-Event": message.event, "X-Mission-Control-Delivery": options.idempotencyKey },
        });
      } catch (err) {
        const smtp = err as SmtpError;
        const code = smtp.responseCode ?? 0;
        const retryable = code === 0 || (code >= 400 && code < 500);
        throw new NotificationDeliveryError(name, code, code ? `SMTP ${code}` : `SMTP ${smtp.code ?? "connection error"}`, { retryable, cause: err });
      }
    },
    close() {
      transport.close();
    },
  };
}
