import { describe, expect, it } from "vitest";

import { fromWholeLine, readStreamTail } from "../../../../src/adapters/github/outbound/ci-output.js";

/** A byte stream made of `chunks`. */
function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
      controller.close();
    },
  });
}

describe("readStreamTail (job logs are read from their end)", () => {
  it("keeps a stream that fits whole", async () => {
    const tail = await readStreamTail(streamOf(["abc", "def"]), 100);
    expect(tail).toEqual({ bytes: Buffer.from("abcdef"), total: 6, dropped: 0 });
  });

  it("keeps exactly the last maxBytes of a longer stream and counts what it dropped", async () => {
    const chunks = Array.from({ length: 1000 }, (_, i) => `line ${String(i).padStart(4, "0")}\n`);
    const tail = await readStreamTail(streamOf(chunks), 50);
    expect(tail.total).toBe(chunks.join("").length);
    expect(tail.bytes.length).toBe(50);
    expect(tail.dropped).toBe(tail.total - 50);
    expect(tail.bytes.toString("utf8").endsWith("line 0998\nline 0999\n")).toBe(true);
  });

  it("treats a missing body as an empty log", async () => {
    expect(await readStreamTail(null, 10)).toEqual({ bytes: Buffer.alloc(0), total: 0, dropped: 0 });
  });
});

describe("fromWholeLine", () => {
  it("drops the partial first line of a cut tail, where a secret's prefix may be gone", () => {
    expect(fromWholeLine("abcdefghijklmnopqrstuvwxyz0123456789\nnext line\n", true)).toBe("next line\n");
    expect(fromWholeLine("a whole log\n", false)).toBe("a whole log\n");
    expect(fromWholeLine("no newline at all", true)).toBe("");
  });
});
