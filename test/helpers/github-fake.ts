import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";

import nock from "nock";

import { git, pullRequestFiles, TEST_GIT_GLOBAL_CONFIG } from "./git-fixtures.js";

/** One request the app sent to GitHub's REST API. */
export interface RecordedRequest {
  method: string;
  /** Path below the REST base URL, decoded, without the query. */
  path: string;
  query: URLSearchParams;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

interface FakeIssue {
  number: number;
  title: string;
  body: string;
  state: "open" | "closed";
  user: { login: string; type: string };
  labels: string[];
}

interface FakeComment {
  id: number;
  issue_number: number;
  body: string;
  user: { login: string; type: string };
  created_at: string;
  updated_at: string;
  html_url: string;
}

interface FakePull {
  number: number;
  title: string;
  body: string;
  head: string;
  base: string;
  draft: boolean;
  state: "open" | "closed";
  merged?: boolean;
  user: { login: string; type: string };
}

interface FakeReview {
  id: number;
  pull_number: number;
  event: string;
  body: string;
  commit_id: string;
  user: { login: string; type: string };
}

export interface FakeReviewComment {
  id: number;
  pull_request_review_id: number | null;
  pull_number: number;
  path: string;
  line: number | null;
  side: string;
  body: string;
  user: { login: string; type: string };
  created_at: string;
  in_reply_to_id: number | null;
  /** GitHub's `diff_hunk`: the patch of the file up to the commented line. */
  diff_hunk?: string;
}

interface FakeCheckRun {
  id: number;
  name: string;
  head_sha: string;
  external_id: string | null;
  status: string;
  conclusion: string | null;
  output: { title?: string; summary?: string; text?: string } | null;
  /** Every PATCH body, in order. */
  updates: any[];
  /** The app that made it (another app's CI); this app's when absent. */
  app_slug?: string;
  /** The check suite it belongs to (another app's CI). */
  check_suite_id?: number;
  annotations?: FakeAnnotation[];
}

/** An annotation of a check run (`GET …/check-runs/{id}/annotations`). */
interface FakeAnnotation {
  path: string;
  start_line: number;
  end_line: number;
  annotation_level: "notice" | "warning" | "failure";
  title?: string;
  message: string;
}

/** A GitHub Actions job of a workflow run, with its log. */
interface FakeWorkflowJob {
  id: number;
  run_id: number;
  name: string;
  workflow_name: string;
  status: string;
  conclusion: string | null;
  steps: Array<{ number: number; name: string; status: string; conclusion: string | null }>;
  /** The job's log; absent → the logs endpoint answers 410 Gone (expired). */
  log?: string;
}

/** Where the fake's job logs are served from: another origin, as GitHub's log storage is. */
export const FAKE_LOG_ORIGIN = "https://results-receiver.actions.example.test";

type Reply = [number, unknown, Record<string, string>?];

interface Injection {
  method: string;
  path: RegExp;
  remaining: number;
  reply?: Reply;
  /** Apply the request to the state, then never answer (the caller's process "dies"). */
  hang?: boolean;
  /** Answer as usual, but only after this many milliseconds (a slow GitHub). */
  delayMs?: number;
}

/** Options of {@link FakeGitHub}. */
export interface FakeGitHubOptions {
  /** REST base URL, e.g. `https://ghe.example.test/api/v3`. */
  baseUrl: string;
  owner: string;
  repo: string;
  /** Bare repository backing the repository: PR files are computed from it with git. */
  bare: string;
  installationId: number;
  appSlug?: string;
  /** Repository permission of each login; anyone else has `read`. */
  permissions?: Record<string, "admin" | "maintain" | "write" | "triage" | "read">;
  /** Content of `.github/mission-control.yml`; absent → 404. */
  repoConfigYaml?: string;
}

/**
 * A stateful stand-in for GitHub's REST API, served through nock: issues, comments, labels,
 * pull requests (files computed from the real bare repository), reviews, installation
 * tokens. Every request is recorded so tests can assert what was sent. It answers 422 when a
 * pull request's author approves or requests changes on it, as GitHub does.
 */
export class FakeGitHub {
  readonly requests: RecordedRequest[] = [];
  readonly issues = new Map<number, FakeIssue>();
  readonly comments: FakeComment[] = [];
  /** Every body a comment had, in order, by comment id (creation included). */
  readonly commentHistory = new Map<number, string[]>();
  readonly labelEvents: Array<{ issue: number; action: "add" | "remove"; label: string }> = [];
  readonly pulls: FakePull[] = [];
  readonly reviews: FakeReview[] = [];
  /** Inline review comments, by review. */
  readonly reviewComments: FakeReviewComment[] = [];
  /** Root comment ids of the review threads a person resolved (GraphQL `isResolved`). */
  readonly resolvedThreads = new Set<number>();
  /** Labels that exist in the repository, with colour and description. */
  readonly repoLabels = new Map<string, { color: string; description: string }>();
  readonly checkRuns: FakeCheckRun[] = [];
  /** GitHub Actions jobs by workflow run id (`addWorkflowRun`). */
  readonly workflowJobs = new Map<number, FakeWorkflowJob[]>();
  /** Requests for job logs at {@link FAKE_LOG_ORIGIN} (after GitHub's redirect), with their headers. */
  readonly logRequests: Array<{ path: string; headers: Record<string, string | string[] | undefined> }> = [];
  readonly reactions: Array<{ commentId: number; content: string }> = [];
  /** Reactions people gave to review comments (tests add them: GitHub sends no webhook for a reaction). */
  readonly reviewCommentReactions: Array<{ commentId: number; content: string; login: string; type?: string }> = [];
  readonly merges: Array<{ pull: number; sha: string; method: string }> = [];
  /** Organisation members' roles (`GET /orgs/{org}/memberships/{username}`). */
  readonly orgRoles = new Map<string, "admin" | "member">();
  /** Installation tokens handed out. */
  readonly tokens: string[] = [];
  /** Refs whose tree was read (`GET …/git/trees/{ref}`), in order. */
  readonly treeReads: string[] = [];
  readonly appLogin: string;
  /** Issues pinned through GraphQL `pinIssue`. */
  readonly pinnedIssues = new Set<number>();
  /** `true`: the `pinIssue` mutation is refused, as for an installation without the permission. */
  pinRefused = false;
  /** Every `PATCH …/issues/{n}`, in order, with the body after it. */
  readonly issueEdits: Array<{ number: number; body: string }> = [];
  /** Sent as `x-ratelimit-remaining` on every answer. */
  rateLimitRemaining = 4999;
  readonly #options: FakeGitHubOptions;
  readonly #prefix: string;
  /** Path of the GraphQL endpoint: `/api/graphql` beside `/api/v3` (Octokit's rule for GitHub Enterprise Server). */
  readonly #graphqlPath: string;
  readonly #origin: string;
  readonly #injections: Injection[] = [];
  readonly #hung: Array<() => void> = [];
  #nextId = 1000;
  #scope: nock.Scope | undefined;
  #persistFile: string | undefined;
  readonly #interceptors: nock.Interceptor[] = [];

