/** Route and Ingress endpoints: object shapes (passthrough TLS over a ClusterIP Service) and health. */
import type { KubernetesObject, V1Ingress, V1Service } from '@kubernetes/client-node';
import { createEndpoint, type RouteObject } from '../../src/statetransfer/endpoint';
import { migrationKey } from '../../src/statetransfer/names';

const base = { migrationId: 'mig-7', namespace: 'billing', backendPort: 2222 };
const key = migrationKey('mig-7');
const SELECTOR = { 'app.kubernetes.io/managed-by': 'ferry', 'ferry.dev/migration': key, 'ferry.dev/role': 'server' };

function liveService(created: KubernetesObject): V1Service {
  const svc = structuredClone(created) as V1Service;
  svc.spec = { ...svc.spec, clusterIP: '172.30.5.6' };
  return svc;
}

describe('Route objects', () => {
  test('ClusterIP Service first, then a passthrough Route to it', () => {
    const ep = createEndpoint({ ...base, type: 'Route', hostname: 'ferry-billing.apps.dest.example.com' });
    const [svc, route, ...rest] = ep.objects() as [V1Service, RouteObject];
    expect(rest).toEqual([]);
    expect(svc.kind).toBe('Service');
    expect(svc.apiVersion).toBe('v1');
    expect(svc.metadata?.name).toBe(`ferry-${key}-endpoint-svc`);
    expect(svc.spec?.type).toBe('ClusterIP');
    expect(svc.spec?.selector).toEqual(SELECTOR);
    expect(svc.spec?.ports).toEqual([{ name: 'ferry-transfer', protocol: 'TCP', port: 2222, targetPort: 2222 }]);

    expect(route.apiVersion).toBe('route.openshift.io/v1');
    expect(route.kind).toBe('Route');
    expect(route.metadata.name).toBe(`ferry-${key}-endpoint`);
    expect(ep.name).toBe(route.metadata.name);
    expect(route.metadata.namespace).toBe('billing');
    expect(route.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'ferry', 'ferry.dev/migration': key, 'ferry.dev/role': 'endpoint' });
    expect(route.spec).toEqual({
      host: 'ferry-billing.apps.dest.example.com',
      to: { kind: 'Service', name: svc.metadata?.name, weight: 100 },
      port: { targetPort: 'ferry-transfer' },
      tls: { termination: 'passthrough', insecureEdgeTerminationPolicy: 'None' },
      wildcardPolicy: 'None',
    });
    expect(ep.knownHostnames).toEqual(['ferry-billing.apps.dest.example.com']);
    expect(ep.podSelector).toEqual(SELECTOR);
  });

  test('without hostname: no spec.host, no known host names', () => {
    const ep = createEndpoint({ ...base, type: 'Route' });
    const route = ep.objects()[1] as RouteObject;
    expect(route.spec).not.toHaveProperty('host');
    expect(ep.knownHostnames).toEqual([]);
  });
});

