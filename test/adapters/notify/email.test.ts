import { afterEach, describe, expect, it } from "vitest";

import { emailChannel } from "../../../src/adapters/notify/email.js";
import type { NotificationChannel } from "../../../src/ports/notifications.js";
import { FakeSmtp } from "../../helpers/notify-fakes.js";
import { failedMessage, mentionFree } from "./fixtures.js";

let smtp: FakeSmtp | undefined;
let channel: NotificationChannel | undefined;
afterEach(async () => {
  channel?.close?.();
  await smtp?.stop();
  smtp = undefined;
  channel = undefined;
});

/** The message with quoted-printable escapes (body and `Q`-encoded headers) decoded. */
function decodeQuotedPrintable(raw: string): string {
  const bytes = raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, "latin1").toString("utf8");
}

describe("e-mail over SMTP", () => {
  it("sends plain text with a short subject and the notification id as Message-ID", async () => {
    smtp = await new FakeSmtp().start();
    channel = emailChannel("finance", { smtpUrl: smtp.url, from: "mc@example.com", to: ["a@example.com", "b@example.com"] });
    await channel.send(failedMessage(), { idempotencyKey: "feedface" });
    expect(smtp.mails).toHaveLength(1);
    const [mail] = smtp.mails;
    expect(mail?.from).toBe("mc@example.com");
    expect(mail?.to).toEqual(["a@example.com", "b@example.com"]);
    const raw = decodeQuotedPrintable(mail?.raw ?? "");
    expect(raw).toMatch(/^Subject: .*octo-org\/widgets#7_failed/m);
    expect(mail?.raw).toContain("Message-ID: <feedface@example.com>");
    expect(mail?.raw).toContain("Content-Type: text/plain");
    expect(mail?.raw).toContain("https://github.com/octo-org/widgets/issues/7");
    expect(raw).toContain("@\u200Beveryone");
    expect(mentionFree(raw)).toBe(true);
  });

  it("an SMTP 4xx is retryable, a 5xx is not", async () => {
    smtp = await new FakeSmtp().start();
    smtp.failNext = 1;
    channel = emailChannel("finance", { smtpUrl: smtp.url, from: "mc@example.com", to: ["a@example.com"] });
    await expect(channel.send(failedMessage(), { idempotencyKey: "x" })).rejects.toMatchObject({ retryable: true, status: 451 });
    await channel.send(failedMessage(), { idempotencyKey: "x" });
    expect(smtp.mails).toHaveLength(1);
    // The retry carries the same Message-ID as the refused attempt: a receiver can drop a repeat.
    expect(smtp.mails[0]?.raw).toContain("Message-ID: <x@example.com>");
    smtp.rejectPermanently = true;
    await expect(channel.send(failedMessage(), { idempotencyKey: "y" })).rejects.toMatchObject({ retryable: false, status: 550 });
  });
});
