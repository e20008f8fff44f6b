/**
 * One Mission Control replica for test/app/redis-throttling.test.ts: a Probot instance of the
 * class `probotClass` builds for `startMissionControl` (with REDIS_URL, and Octokit's throttling
 * as in production), in a process of its own — the throttling plugin keeps its limiters in
 * module state, so only separate processes show what Redis shares.
 *
 * Usage: node --import tsx test/app/redis-replica.ts '<json options>'
 * stdin: `GET <n>` asks for issue n through the installation's client.
 * stdout: `READY`, then `DONE <n> <status>` or `FAIL <n> <message>` per request.
 */
import { generateKeyPairSync } from "node:crypto";
import { createInterface } from "node:readline";

import { createLogger } from "../../src/app/logger.js";
import { probotClass } from "../../src/app/server.js";
import { parseServerEnv } from "../../src/config/env.js";

interface ReplicaOptions {
  /** `127.0.0.1:<port>` of the fake GitHub (plain HTTP). */
  gheHost: string;
  redisUrl: string;
  installationId: number;
  owner: string;
  repo: string;
}

const options = JSON.parse(process.argv[2] ?? "{}") as ReplicaOptions;
const env = parseServerEnv({
  APP_ID: "31337",
  WEBHOOK_SECRET: "test-webhook-secret",
  ANTHROPIC_API_KEY: "sk-ant-test-0123456789abcdefghijklmnop",
  GHE_HOST: options.gheHost,
  GHE_PROTOCOL: "http",
  REDIS_URL: options.redisUrl,
  LOG_LEVEL: "warn",
});
const privateKey = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
}).privateKey;
const ProbotWithDefaults = probotClass({ env, log: createLogger(env.LOG_LEVEL, process.stderr), privateKey });
const octokit = await new ProbotWithDefaults().auth(options.installationId);

const say = (line: string) => process.stdout.write(`${line}\n`);
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const issue = /^GET (\d+)$/.exec(line.trim())?.[1];
  if (!issue) return;
  void octokit.request("GET /repos/{owner}/{repo}/issues/{issue_number}", { owner: options.owner, repo: options.repo, issue_number: Number(issue) }).then(
    (response) => say(`DONE ${issue} ${response.status}`),
    (err: unknown) => say(`FAIL ${issue} ${err instanceof Error ? err.message : String(err)}`),
  );
});
// The test closes stdin when it is done: exit, closing the Redis connections with the process.
lines.on("close", () => process.exit(0));
say("READY");
