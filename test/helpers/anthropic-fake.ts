import type { IncomingMessage, ServerResponse } from "node:http";

import nock from "nock";

/** Base URL the app is pointed at in tests (ANTHROPIC_BASE_URL). */
export const ANTHROPIC_TEST_URL = "https://api.anthropic.test";

/** Token counts a scripted response reports in `usage`. */
export interface ScriptedUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
}

/** One scripted Messages API answer. */
export interface ScriptedTurn {
  content: Array<Record<string, unknown>>;
  stop_reason?: "end_turn" | "tool_use" | "max_tokens";
  usage: ScriptedUsage;
  /** Answer with this HTTP status and error instead (e.g. 529 overloaded). */
  status?: number;
  headers?: Record<string, string>;
}

/** A request the app sent to the Messages API. */
export interface RecordedMessageRequest {
  agent: string;
  body: any;
  headers: Record<string, string | string[] | undefined>;
  /** The raw request body as sent, for leak checks. */
  raw: string;
  requestId: string;
}

/** An answer as `#reply` gives it: status, JSON body, headers. */
type HttpReply = [number, unknown, Record<string, string>?];

/** Builds a `tool_use` content block. */
export function toolUse(name: string, input: unknown, id = `toolu_${name}_${Math.random().toString(36).slice(2, 10)}`) {
  return { type: "tool_use", id, name, input };
}

/** Builds a `text` content block. */
export function text(value: string) {
  return { type: "text", text: value };
}

const AGENT_OF_SYSTEM: Array<[RegExp, string]> = [
  [/You are the Architect/, "architect"],
  [/You are the Coder/, "coder"],
  [/You are the Reviewer/, "reviewer"],
  [/You are the Tester/, "tester"],
];

/**
 * The Anthropic Messages API (`POST /v1/messages`) served through nock from a script per
 * agent (recognised by its system prompt). Every request is recorded; a request for which no
 * turn is left gets a 500 so the test fails loudly.
 */
export class FakeAnthropic {
  readonly requests: RecordedMessageRequest[] = [];
  readonly #scripts = new Map<string, ScriptedTurn[]>();
  #scope: nock.Scope | undefined;
  #interceptor: nock.Interceptor | undefined;
  #counter = 0;

  /** Appends turns to an agent's script. */
  script(agent: string, ...turns: ScriptedTurn[]): this {
    this.#scripts.set(agent, [...(this.#scripts.get(agent) ?? []), ...turns]);
    return this;
  }

  /** Turns not yet consumed, by agent. */
  remaining(): Record<string, number> {
    return Object.fromEntries([...this.#scripts].map(([agent, turns]) => [agent, turns.length]));
  }

  /** Requests made by one agent. */
  requestsOf(agent: string): RecordedMessageRequest[] {
    return this.requests.filter((r) => r.agent === agent);
  }

  start(): this {
    this.#scope = nock(ANTHROPIC_TEST_URL).persist();
    this.#interceptor = this.#scope.post("/v1/messages");
    // nock passes the request as `this` to a reply function; the fake answers through `reply`.
    const reply = this.#reply.bind(this);
    this.#interceptor.reply(function (_uri, body) {
      return reply(body, this.req.headers);
    });
    return this;
  }

  /**
   * Serves one real HTTP `POST /v1/messages` request (for app processes nock cannot reach; see
   * `fake-servers.ts`) from the same scripts and record as through nock.
   */
  async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let status = 500;
    let body: unknown;
    let headers: Record<string, string> = { "content-type": "application/json" };
    try {
      // `#reply` always answers `[status, body, headers?]` (nock's reply-function tuple).
      const reply = this.#reply(Buffer.concat(chunks).toString("utf8"), req.headers as Record<string, string>) as unknown as HttpReply;
      [status, body] = reply;
      headers = { ...headers, ...reply[2] };
    } catch (err) {
      body = { type: "error", error: { type: "api_error", message: String(err) } };
    }
    res.writeHead(status, headers).end(JSON.stringify(body));
  }

  /** Records one Messages API request and answers it with the agent's next scripted turn. */
  #reply(body: nock.Body, requestHeaders: Record<string, string>): nock.ReplyFnResult {
    const raw = typeof body === "string" ? body : JSON.stringify(body);
    const parsed = typeof body === "string" ? JSON.parse(body) : body;
    const systemText = JSON.stringify(parsed.system ?? "");
    const agent = AGENT_OF_SYSTEM.find(([re]) => re.test(systemText))?.[1] ?? "unknown";
    const requestId = `req_test_${++this.#counter}`;
    this.requests.push({ agent, body: parsed, headers: requestHeaders, raw, requestId });
    const turn = this.#scripts.get(agent)?.shift();
    if (!turn) {
      return [500, { type: "error", error: { type: "api_error", message: `no scripted turn left for ${agent}` } }];
    }
    const headers = { "content-type": "application/json", "request-id": requestId, ...turn.headers };
    if (turn.status && turn.status >= 400) {
      return [turn.status, { type: "error", error: { type: turn.status === 529 ? "overloaded_error" : "api_error", message: "scripted" } }, headers];
    }
    return [
      200,
      {
        id: `msg_${requestId}`,
        type: "message",
        role: "assistant",
        model: parsed.model,
        content: turn.content,
        stop_reason: turn.stop_reason ?? (turn.content.some((b) => b.type === "tool_use") ? "tool_use" : "end_turn"),
        stop_sequence: null,
        usage: {
          input_tokens: turn.usage.input_tokens,
          output_tokens: turn.usage.output_tokens,
          cache_creation_input_tokens: turn.usage.cache_creation_input_tokens ?? 0,
          cache_read_input_tokens: turn.usage.cache_read_input_tokens ?? 0,
        },
      },
      headers,
    ];
  }

  stop(): void {
    this.#scope?.persist(false);
    if (this.#interceptor) nock.removeInterceptor(this.#interceptor);
    this.#interceptor = undefined;
  }
}
