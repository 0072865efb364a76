/**
 * OpenShift Route endpoint: a passthrough Route (route.openshift.io/v1) in front of a ClusterIP
 * Service that selects the server pod. The router forwards the TLS stream untouched, choosing the
 * backend by the TLS SNI host, so the source connects to `<route host>:443` with SNI = route host and
 * the server certificate must carry the route host (knownHostnames when the host is given).
 */
import { FrontendEndpointBase } from './base';
import type { KubernetesObject, V1ObjectMeta } from '@kubernetes/client-node';
import type { EndpointHealth, EndpointKind, ObservedEndpoint } from '../types';
import { endpointMetadata, findObserved, missing } from './common';
import { TRANSFER_PORT_NAME, type EndpointOptions } from './options';

/** One condition of a router's status entry (route.openshift.io/v1 RouteIngressCondition). */
export interface RouteIngressCondition {
  /** `Admitted` is the only type routers set. */
  type: string;
  /** 'True', 'False' or 'Unknown'. */
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

/** A Route as Ferry writes and reads it (the fields used here; route.openshift.io/v1). */
export interface RouteObject extends KubernetesObject {
  apiVersion: 'route.openshift.io/v1';
  kind: 'Route';
  metadata: V1ObjectMeta;
  spec: {
    /** Absent on creation when the router should generate it. */
    host?: string;
    to: { kind: 'Service'; name: string; weight?: number };
    /** Named Service port (or number) the router sends the traffic to. */
    port?: { targetPort: string | number };
    tls?: { termination: 'passthrough' | 'edge' | 'reencrypt'; insecureEdgeTerminationPolicy?: string };
    wildcardPolicy?: string;
  };
  status?: {
    /** One entry per router (shard) that considered the Route. */
    ingress?: Array<{
      host?: string;
      routerName?: string;
      /** DNS name of the router itself (what the route host should resolve to). */
      routerCanonicalHostname?: string;
      wildcardPolicy?: string;
      conditions?: RouteIngressCondition[];
    }>;
  };
}

/**
 * Route endpoint. Objects, in creation order: the ClusterIP Service `objectName(id, 'endpoint-svc')`
 * and the Route `objectName(id, 'endpoint')` with `tls.termination: passthrough`,
 * `insecureEdgeTerminationPolicy: None`, `to` the Service and `port.targetPort: ferry-transfer`.
 *
 * Without `hostname` the router generates `<route name>-<namespace>.<apps domain>`; options
 * validation rejects namespaces for which that first label would exceed 63 characters.
 */
export class RouteEndpoint extends FrontendEndpointBase {
  readonly type = 'Route' as const;

  /** @throws EndpointOptionsError when the options are invalid; Error when options.type is not Route. */
  constructor(options: EndpointOptions) {
    super('Route', options);
    const route: RouteObject = {
      apiVersion: 'route.openshift.io/v1',
      kind: 'Route',
      metadata: endpointMetadata(this.resolved, this.name),
      spec: {
        ...(this.hostname !== undefined ? { host: this.hostname } : {}),
        to: { kind: 'Service', name: this.serviceName, weight: 100 },
        port: { targetPort: TRANSFER_PORT_NAME },
        tls: { termination: 'passthrough', insecureEdgeTerminationPolicy: 'None' },
        wildcardPolicy: 'None',
      },
    };
    this.setFrontend(route);
    Object.freeze(this);
  }

  /**
   * Healthy when the backing Service exists, the live Route has `spec.host` (equal to `hostname`
   * when one was requested) and some `status.ingress[]` entry for that host has the condition
   * `Admitted` = 'True'. Address = { host: spec.host, port: externalPort, sni: spec.host }.
   * When routers rejected it (Admitted 'False'), the reason carries their reasons and messages
   * (e.g. HostAlreadyClaimed, InvalidHost).
   */
  health(observed: ObservedEndpoint): EndpointHealth {
    const where = `Route ${this.namespace}/${this.name}`;
    const noService = this.backingServiceMissing(observed);
    if (noService) return noService;
    const route = findObserved<RouteObject>(observed, 'Route', this.name);
    if (!route) return { healthy: false, reason: missing('Route', this.name, this.namespace) };
    const host = route.spec?.host;
    const entries = Array.isArray(route.status?.ingress) ? route.status.ingress : [];
    const admittedOf = (e: (typeof entries)[number]) =>
      (Array.isArray(e?.conditions) ? e.conditions : []).find((c) => c?.type === 'Admitted');
    const rejections = entries
      .map((e) => ({ e, c: admittedOf(e) }))
      .filter(({ c }) => c?.status === 'False')
      .map(({ e, c }) => `router ${e.routerName ?? '?'}: ${[c?.reason, c?.message].filter(Boolean).join(': ') || 'no message'}`);
    if (!host) {
      const why = rejections.length > 0 ? `; not admitted by ${rejections.join('; ')}` : '';
      return { healthy: false, reason: `${where}: waiting for the router to assign spec.host${why}` };
    }
    if (this.hostname !== undefined && host !== this.hostname) {
      return {
        healthy: false,
        reason: `${where}: spec.host is ${host}, not the requested ${this.hostname} (the server certificate would not match)`,
      };
    }
    const admitted = entries.find((e) => (e?.host === undefined || e.host === host) && admittedOf(e)?.status === 'True');
    if (admitted) {
      return {
        healthy: true,
        address: { host, port: this.externalPort, sni: host },
        reason: `${where}: admitted by router ${admitted.routerName ?? '?'} at ${host}:${this.externalPort}`,
      };
    }
    if (rejections.length > 0) {
      return { healthy: false, reason: `${where}: not admitted by ${rejections.join('; ')}` };
    }
    return {
      healthy: false,
      reason: `${where}: waiting for a router to admit host ${host} (no Admitted condition yet): does an OpenShift router serve namespace ${this.namespace}?`,
    };
  }
}

/** Route (OpenShift, route.openshift.io/v1, TLS passthrough) in front of a ClusterIP Service. */
export const ROUTE_ENDPOINT: EndpointKind = Object.freeze({
  type: 'Route' as const,
  create: (o: EndpointOptions) => new RouteEndpoint(o),
  extraKinds: [{ apiVersion: 'route.openshift.io/v1', kind: 'Route' }],
  permissions: [{ group: 'route.openshift.io', resource: 'routes', verbs: ['get', 'list', 'create', 'delete'] }],
});