  constructor(options: FakeGitHubOptions) {
    this.#options = options;
    const url = new URL(options.baseUrl);
    this.#origin = url.origin;
    this.#prefix = url.pathname.replace(/\/$/, "");
    this.#graphqlPath = `${this.#prefix.replace(/\/v3$/, "")}/graphql`;
    this.appLogin = `${options.appSlug ?? "mission-control-test"}[bot]`;
  }

  /** Adds an issue to the repository. */
  addIssue(issue: Partial<FakeIssue> & { number: number }): FakeIssue {
    const full: FakeIssue = {
      title: "An issue",
      body: "",
      state: "open",
      user: { login: "reporter", type: "User" },
      labels: [],
      ...issue,
    };
    this.issues.set(full.number, full);
    return full;
  }

  /** Renames the repository, as a maintainer does on GitHub: from now on it answers under the new name only. */
  renameRepository(repo: string): void {
    this.#options.repo = repo;
  }

  /** Changes an issue's title and/or body, as if its author had edited it on GitHub. */
  editIssue(issueNumber: number, edit: { title?: string; body?: string }): void {
    const issue = this.issues.get(issueNumber);
    if (!issue) throw new Error(`no issue #${issueNumber}`);
    Object.assign(issue, edit);
  }

  /** Serves `yaml` as `.github/mission-control.yml` from now on (`undefined`: the file is gone). */
  setRepoConfig(yaml: string | undefined): void {
    if (yaml === undefined) delete this.#options.repoConfigYaml;
    else this.#options.repoConfigYaml = yaml;
  }

  /** Adds a comment as if a person had written it at `at` (ISO). */
  addComment(issueNumber: number, body: string, login = "someone", at = new Date().toISOString()): FakeComment {
    const comment = this.#newComment(issueNumber, body, { login, type: "User" }, at);
    return comment;
  }

