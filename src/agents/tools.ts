import { posix } from "node:path";

import picomatch from "picomatch";
import { z } from "zod";

import { ToolInputError } from "../domain/errors.js";
import { escapeCommandOutput, escapeUntrustedCode, escapeUntrustedName } from "../prompt/index.js";
import { deleteWorkspaceFile, readWorkspaceFile, replaceInWorkspaceFile, writeWorkspaceFile } from "../workspace/files.js";
import type { AgentTool } from "./loop.js";

/** What the file tools need from a clone: its root and a .gitignore-aware file index. */
export interface WorkspaceIndex {
  readonly root: string;
  /** Tracked plus untracked, not-ignored files, `/`-separated, sorted. */
  listFiles(): Promise<string[]>;
  /** `path:line:text` matches of an extended regular expression. */
  grep(pattern: string, options?: { ignoreCase?: boolean; pathspec?: string }): Promise<string[]>;
}

const RelativePath = z.string().min(1).max(1024).describe("Path relative to the repository root, `/`-separated");

/** Appended to a `read_file` result whose text had to be escaped, so the model does not copy the escaped forms into an edit. */
const ESCAPED_NOTE =
  "[Some text above is shown escaped for safety: `&lt;` stands for a `<` before a tag name these prompts use, `[U+XXXX]` for an invisible or control character, `[REDACTED]` for a secret. The file itself holds the original characters; do not write the escaped forms into files.]";

/** Lines shown by one `read_file` call when no range is given. */
const DEFAULT_READ_LINES = 400;

function numbered(content: string, start: number, end: number | undefined): string {
  const lines = content.split("\n");
  const last = Math.min(end ?? start + DEFAULT_READ_LINES - 1, lines.length);
  const body = lines
    .slice(start - 1, last)
    .map((line, i) => `${String(start + i).padStart(5)}\t${line}`)
    .join("\n");
  const more = last < lines.length ? `\n[lines ${last + 1}-${lines.length} not shown; pass start_line/end_line to read them]` : "";
  return `${body}${more}`;
}

/**
 * A matcher for protected-path globs that normalises the path first (`a/../b`, `./b`, `b//c`
 * all become `b`, `b/c`), so a spelling cannot slip past it.
 */
export function protectedMatcher(globs: readonly string[]): (path: string) => boolean {
  if (globs.length === 0) return () => false;
  const match = picomatch([...globs], { dot: true });
  return (path) => match(posix.normalize(path.replace(/\\/g, "/")).replace(/^(\.\/)+/, ""));
}

/** Options of {@link createFileTools}. */
export interface FileToolOptions {
  /** Globs (repo config `protected_paths`) that may not be changed… */
  protectedPaths?: readonly string[];
  /** …unless a maintainer approved this issue/PR with /approve. */
  protectedPathsApproved?: boolean;
  /**
   * Runs one of the repository's own commands (tests, lint, build) in the sandbox and returns
   * a summary with exit code and log tail. Absent: no `run_command` tool is offered.
   */
  runCommand?: (command: string) => Promise<string>;
}

/**
 * The Coder's tools, each confined to the workspace: list_files, read_file, search,
 * write_file, edit_file, delete_file and (when given a runner) run_command.
 *
 * What a tool returns from the repository or a command is untrusted and goes back to the model
 * escaped by `src/prompt/`: file names with `escapeUntrustedName`, file contents and search
 * hits with `escapeUntrustedCode` (secrets redacted, tag look-alikes and invisible characters
 * escaped, lines kept), command output with `escapeCommandOutput`. Refusals (a path
 * outside the clone, `.git/`, a protected path, a binary or oversized file, an ambiguous
 * edit) throw {@link ToolInputError} or `PathEscapeError`, which the loop returns to the
 * model as an `is_error` tool_result.
 */
