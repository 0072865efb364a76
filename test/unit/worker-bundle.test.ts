/**
 * Issue 9 (worker RSS): the worker loads a workflow bundle made once per source tree by a child
 * process, cached by a key of the sources, instead of running webpack in the long-lived process.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { workflowBundleKey } from '../../src/worker';

describe('workflow bundle cache key', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'ferry-key-'));
    mkdirSync(join(root, 'workflows'));
    writeFileSync(join(root, 'workflows', 'a.ts'), 'export const a = 1;\n');
    writeFileSync(join(root, 'b.ts'), 'export const b = 2;\n');
    writeFileSync(join(root, 'notes.txt'), 'not source');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('is stable for the same sources and changes with any source file, its name, or a new one', () => {
    const k = workflowBundleKey(root);
    expect(k).toMatch(/^[0-9a-f]{16}$/);
    expect(workflowBundleKey(root)).toBe(k);
    writeFileSync(join(root, 'notes.txt'), 'still not source');
    expect(workflowBundleKey(root)).toBe(k);
    writeFileSync(join(root, 'workflows', 'a.ts'), 'export const a = 2;\n');
    const k2 = workflowBundleKey(root);
    expect(k2).not.toBe(k);
    writeFileSync(join(root, 'c.ts'), '');
    expect(workflowBundleKey(root)).not.toBe(k2);
  });
});
