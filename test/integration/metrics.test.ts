/**
 * Metrics through the real activity path, without the lab: runTransfer (the real activity, its
 * wrapper `run`, runClientTransfer, followTransferPod, the rsync parser and verdict) runs in a
 * MockActivityEnvironment against an in-memory source cluster whose client pod prints a recorded
 * rsync run (test/fixtures/rsync). The metrics endpoint is scraped over HTTP while the sync runs (the
 * rate gauge, the active client pod) and after it: the byte and file counters equal the TransferResult
 * the activity returned; a failed sync is counted by its failure type.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../../src/activities';
import type { TransferRequest } from '../../src/activities/contract';
import type { CleanupReport, PVCInfo, TransferResult } from '../../src/core/types';
import type { KubeClient, ObjectRef } from '../../src/k8s/client';
import { credentialsSecret } from '../../src/migration/credentials';
import { FerryMetrics, startMetricsServer, type MetricsServer } from '../../src/metrics';
import { parsePlan } from '../../src/plan/load';
import { serverTLSSecretName } from '../../src/statetransfer/namespace-transfer';
import { objectLabels } from '../../src/statetransfer/names';
import { secret as objectSecret } from '../../src/statetransfer/objects';
import { createMigrationCertificates, serverSecretData } from '../../src/statetransfer/tls/certificates';
import { scrape, sumOf } from '../support/prometheus';

jest.setTimeout(60_000);

const FIXTURES = join(__dirname, '..', 'fixtures', 'rsync');
const fixture = (name: string) => ({ out: readFileSync(join(FIXTURES, `${name}.out`), 'utf8'), exit: Number(readFileSync(join(FIXTURES, `${name}.exit`), 'utf8').trim()) });
const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } as never;
const key = (o: { kind?: string; metadata?: { namespace?: string; name?: string } } | ObjectRef) =>
  'metadata' in o ? `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}` : `${(o as ObjectRef).kind}/${(o as ObjectRef).namespace}/${(o as ObjectRef).name}`;

/** Both clusters in one map (namespace shop on both sides); pods start Running; `log` is every container's log. */
class FakeCluster {
  objects = new Map<string, KubernetesObject>();
  log = '';
  private uid = 0;
  async get<T>(ref: ObjectRef): Promise<T | undefined> {
    return structuredClone(this.objects.get(key(ref))) as T | undefined;
  }
  async list<T>(): Promise<T[]> {
    return [];
  }
  async createOrAdopt<T extends KubernetesObject>(obj: T): Promise<{ object: T; created: boolean }> {
    const k = key(obj);
    const existing = this.objects.get(k);
    if (existing) return { object: structuredClone(existing) as T, created: false };
    const o = structuredClone(obj) as T;
    o.metadata = { ...o.metadata, uid: `uid-${++this.uid}`, creationTimestamp: new Date() as never };
    if (o.kind === 'Pod') {
      const pod = o as unknown as V1Pod;
      pod.status = { phase: 'Running', containerStatuses: (pod.spec?.containers ?? []).map((c) => ({ name: c.name, image: c.image ?? '', imageID: '', ready: true, restartCount: 0, state: { running: {} } })) };
    }
    this.objects.set(k, o);
    return { object: structuredClone(o), created: true };
  }
  async delete(ref: ObjectRef | KubernetesObject, _grace?: number, uid?: string): Promise<boolean> {
    const k = key(ref as ObjectRef);
    const o = this.objects.get(k);
    if (!o || (uid && o.metadata?.uid !== uid)) return false;
    this.objects.delete(k);
    return true;
  }
  async version() {
    return { major: '1', minor: '32', gitVersion: 'v1.32.0' };
  }
  async hasApi(): Promise<boolean> {
    return true;
  }
  /** Deletes the matching objects of `kinds` in `namespace` (labels `k=v,...`); count deleted. */
  async deleteBySelector(kinds: { kind: string }[], namespace: string, selector: string): Promise<number> {
    const want = selector.split(',').map((kv) => kv.split('='));
    let n = 0;
    for (const [k, o] of [...this.objects]) {
      if (!kinds.some((x) => x.kind === o.kind) || o.metadata?.namespace !== namespace) continue;
      if (!want.every(([l, v]) => o.metadata?.labels?.[l!] === v)) continue;
      this.objects.delete(k);
      n++;
    }
    return n;
  }
  core = { readNamespacedPodLog: async () => this.log };
  pods(): V1Pod[] {
    return [...this.objects.values()].filter((o) => o.kind === 'Pod') as V1Pod[];
  }
  /** The transfer container (the first) of the client pod terminates with `exitCode`. */
  terminate(exitCode: number): void {
    const pod = this.pods().find((p) => p.metadata?.name?.includes('data'));
    if (!pod) throw new Error(`no client pod: ${[...this.objects.keys()].join(', ')}`);
    pod.status!.containerStatuses![0]!.state = { terminated: { exitCode, reason: exitCode ? 'Error' : 'Completed' } as never };
  }
}