  /**
   * Adds a review by a person, with inline comments, as if submitted on GitHub.
   *
   * @returns the review id
   */
  addHumanReview(
    pullNumber: number,
    review: {
      login: string;
      state: "CHANGES_REQUESTED" | "COMMENTED" | "APPROVED";
      body: string;
      comments?: Array<{ path: string; line: number; body: string }>;
      /** The commit reviewed; the pull request's head now when absent. */
      commitId?: string;
    },
  ): number {
    const pull = this.pulls.find((p) => p.number === pullNumber);
    const id = this.#nextId++;
    const event = review.state === "APPROVED" ? "APPROVE" : review.state === "CHANGES_REQUESTED" ? "REQUEST_CHANGES" : "COMMENT";
    this.reviews.push({
      id,
      pull_number: pullNumber,
      event,
      body: review.body,
      commit_id: review.commitId ?? (pull ? this.#sha(pull.head) : ""),
      user: { login: review.login, type: "User" },
    });
    for (const c of review.comments ?? []) {
      this.reviewComments.push({
        id: this.#nextId++,
        pull_request_review_id: id,
        pull_number: pullNumber,
        path: c.path,
        line: c.line,
        side: "RIGHT",
        body: c.body,
        user: { login: review.login, type: "User" },
        created_at: new Date().toISOString(),
        in_reply_to_id: null,
        ...(pull ? { diff_hunk: this.#diffHunk(pull, c.path, c.line) } : {}),
      });
    }
    return id;
  }

  /**
   * Adds one inline comment by a person as GitHub's "Add single comment" does — its own review
   * (state COMMENTED) — on `line` of `path`, or as a reply in the thread of `inReplyTo`.
   *
   * @returns the comment's id and its review's id
   */
  addReviewComment(
    pullNumber: number,
    comment: { login: string; body: string; path?: string; line?: number; inReplyTo?: number },
  ): { id: number; reviewId: number; comment: FakeReviewComment } {
    const pull = this.pulls.find((p) => p.number === pullNumber);
    const root = comment.inReplyTo === undefined ? undefined : this.reviewComments.find((c) => c.id === comment.inReplyTo);
    if (comment.inReplyTo !== undefined && !root) throw new Error(`no review comment ${comment.inReplyTo}`);
    const path = root?.path ?? comment.path ?? "";
    const line = root?.line ?? comment.line ?? null;
    const reviewId = this.#nextId++;
    this.reviews.push({
      id: reviewId,
      pull_number: pullNumber,
      event: "COMMENT",
      body: "",
      commit_id: pull ? this.#sha(pull.head) : "",
      user: { login: comment.login, type: "User" },
    });
    const created: FakeReviewComment = {
      id: this.#nextId++,
      pull_request_review_id: reviewId,
      pull_number: pullNumber,
      path,
      line,
      side: "RIGHT",
      body: comment.body,
      user: { login: comment.login, type: "User" },
      created_at: new Date().toISOString(),
      in_reply_to_id: root ? (root.in_reply_to_id ?? root.id) : null,
      ...(root?.diff_hunk !== undefined ? { diff_hunk: root.diff_hunk } : pull && line !== null ? { diff_hunk: this.#diffHunk(pull, path, line) } : {}),
    };
    this.reviewComments.push(created);
    return { id: created.id, reviewId, comment: created };
  }

  /** Marks the review thread that `commentId` starts as resolved, as a person's "Resolve conversation". */
  resolveThread(commentId: number): void {
    this.resolvedThreads.add(commentId);
  }

  /** The replies in the thread of root comment `rootId`, oldest first. */
  threadReplies(rootId: number): FakeReviewComment[] {
    return this.reviewComments.filter((c) => c.in_reply_to_id === rootId);
  }

  /** GitHub's `diff_hunk` of a comment on `line` of `path`: the file's patch up to that line (new side). */
  #diffHunk(pull: FakePull, path: string, line: number): string {
    const patch = pullRequestFiles(this.#options.bare, pull.base, pull.head).find((f) => f.filename === path)?.patch ?? "";
    const rows = patch.split("\n");
    let newLine = 0;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] ?? "";
      const hunk = /^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(row);
      if (hunk) {
        newLine = Number(hunk[1]);
        continue;
      }
      if (row.startsWith("-") || row.startsWith("\\")) continue;
      if (newLine === line) return rows.slice(0, i + 1).join("\n");
      newLine++;
    }
    return patch;
  }

  /**
   * Adds a GitHub Actions workflow run's jobs (each job also becomes a check run of the
   * `github-actions` app on `headSha`, with the job's id, as on GitHub).
   */
  addWorkflowRun(run: {
    id: number;
    checkSuiteId: number;
    workflowName: string;
    headSha: string;
    jobs: Array<{ id: number; name: string; conclusion: string; steps?: Array<{ name: string; conclusion: string }>; log?: string }>;
  }): void {
    const jobs = run.jobs.map((j): FakeWorkflowJob => ({
      id: j.id,
      run_id: run.id,
      name: j.name,
      workflow_name: run.workflowName,
      status: "completed",
      conclusion: j.conclusion,
      steps: (j.steps ?? []).map((step, i) => ({ number: i + 1, name: step.name, status: "completed", conclusion: step.conclusion })),
      ...(j.log === undefined ? {} : { log: j.log }),
    }));
    this.workflowJobs.set(run.id, jobs);
    for (const j of run.jobs) {
      this.checkRuns.push({
        id: j.id,
        name: j.name,
        head_sha: run.headSha,
        external_id: null,
        status: "completed",
        conclusion: j.conclusion,
        output: { title: j.conclusion === "success" ? "" : `${j.name} failed`, summary: "" },
        updates: [],
        app_slug: "github-actions",
        check_suite_id: run.checkSuiteId,
        annotations: [],
      });
    }
  }

  /** Adds a completed check run of another app (its own CI), with output and annotations. */
  addForeignCheckRun(run: {
    id?: number;
    name: string;
    appSlug: string;
    checkSuiteId: number;
    headSha: string;
    conclusion: string;
    output?: { title?: string; summary?: string; text?: string };
    annotations?: FakeAnnotation[];
  }): number {
    const id = run.id ?? this.#nextId++;
    this.checkRuns.push({
      id,
      name: run.name,
      head_sha: run.headSha,
      external_id: null,
      status: "completed",
      conclusion: run.conclusion,
      output: run.output ?? null,
      updates: [],
      app_slug: run.appSlug,
      check_suite_id: run.checkSuiteId,
      annotations: run.annotations ?? [],
    });
    return id;
  }

  /** Marks a pull request merged (or closed) as if a person had done it. */
  closePull(pullNumber: number, merged: boolean): void {
    const pull = this.pulls.find((p) => p.number === pullNumber);
    if (pull) {
      pull.state = "closed";
      pull.merged = merged;
    }
  }

  /** The next `times` requests matching `method` and `path` get `reply` instead of the normal answer. */
  failNext(method: string, path: RegExp, reply: Reply, times = 1): void {
    this.#injections.push({ method, path, remaining: times, reply });
  }

  /** The next matching request is answered as usual, but only after `delayMs` milliseconds. */
  delayNext(method: string, path: RegExp, delayMs: number): void {
    this.#injections.push({ method, path, remaining: 1, delayMs });
  }

  /** The next matching request changes the state but is never answered. */
  hangNext(method: string, path: RegExp): void {
    this.#injections.push({ method, path, remaining: 1, hang: true });
  }

  /** Requests matching `method` and a path regex. */
  requestsTo(method: string, path: RegExp): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && path.test(r.path));
  }

  /** Labels of an issue now. */
  labelsOf(issueNumber: number): string[] {
    return [...(this.issues.get(issueNumber)?.labels ?? [])];
  }

  /** Every piece of state, as JSON (for a fake shared across processes through a file). */
  snapshot(): string {
    return JSON.stringify({
      issues: [...this.issues],
      comments: this.comments,
      commentHistory: [...this.commentHistory],
      labelEvents: this.labelEvents,
      pulls: this.pulls,
      reviews: this.reviews,
      reviewComments: this.reviewComments,
      resolvedThreads: [...this.resolvedThreads],
      repoLabels: [...this.repoLabels],
      checkRuns: this.checkRuns,
      reactions: this.reactions,
      merges: this.merges,
      tokens: this.tokens,
      nextId: this.#nextId,
    });
  }

  /** Replaces the state with a {@link snapshot}. */
  restore(json: string): void {
    const state = JSON.parse(json);
    const replace = <T>(target: T[], items: T[]) => target.splice(0, target.length, ...items);
    this.issues.clear();
    for (const [k, v] of state.issues) this.issues.set(k, v);
    this.commentHistory.clear();
    for (const [k, v] of state.commentHistory) this.commentHistory.set(k, v);
    this.repoLabels.clear();
    for (const [k, v] of state.repoLabels) this.repoLabels.set(k, v);
    replace(this.comments, state.comments);
    replace(this.labelEvents, state.labelEvents);
    replace(this.pulls, state.pulls);
    replace(this.reviews, state.reviews);
    replace(this.reviewComments, state.reviewComments);
    this.resolvedThreads.clear();
    for (const id of state.resolvedThreads ?? []) this.resolvedThreads.add(id);
    replace(this.checkRuns, state.checkRuns);
    replace(this.reactions, state.reactions);
    replace(this.merges, state.merges);
    replace(this.tokens, state.tokens);
    this.#nextId = state.nextId;
  }

  /** After each request, the state is written to this file (atomically). */
  persistTo(file: string): this {
    this.#persistFile = file;
    return this;
  }

  #persist(): void {
    if (!this.#persistFile) return;
    writeFileSync(`${this.#persistFile}.tmp`, this.snapshot());
    renameSync(`${this.#persistFile}.tmp`, this.#persistFile);
  }

  /** Starts intercepting. Call {@link stop} in afterEach. */
  start(): this {
    const scope = nock(this.#origin).persist();
    // nock passes the request as `this` to a reply function; the fake is reached through `handle`.
    const handle = this.#handle.bind(this);
    for (const method of ["GET", "POST", "PATCH", "PUT", "DELETE"]) {
      const interceptor = scope.intercept((uri) => uri.startsWith(`${this.#prefix}/`) || uri === this.#graphqlPath, method);
      this.#interceptors.push(interceptor);
      interceptor.reply(function (uri, body, callback) {
        void handle(method, uri, body, this.req.headers).then(
          (reply) => {
            if (reply) callback(null, reply as any);
          },
          (err: unknown) => callback(err as Error, [500, { message: String(err) }]),
        );
      });
    }
    // Job logs: GitHub redirects `GET …/actions/jobs/{id}/logs` to a short-lived URL on another origin.
    const logs = nock(FAKE_LOG_ORIGIN)
      .persist()
      .intercept((uri) => uri.startsWith("/job-logs/"), "GET");
    this.#interceptors.push(logs);
    const { logRequests, workflowJobs } = this;
    logs.reply(function (uri) {
      logRequests.push({ path: uri, headers: this.req.headers });
      const id = Number(/^\/job-logs\/(\d+)/.exec(uri)?.[1]);
      const job = [...workflowJobs.values()].flat().find((j) => j.id === id);
      if (job?.log === undefined) return [404, "Not Found", { "content-type": "text/plain" }];
      return [200, job.log, { "content-type": "text/plain; charset=utf-8" }];
    });
    this.#scope = scope;
    return this;
  }

  /**
   * Serves one real HTTP request (for app processes nock cannot reach; see `fake-servers.ts`):
   * the same state and answers as through nock. `baseUrl` must then be the server's
   * `http://127.0.0.1:<port>/api/v3`. A hung request ({@link hangNext}) is left open.
   */
  async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let reply: Reply | undefined;
    try {
      reply = await this.#handle(req.method ?? "GET", req.url ?? "/", Buffer.concat(chunks).toString("utf8"), req.headers);
    } catch (err) {
      reply = [500, { message: String(err) }, { "content-type": "application/json" }];
    }
    if (!reply) return;
    const [status, data, headers = {}] = reply;
    res.writeHead(status, headers).end(typeof data === "string" ? data : JSON.stringify(data));
  }

  /** Stops intercepting and abandons hung requests. */
  stop(): void {
    this.#scope?.persist(false);
    for (const interceptor of this.#interceptors.splice(0)) nock.removeInterceptor(interceptor);
    this.#hung.length = 0;
  }

  #json(status: number, data: unknown, headers: Record<string, string> = {}): Reply {
    return [status, data, { "content-type": "application/json; charset=utf-8", "x-ratelimit-remaining": String(this.rateLimitRemaining), ...headers }];
  }

  #newComment(issueNumber: number, body: string, user: { login: string; type: string }, at = new Date().toISOString()): FakeComment {
    const id = this.#nextId++;
    const comment: FakeComment = {
      id,
      issue_number: issueNumber,
      body,
      user,
      created_at: at,
      updated_at: at,
      html_url: `https://ghe.example.test/${this.#options.owner}/${this.#options.repo}/issues/${issueNumber}#issuecomment-${id}`,
    };
    this.comments.push(comment);
    this.commentHistory.set(id, [body]);
    return comment;
  }

  #issueJson(issue: FakeIssue) {
    return {
      number: issue.number,
      title: issue.title,
      body: issue.body,
      state: issue.state,
      user: issue.user,
      labels: issue.labels.map((name) => ({ name })),
      html_url: `https://ghe.example.test/${this.#options.owner}/${this.#options.repo}/issues/${issue.number}`,
    };
  }

  #pullJson(pull: FakePull) {
    const sha = this.#sha(pull.head);
    return {
      number: pull.number,
      title: pull.title,
      body: pull.body,
      state: pull.state,
      draft: pull.draft,
      merged: Boolean(pull.merged),
      merged_at: pull.merged ? new Date().toISOString() : null,
      user: pull.user,
      html_url: `https://ghe.example.test/${this.#options.owner}/${this.#options.repo}/pull/${pull.number}`,
      head: { ref: pull.head, sha, label: `${this.#options.owner}:${pull.head}` },
      base: { ref: pull.base, sha: this.#sha(pull.base) },
    };
  }

  #reviewJson(review: FakeReview) {
    return {
      id: review.id,
      body: review.body,
      state: review.event === "APPROVE" ? "APPROVED" : review.event === "REQUEST_CHANGES" ? "CHANGES_REQUESTED" : "COMMENTED",
      user: review.user,
      commit_id: review.commit_id,
      html_url: `https://ghe.example.test/${this.#options.owner}/${this.#options.repo}/pull/${review.pull_number}#pullrequestreview-${review.id}`,
    };
  }

