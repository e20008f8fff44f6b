import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { createFileTools } from "../../src/agents/tools.js";
import type { AgentTool } from "../../src/agents/loop.js";
import { PathEscapeError, ToolInputError } from "../../src/domain/errors.js";
import { cloneRepository, GitWorkspace } from "../../src/workspace/git.js";
import { TEST_GIT_SETTINGS } from "../helpers/git-fixtures.js";
import { cleanupTempDirs, createSeededBareRepo, makeTempDir } from "../workspace/fixtures.js";

const SEED_FILES = {
  ".gitignore": "*.log\ndist/\n",
  "README.md": "# Demo project\n",
  "package.json": '{ "name": "demo" }\n',
  "src/index.ts": 'import { login } from "./auth/login.js";\nexport { login };\n',
  "src/auth/login.ts": "export function login(user: string) {\n  // TODO: validate\n  return user.length > 0;\n}\n",
  "src/auth/login.css": ".login { color: red; }\n",
  "docs/guide.md": "Login guide: call login(user).\n",
  "lines.txt": Array.from({ length: 10 }, (_, i) => `line ${i + 1}`).join("\n"),
};

let base: string;
let outside: string;
let workspace: GitWorkspace;
let tools: AgentTool<any>[];

beforeEach(async () => {
  base = makeTempDir("mc-tools-");
  outside = makeTempDir("mc-tools-outside-");
  const bare = createSeededBareRepo(base, SEED_FILES);
  const clone = await cloneRepository({ cloneUrl: bare, dir: path.join(base, "clone"), token: null, branch: "main", settings: TEST_GIT_SETTINGS });
  workspace = new GitWorkspace(clone.root, bare, null, TEST_GIT_SETTINGS);
  tools = createFileTools(workspace);
});

afterEach(() => {
  cleanupTempDirs();
});

function tool(name: string): AgentTool<any> {
  const found = tools.find((t) => t.name === name);
  if (!found) throw new Error(`no tool ${name}`);
  return found;
}

/** Validates `input` with the tool's schema (as the loop does) and runs the tool. */
async function call(name: string, input: unknown): Promise<string> {
  const t = tool(name);
  return t.run(t.input.parse(input));
}

