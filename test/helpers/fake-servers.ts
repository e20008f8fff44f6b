import { createServer, type Server } from "node:http";

import type { FakeAnthropic } from "./anthropic-fake.js";
import type { FakeGitHub } from "./github-fake.js";

/** The fakes served over real HTTP on loopback, for app processes nock cannot reach. */
export interface FakeServers {
  /** `http://127.0.0.1:<port>`: ANTHROPIC_BASE_URL. */
  url: string;
  /** `127.0.0.1:<port>`: GHE_HOST (with GHE_PROTOCOL=http the REST API is `${url}/api/v3`). */
  host: string;
  port: number;
  /** Requests that reached no fake (neither path matched), e.g. `GET /foo`. */
  unrouted: string[];
  /** Closes the server and every connection, hung requests included. */
  close(): Promise<void>;
}

/**
 * Starts one HTTP server on 127.0.0.1 on `port` (0: any free port) that routes `/api/v3/*` to
 * the GitHub fake and `POST /v1/messages` to the Anthropic fake; anything else is a 404. The
 * fakes are shared by every process that talks to it, so a takeover by another process sees
 * what the first one did. The GitHub fake's `baseUrl` must be `http://127.0.0.1:<port>/api/v3`,
 * so choose the port first (`freePort()` from app-harness) and pass it here.
 */
export async function startFakeServers(fakes: { github: FakeGitHub; anthropic: FakeAnthropic }, port = 0): Promise<FakeServers> {
  const unrouted: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = req.url ?? "/";
    const done = (promise: Promise<void>) =>
      promise.catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ message: String(err) }));
      });
    if (url.startsWith("/api/v3/")) return void done(fakes.github.handleHttp(req, res));
    if (req.method === "POST" && url.split("?")[0] === "/v1/messages") return void done(fakes.anthropic.handleHttp(req, res));
    unrouted.push(`${req.method} ${url}`);
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: `no fake serves ${req.method} ${url}` }));
  });
  // The replicas keep their connections alive between requests.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const actual = typeof address === "object" && address ? address.port : port;
  return {
    url: `http://127.0.0.1:${actual}`,
    host: `127.0.0.1:${actual}`,
    port: actual,
    unrouted,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