describe('Route health', () => {
  const HOST = 'ferry-billing.apps.dest.example.com';
  const ep = createEndpoint({ ...base, type: 'Route', hostname: HOST });
  const [svcT, routeT] = ep.objects();

  function liveRoute(host: string | undefined, status?: RouteObject['status']): RouteObject {
    const r = structuredClone(routeT) as RouteObject;
    if (host === undefined) delete r.spec.host;
    else r.spec.host = host;
    if (status) r.status = status;
    return r;
  }
  type RouteStatusEntry = NonNullable<NonNullable<RouteObject['status']>['ingress']>[number];
  const admitted = (status: string, extra: Record<string, string> = {}): { ingress: RouteStatusEntry[] } => ({
    ingress: [{ host: HOST, routerName: 'default', wildcardPolicy: 'None', routerCanonicalHostname: 'router-default.apps.dest.example.com', conditions: [{ type: 'Admitted', status, lastTransitionTime: '2024-05-01T10:00:00Z', ...extra }] }],
  });

  test('not admitted yet (no status)', () => {
    const h = ep.health({ objects: [liveService(svcT!), liveRoute(HOST)] });
    expect(h.healthy).toBe(false);
    expect(h.reason).toMatch(/waiting for a router to admit/);
  });

  test('Admitted False: reason carries the router message', () => {
    const h = ep.health({
      objects: [liveService(svcT!), liveRoute(HOST, admitted('False', { reason: 'HostAlreadyClaimed', message: 'route other already exposes ferry-billing.apps.dest.example.com and is older' }))],
    });
    expect(h.healthy).toBe(false);
    expect(h.reason).toMatch(/router default: HostAlreadyClaimed: route other already exposes/);
  });

  test('admitted', () => {
    const h = ep.health({ objects: [liveService(svcT!), liveRoute(HOST, admitted('True'))] });
    expect(h).toEqual({ healthy: true, address: { host: HOST, port: 443, sni: HOST }, reason: expect.stringMatching(/admitted by router default/) });
  });

  test('admitted by one of several routers (sharding)', () => {
    const status = admitted('True');
    status.ingress.unshift({ ...status.ingress[0]!, routerName: 'internal', conditions: [{ type: 'Admitted', status: 'False', lastTransitionTime: 'x', reason: 'RouteNotAdmitted' }] });
    expect(ep.health({ objects: [liveService(svcT!), liveRoute(HOST, status)] }).healthy).toBe(true);
  });

  test('backing Service missing', () => {
    const h = ep.health({ objects: [liveRoute(HOST, admitted('True'))] });
    expect(h.healthy).toBe(false);
    expect(h.reason).toMatch(/Service .*endpoint-svc not found/);
  });

  test('Route missing', () => {
    expect(ep.health({ objects: [liveService(svcT!)] }).reason).toMatch(/Route .* not found/);
  });

  test('spec.host different from the requested host (certificate would not match)', () => {
    const h = ep.health({ objects: [liveService(svcT!), liveRoute('other.example.com', admitted('True'))] });
    expect(h.healthy).toBe(false);
    expect(h.reason).toMatch(/not the requested/);
  });

  describe('generated host', () => {
    const gen = createEndpoint({ ...base, type: 'Route', externalPort: 8443 });
    const [s, r] = gen.objects();
    const GEN = `${r!.metadata!.name}-billing.apps.dest.example.com`;

    test('waits for spec.host', () => {
      const h = gen.health({ objects: [liveService(s!), structuredClone(r!)] });
      expect(h.healthy).toBe(false);
      expect(h.reason).toMatch(/waiting for the router to assign spec.host/);
    });

    test('InvalidHost rejection shown while spec.host is unset', () => {
      const route = structuredClone(r!) as RouteObject;
      route.status = { ingress: [{ routerName: 'default', conditions: [{ type: 'Admitted', status: 'False', reason: 'InvalidHost', message: 'must be no more than 63 characters' }] }] };
      expect(gen.health({ objects: [liveService(s!), route] }).reason).toMatch(/InvalidHost: must be no more than 63/);
    });

    test('healthy with the generated host and the configured router port', () => {
      const route = structuredClone(r!) as RouteObject;
      route.spec.host = GEN;
      route.status = { ingress: [{ host: GEN, routerName: 'default', conditions: [{ type: 'Admitted', status: 'True' }] }] };
      expect(gen.health({ objects: [liveService(s!), route] }).address).toEqual({ host: GEN, port: 8443, sni: GEN });
    });
  });
});

