import { z } from "zod";

import { escapeUntrustedCode, escapeUntrustedName } from "../prompt/index.js";
import { readWorkspaceFile } from "../workspace/files.js";
import { type AgentRuntime, attr, type IssueForPrompt, renderIssue, renderNotes } from "./context.js";
import { renderGuidance, type RepositoryGuidance } from "./instructions.js";
import { runToolLoop } from "./loop.js";
import { loadPrompt } from "./prompts.js";
import type { WorkspaceIndex } from "./tools.js";

/** The Architect's structured plan: the `submit_plan` tool's input. */
export const Plan = z
  .object({
    summary: z.string().min(1).max(4000),
    files_to_change: z.array(z.object({ path: z.string().min(1).max(1024), reason: z.string().max(1000) })).max(100),
    steps: z.array(z.string().min(1).max(2000)).min(1).max(50),
    definition_of_done: z.array(z.string().min(1).max(1000)).min(1).max(30),
    test_plan: z.array(z.string().min(1).max(1000)).min(1).max(30),
  })
  .strict();
export type Plan = z.infer<typeof Plan>;

/** A snapshot of the repository for the prompt: every path, plus the text of the most relevant files. */
export interface RepositorySnapshot {
  fullName: string;
  defaultBranch: string;
  files: string[];
  excerpts: { path: string; content: string }[];
}

/** Budgets of the repository snapshot, in characters. */
const SNAPSHOT_LIMITS = { treeChars: 40_000, excerptChars: 60_000, perFileChars: 12_000, maxFiles: 12 } as const;

const ALWAYS_RELEVANT = /^(readme(\.\w+)?|package\.json|pyproject\.toml|cargo\.toml|go\.mod|contributing(\.\w+)?)$/i;

/**
 * Ranks files by how much their path shares with the issue's words (manifests and READMEs
 * first), then reads the best ones within {@link SNAPSHOT_LIMITS}.
 */
export async function snapshotRepository(
  workspace: WorkspaceIndex,
  issue: Pick<IssueForPrompt, "title" | "body">,
  meta: { fullName: string; defaultBranch: string },
): Promise<RepositorySnapshot> {
  const files = await workspace.listFiles();
  const words = new Set(
    `${issue.title} ${issue.body}`
      .toLowerCase()
      .split(/[^a-z0-9_]+/)
      .filter((w) => w.length >= 3),
  );
  const score = (file: string): number => {
    const name = file.split("/").at(-1) ?? file;
    let s = ALWAYS_RELEVANT.test(name) && !file.includes("/") ? 100 : 0;
    for (const part of file.toLowerCase().split(/[^a-z0-9_]+/)) if (words.has(part)) s += 10;
    if (/(^|\/)(test|tests|__tests__|spec)\//.test(file)) s -= 1;
    return s;
  };
  const ranked = files
    .map((file) => ({ file, s: score(file) }))
    .filter((r) => r.s > 0)
    .sort((a, b) => b.s - a.s || a.file.localeCompare(b.file));
  const excerpts: { path: string; content: string }[] = [];
  let used = 0;
  for (const { file } of ranked) {
    if (excerpts.length >= SNAPSHOT_LIMITS.maxFiles || used >= SNAPSHOT_LIMITS.excerptChars) break;
    const content = await readWorkspaceFile(workspace.root, file).catch(() => null);
    if (content === null) continue;
    const clipped = content.slice(0, Math.min(SNAPSHOT_LIMITS.perFileChars, SNAPSHOT_LIMITS.excerptChars - used));
    excerpts.push({ path: file, content: clipped.length < content.length ? `${clipped}\n[... clipped]` : clipped });
    used += clipped.length;
  }
  return { ...meta, files, excerpts };
}

/**
 * The snapshot as `<repository>` with `<file_tree>` and one `<file>` per excerpt. File names
 * and contents come from the repository, so they are escaped (`escapeUntrustedName`,
 * `escapeUntrustedCode`): a file named `</repository>` or containing `</file>` stays data.
 */
function renderSnapshot(snapshot: RepositorySnapshot): string {
  let tree = snapshot.files.map(escapeUntrustedName).join("\n");
  if (tree.length > SNAPSHOT_LIMITS.treeChars) {
    tree = `${tree.slice(0, SNAPSHOT_LIMITS.treeChars)}\n[... ${snapshot.files.length} files in all; list clipped]`;
  }
  const files = snapshot.excerpts.map((e) => `<file path="${attr(e.path)}">\n${escapeUntrustedCode(e.content)}\n</file>`).join("\n");
  return `<repository name="${attr(snapshot.fullName)}" default_branch="${attr(snapshot.defaultBranch)}">\n<file_tree>\n${tree}\n</file_tree>\n${files}\n</repository>`;
}

/**
 * Asks the model for a plan. The repository, its guidance (the repository-wide instruction
 * files, and a list of the scoped ones: `renderGuidance`) and the issue go in the user turn as
 * data; the model answers by calling `submit_plan`, whose input is validated against {@link Plan}.
 *
 * @throws {AgentOutputError} when no valid plan arrives within the turn limit
 */
export async function planIssue(
  runtime: AgentRuntime,
  issue: IssueForPrompt,
  snapshot: RepositorySnapshot,
  notes: { author: string; text: string } | null = null,
  guidance: RepositoryGuidance | null = null,
): Promise<Plan> {
  const guidanceText = renderGuidance(guidance);
  const prompt = loadPrompt("architect");
  const submitPlan = {
    name: "submit_plan",
    description: "Submit the implementation plan. Call this exactly once, when the plan is complete.",
    input: Plan,
    terminal: true,
    run: () => Promise.resolve("Plan received."),
  };
  const { result } = await runToolLoop({
    llm: runtime.llm,
    agent: "architect",
    model: runtime.model,
    system: prompt.text,
    messages: [
      {
        role: "user",
        content: `${renderSnapshot(snapshot)}\n\n${guidanceText ? `${guidanceText}\n\n` : ""}${renderIssue(issue)}\n\n${notes ? `${renderNotes(notes)}\n\n` : ""}Write the plan for this issue and submit it with submit_plan.`,
      },
    ],
    tools: [submitPlan],
    maxTurns: 3,
    maxTokens: prompt.maxTokens ?? 4096,
    requireTool: "submit_plan",
    signal: runtime.signal,
  });
  return Plan.parse(result);
}

const bullets = (items: readonly string[]) => items.map((item) => `- ${item}`).join("\n");

/** The plan as the Markdown of the plan comment. */
export function renderPlanMarkdown(plan: Plan): string {
  const files = plan.files_to_change.map((f) => `- \`${f.path}\`${f.reason ? ` — ${f.reason}` : ""}`).join("\n");
  return [
    "## 🧭 Plan",
    plan.summary,
    "### Files to change",
    files || "_None listed._",
    "### Steps",
    plan.steps.map((s, i) => `${i + 1}. ${s}`).join("\n"),
    "### Definition of Done",
    plan.definition_of_done.map((d) => `- [ ] ${d}`).join("\n"),
    "### Test plan",
    bullets(plan.test_plan),
  ].join("\n\n");
}