const MID = 'mig-metrics';
const plan = parsePlan({ source: { context: 'src' }, destination: { context: 'dst' }, namespaces: ['shop'], agents: 'per-sync' });
const pvc: PVCInfo = { name: 'data', destinationName: 'data', capacity: '1Gi', capacityBytes: 1 << 30, accessModes: ['ReadWriteOnce'], destinationAccessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', usedBy: [] };
const request = (pass: number): TransferRequest => ({ migrationId: MID, plan, namespace: plan.namespaces[0]!, pvc, address: { host: '10.0.0.1', port: 443 }, final: false, pass });

let cluster: FakeCluster;
let metrics: FerryMetrics;
let server: MetricsServer;
beforeAll(async () => {
  cluster = new FakeCluster();
  const certificates = createMigrationCertificates({ migrationId: MID, serverNames: ['10.0.0.1'], validityDays: 30 });
  const creds = credentialsSecret(MID, 'shop', { certificates, password: 'x'.repeat(32) });
  cluster.objects.set(key(creds as KubernetesObject), creds as KubernetesObject);
  const tls = objectSecret(serverTLSSecretName(MID), 'shop', objectLabels(MID, 'server'), serverSecretData(certificates));
  cluster.objects.set(key(tls as KubernetesObject), tls as KubernetesObject);
  metrics = new FerryMetrics();
  server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics);
});
afterAll(async () => {
  await server?.close();
});

async function until<T>(what: string, fn: () => Promise<T | undefined | false>): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const series = { migration: MID, namespace: 'shop', pvc: 'data' };

test('a sync through runTransfer: live rate and active pod while it runs; the byte and file counters equal its TransferResult', async () => {
  const run = fixture('normal');
  const lines = run.out.split('\n');
  // While running, the log holds only rsync's progress (the first lines of the recorded run).
  cluster.log = lines.slice(0, 3).join('\n');
  const activities = createActivities({ logger: silent, clientFactory: () => cluster as unknown as KubeClient, pollIntervalSeconds: 0.05, metrics });
  const env = new MockActivityEnvironment({ attempt: 1 });
  const pending = env.run(activities.runTransfer, request(1));

  const during = await until('a scrape with the running sync', async () => {
    const s = (await scrape(server.url)).samples;
    return sumOf(s, 'ferry_transfer_rate_bytes_per_second', series) > 0 && s;
  });
  expect(sumOf(during, 'ferry_active_client_pods', { migration: MID, namespace: 'shop', kind: 'pod' })).toBe(1);
  expect(sumOf(during, 'ferry_transfer_progress_bytes', series)).toBeGreaterThan(0);
  expect(sumOf(during, 'ferry_transfer_bytes_total')).toBe(0); // counted when the sync ends

  cluster.log = run.out;
  cluster.terminate(run.exit);
  const result = (await pending) as TransferResult;
  expect(result.bytesSent).toBeGreaterThan(0);

  const after = (await scrape(server.url)).samples;
  expect(sumOf(after, 'ferry_transfer_bytes_total', series)).toBe(result.bytesSent);
  expect(sumOf(after, 'ferry_transfer_files_total', series)).toBe(result.filesTransferred);
  expect(sumOf(after, 'ferry_syncs_total', { migration: MID, namespace: 'shop', sync: 'stage', result: 'success' })).toBe(1);
  expect(sumOf(after, 'ferry_stage_passes_total', { migration: MID, namespace: 'shop' })).toBe(1);
  expect(sumOf(after, 'ferry_activity_results_total', { activity: 'runTransfer', migration: MID, namespace: 'shop', result: 'success' })).toBe(1);
  expect(sumOf(after, 'ferry_active_client_pods', { kind: 'pod' })).toBe(0);
  expect(after.filter((x) => x.name === 'ferry_transfer_rate_bytes_per_second')).toEqual([]);
});

