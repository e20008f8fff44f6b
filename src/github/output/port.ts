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
  /** `POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews` */
  createReview(input: { pullNumber: number; commitId: string; event: ReviewEvent; body: string }): Promise<ReviewData>;
  /**
   * A fresh installation access token for git over HTTPS, limited to this repository:
   * `POST /app/installations/{installation_id}/access_tokens`, sent by the app (JWT) client to
   * the configured REST base URL.
   */
  createGitToken(): Promise<string>;
  /** The app's bot account: `GET /app` for the slug, `GET /users/{slug}[bot]` for its id. */
  getBotIdentity(): Promise<BotIdentity>;
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
