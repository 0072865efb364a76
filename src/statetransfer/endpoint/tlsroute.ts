/**
 * Gateway API TLSRoute endpoint: a TLSRoute (gateway.networking.k8s.io/v1, Standard channel since
 * Gateway API v1.5; its CEL validation needs Kubernetes >= 1.31) attached to an existing Gateway's
 * TLS listener in Passthrough mode, in front of a ClusterIP Service that selects the server pod. The
 * Gateway forwards the TLS stream untouched, choosing the route by SNI, so the source connects to the
 * Gateway's address on the listener's port with SNI = `hostname`. The successor of Ingress
 * ssl-passthrough now that the community ingress-nginx is retired.
 * Source: Gateway API "TLS routing" guide, https://gateway-api.sigs.k8s.io/guides/tls-routing and the
 * v1.5.0 release notes (TLSRoute v1 in Standard; v1alpha2 only in Experimental, removed in 1.6).
 *
 * The Gateway is the operator's (Ferry never creates or changes it): it must allow routes from the
 * destination namespace (listener allowedRoutes), and its controller reports in the route's status
 * whether it accepted it. Health reads both.
 */
import type { KubernetesObject, V1ObjectMeta } from '@kubernetes/client-node';
import type { EndpointHealth, EndpointKind, ObjectRefOf, ObservedEndpoint } from '../types';
import { FrontendEndpointBase } from './base';
import { endpointMetadata, findObserved, missing } from './common';
import type { EndpointOptions, GatewayRef } from './options';

/** API version of the TLSRoute and Gateway objects Ferry writes and reads. */
export const GATEWAY_API_VERSION = 'gateway.networking.k8s.io/v1';
const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** A status condition (metav1.Condition). */
export interface GatewayCondition {
  type: string;
  /** 'True', 'False' or 'Unknown'. */
  status: string;
  reason?: string;
  message?: string;
}

/** A TLSRoute as Ferry writes and reads it (the fields used here). */
export interface TLSRouteObject extends KubernetesObject {
  apiVersion: typeof GATEWAY_API_VERSION;
  kind: 'TLSRoute';
  metadata: V1ObjectMeta;
  spec: {
    parentRefs: { group: string; kind: 'Gateway'; name: string; namespace?: string; sectionName?: string }[];
    hostnames: string[];
    rules: { backendRefs: { name: string; port: number }[] }[];
  };
  status?: {
    parents?: { parentRef?: { name?: string; namespace?: string; sectionName?: string }; controllerName?: string; conditions?: GatewayCondition[] }[];
  };
}

/** A Gateway listener (the fields Ferry reads). */
export interface GatewayListener {
  name?: string;
  port?: number;
  protocol?: string;
  tls?: { mode?: string };
  /** Which routes may attach: namespaces.from All, Same (default) or Selector; kinds (default: the protocol's). */
  allowedRoutes?: { namespaces?: { from?: string }; kinds?: { group?: string; kind?: string }[] };
}

/** The Gateway fields health and preflight read. */
export interface GatewayObject extends KubernetesObject {
  spec?: { listeners?: GatewayListener[] };
  status?: { addresses?: { type?: string; value?: string }[] };
}

/**
 * TLSRoute endpoint. Objects, in creation order: the ClusterIP Service `objectName(id, 'endpoint-svc')`
 * and the TLSRoute `objectName(id, 'endpoint')` with one parentRef (the Gateway), `hostnames:
 * [hostname]` and one rule to the Service's port.
 */
export class TLSRouteEndpoint extends FrontendEndpointBase {
  readonly type = 'TLSRoute' as const;
  /** The SNI host the route matches (required). */
  declare readonly hostname: string;
  /** The parent Gateway (namespace resolved). */
  readonly gateway: Readonly<Required<Pick<GatewayRef, 'name' | 'namespace'>> & Pick<GatewayRef, 'sectionName'>>;
  readonly observes: readonly ObjectRefOf[];

