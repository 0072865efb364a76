/**
 * What every endpoint type shares, so that a new type writes only its own objects and health:
 * - EndpointBase: options resolved and checked once, the object name `objectName(id, 'endpoint')`,
 *   the server pod selector, frozen templates handed out as fresh copies by `objects()`;
 * - FrontendEndpointBase: a router object (Route, Ingress, TLSRoute, ...) in front of a ClusterIP
 *   Service `objectName(id, 'endpoint-svc')`, reached on `externalPort` with SNI.
 * Subclasses call `setObjects` once in their constructor, then `Object.freeze(this)`.
 */
import type { KubernetesObject, V1Service } from '@kubernetes/client-node';
import type { Endpoint, EndpointHealth, EndpointType, ObservedEndpoint } from '../types';
import { objectName } from '../names';
import { buildService, copyObjects, deepFreeze, findObserved, missing, serverPodSelector } from './common';
import { BACKING_SERVICE_ROLE, ENDPOINT_ROLE, resolveEndpointOptions, type EndpointOptions, type ResolvedEndpointOptions } from './options';

/** Base of every endpoint type; see the module doc. */
export abstract class EndpointBase implements Endpoint {
  abstract readonly type: EndpointType;
  abstract readonly needsNodes: boolean;
  /** Name of the endpoint's main object (the Service, or the router object of a frontend). */
  readonly name: string;
  readonly namespace: string;
  readonly backendPort: number;
  /** Port of the endpoint's Service (the port the source connects to for Service types). */
  readonly port: number;
  readonly podSelector: Readonly<Record<string, string>>;
  /** [hostname] when the options name one, else empty (an address known only after health). */
  readonly knownHostnames: readonly string[];
  /** The options, resolved (defaults applied) and checked. */
  protected readonly resolved: ResolvedEndpointOptions;
  private templates: readonly KubernetesObject[] = [];

  /** @throws EndpointOptionsError when the options are invalid; Error when options.type is not `type`. */
  protected constructor(type: EndpointType, options: EndpointOptions) {
    if (options?.type !== type) throw new Error(`${type} endpoint built with options of type ${String(options?.type)}`);
    const r = resolveEndpointOptions(options);
    this.resolved = r;
    this.name = objectName(r.migrationId, ENDPOINT_ROLE);
    this.namespace = r.namespace;
    this.backendPort = r.backendPort;
    this.port = r.port;
    this.podSelector = serverPodSelector(r.migrationId);
    this.knownHostnames = Object.freeze(r.hostname !== undefined ? [r.hostname] : []);
  }

  /** Sets the objects to create, in creation order (once, from the constructor). */
  protected setObjects(objects: KubernetesObject[]): void {
    this.templates = deepFreeze(objects);
  }

  /** The objects to create, in creation order (fresh mutable copies on every call). */
  objects(): KubernetesObject[] {
    return copyObjects(this.templates);
  }

  abstract health(observed: ObservedEndpoint): EndpointHealth;
}

/** Base of the endpoint types that put a router object in front of a ClusterIP Service. */
export abstract class FrontendEndpointBase extends EndpointBase {
  readonly needsNodes = false;
  /** Name of the backing ClusterIP Service. */
  readonly serviceName: string;
  /** Port of the router the source connects to (default 443). */
  readonly externalPort: number;
  /** Requested host (the SNI the source sends), or undefined when the router generates one. */
  readonly hostname: string | undefined;

  /** @throws see EndpointBase. */
  protected constructor(type: EndpointType, options: EndpointOptions) {
    super(type, options);
    this.serviceName = objectName(this.resolved.migrationId, BACKING_SERVICE_ROLE);
    this.externalPort = this.resolved.externalPort;
    this.hostname = this.resolved.hostname;
  }

  /** Sets [backing ClusterIP Service, router object]. */
  protected setFrontend(router: KubernetesObject): void {
    this.setObjects([buildService(this.resolved, this.serviceName, 'ClusterIP'), router]);
  }

  /** The "not yet" health when the backing Service is not observed; undefined when it is. */
  protected backingServiceMissing(observed: ObservedEndpoint): EndpointHealth | undefined {
    if (findObserved<V1Service>(observed, 'Service', this.serviceName)) return undefined;
    return { healthy: false, reason: missing('Service', this.serviceName, this.namespace) };
  }
}
