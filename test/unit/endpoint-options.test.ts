/** Validation of Endpoint options: every problem is listed, defaults are applied. */
import {
  EndpointOptionsError,
  createEndpoint,
  hostnameProblem,
  resolveEndpointOptions,
  validateEndpointOptions,
  type EndpointOptions,
} from '../../src/statetransfer/endpoint';

const base = { migrationId: 'mig-1', namespace: 'apps', backendPort: 2222 };

function problemsOf(o: EndpointOptions): readonly string[] {
  try {
    createEndpoint(o);
  } catch (e) {
    expect(e).toBeInstanceOf(EndpointOptionsError);
    return (e as EndpointOptionsError).problems.map((p) => `${p.path} ${p.message}`);
  }
  throw new Error('createEndpoint did not throw');
}

describe('endpoint options validation', () => {
  test('valid options of every type build', () => {
    expect(() => createEndpoint({ ...base, type: 'LoadBalancer', loadBalancerClass: 'example.com/lb' })).not.toThrow();
    expect(() => createEndpoint({ ...base, type: 'NodePort', nodePort: 30000 })).not.toThrow();
    expect(() => createEndpoint({ ...base, type: 'NodePort', nodePort: 32767 })).not.toThrow();
    expect(() => createEndpoint({ ...base, type: 'ClusterIP', port: 443 })).not.toThrow();
    expect(() => createEndpoint({ ...base, type: 'Route' })).not.toThrow();
    expect(() => createEndpoint({ ...base, type: 'Ingress', hostname: 'ferry.apps.example.com', ingressClassName: 'nginx' })).not.toThrow();
  });

  test('lists every problem at once', () => {
    const problems = problemsOf({
      type: 'NodePort',
      migrationId: '',
      namespace: 'Bad_NS',
      backendPort: 0,
      port: 70000,
      nodePort: 8080,
      hostname: 'x.example.com',
      loadBalancerClass: 'x/y',
      extraLabels: { 'app.kubernetes.io/managed-by': 'me', good: 'not valid!' },
      annotations: { 'ferry.dev/migration-id': 'x', 'bad key!': 'v' },
    });
    const expected = [
      /^migrationId/,
      /^namespace "Bad_NS"/,
      /^backendPort 0/,
      /^port 70000/,
      /^nodePort 8080 must be an integer from 30000 to 32767/,
      /^hostname applies only to endpoint types Route, Ingress and TLSRoute, not NodePort/,
      /^loadBalancerClass applies only to endpoint type LoadBalancer/,
      /^extraLabels key "app.kubernetes.io\/managed-by" is reserved/,
      /^extraLabels value "not valid!"/,
      /^annotations key "ferry.dev\/migration-id" is reserved/,
      /^annotations key "bad key!"/,
    ];
    for (const re of expected) expect(problems.some((p) => re.test(p))).toBe(true);
    expect(problems).toHaveLength(expected.length);
  });

  test('error message contains every problem', () => {
    expect(() => createEndpoint({ ...base, type: 'ClusterIP', backendPort: 1.5, port: -1 })).toThrow(/2 problems[\s\S]*backendPort: 1.5[\s\S]*port: -1/);
  });

  test('unknown type is reported with the other problems', () => {
    const problems = problemsOf({ ...base, type: 'Gateway' as never, backendPort: 99999 });
    expect(problems).toEqual([expect.stringMatching(/^type "Gateway" is not one of/), expect.stringMatching(/^backendPort 99999/)]);
  });

  test('Ingress without hostname is rejected', () => {
    expect(problemsOf({ ...base, type: 'Ingress' })).toEqual([expect.stringMatching(/^hostname is required for endpoint type Ingress/)]);
  });

  test('options that do not apply to the type are rejected', () => {
    expect(problemsOf({ ...base, type: 'Route', ingressClassName: 'nginx', nodePort: 30001 })).toEqual([
      expect.stringMatching(/^nodePort applies only to endpoint type NodePort, not Route/),
      expect.stringMatching(/^ingressClassName applies only to endpoint type Ingress, not Route/),
    ]);
    expect(problemsOf({ ...base, type: 'LoadBalancer', externalPort: 8443 })).toEqual([
      expect.stringMatching(/^externalPort applies only to endpoint types Route and Ingress/),
    ]);
  });

  test('nodePort range bounds', () => {
    expect(problemsOf({ ...base, type: 'NodePort', nodePort: 29999 })).toHaveLength(1);
    expect(problemsOf({ ...base, type: 'NodePort', nodePort: 32768 })).toHaveLength(1);
  });

  test.each([
    ['', /empty/],
    ['1.2.3.4', /not an IP/],
    ['*.apps.example.com', /wildcard/],
    ['Ferry.example.com', /lowercase/],
    ['ferry.example.com.', /dot/],
    ['-ferry.example.com', /not a valid DNS name/],
    ['a..b', /not a valid DNS name/],
    [`${'a'.repeat(64)}.example.com`, /not a valid DNS name/],
    [`${'a'.repeat(60)}.`.repeat(5) + 'com', /at most 253/],
    ['ferry_1.example.com', /not a valid DNS name/],
  ])('hostname %j is rejected', (host, re) => {
    expect(hostnameProblem(host)).toMatch(re);
    expect(problemsOf({ ...base, type: 'Ingress', hostname: host })).toEqual([expect.stringMatching(re)]);
  });

  test.each(['ferry', 'ferry.apps.example.com', 'a-1.b-2.example', `${'a'.repeat(63)}.example.com`])('hostname %j is accepted', (host) => {
    expect(hostnameProblem(host)).toBeUndefined();
  });

  test('Route without hostname in a long namespace is rejected (generated host label > 63)', () => {
    const ns = 'n'.repeat(40);
    const problems = problemsOf({ ...base, type: 'Route', namespace: ns });
    expect(problems).toEqual([expect.stringMatching(/^hostname is required for endpoint type Route.*would have 66 characters/)]);
    expect(() => createEndpoint({ ...base, type: 'Route', namespace: ns, hostname: 'ferry.apps.example.com' })).not.toThrow();
    // 25-character route name + '-' + 37 = 63: still fine
    expect(() => createEndpoint({ ...base, type: 'Route', namespace: 'n'.repeat(37) })).not.toThrow();
    expect(validateEndpointOptions({ ...base, type: 'Route', namespace: 'n'.repeat(38) })).toHaveLength(1);
  });

  test('defaults: port = backendPort; externalPort 443 for Route/Ingress', () => {
    const svc = resolveEndpointOptions({ ...base, type: 'ClusterIP' });
    expect(svc.port).toBe(2222);
    expect(svc.externalPort).toBe(2222);
    const route = resolveEndpointOptions({ ...base, type: 'Route', port: 8443 });
    expect(route.port).toBe(8443);
    expect(route.externalPort).toBe(443);
    const ing = resolveEndpointOptions({ ...base, type: 'Ingress', hostname: 'h.example.com', externalPort: 30443 });
    expect(ing.externalPort).toBe(30443);
  });

  test('resolved options are frozen and detached from the input', () => {
    const input: EndpointOptions = { ...base, type: 'LoadBalancer', annotations: { a: 'b' } };
    const r = resolveEndpointOptions(input);
    input.annotations!.a = 'changed';
    expect(r.annotations.a).toBe('b');
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.annotations)).toBe(true);
  });
});
