import { createHmac, randomUUID } from "node:crypto";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

interface ExampleGroup {
  name: string;
  examples: Array<Record<string, unknown> & { action?: string }>;
}

/** GitHub's own webhook examples (`@octokit/webhooks-examples`). */
const examples = require("@octokit/webhooks-examples") as ExampleGroup[];

/**
 * A deep copy of GitHub's example payload for `event`/`action` (the `index`-th one), to adapt
 * to a test case. `action` is `undefined` for an event without actions (`push`).
 *
 * @throws when no such example exists
 */
// biome-ignore lint/suspicious/noExplicitAny: webhook payloads are adapted freely in tests
export function examplePayload(event: string, action: string | undefined, index = 0): any {
  const group = examples.find((g) => g.name === event);
  const found = group?.examples.filter((e) => e.action === action)[index];
  if (!found) throw new Error(`no @octokit/webhooks-examples payload for ${event}.${action}[${index}]`);
  return structuredClone(found);
}

/** The `X-Hub-Signature-256` value for a body: HMAC-SHA256 with the webhook secret, hex. */
export function signature(body: string, secret: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** Sends a delivery to the app like GitHub does, signed unless `signWith` is given. */
/**
 * Per running app (by base URL): waits until a delivery's intake job is done. Registered by
 * `startApp`; {@link deliver} waits on it, so a test sees what the delivery led to, as when the
 * handlers made their GitHub checks themselves.
 */
export const intakeWaiters = new Map<string, (deliveryId: string) => Promise<void>>();

export async function deliver(
  baseUrl: string,
  delivery: { event: string; payload: unknown; secret: string; id?: string; signWith?: string; path?: string; noWait?: boolean },
): Promise<{ status: number; id: string; body: string; elapsedMs: number }> {
  const id = delivery.id ?? randomUUID();
  const body = JSON.stringify(delivery.payload);
  const started = performance.now();
  const response = await fetch(`${baseUrl}${delivery.path ?? "/api/github/webhooks"}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": delivery.event,
      "x-github-delivery": id,
      "x-hub-signature-256": signature(body, delivery.signWith ?? delivery.secret),
      "user-agent": "GitHub-Hookshot/test",
    },
    body,
  });
  const text = await response.text();
  const elapsedMs = performance.now() - started;
  // A handler only records and enqueues: wait for the app's intake step (permission, config, reactions) too.
  if (response.status < 300 && !delivery.noWait) await intakeWaiters.get(baseUrl)?.(id);
  return { status: response.status, id, body: text, elapsedMs };
}
