/**
 * `npx tsx bench/coder-context.ts` (also run by `npm run bench`): how much input the Coder
 * sends, on a real mid-size package vendored as a fixture (`test/fixtures/semver-7.8.6`).
 *
 * (a) The first request with the repository map (`buildRepoMap`, 8,000-token budget) against
 *     a first request that pastes the whole source tree.
 * (b) A scripted 10-turn Coder session, its requests built by the real `runToolLoop` with the
 *     real file tools on a git copy of the fixture; for each request, the share of its input
 *     that Anthropic's prefix cache would serve given the `cache_control` breakpoints of the
 *     request before it.
 *
 * Tokens are estimated with `estimateTokens` (characters / 3.5), not counted by a tokenizer or
 * billed by the API; nothing goes over the network. Results go to bench/coder-context.md.
 */
import { execFileSync } from "node:child_process";
import { cpSync, writeFileSync } from "node:fs";

import type { Plan } from "../src/agents/architect.js";
import { type IssueForPrompt, renderIssue } from "../src/agents/context.js";
import { runToolLoop } from "../src/agents/loop.js";
import { loadPrompt } from "../src/agents/prompts.js";
import { buildRepoMap, estimateTokens } from "../src/agents/repo-map.js";
import { createFileTools } from "../src/agents/tools.js";
import type { ContentBlock, Llm, Message, MessageParam, MessageRequest } from "../src/ports/llm.js";
import { readWorkspaceFile } from "../src/workspace/files.js";
import { GitWorkspace } from "../src/workspace/git.js";
import { cleanupTempDirs, gitSync, makeTempDir } from "../test/workspace/fixtures.js";

const FIXTURE = "semver-7.8.6";
const FIXTURE_DIR = new URL(`../test/fixtures/${FIXTURE}/`, import.meta.url);
const MAP_BUDGET = 8000;
const MODEL = "claude-sonnet-5-5";
/**
 * Smallest prefix the API caches for Sonnet and Opus models (Haiku: 2048). A breakpoint whose
 * prefix is shorter neither writes nor reads the cache.
 */
const MIN_CACHEABLE_TOKENS = 1024;
/** The API looks for a cache hit at each breakpoint and up to 20 content blocks before it. */
const LOOKBACK_BLOCKS = 20;

/** A realistic issue for the package, as the Coder would get it after sanitising. */
const ISSUE: IssueForPrompt = {
  number: 812,
  title: "coerce(): option to drop build metadata when includePrerelease is set",
  body: [
    "Since `includePrerelease` was added to `coerce()`, `semver.coerce('v2.4.1-rc.3+sha.5114f85', { includePrerelease: true })`",
    "returns `2.4.1-rc.3+sha.5114f85`. We coerce container image tags and compare them; we need the",
    "prerelease part but the build metadata makes every tag unique and breaks our de-duplication.",
    "",
    "Proposal: a `dropBuild` option (default `false`) that `coerce()` honours together with",
    "`includePrerelease`, in both the left-to-right and the `rtl` mode. Nothing else should change:",
    "without the option the result is the same as today.",
  ].join("\n"),
  author: "tag-wrangler",
  comments: [],
};

/** The Architect's plan for it (what the Coder receives alongside the issue). */
const PLAN: Plan = {
  summary: "Add a `dropBuild` option to coerce(): with includePrerelease, omit the build metadata when it is set.",
  files_to_change: [{ path: "functions/coerce.js", reason: "honour options.dropBuild when building the coerced version string" }],
  steps: ["In functions/coerce.js, leave the `+build` suffix out when options.dropBuild is true.", "Document the option in a comment above coerce()."],
  definition_of_done: [
    "coerce('v2.4.1-rc.3+sha.5114f85', { includePrerelease: true, dropBuild: true }) returns 2.4.1-rc.3",
    "Without dropBuild the result is unchanged",
  ],
  test_plan: ["Coerce a tag with and without dropBuild, with and without rtl."],
};

