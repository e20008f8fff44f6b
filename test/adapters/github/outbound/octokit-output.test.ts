import { describe, expect, it } from "vitest";

import { GitHubApiError } from "../../../../src/domain/errors.js";
import { toGitHubApiError } from "../../../../src/adapters/github/outbound/octokit-output.js";

const NOW = 1_800_000_000_000;

function requestError(status: number, message: string, headers: Record<string, string> = {}) {
  return { name: "HttpError", status, message, response: { headers, data: { message } } };
}

function translate(err: unknown, now = NOW): GitHubApiError {
  const out = toGitHubApiError(err, now);
  expect(out).toBeInstanceOf(GitHubApiError);
  return out as GitHubApiError;
}

describe("toGitHubApiError", () => {
  it("502 is retryable", () => {
    const e = translate(requestError(502, "Bad Gateway"));
    expect(e).toMatchObject({ status: 502, retryable: true, code: "github_transient" });
    expect(e.retryAfterMs).toBeUndefined();
    expect(e.userMessage).toBe("GitHub answered 502 (Bad Gateway).");
  });

  it("403 with retry-after: 60 is a retryable secondary rate limit of 60 s", () => {
    const e = translate(requestError(403, "Forbidden", { "retry-after": "60" }));
    expect(e).toMatchObject({ status: 403, retryable: true, retryAfterMs: 60_000 });
  });

  it("403 'secondary rate limit' message without headers is retryable", () => {
    const e = translate(requestError(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."));
    expect(e).toMatchObject({ status: 403, retryable: true });
    expect(e.retryAfterMs).toBeUndefined();
  });

  it("403 with x-ratelimit-remaining 0 waits until x-ratelimit-reset", () => {
    const resetSeconds = NOW / 1000 + 120;
    const e = translate(
      requestError(403, "API rate limit exceeded for installation ID 1.", {
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": String(resetSeconds),
      }),
    );
    expect(e).toMatchObject({ status: 403, retryable: true, retryAfterMs: 120_000 });
  });

  it("primary rate limit detected from the headers alone, never a negative delay", () => {
    const past = translate(requestError(403, "Forbidden", { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(NOW / 1000 - 5) }));
    expect(past).toMatchObject({ retryable: true, retryAfterMs: 0 });
  });

  it("429 is retryable and honours retry-after", () => {
    expect(translate(requestError(429, "Too Many Requests", { "retry-after": "3" }))).toMatchObject({ retryable: true, retryAfterMs: 3_000 });
  });

  it("plain 403 'Resource not accessible by integration' is NOT retryable", () => {
    const e = translate(requestError(403, "Resource not accessible by integration", { "x-ratelimit-remaining": "4999" }));
    expect(e).toMatchObject({ status: 403, retryable: false, code: "github_failed" });
    expect(e.retryAfterMs).toBeUndefined();
  });

  it("404 and 422 are not retryable", () => {
    expect(translate(requestError(404, "Not Found"))).toMatchObject({ status: 404, retryable: false });
    expect(translate(requestError(422, "Validation Failed"))).toMatchObject({ status: 422, retryable: false });
  });

  it("status 0 (no response) is retryable", () => {
    expect(translate({ status: 0, message: "socket hang up" })).toMatchObject({ status: 0, retryable: true });
  });

  it("prefers the response's message and falls back to the error's, then to the status", () => {
    expect(translate({ status: 500, message: "outer", response: { headers: {}, data: { message: "inner" } } }).message).toBe("inner");
    expect(translate({ status: 500, message: "outer", response: { headers: {}, data: "<html>" } }).message).toBe("outer");
    expect(translate({ status: 500 }).message).toBe("HTTP 500");
  });

  it("redacts a token in the message", () => {
    const token = "ghs_abcdefghijklmnopqrstuvwxyz0123456789";
    const e = translate(requestError(401, `Bad credentials for ${token}`));
    expect(e.message).not.toContain(token);
    expect(e.message).toContain("[REDACTED]");
    expect(e.userMessage).not.toContain(token);
  });

  it("keeps the original error as the cause and passes through non-HTTP errors and GitHubApiError", () => {
    const original = requestError(500, "boom");
    expect(translate(original).cause).toBe(original);
    const plain = new Error("not http");
    expect(toGitHubApiError(plain, NOW)).toBe(plain);
    const already = new GitHubApiError(500, "x", { retryable: true });
    expect(toGitHubApiError(already, NOW)).toBe(already);
  });
});
