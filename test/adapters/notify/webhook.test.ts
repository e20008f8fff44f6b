import { createHmac, timingSafeEqual } from "node:crypto";

import { afterEach, describe, expect, it } from "vitest";

import { webhookChannel } from "../../../src/adapters/notify/webhook.js";
import { FakeHttpReceiver } from "../../helpers/notify-fakes.js";
import { failedMessage, HOSTILE, mentionFree } from "./fixtures.js";

let fake: FakeHttpReceiver | undefined;
afterEach(async () => {
  await fake?.stop();
  fake = undefined;
});

/** What a receiver does: HMAC-SHA256 of the raw body, compared in constant time. */
function verify(secret: string, raw: string, header: string | string[] | undefined): boolean {
  const expected = Buffer.from(`sha256=${createHmac("sha256", secret).update(raw).digest("hex")}`);
  const actual = Buffer.from(String(header ?? ""));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

describe("generic JSON webhook", () => {
  it("posts { id, event, created_at, … } with event, delivery and a signature the receiver verifies", async () => {
    fake = await new FakeHttpReceiver().start();
    await webhookChannel("hooks", { url: `${fake.url}/in`, secret: "s3cret" }).send(failedMessage(), { idempotencyKey: "0123abcd" });
    const [request] = fake.requests;
    expect(request?.headers["x-mission-control-event"]).toBe("task_failed");
    expect(request?.headers["x-mission-control-delivery"]).toBe("0123abcd");
    expect(verify("s3cret", request?.raw ?? "", request?.headers["x-mission-control-signature-256"])).toBe(true);
    expect(verify("other", request?.raw ?? "", request?.headers["x-mission-control-signature-256"])).toBe(false);
    const body = request?.json as Record<string, unknown>;
    expect(body).toMatchObject({
      id: "0123abcd",
      event: "task_failed",
      created_at: "2026-11-27T12:00:00.000Z",
      url: "https://github.com/octo-org/widgets/issues/7",
      data: { type: "task_failed", subject: { repository: "octo-org/widgets", issueNumber: 7 } },
    });
    // Free text in the data is escaped too: the receiver may forward it to a chat.
    expect(String((body.data as { reason: string }).reason)).not.toContain(HOSTILE);
    expect(mentionFree(request?.raw ?? "")).toBe(true);
  });

  it("the same notification retried carries the same delivery id", async () => {
    fake = await new FakeHttpReceiver().respond(500, 200).start();
    const channel = webhookChannel("hooks", { url: fake.url, secret: "s" });
    await expect(channel.send(failedMessage(), { idempotencyKey: "same" })).rejects.toMatchObject({ retryable: true, status: 500 });
    await channel.send(failedMessage(), { idempotencyKey: "same" });
    expect(fake.requests.map((r) => [r.status, r.headers["x-mission-control-delivery"]])).toEqual([
      [500, "same"],
      [200, "same"],
    ]);
  });
});
