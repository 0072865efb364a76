/** LoadBalancer, NodePort and ClusterIP endpoints: object shapes and health from live status. */
import type { KubernetesObject, V1Node, V1Service } from '@kubernetes/client-node';
import { createEndpoint, type EndpointOptions } from '../../src/statetransfer/endpoint';
import { migrationKey } from '../../src/statetransfer/names';

const base = { migrationId: 'mig-42', namespace: 'shop', backendPort: 2222 };
const key = migrationKey('mig-42');
const NAME = `ferry-${key}-endpoint`;

function build(o: Partial<EndpointOptions> & Pick<EndpointOptions, 'type'>) {
  return createEndpoint({ ...base, ...o });
}

/** The live Service as the API server returns it: spec filled in, status set by controllers. */
function live(created: KubernetesObject, spec: Partial<V1Service['spec']> = {}, status: V1Service['status'] = {}): V1Service {
  const svc = structuredClone(created) as V1Service;
  svc.metadata = { ...svc.metadata, uid: 'u1', resourceVersion: '7' };
  svc.spec = { ...svc.spec, clusterIP: '10.96.12.34', clusterIPs: ['10.96.12.34'], ...spec };
  svc.status = status;
  return svc;
}

function node(name: string, opts: { ready?: boolean | 'Unknown'; addresses?: Array<[string, string]>; unschedulable?: boolean; deleting?: boolean }): V1Node {
  const ready = opts.ready ?? true;
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, ...(opts.deleting ? { deletionTimestamp: new Date() } : {}) },
    spec: { ...(opts.unschedulable ? { unschedulable: true } : {}), podCIDR: '10.244.0.0/24' },
    status: {
      conditions: [
        { type: 'MemoryPressure', status: 'False' },
        { type: 'Ready', status: ready === 'Unknown' ? 'Unknown' : ready ? 'True' : 'False', reason: 'KubeletReady' },
      ],
      addresses: (opts.addresses ?? []).map(([type, address]) => ({ type, address })),
    },
  };
}

describe('Service objects', () => {
  test.each(['LoadBalancer', 'NodePort', 'ClusterIP'] as const)('%s: one v1 Service selecting the server pod', (type) => {
    const ep = build({ type, annotations: { 'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb' }, extraLabels: { team: 'storage' } });
    const objs = ep.objects();
    expect(objs).toHaveLength(1);
    const svc = objs[0] as V1Service;
    expect(svc.apiVersion).toBe('v1');
    expect(svc.kind).toBe('Service');
    expect(svc.metadata?.name).toBe(NAME);
    expect(ep.name).toBe(NAME);
    expect(svc.metadata?.namespace).toBe('shop');
    expect(svc.metadata?.labels).toEqual({
      'app.kubernetes.io/managed-by': 'ferry',
      'ferry.dev/migration': key,
      'ferry.dev/role': 'endpoint',
      team: 'storage',
    });
    expect(svc.metadata?.annotations).toEqual({
      'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb',
      'ferry.dev/migration-id': 'mig-42',
    });
    expect(svc.spec?.type).toBe(type);
    const selector = { 'app.kubernetes.io/managed-by': 'ferry', 'ferry.dev/migration': key, 'ferry.dev/role': 'server' };
    expect(svc.spec?.selector).toEqual(selector);
    expect(ep.podSelector).toEqual(selector);
    expect(svc.spec?.ports).toEqual([{ name: 'ferry-transfer', protocol: 'TCP', port: 2222, targetPort: 2222 }]);
    expect(ep.knownHostnames).toEqual([]);
    expect(ep.backendPort).toBe(2222);
    expect(ep.namespace).toBe('shop');
  });

  test('service port option is used as port, backend port as targetPort', () => {
    const svc = build({ type: 'ClusterIP', port: 443 }).objects()[0] as V1Service;
    expect(svc.spec?.ports?.[0]).toMatchObject({ port: 443, targetPort: 2222 });
  });

  test('LoadBalancer: Cluster traffic policy, loadBalancerClass, node ports allocation left to the default', () => {
    const svc = build({ type: 'LoadBalancer', loadBalancerClass: 'metallb.io/metallb' }).objects()[0] as V1Service;
    expect(svc.spec?.externalTrafficPolicy).toBe('Cluster');
    expect(svc.spec?.loadBalancerClass).toBe('metallb.io/metallb');
    expect(svc.spec).not.toHaveProperty('allocateLoadBalancerNodePorts');
    const plain = build({ type: 'LoadBalancer' }).objects()[0] as V1Service;
    expect(plain.spec).not.toHaveProperty('loadBalancerClass');
  });

  test('NodePort: requested node port is set; otherwise left to the API server', () => {
    const fixed = build({ type: 'NodePort', nodePort: 31555 });
    expect((fixed.objects()[0] as V1Service).spec?.ports?.[0]?.nodePort).toBe(31555);
    expect((fixed.objects()[0] as V1Service).spec?.externalTrafficPolicy).toBe('Cluster');
    expect((build({ type: 'NodePort' }).objects()[0] as V1Service).spec?.ports?.[0]).not.toHaveProperty('nodePort');
    expect(fixed.needsNodes).toBe(true);
  });

  test('needsNodes only for NodePort', () => {
    expect(build({ type: 'LoadBalancer' }).needsNodes).toBe(false);
    expect(build({ type: 'ClusterIP' }).needsNodes).toBe(false);
  });
});

