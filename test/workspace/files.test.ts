import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { PathEscapeError, ToolInputError } from "../../src/domain/errors.js";
import {
  countOccurrences,
  DEFAULT_FILE_LIMITS,
  looksBinary,
  readWorkspaceFile,
  replaceInWorkspaceFile,
  writeWorkspaceFile,
} from "../../src/workspace/files.js";
import { listAllFiles } from "./fixtures.js";

let root: string;
let outside: string;

beforeEach(async () => {
  root = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-files-root-")));
  outside = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-files-outside-")));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

/** Every file under the root, relative and sorted. */
function filesUnderRoot(): string[] {
  return listAllFiles(root)
    .map((file) => path.relative(root, file))
    .sort();
}

describe("readWorkspaceFile", () => {
  it("returns the text of a file", async () => {
    await mkdir(path.join(root, "src"));
    await writeFile(path.join(root, "src", "a.ts"), "héllo\nworld\n");
    await expect(readWorkspaceFile(root, "src/a.ts")).resolves.toBe("héllo\nworld\n");
  });

  it("refuses a binary file (a NUL byte)", async () => {
    await writeFile(path.join(root, "image.bin"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01, 0x02]));
    const error = await readWorkspaceFile(root, "image.bin").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ToolInputError);
    expect((error as ToolInputError).code).toBe("tool_input");
    expect((error as Error).message).toMatch(/binary/);
  });

  it("refuses a file over the size limit, naming both sizes", async () => {
    await writeFile(path.join(root, "big.txt"), "x".repeat(101));
    const error = await readWorkspaceFile(root, "big.txt", { maxFileBytes: 100 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ToolInputError);
    expect((error as Error).message).toContain("101 bytes");
    expect((error as Error).message).toContain("100-byte limit");
  });

  it("reads a file exactly at the size limit", async () => {
    await writeFile(path.join(root, "edge.txt"), "y".repeat(100));
    await expect(readWorkspaceFile(root, "edge.txt", { maxFileBytes: 100 })).resolves.toHaveLength(100);
  });

  it("refuses a missing file with a ToolInputError", async () => {
    const error = await readWorkspaceFile(root, "nope.txt").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ToolInputError);
    expect((error as Error).message).toContain("nope.txt does not exist");
  });

  it("refuses a folder", async () => {
    await mkdir(path.join(root, "dir"));
    await expect(readWorkspaceFile(root, "dir")).rejects.toThrow(/not a regular file/);
  });

  it("refuses paths outside the workspace with PathEscapeError", async () => {
    await writeFile(path.join(outside, "secret.txt"), "secret");
    await symlink(path.join(outside, "secret.txt"), path.join(root, "s.txt"));
    await expect(readWorkspaceFile(root, "../x")).rejects.toBeInstanceOf(PathEscapeError);
    await expect(readWorkspaceFile(root, "s.txt")).rejects.toBeInstanceOf(PathEscapeError);
  });
});

describe("looksBinary", () => {
  it("detects NUL bytes only in the first 8 KiB", () => {
    expect(looksBinary(Buffer.from("plain text"))).toBe(false);
    expect(looksBinary(Buffer.from([0x61, 0x00, 0x62]))).toBe(true);
    expect(looksBinary(Buffer.concat([Buffer.alloc(8192, 0x61), Buffer.from([0])]))).toBe(false);
  });
});

