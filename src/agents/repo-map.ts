/**
 * A repository map for an agent's first prompt: every path (folded into `dir/ (N files)` entries
 * when the list alone is too long), then the top-level symbols of the most relevant JavaScript
 * and TypeScript files, all within a token budget. It replaces pasting whole files: the agent
 * sees the shape of the code and reads what it needs with its file tools.
 */
import ts from "typescript";

import { escapeUntrustedName, promptSafe, type PromptSafeText } from "../prompt/index.js";
import { readWorkspaceFile } from "../workspace/files.js";
import type { WorkspaceIndex } from "./tools.js";

/**
 * Characters per token assumed by {@link estimateTokens}. English prose averages about 4
 * characters per token and code about 3–3.5, so 3.5 errs on the side of over-counting code.
 */
const CHARS_PER_TOKEN = 3.5;

/**
 * A conservative token estimate without a tokenizer: `Math.ceil(text.length / 3.5)`
 * (UTF-16 code units). Good enough for budgeting a prompt; not what the API bills.
 */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

/** Options of {@link buildRepoMap}. */
export interface RepoMapOptions {
  /**
   * What makes files relevant: paths (`src/auth/login.ts`, `login.ts`, `src/auth/`) or free
   * text (the issue's title and body, the plan's steps). Path-like tokens inside free text are
   * recognised too.
   */
  focus?: string[];
  /** Upper bound of the map's {@link estimateTokens} estimate; a positive integer. */
  tokenBudget: number;
}

/** A rendered repository map. */
export interface RepoMap {
  /** The map; file names and symbols are escaped (`escapeUntrustedName`), so it can go into a prompt as it is. */
  text: PromptSafeText;
  /** Files in the repository (what `listFiles()` returned). */
  files: number;
  /** Files whose top-level symbols are in the map. */
  filesWithSymbols: number;
  /** `estimateTokens(text)`; never above the budget. */
  estimatedTokens: number;
}

/** Bounds on the work and output of one map. */
const LIMITS = {
  /** JS/TS files read and parsed at most per map, however large the budget. */
  maxParsedFiles: 400,
  /** Symbol lines per file; the rest is counted in a `… N more` line. */
  maxSymbolsPerFile: 40,
  /** Longest symbol line, in characters. */
  maxLineChars: 240,
  /** Longest type annotation or heritage clause kept inside a line. */
  maxTypeChars: 60,
  /** Characters kept for the last line, whatever its numbers. */
  footerReserve: 220,
  /** Share of the budget the symbols of `focus`-named files may claim before the path list. */
  focusShare: 0.5,
} as const;

const SCRIPT_KINDS: Readonly<Record<string, ts.ScriptKind>> = {
  ".ts": ts.ScriptKind.TS,
  ".mts": ts.ScriptKind.TS,
  ".cts": ts.ScriptKind.TS,
  ".tsx": ts.ScriptKind.TSX,
  ".js": ts.ScriptKind.JS,
  ".mjs": ts.ScriptKind.JS,
  ".cjs": ts.ScriptKind.JS,
  ".jsx": ts.ScriptKind.JSX,
};

