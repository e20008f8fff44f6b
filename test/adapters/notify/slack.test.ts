import { afterEach, describe, expect, it } from "vitest";

import { NotificationDeliveryError } from "../../../src/domain/errors.js";
import { slackChannel } from "../../../src/adapters/notify/slack.js";
import { FakeHttpReceiver } from "../../helpers/notify-fakes.js";
import { failedMessage, mentionFree } from "./fixtures.js";

let fake: FakeHttpReceiver | undefined;
afterEach(async () => {
  await fake?.stop();
  fake = undefined;
});

describe("Slack-compatible webhook", () => {
  it("posts { text } with Slack's escaping, no mention left, and the issue link", async () => {
    fake = await new FakeHttpReceiver().start();
    await slackChannel("ops", `${fake.url}/hooks/T000/B000/XXX`).send(failedMessage(), { idempotencyKey: "id-1" });
    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request?.method).toBe("POST");
    expect(request?.path).toBe("/hooks/T000/B000/XXX");
    expect(request?.headers["content-type"]).toBe("application/json");
    const body = request?.json as { text: string; link_names: boolean };
    expect(body.link_names).toBe(false);
    expect(body.text).toContain("octo-org/widgets#7 failed");
    expect(body.text).toContain("https://github.com/octo-org/widgets/issues/7");
    expect(body.text).toContain("&lt;\u200B!channel&gt;");
    expect(body.text).toContain("[REDACTED]");
    expect(mentionFree(body.text)).toBe(true);
    expect(mentionFree(request?.raw ?? "")).toBe(true);
  });

  it("a 500 is retryable (with Retry-After), a 404 is not; neither names the URL", async () => {
    fake = await new FakeHttpReceiver().respond({ status: 503, headers: { "retry-after": "7" } }, 404).start();
    const channel = slackChannel("ops", `${fake.url}/hooks/secret-path`);
    const first = await channel.send(failedMessage(), { idempotencyKey: "id" }).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(NotificationDeliveryError);
    expect(first).toMatchObject({ retryable: true, status: 503, retryAfterMs: 7000 });
    const second = (await channel.send(failedMessage(), { idempotencyKey: "id" }).catch((e: unknown) => e)) as NotificationDeliveryError;
    expect(second).toMatchObject({ retryable: false, status: 404 });
    expect(second.message).not.toContain("secret-path");
  });

  it("a refused connection is retryable", async () => {
    fake = await new FakeHttpReceiver().start();
    const url = fake.url;
    await fake.stop();
    fake = undefined;
    const err = await slackChannel("ops", url)
      .send(failedMessage(), { idempotencyKey: "id" })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ retryable: true, status: 0 });
  });
});
