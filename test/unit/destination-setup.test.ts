/**
 * The destination namespace when prepareDestination and createEndpoint run at the same time (issue 9
 * item 1, patch setup-concurrent): both ensure it (ensureDestinationNamespace), exactly one creates
 * it, the other reads the winner's after its 409, and both report it as Ferry's (createdNamespace:
 * its migration id annotation, whichever call made it), so rollback's bookkeeping is the same as
 * before. Destination PVCs are created PVC_CREATE_CONCURRENCY at a time, reported in discovery order.
 */
import type { KubernetesObject, V1Namespace } from '@kubernetes/client-node';
import type { NamespaceDiscovery, PVCInfo } from '../../src/core/types';
import type { KubeClient } from '../../src/k8s/client';
import { ensureDestinationNamespace, prepareDestination, PVC_CREATE_CONCURRENCY } from '../../src/migration/destination';
import { ANNOTATIONS } from '../../src/statetransfer/names';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A cluster whose API calls take `latencyMs`: creates race like on a real API server (409 for the loser). */
class SlowCluster {
  readonly objects = new Map<string, KubernetesObject>();
  readonly creates: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  constructor(private readonly latencyMs: number, initial: KubernetesObject[] = []) {
    for (const o of initial) this.objects.set(this.key(o), o);
  }
  private key(o: { kind?: string; metadata?: { namespace?: string; name?: string } }): string {
    return `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
  }
  client(): KubeClient {
    const self = this;
    const create = async (o: KubernetesObject) => {
      self.inFlight++;
      self.maxInFlight = Math.max(self.maxInFlight, self.inFlight);
      await tick(self.latencyMs);
      self.inFlight--;
      if (self.objects.has(self.key(o))) throw Object.assign(new Error('AlreadyExists'), { code: 409 });
      self.objects.set(self.key(o), JSON.parse(JSON.stringify(o)));
      self.creates.push(self.key(o));
      return o;
    };
    return {
      contextName: 'slow',
      get: async (ref: { kind: string; namespace?: string; name: string }) => {
        await tick(self.latencyMs);
        const o = self.objects.get(`${ref.kind}/${ref.namespace ?? ''}/${ref.name}`);
        return o ? JSON.parse(JSON.stringify(o)) : undefined;
      },
      objects: { create },
      createOrAdopt: async (o: KubernetesObject) => ({ object: await create(o), created: true }),
    } as unknown as KubeClient;
  }
}

const srcNs: V1Namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { team: 'a', 'kubernetes.io/metadata.name': 'shop' }, annotations: { 'openshift.io/sa.scc.uid-range': '1000/100' } } };
const pvc = (name: string): PVCInfo =>
  ({ name, destinationName: name, capacity: '1Gi', volumeMode: 'Filesystem', destinationAccessModes: ['ReadWriteOnce'], destinationStorageClass: 'fast' }) as unknown as PVCInfo;
const discovery = (names: string[]): NamespaceDiscovery => ({ sourceNamespace: 'shop', destinationNamespace: 'shop-new', pvcs: names.map(pvc) }) as unknown as NamespaceDiscovery;

describe('the destination namespace, ensured by two activities at once', () => {
  it('one creates it, both report it as Ferry\'s (createdNamespace), labelled like the source', async () => {
    const source = new SlowCluster(5, [srcNs]);
    const destination = new SlowCluster(20);
    const [prepared, ensured] = await Promise.all([
      prepareDestination(source.client(), destination.client(), 'm1', discovery(['data'])),
      ensureDestinationNamespace(source.client(), destination.client(), 'm1', 'shop', 'shop-new'),
    ]);
    expect(destination.creates.filter((k) => k.startsWith('Namespace/'))).toEqual(['Namespace//shop-new']);
    expect(prepared).toEqual({ createdNamespace: true, createdPVCs: ['data'] });
    expect(ensured.createdNamespace).toBe(true);
    const ns = destination.objects.get('Namespace//shop-new')!;
    expect(ns.metadata?.labels).toEqual({ team: 'a' });
    expect(ns.metadata?.annotations).toMatchObject({ 'openshift.io/sa.scc.uid-range': '1000/100', [ANNOTATIONS.migrationId]: 'm1' });
  });

  it('a namespace that existed before (GitOps) is not Ferry\'s for either call; a Terminating one fails both, naming what to do', async () => {
    const existing: V1Namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop-new' } };
    const destination = new SlowCluster(1, [existing]);
    const source = new SlowCluster(1, [srcNs]);
    expect((await ensureDestinationNamespace(source.client(), destination.client(), 'm1', 'shop', 'shop-new')).createdNamespace).toBe(false);
    expect((await prepareDestination(source.client(), destination.client(), 'm1', discovery([]))).createdNamespace).toBe(false);
    expect(destination.creates).toEqual([]);

    const terminating = new SlowCluster(1, [{ ...existing, metadata: { name: 'shop-new', deletionTimestamp: new Date() } } as KubernetesObject]);
    await expect(ensureDestinationNamespace(source.client(), terminating.client(), 'm1', 'shop', 'shop-new')).rejects.toThrow(/destination namespace shop-new is being deleted \(Terminating\): wait until it is gone or choose another destination namespace/);
  });

  it(`PVCs are created ${PVC_CREATE_CONCURRENCY} at a time and reported in discovery order`, async () => {
    const names = Array.from({ length: 20 }, (_, i) => `pvc-${String(i).padStart(2, '0')}`);
    const destination = new SlowCluster(10, [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop-new', annotations: { [ANNOTATIONS.migrationId]: 'm1' } } } as KubernetesObject]);
    const started = Date.now();
    const r = await prepareDestination(new SlowCluster(10, [srcNs]).client(), destination.client(), 'm1', discovery(names));
    expect(r.createdPVCs).toEqual(names);
    expect(destination.maxInFlight).toBe(PVC_CREATE_CONCURRENCY);
    // 3 batches of (read source PVC + create) instead of 20: well under the 400 ms one by one.
    expect(Date.now() - started).toBeLessThan(300);
  });
});
