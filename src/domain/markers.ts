/** A hidden HTML comment that marks a comment as ours, e.g. `<!-- mission-control:tracking -->`. */
export function marker(topic: string): string {
  return `<!-- mission-control:${topic} -->`;
}

/** Labels that show where an issue stands; exactly one is on the issue at a time. */
export const STAGE_LABEL_PREFIX = "mc:";
