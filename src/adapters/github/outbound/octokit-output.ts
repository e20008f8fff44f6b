import type { RestEndpointMethodTypes } from "@octokit/rest";
import type { ProbotOctokit } from "probot";

import { GitHubApiError } from "../../../domain/errors.js";
import { ensureComment, ensureIssue } from "./ensure.js";
import { ciReads } from "./ci-output.js";
import { redactSecrets } from "../../../domain/redact.js";
import type {
  BotIdentity,
  CheckRunData,
  CheckRunOutput,
  CommentData,
  GitHubPort,
  IssueData,
  PullRequestData,
  PullRequestFile,
  RepositoryPermission,
  ReviewCommentData,
  ReviewCommentInput,
  ReviewData,
  ReviewEvent,
  ReviewThreadState,
} from "../../../ports/github.js";

type Octokit = InstanceType<typeof ProbotOctokit>;

interface ErrorLike {
  status?: unknown;
  message?: unknown;
  response?: { headers?: Record<string, string | undefined>; data?: unknown };
}

/**
 * Translates an Octokit `RequestError` into {@link GitHubApiError}. Retryable: 5xx, 429,
 * network errors, and 403 secondary or primary rate limits (GitHub's docs: "Rate limits for the
 * REST API" — a `retry-after` header, or `x-ratelimit-remaining: 0` with `x-ratelimit-reset`).
 */