describe('Ingress objects', () => {
  test('ClusterIP Service first, then an ingress-nginx passthrough Ingress', () => {
    const ep = createEndpoint({ ...base, type: 'Ingress', hostname: 'ferry.dest.example.com', ingressClassName: 'nginx-public', port: 9443 });
    const [svc, ing, ...rest] = ep.objects() as [V1Service, V1Ingress];
    expect(rest).toEqual([]);
    expect(svc).toMatchObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: `ferry-${key}-endpoint-svc`, namespace: 'billing' } });
    expect(svc.spec?.type).toBe('ClusterIP');
    expect(svc.spec?.selector).toEqual(SELECTOR);
    expect(svc.spec?.ports).toEqual([{ name: 'ferry-transfer', protocol: 'TCP', port: 9443, targetPort: 2222 }]);

    expect(ing.apiVersion).toBe('networking.k8s.io/v1');
    expect(ing.kind).toBe('Ingress');
    expect(ing.metadata?.name).toBe(`ferry-${key}-endpoint`);
    expect(ing.metadata?.namespace).toBe('billing');
    expect(ing.metadata?.labels?.['ferry.dev/role']).toBe('endpoint');
    expect(ing.metadata?.annotations).toEqual({
      'nginx.ingress.kubernetes.io/ssl-passthrough': 'true',
      'nginx.ingress.kubernetes.io/backend-protocol': 'HTTPS',
      'ferry.dev/migration-id': 'mig-7',
    });
    expect(ing.spec).toEqual({
      ingressClassName: 'nginx-public',
      rules: [
        {
          host: 'ferry.dest.example.com',
          http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: svc.metadata?.name, port: { number: 9443 } } } }] },
        },
      ],
    });
    expect(ep.knownHostnames).toEqual(['ferry.dest.example.com']);
    expect(ep.needsNodes).toBe(false);
  });

  test('without ingressClassName the field is absent (default IngressClass)', () => {
    const ing = createEndpoint({ ...base, type: 'Ingress', hostname: 'h.example.com' }).objects()[1] as V1Ingress;
    expect(ing.spec).not.toHaveProperty('ingressClassName');
  });

  test('Service annotations stay on the Service', () => {
    const [svc, ing] = createEndpoint({ ...base, type: 'Ingress', hostname: 'h.example.com', annotations: { 'x.example/y': 'z' } }).objects();
    expect(svc!.metadata?.annotations?.['x.example/y']).toBe('z');
    expect(ing!.metadata?.annotations).not.toHaveProperty('x.example/y');
  });
});

describe('Ingress health', () => {
  const HOST = 'ferry.dest.example.com';
  const ep = createEndpoint({ ...base, type: 'Ingress', hostname: HOST });
  const [svcT, ingT] = ep.objects();
  const liveIngress = (status?: V1Ingress['status']): V1Ingress => ({ ...(structuredClone(ingT) as V1Ingress), ...(status ? { status } : {}) });

  test('IP-only status is healthy', () => {
    const h = ep.health({ objects: [liveService(svcT!), liveIngress({ loadBalancer: { ingress: [{ ip: '192.0.2.80' }] } })] });
    expect(h).toMatchObject({ healthy: true, address: { host: '192.0.2.80', port: 443, sni: HOST } });
  });

  test('hostname-only status is healthy', () => {
    const elb = 'k8s-ingressn-ingressn-abc.elb.us-east-1.amazonaws.com';
    const h = ep.health({ objects: [liveService(svcT!), liveIngress({ loadBalancer: { ingress: [{ hostname: elb }] } })] });
    expect(h.address).toEqual({ host: elb, port: 443, sni: HOST });
  });

  test.each([
    ['no status', undefined],
    ['empty loadBalancer', { loadBalancer: {} }],
    ['empty ingress list', { loadBalancer: { ingress: [] } }],
    ['entry without address', { loadBalancer: { ingress: [{ ports: [] }] } }],
  ])('%s: unhealthy, mentioning --enable-ssl-passthrough', (_n, status) => {
    const h = ep.health({ objects: [liveService(svcT!), liveIngress(status as V1Ingress['status'])] });
    expect(h.healthy).toBe(false);
    expect(h.address).toBeUndefined();
    expect(h.reason).toMatch(/--enable-ssl-passthrough/);
  });

  test('externalPort is the port connected to', () => {
    const np = createEndpoint({ ...base, type: 'Ingress', hostname: HOST, externalPort: 30443 });
    const [s, i] = np.objects();
    const ing = { ...(structuredClone(i) as V1Ingress), status: { loadBalancer: { ingress: [{ ip: '172.18.0.2' }] } } };
    expect(np.health({ objects: [liveService(s!), ing] }).address).toEqual({ host: '172.18.0.2', port: 30443, sni: HOST });
  });

  test('backing Service or Ingress missing', () => {
    expect(ep.health({ objects: [liveIngress({ loadBalancer: { ingress: [{ ip: '192.0.2.80' }] } })] }).healthy).toBe(false);
    expect(ep.health({ objects: [liveService(svcT!)] }).reason).toMatch(/Ingress .* not found/);
  });
});
