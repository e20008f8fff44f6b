import { symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { buildRepoMap, estimateTokens, extractSymbols, scriptKindFor } from "../../src/agents/repo-map.js";
import { GitWorkspace } from "../../src/workspace/git.js";
import { giveToSandboxUser, TEST_GIT_SETTINGS } from "../helpers/git-fixtures.js";
import { cleanupTempDirs, gitSync, makeTempDir, writeTree } from "../workspace/fixtures.js";

/** A real git repository holding `files` in one commit, wrapped as the Coder's workspace. */
function repo(files: Record<string, string | Buffer>, extra?: (root: string) => void): GitWorkspace {
  const root = makeTempDir("mc-repo-map-");
  gitSync(root, ["init", "--quiet", "-b", "main"]);
  writeTree(root, files);
  extra?.(root);
  gitSync(root, ["add", "--all"]);
  gitSync(root, ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "seed"]);
  giveToSandboxUser(root);
  return new GitWorkspace(root, root, null, TEST_GIT_SETTINGS);
}

/** The paths whose symbol blocks appear in the map, in order. */
function symbolFiles(text: string): string[] {
  const section = text.split("\n## Symbols\n")[1] ?? "";
  return section.split("\n").filter((line) => line !== "" && !line.startsWith("  ") && !line.startsWith("["));
}

function pathSection(text: string): string[] {
  const afterHeading = text.split("\n## Paths\n")[1] ?? "";
  return afterHeading
    .split("\n## Symbols\n")[0]!
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("["));
}

const lastLine = (text: string): string => text.split("\n").at(-1) ?? "";

const TS_FILE = `import { readFile } from "node:fs/promises";
import type { Base } from "./base.js";

/** Logs in. */
export async function login(user: string, retries = 3): Promise<boolean> {
  return user.length > retries;
}

export class Session<T> extends Base implements Disposable {
  #token = "";
  constructor(readonly id: string, private store?: Map<string, T>) { super(); }
  refresh(force?: boolean): void {}
  static create(): Session<unknown> { return new Session("x"); }
  get expired(): boolean { return false; }
  private secret(): void {}
  protected hook(): void {}
  #hidden(): void {}
  [Symbol.dispose](): void {}
}

export interface Credentials extends Partial<Base> {
  user: string;
  token?: string;
  check(now: Date): boolean;
}

export type Role = "admin" | "user";
export enum Level { Low, High = 10 }
export const MAX_ATTEMPTS = 5;
const helper = (a: number, b: number): number => a + b;
let counter = 0;
export default function (input: string[]) { return input; }
`;

const CJS_FILE = `'use strict'
const fs = require('fs')
const { join } = require('path').posix
const VERSION = '1.2.3'

function parse (input, options = {}, ...rest) {
  return input
}

class Parser {
  constructor (options) { this.options = options }
  parse (text) { return text }
  static from (x) { return new Parser(x) }
}

var legacy = function (a, b) { return a + b }
module.exports = { parse, Parser, VERSION }
module.exports.extra = (value) => value
exports.flag = true
`;

const ESM_FILE = `export function* walk(tree, visit) {}
export const DEFAULTS = { depth: 2, follow: false };
export { walk as traverse };
export * from "./other.mjs";
`;

const TSX_FILE = `import React from "react";
interface Props { title: string }
export function App({ title }: Props) {
  return <div className="app">{title}</div>;
}
export const Small = () => <span />;
`;

afterEach(() => {
  cleanupTempDirs();
});

describe("estimateTokens", () => {
  it("is ceil(characters / 3.5)", () => {
    expect(estimateTokens("")).toBe(0);
    expect(estimateTokens("abc")).toBe(1);
    expect(estimateTokens("abcdefg")).toBe(2);
    expect(estimateTokens("abcdefgh")).toBe(3);
    expect(estimateTokens("x".repeat(3500))).toBe(1000);
  });
});

