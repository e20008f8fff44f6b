/**
 * The GitHub port's reads of a repository's own CI (check suites and GitHub Actions), for the
 * CI feedback of the app's pull requests (`pipeline/ci-intake.ts`). Part of the Octokit
 * implementation of the port (`octokit-output.ts` spreads these methods into it).
 */
import type { ProbotOctokit } from "probot";

import type { CheckAnnotationData, CheckRunDetail, GitHubPort, JobLog, WorkflowJobData } from "../../../ports/github.js";

type Octokit = InstanceType<typeof ProbotOctokit>;

/** The methods this module adds to the port. */
export type CiReads = Pick<GitHubPort, "listCheckSuiteRuns" | "listCheckRunAnnotations" | "listWorkflowRunJobs" | "downloadJobLog">;

/**
 * Reads the last `maxBytes` bytes of a byte stream, holding at most about `maxBytes` plus one
 * chunk in memory whatever the stream's length.
 *
 * @returns the bytes kept, the stream's total length, and how many bytes at its start were dropped
 */
export async function readStreamTail(stream: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<{ bytes: Buffer; total: number; dropped: number }> {
  if (!stream) return { bytes: Buffer.alloc(0), total: 0, dropped: 0 };
  const chunks: Buffer[] = [];
  let held = 0;
  let total = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const chunk = Buffer.from(value);
    chunks.push(chunk);
    held += chunk.length;
    total += chunk.length;
    // Drop whole chunks from the front while what remains still covers maxBytes.
    while (chunks.length > 1 && held - (chunks[0]?.length ?? 0) >= maxBytes) held -= chunks.shift()?.length ?? 0;
  }
  const all = Buffer.concat(chunks);
  const bytes = all.length > maxBytes ? all.subarray(all.length - maxBytes) : all;
  return { bytes, total, dropped: total - bytes.length };
}

/**
 * The CI reads, bound to one repository. Errors are left to the caller's `call` wrapper
 * (`octokit-output.ts`), which turns them into `GitHubApiError`.
 */
export function ciReads(octokit: Octokit, base: { owner: string; repo: string }, call: <T>(fn: () => Promise<T>) => Promise<T>): CiReads {
  return {
    listCheckSuiteRuns: (checkSuiteId) =>
      call(async () => {
        const runs = await octokit.paginate("GET /repos/{owner}/{repo}/check-suites/{check_suite_id}/check-runs", {
          ...base,
          check_suite_id: checkSuiteId,
          filter: "latest",
          per_page: 100,
        });
        return runs.map((c): CheckRunDetail => ({
          id: Number(c.id),
          name: c.name,
          headSha: c.head_sha,
          status: c.status,
          conclusion: c.conclusion ?? null,
          externalId: c.external_id ?? null,
          appSlug: c.app?.slug ?? null,
          htmlUrl: c.html_url ?? "",
          output: {
            title: c.output?.title ?? null,
            summary: c.output?.summary ?? null,
            text: c.output?.text ?? null,
            annotationsCount: Number(c.output?.annotations_count ?? 0),
          },
        }));
      }),

    listCheckRunAnnotations: (checkRunId) =>
      call(async () => {
        const annotations = await octokit.paginate("GET /repos/{owner}/{repo}/check-runs/{check_run_id}/annotations", {
          ...base,
          check_run_id: checkRunId,
          per_page: 100,
        });
        return annotations.map((a): CheckAnnotationData => ({
          path: a.path,
          startLine: Number(a.start_line),
          endLine: Number(a.end_line),
          level: a.annotation_level ?? "failure",
          title: a.title ?? null,
          message: a.message ?? "",
        }));
      }),

    listWorkflowRunJobs: (runId) =>
      call(async () => {
        const jobs = await octokit.paginate("GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs", {
          ...base,
          run_id: runId,
          filter: "latest",
          per_page: 100,
        });
        return jobs.map((j): WorkflowJobData => ({
          id: Number(j.id),
          runId: Number(j.run_id),
          name: j.name,
          workflowName: j.workflow_name ?? null,
          status: j.status,
          conclusion: j.conclusion ?? null,
          htmlUrl: j.html_url ?? null,
          steps: (j.steps ?? []).map((s) => ({ number: s.number, name: s.name, status: s.status, conclusion: s.conclusion ?? null })),
        }));
      }),

    downloadJobLog: (jobId, maxBytes) =>
      call(async (): Promise<JobLog> => {
        // GitHub answers 302 with the log file's URL; fetch follows it. The body is read as a
        // stream so that a log of hundreds of megabytes never sits in memory whole.
        const response = await octokit.request("GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs", {
          ...base,
          job_id: jobId,
          request: { parseSuccessResponseBody: false },
        });
        const data: unknown = response.data;
        if (typeof data === "string") {
          const bytes = Buffer.from(data, "utf8");
          const kept = bytes.length > maxBytes ? bytes.subarray(bytes.length - maxBytes) : bytes;
          return { text: fromWholeLine(kept.toString("utf8"), bytes.length > kept.length), totalBytes: bytes.length, droppedBytes: bytes.length - kept.length };
        }
        const tail = await readStreamTail(data as ReadableStream<Uint8Array> | null, maxBytes);
        return { text: fromWholeLine(tail.bytes.toString("utf8"), tail.dropped > 0), totalBytes: tail.total, droppedBytes: tail.dropped };
      }),
  };
}

/**
 * A log's tail from its first whole line: a tail cut at a byte offset may start inside a line,
 * where a secret's prefix (`ghs_`, `KEY=`) is gone and no redaction rule would match the rest.
 */
export function fromWholeLine(text: string, cut: boolean): string {
  if (!cut) return text;
  const newline = text.indexOf("\n");
  return newline === -1 ? "" : text.slice(newline + 1);
}