describe("createFileTools", () => {
  it("offers exactly the six file tools, none terminal", () => {
    expect(tools.map((t) => t.name)).toEqual(["list_files", "read_file", "search", "write_file", "edit_file", "delete_file"]);
    expect(tools.every((t) => !t.terminal)).toBe(true);
  });

  describe("list_files", () => {
    it("filters with a glob such as src/**/*.ts", async () => {
      await writeFile(path.join(workspace.root, "src", "debug.log"), "ignored\n");
      await writeFile(path.join(workspace.root, "src", "new.ts"), "export {};\n");
      const out = await call("list_files", { glob: "src/**/*.ts" });
      expect(out.split("\n")).toEqual(["src/auth/login.ts", "src/index.ts", "src/new.ts"]);
    });

    it("lists every not-ignored file without a glob", async () => {
      await mkdir(path.join(workspace.root, "dist"));
      await writeFile(path.join(workspace.root, "dist", "out.js"), "built\n");
      const out = await call("list_files", {});
      expect(out.split("\n")).toEqual([
        ".gitignore",
        "README.md",
        "docs/guide.md",
        "lines.txt",
        "package.json",
        "src/auth/login.css",
        "src/auth/login.ts",
        "src/index.ts",
      ]);
    });

    it("says so when nothing matches", async () => {
      await expect(call("list_files", { glob: "**/*.py" })).resolves.toBe("No files match.");
    });
  });

  describe("read_file", () => {
    it("returns numbered lines", async () => {
      await expect(call("read_file", { path: "src/index.ts" })).resolves.toMatch(
        /^ {4}1\timport \{ login \} from "\.\/auth\/login\.js";\n {4}2\texport \{ login \};/,
      );
    });

    it("honours start_line and end_line and says which lines were not shown", async () => {
      const out = await call("read_file", { path: "lines.txt", start_line: 3, end_line: 5 });
      const [shown, note] = [out.split("\n").slice(0, 3), out.split("\n").slice(3)];
      expect(shown).toEqual(["    3\tline 3", "    4\tline 4", "    5\tline 5"]);
      expect(note.join("\n")).toContain("lines 6-10 not shown");
    });

    it("reads to the end from start_line alone, with no note", async () => {
      const out = await call("read_file", { path: "lines.txt", start_line: 9 });
      expect(out).toBe("    9\tline 9\n   10\tline 10");
    });

    it("refuses end_line before start_line", async () => {
      await expect(call("read_file", { path: "lines.txt", start_line: 5, end_line: 4 })).rejects.toBeInstanceOf(ToolInputError);
    });

    it("says when a file is empty", async () => {
      await writeFile(path.join(workspace.root, "empty.txt"), "");
      await expect(call("read_file", { path: "empty.txt" })).resolves.toBe("(empty file)");
    });

    it("rejects invalid input in its schema (line 0, empty path)", () => {
      expect(tool("read_file").input.safeParse({ path: "a", start_line: 0 }).success).toBe(false);
      expect(tool("read_file").input.safeParse({ path: "" }).success).toBe(false);
      expect(tool("read_file").input.safeParse({ path: "a", start_line: 1.5 }).success).toBe(false);
    });
  });

  describe("search", () => {
    it("returns path:line:text", async () => {
      await expect(call("search", { pattern: "TODO" })).resolves.toBe("src/auth/login.ts:2:  // TODO: validate");
    });

    it("limits the search with a glob and honours ignore_case", async () => {
      const all = await call("search", { pattern: "login", ignore_case: true });
      expect(all.split("\n")).toContain("docs/guide.md:1:Login guide: call login(user).");
      const onlyTs = await call("search", { pattern: "login", ignore_case: true, glob: "src/**/*.ts" });
      expect(onlyTs.split("\n").every((line) => /^src\/.*\.ts:\d+:/.test(line))).toBe(true);
      expect(onlyTs).toContain("src/auth/login.ts:1:export function login(user: string) {");
      expect(onlyTs).not.toContain("login.css");
      expect(onlyTs).not.toContain("docs/");
    });

    it("says so when nothing matches", async () => {
      await expect(call("search", { pattern: "no_such_identifier_xyz" })).resolves.toBe("No matches.");
    });
  });

  describe("write_file and edit_file", () => {
    it("round-trips a written file through read_file", async () => {
      const out = await call("write_file", { path: "src/feature/new.ts", content: "export const x = 'é';\n" });
      expect(out).toBe("Wrote src/feature/new.ts (23 bytes).");
      await expect(call("read_file", { path: "src/feature/new.ts" })).resolves.toBe("    1\texport const x = 'é';\n    2\t");
      expect(await workspace.listFiles()).toContain("src/feature/new.ts");
    });

    it("edit_file replaces a unique match", async () => {
      await expect(call("edit_file", { path: "src/auth/login.ts", old_text: "  // TODO: validate\n", new_text: "" })).resolves.toBe(
        "Edited src/auth/login.ts.",
      );
      expect(readFileSync(path.join(workspace.root, "src/auth/login.ts"), "utf8")).toBe(
        "export function login(user: string) {\n  return user.length > 0;\n}\n",
      );
    });

    it("edit_file refuses an ambiguous match and leaves the file unchanged", async () => {
      const before = readFileSync(path.join(workspace.root, "src/index.ts"), "utf8");
      const error = await call("edit_file", { path: "src/index.ts", old_text: "{ login }", new_text: "{ signIn }" }).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(ToolInputError);
      expect((error as Error).message).toContain("2 times");
      expect(readFileSync(path.join(workspace.root, "src/index.ts"), "utf8")).toBe(before);
    });

    it("edit_file's schema refuses an empty old_text", () => {
      expect(tool("edit_file").input.safeParse({ path: "a", old_text: "", new_text: "b" }).success).toBe(false);
    });
  });

  describe("confinement", () => {
    it("refuses `../x` for every path-taking tool, and writes nothing beside the clone", async () => {
      const before = readdirSync(base).sort();
      await expect(call("read_file", { path: "../x" })).rejects.toBeInstanceOf(PathEscapeError);
      await expect(call("write_file", { path: "../x", content: "pwned" })).rejects.toBeInstanceOf(PathEscapeError);
      await expect(call("edit_file", { path: "../origin.git/config", old_text: "a", new_text: "b" })).rejects.toBeInstanceOf(PathEscapeError);
      expect(existsSync(path.join(base, "x"))).toBe(false);
      expect(readdirSync(base).sort()).toEqual(before);
    });

    it("refuses an absolute path such as /tmp/x", async () => {
      const target = path.join(os.tmpdir(), `mc-escape-${randomBytes(6).toString("hex")}.txt`);
      await expect(call("write_file", { path: target, content: "pwned" })).rejects.toBeInstanceOf(PathEscapeError);
      await expect(call("read_file", { path: "/etc/hostname" })).rejects.toBeInstanceOf(PathEscapeError);
      expect(existsSync(target)).toBe(false);
    });

    it("refuses .git/config for reading, writing and editing", async () => {
      const config = readFileSync(path.join(workspace.root, ".git", "config"), "utf8");
      await expect(call("read_file", { path: ".git/config" })).rejects.toBeInstanceOf(PathEscapeError);
      await expect(call("write_file", { path: ".git/config", content: "[core]\n" })).rejects.toBeInstanceOf(PathEscapeError);
      await expect(call("write_file", { path: ".git/hooks/pre-commit", content: "#!/bin/sh\n" })).rejects.toBeInstanceOf(PathEscapeError);
      await expect(call("edit_file", { path: ".git/config", old_text: "[core]", new_text: "[x]" })).rejects.toBeInstanceOf(PathEscapeError);
      expect(readFileSync(path.join(workspace.root, ".git", "config"), "utf8")).toBe(config);
      expect(existsSync(path.join(workspace.root, ".git", "hooks", "pre-commit"))).toBe(false);
    });

    it("refuses to read or write through a symlink that leads outside", async () => {
      await writeFile(path.join(outside, "secret.txt"), "secret\n");
      await symlink(outside, path.join(workspace.root, "out"));
      await symlink(path.join(outside, "secret.txt"), path.join(workspace.root, "secret.txt"));

      await expect(call("read_file", { path: "secret.txt" })).rejects.toBeInstanceOf(PathEscapeError);
      await expect(call("read_file", { path: "out/secret.txt" })).rejects.toBeInstanceOf(PathEscapeError);
      await expect(call("write_file", { path: "out/evil.txt", content: "pwned" })).rejects.toBeInstanceOf(PathEscapeError);
      await expect(call("write_file", { path: "secret.txt", content: "pwned" })).rejects.toBeInstanceOf(PathEscapeError);
      await expect(call("edit_file", { path: "secret.txt", old_text: "secret", new_text: "pwned" })).rejects.toBeInstanceOf(PathEscapeError);

      expect(readdirSync(outside)).toEqual(["secret.txt"]);
      expect(readFileSync(path.join(outside, "secret.txt"), "utf8")).toBe("secret\n");
    });
  });
});