describe("scriptKindFor", () => {
  it("knows the JS/TS extensions and nothing else", () => {
    for (const file of ["a.ts", "a.tsx", "a.js", "a.jsx", "a.mjs", "a.cjs", "a.mts", "a.cts", "dir/B.TS"]) {
      expect(scriptKindFor(file), file).toBeDefined();
    }
    for (const file of ["a.py", "a.json", "README.md", "Makefile", ".ts", "a.ts.bak"]) expect(scriptKindFor(file), file).toBeUndefined();
  });
});

describe("extractSymbols", () => {
  it("extracts TypeScript functions with parameters, classes with public methods, interfaces, types, enums and consts", () => {
    const symbols = extractSymbols("src/auth.ts", TS_FILE);
    expect(symbols).toEqual([
      "export async function login(user: string, retries = 3): Promise<boolean>",
      "export class Session<T> extends Base implements Disposable { constructor(id: string, store?: Map<string, T>); refresh(); static create(); get expired; [Symbol.dispose]() }",
      "export interface Credentials extends Partial<Base> { user; token?; check() }",
      'export type Role = "admin" | "user"',
      "export enum Level { Low, High }",
      "export const MAX_ATTEMPTS = 5",
      "const helper = (a: number, b: number): number =>",
      "export default function(input: string[])",
    ]);
    // Private and protected members, #private names, imports and non-exported lets are not symbols.
    const all = symbols.join("\n");
    for (const hidden of ["secret", "hook", "#hidden", "#token", "readFile", "counter"]) expect(all).not.toContain(hidden);
  });

  it("extracts CommonJS and ES module JavaScript, leaving require() imports out", () => {
    expect(extractSymbols("lib/parse.js", CJS_FILE)).toEqual([
      "const VERSION = '1.2.3'",
      "function parse(input, options = {}, ...rest)",
      "class Parser { constructor(options); parse(); static from() }",
      "var legacy = function(a, b)",
      "module.exports = { parse, Parser, VERSION }",
      "module.exports.extra = (value) =>",
      "exports.flag = true",
    ]);
    expect(extractSymbols("lib/walk.mjs", ESM_FILE)).toEqual([
      "export function* walk(tree, visit)",
      "export const DEFAULTS = { depth, follow }",
      "export { walk as traverse };",
      'export * from "./other.mjs";',
    ]);
  });

  it("parses JSX and TSX", () => {
    expect(extractSymbols("src/App.tsx", TSX_FILE)).toEqual([
      "interface Props { title }",
      "export function App({ title }: Props)",
      "export const Small = () =>",
    ]);
    expect(extractSymbols("src/view.jsx", "export function View(props) { return <p>{props.x}</p>; }\n")).toEqual(["export function View(props)"]);
  });

  it("returns nothing for other languages", () => {
    expect(extractSymbols("tool.py", "def build(target):\n    pass\n")).toEqual([]);
  });
});

