/**
 * Cron expressions with time zones, through croner (the only importer of `croner`): checking a
 * repository's `orchestrator.standup` schedule, and the next time it fires.
 */
import { Cron } from "croner";

/**
 * The shortest time between two stand-ups a schedule may ask for: one hour. Each stand-up reads
 * about 45 GitHub resources and rewrites the day's issue, so an every-minute schedule would
 * cost thousands of requests an hour and overwrite the stand-up with a minute's facts.
 */
export const MIN_STANDUP_INTERVAL_MS = 3_600_000;

/** How many coming fires {@link cronProblem} checks against {@link MIN_STANDUP_INTERVAL_MS}. */
const FIRES_CHECKED = 5;

/**
 * Why `cron` in `timezone` cannot be used, or `null` when it can: five fields (minute hour
 * day-of-month month day-of-week — the scheduler ticks once a minute, so no seconds field), a
 * pattern croner accepts, an IANA time zone `Intl` knows, and at most one stand-up an hour: the
 * minute field is one minute (so every valid schedule is refused or accepted whatever the
 * date), and the next {@link FIRES_CHECKED} fires after `now` (epoch ms) are at least
 * {@link MIN_STANDUP_INTERVAL_MS} apart. The message names the bad part and quotes nothing else.
 */
export function cronProblem(cron: string, timezone: string, now = Date.now()): string | null {
  const fields = cron.trim().split(/\s+/);
  if (fields.length !== 5) return `the cron expression must have five fields (minute hour day-of-month month day-of-week), not ${fields.length}`;
  if (!validTimeZone(timezone)) return "the time zone is not an IANA time zone name (for example Europe/Berlin or UTC)";
  try {
    const next = new Cron(cron, { timezone, paused: true }).nextRun();
    if (!next) return "the cron expression never fires";
  } catch (err) {
    return `the cron expression is not valid: ${(err as Error).message.slice(0, 120)}`;
  }
  if (!/^\d{1,2}$/.test(fields[0] ?? "")) return "the minute field must be one minute (0-59): a stand-up runs at most once an hour";
  const gap = shortestGapMs(cron, timezone, now, FIRES_CHECKED);
  if (gap !== null && gap < MIN_STANDUP_INTERVAL_MS) return "the schedule fires more than once an hour: a stand-up runs at most once an hour";
  return null;
}

/**
 * The shortest time (ms) between consecutive fires among the next `fires` fires of `cron` in
 * `timezone` after `fromMs` (epoch ms), or `null` when it fires fewer than twice.
 */
export function shortestGapMs(cron: string, timezone: string, fromMs: number, fires: number): number | null {
  const runs = new Cron(cron, { timezone, paused: true }).nextRuns(fires, new Date(fromMs)).map((d) => d.getTime());
  let shortest: number | null = null;
  for (let i = 1; i < runs.length; i++) {
    const gap = (runs[i] as number) - (runs[i - 1] as number);
    if (shortest === null || gap < shortest) shortest = gap;
  }
  return shortest;
}

/** `true` when `Intl` knows the IANA time zone `timezone`. */
export function validTimeZone(timezone: string): boolean {
  if (timezone.trim() === "") return false;
  try {
    Intl.DateTimeFormat("en-US", { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/**
 * The first time strictly after `afterMs` (epoch ms) at which `cron` fires in `timezone`, in
 * epoch ms; daylight-saving changes follow the zone's rules as croner applies them (a 09:00
 * schedule stays at 09:00 local time across a change).
 *
 * @throws {Error} for an expression or zone {@link cronProblem} refuses, or one that never fires again
 */
export function nextFireAt(cron: string, timezone: string, afterMs: number): number {
  const next = new Cron(cron, { timezone, paused: true }).nextRun(new Date(afterMs));
  if (!next) throw new Error(`the schedule "${cron}" (${timezone}) never fires after ${new Date(afterMs).toISOString()}`);
  return next.getTime();
}

/** The calendar date of `atMs` (epoch ms) in `timezone`: `YYYY-MM-DD`. */
export function localDate(atMs: number, timezone: string): string {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(new Date(atMs));
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${get("year")}-${get("month")}-${get("day")}`;
}
