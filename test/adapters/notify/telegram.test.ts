import { afterEach, describe, expect, it } from "vitest";

import { telegramChannel } from "../../../src/adapters/notify/telegram.js";
import { FakeHttpReceiver } from "../../helpers/notify-fakes.js";
import { failedMessage, mentionFree } from "./fixtures.js";

let fake: FakeHttpReceiver | undefined;
afterEach(async () => {
  await fake?.stop();
  fake = undefined;
});

describe("Telegram Bot API", () => {
  it("calls sendMessage on the bot's path with plain text (no parse_mode), no link preview, no mention", async () => {
    fake = await new FakeHttpReceiver().start();
    await telegramChannel("oncall", { apiUrl: fake.url, botToken: "123456:ABC-token", chatId: "-1001234" }).send(failedMessage(), { idempotencyKey: "id" });
    const [request] = fake.requests;
    expect(request?.path).toBe("/bot123456:ABC-token/sendMessage");
    const body = request?.json as Record<string, unknown>;
    expect(body).toMatchObject({ chat_id: "-1001234", disable_web_page_preview: true });
    expect(body).not.toHaveProperty("parse_mode");
    expect(String(body.text)).toContain("https://github.com/octo-org/widgets/issues/7");
    expect(String(body.text)).toContain("@\u200Balice");
    expect(mentionFree(String(body.text))).toBe(true);
  });

  it("a 429 is retryable and honours Retry-After; the token never appears in the error", async () => {
    fake = await new FakeHttpReceiver().respond({ status: 429, headers: { "retry-after": "3" } }).start();
    const err = (await telegramChannel("oncall", { apiUrl: fake.url, botToken: "123456:SECRET", chatId: "1" })
      .send(failedMessage(), { idempotencyKey: "id" })
      .catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ retryable: true, status: 429, retryAfterMs: 3000 });
    expect(err.message).not.toContain("SECRET");
  });
});