describe("buildRepoMap", () => {
  it("lists every path and the symbols of TS and JS files", async () => {
    const workspace = repo({
      "README.md": "# demo\n",
      "package.json": '{ "name": "demo" }\n',
      "src/auth.ts": TS_FILE,
      "lib/parse.js": CJS_FILE,
      "lib/walk.mjs": ESM_FILE,
    });
    const map = await buildRepoMap(workspace, { tokenBudget: 8000 });
    expect(pathSection(map.text)).toEqual(["README.md", "lib/parse.js", "lib/walk.mjs", "package.json", "src/auth.ts"]);
    expect(map.text).toContain("src/auth.ts\n  export async function login(user: string, retries = 3): Promise<boolean>\n");
    expect(map.text).toContain("  export interface Credentials extends Partial<Base> { user; token?; check() }\n");
    expect(map.text).toContain(
      "lib/parse.js\n  const VERSION = '1.2.3'\n  function parse(input, options = {}, ...rest)\n  class Parser { constructor(options); parse(); static from() }\n",
    );
    expect(map).toMatchObject({ files: 5, filesWithSymbols: 3 });
    expect(map.estimatedTokens).toBe(estimateTokens(map.text));
    expect(lastLine(map.text)).toBe("[Listed without symbols: 2 of 5 files (not JS/TS, unreadable, or over the token budget).]");
  });

  it("orders symbols by relevance: named files, then shared words, then entry points, then by depth", async () => {
    const body = (name: string) => `export function ${name}() {}\n`;
    const workspace = repo({
      "a/b/c/deep.ts": body("deep"),
      "a/shallow.ts": body("shallow"),
      "lib/billing/invoice.ts": body("invoice"),
      "lib/billing/tax-rules.ts": body("taxRules"),
      "lib/other.ts": body("other"),
      "src/zeta.ts": body("zeta"),
      "pkg/index.ts": body("index"),
      "top.js": body("top"),
    });
    const map = await buildRepoMap(workspace, {
      focus: ["Invoices are rounded wrongly when tax applies", "see `lib/other.ts`."],
      tokenBudget: 8000,
    });
    expect(symbolFiles(map.text)).toEqual([
      "lib/other.ts", // named
      "lib/billing/invoice.ts", // shares "invoice" with the focus
      "lib/billing/tax-rules.ts", // shares "tax"
      "pkg/index.ts", // entry points, shallowest first
      "src/zeta.ts",
      "top.js", // the rest by depth, then path
      "a/shallow.ts",
      "a/b/c/deep.ts",
    ]);
    expect(map.filesWithSymbols).toBe(8);
  });

  it("stays within the budget, folds directories, and says what was left out", async () => {
    const files: Record<string, string> = {};
    for (let d = 0; d < 6; d++) {
      for (let s = 0; s < 5; s++) {
        for (let f = 0; f < 10; f++) {
          files[`packages/pkg-${d}/src/module-${s}/file-number-${f}.ts`] =
            `export function handler${f}(request: Request, options: { retries: number }): Promise<Response> { return fetch(request); }\nexport const NAME_${f} = "file-${f}";\n`;
        }
      }
    }
    files["README.md"] = "# monorepo\n";
    const workspace = repo(files);
    const total = Object.keys(files).length;

    const roomy = await buildRepoMap(workspace, { tokenBudget: 8000 });
    // The whole list fits; symbols fill the rest of the budget, then stop.
    expect(roomy.estimatedTokens).toBeLessThanOrEqual(8000);
    expect(pathSection(roomy.text)).toHaveLength(total);
    expect(roomy.filesWithSymbols).toBeGreaterThan(0);
    expect(roomy.filesWithSymbols).toBeLessThan(300);
    expect(lastLine(roomy.text)).toBe(
      `[Listed without symbols: ${total - roomy.filesWithSymbols} of ${total} files (not JS/TS, unreadable, or over the token budget).]`,
    );

    const tight = await buildRepoMap(workspace, { tokenBudget: 1000, focus: ["packages/pkg-3/src/module-2/file-number-7.ts"] });
    expect(tight.estimatedTokens).toBeLessThanOrEqual(1000);
    expect(tight.estimatedTokens).toBe(estimateTokens(tight.text));
    expect(tight.text).toMatch(/^packages\/pkg-0\/src\/module-0\/ \(10 files\)$/m);
    expect(lastLine(tight.text)).toMatch(
      new RegExp(
        `^\\[Listed without symbols: ${total - tight.filesWithSymbols} of ${total} files .*; \\d+ files folded into \\d+ "dir/ \\(N files\\)" entries\\.\\]$`,
      ),
    );
    // The named file's symbols come first even though its directory is folded.
    expect(symbolFiles(tight.text)[0]).toBe("packages/pkg-3/src/module-2/file-number-7.ts");
    expect(tight.text).toContain("  export function handler7(request: Request, options: { retries: number }): Promise<Response>");

    for (const budget of [100, 200, 400, 700, 1500, 3000, 5000]) {
      const map = await buildRepoMap(workspace, { tokenBudget: budget });
      expect(map.estimatedTokens, `budget ${budget}`).toBeLessThanOrEqual(budget);
      expect(lastLine(map.text), `budget ${budget}`).toMatch(/^\[Listed without symbols: \d+ of 301 files/);
    }
    const tiny = await buildRepoMap(workspace, { tokenBudget: 120 });
    expect(pathSection(tiny.text)).toEqual(["README.md", "packages/ (300 files)"]);
    expect(tiny.estimatedTokens).toBeLessThanOrEqual(120);
  });

  it("cuts the path list, and says so, when even folded it is over the budget", async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 200; i++) files[`notes-${String(i).padStart(3, "0")}.txt`] = `note ${i}\n`;
    const map = await buildRepoMap(repo(files), { tokenBudget: 300 });
    expect(map.estimatedTokens).toBeLessThanOrEqual(300);
    const listed = pathSection(map.text);
    expect(listed[0]).toBe("notes-000.txt");
    const cut = 200 - (listed.length - 1);
    expect(listed.at(-1)).toBe(`… ${cut} more entries not listed (token budget)`);
    expect(lastLine(map.text)).toBe(`[Listed without symbols: 200 of 200 files (not JS/TS, unreadable, or over the token budget); ${cut} path entries cut.]`);
  });

  it("refuses a budget that is not a positive integer", async () => {
    const workspace = repo({ "a.ts": "export const a = 1;\n" });
    await expect(buildRepoMap(workspace, { tokenBudget: 0 })).rejects.toThrow(RangeError);
    await expect(buildRepoMap(workspace, { tokenBudget: 10.5 })).rejects.toThrow(RangeError);
  });

  it("lists binary, oversized and escaping files by path only", async () => {
    const outside = makeTempDir("mc-repo-map-outside-");
    writeFileSync(path.join(outside, "secret.ts"), "export const leakedSecret = 1;\n");
    const workspace = repo(
      {
        "src/ok.ts": "export const fine = 1;\n",
        "src/blob.js": Buffer.concat([Buffer.from("export const binaryThing = 1;\n"), Buffer.from([0, 1, 2, 3, 0])]),
        "src/huge.ts": `export const hugeThing = 1;\n/*${"x".repeat(600 * 1024)}*/\n`,
      },
      (root) => symlinkSync(path.join(outside, "secret.ts"), path.join(root, "src/link.ts")),
    );
    const map = await buildRepoMap(workspace, { tokenBudget: 4000 });
    expect(pathSection(map.text)).toEqual(["src/blob.js", "src/huge.ts", "src/link.ts", "src/ok.ts"]);
    expect(symbolFiles(map.text)).toEqual(["src/ok.ts"]);
    for (const hidden of ["binaryThing", "hugeThing", "leakedSecret"]) expect(map.text).not.toContain(hidden);
    expect(map).toMatchObject({ files: 4, filesWithSymbols: 1 });
    expect(lastLine(map.text)).toContain("Listed without symbols: 3 of 4 files");
  });

  it("lists files in other languages as paths only", async () => {
    const workspace = repo({
      "tools/build.py": "def build(target):\n    return target\n\nclass Builder:\n    pass\n",
      "cmd/main.go": "package main\n\nfunc main() {}\n",
      "docs/guide.md": "# Guide\n",
      "src/index.ts": "export function start(port: number) {}\n",
    });
    const map = await buildRepoMap(workspace, { tokenBudget: 4000, focus: ["tools/build.py", "builder"] });
    expect(pathSection(map.text)).toEqual(["cmd/main.go", "docs/guide.md", "src/index.ts", "tools/build.py"]);
    expect(symbolFiles(map.text)).toEqual(["src/index.ts"]);
    expect(map.text).not.toContain("def build");
    expect(map.text).not.toContain("Builder");
    expect(map.filesWithSymbols).toBe(1);
  });

  it("still maps a file with syntax errors", async () => {
    const workspace = repo({
      "src/broken.ts": "export function ok(a: string): string { return a; }\nexport class Broken {\n  method( {\n}\nexport const after = 1;\n",
      "src/fine.ts": "export type Id = string;\n",
    });
    const map = await buildRepoMap(workspace, { tokenBudget: 4000 });
    expect(map.text).toContain("src/broken.ts\n  export function ok(a: string): string\n");
    expect(map.text).toContain("src/fine.ts\n  export type Id = string\n");
    expect(map.filesWithSymbols).toBe(2);
  });
});