  /** @throws EndpointOptionsError when the options are invalid (hostname and gateway are required); Error when options.type is not TLSRoute. */
  constructor(options: EndpointOptions) {
    super('TLSRoute', options);
    const r = this.resolved;
    if (r.hostname === undefined || r.gateway === undefined) throw new Error('unreachable: TLSRoute hostname and gateway validated');
    this.gateway = Object.freeze({ name: r.gateway.name, namespace: r.gateway.namespace ?? r.namespace, ...(r.gateway.sectionName !== undefined ? { sectionName: r.gateway.sectionName } : {}) });
    this.observes = Object.freeze([{ apiVersion: GATEWAY_API_VERSION, kind: 'Gateway', namespace: this.gateway.namespace, name: this.gateway.name }]);
    const route: TLSRouteObject = {
      apiVersion: GATEWAY_API_VERSION,
      kind: 'TLSRoute',
      metadata: endpointMetadata(r, this.name),
      spec: {
        parentRefs: [
          {
            group: GATEWAY_GROUP,
            kind: 'Gateway',
            name: this.gateway.name,
            ...(r.gateway.namespace !== undefined ? { namespace: r.gateway.namespace } : {}),
            ...(r.gateway.sectionName !== undefined ? { sectionName: r.gateway.sectionName } : {}),
          },
        ],
        hostnames: [r.hostname],
        rules: [{ backendRefs: [{ name: this.serviceName, port: r.port }] }],
      },
    };
    this.setFrontend(route);
    Object.freeze(this);
  }

  /**
   * The Gateway listener the route attaches to (the one named by sectionName, else the first with
   * protocol TLS and tls.mode Passthrough), or why there is none usable: the Gateway is missing, has
   * no such listener, or that listener does not pass TLS through (a terminating one breaks the
   * transfer's mutual TLS).
   */
  listenerOf(gateway: GatewayObject | undefined): { listener: GatewayListener } | { problem: string } {
    const gw = `Gateway ${this.gateway.namespace}/${this.gateway.name}`;
    if (!gateway) return { problem: `${gw} not found: the TLSRoute attaches to an existing Gateway with a TLS Passthrough listener (plan endpoint.gateway)` };
    const listeners = gateway.spec?.listeners ?? [];
    const listener = this.gateway.sectionName !== undefined ? listeners.find((l) => l.name === this.gateway.sectionName) : listeners.find((l) => l.protocol === 'TLS' && l.tls?.mode === 'Passthrough');
    if (!listener) {
      return { problem: this.gateway.sectionName !== undefined ? `${gw} has no listener named ${this.gateway.sectionName}` : `${gw} has no listener with protocol TLS and tls.mode Passthrough` };
    }
    // tls.mode defaults to Terminate (Gateway API spec): a terminating listener breaks mutual TLS.
    if (listener.protocol !== 'TLS' || listener.tls?.mode !== 'Passthrough') {
      return { problem: `${gw} listener ${listener.name ?? '?'} is ${listener.protocol ?? '?'} with tls.mode ${listener.tls?.mode ?? 'Terminate'}: the transfer's mutual TLS needs protocol TLS with tls.mode Passthrough` };
    }
    return { listener };
  }

  /**
   * What the Gateway's spec alone tells against this route, before any route exists (preflight):
   * `listenerOf`'s problems, and a listener that admits no TLSRoute from this namespace
   * (allowedRoutes.namespaces.from Same, the default, with the Gateway in another namespace; or
   * allowedRoutes.kinds without TLSRoute). A Selector is not evaluated (the controller decides, and
   * health reports its verdict). Undefined when nothing is wrong as far as the spec tells.
   */
  gatewayProblem(gateway: GatewayObject | undefined): string | undefined {
    const found = this.listenerOf(gateway);
    if ('problem' in found) return found.problem;
    const { listener } = found;
    const gw = `Gateway ${this.gateway.namespace}/${this.gateway.name} listener ${listener.name ?? '?'}`;
    const from = listener.allowedRoutes?.namespaces?.from ?? 'Same';
    if (from === 'Same' && this.gateway.namespace !== this.namespace) {
      return `${gw} admits routes from its own namespace ${this.gateway.namespace} only (allowedRoutes.namespaces.from Same), not from ${this.namespace}: allow the destination namespace on the listener (from All, or a Selector that matches it)`;
    }
    const kinds = listener.allowedRoutes?.kinds;
    if (kinds && kinds.length > 0 && !kinds.some((k) => k.kind === 'TLSRoute' && (k.group ?? GATEWAY_GROUP) === GATEWAY_GROUP)) {
      return `${gw} admits the route kinds ${kinds.map((k) => k.kind).join(', ')}, not TLSRoute (allowedRoutes.kinds)`;
    }
    return undefined;
  }

