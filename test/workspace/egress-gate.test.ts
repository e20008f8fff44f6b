import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, realpath, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { EgressGate } from "../../src/workspace/egress-gate.js";
import { runSandboxed, sandboxOwner } from "../../src/workspace/sandbox.js";
import { giveToSandboxUser } from "../helpers/git-fixtures.js";

// Issue 9, finding 7 and item 4: the set-up step's network is the egress proxy and nothing else.
// Real bubblewrap, the real proxy on a Unix socket, a real HTTP server on the host's loopback.

let cwd: string;
let server: Server;
let port: number;
let hits = 0;
let gate: EgressGate;

beforeEach(async () => {
  cwd = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-egress-gate-")));
  giveToSandboxUser(cwd);
  hits = 0;
  server = createServer((_req, res) => {
    hits++;
    res.end("host loopback service");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  gate = new EgressGate({ allow: ["registry.example.test"], owner: sandboxOwner({ mode: "bwrap" }) });
});

afterEach(async () => {
  await gate.close();
  await new Promise((resolve) => server.close(resolve));
  await rm(cwd, { recursive: true, force: true });
});

/** A Node.js one-liner for the sandbox: GET `url` through the proxy from $HTTP_PROXY, printing the status. */
function viaProxy(url: string): string {
  const script = [
    "const u = new URL(process.env.HTTP_PROXY);",
    `const r = require("http").request({ host: u.hostname, port: u.port, method: "GET", path: ${JSON.stringify(url)} }, (res) => { console.log("STATUS " + res.statusCode); res.resume(); });`,
    'r.on("error", (e) => console.log("ERROR " + e.code)); r.end();',
  ].join(" ");
  return `node -e '${script}'`;
}

describe("the set-up step's network (needs bubblewrap)", () => {
  it("goes through the proxy, which refuses the metadata address, the host's loopback and hosts not allowed", async () => {
    const { command, network } = await gate.wrap(
      [
        'echo "proxy=$HTTP_PROXY"',
        viaProxy("http://169.254.169.254/latest/meta-data/"),
        viaProxy(`http://127.0.0.1:${port}/`),
        viaProxy("http://elsewhere.example.test/"),
        // Direct, around the proxy: the sandbox has its own network namespace.
        `node -e 'require("net").connect(${port}, "127.0.0.1").on("connect", () => console.log("DIRECT CONNECTED")).on("error", (e) => console.log("DIRECT " + e.code))'`,
      ].join("; "),
    );
    const result = await runSandboxed({ mode: "bwrap", limits: { timeoutMs: 30_000 } }, { cwd, command, network });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain("proxy=http://127.0.0.1:3128");
    expect(result.stdout.match(/STATUS 403/g)).toHaveLength(3);
    expect(result.stdout).toContain("DIRECT ECONNREFUSED");
    expect(result.stdout).not.toContain("DIRECT CONNECTED");
    expect(hits).toBe(0);
  });
});
