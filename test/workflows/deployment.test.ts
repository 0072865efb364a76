/**
 * The deployment files (docker-compose.yml, Containerfile): no container engine runs here, so they are
 * checked as data — the services and their wiring, Ferry's search attributes registered with the
 * types the code declares — and the worker's `bundle` step of the image build is run for real.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { searchAttributeCliArgs } from '../../src/workflows/search-attributes';
import { main as workerMain } from '../../src/worker';

jest.setTimeout(60_000);

const ROOT = join(__dirname, '..', '..');

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  command?: string[];
  stop_grace_period?: string;
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const s = compose.services;

test('docker-compose.yml: Temporal on PostgreSQL with schema set-up, UI on 8080, the Ferry worker', () => {
  expect(Object.keys(s).sort()).toEqual(['ferry-worker', 'postgresql', 'temporal', 'temporal-schema', 'temporal-setup', 'temporal-ui']);
  // Start order: database healthy → schema applied → server → namespace and search attributes → worker.
  expect(s['temporal-schema']!.depends_on).toEqual({ postgresql: { condition: 'service_healthy' } });
  expect(s.temporal!.depends_on).toEqual({ 'temporal-schema': { condition: 'service_completed_successfully' } });
  expect(s['ferry-worker']!.depends_on).toEqual({ 'temporal-setup': { condition: 'service_completed_successfully' } });
  expect(s['temporal-schema']!.image).toMatch(/^temporalio\/admin-tools:/);
  expect(s['temporal-schema']!.command!.join('\n')).toMatch(/update-schema -d \/etc\/temporal\/schema\/postgresql\/v12\/visibility\/versioned/);
  expect(s.temporal!.image).toMatch(/^temporalio\/server:/);
  expect(s.temporal!.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'postgresql', POSTGRES_USER: 'temporal', POSTGRES_PWD: 'temporal' });
  expect(s['temporal-ui']!.ports).toEqual(['8080:8080']);
  expect(s['temporal-ui']!.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');

  const worker = s['ferry-worker']!;
  expect(worker.build).toEqual({ context: '.', dockerfile: 'Containerfile' });
  expect(worker.environment).toMatchObject({ TEMPORAL_ADDRESS: 'temporal:7233', KUBECONFIG: '/home/node/.kube/config' });
  expect(worker.volumes).toEqual([expect.stringMatching(/:\/home\/node\/\.kube\/config:ro$/)]);
  expect(worker.stop_grace_period).toBe('30s'); // > the worker's 20 s shutdownGraceTime
});

test('docker-compose.yml registers every Ferry search attribute with its type', () => {
  const setup = s['temporal-setup']!.command!.join('\n');
  for (const arg of searchAttributeCliArgs()) {
    const [name, type] = arg.split('=');
    expect(setup).toContain(`--name ${name} --type ${type}`);
  }
});

test('Containerfile: node 20, npm ci, compiled worker with a prebuilt workflow bundle', () => {
  const file = readFileSync(join(ROOT, 'Containerfile'), 'utf8');
  expect(file).toMatch(/^FROM node:20-bookworm-slim AS build$/m);
  expect(file).toMatch(/^RUN npm ci$/m);
  expect(file).toMatch(/node dist\/worker\.js bundle dist\/workflow-bundle\.js/);
  // node with the worker's heap flags (test/unit/worker-heap.test.ts checks them) runs the compiled worker
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(file)![1]!) as string[];
  expect([entrypoint[0], entrypoint[entrypoint.length - 1]]).toEqual(['node', 'dist/worker.js']);
});

test('the worker writes the workflow bundle the image build uses', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bundle-'));
  try {
    const file = join(dir, 'workflow-bundle.js');
    expect(await workerMain(['bundle', file])).toBe(0);
    expect(statSync(file).size).toBeGreaterThan(10_000);
    const code = readFileSync(file, 'utf8');
    for (const wf of ['migrationWorkflow', 'namespaceWorkflow', 'pvcTransferWorkflow']) expect(code).toContain(wf);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
