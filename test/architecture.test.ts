import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";

const SRC = path.resolve(import.meta.dirname, "../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(path.join(dir, entry.name)) : entry.name.endsWith(".ts") ? [path.join(dir, entry.name)] : [],
  );
}

interface Import {
  specifier: string;
  typeOnly: boolean;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/^\s*(import|export)(\s+type)?\s[^;]*?from\s+"([^"]+)"/gms)].map((m) => ({ specifier: m[3] ?? "", typeOnly: Boolean(m[2]) }));
}

/**
 * The folder a file belongs to in the dependency rule: `adapters/github/inbound`,
 * `adapters/github/outbound` and `adapters/anthropic` are folders of their own; a file at the
 * root of `src/` (only `main.ts`) is its own.
 */
function folderOf(rel: string): string {
  const parts = rel.split(path.sep);
  if (parts[0] === "adapters") return parts.slice(0, parts[1] === "github" ? 3 : 2).join("/");
  return parts.length === 1 ? (parts[0] ?? "").replace(/\.ts$/, "") : (parts[0] ?? "");
}

const files = sourceFiles(SRC).map((file) => {
  const rel = path.relative(SRC, file);
  const imports = importsOf(file);
  const local = imports.filter((i) => i.specifier.startsWith(".")).map((i) => path.relative(SRC, path.resolve(path.dirname(file), i.specifier)));
  return { rel, folder: folderOf(rel), imports, local, text: readFileSync(file, "utf8") };
});
const packages = (f: (typeof files)[number]) => f.imports.filter((i) => !i.specifier.startsWith("."));

/**
 * The allowed direction of dependencies between folders (besides a folder's own files). The
 * composition root (`app/`) may import anything; everything else points down, towards `domain/`,
 * which imports nothing of ours.
 */
const ALLOWED: Record<string, readonly string[]> = {
  main: ["app", "config", "store"],
  cli: ["config", "store"],
  app: [
    "adapters/anthropic",
    "adapters/github/inbound",
    "adapters/github/outbound",
    "adapters/notify",
    "agents",
    "config",
    "domain",
    "pipeline",
    "ports",
    "store",
    "worker",
    "workspace",
  ],
  "adapters/github/inbound": ["config", "domain", "store"],
  "adapters/github/outbound": ["domain", "ports"],
  "adapters/anthropic": ["config", "domain", "ports", "store"],
  "adapters/notify": ["config", "domain", "ports"],
  pipeline: ["agents", "config", "domain", "ports", "prompt", "render", "store", "worker", "workspace"],
  worker: ["domain", "store"],
  agents: ["domain", "ports", "prompt", "workspace"],
  render: ["domain", "ports"],
  prompt: ["domain"],
  store: ["domain"],
  workspace: ["domain"],
  ports: ["config", "domain"],
  config: ["domain"],
  domain: [],
};

function folderGraph(): Map<string, Map<string, string[]>> {
  const graph = new Map<string, Map<string, string[]>>();
  for (const f of files) {
    for (const target of f.local) {
      const to = folderOf(target);
      if (to === f.folder) continue;
      const edges = graph.get(f.folder) ?? new Map<string, string[]>();
      edges.set(to, [...(edges.get(to) ?? []), f.rel]);
      graph.set(f.folder, edges);
    }
  }
  return graph;
}

