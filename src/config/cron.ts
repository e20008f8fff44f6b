/**
 * Cron expressions with time zones, through croner (the only importer of `croner`): checking a
 * repository's `orchestrator.standup` schedule, and the next time it fires.
 */
import { Cron } from "croner";

/**
 * Why `cron` in `timezone` cannot be used, or `null` when it can: five fields (minute hour
 * day-of-month month day-of-week — the scheduler ticks once a minute, so no seconds field), a
 * pattern croner accepts, and an IANA time zone `Intl` knows. The message names the bad part and
 * quotes nothing else.
 */
export function cronProblem(cron: string, timezone: string): string | null {
  const fields = cron.trim().split(/\s+/);
  if (fields.length !== 5) return `the cron expression must have five fields (minute hour day-of-month month day-of-week), not ${fields.length}`;
  if (!validTimeZone(timezone)) return "the time zone is not an IANA time zone name (for example Europe/Berlin or UTC)";
  try {
    const next = new Cron(cron, { timezone, paused: true }).nextRun();
    if (!next) return "the cron expression never fires";
  } catch (err) {
    return `the cron expression is not valid: ${(err as Error).message.slice(0, 120)}`;
  }
  return null;
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
