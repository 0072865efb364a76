/**
 * The `ferry` CLI against a real Temporal dev server and a worker with the simulated clusters:
 * migrate (followed and detached), status, list, the operator's decisions, exit codes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { FailureType } from '../../src/core/types';
import { EXIT } from '../../src/cli/exit-codes';
import type { MigrationView } from '../../src/cli/operations';
import { runCli } from '../../src/cli/program';
import { createWorker } from '../../src/worker';
import type { CleanupOutcome, SweepEntry } from '../../src/cli/cleanup';
import { namespaceWorkflowId } from '../../src/workflows/definitions';
import type { MigrationState } from '../../src/core/state';
import { FakeCluster } from './support/fake-cluster';
import { startTemporal, unique, waitFor, workflowBundle } from './support/env';

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
const taskQueue = unique('cli');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-cli-'));
  [env] = await Promise.all([startTemporal(), workflowBundle()]);
  fake = new FakeCluster({
    source: { shop: { pvcs: [{ name: 'data', bytes: 100 }, { name: 'db', bytes: 50 }], workloads: [{ name: 'web', replicas: 1 }] }, blog: { pvcs: [{ name: 'content', bytes: 10 }] } },
    transferMs: 20,
  });
  worker = await createWorker({ connection: env.nativeConnection, taskQueue, activities: fake.activities(), workflowBundle: await workflowBundle() });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
  rmSync(dir, { recursive: true, force: true });
});

/** A kubeconfig naming the contexts of the test plans (src, dst): `ferry migrate` checks them locally. */
function kubeconfigFile(): string {
  const file = join(dir, 'kubeconfig');
  writeFileSync(
    file,
    'apiVersion: v1\nkind: Config\nclusters: [{ name: c, cluster: { server: "https://127.0.0.1:1" } }]\nusers: [{ name: u, user: { token: t } }]\n' +
      'contexts: [{ name: src, context: { cluster: c, user: u } }, { name: dst, context: { cluster: c, user: u } }]\n',
  );
  return file;
}

/** Runs `ferry <args>` in this process against the test server. */
async function ferry(...args: string[]): Promise<{ code: number; stdout: string; stderr: string; json: () => unknown }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runCli(args, { stdout, stderr, env: { ...process.env, TEMPORAL_ADDRESS: env.address, FERRY_TASK_QUEUE: taskQueue, KUBECONFIG: kubeconfigFile() }, clustersFor: () => fake.clusters() });
  return { code, stdout: stdout.text, stderr: stderr.text, json: () => JSON.parse(stdout.text) };
}

/** A plan file; each test migrates into its own destination namespace (the fake clusters are shared). */
function planFile(namespace: string): string {
  const file = join(dir, `${unique('plan')}.yaml`);
  writeFileSync(file, `source: { context: src }\ndestination: { context: dst }\nnamespaces: ["${namespace}"]\nstageIntervalSeconds: 0\n`);
  return file;
}

test('migrate follows the migration to its summary; status and list find it', async () => {
  const id = unique('cli-mig');
  const r = await ferry('migrate', '-f', planFile('shop'), '--id', id, '--namespaces', 'shop,blog:blog2', '--output', 'json');
  expect(r.stderr).toContain(`Started migration ${id}`);
  expect(r.code).toBe(EXIT.OK);
  const summary = r.json() as MigrationState;
  expect(summary).toMatchObject({ migrationId: id, status: 'succeeded', totals: { pvcs: 3, pvcsDone: 3 } });
  expect(summary.namespaces.map((n) => n.destination)).toEqual(['shop', 'blog2']); // --namespaces overrode the file

  const status = await ferry('status', id);
  expect(status.code).toBe(EXIT.OK);
  expect(status.stdout).toMatch(new RegExp(`^Migration ${id}: succeeded`));
  expect(status.stdout).toMatch(/PVCs: 3\/3 done, 0 skipped, 0 failed/);
  expect(status.stdout).toMatch(/data\s+DONE\s+syncs 2\s+200 B sent/);

  const listed = await waitFor('the migration in the list', async () => {
    const l = await ferry('list', '--phase', 'succeeded', '--output', 'json');
    const rows = l.json() as { id: string; phase: string; namespaces: string[] }[];
    return rows.find((x) => x.id === id);
  });
  expect(listed).toMatchObject({ phase: 'succeeded', namespaces: ['shop', 'blog'] });
  expect((await ferry('list')).stdout).toMatch(/^ID\s+STATUS\s+PHASE/);
});

