/**
 * The activity options table (src/workflows/activity-options.ts) against what the activities do
 * (src/activities/index.ts): every activity that heartbeats has a heartbeat timeout (a dead worker is
 * noticed within it, not after the start-to-close timeout: 6 h for copyImages, issue 8 item 10), and
 * every activity has a start-to-close bound.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { activityOptions, DEFAULT_HEARTBEAT_TIMEOUT_SECONDS } from '../../src/workflows/activity-options';
import { parsePlan } from '../../src/plan/load';

const plan = parsePlan({ source: { context: 'src' }, destination: { context: 'dst' }, namespaces: ['shop'] });

/** The activities whose body (in createActivities' returned object) calls heartbeat(…), read from the source. */
function heartbeatingActivities(): { all: string[]; heartbeating: string[] } {
  const text = readFileSync(join(__dirname, '../../src/activities/index.ts'), 'utf8');
  const body = text.slice(text.indexOf('export function createActivities'));
  const returned = body.slice(body.indexOf('\n  return {'));
  const parts = returned.split(/\n {4}(?=\w+: \()/).slice(1);
  const all: string[] = [];
  const heartbeating: string[] = [];
  for (const part of parts) {
    const name = /^(\w+): \(/.exec(part)![1]!;
    all.push(name);
    if (/\bheartbeat\(/.test(part)) heartbeating.push(name);
  }
  return { all, heartbeating };
}

describe('activity options', () => {
  const table = activityOptions(plan);
  const { all, heartbeating } = heartbeatingActivities();

  it('the source scan finds every activity of the table, and the ones that heartbeat', () => {
    expect(all.sort()).toEqual(Object.keys(table).sort());
    expect(heartbeating).toEqual(expect.arrayContaining(['runTransfer', 'createServer', 'probeConnectivity', 'cleanup', 'copyImages']));
  });

  it('every activity that heartbeats has a heartbeat timeout, shorter than its start-to-close timeout', () => {
    const missing = heartbeating.filter((name) => table[name as keyof typeof table].heartbeatTimeout === undefined);
    expect(missing).toEqual([]);
    for (const name of heartbeating) {
      const o = table[name as keyof typeof table];
      expect(o.heartbeatTimeout).toBe(DEFAULT_HEARTBEAT_TIMEOUT_SECONDS * 1000);
      expect(Number(o.heartbeatTimeout)).toBeLessThan(Number(o.startToCloseTimeout));
    }
  });

  it('every activity has a start-to-close bound; the tuning changes the heartbeat timeout of all of them', () => {
    for (const [name, o] of Object.entries(table)) expect([name, typeof o.startToCloseTimeout]).toEqual([name, 'number']);
    const tuned = activityOptions(plan, { heartbeatTimeoutSeconds: 5 });
    for (const name of heartbeating) expect(tuned[name as keyof typeof tuned].heartbeatTimeout).toBe(5000);
  });
});
