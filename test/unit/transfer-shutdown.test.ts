/**
 * runTransfer (the real activity over runClientTransfer) when its attempt is cancelled: a worker
 * shutting down (the SDK's 'WORKER_SHUTDOWN' cancellation) leaves the client pod copying, so that
 * the next attempt re-attaches to it; a real cancellation (rollback) deletes it. Issue 8 item 17.
 *
 * The source cluster is an in-memory stand-in for KubeClient with the calls the transfer path makes
 * (get, createOrAdopt, delete, version, pod logs); the client pod stays Running until the test ends it.
 */
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { ActivityCancellationDetails } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../src/activities';
import type { TransferRequest } from '../../src/activities/contract';
import type { PVCInfo } from '../../src/core/types';
import type { KubeClient, ObjectRef } from '../../src/k8s/client';
import { serverTLSSecretName } from '../../src/statetransfer/namespace-transfer';
import { credentialsSecret } from '../../src/migration/credentials';
import { objectLabels } from '../../src/statetransfer/names';
import { secret as objectSecret } from '../../src/statetransfer/objects';
import { parsePlan } from '../../src/plan/load';
import { createMigrationCertificates, serverSecretData } from '../../src/statetransfer/tls/certificates';

jest.setTimeout(60_000);

const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } as never;
const key = (o: { kind?: string; metadata?: { namespace?: string; name?: string } } | ObjectRef) =>
  'metadata' in o ? `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}` : `${(o as ObjectRef).kind}/${(o as ObjectRef).namespace}/${(o as ObjectRef).name}`;

/** The source cluster: objects by kind/namespace/name, and a journal of pod creations and deletions. */
class FakeSource {
  objects = new Map<string, KubernetesObject>();
  journal: string[] = [];
  private uid = 0;
  async get<T>(ref: ObjectRef): Promise<T | undefined> {
    return structuredClone(this.objects.get(key(ref))) as T | undefined;
  }
  async createOrAdopt<T extends KubernetesObject>(obj: T): Promise<{ object: T; created: boolean }> {
    const k = key(obj);
    const existing = this.objects.get(k);
    if (existing) return { object: structuredClone(existing) as T, created: false };
    const o = structuredClone(obj) as T & { status?: unknown };
    o.metadata = { ...o.metadata, uid: `uid-${++this.uid}`, creationTimestamp: new Date() as never };
    if (o.kind === 'Pod') {
      const pod = o as unknown as V1Pod;
      pod.status = { phase: 'Running', containerStatuses: (pod.spec?.containers ?? []).map((c) => ({ name: c.name, image: c.image ?? '', imageID: '', ready: true, restartCount: 0, state: { running: {} } })) };
      this.journal.push(`create ${k}`);
    }
    this.objects.set(k, o);
    return { object: structuredClone(o), created: true };
  }
  async delete(ref: ObjectRef | KubernetesObject, _grace?: number, uid?: string): Promise<boolean> {
    const k = key(ref as ObjectRef);
    const o = this.objects.get(k);
    if (!o || (uid && o.metadata?.uid !== uid)) return false;
    this.objects.delete(k);
    if (o.kind === 'Pod') this.journal.push(`delete ${k}`);
    return true;
  }
  async version() {
    return { major: '1', minor: '32', gitVersion: 'v1.32.0' };
  }
  core = { readNamespacedPodLog: async () => '' };
  pods(): string[] {
    return [...this.objects.keys()].filter((k) => k.startsWith('Pod/'));
  }
}

// The per-sync client pod; a warm agent's sync on shutdown is test/e2e/agent.e2e.test.ts.
const plan = parsePlan({ source: { context: 'src' }, destination: { context: 'dst' }, namespaces: ['shop'], agents: 'per-sync' });
const pvc: PVCInfo = {
  name: 'data',
  destinationName: 'data',
  capacity: '1Gi',
  capacityBytes: 1 << 30,
  accessModes: ['ReadWriteOnce'],
  destinationAccessModes: ['ReadWriteOnce'],
  volumeMode: 'Filesystem',
  usedBy: [],
};
const request = (pass: number): TransferRequest => ({ migrationId: 'mig-17', plan, namespace: plan.namespaces[0]!, pvc, address: { host: '10.0.0.1', port: 443 }, final: false, pass });

let source: FakeSource;
beforeAll(() => {
  source = new FakeSource();
  const certificates = createMigrationCertificates({ migrationId: 'mig-17', serverNames: ['10.0.0.1'], validityDays: 30 });
  const secret = credentialsSecret('mig-17', 'shop', { certificates, password: 'x'.repeat(32) });
  source.objects.set(key(secret as KubernetesObject), secret as KubernetesObject);
  // The destination (the same stand-in: namespace shop on both sides) holds the server's TLS Secret of
  // the same CA, so the check before the sync (server-sync.ts) finds the credentials in order.
  const server = objectSecret(serverTLSSecretName('mig-17'), 'shop', objectLabels('mig-17', 'server'), serverSecretData(certificates));
  source.objects.set(key(server as KubernetesObject), server as KubernetesObject);
});

/** Runs runTransfer in a mock activity context, cancels it once its pod runs, returns the error. */
async function cancelledAttempt(pass: number, cancel: (env: MockActivityEnvironment) => void): Promise<unknown> {
  const env = new MockActivityEnvironment({ attempt: 1 });
  const activities = createActivities({ logger: silent, clientFactory: () => source as unknown as KubeClient, pollIntervalSeconds: 0.05 });
  let beats = 0;
  env.on('heartbeat', () => beats++);
  const run = env.run(activities.runTransfer, request(pass));
  for (let i = 0; i < 200 && beats < 2; i++) await new Promise((r) => setTimeout(r, 25));
  expect(beats).toBeGreaterThanOrEqual(2); // it follows the pod
  cancel(env);
  return run.catch((e: unknown) => e);
}

test('worker shutdown: the client pod is left running, and the next attempt re-attaches to it', async () => {
  const err = await cancelledAttempt(1, (env) => env.cancel('WORKER_SHUTDOWN', new ActivityCancellationDetails({ workerShutdown: true })));
  expect((err as Error).name).toMatch(/Cancel/);
  const pod = source.pods();
  expect(pod).toHaveLength(1);
  expect(source.journal).toEqual([`create ${pod[0]}`]); // not deleted

  // The next attempt (another worker) follows the same pod: no second pod is created.
  await cancelledAttempt(1, (env) => env.cancel('WORKER_SHUTDOWN', new ActivityCancellationDetails({ workerShutdown: true })));
  expect(source.journal).toEqual([`create ${pod[0]}`]);
});

test('a real cancellation (rollback) deletes the client pod', async () => {
  const before = source.journal.length;
  const err = await cancelledAttempt(1, (env) => env.cancel()); // cancelRequested: the workflow cancelled it
  expect((err as Error).name).toMatch(/Cancel/);
  expect(source.pods()).toEqual([]);
  expect(source.journal.slice(before)).toEqual([expect.stringMatching(/^delete Pod\/shop\//)]);
});