describe('LoadBalancer health', () => {
  const ep = build({ type: 'LoadBalancer' });
  const created = ep.objects()[0]!;

  test('Service not observed', () => {
    const h = ep.health({ objects: [] });
    expect(h.healthy).toBe(false);
    expect(h.reason).toMatch(/not found/);
  });

  test.each([
    ['no status', undefined],
    ['empty status', {}],
    ['empty ingress list', { loadBalancer: { ingress: [] } }],
    ['entry without address', { loadBalancer: { ingress: [{ ports: [{ port: 2222, protocol: 'TCP' }] }] } }],
  ])('%s: unhealthy with an explanation', (_name, status) => {
    const h = ep.health({ objects: [live(created, { ports: [{ name: 'ferry-transfer', port: 2222, targetPort: 2222, nodePort: 31000 }] }, status as never)] });
    expect(h.healthy).toBe(false);
    expect(h.address).toBeUndefined();
    expect(h.reason).toMatch(/no external address assigned yet.*MetalLB.*Consider endpoint type NodePort/);
  });

  test('IP', () => {
    const h = ep.health({ objects: [live(created, {}, { loadBalancer: { ingress: [{ ip: '203.0.113.10', ipMode: 'VIP' }] } })] });
    expect(h).toMatchObject({ healthy: true, address: { host: '203.0.113.10', port: 2222 } });
    expect(h.address?.sni).toBeUndefined();
  });

  test('hostname only (AWS ELB)', () => {
    const elb = 'a1b2c3-123456789.eu-west-1.elb.amazonaws.com';
    const h = ep.health({ objects: [live(created, {}, { loadBalancer: { ingress: [{ hostname: elb }] } })] });
    expect(h).toMatchObject({ healthy: true, address: { host: elb, port: 2222 } });
  });

  test('ip preferred over hostname in the same entry; first entry with an address wins', () => {
    const h = ep.health({
      objects: [live(created, {}, { loadBalancer: { ingress: [{}, { hostname: 'lb.example.com', ip: '198.51.100.7' }, { ip: '198.51.100.8' }] } })],
    });
    expect(h.address).toEqual({ host: '198.51.100.7', port: 2222 });
  });

  test('another object with the same kind but another name is ignored', () => {
    const other = live(created, {}, { loadBalancer: { ingress: [{ ip: '203.0.113.99' }] } });
    other.metadata!.name = 'someone-else';
    expect(ep.health({ objects: [other] }).healthy).toBe(false);
  });

  test('list items without kind are matched by name', () => {
    const item = live(created, {}, { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } });
    delete item.kind;
    delete item.apiVersion;
    expect(ep.health({ objects: [item] }).healthy).toBe(true);
  });
});

