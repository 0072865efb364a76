/**
 * Scheduled stage passes (plan `stageSchedule`): a standard 5-field cron expression, read in UTC, names
 * when each stage pass after the first starts (the first starts at once: it is the initial copy). Pure
 * and deterministic (no clock, no timers): the namespace workflow asks for the next time after its own
 * workflow time and waits on a Temporal timer. Parsing by croner (https://github.com/Hexagon/croner),
 * with a fixed UTC offset so that no time-zone database is consulted.
 */
import { Cron } from 'croner';

/** Pure: why `expr` is not a usable stage schedule (undefined: it is). */
export function stageScheduleProblem(expr: string, now: Date = new Date()): string | undefined {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) return `must be a cron expression of 5 fields (minute hour day-of-month month day-of-week, UTC), not ${fields.length}`;
  let next: Date | null;
  try {
    next = new Cron(expr, { utcOffset: 0, paused: true }).nextRun(now);
  } catch (err) {
    return `is not a cron expression: ${err instanceof Error ? err.message.replace(/^CronPattern: /, '') : String(err)}`;
  }
  if (!next) return 'names no time to come (e.g. 31 February)';
  return undefined;
}

/**
 * Pure: the first time after `after` that `expr` names (UTC), or undefined when it names none.
 * @throws Error for an expression stageScheduleProblem refuses.
 */
export function nextScheduledStage(expr: string, after: Date): Date | undefined {
  return new Cron(expr, { utcOffset: 0, paused: true }).nextRun(after) ?? undefined;
}
