/**
 * Issue 9: warm agents are pods, and a node runs at most maxPods of them (the lab's kubelet and the
 * Kubernetes default: 110). The number of agents per namespace is bounded; a PVC beyond it syncs with
 * a client pod per sync, and the agents go after the namespace's final syncs (all at once; before the
 * patch agents-released-together, each as soon as its PVC's final sync succeeded).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { PVCInfo } from '../../src/core/types';
import { agentAllowed, agentSpecHash, releaseAgent, releaseAgents } from '../../src/migration/agent';
import { clientSideTransferFor } from '../../src/migration/compose';
import { parsePlan } from '../../src/plan/load';
import { createTransferCredentials } from '../../src/statetransfer/namespace-transfer';
import type { KubeClient } from '../../src/k8s/client';
import type { NamespaceTransfer } from '../../src/statetransfer/namespace-transfer';
import { AGENT_ANNOTATION } from '../../src/statetransfer/pods/agent';
import { FakeKube } from '../support/fake-kube';

const nt = { sourceNamespace: 'shop', migrationId: 'm1', clientPodName: (pvc: string) => `ferry-m1-client-${pvc}` } as unknown as NamespaceTransfer;
const pod = (pvc: string, agent: boolean, deleting = false): KubernetesObject =>
  ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: nt.clientPodName(pvc), namespace: 'shop', uid: `u-${pvc}`, annotations: agent ? { [AGENT_ANNOTATION]: 'true' } : {}, ...(deleting ? { deletionTimestamp: new Date().toISOString() } : {}) },
  }) as KubernetesObject;

describe('warm agents per namespace are bounded', () => {
  it('a PVC gets an agent while the namespace has fewer than the limit; one that has its agent keeps it', async () => {
    const kube = new FakeKube([pod('a', true), pod('b', true), pod('c', false), pod('d', true, true)]);
    const client = kube as unknown as KubeClient;
    expect(await agentAllowed(client, nt, 'x', 3)).toBe(true); // a, b count; c is per-sync, d is going
    expect(await agentAllowed(client, nt, 'x', 2)).toBe(false);
    expect(await agentAllowed(client, nt, 'a', 2)).toBe(true);
    expect(await agentAllowed(client, nt, 'a', 1)).toBe(true);
  });
  it('releaseAgent deletes the agent, not a per-sync client pod', async () => {
    const kube = new FakeKube([pod('a', true), pod('c', false)]);
    const client = kube as unknown as KubeClient;
    await releaseAgent(client, nt, 'a');
    await releaseAgent(client, nt, 'c');
    expect(await client.get({ apiVersion: 'v1', kind: 'Pod', namespace: 'shop', name: nt.clientPodName('a') })).toBeUndefined();
    expect(await client.get({ apiVersion: 'v1', kind: 'Pod', namespace: 'shop', name: nt.clientPodName('c') })).toBeDefined();
  });
  it('releaseAgents deletes every agent of the namespace at once (after the final syncs), not a per-sync client pod', async () => {
    const kube = new FakeKube([pod('a', true), pod('b', true), pod('c', false), pod('d', true, true)]);
    const client = kube as unknown as KubeClient;
    expect(await releaseAgents(client, 'shop', 'm1')).toBe(2); // d is being deleted already
    const left = (await client.list({ apiVersion: 'v1', kind: 'Pod' }, 'shop')).map((p) => p.metadata?.name).sort();
    expect(left).toEqual([nt.clientPodName('c'), nt.clientPodName('d')]);
  });
});

describe('an agent made at set-up is the one the first sync wants', () => {
  it('the agent of a PVC hashes the same from the namespace transfer of all PVCs (createServer) and of that PVC alone (runTransfer)', () => {
    const plan = parsePlan({ source: { context: 'a' }, destination: { context: 'b' }, namespaces: ['shop'] });
    const info = (name: string, nodeName?: string): PVCInfo => ({ name, destinationName: name, capacity: '1Gi', capacityBytes: 1 << 30, accessModes: ['ReadWriteOnce'], destinationAccessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem', usedBy: [], ...(nodeName ? { nodeName } : {}) });
    const pvcs = [info('data', 'node-a'), info('logs')];
    const mapping = plan.namespaces[0]!;
    const all = clientSideTransferFor(plan, 'm1', mapping, pvcs);
    const address = { host: '192.0.2.10', port: 31443 };
    const credentials = createTransferCredentials('m1', all.endpoint, address);
    for (const p of pvcs) {
      const one = clientSideTransferFor(plan, 'm1', mapping, [p]);
      expect(agentSpecHash(one.agentObjects(p.name, address, credentials))).toBe(agentSpecHash(all.agentObjects(p.name, address, credentials)));
    }
    // …and differs when what it is built from differs (another node, other credentials).
    const moved = clientSideTransferFor(plan, 'm1', mapping, [info('data', 'node-b')]);
    expect(agentSpecHash(moved.agentObjects('data', address, credentials))).not.toBe(agentSpecHash(all.agentObjects('data', address, credentials)));
    const renewed = createTransferCredentials('m1', all.endpoint, address);
    expect(agentSpecHash(all.agentObjects('data', address, renewed))).not.toBe(agentSpecHash(all.agentObjects('data', address, credentials)));
  });
});