describe("writeWorkspaceFile", () => {
  it("creates parent folders and writes the content", async () => {
    await writeWorkspaceFile(root, "a/b/c/new.txt", "content\n");
    expect(readFileSync(path.join(root, "a", "b", "c", "new.txt"), "utf8")).toBe("content\n");
  });

  it("replaces an existing file's content", async () => {
    await writeFile(path.join(root, "f.txt"), "old");
    await writeWorkspaceFile(root, "f.txt", "new");
    expect(readFileSync(path.join(root, "f.txt"), "utf8")).toBe("new");
  });

  it("leaves no temporary file behind after success", async () => {
    await writeWorkspaceFile(root, "dir/one.txt", "1");
    await writeWorkspaceFile(root, "dir/one.txt", "2");
    await writeWorkspaceFile(root, "two.txt", "3");
    expect(filesUnderRoot()).toEqual(["dir/one.txt", "two.txt"]);
    expect(readdirSync(path.join(root, "dir")).some((name) => name.endsWith(".tmp"))).toBe(false);
  });

  it("refuses content over the limit (counted in UTF-8 bytes) and writes nothing", async () => {
    const limits = { maxFileBytes: 10 };
    // 6 characters, 12 bytes.
    const error = await writeWorkspaceFile(root, "sub/big.txt", "éééééé", limits).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ToolInputError);
    expect((error as Error).message).toContain("12 bytes");
    expect(existsSync(path.join(root, "sub"))).toBe(false);
    expect(filesUnderRoot()).toEqual([]);
  });

  it("does not change an existing file when the new content is over the limit", async () => {
    await writeFile(path.join(root, "keep.txt"), "original");
    await expect(writeWorkspaceFile(root, "keep.txt", "x".repeat(11), { maxFileBytes: 10 })).rejects.toBeInstanceOf(ToolInputError);
    expect(readFileSync(path.join(root, "keep.txt"), "utf8")).toBe("original");
  });

  it("refuses to overwrite a folder", async () => {
    await mkdir(path.join(root, "folder"));
    await expect(writeWorkspaceFile(root, "folder", "x")).rejects.toThrow(/not a regular file/);
  });

  it("creates nothing outside the root for `../` paths", async () => {
    const name = `escape-${path.basename(root)}`;
    await expect(writeWorkspaceFile(root, `../${name}/x.txt`, "pwned")).rejects.toBeInstanceOf(PathEscapeError);
    expect(existsSync(path.join(path.dirname(root), name))).toBe(false);
  });

  it("creates nothing outside the root through a symlinked folder, even for new nested folders", async () => {
    await symlink(outside, path.join(root, "out"));
    await expect(writeWorkspaceFile(root, "out/x.txt", "pwned")).rejects.toBeInstanceOf(PathEscapeError);
    await expect(writeWorkspaceFile(root, "out/new/dir/x.txt", "pwned")).rejects.toBeInstanceOf(PathEscapeError);
    expect(readdirSync(outside)).toEqual([]);
  });

  it("does not follow a symlinked file that points outside", async () => {
    await writeFile(path.join(outside, "target.txt"), "untouched");
    await symlink(path.join(outside, "target.txt"), path.join(root, "t.txt"));
    await expect(writeWorkspaceFile(root, "t.txt", "pwned")).rejects.toBeInstanceOf(PathEscapeError);
    expect(readFileSync(path.join(outside, "target.txt"), "utf8")).toBe("untouched");
  });

  it("refuses to write under .git/", async () => {
    await expect(writeWorkspaceFile(root, ".git/hooks/pre-commit", "#!/bin/sh")).rejects.toBeInstanceOf(PathEscapeError);
    expect(existsSync(path.join(root, ".git"))).toBe(false);
  });

  it("uses a 512 KiB default limit", () => {
    expect(DEFAULT_FILE_LIMITS.maxFileBytes).toBe(512 * 1024);
  });
});

describe("replaceInWorkspaceFile", () => {
  beforeEach(async () => {
    await writeFile(path.join(root, "code.ts"), "const a = 1;\nconst b = 2;\nconst a2 = 1;\n");
  });

  it("replaces the only occurrence", async () => {
    await replaceInWorkspaceFile(root, "code.ts", "const b = 2;", "const b = 3;");
    expect(readFileSync(path.join(root, "code.ts"), "utf8")).toBe("const a = 1;\nconst b = 3;\nconst a2 = 1;\n");
  });

  it("inserts the new text literally (no `$&` replacement patterns)", async () => {
    await replaceInWorkspaceFile(root, "code.ts", "const b = 2;", "const b = '$&$1$$';");
    expect(readFileSync(path.join(root, "code.ts"), "utf8")).toContain("const b = '$&$1$$';");
  });

  it("reports 0 matches and leaves the file alone", async () => {
    const error = await replaceInWorkspaceFile(root, "code.ts", "const c", "x").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ToolInputError);
    expect((error as Error).message).toContain("0 times");
    expect(readFileSync(path.join(root, "code.ts"), "utf8")).toBe("const a = 1;\nconst b = 2;\nconst a2 = 1;\n");
  });

  it("reports 2 matches and leaves the file unchanged", async () => {
    const error = await replaceInWorkspaceFile(root, "code.ts", " = 1;", " = 9;").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ToolInputError);
    expect((error as Error).message).toContain("2 times");
    expect(readFileSync(path.join(root, "code.ts"), "utf8")).toBe("const a = 1;\nconst b = 2;\nconst a2 = 1;\n");
  });

  it("refuses an empty old_text", async () => {
    await expect(replaceInWorkspaceFile(root, "code.ts", "", "x")).rejects.toThrow(/must not be empty/);
  });

  it("refuses a missing file", async () => {
    await expect(replaceInWorkspaceFile(root, "missing.ts", "a", "b")).rejects.toBeInstanceOf(ToolInputError);
  });

  it("refuses when the result would exceed the limit, leaving the file unchanged", async () => {
    const before = readFileSync(path.join(root, "code.ts"), "utf8");
    await expect(replaceInWorkspaceFile(root, "code.ts", "const b = 2;", "x".repeat(100), { maxFileBytes: before.length + 10 })).rejects.toBeInstanceOf(
      ToolInputError,
    );
    expect(readFileSync(path.join(root, "code.ts"), "utf8")).toBe(before);
  });
});

describe("countOccurrences", () => {
  it("counts non-overlapping occurrences", () => {
    expect(countOccurrences("abcabcabc", "abc")).toBe(3);
    expect(countOccurrences("aaaa", "aa")).toBe(2);
    expect(countOccurrences("aaa", "aa")).toBe(1);
    expect(countOccurrences("hello", "x")).toBe(0);
    expect(countOccurrences("", "x")).toBe(0);
  });

  it("returns 0 for an empty needle", () => {
    expect(countOccurrences("anything", "")).toBe(0);
  });
});
