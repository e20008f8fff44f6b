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
  /**
   * `POST /repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies`: a reply in the
   * review thread of `commentId` (GitHub puts it in that comment's thread; `commentId` should be
   * the thread's first comment, replies to replies are not supported).
   */
  replyToReviewComment(pullNumber: number, commentId: number, body: string): Promise<ReviewCommentData>;
  /**
   * The pull request's review threads and whether each is resolved — only GraphQL has that
   * state: `repository.pullRequest.reviewThreads { isResolved, comments { databaseId } }`
   * (all pages of threads, the first 100 comments of each).
   */
  listReviewThreads(pullNumber: number): Promise<ReviewThreadState[]>;
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
  /**
   * The check runs of one check suite, with their output: `GET /repos/{owner}/{repo}/check-suites/{check_suite_id}/check-runs?filter=latest`
   * (all pages; `latest`: the most recent run of each name).
   */
  listCheckSuiteRuns(checkSuiteId: number): Promise<CheckRunDetail[]>;
  /**
   * A check run's annotations (file, lines, level, message): `GET /repos/{owner}/{repo}/check-runs/{check_run_id}/annotations`
   * (all pages; GitHub keeps at most 50 per output update and a few thousand in all).
   */
  listCheckRunAnnotations(checkRunId: number): Promise<CheckAnnotationData[]>;
  /**
   * The jobs of a GitHub Actions workflow run's latest attempt, with their steps:
   * `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs?filter=latest` (all pages). Needs the
   * `actions: read` permission. A job's id is also the id of its check run.
   */
  listWorkflowRunJobs(runId: number): Promise<WorkflowJobData[]>;
  /**
   * A job's plain-text log: `GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs`, which GitHub
   * answers with `302 Found` and a short-lived URL of the log file; fetch follows it (and, per the
   * Fetch standard, drops the `authorization` header when that URL is on another origin). Only the
   * last `maxBytes` bytes are kept in memory while the file is read.
   *
   * @throws {GitHubApiError} 404 (no such job) or 410 (the log was deleted or expired)
   */
  downloadJobLog(jobId: number, maxBytes: number): Promise<JobLog>;
  /** `POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions` */
  addReaction(commentId: number, content: "eyes" | "+1" | "confused"): Promise<void>;
  /**
   * The 👍 reactions on a pull request review comment, with who gave each:
   * `GET /repos/{owner}/{repo}/pulls/comments/{comment_id}/reactions?content=+1` (all pages, at
   * most 1000). GitHub sends no webhook for reactions, so callers poll this.
   */
  listReviewCommentThumbsUp(commentId: number): Promise<Array<{ login: string; userType: string }>>;
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
  /**
   * Every entry of a branch's tree, recursively: `GET /repos/{owner}/{repo}/git/trees/{tree_sha}?recursive=1`
   * with the branch name as `tree_sha` (GitHub accepts a ref name there). GitHub cuts the list
   * of a very large tree (over 100,000 entries or 7 MB) and says so in `truncated`.
   *
   * @throws {GitHubApiError} for an HTTP error (404 for a missing ref, 409 for an empty repository)
   */
  getTree(ref: string): Promise<GitTree>;
  /**
   * A blob's content as UTF-8 text: `GET /repos/{owner}/{repo}/git/blobs/{file_sha}` (GitHub
   * sends it base64-encoded; blobs up to 100 MB).
   *
   * @throws {GitHubApiError} for an HTTP error
   */
  getBlob(sha: string): Promise<string>;
  /** `POST /repos/{owner}/{repo}/issues` */
  createIssue(input: { title: string; body: string; labels?: string[] }): Promise<IssueData>;
  /** `PATCH /repos/{owner}/{repo}/issues/{issue_number}` */
  updateIssue(issueNumber: number, input: { title?: string; body?: string }): Promise<IssueData>;
  /**
   * The 100 most recently created issues (open or closed, pull requests left out) opened by
   * `creator`: `GET /repos/{owner}/{repo}/issues?creator=&state=all&sort=created&direction=desc`
   * (one page). Used to find an issue the app opened by its marker after a crash.
   */
  listRecentIssuesBy(creator: string): Promise<IssueData[]>;
  /**
   * The one issue opened by the app that carries `marker(topic)` at the start of its body,
   * created or edited in place: with a known `issueNumber` (of the app's, with the marker) it
   * edits that issue; otherwise it looks for the marker among the app's recent issues
   * ({@link listRecentIssuesBy}) first, so a retried job never opens a second one. An identical
   * title and body are not written again.
   */
  ensureIssue(input: {
    topic: string;
    title: string;
    body: string;
    issueNumber?: number | null;
    labels?: string[];
  }): Promise<{ issue: IssueData; created: boolean }>;
  /**
   * Pins an issue to the repository (at most three are pinned): GraphQL `repository.issue.id`,
   * then the `pinIssue` mutation. Needs the `issues: write` permission and, on GitHub, an
   * installation allowed to pin; throws `GitHubApiError` when refused.
   */
  pinIssue(issueNumber: number): Promise<void>;
  /**
   * Every check run on a commit, each attempt included (a re-run is a new check run with the
   * same name): `GET /repos/{owner}/{repo}/commits/{ref}/check-runs?filter=all` (all pages).
   */
  listCheckRunAttempts(headSha: string): Promise<CheckRunData[]>;
}

