/**
 * waitForQuiesced watches the pods (issue 9 item 1, "the final syncs start the moment the last writer
 * pod is gone: watch, not poll"): the end of the last awaited pod runs a check at once, the poll stays
 * as a resync and as the fallback while a watch is down or refused, and every check still re-reads
 * the retention guard and heartbeats. Also waitFor's `wakeup` and its last check at the timeout.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { waitFor, Wakeup } from '../../src/k8s/client';
import { WaitTimeoutError } from '../../src/core/errors';
import { quiesceWorkloads, waitForQuiesced } from '../../src/migration/quiesce';
import { checkSourceWriters } from '../../src/migration/writers';
import { FakeKube, mergePatch } from '../support/fake-kube';

const ns = 'shop';
const web = { apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name: 'web' };
const db = { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: ns, name: 'db' };

function pod(name: string, owner: { kind: string; name: string; apiVersion: string }, phase = 'Running'): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, uid: `${name}-uid`, ownerReferences: [{ ...owner, uid: `${owner.name}-uid`, controller: true }] },
    spec: { containers: [{ name: 'c' }] },
    status: { phase },
  } as KubernetesObject;
}

/** A Deployment web (scaled to 0: quiesced) whose ReplicaSet still has pods web-1 and web-2. */
function cluster(): FakeKube {
  return new FakeKube([
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: ns, uid: 'web-uid' }, spec: { replicas: 0 } } as KubernetesObject,
    { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web-7f', namespace: ns, uid: 'web-7f-uid', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'web-uid', controller: true }] }, spec: { replicas: 0 } } as KubernetesObject,
    pod('web-1', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7f' }),
    pod('web-2', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7f' }),
    pod('other', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'unrelated' }),
  ]);
}

const del = (kube: FakeKube, name: string) => kube.delete({ apiVersion: 'v1', kind: 'Pod', namespace: ns, name });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the wait, returns when it ended relative to `t0()` (ms) and its error if any. */
async function timed(p: Promise<void>, t0: () => number): Promise<{ ms: number; err?: unknown }> {
  try {
    await p;
    return { ms: Date.now() - t0() };
  } catch (err) {
    return { ms: Date.now() - t0(), err };
  }
}

