/**
 * Plan size bounds (issue 8 item 9): the plan is part of the migration workflow's input, so its size
 * is capped at load with an error naming the file and the limit, and the number of namespaces and of
 * listed PVC names is bounded.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPlanFile, MAX_PLAN_BYTES, parsePlan, PlanValidationError } from '../../src/plan/load';
import { MAX_NAMESPACES, MAX_PVC_NAMES } from '../../src/plan/schema';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-plan-limits-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = { source: { context: 'a' }, destination: { context: 'b' } };

test('a plan file over 1 MiB is refused before parsing, naming the file and the limit', () => {
  const file = join(dir, 'big.yaml');
  writeFileSync(file, `source: { context: a }\ndestination: { context: b }\nnamespaces: [shop]\n# ${'x'.repeat(MAX_PLAN_BYTES)}\n`);
  let err: unknown;
  try {
    loadPlanFile(file);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PlanValidationError);
  expect((err as Error).message).toContain(file);
  expect((err as Error).message).toMatch(/the plan file has \d+ bytes; a plan may have at most 1048576 bytes \(1 MiB\)/);
  // Just under the limit is fine.
  writeFileSync(file, `source: { context: a }\ndestination: { context: b }\nnamespaces: [shop]\n# ${'x'.repeat(MAX_PLAN_BYTES - 200)}\n`);
  expect(loadPlanFile(file).namespaces).toHaveLength(1);
});

test('namespaces and PVC name lists are bounded', () => {
  const many = Array.from({ length: MAX_NAMESPACES + 1 }, (_, i) => `ns${i}`);
  expect(() => parsePlan({ ...base, namespaces: many })).toThrow(/namespaces: more than 100 namespaces in one plan/);
  expect(parsePlan({ ...base, namespaces: many.slice(0, MAX_NAMESPACES) }).namespaces).toHaveLength(MAX_NAMESPACES);
  const names = Array.from({ length: MAX_PVC_NAMES + 1 }, (_, i) => `pvc${i}`);
  expect(() => parsePlan({ ...base, namespaces: ['shop'], pvcs: { names } })).toThrow(/lists more than 1000 PVCs/);
});
