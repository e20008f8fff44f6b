/**
 * Real-git fixtures for the workspace and agent tests: temp folders, a seeded bare repository,
 * and a loopback smart-HTTP git server (git http-backend) that demands the installation token.
 * Not a test file itself (vitest only collects *.test.ts).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";

import { TEST_GIT_GLOBAL_CONFIG } from "../helpers/git-fixtures.js";

export const FAKE_TOKEN = "ghs_FAKE0123456789abcdefghijklmnopqrstu";

/** Environment for the fixtures' own git commands: no user or system config leaks in. */
function fixtureEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    LANG: "C.UTF-8",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: TEST_GIT_GLOBAL_CONFIG,
    GIT_TERMINAL_PROMPT: "0",
  };
}

/** Runs git synchronously and returns its stdout. */
export function gitSync(cwd: string, args: string[]): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", env: fixtureEnv(), stdio: ["ignore", "pipe", "pipe"] });
}

/** A fresh temp folder (through its real path), tracked for {@link cleanupTempDirs}. */
const created: string[] = [];
export function makeTempDir(prefix = "mc-test-"): string {
  const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), prefix)));
  created.push(dir);
  return dir;
}

export function cleanupTempDirs(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Writes `files` (relative path → content) under `root`, creating folders. */
export function writeTree(root: string, files: Record<string, string | Buffer>): void {
  for (const [relative, content] of Object.entries(files)) {
    const absolute = path.join(root, relative);
    mkdirSync(path.dirname(absolute), { recursive: true });
    writeFileSync(absolute, content);
  }
}

/**
 * Creates `<base>/<name>` as a bare repository whose `main` has one commit holding `files`.
 *
 * @returns the bare repository's path
 */
export function createSeededBareRepo(base: string, files: Record<string, string>, name = "origin.git"): string {
  const bare = path.join(base, name);
  gitSync(base, ["init", "--quiet", "--bare", "-b", "main", bare]);
  const seed = path.join(base, `${name}-seed`);
  gitSync(base, ["init", "--quiet", "-b", "main", seed]);
  writeTree(seed, files);
  gitSync(seed, ["add", "--all"]);
  gitSync(seed, ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "seed"]);
  gitSync(seed, ["push", "--quiet", bare, "main:refs/heads/main"]);
  rmSync(seed, { recursive: true, force: true });
  return bare;
}

/** Every regular file under `dir`, recursively, as absolute paths. */
export function listAllFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const absolute = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listAllFiles(absolute));
    else if (entry.isFile()) out.push(absolute);
  }
  return out;
}

/** Paths of the files under `dir` whose bytes (read as latin1 text) contain `needle`. */
export function filesContaining(dir: string, needle: string): string[] {
  return listAllFiles(dir).filter((file) => statSync(file).size > 0 && readFileSync(file).toString("latin1").includes(needle));
}

/** A loopback smart-HTTP git server over `git http-backend`, serving the repositories under `projectRoot`. */
export interface GitHttpServer {
  /** `http://127.0.0.1:<port>` */
  baseUrl: string;
  /** Every request seen: its URL and Authorization header. */
  requests: { method: string; url: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

/**
 * Starts the server. Requests without `Authorization: basic base64(x-access-token:<token>)`
 * get 401, so a clone or push succeeds only when the token was sent as a header.
 */
export async function startGitHttpServer(projectRoot: string, token: string): Promise<GitHttpServer> {
  const expected = `basic ${Buffer.from(`x-access-token:${token}`).toString("base64")}`;
  const requests: GitHttpServer["requests"] = [];
  const server: Server = createServer((req, res) => {
    const authorization = req.headers.authorization;
    requests.push({ method: req.method ?? "", url: req.url ?? "", authorization });
    if (authorization?.toLowerCase() !== expected.toLowerCase()) {
      req.resume();
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="test"' });
      res.end("unauthorised");
      return;
    }
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.replace(/^\?/, ""),
      REQUEST_METHOD: req.method ?? "GET",
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      REMOTE_USER: "x-access-token",
      REMOTE_ADDR: "127.0.0.1",
      GATEWAY_INTERFACE: "CGI/1.1",
    };
    if (req.headers["content-length"]) env.CONTENT_LENGTH = req.headers["content-length"];
    if (req.headers["content-encoding"]) env.HTTP_CONTENT_ENCODING = req.headers["content-encoding"];
    if (req.headers["git-protocol"]) env.GIT_PROTOCOL = String(req.headers["git-protocol"]);
    const child = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "ignore"] });
    req.pipe(child.stdin);
    let head = Buffer.alloc(0);
    let headersSent = false;
    child.stdout.on("data", (chunk: Buffer) => {
      if (headersSent) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end === -1) return;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString("latin1").split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon === -1) continue;
        const key = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (key.toLowerCase() === "status") status = Number.parseInt(value, 10);
        else headers[key] = value;
      }
      res.writeHead(status, headers);
      headersSent = true;
      res.write(head.subarray(end + 4));
    });
    child.on("close", () => {
      if (!headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
