/**
 * The small interface through which agents and the pipeline act on GitHub. The app
 * implements it with Octokit (`octokit-output.ts`); agents never import probot or Octokit.
 * Every method is bound to one installation and one repository.
 *
 * Methods throw `GitHubApiError` (`retryable` for 5xx, 429 and secondary rate limits).
 */
export interface GitHubPort {
  readonly owner: string;
  readonly repo: string;

  /** `GET /repos/{owner}/{repo}/issues/{issue_number}` */
  getIssue(issueNumber: number): Promise<IssueData>;
  /** `GET /repos/{owner}/{repo}/issues/{issue_number}/comments` (all pages) */
  listIssueComments(issueNumber: number): Promise<CommentData[]>;
  /** `POST /repos/{owner}/{repo}/issues/{issue_number}/comments` */
  createComment(issueNumber: number, body: string): Promise<CommentData>;
  /** `PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}` */
  updateComment(commentId: number, body: string): Promise<CommentData>;
  /**
   * The one comment of the app on an issue that carries the hidden marker of `topic`
   * (`<!-- mission-control:<topic> -->`), created or edited in place: with a known `commentId`
   * it edits that comment; otherwise it looks for the marker among the app's own comments
   * (`GET …/issues/{issue_number}/comments`) first, so a retried job never posts a second copy.
   * An identical body is not written again.
   */
  ensureComment(input: { issueNumber: number; topic: string; body: string; commentId?: number | null }): Promise<CommentData>;
  /** `POST /repos/{owner}/{repo}/issues/{issue_number}/labels` */
  addLabels(issueNumber: number, labels: string[]): Promise<void>;
  /** `DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}`; a missing label is not an error. */
  removeLabel(issueNumber: number, label: string): Promise<void>;
  /** `GET /repos/{owner}/{repo}/pulls?head={owner}:{branch}&state=all`: the newest PR from that branch, if any. */
  findPullRequestByBranch(branch: string): Promise<PullRequestData | null>;
  /** `POST /repos/{owner}/{repo}/pulls` */
  createPullRequest(input: { title: string; body: string; head: string; base: string; draft: boolean }): Promise<PullRequestData>;
  /** `GET /repos/{owner}/{repo}/pulls/{pull_number}` */
  getPullRequest(pullNumber: number): Promise<PullRequestData>;
  /** `GET /repos/{owner}/{repo}/pulls/{pull_number}/files` (all pages, at most 3000 files) */
  listPullRequestFiles(pullNumber: number): Promise<PullRequestFile[]>;
  /** `GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews` (all pages) */
  listReviews(pullNumber: number): Promise<ReviewData[]>;
  /** `POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews`, with inline comments on lines of the diff. */
  createReview(input: { pullNumber: number; commitId: string; event: ReviewEvent; body: string; comments?: ReviewCommentInput[] }): Promise<ReviewData>;
  /** `GET /repos/{owner}/{repo}/pulls/{pull_number}/comments` (all pages): inline review comments. */
  listReviewComments(pullNumber: number): Promise<ReviewCommentData[]>;
  /** `GET /repos/{owner}/{repo}/compare/{base}...{head}`: files changed between two commits, with patches. */
  compareCommits(base: string, head: string): Promise<PullRequestFile[]>;
  /** `GET /repos/{owner}/{repo}/labels/{name}`, then `POST /repos/{owner}/{repo}/labels` when missing. */
  ensureLabel(name: string, color: string, description: string): Promise<void>;
  /**
   * `GET /repos/{owner}/{repo}/commits/{ref}/check-runs?check_name=` then `POST …/check-runs`:
   * the check run named `name` on `headSha` made by this app, created when missing.
   */
  ensureCheckRun(input: {
    name: string;
    headSha: string;
    externalId: string;
    status: "queued" | "in_progress";
    output?: CheckRunOutput;
  }): Promise<CheckRunData>;
  /** `PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}` */
  updateCheckRun(
    id: number,
    input: { status?: "queued" | "in_progress" | "completed"; conclusion?: CheckConclusion; output?: CheckRunOutput },
  ): Promise<CheckRunData>;
  /** `GET /repos/{owner}/{repo}/commits/{ref}/check-runs` (all pages): every check run on a commit. */
  listCheckRuns(headSha: string): Promise<CheckRunData[]>;
  /** `POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions` */
  addReaction(commentId: number, content: "eyes" | "+1" | "confused"): Promise<void>;
  /** `PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge` with the head sha it must still be at. */
  mergePullRequest(pullNumber: number, sha: string, method: "merge" | "squash" | "rebase"): Promise<void>;
  /**
   * A fresh installation access token for git over HTTPS, limited to this repository:
   * `POST /app/installations/{installation_id}/access_tokens`, sent by the app (JWT) client to
   * the configured REST base URL.
   */
  createGitToken(): Promise<string>;
  /** The app's bot account: `GET /app` for the slug, `GET /users/{slug}[bot]` for its id. */
  getBotIdentity(): Promise<BotIdentity>;
  /**
   * A person's permission on this repository:
   * `GET /repos/{owner}/{repo}/collaborators/{username}/permission`. A 404 (no such user) is
   * `{ permission: "none", roleName: null }`, not an error.
   */
  getRepositoryPermission(login: string): Promise<RepositoryPermission>;
  /**
   * `true` when `login` is an active owner (admin) of the organisation that owns this
   * repository: `GET /orgs/{org}/memberships/{username}`; a 404 is `false`.
   */
  isOrganisationOwner(login: string): Promise<boolean>;
  /**
   * The repository config file `.github/<fileName>` from the default branch, parsed from YAML, as
   * Probot's `context.config` reads it (`GET /repos/{owner}/{repo}/contents/{path}`, with
   * `_extends` and the organisation's `.github` repository); `null` when there is none.
   *
   * @throws {GitHubApiError} for an HTTP error; a plain `Error` for YAML that does not parse
   */
  readConfigFile(fileName: string): Promise<unknown>;
}