function extensionOf(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

/**
 * The TypeScript script kind for a JS/TS path (`.ts .tsx .js .jsx .mjs .cjs .mts .cts`), or
 * `undefined` for any other file: those appear in the map as paths only.
 */
export function scriptKindFor(path: string): ts.ScriptKind | undefined {
  return SCRIPT_KINDS[extensionOf(path)];
}

// ---------------------------------------------------------------------------------------------
// Symbols

function clip(text: string, max: number): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function modifierKinds(node: ts.Node): Set<ts.SyntaxKind> {
  const modifiers = ts.canHaveModifiers(node) ? ts.getModifiers(node) : undefined;
  return new Set((modifiers ?? []).map((m) => m.kind));
}

function prefix(node: ts.Node): string {
  const kinds = modifierKinds(node);
  let out = "";
  if (kinds.has(ts.SyntaxKind.ExportKeyword)) out += "export ";
  if (kinds.has(ts.SyntaxKind.DefaultKeyword)) out += "default ";
  if (kinds.has(ts.SyntaxKind.DeclareKeyword)) out += "declare ";
  if (kinds.has(ts.SyntaxKind.AbstractKeyword)) out += "abstract ";
  return out;
}

function typeParameters(sf: ts.SourceFile, params: ts.NodeArray<ts.TypeParameterDeclaration> | undefined): string {
  return params && params.length > 0 ? `<${clip(params.map((p) => p.getText(sf)).join(", "), LIMITS.maxTypeChars)}>` : "";
}

function parameterList(sf: ts.SourceFile, params: ts.NodeArray<ts.ParameterDeclaration>): string {
  const rendered = params.map((p) => {
    let out = `${p.dotDotDotToken ? "..." : ""}${clip(p.name.getText(sf), 40)}${p.questionToken ? "?" : ""}`;
    if (p.type) out += `: ${clip(p.type.getText(sf), LIMITS.maxTypeChars)}`;
    if (p.initializer) {
      const value = clip(p.initializer.getText(sf), 40);
      out += ` = ${value.length <= 16 ? value : "…"}`;
    }
    return out;
  });
  return `(${rendered.join(", ")})`;
}

function returnType(sf: ts.SourceFile, type: ts.TypeNode | undefined): string {
  return type ? `: ${clip(type.getText(sf), LIMITS.maxTypeChars)}` : "";
}

type FunctionLike = ts.FunctionDeclaration | ts.FunctionExpression | ts.ArrowFunction;

function isAsync(node: ts.Node): boolean {
  return modifierKinds(node).has(ts.SyntaxKind.AsyncKeyword);
}

function signature(sf: ts.SourceFile, fn: FunctionLike): string {
  return `${typeParameters(sf, fn.typeParameters)}${parameterList(sf, fn.parameters)}${returnType(sf, fn.type)}`;
}

/** `functionName(params)` for a function expression or arrow function used as a value. */
function functionValue(sf: ts.SourceFile, fn: ts.FunctionExpression | ts.ArrowFunction): string {
  const async = isAsync(fn) ? "async " : "";
  if (ts.isArrowFunction(fn)) return `${async}${signature(sf, fn)} =>`;
  return `${async}function${fn.asteriskToken ? "*" : ""}${signature(sf, fn)}`;
}

function isPublicMember(member: ts.ClassElement): boolean {
  if (member.name && ts.isPrivateIdentifier(member.name)) return false;
  const kinds = modifierKinds(member);
  return !kinds.has(ts.SyntaxKind.PrivateKeyword) && !kinds.has(ts.SyntaxKind.ProtectedKeyword);
}

function classLine(sf: ts.SourceFile, node: ts.ClassDeclaration | ts.ClassExpression, head: string): string {
  const heritage = (node.heritageClauses ?? []).map((h) => clip(h.getText(sf), LIMITS.maxTypeChars)).join(" ");
  const members: string[] = [];
  for (const member of node.members) {
    if (!isPublicMember(member)) continue;
    const isStatic = modifierKinds(member).has(ts.SyntaxKind.StaticKeyword) ? "static " : "";
    if (ts.isConstructorDeclaration(member)) {
      members.push(`constructor${parameterList(sf, member.parameters)}`);
    } else if (ts.isMethodDeclaration(member)) {
      members.push(`${isStatic}${member.name.getText(sf)}()`);
    } else if (ts.isGetAccessorDeclaration(member)) {
      members.push(`${isStatic}get ${member.name.getText(sf)}`);
    } else if (ts.isSetAccessorDeclaration(member)) {
      members.push(`${isStatic}set ${member.name.getText(sf)}`);
    }
  }
  const unique = [...new Set(members)];
  return `${head}${typeParameters(sf, node.typeParameters)}${heritage ? ` ${heritage}` : ""}${unique.length > 0 ? ` { ${unique.join("; ")} }` : ""}`;
}

function interfaceLine(sf: ts.SourceFile, node: ts.InterfaceDeclaration): string {
  const heritage = (node.heritageClauses ?? []).map((h) => clip(h.getText(sf), LIMITS.maxTypeChars)).join(" ");
  const members = node.members.flatMap((m) => {
    if (!m.name) return [];
    const name = `${m.name.getText(sf)}${m.questionToken ? "?" : ""}`;
    return [ts.isMethodSignature(m) ? `${name}()` : name];
  });
  const body = members.length > 0 ? ` { ${[...new Set(members)].join("; ")} }` : "";
  return `${prefix(node)}interface ${node.name.text}${typeParameters(sf, node.typeParameters)}${heritage ? ` ${heritage}` : ""}${body}`;
}

/** `true` for `require("x")`, `require("x").y`, `require("x")(…)`: imports, not symbols. */
function isRequire(expression: ts.Expression): boolean {
  let current: ts.Expression = expression;
  for (;;) {
    if (ts.isCallExpression(current)) {
      if (ts.isIdentifier(current.expression) && current.expression.text === "require") return true;
      current = current.expression;
    } else if (ts.isPropertyAccessExpression(current) || ts.isElementAccessExpression(current)) {
      current = current.expression;
    } else if (ts.isParenthesizedExpression(current) || ts.isAwaitExpression(current)) {
      current = current.expression;
    } else {
      return false;
    }
  }
}

/** How a value assigned to a name reads in the map: a signature, a class, a short literal, or nothing. */
function valueText(sf: ts.SourceFile, value: ts.Expression): string {
  if (ts.isArrowFunction(value) || ts.isFunctionExpression(value)) return ` = ${functionValue(sf, value)}`;
  if (ts.isClassExpression(value)) return ` = ${classLine(sf, value, "class")}`;
  if (ts.isObjectLiteralExpression(value)) {
    const keys = value.properties.flatMap((p) => (p.name ? [p.name.getText(sf)] : ts.isSpreadAssignment(p) ? [`...${p.expression.getText(sf)}`] : []));
    return keys.length > 0 ? ` = { ${keys.join(", ")} }` : " = {}";
  }
  const literal = clip(value.getText(sf), 60);
  return literal.length <= 40 ? ` = ${literal}` : "";
}

function variableLines(sf: ts.SourceFile, node: ts.VariableStatement): string[] {
  const flags = node.declarationList.flags;
  const keyword = flags & ts.NodeFlags.Const ? "const" : flags & ts.NodeFlags.Let ? "let" : flags & ts.NodeFlags.Using ? "using" : "var";
  const exported = modifierKinds(node).has(ts.SyntaxKind.ExportKeyword);
  const lines: string[] = [];
  for (const declaration of node.declarationList.declarations) {
    const init = declaration.initializer;
    if (init && isRequire(init)) continue;
    const functionLike = init !== undefined && (ts.isArrowFunction(init) || ts.isFunctionExpression(init) || ts.isClassExpression(init));
    if (keyword !== "const" && !exported && !functionLike) continue;
    const type = declaration.type ? `: ${clip(declaration.type.getText(sf), LIMITS.maxTypeChars)}` : "";
    lines.push(`${prefix(node)}${keyword} ${clip(declaration.name.getText(sf), 60)}${type}${init ? valueText(sf, init) : ""}`);
  }
  return lines;
}

/** `module.exports = …`, `module.exports.x = …` and `exports.x = …` (CommonJS exports). */
function commonJsExportLine(sf: ts.SourceFile, node: ts.ExpressionStatement): string | undefined {
  const expression = node.expression;
  if (!ts.isBinaryExpression(expression) || expression.operatorToken.kind !== ts.SyntaxKind.EqualsToken) return undefined;
  const isNamed = (node: ts.Expression, name: string) => ts.isIdentifier(node) && node.text === name;
  const isModuleExports = (node: ts.Expression) => ts.isPropertyAccessExpression(node) && isNamed(node.expression, "module") && node.name.text === "exports";
  const left = expression.left;
  let target: string;
  if (isModuleExports(left)) {
    target = "module.exports";
  } else if (ts.isPropertyAccessExpression(left) && ts.isIdentifier(left.name) && isNamed(left.expression, "exports")) {
    target = `exports.${left.name.text}`;
  } else if (ts.isPropertyAccessExpression(left) && ts.isIdentifier(left.name) && isModuleExports(left.expression)) {
    target = `module.exports.${left.name.text}`;
  } else {
    return undefined;
  }
  const value = expression.right;
  if (ts.isIdentifier(value)) return `${target} = ${value.text}`;
  if (isRequire(value)) return `${target} = ${clip(value.getText(sf), 60)}`;
  return `${target}${valueText(sf, value)}`;
}

function statementLines(sf: ts.SourceFile, node: ts.Statement): string[] {
  if (ts.isFunctionDeclaration(node)) {
    const name = node.name?.text ?? "";
    const async = isAsync(node) ? "async " : "";
    return [`${prefix(node)}${async}function${node.asteriskToken ? "*" : ""}${name ? ` ${name}` : ""}${signature(sf, node)}`];
  }
  if (ts.isClassDeclaration(node)) return [classLine(sf, node, `${prefix(node)}class${node.name ? ` ${node.name.text}` : ""}`)];
  if (ts.isInterfaceDeclaration(node)) return [interfaceLine(sf, node)];
  if (ts.isTypeAliasDeclaration(node)) {
    return [`${prefix(node)}type ${node.name.text}${typeParameters(sf, node.typeParameters)} = ${clip(node.type.getText(sf), 100)}`];
  }
  if (ts.isEnumDeclaration(node)) {
    const isConst = modifierKinds(node).has(ts.SyntaxKind.ConstKeyword) ? "const " : "";
    return [`${prefix(node)}${isConst}enum ${node.name.text} { ${node.members.map((m) => m.name.getText(sf)).join(", ")} }`];
  }
  if (ts.isVariableStatement(node)) return variableLines(sf, node);
  if (ts.isModuleDeclaration(node)) {
    const keyword = ts.isStringLiteral(node.name) ? "module" : "namespace";
    return [`${prefix(node)}${keyword} ${node.name.getText(sf)}`];
  }
  if (ts.isExportAssignment(node)) return [`export ${node.isExportEquals ? "= " : "default "}${clip(node.expression.getText(sf), 60)}`];
  if (ts.isExportDeclaration(node)) return [clip(node.getText(sf), 120)];
  if (ts.isExpressionStatement(node)) {
    const line = commonJsExportLine(sf, node);
    return line ? [line] : [];
  }
  return [];
}

/**
 * The top-level symbols of one JS/TS file, one line each: functions with their parameter
 * lists (`export async function login(user: string, retries = 3): Promise<boolean>`), classes
 * with their public methods, interfaces with their members, type aliases, enums, top-level
 * `const`s (plus exported or function-valued `let`/`var`), `export … from` lines and CommonJS
 * `module.exports`/`exports.x` assignments. `require()` imports are left out.
 *
 * Parsed with the TypeScript compiler API, which is error-tolerant: a file with syntax errors
 * still yields the declarations the parser recovered.
 *
 * @returns an empty list for a path that is not JS/TS (see {@link scriptKindFor})
 */
export function extractSymbols(path: string, text: string): string[] {
  const kind = scriptKindFor(path);
  if (kind === undefined) return [];
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, false, kind);
  const lines = sf.statements.flatMap((statement) => statementLines(sf, statement)).map((line) => clip(line, LIMITS.maxLineChars));
  return [...new Set(lines)];
}

