import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

import { parseCookie, stringifySetCookie } from "cookie";
import type { Logger } from "pino";
import { z } from "zod";

import { githubBaseUrl, githubOAuthUrl, type ServerEnv } from "../../config/env.js";
import type { Db } from "../../store/db.js";
import {
  createDashboardSession,
  type DashboardScope,
  deleteDashboardSession,
  EVERYTHING,
  findDashboardSession,
  type StoredDashboardSession,
} from "../../store/dashboard.js";

/** How long an operator (DASHBOARD_TOKEN) session lasts: 8 hours, in milliseconds. */
export const SESSION_TTL_MS = 8 * 60 * 60_000;
/**
 * How long a sign-in with GitHub lasts: 1 hour, in milliseconds. The user's access is computed
 * at sign-in; a short session bounds how long a revoked permission still shows.
 */
export const USER_SESSION_TTL_MS = 60 * 60_000;
/** How long the OAuth `state` (and the token form's login token) stays valid: 10 minutes, in milliseconds. */
const LOGIN_TTL_MS = 10 * 60_000;
/** Milliseconds before a GitHub request of the sign-in gives up. */
const GITHUB_TIMEOUT_MS = 10_000;
/** Most installations and repositories read at sign-in (pages of 100). */
const MAX_PAGES = 20;

/** The dashboard's access configuration, derived once from the environment. */
export interface DashboardAuthConfig {
  /** Sign-in with GitHub (the App's OAuth client), or `null` when not configured. */
  oauth: {
    clientId: string;
    clientSecret: string;
    /** GitHub's web host, e.g. `https://github.com` (authorize, access_token). */
    webUrl: string;
    /** GitHub's REST API base, e.g. `https://api.github.com`. */
    apiUrl: string;
    /** `${DASHBOARD_URL}/dashboard/oauth/callback`. */
    redirectUri: string;
  } | null;
  /** DASHBOARD_TOKEN: the operator's server-wide view, or `null`. */
  operatorToken: string | null;
  /** Cookies carry `Secure` and the `__Host-` prefix. */
  secureCookies: boolean;
  /** Operator session lifetime in milliseconds. */
  sessionTtlMs: number;
  /** Sign-in with GitHub session lifetime in milliseconds. */
  userSessionTtlMs: number;
}

/** The dashboard's access configuration from the server environment. */
export function dashboardAuthConfig(env: ServerEnv): DashboardAuthConfig {
  const base = env.DASHBOARD_URL?.replace(/\/+$/, "");
  return {
    oauth:
      env.GITHUB_CLIENT_ID && env.GITHUB_CLIENT_SECRET && base
        ? {
            clientId: env.GITHUB_CLIENT_ID,
            clientSecret: env.GITHUB_CLIENT_SECRET,
            webUrl: githubOAuthUrl(env),
            apiUrl: githubBaseUrl(env),
            redirectUri: `${base}/dashboard/oauth/callback`,
          }
        : null,
    operatorToken: env.DASHBOARD_TOKEN ?? null,
    secureCookies: env.DASHBOARD_COOKIE_SECURE === "on",
    sessionTtlMs: SESSION_TTL_MS,
    userSessionTtlMs: USER_SESSION_TTL_MS,
  };
}

/** `true` when some access is configured (else the dashboard answers 404). */
export function dashboardEnabled(config: DashboardAuthConfig): boolean {
  return config.oauth !== null || config.operatorToken !== null;
}

/** Who is looking: a signed-in person or the operator, what they may see, and the CSRF token of their session. */
export interface Viewer {
  login: string;
  operator: boolean;
  scope: DashboardScope;
  /** The session's CSRF token; `null` for a bearer-token request (it carries no ambient credential). */
  csrfToken: string | null;
  /** SHA-256 of the session id (for sign-out); `null` for a bearer-token request. */
  sessionHash: string | null;
}