/** A branch's tree as `GET …/git/trees/{ref}?recursive=1` lists it. */
export interface GitTree {
  /** `true` when GitHub cut the list (a very large repository): entries are missing. */
  truncated: boolean;
  entries: GitTreeEntry[];
}

/** One entry of a {@link GitTree}: a file (`blob`), a folder (`tree`) or a submodule (`commit`). */
export interface GitTreeEntry {
  /** `/`-separated path from the repository root. */
  path: string;
  type: "blob" | "tree" | "commit";
  sha: string;
  /** Bytes of a blob; `null` for folders and submodules. */
  size: number | null;
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
  /** The diff hunk the comment was made on (GitHub's `diff_hunk`), when given. */
  diffHunk?: string | undefined;
  /** When the comment was last edited (ISO), when given. */
  updatedAt?: string | undefined;
}

/** A review thread's resolved state (GraphQL `PullRequestReviewThread`), by the REST ids of its comments. */
export interface ReviewThreadState {
  isResolved: boolean;
  /** `databaseId` of its comments: the REST `id` of {@link ReviewCommentData}. */
  commentIds: number[];
}

export type CheckConclusion = "success" | "failure" | "neutral" | "cancelled" | "skipped" | "timed_out" | "action_required";

/** A check run with its output, as `GET …/check-suites/{check_suite_id}/check-runs` lists it. */
export interface CheckRunDetail extends CheckRunData {
  /** What the check's app reported (Markdown written by that app: untrusted). */
  output: { title: string | null; summary: string | null; text: string | null; annotationsCount: number };
}

/** One annotation of a check run (`GET …/check-runs/{check_run_id}/annotations`). */
export interface CheckAnnotationData {
  path: string;
  startLine: number;
  endLine: number;
  /** `notice`, `warning` or `failure`. */
  level: string;
  title: string | null;
  message: string;
}

/** A GitHub Actions job (`GET …/actions/runs/{run_id}/jobs`). */
export interface WorkflowJobData {
  /** The job's id, which is also its check run's id. */
  id: number;
  runId: number;
  name: string;
  workflowName: string | null;
  status: string;
  /** `success`, `failure`, `cancelled`, `skipped`, `timed_out`, … or `null` while running. */
  conclusion: string | null;
  htmlUrl: string | null;
  steps: Array<{ number: number; name: string; status: string; conclusion: string | null }>;
}

/** A job log's end, as {@link GitHubPort.downloadJobLog} read it. */
export interface JobLog {
  /** The log (UTF-8), or its last `maxBytes` bytes. */
  text: string;
  /** The log's size in bytes as read. */
  totalBytes: number;
  /** Bytes at the start of the log that were not kept (0 when it fit). */
  droppedBytes: number;
}

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
