/** The marker topic of the comment saying review `reviewId` was not taken up: one per review. */
export function reviewGaveUpTopic(reviewId: number): string {
  return `review-gave-up:${reviewId}`;
}

/**
 * The comment on the pull request when a review's intake gave up waiting for the work
 * (GitHub Markdown, without its marker): the review was not taken up because the app was busy
 * for too long, and the ways on — `/code <instructions>`, or the review submitted again. Names no
 * one (no `@login`).
 *
 * @param input.reviewUrl - the review's address (`<pull request>#pullrequestreview-<id>`), built from
 *   GitHub's answers; `null` when not known ("your review")
 * @param input.waitedMs - how long the intake waited at least
 */
export function renderReviewGaveUp(input: { reviewUrl: string | null; waitedMs: number }): string {
  const review =
    input.reviewUrl && /^https?:\/\//i.test(input.reviewUrl) ? `[your review](${input.reviewUrl.replace(/[()\s<>]/g, encodeURIComponent)})` : "your review";
  const minutes = Math.floor(input.waitedMs / 60_000);
  return [
    "### ⏳ Review not taken up",
    `Mission Control could not take up ${review}: the app was busy with this issue's work for too long (it waited more than ${minutes} minutes for the work under way to end), so no revision was started for it.`,
    "To have the Coder act on it, comment `/code <instructions>` on this pull request, or submit the review again once the work under way has ended.",
  ].join("\n\n");
}