describe("dependency direction", () => {
  it("every folder is known to the rule", () => {
    expect([...new Set(files.map((f) => f.folder))].filter((folder) => !(folder in ALLOWED))).toEqual([]);
  });

  it("folders import only the folders the rule allows", () => {
    const offenders: string[] = [];
    for (const [from, edges] of folderGraph()) {
      for (const [to, by] of edges) if (!(ALLOWED[from] ?? []).includes(to)) offenders.push(`${from} → ${to} (${[...new Set(by)].join(", ")})`);
    }
    expect(offenders).toEqual([]);
  });

  it("the folder graph has no cycle", () => {
    const graph = folderGraph();
    const state = new Map<string, "visiting" | "done">();
    const cycles: string[] = [];
    const visit = (node: string, trail: string[]): void => {
      if (state.get(node) === "done") return;
      if (state.get(node) === "visiting") {
        cycles.push([...trail.slice(trail.indexOf(node)), node].join(" → "));
        return;
      }
      state.set(node, "visiting");
      for (const next of graph.get(node)?.keys() ?? []) visit(next, [...trail, node]);
      state.set(node, "done");
    };
    for (const node of graph.keys()) visit(node, []);
    expect(cycles).toEqual([]);
  });

  it("the webhook adapter imports no pipeline code (it records and enqueues), and agents import no GitHub adapter", () => {
    const offenders = files.flatMap((f) =>
      f.local
        .filter(
          (target) =>
            (f.folder === "adapters/github/inbound" && target.startsWith("pipeline")) ||
            (f.folder === "agents" && target.startsWith(`adapters${path.sep}github`)),
        )
        .map((target) => `${f.rel} → ${target}`),
    );
    expect(offenders).toEqual([]);
  });

  it("agents never import probot, Octokit, simple-git, better-sqlite3 or kysely", () => {
    const offenders = files
      .filter((f) => f.folder === "agents")
      .flatMap((f) =>
        packages(f)
          .filter((i) => /^(probot|@octokit\/|simple-git|better-sqlite3|kysely)/.test(i.specifier))
          .map((i) => `${f.rel} → ${i.specifier}`),
      );
    expect(offenders).toEqual([]);
  });

  it("no file in src/agents calls a GitHub write method: agents return results, stages write", () => {
    const writes =
      /\.(createComment|updateComment|ensureComment|addLabels|removeLabel|ensureLabel|createPullRequest|createReview|ensureCheckRun|updateCheckRun|addReaction|mergePullRequest)\(/;
    const offenders = files.filter((f) => f.folder === "agents" && writes.test(f.text)).map((f) => f.rel);
    expect(offenders).toEqual([]);
  });

  it("domain/ has no I/O: it imports only zod and its own files", () => {
    const offenders = files
      .filter((f) => f.folder === "domain")
      .flatMap((f) =>
        [
          ...packages(f)
            .filter((i) => i.specifier !== "zod")
            .map((i) => i.specifier),
          ...f.local.filter((t) => folderOf(t) !== "domain"),
        ].map((i) => `${f.rel} → ${i}`),
      );
    expect(offenders).toEqual([]);
  });
});

describe("one gateway per heavy dependency", () => {
  it.each([
    ["@anthropic-ai/sdk", "adapters/anthropic/client.ts"],
    ["simple-git", "workspace/git.ts"],
    ["better-sqlite3", "store/db.ts"],
    ["pg", "store/postgres.ts"],
    ["pg-boss", "store/pg-queue.ts"],
  ])("%s is imported at run time by %s only", (dependency, gateway) => {
    const importers = files
      .filter((f) => packages(f).some((i) => !i.typeOnly && (i.specifier === dependency || i.specifier.startsWith(`${dependency}/`))))
      .map((f) => f.rel);
    expect(importers).toEqual([gateway]);
  });

  it("the PostgreSQL modules (pg, pg-boss) load only in the PostgreSQL mode: by dynamic import, from the store's opener and the migration command", () => {
    const gateways = [path.join("store", "postgres.js"), path.join("store", "pg-queue.js")];
    const staticImporters = files.filter((f) => f.local.some((target) => gateways.includes(target))).map((f) => f.rel);
    expect(staticImporters).toEqual([]);
    const dynamic = /\bimport\(\s*"[^"]*\/(postgres|pg-queue)\.js"\s*\)/;
    const dynamicImporters = files.filter((f) => dynamic.test(f.text)).map((f) => f.rel);
    expect(dynamicImporters.sort()).toEqual(["cli.ts", path.join("store", "open-store.ts")].sort());
  });

  it("the Anthropic SDK's message types are borrowed (type-only) by ports/llm.ts alone", () => {
    const importers = files.filter((f) => packages(f).some((i) => i.typeOnly && i.specifier.startsWith("@anthropic-ai/sdk"))).map((f) => f.rel);
    expect(importers).toEqual(["ports/llm.ts"]);
  });

  it("only src/store/ imports kysely, writes SQL or opens a transaction (others call inTransaction)", () => {
    const importers = files.filter((f) => packages(f).some((i) => i.specifier === "kysely")).map((f) => f.rel);
    expect(importers.filter((rel) => !rel.startsWith(`store${path.sep}`))).toEqual([]);
    const sql = /\.(selectFrom|insertInto|updateTable|deleteFrom|transaction)\(|\bsql`/;
    expect(files.filter((f) => f.folder !== "store" && sql.test(f.text)).map((f) => f.rel)).toEqual([]);
  });

  it("the store knows nothing about GitHub, the pipeline or the agents", () => {
    const offenders = files
      .filter((f) => f.folder === "store")
      .flatMap((f) => f.imports.filter((i) => /probot|@octokit|adapters|pipeline|agents/.test(i.specifier)).map((i) => `${f.rel} → ${i.specifier}`));
    expect(offenders).toEqual([]);
  });
});