/** The constant-time comparison of two secrets: their SHA-256 digests, so different lengths compare in constant time too. */
export function secretsEqual(actual: string, expected: string): boolean {
  return timingSafeEqual(createHash("sha256").update(actual).digest(), createHash("sha256").update(expected).digest());
}

/** SHA-256 of the operator token, hex: the fingerprint an operator session stores (never the token). */
export function operatorTokenFingerprint(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** SHA-256 of a session id, hex: what the database stores. */
export function hashSessionId(id: string): string {
  return createHash("sha256").update(id).digest("hex");
}

const randomToken = () => randomBytes(32).toString("base64url");

/** Names of the dashboard's cookies: `__Host-` prefixed when Secure (bound to this host, path `/`, no Domain). */
export function cookieNames(config: Pick<DashboardAuthConfig, "secureCookies">): { session: string; state: string; login: string } {
  const prefix = config.secureCookies ? "__Host-" : "";
  return { session: `${prefix}mc_session`, state: `${prefix}mc_oauth_state`, login: `${prefix}mc_login` };
}

/** A `Set-Cookie` value: httpOnly, SameSite=Lax (the OAuth callback is a top-level navigation from GitHub), path `/`, Secure when configured. */
export function setCookie(config: Pick<DashboardAuthConfig, "secureCookies">, name: string, value: string, maxAgeSeconds: number): string {
  return stringifySetCookie(name, value, { httpOnly: true, secure: config.secureCookies, sameSite: "lax", path: "/", maxAge: maxAgeSeconds });
}

/** The request's cookies. */
export function cookiesOf(req: IncomingMessage): Record<string, string | undefined> {
  return parseCookie(req.headers.cookie ?? "");
}

/**
 * Who the request comes from: `Authorization: Bearer <DASHBOARD_TOKEN>` (the operator, for
 * scripts: no session; a wrong bearer token is refused), or the session cookie of an unexpired
 * session. Another `Authorization` scheme (e.g. `Basic`, added by a proxy) is ignored. An
 * operator session (no user id) holds only while DASHBOARD_TOKEN is set and has the fingerprint
 * it was opened with.
 *
 * @returns `undefined` when neither holds
 */
export async function viewerOf(db: Db, config: DashboardAuthConfig, req: IncomingMessage, now = Date.now()): Promise<Viewer | undefined> {
  const bearer = /^Bearer\s+(\S.*)$/i.exec(req.headers.authorization ?? "");
  if (bearer?.[1] !== undefined && config.operatorToken !== null) {
    if (secretsEqual(bearer[1].trim(), config.operatorToken)) {
      return { login: "operator", operator: true, scope: EVERYTHING, csrfToken: null, sessionHash: null };
    }
    return undefined;
  }
  const id = cookiesOf(req)[cookieNames(config).session];
  if (!id) return undefined;
  const hash = hashSessionId(id);
  const session = await findDashboardSession(db, hash, now);
  if (!session) return undefined;
  if (session.userId === null) {
    const stored = session.operatorTokenSha256;
    if (config.operatorToken === null || stored === null || !secretsEqual(stored, operatorTokenFingerprint(config.operatorToken))) return undefined;
  }
  return viewerOfSession(session, hash);
}

function viewerOfSession(session: StoredDashboardSession, hash: string): Viewer {
  return { login: session.login, operator: session.userId === null, scope: session.scope, csrfToken: session.csrfToken, sessionHash: hash };
}

/** The login recorded for a DASHBOARD_TOKEN session; such a session has no GitHub user id. */
const OPERATOR = "operator";

/**
 * Starts a session: a random id in the cookie, its hash in the database with what the viewer
 * may see and a new CSRF token. A GitHub user's session lasts `userSessionTtlMs` (1 hour); an
 * operator's (`userId` `null`) lasts `sessionTtlMs` (8 hours) and stores the fingerprint of the
 * current DASHBOARD_TOKEN.
 *
 * @returns the `Set-Cookie` value
 */
export async function startSession(
  db: Db,
  config: DashboardAuthConfig,
  who: { login: string; userId: number | null; scope: DashboardScope },
  now = Date.now(),
): Promise<string> {
  const id = randomToken();
  const operator = who.userId === null;
  const ttlMs = operator ? config.sessionTtlMs : config.userSessionTtlMs;
  await createDashboardSession(db, {
    idHash: hashSessionId(id),
    login: who.login,
    userId: who.userId,
    scope: who.scope,
    csrfToken: randomToken(),
    operatorTokenSha256: operator && config.operatorToken !== null ? operatorTokenFingerprint(config.operatorToken) : null,
    createdAt: now,
    expiresAt: now + ttlMs,
  });
  return setCookie(config, cookieNames(config).session, id, Math.floor(ttlMs / 1000));
}

/** Ends the viewer's session. @returns the `Set-Cookie` value that clears the cookie */
export async function endSession(db: Db, config: DashboardAuthConfig, viewer: Viewer): Promise<string> {
  if (viewer.sessionHash) await deleteDashboardSession(db, viewer.sessionHash);
  return setCookie(config, cookieNames(config).session, "", 0);
}

/** Starts an operator session for a correct DASHBOARD_TOKEN. @returns the `Set-Cookie` value, or `null` for a wrong token */
export async function operatorSignIn(db: Db, config: DashboardAuthConfig, token: string, now = Date.now()): Promise<string | null> {
  if (config.operatorToken === null || !secretsEqual(token, config.operatorToken)) return null;
  return startSession(db, config, { login: OPERATOR, userId: null, scope: EVERYTHING }, now);
}

/**
 * A request that is not a GET carries the session's CSRF token (form field `_csrf` or header
 * `x-csrf-token`), compared in constant time. A bearer-token request needs none: the browser
 * never adds that header by itself.
 */
export function csrfValid(viewer: Viewer, supplied: string | undefined): boolean {
  if (viewer.csrfToken === null) return viewer.sessionHash === null;
  return supplied !== undefined && secretsEqual(supplied, viewer.csrfToken);
}

/**
 * A login form's token (the operator-token form): a random value in a short-lived cookie and in
 * the form (double submit), so another site cannot sign a browser in with its own token.
 *
 * @returns the value and its `Set-Cookie`
 */
export function loginFormToken(config: DashboardAuthConfig): { value: string; cookie: string } {
  const value = randomToken();
  return { value, cookie: setCookie(config, cookieNames(config).login, value, LOGIN_TTL_MS / 1000) };
}

/** `true` when the form's login token matches its cookie. */
export function loginFormTokenValid(config: DashboardAuthConfig, req: IncomingMessage, supplied: string | undefined): boolean {
  const expected = cookiesOf(req)[cookieNames(config).login];
  return Boolean(expected) && supplied !== undefined && secretsEqual(supplied, expected ?? "");
}

// ---------------------------------------------------------------------------------------------
// Sign in with GitHub: the OAuth web application flow of a GitHub App (user-to-server token)

/**
 * Step 1: where to send the browser, and the `Set-Cookie` binding the `state` to it.
 * `GET {web}/login/oauth/authorize?client_id&redirect_uri&state` (GitHub docs: "Generating a
 * user access token for a GitHub App", web application flow). A GitHub App's token has the
 * App's permissions intersected with the user's; no `scope` is asked.
 */
export function authorizeRedirect(config: DashboardAuthConfig): { location: string; cookie: string } {
  const oauth = config.oauth;
  if (oauth === null) throw new Error("sign-in with GitHub is not configured");
  const state = randomToken();
  const url = new URL(`${oauth.webUrl}/login/oauth/authorize`);
  url.searchParams.set("client_id", oauth.clientId);
  url.searchParams.set("redirect_uri", oauth.redirectUri);
  url.searchParams.set("state", state);
  url.searchParams.set("allow_signup", "false");
  return { location: url.toString(), cookie: setCookie(config, cookieNames(config).state, state, LOGIN_TTL_MS / 1000) };
}

/** Why a sign-in with GitHub was refused (shown to the person, never with a secret). */
export class SignInError extends Error {
  readonly code: "state_mismatch" | "denied" | "github_error";
  constructor(code: SignInError["code"], message: string) {
    super(message);
    this.name = "SignInError";
    this.code = code;
  }
}

const AccessTokenResponse = z.union([
  z.object({ access_token: z.string().min(1), token_type: z.string().optional() }),
  z.object({ error: z.string(), error_description: z.string().optional() }),
]);
const GitHubUser = z.object({ login: z.string().min(1), id: z.number().int() });
const UserInstallations = z.object({ total_count: z.number().int(), installations: z.array(z.object({ id: z.number().int() })) });
const InstallationRepositories = z.object({
  total_count: z.number().int(),
  repositories: z.array(
    z.object({
      full_name: z.string().min(3),
      permissions: z.object({ admin: z.boolean().optional(), push: z.boolean().optional() }).partial().optional(),
    }),
  ),
});

/** What a signed-in user may see, computed at sign-in. */
export interface UserAccess {
  login: string;
  userId: number;
  scope: { installationIds: number[]; repositories: string[] };
}

/**
 * Step 2, the callback: checks `state` against its cookie (login CSRF), exchanges `code` for a
 * user-to-server token, and computes what the user may see. The token is used for these requests
 * only, never stored, and revoked as soon as they are done (whether they succeeded or not).
 *
 * GitHub REST endpoints (user-to-server token, `Authorization: Bearer`):
 * - `POST {web}/login/oauth/access_token` (`client_id`, `client_secret`, `code`, `redirect_uri`) → `access_token`;
 * - `GET {api}/user` → `login`, `id`;
 * - `GET {api}/user/installations` → the App's installations the user can access;
 * - `GET {api}/user/installations/{installation_id}/repositories` → each repository with the user's
 *   `permissions`; kept when `permissions.admin` or `permissions.push` is true.
 * An installation is kept when at least one of its repositories is. Then
 * `DELETE {api}/applications/{client_id}/token` (basic auth `client_id:client_secret`, body
 * `{ access_token }`; GitHub docs: "Delete an app token") revokes the token; a failure is logged
 * to `log` and does not fail the sign-in.
 *
 * @throws {SignInError} for a wrong or missing state, a denied authorization, or a GitHub error
 */
export async function completeSignIn(
  config: DashboardAuthConfig,
  req: IncomingMessage,
  query: URLSearchParams,
  log?: Pick<Logger, "warn">,
): Promise<UserAccess> {
  const oauth = config.oauth;
  if (oauth === null) throw new SignInError("github_error", "sign-in with GitHub is not configured");
  const expected = cookiesOf(req)[cookieNames(config).state];
  const state = query.get("state");
  if (!expected || state === null || !secretsEqual(state, expected))
    throw new SignInError("state_mismatch", "The sign-in expired or did not start here. Try again.");
  if (query.get("error")) throw new SignInError("denied", "GitHub did not authorize the sign-in.");
  const code = query.get("code");
  if (!code) throw new SignInError("denied", "GitHub sent no authorization code.");

  const exchange = AccessTokenResponse.parse(
    await fetchJson(`${oauth.webUrl}/login/oauth/access_token`, {
      method: "POST",
      headers: { accept: "application/json", "content-type": "application/json" },
      body: JSON.stringify({ client_id: oauth.clientId, client_secret: oauth.clientSecret, code, redirect_uri: oauth.redirectUri }),
    }),
  );
  if ("error" in exchange) throw new SignInError("denied", `GitHub refused the authorization code (${exchange.error}).`);
  const token = exchange.access_token;
  const api = (path: string) =>
    fetchJson(`${oauth.apiUrl}${path}`, {
      headers: { accept: "application/vnd.github+json", authorization: `Bearer ${token}`, "x-github-api-version": "2022-11-28" },
    });

  try {
    return await accessOf(api);
  } finally {
    await revokeToken(oauth, token, log);
  }
}

/** The user's login, id and what they may see, read with `api` (the user-to-server token). */
async function accessOf(api: (path: string) => Promise<unknown>): Promise<UserAccess> {
  const user = GitHubUser.parse(await api("/user"));
  const installationIds: number[] = [];
  const repositories: string[] = [];
  for (let page = 1; page <= MAX_PAGES; page++) {
    const batch = UserInstallations.parse(await api(`/user/installations?per_page=100&page=${page}`));
    for (const installation of batch.installations) {
      let kept = false;
      for (let repoPage = 1; repoPage <= MAX_PAGES; repoPage++) {
        const repos = InstallationRepositories.parse(await api(`/user/installations/${installation.id}/repositories?per_page=100&page=${repoPage}`));
        for (const repo of repos.repositories) {
          if (repo.permissions?.admin === true || repo.permissions?.push === true) {
            repositories.push(repo.full_name);
            kept = true;
          }
        }
        if (repos.repositories.length < 100) break;
      }
      if (kept) installationIds.push(installation.id);
    }
    if (batch.installations.length < 100) break;
  }
  return { login: user.login, userId: user.id, scope: { installationIds, repositories: [...new Set(repositories)].sort() } };
}

/**
 * Revokes a user-to-server token: `DELETE {api}/applications/{client_id}/token` with basic auth
 * `client_id:client_secret` and the JSON body `{ access_token }` (GitHub answers 204). Never
 * throws: a failure is logged (without the token) and the token expires on its own.
 */
async function revokeToken(oauth: NonNullable<DashboardAuthConfig["oauth"]>, token: string, log?: Pick<Logger, "warn">): Promise<void> {
  const path = `/applications/${encodeURIComponent(oauth.clientId)}/token`;
  try {
    const response = await fetch(`${oauth.apiUrl}${path}`, {
      method: "DELETE",
      headers: {
        accept: "application/vnd.github+json",
        authorization: `Basic ${Buffer.from(`${oauth.clientId}:${oauth.clientSecret}`).toString("base64")}`,
        "content-type": "application/json",
        "x-github-api-version": "2022-11-28",
      },
      body: JSON.stringify({ access_token: token }),
      redirect: "error",
      signal: AbortSignal.timeout(GITHUB_TIMEOUT_MS),
    });
    await response.body?.cancel();
    if (response.status !== 204 && !response.ok) log?.warn({ status: response.status }, "dashboard: GitHub refused to revoke the sign-in token");
  } catch (err) {
    log?.warn({ error: err instanceof Error ? err.name : "error" }, "dashboard: revoking the sign-in token failed");
  }
}

/** Clears the OAuth state cookie (once used). */
export function clearStateCookie(config: DashboardAuthConfig): string {
  return setCookie(config, cookieNames(config).state, "", 0);
}

async function fetchJson(url: string, init: RequestInit): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, redirect: "error", signal: AbortSignal.timeout(GITHUB_TIMEOUT_MS) });
  } catch (err) {
    throw new SignInError("github_error", `GitHub did not answer (${err instanceof Error ? err.name : "error"}).`);
  }
  if (!response.ok) throw new SignInError("github_error", `GitHub answered ${response.status} to ${new URL(url).pathname}.`);
  try {
    return await response.json();
  } catch {
    throw new SignInError("github_error", `GitHub's answer to ${new URL(url).pathname} was not JSON.`);
  }
}

/** Sets the given cookies and headers and redirects (303) to `location`. */
export function redirect(res: ServerResponse, location: string, cookies: string[] = []): void {
  res.writeHead(303, { location, "set-cookie": cookies, "cache-control": "no-store", "referrer-policy": "no-referrer" }).end();
}