export function createFileTools(workspace: WorkspaceIndex, options: FileToolOptions = {}): AgentTool[] {
  const isProtected = protectedMatcher(options.protectedPaths ?? []);
  const guardWrite = (path: string) => {
    if (!options.protectedPathsApproved && isProtected(path)) {
      throw new ToolInputError(
        `${path} is a protected path (repository config protected_paths); it cannot be changed until a maintainer approves this issue with /approve`,
      );
    }
  };

  const listFiles: AgentTool<{ glob?: string | undefined }> = {
    name: "list_files",
    description: "List files in the repository (honours .gitignore). Optionally filter with a glob such as `src/**/*.ts`.",
    input: z.object({ glob: z.string().max(256).optional() }),
    async run({ glob }) {
      const files = await workspace.listFiles();
      const isMatch = glob ? picomatch(glob, { dot: true }) : undefined;
      const matches = isMatch ? files.filter((file) => isMatch(file)) : files;
      return matches.length > 0 ? matches.map(escapeUntrustedName).join("\n") : "No files match.";
    },
  };

  const readFile: AgentTool<{ path: string; start_line?: number | undefined; end_line?: number | undefined }> = {
    name: "read_file",
    description: "Read a text file with numbered lines. Use start_line/end_line (1-based, inclusive) for long files.",
    input: z.object({
      path: RelativePath,
      start_line: z.number().int().min(1).optional(),
      end_line: z.number().int().min(1).optional(),
    }),
    async run({ path, start_line, end_line }) {
      if (start_line !== undefined && end_line !== undefined && end_line < start_line) {
        throw new ToolInputError("end_line must not be before start_line");
      }
      const content = await readWorkspaceFile(workspace.root, path);
      if (content === "") return "(empty file)";
      // Escaped before numbering: the escaping keeps every line, so the numbers stay those of the file.
      const shown = numbered(escapeUntrustedCode(content), start_line ?? 1, end_line);
      return shown === numbered(content, start_line ?? 1, end_line) ? shown : `${shown}\n${ESCAPED_NOTE}`;
    },
  };

  const search: AgentTool<{ pattern: string; glob?: string | undefined; ignore_case?: boolean | undefined }> = {
    name: "search",
    description: "Search file contents with an extended regular expression (honours .gitignore). Returns path:line:text.",
    input: z.object({
      pattern: z.string().min(1).max(500),
      glob: z.string().max(256).optional().describe("Limit the search to paths matching this glob"),
      ignore_case: z.boolean().optional(),
    }),
    async run({ pattern, glob, ignore_case }) {
      const lines = await workspace.grep(pattern, {
        ignoreCase: ignore_case ?? false,
        ...(glob ? { pathspec: `:(glob)${glob}` } : {}),
      });
      // `path:line:` prefixes are kept on every line of a redacted multi-line secret.
      return lines.length > 0 ? escapeUntrustedCode(lines.join("\n"), { linePrefix: /^[^:\n]*:\d+:/ }) : "No matches.";
    },
  };

  const writeFile: AgentTool<{ path: string; content: string }> = {
    name: "write_file",
    description: "Create a file or replace its whole content. Prefer edit_file for changes to existing files.",
    input: z.object({ path: RelativePath, content: z.string() }),
    async run({ path, content }) {
      guardWrite(path);
      await writeWorkspaceFile(workspace.root, path, content);
      return `Wrote ${path} (${Buffer.byteLength(content, "utf8")} bytes).`;
    },
  };

  const editFile: AgentTool<{ path: string; old_text: string; new_text: string }> = {
    name: "edit_file",
    description:
      "Replace old_text with new_text in a file. old_text must match the file exactly once, including whitespace; include surrounding lines to make it unique.",
    input: z.object({ path: RelativePath, old_text: z.string().min(1), new_text: z.string() }),
    async run({ path, old_text, new_text }) {
      guardWrite(path);
      await replaceInWorkspaceFile(workspace.root, path, old_text, new_text);
      return `Edited ${path}.`;
    },
  };

  const deleteFile: AgentTool<{ path: string }> = {
    name: "delete_file",
    description: "Delete a file from the repository.",
    input: z.object({ path: RelativePath }),
    async run({ path }) {
      guardWrite(path);
      await deleteWorkspaceFile(workspace.root, path);
      return `Deleted ${path}.`;
    },
  };

  const tools: AgentTool[] = [listFiles, readFile, search, writeFile, editFile, deleteFile];
  const runCommand = options.runCommand;
  if (runCommand) {
    tools.push({
      name: "run_command",
      description:
        "Run one of the repository's own commands (tests, lint, build) from the repository root, in a sandbox without network access. Returns the exit code and the end of the output.",
      input: z.object({ command: z.string().min(1).max(1000) }),
      // The output is the repository's (its tests print what they like): redacted and escaped before the model sees it.
      run: async ({ command }: { command: string }) => escapeCommandOutput(await runCommand(command)),
    });
  }
  return tools;
}
