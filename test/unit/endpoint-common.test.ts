/** Properties common to every endpoint type: valid names and labels, creation order, immutability. */
import type { KubernetesObject } from '@kubernetes/client-node';
import { ClusterIPEndpoint, LoadBalancerEndpoint, createEndpoint, type EndpointOptions } from '../../src/statetransfer/endpoint';
import { isDNSLabel, isLabelValue } from '../../src/statetransfer/names';
import type { EndpointType } from '../../src/statetransfer/types';

const TYPES: EndpointType[] = ['LoadBalancer', 'NodePort', 'ClusterIP', 'Route', 'Ingress'];
const LONG_ID = 'm'.repeat(120) + '/With Spaces & UPPER_case/' + 'x'.repeat(200 - 146);

function opts(type: EndpointType, migrationId = 'mig-1'): EndpointOptions {
  return {
    type,
    migrationId,
    namespace: 'ns',
    backendPort: 2222,
    ...(type === 'Ingress' || type === 'Route' ? { hostname: 'ferry.example.com' } : {}),
  };
}

describe.each(TYPES)('%s endpoint', (type) => {
  test('names are DNS labels and labels are valid with a 200-character migration id', () => {
    expect(LONG_ID).toHaveLength(200);
    const ep = createEndpoint(opts(type, LONG_ID));
    expect(isDNSLabel(ep.name)).toBe(true);
    const objs = ep.objects();
    for (const o of objs) {
      const name = o.metadata?.name ?? '';
      expect(name.length).toBeLessThanOrEqual(63);
      expect(isDNSLabel(name)).toBe(true);
      expect(o.metadata?.namespace).toBe('ns');
      expect(o.apiVersion).toBeTruthy();
      expect(o.kind).toBeTruthy();
      for (const v of Object.values(o.metadata?.labels ?? {})) expect(isLabelValue(v)).toBe(true);
      expect(o.metadata?.annotations?.['ferry.dev/migration-id']).toBe(LONG_ID);
    }
    for (const v of Object.values(ep.podSelector)) expect(isLabelValue(v)).toBe(true);
    expect(new Set(objs.map((o) => o.metadata?.name)).size).toBe(objs.length);
  });

  test('two migrations never share names or selectors', () => {
    const a = createEndpoint(opts(type, 'mig-a'));
    const b = createEndpoint(opts(type, 'mig-b'));
    expect(a.name).not.toBe(b.name);
    expect(a.podSelector).not.toEqual(b.podSelector);
  });

  test('Service first; the main object carries the endpoint name', () => {
    const ep = createEndpoint(opts(type));
    const objs = ep.objects();
    expect(objs[0]!.kind).toBe('Service');
    expect(objs[objs.length - 1]!.metadata?.name).toBe(ep.name);
    expect(objs[objs.length - 1]!.kind).toBe(type === 'Route' ? 'Route' : type === 'Ingress' ? 'Ingress' : 'Service');
  });

  test('immutable: frozen, assignment throws in strict mode, objects() returns fresh copies', () => {
    const ep = createEndpoint(opts(type));
    expect(Object.isFrozen(ep)).toBe(true);
    expect(Object.isFrozen(ep.podSelector)).toBe(true);
    expect(Object.isFrozen(ep.knownHostnames)).toBe(true);
    expect(() => {
      (ep as { name: string }).name = 'x';
    }).toThrow(TypeError);
    expect(() => {
      (ep.podSelector as Record<string, string>)['ferry.dev/role'] = 'client';
    }).toThrow(TypeError);
    expect(() => (ep.knownHostnames as string[]).push('evil.example.com')).toThrow(TypeError);
    const first = ep.objects();
    (first[0] as KubernetesObject).metadata!.name = 'mutated';
    expect(ep.objects()[0]!.metadata?.name).not.toBe('mutated');
    expect(ep.objects()).toEqual(createEndpoint(opts(type)).objects());
  });

  test('health does not modify the observed objects', () => {
    const ep = createEndpoint(opts(type));
    const observed = { objects: ep.objects(), nodes: [] };
    const before = JSON.stringify(observed);
    ep.health(observed);
    expect(JSON.stringify(observed)).toBe(before);
  });
});

describe('classes', () => {
  test('constructors validate and refuse options of another type', () => {
    expect(() => new LoadBalancerEndpoint(opts('ClusterIP'))).toThrow(/LoadBalancer endpoint built with options of type ClusterIP/);
    expect(() => new ClusterIPEndpoint({ ...opts('ClusterIP'), backendPort: 0 })).toThrow(/backendPort: 0/);
    expect(createEndpoint(opts('LoadBalancer'))).toBeInstanceOf(LoadBalancerEndpoint);
  });
});
