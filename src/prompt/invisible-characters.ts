/**
 * Characters a reader of GitHub does not see but a model reads: the carriers of hidden
 * instructions ("ASCII smuggling" with Unicode tag characters, text encoded in variation
 * selectors) and of code that reads differently than it runs ("Trojan Source" bidirectional
 * controls).
 *
 * The set is every code point with the Unicode property `Default_Ignorable_Code_Point`
 * (DerivedCoreProperties.txt: zero-width spaces and joiners, the soft hyphen, bidirectional
 * controls, Hangul fillers, variation selectors U+FE00–FE0F and U+E0100–E01EF, tag characters
 * U+E0000–E007F, and the unassigned rest of U+E0000–E0FFF), plus every format character
 * (General_Category `Cf`, e.g. U+FFF9–FFFB interlinear annotation), matched with JavaScript's
 * `\p{…}` property escapes, so the set follows the Unicode version of the running Node.js.
 *
 * One exception keeps emoji intact: a text or emoji presentation selector (U+FE0E, U+FE0F)
 * directly after a character with the `Emoji` property (`❤️`, `1️⃣`) is kept. One selector
 * per emoji cannot carry a message; a run of them, or one after a letter, is removed.
 */
const INVISIBLE = /(?<!\p{Emoji})[\uFE0E\uFE0F]|(?![\uFE0E\uFE0F])[\p{Default_Ignorable_Code_Point}\p{Cf}]/gu;

/** C0 and C1 control characters other than tab, line feed and carriage return; and the Unicode line and paragraph separators. */
const CONTROLS = /(?![\t\n\r])[\p{Cc}\u2028\u2029]/gu;

/** All control characters, tab, line feed and carriage return included: for text that must stay on one line. */
const ALL_CONTROLS = /[\p{Cc}\u2028\u2029]/gu;

/** `[U+202E]`: how a hidden character is shown. */
function codePointLabel(char: string): string {
  return `[U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}]`;
}

/**
 * Removes invisible characters (see the module comment) and control characters other than tab
 * and line breaks. For prose, where such characters have no legitimate use a reader could see.
 */
export function stripInvisible(text: string): string {
  return text.replace(INVISIBLE, "").replace(CONTROLS, "");
}

/**
 * Replaces invisible characters (see the module comment) and control characters with a
 * visible `[U+XXXX]` label instead of removing them. For code, file names and command output,
 * where they can change what the text means, so a reviewer must see them.
 *
 * @param options.singleLine - also label tab, line feed and carriage return (file names, attribute-like values)
 */
export function showInvisible(text: string, options: { singleLine?: boolean } = {}): string {
  return text.replace(INVISIBLE, codePointLabel).replace(options.singleLine ? ALL_CONTROLS : CONTROLS, codePointLabel);
}
