import { describe, expect, it } from "vitest";

import { addNanoUsd, formatNanoUsd, nanoToUsd, parseDecimal, parseNanoUsd, usdToNano } from "../../src/domain/money.js";

describe("usdToNano", () => {
  it("reads USD exactly from its decimal text", () => {
    expect(usdToNano("1")).toBe(1_000_000_000);
    expect(usdToNano("300.5")).toBe(300_500_000_000);
    expect(usdToNano(" 2.5 ")).toBe(2_500_000_000);
    expect(usdToNano("0.000000001")).toBe(1);
    expect(usdToNano(".5")).toBe(500_000_000);
    expect(usdToNano("1e-3")).toBe(1_000_000);
    expect(usdToNano("0")).toBe(0);
    expect(usdToNano("-0.25")).toBe(-250_000_000);
  });

  it("reads a number from its shortest decimal text, so 0.1 is exactly 100,000,000 n$", () => {
    expect(usdToNano(0.1)).toBe(100_000_000);
    expect(usdToNano(0.3)).toBe(300_000_000);
    expect(usdToNano(1e-7)).toBe(100); // String(1e-7) is "1e-7"
    expect(usdToNano(12.065)).toBe(12_065_000_000);
  });

  it("refuses more than 9 decimals unless asked to round half-up", () => {
    expect(() => usdToNano("0.0000000001")).toThrow(/more than 9 decimal places/);
    expect(() => usdToNano(0.1 + 0.2)).toThrow(RangeError); // 0.30000000000000004
    expect(usdToNano(0.1 + 0.2, "half-up")).toBe(300_000_000);
    expect(usdToNano("0.0000000005", "half-up")).toBe(1);
    expect(usdToNano("0.0000000004999", "half-up")).toBe(0);
    expect(usdToNano("-0.0000000005", "half-up")).toBe(-1); // halves away from zero
  });

  it.each(["", "abc", "1.2.3", "Infinity", "0x10", "1e999", "-", "."])("refuses %j", (text) => {
    expect(() => usdToNano(text)).toThrow(RangeError);
  });

  it("refuses non-finite numbers and amounts past a safe integer of n$", () => {
    expect(() => usdToNano(Number.NaN)).toThrow(RangeError);
    expect(() => usdToNano(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => usdToNano("10000000")).toThrow(/does not fit/);
    expect(usdToNano("9007199.254740991")).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe("parseDecimal", () => {
  it("scales exactly, with or without an exponent", () => {
    expect(parseDecimal("0.03", 3)).toBe(30n);
    expect(parseDecimal("2.5e2", 0)).toBe(250n);
    expect(parseDecimal("123456789012345678901234567890", 0)).toBe(123456789012345678901234567890n);
    expect(() => parseDecimal("0.0005", 3)).toThrow(RangeError);
    expect(parseDecimal("0.0005", 3, "half-up")).toBe(1n);
  });
});

describe("nanoToUsd, parseNanoUsd, addNanoUsd", () => {
  it("nanoToUsd is for display: the double nearest the amount", () => {
    expect(nanoToUsd(27_540_000)).toBe(0.02754);
    expect(nanoToUsd(0)).toBe(0);
  });

  it("parseNanoUsd takes what the database returns, exactly, and refuses anything inexact", () => {
    expect(parseNanoUsd(42)).toBe(42);
    expect(parseNanoUsd("30000000")).toBe(30_000_000);
    expect(parseNanoUsd(7n)).toBe(7);
    expect(parseNanoUsd("9007199254740991")).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => parseNanoUsd("9007199254740993")).toThrow(/does not fit/);
    expect(() => parseNanoUsd(0.5)).toThrow(RangeError);
    expect(() => parseNanoUsd("1.5")).toThrow(RangeError);
    expect(() => parseNanoUsd(null)).toThrow(RangeError);
  });

  it("addNanoUsd refuses a sum it would round", () => {
    expect(addNanoUsd(100_000_000, 200_000_000)).toBe(300_000_000);
    expect(() => addNanoUsd(Number.MAX_SAFE_INTEGER, 1)).toThrow(RangeError);
  });
});

describe("formatNanoUsd", () => {
  it("prints USD with 4 decimals by default, rounded half-up from the exact amount", () => {
    expect(formatNanoUsd(0)).toBe("$0.0000");
    expect(formatNanoUsd(12_300_000)).toBe("$0.0123");
    expect(formatNanoUsd(27_540_000)).toBe("$0.0275"); // 0.02754
    expect(formatNanoUsd(27_550_000)).toBe("$0.0276"); // exactly half: up
    expect(formatNanoUsd(27_549_999)).toBe("$0.0275");
    expect(formatNanoUsd(1_234_500_000_000)).toBe("$1234.5000");
    expect(formatNanoUsd(-12_300_000)).toBe("-$0.0123");
  });

  it("takes the number of decimals", () => {
    expect(formatNanoUsd(10_000_000_000, 2)).toBe("$10.00");
    expect(formatNanoUsd(4_985_000_000, 2)).toBe("$4.99");
    expect(formatNanoUsd(1_999_999_999, 0)).toBe("$2");
    expect(formatNanoUsd(1, 9)).toBe("$0.000000001");
    expect(() => formatNanoUsd(1, 10)).toThrow(RangeError);
  });
});
