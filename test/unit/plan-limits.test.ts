/**
 * Plan size bounds (issue 8 item 9): the plan is part of the migration workflow's input, so its size
 * is capped at load (test/unit/plan.test.ts checks the file-size cap), and the number of namespaces
 * and of listed PVC names is bounded.
 */
import { parsePlan } from '../../src/plan/load';
import { MAX_NAMESPACES, MAX_PVC_NAMES } from '../../src/plan/schema';

const base = { source: { context: 'a' }, destination: { context: 'b' } };

test('namespaces and PVC name lists are bounded', () => {
  const many = Array.from({ length: MAX_NAMESPACES + 1 }, (_, i) => `ns${i}`);
  expect(() => parsePlan({ ...base, namespaces: many })).toThrow(/namespaces: more than 100 namespaces in one plan/);
  expect(parsePlan({ ...base, namespaces: many.slice(0, MAX_NAMESPACES) }).namespaces).toHaveLength(MAX_NAMESPACES);
  const names = Array.from({ length: MAX_PVC_NAMES + 1 }, (_, i) => `pvc${i}`);
  expect(() => parsePlan({ ...base, namespaces: ['shop'], pvcs: { names } })).toThrow(/lists more than 1000 PVCs/);
});
