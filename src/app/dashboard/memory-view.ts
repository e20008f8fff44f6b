/**
 * The dashboard's "Repository memory" view (issue 14): one repository's learnings (what writers
 * asked the app to remember with `/learn`), newest first, a page at a time, for the repositories
 * the viewer may see. Read-only: a learning is forgotten on GitHub with `/forget <id>`.
 *
 * Served by `handler.ts` as `GET /dashboard/memory` (HTML, through `pages.ts`'s `memoryPage`) and
 * `GET /dashboard/api/memory.json` (the same {@link MemoryView}).
 */
import { z } from "zod";

import { EVERYTHING, type DashboardScope } from "../../store/dashboard.js";
import type { Db } from "../../store/db.js";
import { listLearnings, repositoryKey } from "../../store/memory.js";
import { html, type SafeHtml } from "./html.js";
import { dimensionsOf } from "./views.js";

/** Learnings per page unless the query asks otherwise. */
export const MEMORY_PAGE_ROWS = 25;

/** The most learnings one page shows (the store's own cap). */
const MAX_PAGE_ROWS = 100;

/**
 * The memory view's query string (`?repository=owner/repo&page=2&per_page=25`). An invalid value
 * falls back to the default rather than failing the page.
 */
export const MemoryQuery = z.object({
  repository: z
    .string()
    .regex(/^[\w.-]+\/[\w.-]+$/)
    .max(200)
    .optional()
    .catch(undefined),
  page: z.coerce.number().int().min(1).max(1_000_000).catch(1),
  per_page: z.coerce.number().int().min(1).max(MAX_PAGE_ROWS).catch(MEMORY_PAGE_ROWS),
});
export type MemoryQuery = z.infer<typeof MemoryQuery>;

/** The memory filter of a query string (empty values count as unset). */
export function memoryQueryOf(params: URLSearchParams): MemoryQuery {
  const raw: Record<string, string> = {};
  for (const [key, value] of params) if (value !== "") raw[key] = value;
  return MemoryQuery.parse(raw);
}

/** One learning, ready to show. */
export interface MemoryRow {
  /** The id `/forget <id>` takes. */
  id: number;
  /** As stored: untrusted text, escaped wherever it is shown. */
  text: string;
  /** GitHub login of the writer who added it. */
  author: string;
  /** Epoch ms. */
  createdAt: number;
  /** The comment it came from; `null` unless an http(s) URL (a `javascript:` URL never becomes a link). */
  sourceUrl: string | null;
}

/** What the memory view shows: the picker's choices, the chosen repository and one page of its learnings. */
export interface MemoryView {
  /** The repositories the picker offers (the viewer's repositories; for the operator, those the ledger knows). */
  repositories: string[];
  /** `true` when any `owner/repo` may be asked for (the operator), not only {@link repositories}. */
  anyRepository: boolean;
  /** The repository shown, or `null` when there is none to show. */
  repository: string | null;
  learnings: MemoryRow[];
  /** Learnings the repository has in all. */
  total: number;
  /** 1-based. */
  page: number;
  perPage: number;
  /** At least 1. */
  pages: number;
}

