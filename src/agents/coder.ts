import { AgentOutputError } from "../errors.js";
import { marker } from "../github/output/ensure.js";
import type { BotIdentity, GitHubPort, PullRequestData } from "../github/output/port.js";
import type { Plan } from "./architect.js";
import { type AgentRuntime, type IssueForPrompt, renderIssue } from "./context.js";
import { runToolLoop } from "./loop.js";
import { loadPrompt } from "./prompts.js";
import { createFileTools, type WorkspaceIndex } from "./tools.js";

/** The clone operations the Coder needs; `workspace/git.ts`'s `GitWorkspace` implements them. */
export interface CoderWorkspace extends WorkspaceIndex {
  remoteBranchExists(branch: string): Promise<boolean>;
  checkoutRemoteBranch(branch: string): Promise<void>;
  createBranch(branch: string): Promise<void>;
  commitsAhead(base: string): Promise<number>;
  hasChanges(): Promise<boolean>;
  changedFiles(): Promise<string[]>;
  commitAll(message: string, author: { name: string; email: string }): Promise<string>;
  push(branch: string): Promise<void>;
}

/** What the Coder works on. */
export interface CoderInput {
  issue: IssueForPrompt;
  plan: Plan;
  defaultBranch: string;
  /** Messages API calls allowed for this run. */
  maxTurns: number;
  /** `max_tokens` of each call. */
  maxTokens: number;
}

/** What the Coder produced. */
export interface CoderResult {
  branch: string;
  pullRequest: PullRequestData;
  /** Files changed by this run (empty when an earlier, interrupted run already pushed them). */
  changedFiles: string[];
  summary: string;
  turns: number;
}

/**
 * The branch for an issue: `mc/issue-<n>-<slug>`, the slug from the title (lowercase ASCII
 * words joined by `-`, at most 40 characters).
 */
export function branchName(issueNumber: number, title: string): string {
  const slug = title
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/, "");
  return `mc/issue-${issueNumber}${slug ? `-${slug}` : ""}`;
}

/** The pull request body: closes the issue, carries the plan's summary and what the Coder did. */
export function pullRequestBody(issueNumber: number, plan: Plan, summary: string): string {
  return [
    marker("pull-request"),
    `Closes #${issueNumber}`,
    "## Summary",
    plan.summary,
    "## What the Coder did",
    summary || "_No summary was given._",
    "---",
    "_Opened by Mission Control. Review it like any other pull request before merging._",
  ].join("\n\n");
}

/**
 * Implements an issue on its own branch and opens (or finds) its pull request.
 *
 * Resumable: if the branch already exists on the remote with commits (an earlier run was
 * interrupted after pushing), the loop is skipped and only the PR is ensured; an existing PR
 * for the branch is reused, never duplicated.
 *
 * @throws {AgentOutputError} when the model changed no file
 * @throws {AgentLimitError} when the loop hits its turn or token limit
 */
export async function implementIssue(
  runtime: AgentRuntime,
  deps: { github: GitHubPort; workspace: CoderWorkspace; bot: BotIdentity },
  input: CoderInput,
): Promise<CoderResult> {
  const { github, workspace, bot } = deps;
  const branch = branchName(input.issue.number, input.issue.title);
  let summary = "";
  let changedFiles: string[] = [];
  let turns = 0;

  let alreadyPushed = false;
  if (await workspace.remoteBranchExists(branch)) {
    await workspace.checkoutRemoteBranch(branch);
    alreadyPushed = (await workspace.commitsAhead(`origin/${input.defaultBranch}`)) > 0;
  } else {
    await workspace.createBranch(branch);
  }
  if (!alreadyPushed) {
    const prompt = loadPrompt("coder");
    const loop = await runToolLoop({
      llm: runtime.llm,
      agent: "coder",
      model: runtime.model,
      system: prompt.text,
      messages: [
        {
          role: "user",
          content: `${renderIssue(input.issue)}\n\n<plan>\n${JSON.stringify(input.plan, null, 2)}\n</plan>\n\nImplement the plan in this repository with the file tools. When you are done, answer with a short summary of what you changed.`,
        },
      ],
      tools: createFileTools(workspace),
      maxTurns: input.maxTurns,
      maxTokens: input.maxTokens,
      signal: runtime.signal,
    });
    summary = loop.finalText;
    turns = loop.turns;
    if (!(await workspace.hasChanges())) throw new AgentOutputError("coder", "the model finished without changing any file");
    changedFiles = await workspace.changedFiles();
    const title = input.issue.title.replace(/\s+/g, " ").slice(0, 60);
    await workspace.commitAll(`Resolve #${input.issue.number}: ${title}\n\n${summary}`.trim(), bot);
    await workspace.push(branch);
  }

  const existing = await github.findPullRequestByBranch(branch);
  const pullRequest =
    existing && existing.state === "open"
      ? existing
      : await github.createPullRequest({
          title: input.issue.title,
          body: pullRequestBody(input.issue.number, input.plan, summary),
          head: branch,
          base: input.defaultBranch,
          draft: false,
        });
  return { branch, pullRequest, changedFiles, summary, turns };
}