export function toGitHubApiError(err: unknown, now = Date.now()): unknown {
  if (err instanceof GitHubApiError) return err;
  const e = err as ErrorLike;
  if (typeof e?.status !== "number") return err;
  const status = e.status;
  const headers = e.response?.headers ?? {};
  const dataMessage = (e.response?.data as { message?: string } | undefined)?.message ?? "";
  const errorMessage = typeof e.message === "string" ? e.message : "";
  const message = redactSecrets(String(dataMessage || errorMessage || `HTTP ${status}`)).slice(0, 300);
  let retryAfterMs: number | undefined;
  const retryAfter = Number(headers["retry-after"]);
  if (Number.isFinite(retryAfter) && headers["retry-after"] !== undefined) retryAfterMs = retryAfter * 1000;
  const rateLimited =
    (status === 403 || status === 429) && (retryAfterMs !== undefined || headers["x-ratelimit-remaining"] === "0" || /rate limit/i.test(message));
  if (rateLimited && retryAfterMs === undefined && headers["x-ratelimit-reset"]) {
    retryAfterMs = Math.max(0, Number(headers["x-ratelimit-reset"]) * 1000 - now);
  }
  const retryable = status === 0 || status >= 500 || status === 429 || rateLimited;
  return new GitHubApiError(status, message, {
    retryable,
    cause: err,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toGitHubApiError(err);
  }
}

/**
 * The REST answers mapped below, typed by their endpoints (`@octokit/rest`). The calls whose
 * answer goes through a mapper use `octokit.rest.*`, whose data has exactly these types
 * (`octokit.request` is typed by a newer OpenAPI description, with `number | bigint` ids).
 */
type Rest = RestEndpointMethodTypes;
type IssueCommentResponse = Rest["issues"]["getComment"]["response"]["data"];
/** A full pull request (`GET …/pulls/{n}`, `POST …/pulls`) or an item of a list (`GET …/pulls`), which has no `merged`. */
type PullRequestResponse = Rest["pulls"]["get"]["response"]["data"] | Rest["pulls"]["list"]["response"]["data"][number];
type ReviewResponse = Rest["pulls"]["getReview"]["response"]["data"];
type CheckRunResponse = Rest["checks"]["get"]["response"]["data"];
type ReviewCommentResponse = Rest["pulls"]["getReviewComment"]["response"]["data"];

const toComment = (c: IssueCommentResponse): CommentData => ({
  id: c.id,
  body: c.body ?? "",
  author: c.user?.login ?? "",
  authorType: c.user?.type ?? "User",
  createdAt: c.created_at,
  updatedAt: c.updated_at,
  htmlUrl: c.html_url,
});

const toPullRequest = (p: PullRequestResponse): PullRequestData => ({
  number: p.number,
  title: p.title,
  htmlUrl: p.html_url,
  state: p.state as PullRequestData["state"],
  draft: Boolean(p.draft),
  merged: Boolean(("merged" in p ? p.merged : undefined) ?? p.merged_at),
  author: p.user?.login ?? "",
  headRef: p.head.ref,
  headSha: p.head.sha,
  baseRef: p.base.ref,
});

const toReview = (r: ReviewResponse): ReviewData => ({
  id: r.id,
  body: r.body ?? "",
  state: r.state,
  author: r.user?.login ?? "",
  commitId: r.commit_id ?? null,
  htmlUrl: r.html_url,
});

const toCheckRun = (c: CheckRunResponse): CheckRunData => ({
  id: c.id,
  name: c.name,
  headSha: c.head_sha,
  status: c.status,
  conclusion: c.conclusion ?? null,
  externalId: c.external_id ?? null,
  appSlug: c.app?.slug ?? null,
  htmlUrl: c.html_url ?? "",
});

const toReviewComment = (c: ReviewCommentResponse): ReviewCommentData => ({
  id: c.id,
  reviewId: c.pull_request_review_id ?? null,
  path: c.path,
  line: c.line ?? null,
  body: c.body ?? "",
  author: c.user?.login ?? "",
  authorType: c.user?.type ?? "User",
  createdAt: c.created_at,
  inReplyTo: c.in_reply_to_id ?? null,
  diffHunk: c.diff_hunk,
  updatedAt: c.updated_at,
});

/**
 * The review threads of a pull request with their resolved state (GraphQL only), 100 threads a
 * page; the first 100 comments of each thread identify it by their REST ids (`databaseId`).
 */
const REVIEW_THREADS_QUERY = `query reviewThreads($owner: String!, $repo: String!, $number: Int!, $after: String) {
  repository(owner: $owner, name: $repo) {
    pullRequest(number: $number) {
      reviewThreads(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor }
        nodes { isResolved comments(first: 100) { nodes { databaseId } } }
      }
    }
  }
}`;

interface ReviewThreadsAnswer {
  repository: {
    pullRequest: {
      reviewThreads: {
        pageInfo: { hasNextPage: boolean; endCursor: string | null };
        nodes: Array<{ isResolved: boolean; comments: { nodes: Array<{ databaseId: number | null }> } }>;
      };
    } | null;
  } | null;
}

/** GitHub's limit on each of a check run's `summary` and `text`, in characters. */
/** An issue's GraphQL node id, for {@link PIN_ISSUE_MUTATION}. */
const ISSUE_ID_QUERY = `query issueId($owner: String!, $repo: String!, $number: Int!) {
  repository(owner: $owner, name: $repo) { issue(number: $number) { id } }
}`;

/** GraphQL `pinIssue` (https://docs.github.com/en/graphql/reference/mutations#pinissue). */
const PIN_ISSUE_MUTATION = `mutation pinIssue($issueId: ID!) {
  pinIssue(input: { issueId: $issueId }) { issue { number } }
}`;

/** An issue of the REST API (`GET`/`POST`/`PATCH …/issues`) as {@link IssueData}. */
const toIssue = (data: {
  number: number;
  title: string;
  body?: string | null;
  user?: { login: string } | null;
  state: string;
  labels: Array<string | { name?: string | null }>;
  html_url: string;
}): IssueData => ({
  number: data.number,
  title: data.title,
  body: data.body ?? "",
  author: data.user?.login ?? "",
  state: data.state === "closed" ? "closed" : "open",
  labels: data.labels.map((l) => (typeof l === "string" ? l : (l.name ?? ""))).filter(Boolean),
  htmlUrl: data.html_url,
});

const CHECK_TEXT_LIMIT = 65_535;

function clipOutput(output: CheckRunOutput): CheckRunOutput {
  const clip = (value: string) => (value.length > CHECK_TEXT_LIMIT ? `${value.slice(0, CHECK_TEXT_LIMIT - 40)}\n\n[clipped to GitHub's limit]` : value);
  return { title: output.title.slice(0, 255), summary: clip(output.summary), ...(output.text ? { text: clip(output.text) } : {}) };
}

/**
 * Merges config documents as Probot's `context.config` does (the `deepmerge` package's
 * defaults): objects key by key, arrays concatenated, anything else replaced.
 */
function mergeDeep(target: unknown, source: unknown): unknown {
  const isArray = (v: unknown): v is unknown[] => Array.isArray(v);
  if (isArray(target) && isArray(source)) return [...target, ...source];
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(target) || !isObject(source)) return source;
  const merged: Record<string, unknown> = { ...target };
  for (const [key, value] of Object.entries(source)) merged[key] = key in merged ? mergeDeep(merged[key], value) : value;
  return merged;
}

/** Labels known to exist, per repository: `ensureLabel` asks GitHub once per process. */
const knownLabels = new Set<string>();

/** Caches the bot identity per app: it never changes while the process runs. */
const botIdentityCache = new WeakMap<object, Promise<BotIdentity>>();

