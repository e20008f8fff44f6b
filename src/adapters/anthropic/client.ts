import Anthropic from "@anthropic-ai/sdk";

import { LlmApiError } from "../../domain/errors.js";
import type { PriceTable } from "../../domain/pricing.js";

import type { Llm, Message, UsageRecord } from "../../ports/llm.js";

// The only runtime importer of @anthropic-ai/sdk (ports/llm.ts borrows its message types).
export type { Llm, UsageRecord };

/** Connection settings for the Messages API. */
export interface AnthropicOptions {
  apiKey: string;
  /** Defaults to `https://api.anthropic.com` (the SDK also reads ANTHROPIC_BASE_URL). */
  baseURL?: string | undefined;
  /** Retries the SDK itself makes on 408/409/429/5xx/529 and connection errors, with backoff. */
  maxRetries: number;
  /** Milliseconds before a request times out. */
  timeoutMs: number;
}

/** Creates the SDK client. The key is held by the SDK only; it is never logged or passed on. */
export function createAnthropic(options: AnthropicOptions): Anthropic {
  return new Anthropic({
    apiKey: options.apiKey,
    baseURL: options.baseURL ?? null,
    maxRetries: options.maxRetries,
    timeout: options.timeoutMs,
  });
}

/**
 * Wraps the SDK so that every call is priced and handed to `onUsage` before the caller sees
 * the response: each turn's usage reaches the ledger before the next call can be made.
 *
 * @param onUsage - persists the record (the ledger); if it throws, the call's result is not returned
 */
export function createRecordingLlm(anthropic: Anthropic, prices: PriceTable, onUsage: (record: UsageRecord) => Promise<void>): Llm {
  return {
    async createMessage(request, options) {
      prices.priceOf(request.model); // refuse before spending anything unpriced
      let message: Message;
      let requestId: string | null | undefined;
      try {
        const result = await settleOnAbort(anthropic.messages.create(request, { signal: options?.signal }).withResponse(), options?.signal);
        message = result.data;
        requestId = result.request_id;
      } catch (err) {
        throw toLlmApiError(err);
      }
      const model = prices.has(message.model) ? message.model : request.model;
      const usage = message.usage;
      await onUsage({
        model,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens ?? 0,
        cache_read_input_tokens: usage.cache_read_input_tokens ?? 0,
        cost_nano_usd: prices.costNanoUsd(model, usage),
        request_id: requestId ?? null,
      });
      return message;
    },
  };
}

/**
 * Settles with `call`, or rejects with the SDK's `APIUserAbortError` as soon as `signal` aborts, even when
 * the transport has not noticed the abort yet (a stalled connection, an interceptor holding the
 * request): an aborted job must return promptly so its lock is released. A late rejection of
 * `call` is observed and dropped.
 */
function settleOnAbort<T>(call: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return call;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(new Anthropic.APIUserAbortError());
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  call.catch(() => {}); // a rejection after the abort won is dropped, not unhandled
  return Promise.race([call, aborted]).finally(() => {
    if (onAbort) signal.removeEventListener("abort", onAbort);
  });
}

function retryAfterMs(headers: Headers | undefined): number | undefined {
  const value = headers?.get("retry-after");
  if (!value) return undefined;
  const seconds = Number(value);
  return Number.isFinite(seconds) ? seconds * 1000 : undefined;
}

/** Maps the SDK's errors onto {@link LlmApiError}; 429, 529, 5xx and network errors are retryable. */
function toLlmApiError(err: unknown): unknown {
  if (err instanceof Anthropic.APIUserAbortError) return err;
  if (err instanceof Anthropic.APIConnectionError) {
    return new LlmApiError(0, "connection to the Anthropic API failed", { retryable: true, cause: err });
  }
  if (err instanceof Anthropic.APIError) {
    // `instanceof` cannot infer the class's type parameters (status, headers): read them by their runtime types.
    const status = typeof err.status === "number" ? err.status : 0;
    const retryable = status === 408 || status === 409 || status === 429 || status >= 500;
    const type = (err.error as { error?: { type?: string } } | undefined)?.error?.type ?? "error";
    const after = retryAfterMs(err.headers instanceof Headers ? err.headers : undefined);
    return new LlmApiError(status, `Messages API ${status} ${type}`, {
      retryable,
      cause: err,
      ...(after === undefined ? {} : { retryAfterMs: after }),
    });
  }
  return err;
}