test('a failed PVC: status shows it, invalid decisions exit 2, retry without --namespace, then follow', async () => {
  fake.failTransfer({ namespace: 'shop', pvc: 'db', times: 1, type: FailureType.NoSpace, message: 'No space left on device' });
  const id = unique('cli-fail');
  const started = await ferry('migrate', '-f', planFile('shop:shop-fail'), '--id', id, '--detach', '--output', 'json');
  expect(started.code).toBe(EXIT.OK);
  expect(started.json()).toMatchObject({ id, workflowId: id });

  const view = await waitFor('db to fail', async () => {
    const v = (await ferry('status', id, '--output', 'json')).json() as MigrationView;
    // The namespace reports to the migration asynchronously: wait for both.
    return v.namespaces.shop?.pvcs.find((p) => p.name === 'db')?.status === 'failed' && v.state?.phase === 'awaiting-decision' ? v : undefined;
  });
  expect(view.state?.namespaces[0]?.awaitingDecision).toEqual(['db']);
  const human = await ferry('status', id);
  expect(human.stdout).toMatch(/db\s+FAILED .*No space left on device \(FerryNoSpace\)/);
  expect(human.stdout).toContain(`ferry retry ${id} --namespace shop --pvc db`);

  const wrong = await ferry('skip', id, '--pvc', 'data');
  expect(wrong.code).toBe(EXIT.INVALID_INPUT);
  expect(wrong.stderr).toMatch(/rejected: PVC data is (synced|syncing|pending|done), not failed/);
  expect((await ferry('retry', id, '--pvc', 'nope', '--namespace', 'shop')).code).toBe(EXIT.INVALID_INPUT);
  expect((await ferry('cutover', id)).code).toBe(EXIT.INVALID_INPUT); // automatic cutover

  const retry = await ferry('retry', id, '--pvc', 'db');
  expect(retry).toMatchObject({ code: EXIT.OK, stdout: 'retry of PVC shop/db accepted.\n' });
  const followed = await ferry('status', id, '--follow');
  expect(followed.code).toBe(EXIT.OK);
  expect(followed.stdout).toMatch(new RegExp(`^Migration ${id}: succeeded`));
  expect(followed.stderr).toMatch(/^\d\d:\d\d:\d\d shop\/db: /m); // one line per change (stderr is not a terminal)
});

