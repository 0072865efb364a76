/**
 * Ingress endpoint for ingress-nginx with TLS passthrough: a networking.k8s.io/v1 Ingress in front
 * of a ClusterIP Service that selects the server pod.
 *
 * ingress-nginx passes the TLS stream through untouched only when the controller runs with
 * `--enable-ssl-passthrough` (off by default; without it the annotation is ignored and the controller
 * terminates TLS itself, which breaks the transfer's mutual TLS). It then routes by the TLS SNI host,
 * so the source connects to the controller's address (from the Ingress status) with SNI = rule host.
 * Source: ingress-nginx docs, https://kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/annotations/#ssl-passthrough
 * (the flag is set e.g. with the Helm value controller.extraArgs.enable-ssl-passthrough=true).
 */
import { FrontendEndpointBase } from './base';
import type { V1Ingress } from '@kubernetes/client-node';
import type { EndpointHealth, EndpointKind, ObservedEndpoint } from '../types';
import { endpointMetadata, findObserved, missing } from './common';
import { type EndpointOptions } from './options';

/** Annotations Ferry puts on the Ingress (ingress-nginx). */
export const INGRESS_NGINX_ANNOTATIONS: Readonly<Record<string, string>> = Object.freeze({
  /** Forward TLS untouched, routed by SNI; needs the controller flag --enable-ssl-passthrough. */
  'nginx.ingress.kubernetes.io/ssl-passthrough': 'true',
  /** The backend speaks TLS (matters if passthrough were off: nginx then at least talks TLS to it). */
  'nginx.ingress.kubernetes.io/backend-protocol': 'HTTPS',
});

/**
 * Ingress endpoint. Objects, in creation order: the ClusterIP Service
 * `objectName(id, 'endpoint-svc')` and the Ingress `objectName(id, 'endpoint')` with one rule for
 * `hostname` (path `/`, Prefix) to the Service's port, `ingressClassName` when given (else the
 * cluster's default IngressClass) and INGRESS_NGINX_ANNOTATIONS.
 *
 * The ingress-nginx controller must run with `--enable-ssl-passthrough`, and publish its address in
 * Ingress status (`--publish-service` or `--publish-status-address`) for health to see it.
 */
export class IngressEndpoint extends FrontendEndpointBase {
  readonly type = 'Ingress' as const;
  /** The rule host; the SNI the source sends (required for Ingress). */
  declare readonly hostname: string;
  readonly ingressClassName: string | undefined;

  /** @throws EndpointOptionsError when the options are invalid (hostname is required); Error when options.type is not Ingress. */
  constructor(options: EndpointOptions) {
    super('Ingress', options);
    const r = this.resolved;
    if (r.hostname === undefined) throw new Error('unreachable: Ingress hostname validated');
    this.ingressClassName = r.ingressClassName;
    const ingress: V1Ingress = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: endpointMetadata(r, this.name, INGRESS_NGINX_ANNOTATIONS),
      spec: {
        ...(r.ingressClassName !== undefined ? { ingressClassName: r.ingressClassName } : {}),
        rules: [
          {
            host: r.hostname,
            http: {
              paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: this.serviceName, port: { number: r.port } } } }],
            },
          },
        ],
      },
    };
    this.setFrontend(ingress);
    Object.freeze(this);
  }

  /**
   * Healthy when the backing Service exists and the live Ingress's `status.loadBalancer.ingress` has
   * an entry with an `ip` OR a `hostname` (an IP-only status is healthy). Address =
   * { host: that ip (else hostname), port: externalPort, sni: the rule host }.
   */
  health(observed: ObservedEndpoint): EndpointHealth {
    const where = `Ingress ${this.namespace}/${this.name}`;
    const noService = this.backingServiceMissing(observed);
    if (noService) return noService;
    const ingress = findObserved<V1Ingress>(observed, 'Ingress', this.name);
    if (!ingress) return { healthy: false, reason: missing('Ingress', this.name, this.namespace) };
    const entries = Array.isArray(ingress.status?.loadBalancer?.ingress) ? ingress.status.loadBalancer.ingress : [];
    for (const e of entries) {
      const host = e?.ip || e?.hostname;
      if (host) {
        return {
          healthy: true,
          address: { host, port: this.externalPort, sni: this.hostname },
          reason: `${where}: controller address ${host}:${this.externalPort}, SNI ${this.hostname}`,
        };
      }
    }
    const cls = this.ingressClassName ? `class ${this.ingressClassName}` : 'the default IngressClass';
    return {
      healthy: false,
      reason:
        `${where}: no controller address in status.loadBalancer.ingress yet: is an ingress-nginx controller for ${cls} running ` +
        'with --enable-ssl-passthrough and publishing its address (--publish-service or --publish-status-address)?',
    };
  }
}

/** Ingress (networking.k8s.io/v1, ssl-passthrough) in front of a ClusterIP Service. */
export const INGRESS_ENDPOINT: EndpointKind = Object.freeze({
  type: 'Ingress' as const,
  create: (o: EndpointOptions) => new IngressEndpoint(o),
  extraKinds: [{ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress' }],
  permissions: [{ group: 'networking.k8s.io', resource: 'ingresses', verbs: ['get', 'list', 'create', 'delete'] }],
});
