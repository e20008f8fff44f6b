import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";

const SRC = path.resolve(import.meta.dirname, "../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(path.join(dir, entry.name)) : entry.name.endsWith(".ts") ? [path.join(dir, entry.name)] : [],
  );
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1] ?? "");
}

const files = sourceFiles(SRC).map((file) => ({ rel: path.relative(SRC, file), imports: importsOf(file) }));

describe("dependency direction", () => {
  it("agents never import probot, Octokit, simple-git or better-sqlite3", () => {
    const offenders = files
      .filter((f) => f.rel.startsWith("agents/"))
      .flatMap((f) => f.imports.filter((i) => /^(probot|@octokit\/|simple-git|better-sqlite3|kysely)/.test(i)).map((i) => `${f.rel} → ${i}`));
    expect(offenders).toEqual([]);
  });

  it.each([
    ["@anthropic-ai/sdk", "llm/client.ts"],
    ["simple-git", "workspace/git.ts"],
    ["better-sqlite3", "ledger/db.ts"],
  ])("%s is imported by %s only", (dependency, gateway) => {
    const importers = files.filter((f) => f.imports.some((i) => i === dependency || i.startsWith(`${dependency}/`))).map((f) => f.rel);
    expect(importers).toEqual([gateway]);
  });

  it("the ledger knows nothing about GitHub or the agents", () => {
    const offenders = files
      .filter((f) => f.rel.startsWith("ledger/"))
      .flatMap((f) => f.imports.filter((i) => /probot|@octokit|\/github\/|\/agents\//.test(i)).map((i) => `${f.rel} → ${i}`));
    expect(offenders).toEqual([]);
  });
});
