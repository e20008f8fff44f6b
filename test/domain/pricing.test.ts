import { describe, expect, it } from "vitest";

import { ConfigError, UnknownModelError } from "../../src/domain/errors.js";
import { BUILTIN_PRICES, PriceTable } from "../../src/domain/pricing.js";

/** Many digits: well past a cent, to catch per-token vs per-million mistakes. */
const DIGITS = 10;

describe("PriceTable built-in prices", () => {
  const table = new PriceTable();

  it("claude-sonnet-5-5: 1M input + 1M output = $12", () => {
    expect(table.costUsd("claude-sonnet-5-5", { input_tokens: 1_000_000, output_tokens: 1_000_000 })).toBeCloseTo(12, DIGITS);
  });

  it("prices 5-minute cache writes at 1.25× and cache reads at 0.1× input", () => {
    // 2 + 10 + 10_000 × 2.5 / 1e6 (= 0.025) + 200_000 × 0.2 / 1e6 (= 0.04) = 12.065
    const cost = table.costUsd("claude-sonnet-5-5", {
      input_tokens: 1_000_000,
      output_tokens: 1_000_000,
      cache_creation_input_tokens: 10_000,
      cache_read_input_tokens: 200_000,
    });
    expect(cost).toBeCloseTo(12.065, DIGITS);
  });

  it("prices small calls to a fraction of a cent", () => {
    // 1_234 × 2 + 567 × 10 = 2_468 + 5_670 = 8_138 micro-dollars
    expect(table.costUsd("claude-sonnet-5-5", { input_tokens: 1_234, output_tokens: 567 })).toBeCloseTo(0.008138, DIGITS);
    // 1 output token of Opus: 25 / 1e6
    expect(table.costUsd("claude-opus-5", { input_tokens: 0, output_tokens: 1 })).toBeCloseTo(0.000025, DIGITS);
  });

  it("prices the 1-hour cache split at 2× input and the 5-minute part at 1.25×", () => {
    // only 1h: 20_000 × 4 / 1e6 = 0.08
    expect(
      table.costUsd("claude-sonnet-5-5", {
        input_tokens: 0,
        output_tokens: 0,
        cache_creation_input_tokens: 20_000,
        cache_creation: { ephemeral_1h_input_tokens: 20_000 },
      }),
    ).toBeCloseTo(0.08, DIGITS);
    // 10_000 × 2.5 + 20_000 × 4 = 25_000 + 80_000 = 105_000 micro-dollars = 0.105
    expect(
      table.costUsd("claude-sonnet-5-5", {
        input_tokens: 0,
        output_tokens: 0,
        cache_creation_input_tokens: 30_000,
        cache_creation: { ephemeral_5m_input_tokens: 10_000, ephemeral_1h_input_tokens: 20_000 },
      }),
    ).toBeCloseTo(0.105, DIGITS);
    // null split → the total is priced as 5-minute writes: 30_000 × 2.5 / 1e6 = 0.075
    expect(table.costUsd("claude-sonnet-5-5", { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 30_000, cache_creation: null })).toBeCloseTo(
      0.075,
      DIGITS,
    );
  });

  it("derives cache prices from the input price", () => {
    expect(BUILTIN_PRICES["claude-haiku-4-5"]).toEqual({ input: 1, output: 5, cache_write_5m: 1.25, cache_write_1h: 2, cache_read: 0.1 });
    expect(table.priceOf("claude-opus-4-8")).toEqual({ input: 5, output: 25, cache_write_5m: 6.25, cache_write_1h: 10, cache_read: 0.5 });
  });

  it("gives a dated snapshot id the price of its alias", () => {
    expect(table.priceOf("claude-sonnet-5-5-20260928")).toEqual(table.priceOf("claude-sonnet-5-5"));
    expect(table.costUsd("claude-sonnet-5-5-20260928", { input_tokens: 1_000_000, output_tokens: 1_000_000 })).toBeCloseTo(12, DIGITS);
    expect(table.has("claude-sonnet-5-5-20260928")).toBe(true);
  });

  it("throws UnknownModelError for an unpriced model — never a cost of 0", () => {
    expect(() => table.priceOf("claude-sonnet-5-7")).toThrow(UnknownModelError);
    expect(() => table.costUsd("claude-sonnet-5-7", { input_tokens: 1, output_tokens: 1 })).toThrow(UnknownModelError);
    try {
      table.costUsd("claude-sonnet-5-7", { input_tokens: 1, output_tokens: 1 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(UnknownModelError);
      expect((err as UnknownModelError).model).toBe("claude-sonnet-5-7");
      expect((err as UnknownModelError).code).toBe("unknown_model");
    }
    expect(table.has("claude-sonnet-5-7")).toBe(false);
    // A non-date suffix is not an alias.
    expect(() => table.priceOf("claude-sonnet-5-5-latest")).toThrow(UnknownModelError);
    expect(() => table.priceOf("claude-sonnet-5-5-2026092")).toThrow(UnknownModelError);
  });
});

describe("PriceTable MODEL_PRICES overrides", () => {
  it("adds a model and overrides a built-in one", () => {
    const table = new PriceTable(
      JSON.stringify({
        "my-model": { input: 4, output: 8, cache_write_5m: 5, cache_write_1h: 8, cache_read: 0.4 },
        "claude-sonnet-5-5": { input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3 },
      }),
    );
    // 1M × 4 + 500_000 × 8 = 4 + 4 = $8
    expect(table.costUsd("my-model", { input_tokens: 1_000_000, output_tokens: 500_000 })).toBeCloseTo(8, DIGITS);
    // 1M × 3 + 1M × 15 = $18
    expect(table.costUsd("claude-sonnet-5-5", { input_tokens: 1_000_000, output_tokens: 1_000_000 })).toBeCloseTo(18, DIGITS);
    // Dated ids follow the override.
    expect(table.costUsd("claude-sonnet-5-5-20260928", { input_tokens: 1_000_000, output_tokens: 0 })).toBeCloseTo(3, DIGITS);
    // Other built-ins stay.
    expect(table.costUsd("claude-haiku-4-5", { input_tokens: 1_000_000, output_tokens: 0 })).toBeCloseTo(1, DIGITS);
    // The built-in table itself is untouched.
    expect(BUILTIN_PRICES["claude-sonnet-5-5"]?.input).toBe(2);
    expect(new PriceTable().has("my-model")).toBe(false);
  });

  it("treats an empty string as no overrides", () => {
    expect(new PriceTable("").costUsd("claude-sonnet-5-5", { input_tokens: 1_000_000, output_tokens: 0 })).toBeCloseTo(2, DIGITS);
  });

  it("throws ConfigError for malformed JSON", () => {
    expect(() => new PriceTable("{not json")).toThrow(ConfigError);
    expect(() => new PriceTable("{not json")).toThrow(/MODEL_PRICES/);
  });

  it("throws ConfigError for a negative price, naming the field", () => {
    const bad = JSON.stringify({ "my-model": { input: -1, output: 8, cache_write_5m: 5, cache_write_1h: 8, cache_read: 0.4 } });
    expect(() => new PriceTable(bad)).toThrow(ConfigError);
    expect(() => new PriceTable(bad)).toThrow(/my-model\.input/);
  });

  it("throws ConfigError for a missing or unknown field", () => {
    expect(() => new PriceTable(JSON.stringify({ m: { input: 1, output: 2 } }))).toThrow(ConfigError);
    expect(() => new PriceTable(JSON.stringify({ m: { input: 1, output: 2, cache_write_5m: 1, cache_write_1h: 2, cache_read: 0.1, extra: 1 } }))).toThrow(
      ConfigError,
    );
    expect(() => new PriceTable(JSON.stringify([1, 2]))).toThrow(ConfigError);
  });
});
