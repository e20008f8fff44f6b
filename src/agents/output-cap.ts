/** Largest tool output returned to the model, in characters and lines. */
export const TOOL_OUTPUT_LIMITS = { maxChars: 20_000, maxLines: 500 } as const;

/**
 * Caps a tool's output and says what was cut, so the model knows the text is partial.
 *
 * @param limits - characters and lines to keep (defaults: {@link TOOL_OUTPUT_LIMITS})
 */
export function capOutput(text: string, limits: { maxChars: number; maxLines: number } = TOOL_OUTPUT_LIMITS): string {
  const lines = text.split("\n");
  let kept = lines.length > limits.maxLines ? lines.slice(0, limits.maxLines).join("\n") : text;
  if (kept.length > limits.maxChars) kept = kept.slice(0, limits.maxChars);
  if (kept.length === text.length) return text;
  const keptLines = kept.split("\n").length;
  return `${kept}\n[output truncated: showing ${kept.length} of ${text.length} characters, ${keptLines} of ${lines.length} lines]`;
}
