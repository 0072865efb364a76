/**
 * The waits for pods watch them (issue 9: "watch, not poll"): the transfer server's Ready, a per-sync
 * client pod's end. Before, the server pod was polled every 2 s and a client pod every
 * `intervalSeconds` (5 s by default), so a pod that was Ready (or done) was seen up to that late:
 * on the first byte of a migration, and on every sync made by a client pod. The poll stays as the
 * resync, and a client without watches still polls.
 */
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { ensureServerPod } from '../../src/migration/server';
import { followTransferPod } from '../../src/migration/follow';
import { FakeKube } from '../support/fake-kube';

const ns = 'dst';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString();

function pod(name: string, container: string, status: V1Pod['status']): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, uid: `${name}-uid`, creationTimestamp: now() as unknown as Date },
    spec: { containers: [{ name: container, image: 'ferry/transfer' }] },
    status,
  };
}

function serverPod(ready: boolean): V1Pod {
  return pod('ferry-srv', 'rsync', {
    phase: 'Running',
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    containerStatuses: [{ name: 'rsync', image: 'ferry/transfer', imageID: '', ready, restartCount: 0, started: true, state: { running: { startedAt: new Date() } } }],
  });
}

function clientPod(done: boolean): V1Pod {
  const state = done ? { terminated: { exitCode: 0, startedAt: new Date(), finishedAt: new Date(), message: 'ferry-exit-code=0\n' } } : { running: { startedAt: new Date() } };
  return pod('ferry-client', 'transfer', {
    phase: done ? 'Succeeded' : 'Running',
    containerStatuses: [{ name: 'transfer', image: 'ferry/transfer', imageID: '', ready: !done, restartCount: 0, state }],
  });
}

/** A FakeKube whose `watch` is hidden: the client of a test double without watches. */
function withoutWatch(kube: FakeKube) {
  const client = kube.client() as unknown as Record<string, unknown>;
  return new Proxy(client, { get: (t, p) => (p === 'watch' ? undefined : t[p as string]) }) as unknown as ReturnType<FakeKube['client']>;
}

describe('ensureServerPod: Ready is seen when the pod changes, not at the next 2 s poll', () => {
  it('returns within a few hundred ms of the pod becoming Ready', async () => {
    const kube = new FakeKube([serverPod(false) as KubernetesObject]);
    const waiting = ensureServerPod(kube.client(), serverPod(false), { timeoutSeconds: 30 });
    await sleep(300);
    const readyAt = Date.now();
    kube.put(serverPod(true) as KubernetesObject);
    const r = await waiting;
    expect(r.decision.action).toBe('wait');
    expect(Date.now() - readyAt).toBeLessThan(700);
    expect(kube.calls).toContain(`watch Pod ${ns}`);
    expect(kube.watches.size).toBe(0);
  });

  it('without watches it still finds the pod Ready, at the poll', async () => {
    const kube = new FakeKube([serverPod(false) as KubernetesObject]);
    const waiting = ensureServerPod(withoutWatch(kube), serverPod(false), { timeoutSeconds: 30 });
    await sleep(300);
    const readyAt = Date.now();
    kube.put(serverPod(true) as KubernetesObject);
    await waiting;
    expect(Date.now() - readyAt).toBeGreaterThan(1000);
  });
});

describe('followTransferPod: a client pod\'s end is seen at once, not at the next 5 s poll', () => {
  it('returns the exit code within a few hundred ms of the container terminating', async () => {
    const kube = new FakeKube([clientPod(false) as KubernetesObject]);
    const following = followTransferPod(kube.client(), { namespace: ns, name: 'ferry-client', engine: 'rsync', intervalSeconds: 5 });
    await sleep(300);
    const doneAt = Date.now();
    kube.put(clientPod(true) as KubernetesObject);
    const r = await following;
    expect(r.exitCode).toBe(0);
    expect(Date.now() - doneAt).toBeLessThan(700);
    expect(kube.watches.size).toBe(0);
  });
});
