/**
 * Scheduled stage passes (plan stageSchedule, plan/schedule.ts): what the plan accepts, and the next
 * time a cron expression names, in UTC.
 */
import { parsePlan, PlanValidationError } from '../../src/plan/load';
import { nextScheduledStage, stageScheduleProblem } from '../../src/plan/schedule';

describe('stageSchedule', () => {
  const at = new Date('2026-12-05T11:07:30Z');

  it('names the next time in UTC', () => {
    expect(nextScheduledStage('0 2 * * *', at)!.toISOString()).toBe('2026-12-06T02:00:00.000Z');
    expect(nextScheduledStage('*/15 * * * *', at)!.toISOString()).toBe('2026-12-05T11:15:00.000Z');
    expect(nextScheduledStage('0 */6 * * 1-5', at)!.toISOString()).toBe('2026-12-07T00:00:00.000Z'); // a Saturday: next Monday
  });

  it('refuses what is not a 5-field cron expression or names no time to come', () => {
    expect(stageScheduleProblem('0 2 * * *', at)).toBeUndefined();
    expect(stageScheduleProblem('*/5 * * * * *', at)).toMatch(/5 fields .* not 6/);
    expect(stageScheduleProblem('every hour', at)).toMatch(/5 fields/);
    expect(stageScheduleProblem('61 * * * *', at)).toMatch(/is not a cron expression/);
    expect(stageScheduleProblem('0 0 31 2 *', at)).toMatch(/names no time to come/);
  });

  it('is a plan field, checked with the others', () => {
    const plan = (stageSchedule: string) => parsePlan({ source: { context: 's' }, destination: { context: 'd' }, namespaces: ['shop'], stageSchedule });
    expect(plan('0 2 * * *').stageSchedule).toBe('0 2 * * *');
    expect(() => plan('0 0 31 2 *')).toThrow(PlanValidationError);
    const error = (() => {
      try {
        plan('nope');
      } catch (e) {
        return e as PlanValidationError;
      }
      return undefined;
    })();
    expect(error?.problems.map((p) => p.path)).toEqual(['stageSchedule']);
  });
});