// ---------------------------------------------------------------------------------------------
// Relevance

const STOP_WORDS = new Set(
  (
    "the and for with that this from into onto when then than should would could will must can " +
    "not are was were been being has have had does did doesn don isn its our your you they them " +
    "all any some more most only also just like such via per each every other new use used uses " +
    "using get set make makes need needs want wants see add fix bug issue please instead which what " +
    "where there here return returns file files code src lib dist index main test tests spec " +
    "json yaml yml txt js jsx ts tsx mjs cjs mts cts"
  ).split(" "),
);

/** Lower-case words of a path or a text: camelCase and separators split, short and common words dropped. */
function wordsOf(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length >= 3 && !STOP_WORDS.has(w))
    .map((w) => (w.length > 4 && w.endsWith("s") && !w.endsWith("ss") ? w.slice(0, -1) : w));
}

/** Path-like tokens in the focus entries: `src/a.ts`, `./a.ts`, `a.ts`, `src/auth/`. */
function namedPaths(focus: readonly string[]): string[] {
  const out = new Set<string>();
  for (const entry of focus) {
    for (const raw of entry.split(/\s+/)) {
      const token = raw
        .replace(/^[`'"(<[{*]+|[`'")>\]},.:;!?*]+$/g, "")
        .replace(/^\.\//, "")
        .replace(/^\/+/, "");
      if (token.length < 3 || token.includes("://") || token.includes("..")) continue;
      if (token.includes("/") || /\.[A-Za-z][A-Za-z0-9]*$/.test(token)) out.add(token);
    }
  }
  return [...out];
}

function withoutExtension(path: string): string {
  const ext = extensionOf(path);
  return ext ? path.slice(0, -ext.length) : path;
}

interface Ranked {
  path: string;
  /** 0 named in focus, 1 shares words with focus, 2 entry point, 3 the rest. */
  tier: number;
  score: number;
  depth: number;
}

function rankFiles(files: readonly string[], focus: readonly string[]): Ranked[] {
  const named = namedPaths(focus);
  const focusWords = new Set(focus.flatMap(wordsOf));
  const ranked = files.map((path): Ranked => {
    const depth = path.split("/").length - 1;
    const bare = withoutExtension(path);
    const isNamed = named.some((n) => !n.endsWith("/") && (path === n || path.endsWith(`/${n}`) || bare === n || bare.endsWith(`/${n}`)));
    if (isNamed) return { path, tier: 0, score: 0, depth };
    let score = 0;
    for (const n of named) {
      const dir = n.replace(/\/+$/, "");
      if (path.startsWith(`${dir}/`) || path.includes(`/${dir}/`)) score += 5;
    }
    const name = path.slice(path.lastIndexOf("/") + 1);
    const dirWords = new Set(wordsOf(path.slice(0, path.length - name.length)));
    for (const w of new Set(wordsOf(name))) if (focusWords.has(w)) score += 2;
    for (const w of dirWords) if (focusWords.has(w)) score += 1;
    if (score > 0) return { path, tier: 1, score, depth };
    const entry = /^(index|main)\.[^.]+$/i.test(name) || /^src\/[^/]+$/.test(path);
    return { path, tier: entry ? 2 : 3, score: 0, depth };
  });
  return ranked.sort((a, b) => a.tier - b.tier || b.score - a.score || a.depth - b.depth || a.path.localeCompare(b.path));
}

// ---------------------------------------------------------------------------------------------
// Path list

interface PathList {
  lines: string[];
  chars: number;
  /** Files shown inside a `dir/ (N files)` entry instead of by name. */
  folded: number;
  foldedDirs: number;
  /** Entries cut because even the folded list was over its budget. */
  omitted: number;
}

const linesChars = (lines: readonly string[]): number => lines.reduce((sum, line) => sum + line.length + 1, 0);

/**
 * All paths, one a line, if they fit in `maxChars`; otherwise the deepest directories are
 * folded into `dir/ (N files)` entries first (the largest first at each depth, directories
 * holding `protectedFiles` last) until the list fits; if even the top-level folders are too
 * many, the list is cut and says so.
 */
function pathList(files: readonly string[], maxChars: number, protectedFiles: ReadonlySet<string>): PathList {
  const sorted = [...files].sort();
  const full = linesChars(sorted);
  if (full <= maxChars) return { lines: sorted, chars: full, folded: 0, foldedDirs: 0, omitted: 0 };

  const parentOf = (path: string): string => path.slice(0, Math.max(0, path.lastIndexOf("/")));
  const cost = new Map<string, number>();
  const count = new Map<string, number>();
  const guarded = new Set<string>();
  for (const file of sorted) {
    for (let dir = parentOf(file); dir !== ""; dir = parentOf(dir)) {
      cost.set(dir, (cost.get(dir) ?? 0) + file.length + 1);
      count.set(dir, (count.get(dir) ?? 0) + 1);
      if (protectedFiles.has(file)) guarded.add(dir);
    }
  }
  const folded = new Set<string>();
  const foldedLine = (dir: string) => `${dir}/ (${count.get(dir) ?? 0} files)`;
  let total = full;
  const byDepth = new Map<number, string[]>();
  for (const dir of cost.keys()) {
    const depth = dir.split("/").length;
    byDepth.set(depth, [...(byDepth.get(depth) ?? []), dir]);
  }
  const depths = [...byDepth.keys()].sort((a, b) => b - a);
  fold: for (const depth of depths) {
    const dirs = (byDepth.get(depth) ?? []).sort(
      (a, b) => Number(guarded.has(a)) - Number(guarded.has(b)) || (cost.get(b) ?? 0) - (cost.get(a) ?? 0) || a.localeCompare(b),
    );
    for (const dir of dirs) {
      if (total <= maxChars) break fold;
      const before = cost.get(dir) ?? 0;
      const after = foldedLine(dir).length + 1;
      if (after >= before) continue;
      folded.add(dir);
      const delta = before - after;
      total -= delta;
      cost.set(dir, after);
      for (let up = parentOf(dir); up !== ""; up = parentOf(up)) cost.set(up, (cost.get(up) ?? 0) - delta);
    }
  }

  const lines: string[] = [];
  let foldedFiles = 0;
  let lastFolded = "";
  let shownFolded = 0;
  for (const file of sorted) {
    let top = "";
    for (let dir = parentOf(file); dir !== ""; dir = parentOf(dir)) if (folded.has(dir)) top = dir;
    if (top === "") {
      lines.push(file);
      continue;
    }
    foldedFiles++;
    if (top !== lastFolded) {
      lines.push(foldedLine(top));
      shownFolded++;
    }
    lastFolded = top;
  }
  let chars = linesChars(lines);
  let omitted = 0;
  if (chars > maxChars) {
    // Still too long: keep what fits and say how many entries were cut.
    const kept: string[] = [];
    let used = 0;
    const note = (n: number) => `… ${n} more entries not listed (token budget)`;
    for (const [i, line] of lines.entries()) {
      const rest = lines.length - i - 1;
      const reserve = rest > 0 ? note(lines.length).length + 1 : 0;
      if (used + line.length + 1 + reserve > maxChars) break;
      kept.push(line);
      used += line.length + 1;
    }
    omitted = lines.length - kept.length;
    if (omitted > 0) {
      const last = note(omitted);
      if (used + last.length + 1 <= maxChars) kept.push(last);
    }
    lines.splice(0, lines.length, ...kept);
    chars = linesChars(lines);
  }
  return { lines, chars, folded: foldedFiles, foldedDirs: shownFolded, omitted };
}

// ---------------------------------------------------------------------------------------------
// The map

async function symbolsOf(workspace: WorkspaceIndex, path: string): Promise<string[] | undefined> {
  let text: string;
  try {
    // Confined to the clone; refuses binary and oversized files (those stay paths only).
    text = await readWorkspaceFile(workspace.root, path);
  } catch {
    return undefined;
  }
  try {
    // Symbols are the repository's text: a declaration named `</repository_map>` stays data.
    return extractSymbols(path, text).map(escapeUntrustedName);
  } catch {
    return undefined;
  }
}

/**
 * The file's block: its path (escaped here), then its symbols (already escaped) indented, cut
 * to `maxChars` (or `undefined` if not even one symbol fits).
 */
function symbolBlock(rawPath: string, symbols: readonly string[], maxChars: number): string[] | undefined {
  const path = escapeUntrustedName(rawPath);
  const capped = symbols.slice(0, LIMITS.maxSymbolsPerFile);
  const lines = [path, ...capped.map((s) => `  ${s}`)];
  const moreLine = (n: number) => `  … ${n} more top-level symbols`;
  if (symbols.length > capped.length) lines.push(moreLine(symbols.length - capped.length));
  if (linesChars(lines) <= maxChars) return lines;
  // Keep the first symbols that fit, and say how many were left out.
  for (let keep = capped.length - 1; keep >= 1; keep--) {
    const partial = [path, ...capped.slice(0, keep).map((s) => `  ${s}`), moreLine(symbols.length - keep)];
    if (linesChars(partial) <= maxChars) return partial;
  }
  return undefined;
}

/**
 * Builds a repository map within `tokenBudget` (as counted by {@link estimateTokens}).
 *
 * Layout: a heading; the path of every file (`listFiles()`, sorted); the top-level symbols of
 * the most relevant JS/TS files (see {@link extractSymbols}); and a last line saying how many
 * files are listed without symbols, and how many were folded or cut.
 *
 * Relevance, best first: files named in `focus`; files whose path shares words with `focus`
 * (file-name words count double); entry points (`index.*`, `main.*`, files directly in
 * `src/`); then the rest, shallowest first.
 *
 * Budget: the symbols of `focus`-named files may reserve up to half of it; the path list takes
 * what it needs of the rest — when the whole list does not fit, directories are folded into
 * `dir/ (N files)` entries, deepest first — and symbols of further files fill what is left,
 * in relevance order, a file's symbols cut with a `… N more` line when only some fit.
 *
 * Only JS/TS files (`.ts .tsx .js .jsx .mjs .cjs .mts .cts`) get symbols; files in other
 * languages are listed by path only. Files are read with `readWorkspaceFile`, so paths stay
 * inside the clone; binary, oversized (over 512 KiB) and unreadable files are skipped (listed
 * by path only). At most 400 files are parsed per map.
 *
 * Paths and symbols come from the repository, so each is escaped with `escapeUntrustedName`
 * (tag look-alikes, secrets, invisible characters, line breaks) before it is counted against
 * the budget; the map's text can go into a prompt as it is.
 *
 * @throws {RangeError} when `tokenBudget` is not a positive integer
 */
export async function buildRepoMap(workspace: WorkspaceIndex, options: RepoMapOptions): Promise<RepoMap> {
  const { tokenBudget } = options;
  if (!Number.isInteger(tokenBudget) || tokenBudget < 1) throw new RangeError(`tokenBudget must be a positive integer, got ${tokenBudget}`);
  const budgetChars = Math.floor(tokenBudget * CHARS_PER_TOKEN);
  const files = await workspace.listFiles();
  const ranked = rankFiles(files, options.focus ?? []).filter((r) => scriptKindFor(r.path) !== undefined);

  const heading = `Repository map: ${files.length} files. Paths first, then top-level symbols of the most relevant JS/TS files (bodies omitted; read a file for the rest).`;
  const pathsHeading = "## Paths";
  const symbolsHeading = "## Symbols";
  const fixed = linesChars([heading, pathsHeading, symbolsHeading]) + LIMITS.footerReserve;
  const available = Math.max(0, budgetChars - fixed);

  // Symbols of the files named in focus: parsed first, and their room reserved before the path list.
  const parsed = new Map<string, string[] | undefined>();
  let parsedCount = 0;
  const parse = async (path: string): Promise<string[] | undefined> => {
    if (!parsed.has(path)) {
      parsedCount++;
      parsed.set(path, await symbolsOf(workspace, path));
    }
    return parsed.get(path);
  };
  let focusChars = 0;
  for (const r of ranked) {
    if (r.tier !== 0 || parsedCount >= LIMITS.maxParsedFiles) break;
    const symbols = await parse(r.path);
    if (symbols && symbols.length > 0) focusChars += linesChars(symbolBlock(r.path, symbols, Number.POSITIVE_INFINITY) ?? []);
  }
  const reserve = Math.min(focusChars, Math.floor(available * LIMITS.focusShare));
  const protectedFiles = new Set(ranked.filter((r) => r.tier <= 1).map((r) => r.path));
  const list = pathList(files.map(escapeUntrustedName), available - reserve, new Set([...protectedFiles].map(escapeUntrustedName)));

  let remaining = available - list.chars;
  const blocks: string[] = [];
  let filesWithSymbols = 0;
  for (const r of ranked) {
    if (remaining < 40) break;
    if (!parsed.has(r.path) && parsedCount >= LIMITS.maxParsedFiles) break;
    const symbols = await parse(r.path);
    if (!symbols || symbols.length === 0) continue;
    const block = symbolBlock(r.path, symbols, remaining);
    if (!block) continue;
    blocks.push(...block);
    remaining -= linesChars(block);
    filesWithSymbols++;
  }

  const notes = [`Listed without symbols: ${files.length - filesWithSymbols} of ${files.length} files (not JS/TS, unreadable, or over the token budget)`];
  if (list.folded > 0) notes.push(`${list.folded} files folded into ${list.foldedDirs} "dir/ (N files)" entries`);
  if (list.omitted > 0) notes.push(`${list.omitted} path entries cut`);
  const footer = `[${notes.join("; ")}.]`;
  const lines = [heading, pathsHeading, ...list.lines, ...(blocks.length > 0 ? [symbolsHeading, ...blocks] : []), footer];
  let text = lines.join("\n");
  if (text.length > budgetChars) {
    // Only for budgets too small for the heading and last line themselves.
    text = `${text.slice(0, Math.max(0, budgetChars - footer.length - 1))}\n${footer}`.slice(-budgetChars);
  }
  return { text: promptSafe(text), files: files.length, filesWithSymbols, estimatedTokens: estimateTokens(text) };
}
