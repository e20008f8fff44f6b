import { describe, expect, it } from "vitest";

import { ConfigError, UnknownModelError } from "../../src/domain/errors.js";
import { BUILTIN_PRICES, PriceTable, usdPerMTokToNanoPerToken } from "../../src/domain/pricing.js";

describe("PriceTable built-in prices", () => {
  const table = new PriceTable();

  it("claude-sonnet-5-5: 1M input + 1M output = $12", () => {
    expect(table.costNanoUsd("claude-sonnet-5-5", { input_tokens: 1_000_000, output_tokens: 1_000_000 })).toBe(12_000_000_000);
  });

  it("prices 5-minute cache writes at 1.25× and cache reads at 0.1× input", () => {
    // 2 + 10 + 10_000 × 2.5 / 1e6 (= 0.025) + 200_000 × 0.2 / 1e6 (= 0.04) = 12.065
    const cost = table.costNanoUsd("claude-sonnet-5-5", {
      input_tokens: 1_000_000,
      output_tokens: 1_000_000,
      cache_creation_input_tokens: 10_000,
      cache_read_input_tokens: 200_000,
    });
    expect(cost).toBe(12_065_000_000);
  });

  it("prices small calls to a fraction of a cent", () => {
    // 1_234 × 2 + 567 × 10 = 2_468 + 5_670 = 8_138 micro-dollars = 8_138_000 n$
    expect(table.costNanoUsd("claude-sonnet-5-5", { input_tokens: 1_234, output_tokens: 567 })).toBe(8_138_000);
    // 1 output token of Opus: 25 / 1e6
    expect(table.costNanoUsd("claude-opus-5", { input_tokens: 0, output_tokens: 1 })).toBe(25_000);
  });

  it("prices the 1-hour cache split at 2× input and the 5-minute part at 1.25×", () => {
    // only 1h: 20_000 × 4 / 1e6 = 0.08
    expect(
      table.costNanoUsd("claude-sonnet-5-5", {
        input_tokens: 0,
        output_tokens: 0,
        cache_creation_input_tokens: 20_000,
        cache_creation: { ephemeral_1h_input_tokens: 20_000 },
      }),
    ).toBe(80_000_000);
    // 10_000 × 2.5 + 20_000 × 4 = 25_000 + 80_000 = 105_000 micro-dollars = $0.105
    expect(
      table.costNanoUsd("claude-sonnet-5-5", {
        input_tokens: 0,
        output_tokens: 0,
        cache_creation_input_tokens: 30_000,
        cache_creation: { ephemeral_5m_input_tokens: 10_000, ephemeral_1h_input_tokens: 20_000 },
      }),
    ).toBe(105_000_000);
    // null split → the total is priced as 5-minute writes: 30_000 × 2.5 / 1e6 = 0.075
    expect(table.costNanoUsd("claude-sonnet-5-5", { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 30_000, cache_creation: null })).toBe(
      75_000_000,
    );
  });

  it("derives cache prices from the input price", () => {
    expect(BUILTIN_PRICES["claude-haiku-4-5"]).toEqual({ input: 1, output: 5, cache_write_5m: 1.25, cache_write_1h: 2, cache_read: 0.1 });
    expect(table.priceOf("claude-opus-4-8")).toEqual({ input: 5, output: 25, cache_write_5m: 6.25, cache_write_1h: 10, cache_read: 0.5 });
  });

  it("gives a dated snapshot id the price of its alias", () => {
    expect(table.priceOf("claude-sonnet-5-5-20260928")).toEqual(table.priceOf("claude-sonnet-5-5"));
    expect(table.costNanoUsd("claude-sonnet-5-5-20260928", { input_tokens: 1_000_000, output_tokens: 1_000_000 })).toBe(12_000_000_000);
    expect(table.has("claude-sonnet-5-5-20260928")).toBe(true);
  });

  it("throws UnknownModelError for an unpriced model — never a cost of 0", () => {
    expect(() => table.priceOf("claude-sonnet-5-7")).toThrow(UnknownModelError);
    expect(() => table.costNanoUsd("claude-sonnet-5-7", { input_tokens: 1, output_tokens: 1 })).toThrow(UnknownModelError);
    try {
      table.costNanoUsd("claude-sonnet-5-7", { input_tokens: 1, output_tokens: 1 });
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
    expect(table.costNanoUsd("my-model", { input_tokens: 1_000_000, output_tokens: 500_000 })).toBe(8_000_000_000);
    // 1M × 3 + 1M × 15 = $18
    expect(table.costNanoUsd("claude-sonnet-5-5", { input_tokens: 1_000_000, output_tokens: 1_000_000 })).toBe(18_000_000_000);
    // Dated ids follow the override.
    expect(table.costNanoUsd("claude-sonnet-5-5-20260928", { input_tokens: 1_000_000, output_tokens: 0 })).toBe(3_000_000_000);
    // Other built-ins stay.
    expect(table.costNanoUsd("claude-haiku-4-5", { input_tokens: 1_000_000, output_tokens: 0 })).toBe(1_000_000_000);
    // The built-in table itself is untouched.
    expect(BUILTIN_PRICES["claude-sonnet-5-5"]?.input).toBe(2);
    expect(new PriceTable().has("my-model")).toBe(false);
  });

  it("treats an empty string as no overrides", () => {
    expect(new PriceTable("").costNanoUsd("claude-sonnet-5-5", { input_tokens: 1_000_000, output_tokens: 0 })).toBe(2_000_000_000);
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

describe("exact prices (nano-dollars per token)", () => {
  it("converts USD per million tokens to whole nano-dollars per token, from the decimal text", () => {
    expect(usdPerMTokToNanoPerToken(0.03)).toBe(30);
    expect(usdPerMTokToNanoPerToken(0.001)).toBe(1);
    expect(usdPerMTokToNanoPerToken(3.75)).toBe(3_750);
    expect(usdPerMTokToNanoPerToken(0.3)).toBe(300); // 0.3 is not exact in binary; its text is
    expect(usdPerMTokToNanoPerToken(0)).toBe(0);
    expect(() => usdPerMTokToNanoPerToken(0.0001)).toThrow(RangeError);
    expect(() => usdPerMTokToNanoPerToken(1.2345)).toThrow(/3 decimal places/);
    expect(() => usdPerMTokToNanoPerToken(-1)).toThrow(RangeError);
    expect(() => usdPerMTokToNanoPerToken(Number.NaN)).toThrow(RangeError);
  });

  it("gives every built-in model a whole number of nano-dollars per token", () => {
    const table = new PriceTable();
    expect(table.nanoPriceOf("claude-sonnet-5-5")).toEqual({ input: 2_000, output: 10_000, cache_write_5m: 2_500, cache_write_1h: 4_000, cache_read: 200 });
    expect(table.nanoPriceOf("claude-sonnet-4-6")).toEqual({ input: 3_000, output: 15_000, cache_write_5m: 3_750, cache_write_1h: 6_000, cache_read: 300 });
    for (const model of Object.keys(BUILTIN_PRICES)) {
      for (const perToken of Object.values(table.nanoPriceOf(model))) expect(Number.isSafeInteger(perToken)).toBe(true);
    }
    expect(table.nanoPriceOf("claude-opus-5-20270101")).toEqual(table.nanoPriceOf("claude-opus-5"));
    expect(() => table.nanoPriceOf("claude-sonnet-5-7")).toThrow(UnknownModelError);
  });

  it("costs are exact integers where float arithmetic drifts", () => {
    // $0.1/MTok and $0.2/MTok: 0.1 + 0.2 !== 0.3 in floats, 100 + 200 === 300 n$ here.
    const table = new PriceTable(JSON.stringify({ m: { input: 0.1, output: 0.2, cache_write_5m: 0.125, cache_write_1h: 0.2, cache_read: 0.03 } }));
    expect(table.costNanoUsd("m", { input_tokens: 1, output_tokens: 1 })).toBe(300);
    // 1,000,000 cache reads of 1 token at $0.03/MTok, in one call: exactly $0.03.
    expect(table.costNanoUsd("m", { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 1_000_000 })).toBe(30_000_000);
    // A large call stays exact: 987,654,321 input tokens × 100 n$.
    expect(table.costNanoUsd("m", { input_tokens: 987_654_321, output_tokens: 0 })).toBe(98_765_432_100);
  });

  it("refuses a token count that is not a non-negative integer", () => {
    const table = new PriceTable();
    expect(() => table.costNanoUsd("claude-sonnet-5-5", { input_tokens: 1.5, output_tokens: 0 })).toThrow(RangeError);
    expect(() => table.costNanoUsd("claude-sonnet-5-5", { input_tokens: -1, output_tokens: 0 })).toThrow(RangeError);
  });

  it("refuses MODEL_PRICES with more than 3 decimals per million tokens, naming the field (never rounds silently)", () => {
    const bad = JSON.stringify({ "my-model": { input: 1, output: 5, cache_write_5m: 1.25, cache_write_1h: 2, cache_read: 0.0125 } });
    expect(() => new PriceTable(bad)).toThrow(ConfigError);
    expect(() => new PriceTable(bad)).toThrow(/my-model\.cache_read: must have at most 3 decimal places/);
    const ok = JSON.stringify({ "my-model": { input: 0.25, output: 1.25, cache_write_5m: 0.3, cache_write_1h: 0.5, cache_read: 0.03 } });
    expect(new PriceTable(ok).nanoPriceOf("my-model")).toEqual({ input: 250, output: 1_250, cache_write_5m: 300, cache_write_1h: 500, cache_read: 30 });
  });
});
