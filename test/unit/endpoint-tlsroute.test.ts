/**
 * The Gateway API TLSRoute endpoint (src/statetransfer/endpoint/tlsroute.ts): its objects, its
 * health read from the route's status (Accepted / ResolvedRefs of its parent) and the Gateway (address,
 * TLS Passthrough listener), with objects shaped like the Gateway API conformance fixtures, and the
 * preflight check of the Gateway's spec. The real thing (traefik in the lab's dst cluster, a migration
 * through it, a route it refuses) is test/e2e/tlsroute.e2e.test.ts.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { endpointOptionsFor } from '../../src/migration/compose';
import { discoverNamespace } from '../../src/migration/discovery';
import { runPreflight } from '../../src/migration/preflight';
import { parsePlan } from '../../src/plan/load';
import { createEndpoint, EndpointOptionsError } from '../../src/statetransfer/endpoint';
import { TLSRouteEndpoint, type GatewayObject, type TLSRouteObject } from '../../src/statetransfer/endpoint/tlsroute';
import { FakeKube } from '../support/fake-kube';

const base = { type: 'TLSRoute' as const, migrationId: 'mig-1', namespace: 'shop-new', backendPort: 8443, hostname: 'ferry.example.com', gateway: { name: 'gw', namespace: 'infra', sectionName: 'tls' } };

function gateway(over: Partial<GatewayObject> = {}): GatewayObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: 'infra' },
    spec: { listeners: [{ name: 'https', port: 443, protocol: 'HTTPS' }, { name: 'tls', port: 8443, protocol: 'TLS', tls: { mode: 'Passthrough' } }] },
    status: { addresses: [{ type: 'IPAddress', value: '10.250.0.160' }] },
    ...over,
  };
}

/** The live objects health sees; `gw` null: the Gateway is not there. */
function observed(e: TLSRouteEndpoint, parents: NonNullable<TLSRouteObject['status']>['parents'], gw: GatewayObject | null = gateway()): { objects: KubernetesObject[] } {
  const [svc, route] = e.objects() as [KubernetesObject, TLSRouteObject];
  return { objects: [svc, { ...route, status: { parents } } as TLSRouteObject, ...(gw ? [gw] : [])] };
}

const accepted = [{ parentRef: { name: 'gw', namespace: 'infra', sectionName: 'tls' }, controllerName: 'example.com/gw', conditions: [{ type: 'Accepted', status: 'True' }, { type: 'ResolvedRefs', status: 'True' }] }];