test('a failed sync is counted by its failure type (the type the wrapper raised) and adds no bytes', async () => {
  const before = sumOf((await scrape(server.url)).samples, 'ferry_transfer_bytes_total');
  const run = fixture('disk-full');
  cluster.log = '';
  const activities = createActivities({ logger: silent, clientFactory: () => cluster as unknown as KubeClient, pollIntervalSeconds: 0.05, metrics });
  const env = new MockActivityEnvironment({ attempt: 1 });
  const pending = env.run(activities.runTransfer, request(2)).catch((e: unknown) => e);
  await until('the client pod of pass 2', async () => cluster.pods().some((p) => p.metadata?.labels?.['ferry.dev/pass'] === '2'));
  cluster.log = run.out;
  cluster.terminate(run.exit);
  const err = await pending;
  expect(err).toBeInstanceOf(ApplicationFailure);
  const type = (err as ApplicationFailure).type!;
  expect(type).toBe('FerryNoSpace');

  const s = (await scrape(server.url)).samples;
  expect(sumOf(s, 'ferry_syncs_total', { migration: MID, namespace: 'shop', sync: 'stage', result: 'failed', failure_type: type })).toBe(1);
  expect(sumOf(s, 'ferry_activity_results_total', { activity: 'runTransfer', result: 'failed', failure_type: type })).toBe(1);
  expect(sumOf(s, 'ferry_transfer_bytes_total')).toBe(before);
  expect(sumOf(s, 'ferry_active_client_pods')).toBe(0);
});

test('a namespace cleanup with its downtime records it once in ferry_downtime_seconds; a failed cleanup attempt records nothing', async () => {
  const activities = createActivities({ logger: silent, clientFactory: () => cluster as unknown as KubeClient, pollIntervalSeconds: 0.05, metrics });
  const env = new MockActivityEnvironment({ attempt: 1, startToCloseTimeoutMs: 60_000 });
  const downtime = { migration: MID, namespace: 'shop' };
  const before = (await scrape(server.url)).samples;
  expect(sumOf(before, 'ferry_downtime_seconds_count', downtime)).toBe(0);

  const failing = { ...cluster, deleteBySelector: async () => { throw new Error('apiserver unavailable'); } };
  const broken = createActivities({ logger: silent, clientFactory: () => failing as unknown as KubeClient, metrics });
  await expect(env.run(broken.cleanup, { migrationId: MID, plan, namespace: plan.namespaces[0]!, downtimeSeconds: 7.5 })).rejects.toBeDefined();
  expect(sumOf((await scrape(server.url)).samples, 'ferry_downtime_seconds_count', downtime)).toBe(0);

  const report = (await env.run(activities.cleanup, { migrationId: MID, plan, namespace: plan.namespaces[0]!, downtimeSeconds: 7.5 })) as CleanupReport;
  expect(report.remaining).toBe(0);
  const after = (await scrape(server.url)).samples;
  expect(sumOf(after, 'ferry_downtime_seconds_count', downtime)).toBe(1);
  expect(sumOf(after, 'ferry_downtime_seconds_sum', downtime)).toBe(7.5);
  // a cleanup without downtime (nothing was quiesced) adds no observation
  await env.run(activities.cleanup, { migrationId: MID, plan, namespace: plan.namespaces[0]! });
  expect(sumOf((await scrape(server.url)).samples, 'ferry_downtime_seconds_count', downtime)).toBe(1);
});