const TASK = "Implement the plan in this repository with the tools. When you are done, answer with a short summary of what you changed.";

/** The Coder's first user turn: repository context, then the issue, the plan and the task. */
function firstUserTurn(context: string): string {
  return `${context}\n\n${renderIssue(ISSUE)}\n\n<plan>\n${JSON.stringify(PLAN, null, 2)}\n</plan>\n\n${TASK}`;
}

// ---------------------------------------------------------------------------------------------
// A fake Llm that records each request as sent and answers from a script.

type ScriptedBlock = { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> };

function reply(content: ScriptedBlock[]): Message {
  return {
    id: `msg_bench_${Math.random().toString(36).slice(2)}`,
    type: "message",
    role: "assistant",
    model: MODEL,
    content: content as unknown as ContentBlock[],
    stop_reason: content.some((b) => b.type === "tool_use") ? "tool_use" : "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  } as unknown as Message;
}

class RecordingLlm implements Llm {
  readonly requests: MessageRequest[] = [];
  readonly #script: ScriptedBlock[][];
  constructor(script: ScriptedBlock[][]) {
    this.#script = script;
  }
  createMessage(request: MessageRequest): Promise<Message> {
    // A deep copy at call time: the loop reuses and later changes some of these objects.
    this.requests.push(JSON.parse(JSON.stringify(request)) as MessageRequest);
    const turn = this.#script[this.requests.length - 1];
    if (!turn) return Promise.reject(new Error(`no scripted turn ${this.requests.length}`));
    return Promise.resolve(reply(turn));
  }
}

async function recordRequests(workspace: GitWorkspace, firstTurn: string, script: ScriptedBlock[][]): Promise<MessageRequest[]> {
  const prompt = loadPrompt("coder");
  const llm = new RecordingLlm(script);
  const messages: MessageParam[] = [{ role: "user", content: firstTurn }];
  await runToolLoop({
    llm,
    agent: "coder",
    model: MODEL,
    system: prompt.text,
    messages,
    tools: createFileTools(workspace),
    maxTurns: 30,
    maxTokens: prompt.maxTokens ?? 8192,
  });
  return llm.requests;
}

// ---------------------------------------------------------------------------------------------
// Requests as cacheable segments, in the order the API caches them: tools, system, messages.

interface Segment {
  /** What must be identical for the prefix to match (cache_control left out). */
  key: string;
  tokens: number;
  /** This segment carries a `cache_control` breakpoint. */
  breakpoint: boolean;
  /** Content blocks counted for the 20-block lookback (tools and system count as blocks too). */
  block: number;
}

function withoutCacheControl(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  const { cache_control: _ignored, ...rest } = value as Record<string, unknown>;
  return rest;
}

function blockText(block: Record<string, unknown>): string {
  switch (block.type) {
    case "text":
      return String(block.text);
    case "tool_use":
      return `${String(block.name)} ${JSON.stringify(block.input)}`;
    case "tool_result":
      return typeof block.content === "string" ? block.content : JSON.stringify(block.content);
    default:
      return JSON.stringify(withoutCacheControl(block));
  }
}

function segmentsOf(request: MessageRequest): Segment[] {
  const segments: Segment[] = [];
  const push = (key: string, text: string, breakpoint: boolean) => segments.push({ key, tokens: estimateTokens(text), breakpoint, block: segments.length });
  for (const tool of request.tools ?? []) {
    const json = JSON.stringify(withoutCacheControl(tool));
    push(`tool:${json}`, json, "cache_control" in tool && tool.cache_control != null);
  }
  const system = typeof request.system === "string" ? [{ type: "text" as const, text: request.system }] : (request.system ?? []);
  for (const block of system) push(`system:${block.text}`, block.text, "cache_control" in block && block.cache_control != null);
  request.messages.forEach((message, index) => {
    const blocks = typeof message.content === "string" ? [{ type: "text", text: message.content }] : message.content;
    for (const block of blocks as unknown as Record<string, unknown>[]) {
      push(`${index}:${message.role}:${JSON.stringify(withoutCacheControl(block))}`, blockText(block), block.cache_control != null);
    }
  });
  return segments;
}

const total = (segments: readonly Segment[], upTo = segments.length - 1) => segments.slice(0, upTo + 1).reduce((s, x) => s + x.tokens, 0);

/** How one request's input splits between cache reads, cache writes and uncached input. */
interface CacheSplit {
  input: number;
  read: number;
  write: number;
  uncached: number;
}

/**
 * Anthropic's prefix-caching rule applied to request `current` after request `previous`: a
 * breakpoint of `previous` whose whole prefix (tools, system, messages up to that block) is
 * unchanged in `current`, is long enough to be cached, and lies within the lookback window of
 * a breakpoint of `current`, is read from the cache — the longest such prefix counts. Input up
 * to `current`'s last breakpoint beyond that is written to the cache; the rest is uncached.
 */
function cacheSplit(previous: Segment[] | undefined, current: Segment[]): CacheSplit {
  const input = total(current);
  let read = 0;
  if (previous) {
    const currentBreakpoints = current.filter((s) => s.breakpoint).map((s) => s.block);
    let same = 0;
    while (same < previous.length && same < current.length && previous[same]!.key === current[same]!.key) same++;
    for (const [index, segment] of previous.entries()) {
      if (!segment.breakpoint || index >= same) continue;
      const prefix = total(previous, index);
      const reachable = currentBreakpoints.some((b) => b >= index && b - index <= LOOKBACK_BLOCKS);
      if (prefix >= MIN_CACHEABLE_TOKENS && reachable) read = Math.max(read, prefix);
    }
  }
  const lastBreakpoint = current.map((s) => s.breakpoint).lastIndexOf(true);
  const cachedPrefix = lastBreakpoint >= 0 ? total(current, lastBreakpoint) : 0;
  const write = cachedPrefix >= MIN_CACHEABLE_TOKENS ? Math.max(0, cachedPrefix - read) : 0;
  return { input, read, write, uncached: input - read - write };
}

// ---------------------------------------------------------------------------------------------

let toolIds = 0;
const use = (name: string, input: Record<string, unknown>): ScriptedBlock => ({
  type: "tool_use",
  id: `toolu_bench_${String(++toolIds).padStart(2, "0")}`,
  name,
  input,
});
const say = (text: string): ScriptedBlock => ({ type: "text", text });

const OLD_BUILD_LINE = "  const build = options.includePrerelease && match[6] ? `+${match[6]}` : ''";
const NEW_BUILD_LINE = "  const build = options.includePrerelease && !options.dropBuild && match[6] ? `+${match[6]}` : ''";

/** Ten Coder turns on the fixture: nine with tool calls on real files, then the summary. */
const SESSION: ScriptedBlock[][] = [
  [say("I'll start with coerce() itself."), use("read_file", { path: "functions/coerce.js" })],
  [use("search", { pattern: "includePrerelease", glob: "**/*.js" })],
  [say("The coercion regexes live in internal/re.js."), use("read_file", { path: "internal/re.js", start_line: 150, end_line: 180 })],
  [use("read_file", { path: "internal/parse-options.js" })],
  [say("Checking how SemVer parses build metadata."), use("read_file", { path: "classes/semver.js", start_line: 1, end_line: 100 })],
  [use("edit_file", { path: "functions/coerce.js", old_text: OLD_BUILD_LINE, new_text: NEW_BUILD_LINE })],
  [use("read_file", { path: "functions/coerce.js", start_line: 50, end_line: 62 })],
  [use("search", { pattern: "dropBuild" })],
  [
    say("Documenting the option."),
    use("edit_file", {
      path: "functions/coerce.js",
      old_text: "const coerce = (version, options) => {",
      new_text:
        "// options.includePrerelease keeps the prerelease and build parts; with\n// options.dropBuild the build metadata is left out.\nconst coerce = (version, options) => {",
    }),
  ],
  [say("- `coerce()` honours a new `dropBuild` option: with `includePrerelease`, the `+build` part is left out.\n- Documented the option above `coerce()`.")],
];

const fmt = (n: number) => n.toLocaleString("en-US");
const pct = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1)} %`;

async function main(): Promise<void> {
  const root = makeTempDir("mc-bench-coder-");
  try {
    cpSync(FIXTURE_DIR, root, { recursive: true });
    gitSync(root, ["init", "--quiet", "-b", "main"]);
    gitSync(root, ["add", "--all"]);
    gitSync(root, ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "--quiet", "-m", `${FIXTURE} fixture`]);
    if (process.getuid?.() === 0) execFileSync("chown", ["-R", "65534:65534", root]); // the sandbox user's clone, as the app's are
    const workspace = new GitWorkspace(root, root, null, { sandbox: { mode: "bwrap" } });
    const files = await workspace.listFiles();

    // (a) First request: repository map against the whole source tree.
    const focus = [ISSUE.title, ISSUE.body, ...PLAN.files_to_change.map((f) => f.path)];
    const map = await buildRepoMap(workspace, { focus, tokenBudget: MAP_BUDGET });
    const tree: string[] = [];
    for (const file of files) tree.push(`<file path="${file}">\n${await readWorkspaceFile(root, file)}\n</file>`);
    const sourceChars = tree.reduce((s, t) => s + t.length, 0);
    const withMap = (await recordRequests(workspace, firstUserTurn(`<repository_map>\n${map.text}\n</repository_map>`), [[say("done")]]))[0]!;
    const withTree = (await recordRequests(workspace, firstUserTurn(`<repository>\n${tree.join("\n")}\n</repository>`), [[say("done")]]))[0]!;
    const mapTokens = total(segmentsOf(withMap));
    const treeTokens = total(segmentsOf(withTree));
    const fixedTokens = total(segmentsOf(withMap).filter((s) => s.key.startsWith("tool:") || s.key.startsWith("system:")));

    // (b) Ten turns, built by runToolLoop, with real tools on the git copy.
    const requests = await recordRequests(workspace, firstUserTurn(`<repository_map>\n${map.text}\n</repository_map>`), SESSION);
    if (requests.length !== SESSION.length) throw new Error(`expected ${SESSION.length} requests, got ${requests.length}`);
    const lastMessages = requests.at(-1)!.messages;
    const errors = lastMessages.flatMap((m) => (typeof m.content === "string" ? [] : m.content.filter((b) => b.type === "tool_result" && b.is_error === true)));
    if (errors.length > 0) throw new Error(`a scripted tool call failed: ${JSON.stringify(errors)}`);
    const diff = gitSync(root, ["diff", "--stat"]).trim();
    if (!diff.includes("functions/coerce.js")) throw new Error("the scripted edits did not change functions/coerce.js");
    const toolOutputChars = lastMessages
      .flatMap((m) => (typeof m.content === "string" ? [] : m.content))
      .reduce((s, b) => s + (b.type === "tool_result" && typeof b.content === "string" ? b.content.length : 0), 0);

    const segments = requests.map(segmentsOf);
    const splits = segments.map((current, i) => cacheSplit(i > 0 ? segments[i - 1] : undefined, current));
    const later = splits.slice(1);
    const sum = (rows: CacheSplit[], key: keyof CacheSplit) => rows.reduce((s, r) => s + r[key], 0);
    const allInput = sum(splits, "input");
    const allRead = sum(splits, "read");
    const laterInput = sum(later, "input");
    const laterRead = sum(later, "read");

    const rows = splits
      .map((r, i) => `| ${i + 1} | ${fmt(r.input)} | ${fmt(r.read)} | ${fmt(r.write)} | ${fmt(r.uncached)} | ${i === 0 ? "—" : pct(r.read, r.input)} |`)
      .join("\n");

    const report = `# Coder context benchmark