  #sha(ref: string): string {
    return pullRequestFilesSha(this.#options.bare, ref);
  }

  async #handle(method: string, uri: string, rawBody: unknown, headers: Record<string, string | string[] | undefined>): Promise<Reply | undefined> {
    const url = new URL(uri, this.#origin);
    // GraphQL is served beside the REST base (`/api/graphql` for `/api/v3`, as Octokit derives it).
    const path = url.pathname === this.#graphqlPath ? "/graphql" : decodeURIComponent(url.pathname.slice(this.#prefix.length));
    const body = typeof rawBody === "string" && rawBody.length > 0 ? safeJson(rawBody) : rawBody;
    this.requests.push({ method, path, query: url.searchParams, body, headers });

    const injection = this.#injections.find((i) => i.method === method && i.path.test(path) && i.remaining > 0);
    if (injection) {
      injection.remaining--;
      if (injection.reply) return injection.reply;
      if (injection.delayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, injection.delayMs));
      if (injection.hang) {
        this.#route(method, path, url.searchParams, body);
        this.#persist();
        return new Promise<undefined>((resolve) => this.#hung.push(() => resolve(undefined)));
      }
    }
    const reply = this.#route(method, path, url.searchParams, body);
    this.#persist();
    return reply;
  }

  #route(method: string, path: string, query: URLSearchParams, body: any): Reply {
    const { owner, repo } = this.#options;
    const repoPath = `/repos/${owner}/${repo}`;
    const m = (pattern: string) => new RegExp(`^${pattern}$`).exec(path);
    let match: RegExpExecArray | null;

