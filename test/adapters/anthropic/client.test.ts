import Anthropic from "@anthropic-ai/sdk";
import nock from "nock";
import { describe, expect, it, vi } from "vitest";

import { LlmApiError, UnknownModelError } from "../../../src/domain/errors.js";
import { createAnthropic, createRecordingLlm, type UsageRecord } from "../../../src/adapters/anthropic/client.js";
import { PriceTable } from "../../../src/domain/pricing.js";

const API_KEY = "sk-ant-test-KEY123456789";
const BASE_URL = "https://api.anthropic.test";

function makeLlm(onUsage: (record: UsageRecord) => Promise<void>) {
  const anthropic = createAnthropic({ apiKey: API_KEY, baseURL: BASE_URL, maxRetries: 0, timeoutMs: 5_000 });
  return createRecordingLlm(anthropic, new PriceTable(), onUsage);
}

const REQUEST = {
  model: "claude-sonnet-5-5",
  max_tokens: 1_024,
  messages: [{ role: "user" as const, content: "Plan the fix for issue #12." }],
};

function messageBody(overrides: Record<string, unknown> = {}) {
  return {
    id: "msg_01TEST",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-5-5-20260928",
    content: [{ type: "text", text: "Here is the plan." }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: {
      input_tokens: 1_000,
      output_tokens: 500,
      cache_creation_input_tokens: 200,
      cache_read_input_tokens: 3_000,
    },
    ...overrides,
  };
}

function errorBody(type: string, message: string) {
  return { type: "error", error: { type, message } };
}

async function captureError(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected the promise to reject");
}

describe("createRecordingLlm", () => {
  it("records exact tokens, cost and request id before returning the message", async () => {
    let recordedBody: unknown;
    let recordedHeaders: Record<string, string | string[] | undefined> = {};
    const scope = nock(BASE_URL)
      .post("/v1/messages")
      .reply(function (_uri, body) {
        recordedBody = body;
        recordedHeaders = { ...this.req.headers };
        return [200, messageBody(), { "request-id": "req_011CTEST", "content-type": "application/json" }];
      });

    const order: string[] = [];
    let releaseUsage!: () => void;
    const usageGate = new Promise<void>((resolve) => {
      releaseUsage = resolve;
    });
    const onUsage = vi.fn(async (_record: UsageRecord) => {
      order.push("usage");
      await usageGate;
      order.push("usage recorded");
    });
    const llm = makeLlm(onUsage);

    const pending = llm.createMessage(REQUEST).then((message) => {
      order.push("resolved");
      return message;
    });
    await vi.waitFor(() => expect(onUsage).toHaveBeenCalledTimes(1), { timeout: 5_000, interval: 5 });
    // While the ledger write is pending, the caller has not got the message.
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(["usage"]);
    releaseUsage();
    const message = await pending;

    expect(order).toEqual(["usage", "usage recorded", "resolved"]);
    expect(scope.isDone()).toBe(true);
    expect(message.id).toBe("msg_01TEST");
    expect(message.content).toEqual([{ type: "text", text: "Here is the plan." }]);

    const record = onUsage.mock.calls[0]![0];
    // 1_000 × 2 + 500 × 10 + 200 × 2.5 + 3_000 × 0.2 = 2_000 + 5_000 + 500 + 600 = 8_100 micro-dollars = 8_100_000 n$, exactly
    expect(record).toEqual({
      model: "claude-sonnet-5-5-20260928",
      input_tokens: 1_000,
      output_tokens: 500,
      cache_creation_input_tokens: 200,
      cache_read_input_tokens: 3_000,
      cost_nano_usd: 8_100_000,
      request_id: "req_011CTEST",
    });

    expect(recordedBody).toMatchObject({
      model: "claude-sonnet-5-5",
      max_tokens: 1_024,
      messages: [{ role: "user", content: "Plan the fix for issue #12." }],
    });
    // The key travels in a header (this SDK version sends it as a bearer token), never in the body.
    const credential = String(recordedHeaders["x-api-key"] ?? recordedHeaders["authorization"] ?? "");
    expect(credential).toContain(API_KEY);
    expect(JSON.stringify(recordedBody)).not.toContain(API_KEY);
  });

  it("prices by the requested model when the response names an unpriced one, and copes with null cache fields", async () => {
    const scope = nock(BASE_URL)
      .post("/v1/messages")
      .reply(
        200,
        messageBody({
          model: "claude-mystery",
          usage: { input_tokens: 10, output_tokens: 20, cache_creation_input_tokens: null, cache_read_input_tokens: null },
        }),
      );
    const onUsage = vi.fn(async (_record: UsageRecord) => {});
    await makeLlm(onUsage).createMessage(REQUEST);
    expect(scope.isDone()).toBe(true);
    // 10 × 2 + 20 × 10 = 220 micro-dollars = 220_000 n$
    expect(onUsage.mock.calls[0]![0]).toEqual({
      model: "claude-sonnet-5-5",
      input_tokens: 10,
      output_tokens: 20,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cost_nano_usd: 220_000,
      request_id: null,
    });
  });

  it("does not return the message when recording its usage fails", async () => {
    const scope = nock(BASE_URL).post("/v1/messages").reply(200, messageBody());
    const llm = makeLlm(async () => {
      throw new Error("database is locked");
    });
    await expect(llm.createMessage(REQUEST)).rejects.toThrow("database is locked");
    expect(scope.isDone()).toBe(true);
  });

  it("maps 529 to a retryable LlmApiError and records no usage", async () => {
    const scope = nock(BASE_URL).post("/v1/messages").reply(529, errorBody("overloaded_error", "Overloaded"));
    const onUsage = vi.fn(async (_record: UsageRecord) => {});
    const err = await captureError(makeLlm(onUsage).createMessage(REQUEST));
    expect(err).toBeInstanceOf(LlmApiError);
    expect(err).toMatchObject({ status: 529, retryable: true, code: "llm_transient", message: "Messages API 529 overloaded_error" });
    expect(scope.isDone()).toBe(true);
    expect(onUsage).not.toHaveBeenCalled();
  });

  it("maps 400 to a non-retryable LlmApiError", async () => {
    const scope = nock(BASE_URL).post("/v1/messages").reply(400, errorBody("invalid_request_error", "max_tokens: too large"));
    const err = await captureError(makeLlm(async () => {}).createMessage(REQUEST));
    expect(err).toBeInstanceOf(LlmApiError);
    expect(err).toMatchObject({ status: 400, retryable: false, code: "llm_failed" });
    expect((err as LlmApiError).retryAfterMs).toBeUndefined();
    expect(scope.isDone()).toBe(true);
  });

  it("maps 429 with retry-after: 7 to retryAfterMs 7000", async () => {
    const scope = nock(BASE_URL)
      .post("/v1/messages")
      .reply(429, errorBody("rate_limit_error", "Number of request tokens has exceeded your rate limit"), { "retry-after": "7" });
    const err = await captureError(makeLlm(async () => {}).createMessage(REQUEST));
    expect(err).toBeInstanceOf(LlmApiError);
    expect(err).toMatchObject({ status: 429, retryable: true, retryAfterMs: 7_000 });
    expect(scope.isDone()).toBe(true);
  });

  it("maps a 500 to retryable", async () => {
    const scope = nock(BASE_URL).post("/v1/messages").reply(500, errorBody("api_error", "Internal server error"));
    const err = await captureError(makeLlm(async () => {}).createMessage(REQUEST));
    expect(err).toMatchObject({ status: 500, retryable: true });
    expect(scope.isDone()).toBe(true);
  });

  it("maps a connection failure to a retryable LlmApiError with status 0", async () => {
    const scope = nock(BASE_URL).post("/v1/messages").replyWithError({ code: "ECONNRESET", message: "socket hang up" });
    const err = await captureError(makeLlm(async () => {}).createMessage(REQUEST));
    expect(err).toBeInstanceOf(LlmApiError);
    expect(err).toMatchObject({ status: 0, retryable: true });
    expect(scope.isDone()).toBe(true);
  });

  it("passes a caller's abort through unchanged", async () => {
    nock(BASE_URL).post("/v1/messages").reply(200, messageBody());
    const controller = new AbortController();
    controller.abort();
    const onUsage = vi.fn(async (_record: UsageRecord) => {});
    const err = await captureError(makeLlm(onUsage).createMessage(REQUEST, { signal: controller.signal }));
    expect(err).toBeInstanceOf(Anthropic.APIUserAbortError);
    expect(err).not.toBeInstanceOf(LlmApiError);
    expect(onUsage).not.toHaveBeenCalled();
  });

  it("refuses an unpriced model before sending any request", async () => {
    const scope = nock(BASE_URL)
      .post("/v1/messages")
      .reply(200, messageBody({ model: "claude-sonnet-5-7" }));
    const onUsage = vi.fn(async (_record: UsageRecord) => {});
    await expect(makeLlm(onUsage).createMessage({ ...REQUEST, model: "claude-sonnet-5-7" })).rejects.toBeInstanceOf(UnknownModelError);
    expect(scope.isDone()).toBe(false);
    expect(scope.pendingMocks()).toHaveLength(1);
    expect(onUsage).not.toHaveBeenCalled();
  });

  it("an aborted call returns at once even when the transport never settles, and records nothing", async () => {
    let fetched = 0;
    const stalled = new Anthropic({
      apiKey: API_KEY,
      baseURL: BASE_URL,
      maxRetries: 0,
      timeout: 60_000,
      // A transport that ignores the abort signal and never answers (a stalled connection).
      fetch: () => {
        fetched++;
        return new Promise<Response>(() => {});
      },
    });
    const onUsage = vi.fn(async () => {});
    const llm = createRecordingLlm(stalled, new PriceTable(), onUsage);
    const abort = new AbortController();
    const call = captureError(llm.createMessage(REQUEST, { signal: abort.signal }));
    await vi.waitFor(() => expect(fetched).toBe(1));
    abort.abort(new Error("job cancelled"));
    expect(await call).toBeInstanceOf(Anthropic.APIUserAbortError);
    expect(onUsage).not.toHaveBeenCalled();
  });
});