/**
 * Answer of `GET /repos/{owner}/{repo}/collaborators/{username}/permission`: `permission` is
 * `admin`, `write`, `read` or `none` (GitHub folds `maintain` into `write` and `triage` into
 * `read` there); `roleName` carries the precise role (`maintain`, `triage`, a custom role).
 */
export interface RepositoryPermission {
  permission: string;
  roleName: string | null;
}

export interface IssueData {
  number: number;
  title: string;
  body: string;
  author: string;
  state: "open" | "closed";
  labels: string[];
  htmlUrl: string;
}

export interface CommentData {
  id: number;
  body: string;
  author: string;
  authorType: string;
  createdAt: string;
  updatedAt: string;
  htmlUrl: string;
}

export interface PullRequestData {
  number: number;
  title: string;
  htmlUrl: string;
  state: "open" | "closed";
  draft: boolean;
  merged: boolean;
  author: string;
  headRef: string;
  headSha: string;
  baseRef: string;
}

export interface PullRequestFile {
  filename: string;
  status: string;
  additions: number;
  deletions: number;
  /** Unified diff hunks; absent for binary or very large files. */
  patch?: string | undefined;
}

export type ReviewEvent = "APPROVE" | "REQUEST_CHANGES" | "COMMENT";

/** An inline review comment to create: on `line` of the diff's `side` (RIGHT = the new file). */
export interface ReviewCommentInput {
  path: string;
  line: number;
  side: "LEFT" | "RIGHT";
  body: string;
}

/** An inline review comment as GitHub returns it. */
export interface ReviewCommentData {
  id: number;
  reviewId: number | null;
  path: string;
  /** Line in the file the comment is on (null when the line is no longer in the diff). */
  line: number | null;
  body: string;
  author: string;
  authorType: string;
  createdAt: string;
  inReplyTo: number | null;
}

export type CheckConclusion = "success" | "failure" | "neutral" | "cancelled" | "skipped" | "timed_out" | "action_required";

/** The text of a check run: `title` and `summary` are required by GitHub, `text` is optional (65535 characters at most each). */
export interface CheckRunOutput {
  title: string;
  summary: string;
  text?: string;
}

export interface CheckRunData {
  id: number;
  name: string;
  headSha: string;
  status: string;
  conclusion: string | null;
  externalId: string | null;
  appSlug: string | null;
  htmlUrl: string;
}

export interface ReviewData {
  id: number;
  body: string;
  state: string;
  author: string;
  commitId: string | null;
  htmlUrl: string;
}

/** The identity commits are attributed to: `<slug>[bot]` and its noreply address. */
export interface BotIdentity {
  login: string;
  name: string;
  email: string;
}