    if (method === "POST" && (match = m("/app/installations/(\\d+)/access_tokens"))) {
      if (Number(match[1]) !== this.#options.installationId) return this.#json(404, { message: "Not Found" });
      const token = `ghs_${randomBytes(18).toString("hex")}`;
      this.tokens.push(token);
      return this.#json(201, { token, expires_at: new Date(Date.now() + 3600_000).toISOString(), permissions: { contents: "write" } });
    }
    if (method === "GET" && path === "/app")
      return this.#json(200, { id: 1, slug: this.#options.appSlug ?? "mission-control-test", name: "Mission Control (test)" });
    if (method === "GET" && (match = m("/users/([^/]+)"))) {
      return this.#json(200, { id: 4_100_000, login: match[1], type: match[1]?.endsWith("[bot]") ? "Bot" : "User" });
    }
    if (method === "GET" && (match = m(`/repos/[^/]+/[^/]+/contents/\\.github/mission-control\\.yml`))) {
      if (path.startsWith(repoPath) && this.#options.repoConfigYaml !== undefined) {
        return [200, this.#options.repoConfigYaml, { "content-type": "text/plain; charset=utf-8" }];
      }
      return this.#json(404, { message: "Not Found" });
    }
    if (method === "GET" && (match = m("/orgs/([^/]+)/memberships/([^/]+)"))) {
      const role = this.orgRoles.get(match[2] ?? "");
      return role ? this.#json(200, { state: "active", role, user: { login: match[2] } }) : this.#json(404, { message: "Not Found" });
    }
    if (method === "POST" && path === "/graphql") return this.#graphql(body);
    if (!path.startsWith(`${repoPath}/`)) return this.#json(404, { message: `Not Found: ${method} ${path}` });
    const rest = path.slice(repoPath.length);
    const r = (pattern: string) => new RegExp(`^${pattern}$`).exec(rest);

    if (method === "GET" && (match = r("/collaborators/([^/]+)/permission"))) {
      const role = this.#options.permissions?.[match[1] ?? ""] ?? "read";
      const permission = role === "maintain" ? "write" : role === "triage" ? "read" : role;
      return this.#json(200, { permission, role_name: role, user: { login: match[1] } });
    }
    // The git database API, from the real bare repository: a branch's tree (recursive) and blobs.
    if (method === "GET" && (match = r("/git/trees/(.+)"))) {
      this.treeReads.push(match[1] ?? "");
      const tree = gitTree(this.#options.bare, match[1] ?? "");
      return tree ? this.#json(200, { sha: tree.sha, url: "", truncated: false, tree: tree.entries }) : this.#json(404, { message: "Not Found" });
    }
    if (method === "GET" && (match = r("/git/blobs/([0-9a-f]{40})"))) {
      const content = gitBlob(this.#options.bare, match[1] ?? "");
      return content
        ? this.#json(200, { sha: match[1], size: content.length, encoding: "base64", content: content.toString("base64") })
        : this.#json(404, { message: "Not Found" });
    }
    // Issues the app opens and edits (the stand-up, accepted follow-ups), and its list by creator.
    if (method === "POST" && r("/issues")) {
      const issue = this.addIssue({
        number: this.#nextId++,
        title: body.title,
        body: body.body ?? "",
        user: { login: this.appLogin, type: "Bot" },
        labels: [...((body.labels as string[] | undefined) ?? [])],
      });
      return this.#json(201, this.#issueJson(issue));
    }
    if (method === "GET" && r("/issues")) {
      const creator = query.get("creator");
      const state = query.get("state") ?? "open";
      const found = [...this.issues.values()]
        .filter((i) => (!creator || i.user.login === creator) && (state === "all" || i.state === state))
        .sort((x, y) => y.number - x.number)
        .slice(0, Number(query.get("per_page") ?? 30));
      return this.#json(
        200,
        found.map((i) => this.#issueJson(i)),
      );
    }
    if (method === "PATCH" && (match = r("/issues/(\\d+)"))) {
      const issue = this.issues.get(Number(match[1]));
      if (!issue) return this.#json(404, { message: "Not Found" });
      if (typeof body.title === "string") issue.title = body.title;
      if (typeof body.body === "string") issue.body = body.body;
      if (body.state === "open" || body.state === "closed") issue.state = body.state;
      this.issueEdits.push({ number: issue.number, body: issue.body });
      return this.#json(200, this.#issueJson(issue));
    }
    if ((match = r("/issues/(\\d+)"))) {
      const issue = this.issues.get(Number(match[1]));
      if (!issue) return this.#json(404, { message: "Not Found" });
      if (method === "GET") return this.#json(200, this.#issueJson(issue));
    }
    if ((match = r("/issues/(\\d+)/comments"))) {
      const issueNumber = Number(match[1]);
      if (method === "GET") {
        const page = this.comments.filter((c) => c.issue_number === issueNumber);
        return this.#json(200, page);
      }
      if (method === "POST") return this.#json(201, this.#newComment(issueNumber, body.body, { login: this.appLogin, type: "Bot" }));
    }
    if (method === "PATCH" && (match = r("/issues/comments/(\\d+)"))) {
      const comment = this.comments.find((c) => c.id === Number(match?.[1]));
      if (!comment) return this.#json(404, { message: "Not Found" });
      comment.body = body.body;
      comment.updated_at = new Date().toISOString();
      this.commentHistory.get(comment.id)?.push(body.body);
      return this.#json(200, comment);
    }
    if ((match = r("/issues/(\\d+)/labels"))) {
      const issue = this.issues.get(Number(match[1]));
      if (!issue) return this.#json(404, { message: "Not Found" });
      if (method === "POST") {
        for (const label of body.labels as string[]) {
          if (!issue.labels.includes(label)) {
            issue.labels.push(label);
            this.labelEvents.push({ issue: issue.number, action: "add", label });
          }
        }
        return this.#json(
          200,
          issue.labels.map((name) => ({ name })),
        );
      }
    }
    if (method === "DELETE" && (match = r("/issues/(\\d+)/labels/(.+)"))) {
      const issue = this.issues.get(Number(match[1]));
      const label = match[2] ?? "";
      if (!issue || !issue.labels.includes(label)) return this.#json(404, { message: "Label does not exist" });
      issue.labels = issue.labels.filter((l) => l !== label);
      this.labelEvents.push({ issue: issue.number, action: "remove", label });
      return this.#json(
        200,
        issue.labels.map((name) => ({ name })),
      );
    }
    if (r("/pulls")) {
      if (method === "GET") {
        const head = query.get("head");
        const state = query.get("state") ?? "open";
        const found = this.pulls.filter((p) => (!head || `${owner}:${p.head}` === head) && (state === "all" || p.state === state));
        return this.#json(
          200,
          found.map((p) => this.#pullJson(p)),
        );
      }
      if (method === "POST") {
        if (this.pulls.some((p) => p.head === body.head && p.state === "open")) {
          return this.#json(422, { message: "Validation Failed", errors: [{ message: `A pull request already exists for ${owner}:${body.head}.` }] });
        }
        try {
          this.#sha(body.head);
        } catch {
          return this.#json(422, { message: "Validation Failed", errors: [{ field: "head", code: "invalid" }] });
        }
        const pull: FakePull = {
          number: this.#nextId++,
          title: body.title,
          body: body.body,
          head: body.head,
          base: body.base,
          draft: Boolean(body.draft),
          state: "open",
          user: { login: this.appLogin, type: "Bot" },
        };
        this.pulls.push(pull);
        return this.#json(201, this.#pullJson(pull));
      }
    }
    if ((match = r("/pulls/(\\d+)"))) {
      const pull = this.pulls.find((p) => p.number === Number(match?.[1]));
      if (!pull) return this.#json(404, { message: "Not Found" });
      if (method === "GET") return this.#json(200, this.#pullJson(pull));
    }
    if (method === "GET" && (match = r("/pulls/(\\d+)/files"))) {
      const pull = this.pulls.find((p) => p.number === Number(match?.[1]));
      if (!pull) return this.#json(404, { message: "Not Found" });
      return this.#json(200, pullRequestFiles(this.#options.bare, pull.base, pull.head));
    }
    if ((match = r("/pulls/(\\d+)/reviews"))) {
      const pull = this.pulls.find((p) => p.number === Number(match?.[1]));
      if (!pull) return this.#json(404, { message: "Not Found" });
      if (method === "GET")
        return this.#json(
          200,
          this.reviews.filter((rv) => rv.pull_number === pull.number).map((rv) => this.#reviewJson(rv)),
        );
      if (method === "POST") {
        if (body.event !== "COMMENT" && pull.user.login === this.appLogin) {
          return this.#json(422, { message: "Unprocessable Entity", errors: ["Can not approve your own pull request"] });
        }
        const review: FakeReview = {
          id: this.#nextId++,
          pull_number: pull.number,
          event: body.event,
          body: body.body,
          commit_id: body.commit_id,
          user: { login: this.appLogin, type: "Bot" },
        };
        for (const c of (body.comments ?? []) as Array<{ path: string; line: number; side?: string; body: string }>) {
          const file = pullRequestFiles(this.#options.bare, pull.base, pull.head).find((f) => f.filename === c.path);
          if (!file || !patchHasLine(file.patch, c.line, c.side ?? "RIGHT")) {
            return this.#json(422, { message: "Unprocessable Entity", errors: ["Line could not be resolved"] });
          }
        }
        this.reviews.push(review);
        for (const c of (body.comments ?? []) as Array<{ path: string; line: number; side?: string; body: string }>) {
          this.reviewComments.push({
            id: this.#nextId++,
            pull_request_review_id: review.id,
            pull_number: pull.number,
            path: c.path,
            line: c.line,
            side: c.side ?? "RIGHT",
            body: c.body,
            user: review.user,
            created_at: new Date().toISOString(),
            in_reply_to_id: null,
          });
        }
        return this.#json(200, this.#reviewJson(review));
      }
    }
    if (method === "GET" && (match = r("/pulls/comments/(\\d+)/reactions"))) {
      const id = Number(match[1]);
      if (!this.reviewComments.some((c) => c.id === id)) return this.#json(404, { message: "Not Found" });
      const wanted = query.get("content");
      return this.#json(
        200,
        this.reviewCommentReactions
          .filter((x) => x.commentId === id && (wanted === null || x.content === wanted))
          .map((x, i) => ({ id: i + 1, content: x.content, user: { login: x.login, type: x.type ?? "User" } })),
      );
    }
    if (method === "POST" && (match = r("/pulls/(\\d+)/comments/(\\d+)/replies"))) {
      const n = Number(match[1]);
      const target = this.reviewComments.find((c) => c.id === Number(match?.[2]) && c.pull_number === n);
      if (!target) return this.#json(404, { message: "Not Found" });
      // GitHub: "This must be the ID of a top-level review comment, not a reply to that comment."
      if (target.in_reply_to_id !== null) return this.#json(422, { message: "Validation Failed", errors: ["replies to replies are not supported"] });
      const reply: FakeReviewComment = {
        id: this.#nextId++,
        pull_request_review_id: this.#nextId++,
        pull_number: n,
        path: target.path,
        line: target.line,
        side: target.side,
        body: body.body,
        user: { login: this.appLogin, type: "Bot" },
        created_at: new Date().toISOString(),
        in_reply_to_id: target.id,
        ...(target.diff_hunk !== undefined ? { diff_hunk: target.diff_hunk } : {}),
      };
      this.reviewComments.push(reply);
      return this.#json(201, reply);
    }
    if (method === "GET" && (match = r("/pulls/(\\d+)/comments"))) {
      const n = Number(match[1]);
      return this.#json(
        200,
        this.reviewComments.filter((c) => c.pull_number === n),
      );
    }
    if (method === "GET" && (match = r("/compare/([^.]+)\\.\\.\\.(.+)"))) {
      try {
        return this.#json(200, { files: pullRequestFiles(this.#options.bare, match[1] ?? "", match[2] ?? "") });
      } catch {
        return this.#json(404, { message: "Not Found" });
      }
    }
    if ((match = r("/labels/(.+)"))) {
      const name = match[1] ?? "";
      const label = this.repoLabels.get(name);
      if (method === "GET") return label ? this.#json(200, { name, ...label }) : this.#json(404, { message: "Not Found" });
    }
    if (method === "POST" && r("/labels")) {
      if (this.repoLabels.has(body.name)) return this.#json(422, { message: "Validation Failed" });
      this.repoLabels.set(body.name, { color: body.color, description: body.description });
      return this.#json(201, body);
    }
    if (method === "GET" && (match = r("/commits/([^/]+)/check-runs"))) {
      const sha = match[1];
      const name = query.get("check_name");
      const runs = this.checkRuns.filter((c) => c.head_sha === sha && (!name || c.name === name));
      return this.#json(200, { total_count: runs.length, check_runs: runs.map((c) => this.#checkJson(c)) });
    }
    if (method === "POST" && r("/check-runs")) {
      const run: FakeCheckRun = {
        id: this.#nextId++,
        name: body.name,
        head_sha: body.head_sha,
        external_id: body.external_id ?? null,
        status: body.status ?? "queued",
        conclusion: body.conclusion ?? null,
        output: body.output ?? null,
        updates: [],
      };
      this.checkRuns.push(run);
      return this.#json(201, this.#checkJson(run));
    }
    if (method === "PATCH" && (match = r("/check-runs/(\\d+)"))) {
      const run = this.checkRuns.find((c) => c.id === Number(match?.[1]));
      if (!run) return this.#json(404, { message: "Not Found" });
      run.updates.push(body);
      if (body.status) run.status = body.status;
      if (body.conclusion) {
        run.conclusion = body.conclusion;
        run.status = "completed";
      }
      if (body.output) run.output = body.output;
      return this.#json(200, this.#checkJson(run));
    }
    if (method === "GET" && (match = r("/actions/runs/(\\d+)/jobs"))) {
      const jobs = this.workflowJobs.get(Number(match[1]));
      if (!jobs) return this.#json(404, { message: "Not Found" });
      return this.#json(200, {
        total_count: jobs.length,
        jobs: jobs.map(({ log: _log, ...j }) => ({
          ...j,
          html_url: `https://ghe.example.test/${owner}/${repo}/actions/runs/${j.run_id}/job/${j.id}`,
          check_run_url: `${this.#options.baseUrl}${repoPath}/check-runs/${j.id}`,
        })),
      });
    }
    if (method === "GET" && (match = r("/actions/jobs/(\\d+)/logs"))) {
      const id = Number(match[1]);
      const job = [...this.workflowJobs.values()].flat().find((j) => j.id === id);
      if (!job) return this.#json(404, { message: "Not Found" });
      if (job.log === undefined) return this.#json(410, { message: "Gone" });
      return [302, "", { location: `${FAKE_LOG_ORIGIN}/job-logs/${id}?sig=${randomBytes(8).toString("hex")}` }];
    }
    if (method === "GET" && (match = r("/check-suites/(\\d+)/check-runs"))) {
      const suite = Number(match[1]);
      const runs = this.checkRuns.filter((c) => c.check_suite_id === suite);
      return this.#json(200, { total_count: runs.length, check_runs: runs.map((c) => this.#checkJson(c)) });
    }
    if (method === "GET" && (match = r("/check-runs/(\\d+)/annotations"))) {
      const run = this.checkRuns.find((c) => c.id === Number(match?.[1]));
      if (!run) return this.#json(404, { message: "Not Found" });
      return this.#json(200, run.annotations ?? []);
    }
    if (method === "POST" && (match = r("/issues/comments/(\\d+)/reactions"))) {
      this.reactions.push({ commentId: Number(match[1]), content: body.content });
      return this.#json(201, { id: this.#nextId++, content: body.content });
    }
    if (method === "PUT" && (match = r("/pulls/(\\d+)/merge"))) {
      const pull = this.pulls.find((p) => p.number === Number(match?.[1]));
      if (!pull) return this.#json(404, { message: "Not Found" });
      this.merges.push({ pull: pull.number, sha: body.sha, method: body.merge_method });
      pull.state = "closed";
      pull.merged = true;
      return this.#json(200, { merged: true, sha: body.sha });
    }
    return this.#json(404, { message: `Not Found: ${method} ${path}` });
  }

  /**
   * The one GraphQL query the app sends: a pull request's review threads with `isResolved` and
   * their comments' `databaseId` (threads grouped by `in_reply_to_id`, one page). Anything else is an error.
   */
  #graphql(body: any): Reply {
    const query = String(body?.query ?? "");
    const variables = body?.variables ?? {};
    // Pinning an issue: its node id, then the `pinIssue` mutation (refused when `pinRefused`).
    if (/issue\(number: \$number\) \{ id \}/.test(query)) {
      const issue = this.issues.get(Number(variables.number));
      return this.#json(200, { data: { repository: { issue: issue ? { id: `I_${issue.number}` } : null } } });
    }
    if (/pinIssue\(/.test(query)) {
      if (this.pinRefused) return this.#json(200, { data: null, errors: [{ type: "FORBIDDEN", message: "Resource not accessible by integration" }] });
      const number = Number(String(variables.issueId ?? "").replace(/^I_/, ""));
      this.pinnedIssues.add(number);
      return this.#json(200, { data: { pinIssue: { issue: { number } } } });
    }
    if (!/reviewThreads/.test(query) || variables.owner !== this.#options.owner || variables.repo !== this.#options.repo) {
      return this.#json(200, { data: null, errors: [{ message: `unsupported query for the fake: ${query.slice(0, 80)}` }] });
    }
    const pull = this.pulls.find((p) => p.number === Number(variables.number));
    if (!pull) return this.#json(200, { data: { repository: { pullRequest: null } } });
    const comments = this.reviewComments.filter((c) => c.pull_number === pull.number);
    const roots = comments.filter((c) => c.in_reply_to_id === null);
    const nodes = roots.map((root) => ({
      isResolved: this.resolvedThreads.has(root.id),
      comments: { nodes: [root, ...comments.filter((c) => c.in_reply_to_id === root.id)].map((c) => ({ databaseId: c.id })) },
    }));
    return this.#json(200, { data: { repository: { pullRequest: { reviewThreads: { pageInfo: { hasNextPage: false, endCursor: null }, nodes } } } } });
  }

  #checkJson(run: FakeCheckRun) {
    return {
      id: run.id,
      name: run.name,
      head_sha: run.head_sha,
      external_id: run.external_id,
      status: run.status,
      conclusion: run.conclusion,
      output: run.output ? { ...run.output, annotations_count: run.annotations?.length ?? 0 } : null,
      app: { slug: run.app_slug ?? this.#options.appSlug ?? "mission-control-test" },
      check_suite: run.check_suite_id === undefined ? null : { id: run.check_suite_id },
      html_url: `https://ghe.example.test/${this.#options.owner}/${this.#options.repo}/runs/${run.id}`,
    };
  }
}

