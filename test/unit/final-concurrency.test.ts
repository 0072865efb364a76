/**
 * Issue 9 §1: with warm agents the final syncs of a namespace start together (a final sync is a delta
 * started by an exec), bounded by the plan's limits.
 */
import { parsePlan } from '../../src/plan/load';
import { MAX_CONCURRENCY } from '../../src/plan/schema';
import { agentShare, planFor, syncShare } from '../../src/workflows/migration';
import { DEFAULT_FINAL_CONCURRENCY, finalSyncConcurrency } from '../../src/workflows/concurrency';

const base = { source: { context: 'a' }, destination: { context: 'b' }, namespaces: ['shop'] };

describe('final sync concurrency', () => {
  it('warm agents (default): at least DEFAULT_FINAL_CONCURRENCY, within the schema bound', () => {
    expect(DEFAULT_FINAL_CONCURRENCY).toBeLessThanOrEqual(MAX_CONCURRENCY);
    expect(finalSyncConcurrency(parsePlan(base))).toBe(DEFAULT_FINAL_CONCURRENCY);
    expect(finalSyncConcurrency(parsePlan({ ...base, concurrency: 2 }))).toBe(DEFAULT_FINAL_CONCURRENCY);
  });
  it('per-sync client pods: the plan concurrency', () => {
    expect(finalSyncConcurrency(parsePlan({ ...base, agents: 'per-sync', concurrency: 3 }))).toBe(3);
  });
  it('finalConcurrency wins, and is validated', () => {
    expect(finalSyncConcurrency(parsePlan({ ...base, finalConcurrency: 4 }))).toBe(4);
    expect(() => parsePlan({ ...base, finalConcurrency: 0 })).toThrow(/finalConcurrency/);
    expect(() => parsePlan({ ...base, finalConcurrency: MAX_CONCURRENCY + 1 })).toThrow(/finalConcurrency/);
  });
});

describe('the per-node sync limit', () => {
  it('is unset by default, whole for one namespace, shared equally (at least 1) by several', () => {
    expect(planFor(parsePlan(base), { source: 'shop', destination: 'shop', pvcs: { all: true } }).maxSyncsPerNode).toBeUndefined();
    expect(planFor(parsePlan({ ...base, maxSyncsPerNode: 6 }), { source: 'shop', destination: 'shop', pvcs: { all: true } }).maxSyncsPerNode).toBe(6);
    const three = parsePlan({ ...base, maxSyncsPerNode: 7, namespaces: ['a', 'b', 'c'] });
    expect(planFor(three, three.namespaces[1]!).maxSyncsPerNode).toBe(2);
    const many = parsePlan({ ...base, maxSyncsPerNode: 2, namespaces: ['a', 'b', 'c'] });
    expect(planFor(many, many.namespaces[0]!).maxSyncsPerNode).toBe(1);
    expect(() => parsePlan({ ...base, maxSyncsPerNode: 0 })).toThrow(/maxSyncsPerNode/);
  });
});

describe('the plan-wide warm-agent limit', () => {
  it('is shared equally by the namespaces (at least 1 each) and bounds their final concurrency', () => {
    const one = parsePlan(base);
    expect(planFor(one, one.namespaces[0]!).maxAgents).toBeUndefined(); // one namespace: the whole limit
    const ten = parsePlan({ ...base, namespaces: Array.from({ length: 10 }, (_, i) => `ns${i}`) });
    const slice = planFor(ten, ten.namespaces[3]!);
    expect(slice.maxAgents).toBe(5); // 50 / 10
    expect(slice.namespaces).toEqual([ten.namespaces[3]]);
    expect(finalSyncConcurrency(slice)).toBe(5); // max(concurrency 5, share 5)
    expect(finalSyncConcurrency(planFor(parsePlan({ ...base, concurrency: 2, namespaces: ["a", "b", "c", "d"] }), { source: "a", destination: "a", pvcs: { all: true } }))).toBe(12); // share 12
    const many = parsePlan({ ...base, maxAgents: 30, namespaces: Array.from({ length: 50 }, (_, i) => `ns${i}`) });
    expect(agentShare(many)).toBe(1);
    expect(agentShare(parsePlan({ ...base, maxAgents: 30, namespaces: ['a', 'b'] }))).toBe(15);
  });
});

describe('the plan-wide limit on syncs at once', () => {
  it('caps each namespace at its share of maxConcurrentSyncs, stage and final', () => {
    const one = parsePlan({ ...base, maxConcurrentSyncs: 3 });
    expect(planFor(one, one.namespaces[0]!).concurrency).toBe(3);
    expect(finalSyncConcurrency(planFor(one, one.namespaces[0]!))).toBe(3);
    const plain = parsePlan(base);
    expect(planFor(plain, plain.namespaces[0]!)).toEqual(plain); // one namespace, no limit set: the plan as it is
    const twenty = parsePlan({ ...base, namespaces: Array.from({ length: 20 }, (_, i) => `ns${i}`) });
    expect(syncShare(twenty)).toBe(2); // 50 / 20
    const slice = planFor(twenty, twenty.namespaces[0]!);
    expect(slice.concurrency).toBe(2);
    expect(finalSyncConcurrency(slice)).toBe(2);
    const few = parsePlan({ ...base, maxConcurrentSyncs: 100, namespaces: ['a', 'b'] });
    const s2 = planFor(few, few.namespaces[0]!);
    expect(s2.concurrency).toBe(5);
    expect(finalSyncConcurrency(s2)).toBe(20); // min(share 50, max(5, min(20, agent share 25)))
    expect(() => parsePlan({ ...base, maxConcurrentSyncs: 0 })).toThrow(/maxConcurrentSyncs/);
  });
});
