/**
 * Fake notification receivers on loopback: an HTTP server standing for a Slack-compatible
 * webhook, the Telegram Bot API or a generic webhook receiver, and an SMTP server
 * (`smtp-server`). Each records what arrived; the HTTP fake answers from a script (e.g. 500 then 200).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import { SMTPServer } from "smtp-server";

/** One request the HTTP fake received. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  /** The raw body, as sent (signatures are over these bytes). */
  raw: string;
  /** The body parsed as JSON (`undefined` when it is not JSON). */
  json: unknown;
  /** The status the fake answered. */
  status: number;
}

/** An HTTP receiver on 127.0.0.1. `respond` answers each request in order (the last answer repeats); default 200. */
export class FakeHttpReceiver {
  readonly requests: ReceivedRequest[] = [];
  #server: Server | undefined;
  #answers: Array<{ status: number; headers?: Record<string, string>; body?: string }> = [];
  #waiters: Array<{ count: number; resolve: () => void }> = [];
  url = "";

  /** Answers the next requests with these statuses (the last one sticks). */
  respond(...answers: Array<number | { status: number; headers?: Record<string, string>; body?: string }>): this {
    this.#answers = answers.map((a) => (typeof a === "number" ? { status: a } : a));
    return this;
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const answer = (this.#answers.length > 1 ? this.#answers.shift() : this.#answers[0]) ?? { status: 200 };
        let json: unknown;
        try {
          json = JSON.parse(raw);
        } catch {
          json = undefined;
        }
        this.requests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, raw, json, status: answer.status });
        res
          .writeHead(answer.status, { "content-type": "application/json", ...answer.headers })
          .end(answer.body ?? (answer.status < 300 ? '{"ok":true}' : '{"ok":false}'));
        for (const waiter of [...this.#waiters]) {
          if (this.requests.length >= waiter.count) {
            this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
            waiter.resolve();
          }
        }
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  /** Resolves once `count` requests arrived (rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs = 8_000): Promise<void> {
    if (this.requests.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`expected ${count} requests, got ${this.requests.length}`)), timeoutMs);
      this.#waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Requests answered 2xx. */
  get delivered(): ReceivedRequest[] {
    return this.requests.filter((r) => r.status < 300);
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

/** One message the SMTP fake accepted. */
export interface ReceivedMail {
  from: string;
  to: string[];
  /** The whole message (headers and body) as sent. */
  raw: string;
}

/** An SMTP server on 127.0.0.1 (no TLS, no auth); `failNext` rejects that many messages with a 451 first. */
export class FakeSmtp {
  readonly mails: ReceivedMail[] = [];
  failNext = 0;
  rejectPermanently = false;
  #server: SMTPServer | undefined;
  url = "";

  async start(): Promise<this> {
    this.#server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS", "AUTH"],
      logger: false,
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          if (this.rejectPermanently) {
            const err = Object.assign(new Error("mailbox unavailable"), { responseCode: 550 });
            return callback(err);
          }
          if (this.failNext > 0) {
            this.failNext -= 1;
            const err = Object.assign(new Error("try again later"), { responseCode: 451 });
            return callback(err);
          }
          this.mails.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString("utf8"),
          });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, "127.0.0.1", resolve));
    const address = (this.#server as unknown as { server: Server }).server.address() as AddressInfo;
    this.url = `smtp://127.0.0.1:${address.port}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}