/** `true` when a unified-diff patch shows `line` on `side` (RIGHT: new file lines, LEFT: old). */
function patchHasLine(patch: string | undefined, line: number, side: string): boolean {
  if (!patch) return false;
  let oldLine = 0;
  let newLine = 0;
  for (const row of patch.split("\n")) {
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(row);
    if (hunk) {
      oldLine = Number(hunk[1]);
      newLine = Number(hunk[2]);
      continue;
    }
    if (row.startsWith("+")) {
      if (side === "RIGHT" && newLine === line) return true;
      newLine++;
    } else if (row.startsWith("-")) {
      if (side === "LEFT" && oldLine === line) return true;
      oldLine++;
    } else if (!row.startsWith("\\")) {
      if ((side === "RIGHT" && newLine === line) || (side === "LEFT" && oldLine === line)) return true;
      oldLine++;
      newLine++;
    }
  }
  return false;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** `GET …/git/trees/{ref}?recursive=1` from a bare repository: every blob and tree below the ref's root, or `null` for an unknown ref. */
function gitTree(bare: string, ref: string): { sha: string; entries: Array<{ path: string; mode: string; type: string; sha: string; size?: number }> } | null {
  let sha: string;
  try {
    sha = git(["--git-dir", bare, "rev-parse", `${ref}^{tree}`]);
  } catch {
    return null;
  }
  const out = git(["--git-dir", bare, "ls-tree", "-r", "-t", "-l", "-z", "--full-tree", sha]);
  const entries = out
    .split("\0")
    .filter(Boolean)
    .map((line) => {
      const [meta = "", path = ""] = line.split("\t");
      const [mode = "", type = "", objectSha = "", size = "-"] = meta.split(/\s+/);
      return { path, mode, type, sha: objectSha, ...(type === "blob" ? { size: Number(size) } : {}) };
    });
  return { sha, entries };
}

/** `GET …/git/blobs/{sha}` from a bare repository, or `null` when there is no such blob. */
function gitBlob(bare: string, sha: string): Buffer | null {
  try {
    return execFileSync("git", ["--git-dir", bare, "cat-file", "blob", sha], {
      env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: TEST_GIT_GLOBAL_CONFIG },
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch {
    return null;
  }
}

function pullRequestFilesSha(bare: string, ref: string): string {
  return git(["--git-dir", bare, "rev-parse", `refs/heads/${ref}`]);
}