/**
 * The Octokit implementation of {@link GitHubPort}.
 *
 * @param installationOctokit - authenticated as the installation (`app.auth(installationId)`)
 * @param appOctokit - authenticated as the app (`app.auth()`), used for installation tokens and `GET /app`
 */
export function createOctokitOutput(options: {
  installationOctokit: Octokit;
  appOctokit: Octokit;
  installationId: number;
  owner: string;
  repo: string;
  repositoryId?: number | undefined;
}): GitHubPort {
  const { installationOctokit: octokit, appOctokit, installationId, owner, repo } = options;
  const base = { owner, repo };

  const port: GitHubPort = {
    owner,
    repo,

    getIssue: (issueNumber) =>
      call(async () => {
        const { data } = await octokit.request("GET /repos/{owner}/{repo}/issues/{issue_number}", { ...base, issue_number: issueNumber });
        const issue: IssueData = {
          number: data.number,
          title: data.title,
          body: data.body ?? "",
          author: data.user?.login ?? "",
          state: data.state as "open" | "closed",
          labels: data.labels.map((l) => (typeof l === "string" ? l : (l.name ?? ""))).filter(Boolean),
          htmlUrl: data.html_url,
        };
        return issue;
      }),

    listIssueComments: (issueNumber) =>
      call(async () => {
        const data = await octokit.paginate("GET /repos/{owner}/{repo}/issues/{issue_number}/comments", {
          ...base,
          issue_number: issueNumber,
          per_page: 100,
        });
        return data.map(toComment);
      }),

    createComment: (issueNumber, body) =>
      call(async () => {
        const { data } = await octokit.rest.issues.createComment({
          ...base,
          issue_number: issueNumber,
          body,
        });
        return toComment(data);
      }),

    updateComment: (commentId, body) =>
      call(async () => {
        const { data } = await octokit.rest.issues.updateComment({
          ...base,
          comment_id: commentId,
          body,
        });
        return toComment(data);
      }),

    addLabels: (issueNumber, labels) =>
      call(async () => {
        await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/labels", { ...base, issue_number: issueNumber, labels });
      }),

    removeLabel: (issueNumber, label) =>
      call(async () => {
        try {
          await octokit.request("DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}", {
            ...base,
            issue_number: issueNumber,
            name: label,
          });
        } catch (err) {
          if ((err as ErrorLike).status !== 404) throw err;
        }
      }),

    findPullRequestByBranch: (branch) =>
      call(async () => {
        const { data } = await octokit.rest.pulls.list({
          ...base,
          head: `${owner}:${branch}`,
          state: "all",
          per_page: 10,
        });
        const newest = [...data].sort((a, b) => b.number - a.number)[0];
        return newest ? toPullRequest(newest) : null;
      }),

    createPullRequest: (input) =>
      call(async () => {
        const { data } = await octokit.rest.pulls.create({ ...base, ...input });
        return toPullRequest(data);
      }),

    getPullRequest: (pullNumber) =>
      call(async () => {
        const { data } = await octokit.rest.pulls.get({ ...base, pull_number: pullNumber });
        return toPullRequest(data);
      }),

    listPullRequestFiles: (pullNumber) =>
      call(async () => {
        const data = await octokit.paginate("GET /repos/{owner}/{repo}/pulls/{pull_number}/files", {
          ...base,
          pull_number: pullNumber,
          per_page: 100,
        });
        return data.map((f): PullRequestFile => ({ filename: f.filename, status: f.status, additions: f.additions, deletions: f.deletions, patch: f.patch }));
      }),

    listReviews: (pullNumber) =>
      call(async () => {
        const data = await octokit.paginate("GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews", {
          ...base,
          pull_number: pullNumber,
          per_page: 100,
        });
        return data.map(toReview);
      }),

    createReview: ({
      pullNumber,
      commitId,
      event,
      body,
      comments,
    }: {
      pullNumber: number;
      commitId: string;
      event: ReviewEvent;
      body: string;
      comments?: ReviewCommentInput[];
    }) =>
      call(async () => {
        const { data } = await octokit.rest.pulls.createReview({
          ...base,
          pull_number: pullNumber,
          commit_id: commitId,
          event,
          body,
          ...(comments && comments.length > 0 ? { comments } : {}),
        });
        return toReview(data);
      }),

    listReviewComments: (pullNumber) =>
      call(async () => {
        const data = await octokit.paginate("GET /repos/{owner}/{repo}/pulls/{pull_number}/comments", {
          ...base,
          pull_number: pullNumber,
          per_page: 100,
        });
        return data.map(toReviewComment);
      }),

    replyToReviewComment: (pullNumber, commentId, body) =>
      call(async () => {
        const { data } = await octokit.rest.pulls.createReplyForReviewComment({ ...base, pull_number: pullNumber, comment_id: commentId, body });
        return toReviewComment(data);
      }),

    listReviewThreads: (pullNumber) =>
      call(async () => {
        const threads: ReviewThreadState[] = [];
        let after: string | null = null;
        // At most 50 pages (5000 threads): a guard against a cursor that never ends.
        for (let page = 0; page < 50; page++) {
          const answer: ReviewThreadsAnswer = await octokit.graphql<ReviewThreadsAnswer>(REVIEW_THREADS_QUERY, { owner, repo, number: pullNumber, after });
          const connection = answer.repository?.pullRequest?.reviewThreads;
          if (!connection) break;
          for (const node of connection.nodes) {
            threads.push({ isResolved: node.isResolved, commentIds: node.comments.nodes.map((c) => c.databaseId).filter((id): id is number => id !== null) });
          }
          if (!connection.pageInfo.hasNextPage || !connection.pageInfo.endCursor) break;
          after = connection.pageInfo.endCursor;
        }
        return threads;
      }),

    compareCommits: (baseSha, headSha) =>
      call(async () => {
        const { data } = await octokit.request("GET /repos/{owner}/{repo}/compare/{basehead}", { ...base, basehead: `${baseSha}...${headSha}` });
        return (data.files ?? []).map((f): PullRequestFile => ({
          filename: f.filename,
          status: f.status,
          additions: f.additions,
          deletions: f.deletions,
          patch: f.patch,
        }));
      }),

    ensureLabel: (name, color, description) =>
      call(async () => {
        const key = `${owner}/${repo}:${name}`;
        if (knownLabels.has(key)) return;
        try {
          await octokit.request("GET /repos/{owner}/{repo}/labels/{name}", { ...base, name });
        } catch (err) {
          if ((err as ErrorLike).status !== 404) throw err;
          try {
            await octokit.request("POST /repos/{owner}/{repo}/labels", { ...base, name, color, description });
          } catch (createErr) {
            // 422: another worker created it meanwhile.
            if ((createErr as ErrorLike).status !== 422) throw createErr;
          }
        }
        knownLabels.add(key);
      }),

    ensureCheckRun: ({ name, headSha, externalId, status, output }) =>
      call(async () => {
        const { data: existing } = await octokit.rest.checks.listForRef({
          ...base,
          ref: headSha,
          check_name: name,
          filter: "latest",
          per_page: 100,
        });
        const mine = existing.check_runs.find((c) => c.external_id === externalId);
        if (mine) return toCheckRun(mine);
        const { data } = await octokit.rest.checks.create({
          ...base,
          name,
          head_sha: headSha,
          external_id: externalId,
          status,
          ...(status === "in_progress" ? { started_at: new Date().toISOString() } : {}),
          ...(output ? { output: clipOutput(output) } : {}),
        });
        return toCheckRun(data);
      }),

    updateCheckRun: (id, { status, conclusion, output }) =>
      call(async () => {
        const { data } = await octokit.rest.checks.update({
          ...base,
          check_run_id: id,
          ...(status ? { status } : {}),
          ...(conclusion ? { conclusion, completed_at: new Date().toISOString() } : {}),
          ...(output ? { output: clipOutput(output) } : {}),
        });
        return toCheckRun(data);
      }),

    listCheckRuns: (headSha) =>
      call(async () => {
        const runs = await octokit.paginate("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", { ...base, ref: headSha, per_page: 100 });
        return runs.map(toCheckRun);
      }),

    // The repository's CI: check suites' runs and annotations, Actions jobs and their logs.
    ...ciReads(octokit, base, call),

    addReaction: (commentId, content) =>
      call(async () => {
        await octokit.request("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", { ...base, comment_id: commentId, content });
      }),

    listReviewCommentThumbsUp: (commentId) =>
      call(async () => {
        const reactions: Array<{ login: string; userType: string }> = [];
        for await (const { data } of octokit.paginate.iterator("GET /repos/{owner}/{repo}/pulls/comments/{comment_id}/reactions", {
          ...base,
          comment_id: commentId,
          content: "+1",
          per_page: 100,
        })) {
          for (const reaction of data) if (reaction.user) reactions.push({ login: reaction.user.login, userType: reaction.user.type });
          if (reactions.length >= 1000) break;
        }
        return reactions;
      }),

    mergePullRequest: (pullNumber, sha, method) =>
      call(async () => {
        await octokit.request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", { ...base, pull_number: pullNumber, sha, merge_method: method });
      }),

    createGitToken: () =>
      call(async () => {
        const { data } = await appOctokit.request("POST /app/installations/{installation_id}/access_tokens", {
          installation_id: installationId,
          ...(options.repositoryId ? { repository_ids: [options.repositoryId] } : { repositories: [repo] }),
          permissions: { contents: "write" },
        });
        return data.token;
      }),

    getBotIdentity: () => {
      let identity = botIdentityCache.get(appOctokit);
      if (!identity) {
        identity = call(async () => {
          const { data: app } = await appOctokit.request("GET /app");
          const login = `${app?.slug ?? "mission-control"}[bot]`;
          const { data: user } = await octokit.request("GET /users/{username}", { username: login });
          return { login, name: login, email: `${user.id}+${login}@users.noreply.github.com` };
        });
        identity.catch(() => botIdentityCache.delete(appOctokit));
        botIdentityCache.set(appOctokit, identity);
      }
      return identity;
    },

    getRepositoryPermission: (login) =>
      call(async (): Promise<RepositoryPermission> => {
        try {
          const { data } = await octokit.request("GET /repos/{owner}/{repo}/collaborators/{username}/permission", { ...base, username: login });
          return { permission: data.permission ?? "none", roleName: data.role_name ?? null };
        } catch (err) {
          if ((err as ErrorLike).status === 404) return { permission: "none", roleName: null };
          throw err;
        }
      }),

    isOrganisationOwner: (login) =>
      call(async () => {
        try {
          const { data } = await octokit.request("GET /orgs/{org}/memberships/{username}", { org: owner, username: login });
          return data.role === "admin" && data.state === "active";
        } catch (err) {
          if ((err as ErrorLike).status === 404) return false;
          throw err;
        }
      }),

    readConfigFile: (fileName) =>
      call(async () => {
        // The same read as Probot's `context.config` (its config plugin is on every ProbotOctokit).
        const plugin = (octokit as unknown as { config: { get(params: object): Promise<{ config: unknown; files: Array<{ config: unknown }> }> } }).config;
        const { config, files } = await plugin.get({
          owner,
          repo,
          path: `.github/${fileName}`,
          defaults: (configs: object[]) => configs.reduce<unknown>((merged, next) => mergeDeep(merged, next), {}),
        });
        return files.some((file) => file.config !== null) ? config : null;
      }),

    getTree: (ref) =>
      call(async () => {
        const { data } = await octokit.rest.git.getTree({ ...base, tree_sha: ref, recursive: "1" });
        return {
          truncated: Boolean(data.truncated),
          entries: data.tree.map((e) => ({
            path: e.path,
            type: e.type === "tree" || e.type === "commit" ? e.type : "blob",
            sha: e.sha,
            size: typeof e.size === "number" ? e.size : null,
          })),
        };
      }),

    getBlob: (sha) =>
      call(async () => {
        const { data } = await octokit.rest.git.getBlob({ ...base, file_sha: sha });
        return Buffer.from(data.content, data.encoding === "base64" ? "base64" : "utf8").toString("utf8");
      }),

    ensureComment(input) {
      return ensureComment(port, input);
    },

    createIssue: (input) =>
      call(async () => {
        const { data } = await octokit.request("POST /repos/{owner}/{repo}/issues", { ...base, ...input });
        return toIssue(data);
      }),

    updateIssue: (issueNumber, input) =>
      call(async () => {
        const { data } = await octokit.request("PATCH /repos/{owner}/{repo}/issues/{issue_number}", { ...base, issue_number: issueNumber, ...input });
        return toIssue(data);
      }),

    listRecentIssuesBy: (creator) =>
      call(async () => {
        const { data } = await octokit.request("GET /repos/{owner}/{repo}/issues", {
          ...base,
          creator,
          state: "all",
          sort: "created",
          direction: "desc",
          per_page: 100,
        });
        return data.filter((i) => !i.pull_request).map(toIssue);
      }),

    ensureIssue(input) {
      return ensureIssue(port, input);
    },

    pinIssue: (issueNumber) =>
      call(async () => {
        const found = await octokit.graphql<{ repository: { issue: { id: string } | null } | null }>(ISSUE_ID_QUERY, { owner, repo, number: issueNumber });
        const id = found.repository?.issue?.id;
        if (!id) throw Object.assign(new Error(`issue #${issueNumber} was not found by GraphQL`), { status: 404 });
        await octokit.graphql(PIN_ISSUE_MUTATION, { issueId: id });
      }),

    listCheckRunAttempts: (headSha) =>
      call(async () => {
        const runs = await octokit.paginate("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", { ...base, ref: headSha, filter: "all", per_page: 100 });
        return runs.map(toCheckRun);
      }),
  };
  return port;
}