describe('NodePort health', () => {
  const ep = build({ type: 'NodePort' });
  const created = ep.objects()[0]!;
  const allocated = live(created, {
    ports: [{ name: 'ferry-transfer', protocol: 'TCP', port: 2222, targetPort: 2222, nodePort: 31873 }],
    externalIPs: undefined,
  });

  test('node port not allocated yet', () => {
    const h = ep.health({ objects: [live(created)], nodes: [node('n1', { addresses: [['ExternalIP', '203.0.113.1']] })] });
    expect(h.healthy).toBe(false);
    expect(h.reason).toMatch(/no node port allocated/);
  });

  test('nodes not observed', () => {
    const h = ep.health({ objects: [allocated] });
    expect(h.healthy).toBe(false);
    expect(h.reason).toMatch(/node list was not observed/);
  });

  test('no nodes: unhealthy, and the ClusterIP is never used', () => {
    const h = ep.health({ objects: [allocated], nodes: [] });
    expect(h.healthy).toBe(false);
    expect(h.address).toBeUndefined();
    expect(JSON.stringify(h)).not.toContain('10.96.12.34');
  });

  test('only NotReady / Unknown / deleting nodes', () => {
    const nodes = [
      node('n1', { ready: false, addresses: [['InternalIP', '192.168.1.11']] }),
      node('n2', { ready: 'Unknown', addresses: [['InternalIP', '192.168.1.12']] }),
      node('n3', { deleting: true, addresses: [['InternalIP', '192.168.1.13']] }),
    ];
    const h = ep.health({ objects: [allocated], nodes });
    expect(h.healthy).toBe(false);
    expect(h.reason).toMatch(/none of the 3 node\(s\) is Ready/);
  });

  test('Ready node without addresses', () => {
    const h = ep.health({ objects: [allocated], nodes: [node('n1', {})] });
    expect(h.healthy).toBe(false);
    expect(h.reason).toMatch(/ExternalIP, InternalIP or Hostname/);
  });

  test('node with only an InternalIP (and a Hostname)', () => {
    const h = ep.health({
      objects: [allocated],
      nodes: [node('kind-worker', { addresses: [['Hostname', 'kind-worker'], ['InternalIP', '172.18.0.3']] })],
    });
    expect(h).toMatchObject({ healthy: true, address: { host: '172.18.0.3', port: 31873 } });
    expect(h.reason).toMatch(/no Ready node has an ExternalIP/);
  });

  test('ExternalIP preferred over InternalIP, across nodes; NotReady nodes skipped', () => {
    const nodes = [
      node('a', { addresses: [['InternalIP', '10.0.0.1']] }),
      node('b', { ready: false, addresses: [['ExternalIP', '203.0.113.50']] }),
      node('c', { addresses: [['InternalIP', '10.0.0.3'], ['ExternalIP', '203.0.113.3']] }),
    ];
    const h = ep.health({ objects: [allocated], nodes });
    expect(h.address).toEqual({ host: '203.0.113.3', port: 31873 });
  });

  test('Hostname only as a last resort', () => {
    const h = ep.health({ objects: [allocated], nodes: [node('n1', { addresses: [['Hostname', 'n1.internal']] })] });
    expect(h.address).toEqual({ host: 'n1.internal', port: 31873 });
  });

  test('IPv4 preferred over IPv6 of the same type', () => {
    const h = ep.health({ objects: [allocated], nodes: [node('n1', { addresses: [['InternalIP', 'fd00::5'], ['InternalIP', '10.0.0.5']] })] });
    expect(h.address?.host).toBe('10.0.0.5');
  });

  test('cordoned nodes are used, but after schedulable ones', () => {
    const cordoned = node('a-cordoned', { unschedulable: true, addresses: [['InternalIP', '10.0.0.1']] });
    const normal = node('z-normal', { addresses: [['InternalIP', '10.0.0.2']] });
    expect(ep.health({ objects: [allocated], nodes: [cordoned, normal] }).address?.host).toBe('10.0.0.2');
    const only = ep.health({ objects: [allocated], nodes: [cordoned] });
    expect(only).toMatchObject({ healthy: true, address: { host: '10.0.0.1' } });
    expect(only.reason).toMatch(/cordoned/);
  });

  test('deterministic regardless of node order', () => {
    const n1 = node('n1', { addresses: [['InternalIP', '10.0.0.1']] });
    const n2 = node('n2', { addresses: [['InternalIP', '10.0.0.2']] });
    expect(ep.health({ objects: [allocated], nodes: [n2, n1] }).address?.host).toBe('10.0.0.1');
    expect(ep.health({ objects: [allocated], nodes: [n1, n2] }).address?.host).toBe('10.0.0.1');
  });
});

describe('ClusterIP health', () => {
  const ep = build({ type: 'ClusterIP', port: 8443 });
  const created = ep.objects()[0]!;

  test('cluster IP assigned', () => {
    const h = ep.health({ objects: [live(created)] });
    expect(h).toMatchObject({ healthy: true, address: { host: '10.96.12.34', port: 8443 } });
    expect(h.reason).toMatch(/only from inside the cluster/);
  });

  test('IPv6 cluster IP', () => {
    expect(ep.health({ objects: [live(created, { clusterIP: 'fd00:10:96::1a2b' })] }).address?.host).toBe('fd00:10:96::1a2b');
  });

  test.each([
    ['unset', undefined],
    ['empty', ''],
    ['headless', 'None'],
  ])('%s cluster IP: unhealthy', (_n, clusterIP) => {
    const svc = live(created);
    svc.spec!.clusterIP = clusterIP;
    const h = ep.health({ objects: [svc] });
    expect(h.healthy).toBe(false);
    expect(h.address).toBeUndefined();
  });

  test('Service not observed', () => {
    expect(ep.health({ objects: [] }).healthy).toBe(false);
  });
});