Fixture: [\`test/fixtures/${FIXTURE}\`](../test/fixtures/${FIXTURE}/README.md) — the npm package \`semver\` 7.8.6 (ISC),
${files.length} files (${files.filter((f) => f.endsWith(".js")).length} JavaScript), ${fmt(sourceChars)} characters of source, copied to a temp folder and committed as a git repository.
Issue: "${ISSUE.title}" (written for this benchmark), with a one-file plan.
Date: ${new Date().toISOString().slice(0, 10)}, Node ${process.version}. No network: the model is a scripted fake.

All figures are **estimated tokens** — \`estimateTokens\` from \`src/agents/repo-map.ts\`, \`ceil(characters / 3.5)\`,
summed over the request's tool definitions (as JSON), system prompt and content blocks — not a tokenizer's count and not
what the API bills.

## (a) The Coder's first request

Both requests are built by \`runToolLoop\` (system prompt \`prompts/coder.md\`, the file tools from \`createFileTools\`),
with the first user turn \`<context>\\n\\n<issue>…\\n\\n<plan>…\\n\\n<task>\`; only \`<context>\` differs.
Tools and system prompt together: ${fmt(fixedTokens)} tokens in both.

| first request | estimated input tokens |
|---|---|
| with the repository map (\`buildRepoMap\`, budget ${fmt(MAP_BUDGET)}, focus = issue title, body and plan paths; map: ${fmt(map.estimatedTokens)} tokens, ${map.files} paths, symbols of ${map.filesWithSymbols} files) | **${fmt(mapTokens)}** |
| with the whole source tree (every file as \`<file path>…</file>\`) | **${fmt(treeTokens)}** |
| ratio (whole tree / map) | **${(treeTokens / mapTokens).toFixed(1)} ×** |

The whole \`semver\` package fits inside the map's budget, so here the map lists every path and the symbols of every
JavaScript file; on a larger repository the map stays at its budget while the whole tree grows with the code.

## (b) Prompt-cache reads over a 10-turn Coder session

The ten requests are those \`runToolLoop\` sends (recorded by a fake \`Llm\`): nine scripted tool turns on real files of
the git copy through the real file tools — \`read_file\` ×5, \`search\` ×2, \`edit_file\` ×2 (both edits applied; no
tool call failed) — and a final text turn. Tool output in the last request: ${fmt(toolOutputChars)} characters.

Method (Anthropic's prefix caching): a request is the sequence tools → system → messages; \`runToolLoop\` puts
\`cache_control\` breakpoints on the last tool, the system prompt and the last block of the last message. For each
request *i* > 1, the cache read is the longest prefix that ended at a breakpoint of request *i − 1* and is byte-for-byte
unchanged in request *i* (blocks compared as serialized JSON without \`cache_control\`), provided it is at least
${fmt(MIN_CACHEABLE_TOKENS)} tokens (the minimum cacheable prompt for Sonnet/Opus) and within ${LOOKBACK_BLOCKS} blocks of a breakpoint
of request *i*. Input up to request *i*'s last breakpoint beyond the read is a cache write; anything after it is
uncached. The cache is assumed warm between turns (each turn well within the 5-minute TTL).

| request | input | cache read | cache write | uncached | read share |
|---|---|---|---|---|---|
${rows}
| **all 10** | **${fmt(allInput)}** | **${fmt(allRead)}** | **${fmt(sum(splits, "write"))}** | **${fmt(sum(splits, "uncached"))}** | **${pct(allRead, allInput)}** |

Share of input tokens read from the cache: **${pct(allRead, allInput)}** over all ten requests
(${pct(laterRead, laterInput)} over requests 2–10, the first request having nothing to read).
`;
    writeFileSync(new URL("./coder-context.md", import.meta.url), report);
    console.log(report);
  } finally {
    cleanupTempDirs();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
