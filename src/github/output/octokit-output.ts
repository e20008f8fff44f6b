import type { ProbotOctokit } from "probot";

import { GitHubApiError } from "../../errors.js";
import { redactSecrets } from "../../redact.js";
import type {
  BotIdentity,
  CommentData,
  GitHubPort,
  IssueData,
  PullRequestData,
  PullRequestFile,
  ReviewData,
  ReviewEvent,
} from "./port.js";

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
  const message = redactSecrets(String(dataMessage || e.message || `HTTP ${status}`)).slice(0, 300);
  let retryAfterMs: number | undefined;
  const retryAfter = Number(headers["retry-after"]);
  if (Number.isFinite(retryAfter) && headers["retry-after"] !== undefined) retryAfterMs = retryAfter * 1000;
  const rateLimited =
    (status === 403 || status === 429) &&
    (retryAfterMs !== undefined || headers["x-ratelimit-remaining"] === "0" || /rate limit/i.test(message));
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

/* eslint-disable @typescript-eslint/no-explicit-any -- REST payloads are mapped field by field below */
const toComment = (c: any): CommentData => ({
  id: c.id,
  body: c.body ?? "",
  author: c.user?.login ?? "",
  authorType: c.user?.type ?? "User",
  createdAt: c.created_at,
  updatedAt: c.updated_at,
  htmlUrl: c.html_url,
});

const toPullRequest = (p: any): PullRequestData => ({
  number: p.number,
  title: p.title,
  htmlUrl: p.html_url,
  state: p.state,
  draft: Boolean(p.draft),
  merged: Boolean(p.merged ?? p.merged_at),
  author: p.user?.login ?? "",
  headRef: p.head.ref,
  headSha: p.head.sha,
  baseRef: p.base.ref,
});

const toReview = (r: any): ReviewData => ({
  id: r.id,
  body: r.body ?? "",
  state: r.state,
  author: r.user?.login ?? "",
  commitId: r.commit_id ?? null,
  htmlUrl: r.html_url,
});

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

  return {
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
        const { data } = await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", {
          ...base,
          issue_number: issueNumber,
          body,
        });
        return toComment(data);
      }),

    updateComment: (commentId, body) =>
      call(async () => {
        const { data } = await octokit.request("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", {
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
        const { data } = await octokit.request("GET /repos/{owner}/{repo}/pulls", {
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
        const { data } = await octokit.request("POST /repos/{owner}/{repo}/pulls", { ...base, ...input });
        return toPullRequest(data);
      }),

    getPullRequest: (pullNumber) =>
      call(async () => {
        const { data } = await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", { ...base, pull_number: pullNumber });
        return toPullRequest(data);
      }),

    listPullRequestFiles: (pullNumber) =>
      call(async () => {
        const data = await octokit.paginate("GET /repos/{owner}/{repo}/pulls/{pull_number}/files", {
          ...base,
          pull_number: pullNumber,
          per_page: 100,
        });
        return data.map(
          (f): PullRequestFile => ({ filename: f.filename, status: f.status, additions: f.additions, deletions: f.deletions, patch: f.patch }),
        );
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

    createReview: ({ pullNumber, commitId, event, body }: { pullNumber: number; commitId: string; event: ReviewEvent; body: string }) =>
      call(async () => {
        const { data } = await octokit.request("POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews", {
          ...base,
          pull_number: pullNumber,
          commit_id: commitId,
          event,
          body,
        });
        return toReview(data);
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
  };
}