/** Only http(s) links from stored rows become `href`s. */
const safeUrl = (url: string | null): string | null => (url && /^https?:\/\//i.test(url) ? url : null);

/**
 * The repositories of the scope, for the picker: the viewer's own list, or for the operator
 * (every repository) the repositories the ledger knows. A scope restricted by installation only
 * (no repository list) offers nothing: a learning is read by repository, so it fails closed.
 */
async function pickerRepositories(db: Db, scope: DashboardScope): Promise<string[]> {
  if (scope.repositories !== null) return [...new Set(scope.repositories)].sort();
  if (scope.installationIds !== null) return [];
  return (await dimensionsOf(db, EVERYTHING)).repositories;
}

/**
 * The memory view of `query` within `scope`: the requested repository (or else the picker's
 * first), a page of its learnings newest first — only those of the installations in the scope
 * (learnings are keyed by installation and name) — and the totals for paging.
 *
 * @returns `null` when the requested repository is outside the scope (the handler answers 404,
 *   so a repository's memory is never disclosed, nor whether it has any)
 */
export async function memoryView(db: Db, scope: DashboardScope, query: MemoryQuery): Promise<MemoryView | null> {
  const repositories = await pickerRepositories(db, scope);
  const anyRepository = scope.repositories === null && scope.installationIds === null;
  let repository: string | null = repositories[0] ?? null;
  if (query.repository !== undefined) {
    const key = repositoryKey(query.repository);
    // GitHub's names are case-insensitive; the table stores them in lower case.
    const allowed = repositories.find((r) => repositoryKey(r) === key) ?? (anyRepository ? query.repository : undefined);
    if (allowed === undefined) return null;
    repository = allowed;
  }
  const perPage = query.per_page;
  const empty = { repositories, anyRepository, repository, learnings: [], total: 0, page: query.page, perPage, pages: 1 };
  if (repository === null) return empty;
  // The scope gives repository names only: the learnings read are those of that name in the
  // installations the viewer may see (every installation for the operator).
  const { learnings, total } = await listLearnings(db, scope.installationIds, repository, { limit: perPage, offset: (query.page - 1) * perPage });
  return {
    ...empty,
    learnings: learnings.map((l) => ({
      id: Number(l.id),
      text: l.text,
      author: l.author,
      createdAt: Number(l.created_at),
      sourceUrl: safeUrl(l.source_url),
    })),
    total,
    pages: Math.max(1, Math.ceil(total / perPage)),
  };
}

const utc = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;

/** The view's URL for another repository or page. */
function memoryUrl(repository: string, page: number, perPage: number): string {
  const params = new URLSearchParams({ repository, page: String(page) });
  if (perPage !== MEMORY_PAGE_ROWS) params.set("per_page", String(perPage));
  return `/dashboard/memory?${params.toString()}`;
}

/** The picker: a select of the viewer's repositories, or for the operator a text field suggesting the known ones. */
function picker(view: MemoryView): SafeHtml {
  const current = view.repository ?? "";
  const control = view.anyRepository
    ? html`<input id="f-memory-repository" name="repository" type="text" list="memory-repositories" value="${current}" placeholder="owner/repo" required />
        <datalist id="memory-repositories">${view.repositories.map((r) => html`<option value="${r}"></option>`)}</datalist>`
    : html`<select id="f-memory-repository" name="repository">
        ${view.repositories.map((r) => html`<option value="${r}" ${repositoryKey(r) === repositoryKey(current) ? html` selected` : ""}>${r}</option>`)}
      </select>`;
  return html`<form class="filters" id="memory-filter" method="get" action="/dashboard/memory">
    <div class="field"><label for="f-memory-repository">Repository</label> ${control}</div>
    <div><button type="submit">Show</button></div>
  </form>`;
}

function rows(view: MemoryView): SafeHtml {
  if (view.learnings.length === 0)
    return html`<tr>
      <td colspan="5">${view.total === 0 ? "This repository has no learnings yet." : "No learnings on this page."}</td>
    </tr>`;
  return html`${view.learnings.map(
    (l) =>
      html`<tr data-learning-id="${l.id}">
        <th scope="row" class="num">${l.id}</th>
        <td class="learning-text">${l.text}</td>
        <td>@${l.author}</td>
        <td>${utc(l.createdAt)}</td>
        <td>${l.sourceUrl ? html`<a href="${l.sourceUrl}" rel="noreferrer">comment</a>` : "—"}</td>
      </tr>`,
  )}`;
}

function pager(view: MemoryView): SafeHtml {
  if (view.repository === null || view.pages <= 1) return html``;
  const repository = view.repository;
  return html`<nav class="actions" aria-label="Pages of learnings">
    ${view.page > 1 ? html`<a class="button" rel="prev" href="${memoryUrl(repository, Math.min(view.page - 1, view.pages), view.perPage)}">Newer</a>` : ""}
    <span class="status">Page ${view.page} of ${view.pages}</span>
    ${view.page < view.pages ? html`<a class="button" rel="next" href="${memoryUrl(repository, view.page + 1, view.perPage)}">Older</a>` : ""}
  </nav>`;
}

/** The body of the memory page (the layout around it is `pages.ts`'s). Every stored value is escaped. */
export function memoryBody(view: MemoryView): SafeHtml {
  const intro = html`<p class="muted">
    What writers asked Mission Control to remember with <code>/learn</code>; the agents read it. Read-only here: remove a learning with
    <code>/forget &lt;id&gt;</code> in a comment on the repository.
  </p>`;
  if (view.repository === null)
    return html`<section id="memory" aria-labelledby="memory-title">
      <h2 id="memory-title">Repository memory</h2>
      ${intro} ${view.anyRepository ? picker(view) : html`<p>You may see no repository.</p>`}
    </section>`;
  return html`<section id="memory" aria-labelledby="memory-title">
    <h2 id="memory-title">Repository memory</h2>
    ${intro} ${picker(view)}
    <p class="status" id="memory-status">${view.total} learning(s) in ${view.repository}</p>
    <div class="table-wrap">
      <table>
        <caption>
          Learnings of ${view.repository}, newest first
        </caption>
        <thead>
          <tr>
            <th scope="col" class="num">Id</th>
            <th scope="col">Learning</th>
            <th scope="col">Author</th>
            <th scope="col">Added</th>
            <th scope="col">Source</th>
          </tr>
        </thead>
        <tbody id="memory-rows">
          ${rows(view)}
        </tbody>
      </table>
    </div>
    ${pager(view)}
  </section>`;
}
