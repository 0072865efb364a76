/**
 * The post-cutover check of the destination (plan verifyDestination, migration/destination-check.ts):
 * which pods count for a PVC, what Ready means, and the wait against an in-memory cluster whose pods a
 * test changes while the check runs.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { checkDestination, claimStates } from '../../src/migration/destination-check';
import { FakeKube } from '../support/fake-kube';

function pod(name: string, claim: string, o: { phase?: string; ready?: boolean; deleting?: boolean; waiting?: string } = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', ...(o.deleting ? { deletionTimestamp: new Date() } : {}) },
    spec: { containers: [{ name: 'app' }], volumes: [{ name: 'd', persistentVolumeClaim: { claimName: claim } }] },
    status: {
      phase: o.phase ?? 'Running',
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
      ...(o.waiting ? { containerStatuses: [{ name: 'app', ready: false, restartCount: 4, image: 'x', imageID: '', state: { waiting: { reason: o.waiting } } }] } : {}),
    },
  };
}

describe('claimStates', () => {
  const claims = [
    { name: 'data', expected: true },
    { name: 'logs', expected: false },
  ];

  it('a claim is ready when at least one live pod mounts it and every such pod is Ready', () => {
    const [data, logs] = claimStates(claims, [pod('web-1', 'data'), pod('web-0', 'data'), pod('other', 'cache')]);
    expect(data).toEqual({ pvc: 'data', expected: true, ready: true, pods: [{ name: 'web-0', ready: true, state: 'Ready' }, { name: 'web-1', ready: true, state: 'Ready' }] });
    expect(logs).toEqual({ pvc: 'logs', expected: false, ready: false, pods: [] });
  });

  it('one pod not Ready makes it not ready, with the pod\'s state; finished and terminating pods do not count', () => {
    const [data] = claimStates(claims, [pod('web-0', 'data'), pod('web-1', 'data', { ready: false, waiting: 'CrashLoopBackOff' }), pod('job-x', 'data', { phase: 'Succeeded', ready: false }), pod('old', 'data', { deleting: true, ready: false })]);
    expect(data!.ready).toBe(false);
    expect(data!.pods.map((p) => p.name)).toEqual(['web-0', 'web-1']);
    expect(data!.pods[1]!.state).toMatch(/CrashLoopBackOff/);
  });
});

describe('checkDestination', () => {
  it('waits until the pods of the expected claims are Ready', async () => {
    const fake = new FakeKube([pod('web-0', 'data', { ready: false, waiting: 'ContainerCreating' })]);
    const ticks: string[] = [];
    setTimeout(() => fake.put(pod('web-0', 'data')), 2500);
    const r = await checkDestination(fake.client(), 'shop', [{ name: 'data', expected: true }, { name: 'logs', expected: false }], { timeoutSeconds: 30, onTick: (w) => ticks.push(w) });
    expect(r).toMatchObject({ namespace: 'shop', ok: true, message: '1 PVC(s) mounted by Ready pods' });
    expect(r.seconds).toBeGreaterThan(2);
    expect(ticks.join('\n')).toMatch(/data: web-0 .*ContainerCreating/);
  });

  it('reports what is not Ready when the time is up (a report, not an error)', async () => {
    const fake = new FakeKube([pod('web-0', 'data', { ready: false, waiting: 'CrashLoopBackOff' })]);
    const r = await checkDestination(fake.client(), 'shop', [{ name: 'data', expected: true }, { name: 'db', expected: true }], { timeoutSeconds: 3 });
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/^not Ready after 3 s: data: web-0 phase Running; container app: waiting \(CrashLoopBackOff\), restarted 4 times \| db: no pod mounts it$/);
  });

  it('has nothing to wait for when no migrated PVC was used by a running workload', async () => {
    const r = await checkDestination(new FakeKube().client(), 'shop', [{ name: 'data', expected: false }], { timeoutSeconds: 3 });
    expect(r).toMatchObject({ ok: true, message: expect.stringMatching(/no pod to wait for/) });
  });
});
