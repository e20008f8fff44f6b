/**
 * The HTTP send shared by the Slack, Telegram and webhook channels: `fetch` with a timeout, and
 * the answer classified — a network error, a timeout, 429 or 5xx is retryable (honouring
 * `Retry-After`), any other 4xx is permanent. Error messages name the channel and the status,
 * never the URL (a webhook URL or bot token is a secret).
 */
import { NotificationDeliveryError } from "../../domain/errors.js";

/** Milliseconds one request may take. */
export const NOTIFY_TIMEOUT_MS = 10_000;

/** `Retry-After` (seconds or an HTTP date) in milliseconds, capped at an hour. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - now;
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, 3_600_000) : undefined;
}

/**
 * POSTs `body` to `url`.
 *
 * @returns the response (2xx) for a caller that reads it
 * @throws {NotificationDeliveryError} retryable or not, as above
 */
export async function postJson(
  channel: string,
  url: string,
  body: string,
  options: { headers?: Record<string, string>; signal?: AbortSignal | undefined; timeoutMs?: number },
): Promise<Response> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? NOTIFY_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "mission-control-notifications", ...options.headers },
      body,
      signal,
      redirect: "error",
    });
  } catch (err) {
    const reason = timeout.aborted ? "timed out" : options.signal?.aborted ? "aborted" : "network error";
    throw new NotificationDeliveryError(channel, 0, reason, { retryable: true, cause: err });
  }
  if (response.ok) return response;
  // The body is drained (keep-alive) but never quoted: it may echo the URL or token.
  await response.arrayBuffer().catch(() => undefined);
  const retryable = response.status === 429 || response.status >= 500;
  const after = retryAfterMs(response.headers.get("retry-after"));
  throw new NotificationDeliveryError(channel, response.status, `HTTP ${response.status}`, {
    retryable,
    ...(after === undefined ? {} : { retryAfterMs: after }),
  });
}
