import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/** A repository as `GET /user/installations/{id}/repositories` lists it, with the user's permissions. */
export interface FakeRepository {
  full_name: string;
  admin?: boolean;
  push?: boolean;
}

/** A GitHub user of the fake: the App's installations they can reach and their permissions there. */
export interface FakeOAuthUser {
  login: string;
  id: number;
  installations: Array<{ id: number; repositories: FakeRepository[] }>;
}

/** The fake GitHub of the dashboard's sign-in, over HTTP on loopback. */
export interface FakeOAuth {
  /** `http://127.0.0.1:<port>`: GitHub's web host (GITHUB_OAUTH_URL, or GHE_HOST with GHE_PROTOCOL=http). */
  url: string;
  /** `127.0.0.1:<port>`, for GHE_HOST (the REST API is then `${url}/api/v3`). */
  host: string;
  /** Who the next `authorize` signs in (the fake approves at once, as a user who already authorized the App would). */
  signInAs(login: string): void;
  /** Every request, `METHOD path`. */
  requests: string[];
  /** The user-to-server tokens handed out. */
  tokens: string[];
  /** The tokens revoked through `DELETE /api/v3/applications/{client_id}/token`, in order. */
  revoked: string[];
  /** While on, the revocation endpoint answers 500 (and revokes nothing). */
  failRevocations(on: boolean): void;
  close(): Promise<void>;
}

/**
 * Starts a fake of GitHub's OAuth web flow and the user-to-server REST endpoints the dashboard
 * reads at sign-in:
 * - `GET /login/oauth/authorize?client_id&redirect_uri&state` → 302 to `redirect_uri?code&state`
 *   (or `?error=access_denied&state` when no user was chosen);
 * - `POST /login/oauth/access_token` (JSON or form: `client_id`, `client_secret`, `code`,
 *   `redirect_uri`) → `{ access_token, token_type }`, or `{ error: "bad_verification_code" }`;
 * - `GET /api/v3/user`, `GET /api/v3/user/installations`,
 *   `GET /api/v3/user/installations/{id}/repositories` with `Authorization: Bearer <token>`
 *   (paged with `per_page` and `page`, as GitHub does);
 * - `DELETE /api/v3/applications/{client_id}/token` with basic auth `client_id:client_secret` and
 *   the JSON body `{ access_token }` → 204, the token no longer works (422 for an unknown token,
 *   404 for wrong credentials, as GitHub answers).
 * A code works once; it is bound to the client id and redirect URI it was issued for.
 */
export async function startOAuthFake(options: { clientId: string; clientSecret: string; users: FakeOAuthUser[] }): Promise<FakeOAuth> {
  const requests: string[] = [];
  const tokens: string[] = [];
  const revoked: string[] = [];
  let failRevocations = false;
  const codes = new Map<string, { login: string; redirectUri: string }>();
  const byToken = new Map<string, FakeOAuthUser>();
  let next: string | undefined;

  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
      req.on("end", () => resolve(body));
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://fake.invalid");
    requests.push(`${req.method} ${url.pathname}`);
    const json = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));

    if (req.method === "GET" && url.pathname === "/login/oauth/authorize") {
      const redirectUri = url.searchParams.get("redirect_uri") ?? "";
      const state = url.searchParams.get("state") ?? "";
      if (url.searchParams.get("client_id") !== options.clientId || !redirectUri) return void json(400, { message: "bad client_id or redirect_uri" });
      const back = new URL(redirectUri);
      back.searchParams.set("state", state);
      if (next === undefined) back.searchParams.set("error", "access_denied");
      else {
        const code = randomBytes(10).toString("hex");
        codes.set(code, { login: next, redirectUri });
        back.searchParams.set("code", code);
      }
      res.writeHead(302, { location: back.toString() }).end();
      return;
    }
    if (req.method === "POST" && url.pathname === "/login/oauth/access_token") {
      const text = await new Promise<string>((resolve) => {
        let body = "";
        req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
        req.on("end", () => resolve(body));
      });
      const params: Record<string, string> = (req.headers["content-type"] ?? "").includes("json")
        ? (JSON.parse(text) as Record<string, string>)
        : Object.fromEntries(new URLSearchParams(text));
      const issued = codes.get(params.code ?? "");
      codes.delete(params.code ?? "");
      if (params.client_id !== options.clientId || params.client_secret !== options.clientSecret)
        return void json(200, { error: "incorrect_client_credentials" });
      if (!issued || issued.redirectUri !== params.redirect_uri) return void json(200, { error: "bad_verification_code" });
      const user = options.users.find((u) => u.login === issued.login);
      if (!user) return void json(200, { error: "bad_verification_code" });
      const token = `ghu_${randomBytes(18).toString("hex")}`;
      tokens.push(token);
      byToken.set(token, user);
      return void json(200, { access_token: token, token_type: "bearer", scope: "" });
    }
    if (req.method === "DELETE" && url.pathname === `/api/v3/applications/${options.clientId}/token`) {
      const body = await readBody(req);
      if (failRevocations) return void json(500, { message: "Server Error" });
      const basic = `Basic ${Buffer.from(`${options.clientId}:${options.clientSecret}`).toString("base64")}`;
      if (req.headers.authorization !== basic) return void json(404, { message: "Not Found" });
      const token = (JSON.parse(body || "{}") as { access_token?: string }).access_token ?? "";
      if (!byToken.delete(token)) return void json(422, { message: "Validation Failed" });
      revoked.push(token);
      res.writeHead(204).end();
      return;
    }
    if (req.method === "GET" && url.pathname.startsWith("/api/v3/user")) {
      const user = byToken.get((req.headers.authorization ?? "").replace(/^Bearer /, ""));
      if (!user) return void json(401, { message: "Bad credentials" });
      const perPage = Number(url.searchParams.get("per_page") ?? 30);
      const page = Number(url.searchParams.get("page") ?? 1);
      const slice = <T>(items: T[]) => items.slice((page - 1) * perPage, page * perPage);
      if (url.pathname === "/api/v3/user") return void json(200, { login: user.login, id: user.id, type: "User" });
      if (url.pathname === "/api/v3/user/installations") {
        return void json(200, { total_count: user.installations.length, installations: slice(user.installations).map((i) => ({ id: i.id })) });
      }
      const match = /^\/api\/v3\/user\/installations\/(\d+)\/repositories$/.exec(url.pathname);
      const installation = match ? user.installations.find((i) => i.id === Number(match[1])) : undefined;
      if (!installation) return void json(404, { message: "Not Found" });
      return void json(200, {
        total_count: installation.repositories.length,
        repositories: slice(installation.repositories).map((r) => ({
          full_name: r.full_name,
          permissions: { admin: r.admin ?? false, maintain: false, push: r.push ?? false, triage: false, pull: true },
        })),
      });
    }
    json(404, { message: `the OAuth fake does not serve ${req.method} ${url.pathname}` });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ message: String(err) }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    signInAs: (login) => (next = login),
    requests,
    tokens,
    revoked,
    failRevocations: (on) => (failRevocations = on),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
