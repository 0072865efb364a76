/**
 * The worker's V8 heap flags (src/temporal/worker-heap.ts) are where Ferry starts the worker: the
 * `ferry` command's shebang, the image's ENTRYPOINT and the harness; and they do what they say when a
 * script with that shebang runs.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WORKER_NODE_FLAGS } from '../../src/temporal/worker-heap';

const ROOT = join(__dirname, '..', '..');

test('the ferry command, the worker image, npm run worker, the demo and the harness start the worker with WORKER_NODE_FLAGS', () => {
  const shebang = readFileSync(join(ROOT, 'src', 'client.ts'), 'utf8').split('\n')[0];
  expect(shebang).toBe(`#!/usr/bin/env -S node ${WORKER_NODE_FLAGS.join(' ')}`);
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(ROOT, 'Containerfile'), 'utf8'));
  expect(JSON.parse(entrypoint![1]!)).toEqual(['node', ...WORKER_NODE_FLAGS, 'dist/worker.js']);
  expect(readFileSync(join(ROOT, 'hack', 'e2e', 'lib.ts'), 'utf8')).toContain('spawn(process.execPath, [...WORKER_NODE_FLAGS, ');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  expect(pkg.scripts.worker).toBe(`node ${WORKER_NODE_FLAGS.join(' ')} --import tsx src/worker.ts`);
  expect(readFileSync(join(ROOT, 'hack', 'demo.sh'), 'utf8')).toContain(`FERRY=(node ${WORKER_NODE_FLAGS.join(' ')} --import tsx src/client.ts)`);
});

test('a script with the ferry shebang runs with a 512 MiB old generation and 2 MiB semi-spaces', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-heap-'));
  try {
    const script = join(dir, 'heap.js');
    const shebang = readFileSync(join(ROOT, 'src', 'client.ts'), 'utf8').split('\n')[0];
    writeFileSync(script, `${shebang}\nconst v8 = require('v8');\nconsole.log(JSON.stringify({ limit: v8.getHeapStatistics().heap_size_limit, newSpace: v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size, argv: process.execArgv }));\n`);
    chmodSync(script, 0o755);
    const out = JSON.parse(execFileSync(script, { encoding: 'utf8', env: { ...process.env, PATH: `${join(process.execPath, '..')}:${process.env.PATH}`, NODE_OPTIONS: '' } }));
    expect(out.argv).toEqual([...WORKER_NODE_FLAGS]);
    // heap_size_limit = old generation + young generation (3 semi-spaces' worth in V8's accounting)
    expect(out.limit / 2 ** 20).toBeGreaterThanOrEqual(512);
    expect(out.limit / 2 ** 20).toBeLessThan(530);
    expect(out.newSpace / 2 ** 20).toBeLessThanOrEqual(4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