test('a rolled-back migration exits 1; exit codes for unknown ids, bad input and no Temporal', async () => {
  fake.hold = () => true;
  const id = unique('cli-rb');
  try {
    expect((await ferry('migrate', '-f', planFile('shop:shop-rb'), '--id', id, '--detach')).code).toBe(EXIT.OK);
    await waitFor('a transfer to run', async () => fake.runningTransfers > 0);
    const rb = await ferry('rollback', id, '--reason', 'test');
    expect(rb.code).toBe(EXIT.OK);
    expect(rb.stdout).toMatch(/Rollback of .* started for: shop/);
    const followed = await ferry('status', id, '--follow', '--output', 'json');
    expect(followed.code).toBe(EXIT.MIGRATION_FAILED);
    expect(followed.json()).toMatchObject({ status: 'rolled-back' });
  } finally {
    fake.hold = () => false;
  }

  expect((await ferry('status', 'no-such-migration')).code).toBe(EXIT.NOT_FOUND);
  expect((await ferry('list', '--phase', 'sleeping')).code).toBe(EXIT.INVALID_INPUT);
  expect((await ferry('migrate', '-f', planFile('shop'), '--id', 'bad id!')).code).toBe(EXIT.INVALID_INPUT);
  expect((await ferry('migrate', '--namespaces', 'Bad_Name')).code).toBe(EXIT.INVALID_INPUT);
  expect((await ferry('frobnicate')).code).toBe(EXIT.INVALID_INPUT);

  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runCli(['status', 'x'], { stdout, stderr, env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9' } });
  expect(code).toBe(EXIT.TEMPORAL_UNREACHABLE);
  expect(stderr.text).toMatch(/cannot reach Temporal at 127.0.0.1:9/);
});

/** A plan file with several namespaces and extra top-level YAML. */
function planFileOf(namespaces: string[], extra = ''): string {
  const file = join(dir, `${unique('plan')}.yaml`);
  writeFileSync(file, `source: { context: src }\ndestination: { context: dst }\nnamespaces: ${JSON.stringify(namespaces)}\nstageIntervalSeconds: 0\n${extra}`);
  return file;
}

test('a finished migration cannot be started again under its id (issue 8 item 2)', async () => {
  const id = unique('cli-dup');
  const plan = planFileOf(['blog:blog-dup']);
  expect((await ferry('migrate', '-f', plan, '--id', id)).code).toBe(EXIT.OK);
  const again = await ferry('migrate', '-f', plan, '--id', id);
  expect(again.code).toBe(EXIT.INVALID_INPUT);
  expect(again.stderr).toMatch(new RegExp(`migration ${id} already finished at \\d{4}-\\d\\d-\\d\\dT[^ ]+ \\(completed\\).*Use another --id`));
});

test('a failed migration may run again under its id, but not into the PVCs a namespace already cut over (issue 8 item 2)', async () => {
  fake.failTransfer({ namespace: 'shop', pvc: 'db', final: true, times: 1, type: FailureType.Partial, message: 'rsync exit 23' });
  const id = unique('cli-rerun');
  const plan = planFileOf(['shop:shop-rerun', 'blog:blog-rerun']);
  expect((await ferry('migrate', '-f', plan, '--id', id, '--detach')).code).toBe(EXIT.OK);
  await waitFor('db to fail in its final sync', async () => {
    const v = (await ferry('status', id, '--output', 'json')).json() as MigrationView;
    return v.namespaces.shop?.pvcs.find((p) => p.name === 'db')?.status === 'failed' && v.state?.namespaces.find((n) => n.source === 'blog')?.status === 'succeeded';
  });
  expect((await ferry('abort', id, '--pvc', 'db', '--namespace', 'shop')).code).toBe(EXIT.OK);
  expect((await ferry('status', id, '--follow')).code).toBe(EXIT.MIGRATION_FAILED);

  // Temporal accepts the id again (the last run failed); preflight refuses blog's cut-over PVC, not
  // shop's data (its final sync had succeeded, but shop rolled back: its marks were removed).
  const rerun = await ferry('migrate', '-f', plan, '--id', id, '--output', 'json');
  expect(rerun.code).toBe(EXIT.MIGRATION_FAILED);
  const summary = rerun.json() as MigrationState;
  expect(summary.problems).toEqual([{ subject: 'pvc blog-rerun/content', message: `was cut over by migration ${id}` }]);
  // With the plan's explicit consent it runs.
  const consent = await ferry('migrate', '-f', planFileOf(['shop:shop-rerun', 'blog:blog-rerun'], 'overwriteCutoverPVCs: true\n'), '--id', id);
  expect(consent.code).toBe(EXIT.OK);
});

test('restoring the source fails after the final sync: exit 5 and a loud line with the commands (issue 8 item 16)', async () => {
  fake.unquiesceFailsIn = { namespaces: ['shop'], message: 'deployments.apps "web" is forbidden: cannot patch' };
  const id = unique('cli-unq');
  try {
    const r = await ferry('migrate', '-f', planFileOf(['shop:shop-unq']), '--id', id);
    expect(r.code).toBe(EXIT.SOURCE_NOT_RESTORED);
    expect(r.stdout).toMatch(/!!! SOURCE NOT RESTORED: namespace shop is migrated, but its source applications are still scaled down \(.*forbidden: cannot patch/);
    expect(r.stdout).toContain('kubectl -n shop scale deployment/web --replicas=1');
    const status = await ferry('status', id);
    expect(status.code).toBe(EXIT.SOURCE_NOT_RESTORED);
    expect(status.stdout).toContain('!!! SOURCE NOT RESTORED');
    const json = await ferry('status', id, '--follow', '--output', 'json');
    expect(json.code).toBe(EXIT.SOURCE_NOT_RESTORED);
    expect(json.stderr).toContain('!!! SOURCE NOT RESTORED');
  } finally {
    fake.unquiesceFailsIn = undefined;
  }
});

test('status after a cancel during the final sync: applications restored, PVCs cancelled, no retry hint (issue 8 item 20)', async () => {
  fake.hold = (req) => req.final;
  const id = unique('cli-cx');
  try {
    expect((await ferry('migrate', '-f', planFileOf(['shop:shop-cx']), '--id', id, '--detach')).code).toBe(EXIT.OK);
    await waitFor('the final syncs to run', async () => {
      const v = (await ferry('status', id, '--output', 'json')).json() as MigrationView;
      return v.namespaces.shop?.pvcs.every((p) => p.running?.final) ? v : undefined;
    });
    expect((await ferry('status', id)).stdout).toMatch(/shop → shop-cx: final-sync.*applications down/);
    expect((await ferry('cancel', id)).code).toBe(EXIT.OK);
    expect((await ferry('status', id, '--follow')).code).toBe(EXIT.MIGRATION_FAILED);
  } finally {
    fake.hold = () => false;
  }
  const status = await ferry('status', id);
  expect(status.stdout).toMatch(/shop → shop-cx: rolled-back, 1 stage pass, downtime [\d.]+s, applications restored at \d{4}-/);
  expect(status.stdout).not.toMatch(/applications down/);
  expect(status.stdout).toMatch(/data\s+CANCELLED/);
  expect(status.stdout).not.toMatch(/SYNCING/);
  expect(status.stdout).not.toContain('ferry retry');
  const st = ((await ferry('status', id, '--output', 'json')).json() as MigrationView).namespaces.shop!;
  expect(st.pvcs.map((p) => p.status)).toEqual(['cancelled', 'cancelled']);
  expect(st.downtime?.endedAt).toBeDefined();
});

test('ferry cleanup: a terminated migration is cleaned up and its source restored; refused while anything of it runs (issue 8 item 9)', async () => {
  fake.hold = (req) => req.final;
  const id = unique('cli-term');
  const plan = planFileOf(['shop:shop-term']);
  try {
    expect((await ferry('migrate', '-f', plan, '--id', id, '--detach')).code).toBe(EXIT.OK);
    await waitFor('the final syncs to run (source quiesced)', async () => {
      const v = (await ferry('status', id, '--output', 'json')).json() as MigrationView;
      return v.namespaces.shop?.pvcs.every((p) => p.running?.final) ? v : undefined;
    });
    expect(fake.replicas('shop', 'web')).toBe(0);

    const whileRunning = await ferry('cleanup', id);
    expect(whileRunning.code).toBe(EXIT.INVALID_INPUT);
    expect(whileRunning.stderr).toMatch(/is running and cleans up after itself: `ferry cancel/);

    // Temporal's history limit terminates the migration workflow: its namespace workflow runs on.
    await env.client.workflow.getHandle(id).terminate('history limit (simulated)');
    const childRuns = await ferry('cleanup', id);
    expect(childRuns.code).toBe(EXIT.INVALID_INPUT);
    expect(childRuns.stderr).toContain(`namespace workflow ${namespaceWorkflowId(id, 'shop')} still runs`);
    // ... and then the namespace workflow too: nothing is left to roll back.
    await env.client.workflow.getHandle(namespaceWorkflowId(id, 'shop')).terminate('history limit (simulated)');
  } finally {
    fake.hold = () => false;
  }
  expect((await ferry('cancel', id)).code).toBe(EXIT.INVALID_INPUT); // nothing of it runs any more
  expect(fake.objectsUnder('destination/server/shop-term/')).toHaveLength(1);

  const dry = await ferry('cleanup', id, '--dry-run');
  expect(dry.code).toBe(EXIT.OK);
  expect(fake.objectsUnder('destination/server/shop-term/')).toHaveLength(1);
  expect(fake.replicas('shop', 'web')).toBe(0);

  // The plan comes from the workflow's stored input.
  const r = await ferry('cleanup', id, '--output', 'json');
  expect(r.code).toBe(EXIT.OK);
  const outcome = r.json() as CleanupOutcome;
  expect(outcome).toMatchObject({ id, workflowStatus: 'TERMINATED', planFrom: 'workflow', restore: { restored: ['Deployment shop/web'] }, cleanup: { destination: 2 } });
  expect(fake.replicas('shop', 'web')).toBe(1);
  expect([...fake.objectsUnder('destination/server/shop-term/'), ...fake.objectsUnder('destination/endpoint/shop-term/')]).toEqual([]);
  expect(fake.has('destination/pvc/shop-term/data')).toBe(true); // PVCs are never deleted

  expect((await ferry('cleanup', 'no-such-migration')).code).toBe(EXIT.NOT_FOUND);
  expect((await ferry('cleanup')).code).toBe(EXIT.INVALID_INPUT);
});

test('ferry cleanup --sweep: objects of ended migrations go, those of running or unknown ones stay (issue 8 item 9)', async () => {
  // Leftovers of an ended migration (it failed at preflight, so it is known and not running).
  fake.preflightProblems = [{ subject: 'x', message: 'simulated' }];
  const ended = unique('cli-ended');
  expect((await ferry('migrate', '-f', planFileOf(['blog:blog-ended']), '--id', ended)).code).toBe(EXIT.MIGRATION_FAILED);
  fake.preflightProblems = [];
  fake.seed('destination/server/blog-ended/ferry-server', ended);
  fake.seed('source/client/blog/content-9', ended);
  // Objects of a migration this Temporal does not know.
  fake.seed('destination/endpoint/elsewhere/ferry-endpoint', 'migration-of-another-temporal');
  // A running migration (held in its stage sync) whose source namespace is blog as well.
  fake.hold = (req) => req.namespace.source === 'blog' && !req.final;
  const live = unique('cli-live');
  try {
    expect((await ferry('migrate', '-f', planFileOf(['blog:blog-live']), '--id', live, '--detach')).code).toBe(EXIT.OK);
    await waitFor('the live migration to run its stage sync', async () => fake.has('destination/server/blog-live/ferry-server') && fake.runningTransfers > 0);

    const r = await ferry('cleanup', '--sweep', '-f', planFileOf(['blog']), '--output', 'json');
    expect(r.code).toBe(EXIT.OK);
    const entries = r.json() as SweepEntry[];
    const byId = (x: string | undefined) => entries.find((e) => e.id === x);
    expect(byId(ended)).toMatchObject({ action: 'cleaned', outcome: { cleanup: { source: 1, destination: 1 } } });
    // The running migration uses blog: the ended one's cleanup does not touch blog's workloads.
    expect(byId(ended)?.outcome?.restore.notes).toEqual(['namespace blog: another running migration uses it; its workloads are left as they are']);
    expect(byId(live)).toMatchObject({ action: 'left-running' });
    expect(entries.find((e) => e.id === undefined)).toMatchObject({ action: 'left-unknown', found: ['destination/elsewhere (1)'] });
    expect(fake.objectsUnder('destination/server/blog-ended/')).toEqual([]);
    expect(fake.objectsUnder('source/client/blog/content-9')).toEqual([]);
    expect(fake.has('destination/server/blog-live/ferry-server')).toBe(true);
    expect(fake.has('destination/endpoint/elsewhere/ferry-endpoint')).toBe(true);
    expect((await ferry('cleanup', '--sweep')).code).toBe(EXIT.INVALID_INPUT); // needs -f
  } finally {
    fake.hold = () => false;
  }
  expect((await ferry('cancel', live)).code).toBe(EXIT.OK);
  expect((await ferry('status', live, '--follow')).code).toBe(EXIT.MIGRATION_FAILED);
});

test('ferry cancel reaches the namespace workflows of a terminated migration: they roll back themselves (issue 8 item 9)', async () => {
  fake.hold = (req) => req.final;
  const id = unique('cli-orphan');
  try {
    expect((await ferry('migrate', '-f', planFileOf(['shop:shop-orphan']), '--id', id, '--detach')).code).toBe(EXIT.OK);
    await waitFor('the final syncs to run (source quiesced)', async () => {
      const v = (await ferry('status', id, '--output', 'json')).json() as MigrationView;
      return v.namespaces.shop?.pvcs.every((p) => p.running?.final) ? v : undefined;
    });
    await env.client.workflow.getHandle(id).terminate('history limit (simulated)');
    const c = await ferry('cancel', id);
    expect(c.code).toBe(EXIT.OK);
    expect(c.stdout).toContain(`its namespace workflows still running: ${namespaceWorkflowId(id, 'shop')}`);
    const ns = env.client.workflow.getHandle(namespaceWorkflowId(id, 'shop'));
    await waitFor('the namespace workflow to end', async () => (await ns.describe()).status.name !== 'RUNNING');
  } finally {
    fake.hold = () => false;
  }
  expect(fake.replicas('shop', 'web')).toBe(1);
  expect([...fake.objectsUnder('destination/server/shop-orphan/'), ...fake.objectsUnder('destination/endpoint/shop-orphan/')]).toEqual([]);
  // Nothing is left for `ferry cleanup` to do, and it may run.
  expect((await ferry('cleanup', id, '--output', 'json')).json()).toMatchObject({ restore: { restored: [] }, cleanup: { source: 0, destination: 0 } });
});

test('ferry cleanup leaves a cut-over source down under keepSourceQuiesced: a skipped PVC or a plan given with -f changes nothing (review A1)', async () => {
  fake.failTransfer({ namespace: 'shop', pvc: 'db', final: false, times: 1, type: FailureType.NoSpace, message: 'No space left on device' });
  const id = unique('cli-keep');
  try {
    expect((await ferry('migrate', '-f', planFileOf(['shop:shop-keep'], 'keepSourceQuiesced: true\n'), '--id', id, '--detach')).code).toBe(EXIT.OK);
    await waitFor('db to fail', async () => ((await ferry('status', id, '--output', 'json')).json() as MigrationView).state?.phase === 'awaiting-decision');
    expect((await ferry('skip', id, '--pvc', 'db')).code).toBe(EXIT.OK);
    expect((await ferry('status', id, '--follow')).code).toBe(EXIT.OK);
    // Cut over, source kept down; the skipped PVC carries no cutover mark.
    expect(fake.replicas('shop', 'web')).toBe(0);
    expect([fake.cutoverMark('shop-keep', 'data'), fake.cutoverMark('shop-keep', 'db')]).toEqual([id, undefined]);

    const stay = 'namespace shop: cut over with keepSourceQuiesced: true; its source workloads stay down';
    const stored = await ferry('cleanup', id, '--output', 'json');
    expect(stored.code).toBe(EXIT.OK);
    expect((stored.json() as CleanupOutcome).restore).toEqual({ restored: [], notes: [stay] });
    // A plan without keepSourceQuiesced given with -f does not override what the migration ran with.
    const fromFile = await ferry('cleanup', id, '-f', planFileOf(['shop:shop-keep']), '--output', 'json');
    expect(fromFile.code).toBe(EXIT.OK);
    expect((fromFile.json() as CleanupOutcome).restore).toEqual({ restored: [], notes: [stay] });
    expect(fake.replicas('shop', 'web')).toBe(0);
    expect(fake.cutoverMark('shop-keep', 'data')).toBe(id); // the marks of a namespace that cut over stay
  } finally {
    fake.addWorkload('shop', 'web', 1); // the source back up for the next tests
  }
});

test('ferry cleanup removes the cutover marks of a namespace that did not cut over: the id can run again (review B9)', async () => {
  fake.hold = (req) => req.final && req.pvc.name === 'db';
  const id = unique('cli-marks');
  const plan = planFileOf(['shop:shop-marks']);
  try {
    expect((await ferry('migrate', '-f', plan, '--id', id, '--detach')).code).toBe(EXIT.OK);
    await waitFor("data's final sync to be done and db's to run", async () => fake.cutoverMark('shop-marks', 'data') === id && fake.runningTransfers > 0);
    await env.client.workflow.getHandle(id).terminate('history limit (simulated)');
    await env.client.workflow.getHandle(namespaceWorkflowId(id, 'shop')).terminate('history limit (simulated)');
  } finally {
    fake.hold = () => false;
  }
  // The held sync's activity outlives its terminated workflow: released, it completes (and marks db).
  await waitFor('the released sync to end', async () => fake.runningTransfers === 0);
  const r = await ferry('cleanup', id, '--output', 'json');
  expect(r.code).toBe(EXIT.OK);
  const outcome = r.json() as CleanupOutcome;
  expect(outcome.restore.restored).toEqual(['Deployment shop/web']);
  expect(outcome.cleanup?.cutoverMarksCleared).toContain('shop-marks/data');
  expect([fake.cutoverMark('shop-marks', 'data'), fake.cutoverMark('shop-marks', 'db')]).toEqual([undefined, undefined]);
  expect(fake.replicas('shop', 'web')).toBe(1);
  expect((await ferry('migrate', '-f', plan, '--id', id)).code).toBe(EXIT.OK);
});

test('ferry migrate refuses an id whose namespace workflows still run, naming ferry cancel (review B10)', async () => {
  fake.hold = (req) => req.final;
  const id = unique('cli-reuse');
  const plan = planFileOf(['shop:shop-reuse']);
  try {
    expect((await ferry('migrate', '-f', plan, '--id', id, '--detach')).code).toBe(EXIT.OK);
    await waitFor('the final syncs to run', async () => {
      const v = (await ferry('status', id, '--output', 'json')).json() as MigrationView;
      return v.namespaces.shop?.pvcs.every((p) => p.running?.final) ? v : undefined;
    });
    await env.client.workflow.getHandle(id).terminate('history limit (simulated)');
    const again = await ferry('migrate', '-f', plan, '--id', id);
    expect(again.code).toBe(EXIT.INVALID_INPUT);
    expect(again.stderr).toContain(`its namespace workflow ${namespaceWorkflowId(id, 'shop')} still runs: \`ferry cancel ${id}\` rolls it back`);
    expect((await ferry('cancel', id)).code).toBe(EXIT.OK);
    const ns = env.client.workflow.getHandle(namespaceWorkflowId(id, 'shop'));
    await waitFor('the namespace workflow to end', async () => (await ns.describe()).status.name !== 'RUNNING');
  } finally {
    fake.hold = () => false;
  }
  expect(fake.replicas('shop', 'web')).toBe(1);
  // Once nothing of it runs, the id may be used again.
  expect((await ferry('migrate', '-f', plan, '--id', id)).code).toBe(EXIT.OK);
});
