declare const promptSafeBrand: unique symbol;

/**
 * Text that a prompt builder rendered with this module — untrusted parts escaped, elements
 * its own — and that another builder may therefore embed as it is (the Reviewer's rendered
 * diff in the Tester's `<diff>`, the repository map in the Coder's `<repository_map>`). A
 * plain `string` is not assignable to it, so untrusted text cannot take that path unescaped
 * without a visible {@link promptSafe} call.
 */
export type PromptSafeText = string & { readonly [promptSafeBrand]: true };

/**
 * Marks `text` as {@link PromptSafeText}. Call it only on text whose every untrusted part went
 * through `escapeUntrusted`, `sanitizeUntrustedText`, `escapeUntrustedCode` or
 * `escapeAttribute`.
 */
export function promptSafe(text: string): PromptSafeText {
  return text as PromptSafeText;
}