describe('TLSRoute endpoint', () => {
  it('creates a ClusterIP Service and a TLSRoute attached to the Gateway listener, matching the SNI host', () => {
    const e = createEndpoint(base) as TLSRouteEndpoint;
    const [svc, route] = e.objects() as [KubernetesObject & { spec: { type: string } }, TLSRouteObject];
    expect(svc.kind).toBe('Service');
    expect(svc.spec.type).toBe('ClusterIP');
    expect(route).toMatchObject({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'TLSRoute',
      metadata: { name: e.name, namespace: 'shop-new' },
      spec: {
        parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw', namespace: 'infra', sectionName: 'tls' }],
        hostnames: ['ferry.example.com'],
        rules: [{ backendRefs: [{ name: e.serviceName, port: 8443 }] }],
      },
    });
    expect(e.knownHostnames).toEqual(['ferry.example.com']);
    expect(e.observes).toEqual([{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', namespace: 'infra', name: 'gw' }]);
  });

  it('requires hostname and gateway, and refuses them on other types', () => {
    expect(() => createEndpoint({ ...base, hostname: undefined, gateway: undefined } as never)).toThrow(EndpointOptionsError);
    expect(() => createEndpoint({ ...base, hostname: undefined, gateway: undefined } as never)).toThrow(/hostname: is required[\s\S]*gateway: is required/);
    expect(() => createEndpoint({ type: 'LoadBalancer', migrationId: 'm', namespace: 'a', backendPort: 1, gateway: { name: 'gw' } })).toThrow(/gateway: applies only to endpoint type TLSRoute/);
  });

  it('is healthy once the Gateway accepted the route: the Gateway address, the listener port, SNI = hostname', () => {
    const e = createEndpoint(base) as TLSRouteEndpoint;
    expect(e.health(observed(e, accepted))).toEqual({ healthy: true, address: { host: '10.250.0.160', port: 8443, sni: 'ferry.example.com' }, reason: expect.stringContaining('accepted by Gateway infra/gw') });
  });

  it('explains each way it is not (yet) healthy', () => {
    const e = createEndpoint(base) as TLSRouteEndpoint;
    const reason = (o: { objects: KubernetesObject[] }) => {
      const h = e.health(o);
      expect(h.healthy).toBe(false);
      return h.reason;
    };
    expect(reason(observed(e, undefined))).toMatch(/waiting for Gateway infra\/gw's controller to report Accepted/);
    const refused = [{ ...accepted[0]!, conditions: [{ type: 'Accepted', status: 'False', reason: 'NotAllowedByListeners', message: 'namespace shop-new is not allowed' }] }];
    expect(reason(observed(e, refused))).toMatch(/did not accept it: Accepted False \(NotAllowedByListeners: namespace shop-new is not allowed\)/);
    const badRefs = [{ ...accepted[0]!, conditions: [{ type: 'Accepted', status: 'True' }, { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound' }] }];
    expect(reason(observed(e, badRefs))).toMatch(/ResolvedRefs False \(BackendNotFound\)/);
    expect(reason(observed(e, accepted, null))).toMatch(/Gateway infra\/gw not found/);
    expect(reason(observed(e, accepted, gateway({ status: { addresses: [] } })))).toMatch(/no address yet/);
    const terminating = gateway({ spec: { listeners: [{ name: 'tls', port: 8443, protocol: 'TLS', tls: { mode: 'Terminate' } }] } });
    expect(reason(observed(e, accepted, terminating))).toMatch(/needs protocol TLS with tls.mode Passthrough/);
    // another parent's status does not count
    expect(reason(observed(e, [{ ...accepted[0]!, parentRef: { name: 'other', namespace: 'infra', sectionName: 'tls' } }]))).toMatch(/waiting/);
  });

  it('without sectionName uses the first TLS Passthrough listener; the Gateway namespace defaults to the destination namespace', () => {
    const e = createEndpoint({ ...base, gateway: { name: 'gw' } }) as TLSRouteEndpoint;
    expect(e.observes[0]!.namespace).toBe('shop-new');
    const parents = [{ parentRef: { name: 'gw' }, conditions: accepted[0]!.conditions }];
    expect(e.health(observed(e, parents, gateway({ metadata: { name: 'gw', namespace: 'shop-new' } })))).toMatchObject({ healthy: true, address: { port: 8443 } });
  });

  it('comes from a plan: endpoint.type TLSRoute with hostname and gateway', () => {
    const plan = parsePlan({
      source: { kubeconfig: '/dev/null', context: 'a' },
      destination: { kubeconfig: '/dev/null', context: 'b' },
      namespaces: ['shop'],
      endpoint: { type: 'TLSRoute', hostname: 'ferry.example.com', gateway: { name: 'gw', namespace: 'infra' } },
    });
    const o = endpointOptionsFor(plan, 'mig-1', 'shop', 'TLSRoute');
    expect(o).toMatchObject({ type: 'TLSRoute', hostname: 'ferry.example.com', gateway: { name: 'gw', namespace: 'infra' } });
    expect(() => parsePlan({ source: { kubeconfig: '/dev/null', context: 'a' }, destination: { kubeconfig: '/dev/null', context: 'b' }, namespaces: ['shop'], endpoint: { type: 'TLSRoute', hostname: 'a.example.com' } })).toThrow(
      /endpoint.gateway: is required when type is TLSRoute/,
    );
  });

  it('gatewayProblem: what the Gateway spec tells before a route exists', () => {
    const e = createEndpoint(base) as TLSRouteEndpoint;
    const tls = (allowedRoutes?: Record<string, unknown>) => gateway({ spec: { listeners: [{ name: 'tls', port: 8443, protocol: 'TLS', tls: { mode: 'Passthrough' }, ...(allowedRoutes ? { allowedRoutes } : {}) }] } });
    expect(e.gatewayProblem(undefined)).toMatch(/^Gateway infra\/gw not found/);
    expect(e.gatewayProblem(gateway({ spec: { listeners: [] } }))).toBe('Gateway infra/gw has no listener named tls');
    expect(e.gatewayProblem(gateway({ spec: { listeners: [{ name: 'tls', port: 443, protocol: 'HTTPS' }] } }))).toMatch(/listener tls is HTTPS with tls.mode Terminate/);
    // allowedRoutes defaults to the Gateway's own namespace: the route's (shop-new) is another one
    expect(e.gatewayProblem(tls())).toMatch(/admits routes from its own namespace infra only \(allowedRoutes.namespaces.from Same\), not from shop-new/);
    expect(e.gatewayProblem(tls({ namespaces: { from: 'Same' } }))).toMatch(/from Same/);
    expect(e.gatewayProblem(tls({ namespaces: { from: 'All' } }))).toBeUndefined();
    expect(e.gatewayProblem(tls({ namespaces: { from: 'Selector' } }))).toBeUndefined(); // the controller decides
    expect(e.gatewayProblem(tls({ namespaces: { from: 'All' }, kinds: [{ kind: 'TCPRoute' }] }))).toBe('Gateway infra/gw listener tls admits the route kinds TCPRoute, not TLSRoute (allowedRoutes.kinds)');
    expect(e.gatewayProblem(tls({ namespaces: { from: 'All' }, kinds: [{ group: 'gateway.networking.k8s.io', kind: 'TLSRoute' }] }))).toBeUndefined();
    // a Gateway in the route's own namespace admits it by default
    const own = createEndpoint({ ...base, gateway: { name: 'gw' } }) as TLSRouteEndpoint;
    expect(own.gatewayProblem(gateway({ metadata: { name: 'gw', namespace: 'shop-new' }, spec: { listeners: [{ name: 'x', port: 443, protocol: 'TLS', tls: { mode: 'Passthrough' } }] } }))).toBeUndefined();
  });

  describe('preflight', () => {
    const nsObj: KubernetesObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } };
    const data = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: 'shop' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } }, status: { phase: 'Bound' } } as KubernetesObject;
    const storageClass = { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'standard', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } } } as KubernetesObject;
    const tlsPlan = parsePlan({
      source: { context: 'src' },
      destination: { context: 'dst' },
      namespaces: ['shop'],
      endpoint: { type: 'TLSRoute', hostname: 'ferry.example.com', gateway: { name: 'gw', namespace: 'infra' } },
    });
    const gatewayProblems = async (dstObjects: KubernetesObject[]) => {
      const src = new FakeKube([nsObj, data]);
      const d = await discoverNamespace(src.client(), { mapping: tlsPlan.namespaces[0]!, plan: tlsPlan });
      const problems = await runPreflight({ migrationId: 'm1', plan: tlsPlan, discoveries: [d], source: { client: src.client() }, destination: { client: new FakeKube([storageClass, ...dstObjects]).client() } });
      return problems.filter((p) => p.message.startsWith('endpoint TLSRoute:'));
    };
    const listener = (from: string) => gateway({ spec: { listeners: [{ name: 'tls', port: 443, protocol: 'TLS', tls: { mode: 'Passthrough' }, allowedRoutes: { namespaces: { from } } }] } });

    it('reports a missing Gateway or one that does not admit the destination namespace before anything is created', async () => {
      expect(await gatewayProblems([])).toEqual([{ subject: 'namespaces[0]', message: expect.stringMatching(/^endpoint TLSRoute: Gateway infra\/gw not found/) }]);
      expect(await gatewayProblems([listener('Same')])).toEqual([{ subject: 'namespaces[0]', message: expect.stringMatching(/admits routes from its own namespace infra only/) }]);
      expect(await gatewayProblems([listener('All')])).toEqual([]);
    });
  });
});
