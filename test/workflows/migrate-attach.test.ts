/**
 * `ferry migrate` starts or attaches idempotently (issue 12): concurrent or retried calls with the
 * same id and plan give one migration run; the calls that did not start it report that they attached.
 * Against a real Temporal dev server and a worker with the simulated clusters.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { EXIT } from '../../src/cli/exit-codes';
import { planDifferences } from '../../src/cli/operations';
import { runCli } from '../../src/cli/program';
import type { MigrationState } from '../../src/core/state';
import { createWorker } from '../../src/worker';
import { FakeCluster } from './support/fake-cluster';
import { startTemporal, testPlan, unique, waitFor, workflowBundle } from './support/env';

jest.setTimeout(90_000);

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

let env: TestWorkflowEnvironment;
let dir: string;
let worker: Worker;
let running: Promise<void>;
let fake: FakeCluster;
const taskQueue = unique('attach');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-attach-'));
  [env] = await Promise.all([startTemporal(), workflowBundle()]);
  fake = new FakeCluster({ source: { shop: { pvcs: [{ name: 'data', bytes: 100 }], workloads: [{ name: 'web', replicas: 1 }] } }, transferMs: 1500 });
  worker = await createWorker({ connection: env.nativeConnection, taskQueue, activities: fake.activities(), workflowBundle: await workflowBundle() });
  running = worker.run();
  writeFileSync(
    join(dir, 'kubeconfig'),
    'apiVersion: v1\nkind: Config\nclusters: [{ name: c, cluster: { server: "https://127.0.0.1:1" } }]\nusers: [{ name: u, user: { token: t } }]\n' +
      'contexts: [{ name: src, context: { cluster: c, user: u } }, { name: dst, context: { cluster: c, user: u } }]\n',
  );
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
  rmSync(dir, { recursive: true, force: true });
});

async function ferry(...args: string[]): Promise<{ code: number; stdout: string; stderr: string; json: () => unknown }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runCli(args, { stdout, stderr, env: { ...process.env, TEMPORAL_ADDRESS: env.address, FERRY_TASK_QUEUE: taskQueue, KUBECONFIG: join(dir, 'kubeconfig') } });
  return { code, stdout: stdout.text, stderr: stderr.text, json: () => JSON.parse(stdout.text) };
}

function planFile(destination: string, extra = ''): string {
  const file = join(dir, `${unique('plan')}.yaml`);
  writeFileSync(file, `source: { context: src }\ndestination: { context: dst }\nnamespaces: ["shop:${destination}"]\nstageIntervalSeconds: 0\n${extra}`);
  return file;
}

/** The runs Temporal has of workflow id `id` (visibility). */
async function runsOf(id: string): Promise<string[]> {
  const runs: string[] = [];
  for await (const w of env.client.workflow.list({ query: `WorkflowId = "${id}"` })) runs.push(w.runId);
  return runs;
}

test('two concurrent migrate starts of one plan give one workflow run; the second reports it attached; a retry attaches and follows it', async () => {
  const id = unique('attach-mig');
  const plan = planFile('shop-attach');
  const [one, two] = await Promise.all([ferry('migrate', '-f', plan, '--id', id, '--detach', '-o', 'json'), ferry('migrate', '-f', plan, '--id', id, '--detach', '-o', 'json')]);
  expect([one.code, two.code]).toEqual([EXIT.OK, EXIT.OK]);
  const answers = [one.json(), two.json()] as { id: string; runId: string; attached: boolean }[];
  expect(answers.map((a) => a.attached).sort()).toEqual([false, true]);
  expect(answers[0]!.runId).toBe(answers[1]!.runId);
  expect(await waitFor('the run in visibility', async () => ((await runsOf(id)).length > 0 ? runsOf(id) : undefined))).toEqual([answers[0]!.runId]);

  // A retried call (human output, following) attaches to the same run and follows it to its end.
  const retried = await ferry('migrate', '-f', plan, '--id', id, '-o', 'json');
  expect(retried.stderr).toMatch(new RegExp(`Migration ${id} is already running with this plan \\(started \\d{4}-[^)]+\\): attached to it, no second migration started`));
  expect(retried.code).toBe(EXIT.OK);
  expect(retried.json() as MigrationState).toMatchObject({ migrationId: id, status: 'succeeded' });
  expect(await runsOf(id)).toEqual([answers[0]!.runId]);
  // The migration ran once: one preflight, one sync per pass.
  expect(fake.journal().filter((e) => e.event === 'start' && e.activity === 'preflight' && e.activityKey!.startsWith(`${id}|`))).toHaveLength(1);
});

test('the same id with another plan while it runs: exit 2, naming the fields that differ; nothing started', async () => {
  const id = unique('attach-other');
  const first = await ferry('migrate', '-f', planFile('shop-other'), '--id', id, '--detach', '-o', 'json');
  expect(first.json()).toMatchObject({ attached: false });
  const other = await ferry('migrate', '-f', planFile('shop-other', 'stagePasses: 3\n'), '--id', id, '--detach');
  expect(other.code).toBe(EXIT.INVALID_INPUT);
  expect(other.stderr).toContain(`a migration with id ${id} is already running with another plan (stagePasses differs): follow it with \`ferry status ${id} --follow\`, or give this plan another --id`);
  expect(await runsOf(id)).toHaveLength(1);
  expect((await ferry('status', id, '--follow', '-o', 'json')).code).toBe(EXIT.OK);
});

test('planDifferences compares plans by value, whatever the key order', () => {
  const p = testPlan({ namespaces: ['a', 'b'] });
  const reordered = Object.fromEntries(Object.entries(p).reverse());
  expect(planDifferences(JSON.parse(JSON.stringify(reordered)), p)).toEqual([]);
  expect(planDifferences({ ...p, concurrency: 9 }, p)).toEqual(['concurrency']);
  expect(planDifferences(undefined, p)).toEqual(['plan']);
});
