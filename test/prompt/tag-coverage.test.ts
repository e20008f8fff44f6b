import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

import ts from "typescript";
import { describe, expect, it } from "vitest";

import { PROMPT_TAGS } from "../../src/prompt/index.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
/** Where prompts are built: the agents, and the prompt module itself. */
const SOURCE_DIRS = ["src/agents", "src/prompt"];
const PROMPTS_DIR = "prompts";

/**
 * A tag as the prompts write it: `<name`, `</name`, followed by `>`, `/` or whitespace
 * (attributes); an opening one not directly after an identifier. Only lowercase snake_case names count,
 * and in TypeScript only inside string and template literals (read with the compiler's own
 * parser, not a regular expression over the file). That is how every prompt tag is written
 * (`<repository_map>`, `</test_output>`), while TypeScript generics are excluded twice: they
 * are types, not literals, and even when quoted they follow an identifier (`Promise<void>`).
 * Comments (`/code <instructions>` in TSDoc) are not literals either. The alternative, an
 * allowlist of non-tags, would need updating for every new generic and would fail far from
 * the cause.
 */
const TAG = /(?:(?<![\w$])<|<\/)([a-z][a-z0-9_]*)(?=[\s>/])/g;

function tagsIn(text: string): string[] {
  return [...text.matchAll(TAG)].map((m) => m[1] ?? "");
}

/** Every string and template-literal fragment of TypeScript source text. */
function literalsOf(text: string): string[] {
  const source = ts.createSourceFile("source.ts", text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteralLike(node) || ts.isTemplateHead(node) || ts.isTemplateMiddle(node) || ts.isTemplateTail(node)) out.push(node.text);
    node.forEachChild(visit);
  };
  visit(source);
  return out;
}

function filesIn(dir: string, ext: string): string[] {
  return readdirSync(path.join(ROOT, dir))
    .filter((name) => name.endsWith(ext))
    .map((name) => path.join(ROOT, dir, name));
}

/** tag → where it is used. */
function collectTags(): Map<string, Set<string>> {
  const used = new Map<string, Set<string>>();
  const add = (tag: string, where: string) => used.set(tag, (used.get(tag) ?? new Set()).add(path.relative(ROOT, where)));
  for (const dir of SOURCE_DIRS) {
    for (const file of filesIn(dir, ".ts")) for (const literal of literalsOf(readFileSync(file, "utf8"))) for (const tag of tagsIn(literal)) add(tag, file);
  }
  for (const file of filesIn(PROMPTS_DIR, ".md")) for (const tag of tagsIn(readFileSync(file, "utf8"))) add(tag, file);
  return used;
}

describe("prompt tag coverage", () => {
  const used = collectTags();

  it("finds the tags the prompts are known to use (the collector works)", () => {
    for (const tag of [
      "issue",
      "comment",
      "maintainer_notes",
      "repository",
      "file_tree",
      "file",
      "repository_map",
      "plan",
      "feedback",
      "pull_request",
      "patch",
      "other_files",
      "diff",
      "test_output",
    ]) {
      expect(used.has(tag), `<${tag}> not found in src/agents or prompts/`).toBe(true);
    }
  });

  it("every tag used in a prompt builder or a system prompt is in PROMPT_TAGS, so untrusted text cannot imitate it", () => {
    const known = new Set<string>(PROMPT_TAGS);
    const missing = [...used].filter(([tag]) => !known.has(tag)).map(([tag, where]) => `<${tag}> (${[...where].join(", ")})`);
    expect(missing, "add these to PROMPT_TAGS in src/prompt/escape-untrusted.ts").toEqual([]);
  });

  it("ignores generics and other type syntax", () => {
    expect(tagsIn("Promise<void> Array<string> Map<string, number> Set<issue_ref> a<b>")).toEqual([]);
    expect(tagsIn('<issue>x</issue> `<plan>` <file path="a"/>')).toEqual(["issue", "issue", "plan", "file"]);
  });

  it("finds a tag in a string or template literal, not in a type or a comment", () => {
    const source = [
      "/** Renders `/code <instructions>` as <notes_in_comment>. */",
      "async function f(x: Map<string, Array<number>>): Promise<void> {",
      '  const a = `<new_tag path="${x}">\n${x}\n</new_tag>`;',
      '  const b = "<other_tag>" + x + "</other_tag>";',
      "}",
    ].join("\n");
    expect(literalsOf(source).flatMap(tagsIn)).toEqual(["new_tag", "new_tag", "other_tag", "other_tag"]);
  });
});