  /**
   * Healthy when the backing Service exists, the Gateway's controller reports the route Accepted and
   * ResolvedRefs ('True') for this parent, and the Gateway has an address and a TLS Passthrough
   * listener (the one named by sectionName, else the first). Address = { host: the Gateway's first
   * address, port: that listener's port, sni: hostname }. A 'False' condition's reason and message
   * are the explanation (e.g. NotAllowedByListeners: the listener does not admit routes from this
   * namespace).
   */
  health(observed: ObservedEndpoint): EndpointHealth {
    const where = `TLSRoute ${this.namespace}/${this.name}`;
    const gw = `Gateway ${this.gateway.namespace}/${this.gateway.name}`;
    const noService = this.backingServiceMissing(observed);
    if (noService) return noService;
    const route = findObserved<TLSRouteObject>(observed, 'TLSRoute', this.name);
    if (!route) return { healthy: false, reason: missing('TLSRoute', this.name, this.namespace) };
    const gateway = findObserved<GatewayObject>(observed, 'Gateway', this.gateway.name);
    const found = this.listenerOf(gateway);
    if ('problem' in found) return { healthy: false, reason: found.problem };
    const { listener } = found;
    const parent = (route.status?.parents ?? []).find(
      (p) => p.parentRef?.name === this.gateway.name && (p.parentRef.namespace ?? this.namespace) === this.gateway.namespace && (this.gateway.sectionName === undefined || p.parentRef.sectionName === this.gateway.sectionName),
    );
    for (const type of ['Accepted', 'ResolvedRefs']) {
      const c = parent?.conditions?.find((x) => x.type === type);
      if (c?.status === 'False') return { healthy: false, reason: `${where}: ${gw} did not accept it: ${type} False (${c.reason ?? 'no reason'}${c.message ? `: ${c.message}` : ''})` };
      if (c?.status !== 'True') return { healthy: false, reason: `${where}: waiting for ${gw}'s controller to report ${type} (is a Gateway API implementation with TLSRoute support running?)` };
    }
    const address = (gateway?.status?.addresses ?? []).find((a) => typeof a.value === 'string' && a.value !== '')?.value;
    if (!address) return { healthy: false, reason: `${gw} has no address yet (status.addresses is empty)` };
    if (typeof listener.port !== 'number') return { healthy: false, reason: `${gw} listener ${listener.name ?? '?'} has no port` };
    return {
      healthy: true,
      address: { host: address, port: listener.port, sni: this.hostname },
      reason: `${where}: accepted by ${gw}, ${address}:${listener.port}, SNI ${this.hostname}`,
    };
  }
}

/** TLSRoute (Gateway API) attached to an existing Gateway, in front of a ClusterIP Service. */
export const TLS_ROUTE_ENDPOINT: EndpointKind = Object.freeze({
  type: 'TLSRoute' as const,
  create: (o: EndpointOptions) => new TLSRouteEndpoint(o),
  extraKinds: [{ apiVersion: GATEWAY_API_VERSION, kind: 'TLSRoute' }],
  permissions: [{ group: GATEWAY_GROUP, resource: 'tlsroutes', verbs: ['get', 'list', 'create', 'delete'] }],
});
