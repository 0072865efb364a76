/**
 * The endpoint's health is watched, not only polled (issue 9 item 1, set-up before the first byte):
 * ensureEndpoint returns as soon as the load-balancer controller writes the Service's address, not at
 * the next 3 s check. A client without watch, or a watch that fails, still gets there by the poll.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { ensureEndpoint } from '../../src/migration/endpoint';
import { parsePlan } from '../../src/plan/load';
import { FakeKube, mergePatch } from '../support/fake-kube';

const plan = parsePlan({ source: { context: 'src' }, destination: { context: 'dst' }, namespaces: ['shop'], endpoint: { type: 'LoadBalancer' } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Plays the load-balancer controller: after `ms`, writes an address into the endpoint Service's status. */
async function assignAddress(kube: FakeKube, ms: number): Promise<number> {
  let svc: KubernetesObject | undefined;
  for (let waited = 0; !svc && waited < 2000; waited += 10) {
    svc = [...kube.objects.values()].find((o) => o.kind === 'Service');
    if (!svc) await sleep(10);
  }
  await sleep(ms);
  kube.put(mergePatch(svc!, { status: { loadBalancer: { ingress: [{ ip: '10.250.0.150' }] } } }));
  return Date.now();
}

describe('ensureEndpoint watches the endpoint objects', () => {
  it('returns within a few ms of the address being assigned (the 3 s poll before)', async () => {
    const kube = new FakeKube();
    const ticks: string[] = [];
    const p = ensureEndpoint(kube.client(), plan, 'm1', 'shop', { timeoutSeconds: 30, onTick: (r) => ticks.push(r) });
    const assigned = await assignAddress(kube, 400);
    const r = await p;
    expect(r).toEqual({ type: 'LoadBalancer', address: { host: '10.250.0.150', port: expect.any(Number) }, reason: 'the plan names it (endpoint.type)' });
    expect(Date.now() - assigned).toBeLessThan(500);
    expect(ticks[0]).toMatch(/no external address assigned yet/);
    expect(kube.calls.some((c) => c.startsWith('watch Service'))).toBe(true);
    expect(kube.watches.size).toBe(0);
  });

  it('a refused watch falls back to the 3 s poll', async () => {
    const kube = new FakeKube();
    kube.watchRefusal = Object.assign(new Error('Forbidden'), { statusCode: 403 });
    const started = Date.now();
    const p = ensureEndpoint(kube.client(), plan, 'm1', 'shop', { timeoutSeconds: 30 });
    await assignAddress(kube, 100);
    await p;
    expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
    expect(Date.now() - started).toBeLessThan(6000);
  });
});

/** Plays the API server giving the NodePort Service its port (31000). */
async function playNodePort(kube: FakeKube): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const svc = [...kube.objects.values()].find((o) => o.kind === 'Service' && (o as { spec?: { type?: string } }).spec?.type === 'NodePort');
    if (svc) {
      kube.put(mergePatch(svc, { spec: { ports: [{ ...((svc as { spec: { ports: object[] } }).spec.ports[0] ?? {}), nodePort: 31000 }] } }));
      return;
    }
    await sleep(50);
  }
}

describe('endpoint auto says what it chose and why', () => {
  const auto = parsePlan({ source: { context: 'src' }, destination: { context: 'dst' }, namespaces: ['shop'], endpoint: { type: 'auto' } });
  const noRoutes = () => {
    const kube = new FakeKube();
    (kube as unknown as { hasApi: (apiVersion: string) => Promise<boolean> }).hasApi = async (apiVersion) => !apiVersion.startsWith('route.openshift.io');
    return kube;
  };

  it('LoadBalancer when the destination assigns an address', async () => {
    const kube = noRoutes();
    const p = ensureEndpoint(kube.client(), auto, 'm1', 'shop', { timeoutSeconds: 30, autoLoadBalancerSeconds: 10 });
    await assignAddress(kube, 100);
    expect(await p).toMatchObject({ type: 'LoadBalancer', reason: expect.stringMatching(/^auto: the destination assigned a load-balancer address in \d+ s$/) });
  });

  it('after a failed connectivity probe: the excluded type\'s Service goes and the next type takes over', async () => {
    const kube = noRoutes();
    const first = ensureEndpoint(kube.client(), auto, 'm1', 'shop', { timeoutSeconds: 30, autoLoadBalancerSeconds: 10 });
    await assignAddress(kube, 50);
    expect((await first).type).toBe('LoadBalancer');
    kube.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [{ type: 'ExternalIP', address: '10.250.0.12' }], conditions: [{ type: 'Ready', status: 'True' }] } } as KubernetesObject);
    const p = ensureEndpoint(kube.client(), auto, 'm1', 'shop', { timeoutSeconds: 30, exclude: ['LoadBalancer'] });
    await playNodePort(kube);
    expect(await p).toMatchObject({ type: 'NodePort', address: { host: '10.250.0.12', port: 31000 }, reason: 'auto: LoadBalancer failed the connectivity probe, so NodePort' });
    const services = [...kube.objects.values()].filter((o) => o.kind === 'Service') as { spec?: { type?: string } }[];
    expect(services.map((x) => x.spec?.type)).toEqual(['NodePort']);
    await expect(ensureEndpoint(kube.client(), auto, 'm1', 'shop', { timeoutSeconds: 5, exclude: ['LoadBalancer', 'NodePort'] })).rejects.toThrow(/every type was tried and failed the connectivity probe \(LoadBalancer, NodePort\)/);
  });

  it('NodePort after the wait for an address, saying so', async () => {
    const kube = noRoutes();
    kube.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [{ type: 'ExternalIP', address: '10.250.0.12' }], conditions: [{ type: 'Ready', status: 'True' }] } } as KubernetesObject);
    const p = ensureEndpoint(kube.client(), auto, 'm1', 'shop', { timeoutSeconds: 60, autoLoadBalancerSeconds: 2 });
    await playNodePort(kube);
    expect(await p).toMatchObject({ type: 'NodePort', reason: 'auto: the destination assigned no load-balancer address within 2 s (no load-balancer controller?), so NodePort' });
  }, 30_000);
});