describe('waitForQuiesced: watch, not poll', () => {
  it('returns within a few ms of the last pod\'s deletion, long before the poll would have (5 s before)', async () => {
    const kube = cluster();
    const ticks: string[][] = [];
    let gone = 0;
    const wait = timed(waitForQuiesced(kube.client(), [web], { timeoutSeconds: 30, onTick: (r) => ticks.push(r) }), () => gone);
    await sleep(200);
    await del(kube, 'web-1');
    await sleep(200);
    // Deleting an unrelated pod wakes nothing; web-2 is still awaited.
    await del(kube, 'other');
    await sleep(200);
    gone = Date.now();
    await del(kube, 'web-2');
    const { ms, err } = await wait;
    expect(err).toBeUndefined();
    expect(ms).toBeLessThan(500);
    // Heartbeats: the first check saw both pods, the check woken by web-1's deletion saw web-2 only.
    expect(ticks).toEqual([[`${ns}/web-1`, `${ns}/web-2`], [`${ns}/web-2`]]);
    expect(kube.calls).toContain(`watch Pod ${ns}`);
    expect(kube.watches.size).toBe(0);
  });

  it('a pod that ends as Succeeded/Failed (MODIFIED, not deleted) wakes it too', async () => {
    const kube = new FakeKube([
      { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'report', namespace: ns, uid: 'report-uid' }, spec: { parallelism: 0 } } as KubernetesObject,
      pod('report-x', { apiVersion: 'batch/v1', kind: 'Job', name: 'report' }),
    ]);
    let ended = 0;
    const wait = timed(waitForQuiesced(kube.client(), [{ apiVersion: 'batch/v1', kind: 'Job', namespace: ns, name: 'report' }], { timeoutSeconds: 30 }), () => ended);
    await sleep(150);
    ended = Date.now();
    kube.put(mergePatch(kube.find('Pod', ns, 'report-x')!, { status: { phase: 'Succeeded' } }));
    const { ms, err } = await wait;
    expect(err).toBeUndefined();
    expect(ms).toBeLessThan(500);
  });

  it('a watch that fails is watched again and rings: a deletion while it is down is seen at the next attempt', async () => {
    const kube = cluster();
    await del(kube, 'web-1');
    let gone = 0;
    const wait = timed(waitForQuiesced(kube.client(), [web], { timeoutSeconds: 30, intervalSeconds: 0.3 }), () => gone);
    await sleep(100);
    // The watch breaks (a network error) and cannot be started again for now.
    kube.watchRefusal = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    kube.breakWatches(kube.watchRefusal);
    await sleep(100);
    // The failure rang: a check ran at once and still saw web-2. It goes while no watch runs: no event.
    gone = Date.now();
    await del(kube, 'web-2');
    const { ms, err } = await wait;
    expect(err).toBeUndefined();
    // The next attempt to watch (0.3 s after the failure) fails and rings: a check, not the 20 s resync.
    expect(ms).toBeLessThan(700);
    expect(kube.calls.filter((c) => c === `watch Pod ${ns}`).length).toBeGreaterThanOrEqual(2);
  });

  it('a refused watch (403: list but no watch allowed) polls every intervalSeconds, warning once', async () => {
    const kube = cluster();
    kube.watchRefusal = Object.assign(new Error('Forbidden'), { statusCode: 403 });
    const warnings: string[] = [];
    const logger = { debug: () => {}, info: () => {}, warn: (_f: unknown, m: string) => warnings.push(m), error: () => {} };
    let gone = 0;
    const wait = timed(waitForQuiesced(kube.client(), [web], { timeoutSeconds: 30, intervalSeconds: 0.25, logger }), () => gone);
    await sleep(700);
    gone = Date.now();
    await del(kube, 'web-1');
    await del(kube, 'web-2');
    const { ms, err } = await wait;
    expect(err).toBeUndefined();
    expect(ms).toBeLessThan(600);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/may not watch pods in shop: the quiesce wait polls every 0.25 s instead \(grant "watch" on pods/);
  });

  it('the resync still checks while the watch is quiet; the timeout names the pods still running, on time', async () => {
    const kube = cluster();
    let ticks = 0;
    const started = Date.now();
    const err = await waitForQuiesced(kube.client(), [web], { timeoutSeconds: 1, resyncSeconds: 0.2, onTick: () => ticks++ }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as Error).message).toMatch(/waiting for the quiesced workloads' pods to stop: still running: shop\/web-1, shop\/web-2/);
    expect(Date.now() - started).toBeLessThan(1600);
    expect(ticks).toBeGreaterThanOrEqual(4);
    expect(kube.watches.size).toBe(0);
  });

  it('the check woken by the watch re-reads the retention guard: a reverted policy fails the wait', async () => {
    const kube = new FakeKube([
      { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db', namespace: ns, uid: 'db-uid' }, spec: { replicas: 1, persistentVolumeClaimRetentionPolicy: { whenScaled: 'Delete' } } } as KubernetesObject,
      pod('db-0', { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db' }),
    ]);
    await quiesceWorkloads(kube.client(), [db], { migrationId: 'm1' });
    const wait = waitForQuiesced(kube.client(), [db], { migrationId: 'm1', timeoutSeconds: 30 }).catch((e: unknown) => e);
    await sleep(150);
    const live = kube.find('StatefulSet', ns, 'db')!;
    kube.put(mergePatch(live, { spec: { persistentVolumeClaimRetentionPolicy: { whenScaled: 'Delete' } } }));
    const started = Date.now();
    await del(kube, 'db-0');
    expect(String(await wait)).toMatch(/StatefulSet shop\/db: its persistentVolumeClaimRetentionPolicy is \{"whenScaled":"Delete".*again while Ferry holds it quiesced/);
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('abort ends the wait and its watches', async () => {
    const kube = cluster();
    const ac = new AbortController();
    const wait = waitForQuiesced(kube.client(), [web], { signal: ac.signal }).catch((e: unknown) => e);
    await sleep(100);
    ac.abort();
    expect((await wait as Error).name).toBe('AbortedError');
    expect(kube.watches.size).toBe(0);
  });

  it('without watch (watch: false) it polls as before', async () => {
    const kube = cluster();
    await del(kube, 'web-1');
    await del(kube, 'web-2');
    await waitForQuiesced(kube.client(), [web], { watch: false, timeoutSeconds: 5 });
    expect(kube.calls.some((c) => c.startsWith('watch'))).toBe(false);
  });
});

describe('waitFor with a Wakeup', () => {
  it('a ring runs the next check at once; a ring during a check is not lost', async () => {
    const wakeup = new Wakeup();
    let checks = 0;
    const started = Date.now();
    const done = waitFor(
      async () => {
        checks++;
        // Rung during the first check: the pause after it must end at once.
        if (checks === 1) wakeup.ring();
        return checks >= 3;
      },
      { intervalSeconds: 60, wakeup },
    );
    await sleep(50);
    wakeup.ring();
    await done;
    expect(checks).toBe(3);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('the pause before the timeout is shortened: a 60 s interval times out after 0.3 s, not 60 s', async () => {
    const started = Date.now();
    await expect(waitFor(async () => false, { intervalSeconds: 60, timeoutSeconds: 0.3 })).rejects.toThrow(WaitTimeoutError);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('checkSourceWriters waits for the deleted unmanaged pods by watch', () => {
  it('lists again as soon as the last deleted writer is gone (the 2 s poll before)', async () => {
    const kube = new FakeKube([
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'debug', namespace: ns, uid: 'debug-uid' }, spec: { containers: [{ name: 'c' }], volumes: [{ name: 'v', persistentVolumeClaim: { claimName: 'data' } }] }, status: { phase: 'Running' } } as KubernetesObject,
    ]);
    // Graceful deletion as on a real API server: the pod is Terminating first, gone 300 ms later.
    const remove = kube.delete.bind(kube);
    let gone = 0;
    kube.delete = async (ref, grace, uid) => {
      const live = kube.find('Pod', ns, 'debug');
      if (!live || (uid && live.metadata?.uid !== uid)) return false;
      kube.put(mergePatch(live, { metadata: { deletionTimestamp: new Date().toISOString() } }));
      setTimeout(() => {
        gone = Date.now();
        void remove(ref, grace, uid);
      }, 300);
      return true;
    };
    const check = await checkSourceWriters(kube.client(), ns, ['data'], { deleteUnmanaged: true, timeoutSeconds: 30 });
    expect(check).toEqual({ pods: [], deleted: ['debug'] });
    expect(Date.now() - gone).toBeLessThan(200);
    expect(kube.watches.size).toBe(0);
  });
});
