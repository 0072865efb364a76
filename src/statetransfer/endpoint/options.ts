/**
 * Options of the Endpoint layer, their defaults and their validation.
 *
 * `resolveEndpointOptions` is the only way options reach an endpoint implementation: it checks every
 * option, collects EVERY problem (not only the first) and throws one `EndpointOptionsError` listing
 * them all, so an operator fixes a configuration in one round trip.
 */
import { ProblemListError } from '../../core/errors';
import { isIP } from 'node:net';
import { describeEndpointTypes, ENDPOINT_TYPE_TRAITS, ENDPOINT_TYPES, endpointTypesAccepting, type EndpointType, type EndpointTypeOption } from '../types';
import { ANNOTATIONS, DNS_LABEL_MAX, LABELS, isDNSLabel, isLabelValue, objectName } from '../names';


/**
 * Default node-port range of kube-apiserver (`--service-node-port-range`, default 30000-32767).
 * Clusters that configure another range are not supported by the `nodePort` option: leave it unset
 * there and let the API server allocate one.
 */
export const NODE_PORT_MIN = 30000;
/** Upper end (inclusive) of the default node-port range; see NODE_PORT_MIN. */
export const NODE_PORT_MAX = 32767;

/** Port where the OpenShift router and ingress controllers accept TLS (HTTPS) by default. */
export const DEFAULT_EXTERNAL_PORT = 443;

/** Name of the Service port that carries the transfer stream (also Route spec.port.targetPort). */
export const TRANSFER_PORT_NAME = 'ferry-transfer';

/** Object role (see names.ts objectName) of the endpoint's main object (Service, Route or Ingress). */
export const ENDPOINT_ROLE = 'endpoint';
/** Object role of the ClusterIP Service behind a Route or an Ingress. */
export const BACKING_SERVICE_ROLE = 'endpoint-svc';
/** Value of the `ferry.dev/role` label the server pod carries (the Services select it). */
export const SERVER_ROLE = 'server';

/** Options of `createEndpoint`. */
export interface EndpointOptions {
  /** Which implementation to build. */
  type: EndpointType;
  /** Migration id (any non-empty string; names and labels use a hash of it). */
  migrationId: string;
  /** Destination namespace (a DNS label). */
  namespace: string;
  /** TCP port the transfer server listens on in the server pod (Service targetPort), 1-65535. */
  backendPort: number;
  /**
   * Service port, 1-65535. Default: `backendPort`. For LoadBalancer and ClusterIP it is the port the
   * source connects to; for Route and Ingress it is the port of the backing ClusterIP Service only
   * (the source connects to `externalPort`).
   */
  port?: number;
  /**
   * Route / Ingress host name (a lowercase DNS name, not an IP, no wildcard). Required for Ingress.
   * Optional for Route: when absent the router generates `<route name>-<namespace>.<apps domain>`
   * and health waits until spec.host is set.
   */
  hostname?: string;
  /** Ingress only: spec.ingressClassName. Default: unset, i.e. the cluster's default IngressClass. */
  ingressClassName?: string;
  /** NodePort only: fixed node port in NODE_PORT_MIN..NODE_PORT_MAX. Default: allocated by the API server. */
  nodePort?: number;
  /** LoadBalancer only: spec.loadBalancerClass (selects a non-default LB implementation). */
  loadBalancerClass?: string;
  /**
   * Route / Ingress only: the port where the router or ingress controller accepts TLS, which the
   * source connects to. Default 443. Set it when the controller is itself exposed on another port
   * (e.g. an ingress-nginx reached through a NodePort).
   */
  externalPort?: number;
  /** TLSRoute only: the Gateway the route attaches to (namespace: the destination namespace when
   * unset; sectionName: the listener, else the Gateway's first TLS Passthrough listener). */
  gateway?: GatewayRef;
  /** Extra annotations for the Service (e.g. cloud load-balancer settings). */
  annotations?: Record<string, string>;
  /** Extra labels for every endpoint object (not used in selectors); must not replace Ferry's labels. */
  extraLabels?: Record<string, string>;
}

/** A Gateway (gateway.networking.k8s.io/v1) by name, with the listener to attach to. */
export interface GatewayRef {
  name: string;
  namespace?: string;
  sectionName?: string;
}

/** Options after validation and defaulting; deeply frozen. */
export interface ResolvedEndpointOptions {
  readonly type: EndpointType;
  readonly migrationId: string;
  readonly namespace: string;
  readonly backendPort: number;
  /** Service port (default applied). */
  readonly port: number;
  readonly hostname?: string;
  readonly ingressClassName?: string;
  readonly nodePort?: number;
  readonly loadBalancerClass?: string;
  readonly gateway?: Readonly<GatewayRef>;
  /** Route / Ingress: port the source connects to (default applied); for Services equal to `port`. */
  readonly externalPort: number;
  readonly annotations: Readonly<Record<string, string>>;
  readonly extraLabels: Readonly<Record<string, string>>;
}

/** Thrown by `resolveEndpointOptions` (and so by `createEndpoint`); `problems` lists every problem,
 * `path` being the option's name. */
export class EndpointOptionsError extends ProblemListError {
  /** @param problems at least one problem description, each starting with the option's name. */
  constructor(problems: string[]) {
    super(
      'endpoint options',
      problems.map((p) => {
        const path = /^\S+/.exec(p)![0];
        return { path, message: p.slice(path.length).trim() };
      }),
    );
    this.name = 'EndpointOptionsError';
  }
}

const QUALIFIED_NAME_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const HOSTNAME_MAX = 253;

/** True when `n` is an integer TCP port (1-65535). */
export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/**
 * Why `host` is not usable as a Route/Ingress host, or undefined when it is. Rules: a DNS subdomain
 * (RFC 1123: at most 253 characters, dot-separated labels of at most 63 lowercase [a-z0-9-]
 * characters starting and ending alphanumeric), not an IP address (Kubernetes rejects IPs in
 * Ingress rules, and SNI carries names only, RFC 6066 §3), no wildcard, no trailing dot.
 */
export function hostnameProblem(host: string): string | undefined {
  if (host.length === 0) return 'must not be empty';
  if (host.length > HOSTNAME_MAX) return `must be at most ${HOSTNAME_MAX} characters (has ${host.length})`;
  if (isIP(host) !== 0) return 'must be a DNS name, not an IP address';
  if (host.includes('*')) return 'must not be a wildcard';
  if (host !== host.toLowerCase()) return 'must be lowercase';
  if (host.endsWith('.')) return 'must not end with a dot';
  const bad = host.split('.').filter((l) => !isDNSLabel(l));
  if (bad.length > 0) {
    return `is not a valid DNS name: label(s) ${bad.map((l) => JSON.stringify(l)).join(', ')} must be 1-${DNS_LABEL_MAX} characters of [a-z0-9-] starting and ending with a letter or digit`;
  }
  return undefined;
}

/** True when `key` is a valid Kubernetes label/annotation key (`[prefix/]name`, prefix a DNS subdomain). */
export function isQualifiedKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (name.length === 0 || name.length > DNS_LABEL_MAX || !QUALIFIED_NAME_RE.test(name)) return false;
  if (prefix === undefined) return true;
  return prefix.length <= HOSTNAME_MAX && prefix.split('.').every(isDNSLabel);
}

function describe(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function isRecordOfStrings(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

/**
 * Every problem of `o`, as sentences starting with the option's name; empty when `o` is valid.
 * Options that do not apply to `o.type` (e.g. nodePort on a Route) are problems too: they would be
 * ignored silently otherwise.
 */
export function validateEndpointOptions(o: EndpointOptions): string[] {
  const p: string[] = [];
  const type = o.type;
  const knownType = (ENDPOINT_TYPES as readonly string[]).includes(type);
  if (!knownType) p.push(`type ${describe(type)} is not one of ${ENDPOINT_TYPES.join(', ')}`);
  // Options another type takes: refused with the types that take them (ENDPOINT_TYPE_TRAITS).
  const misplaced = (option: EndpointTypeOption): string | undefined =>
    knownType && !(ENDPOINT_TYPE_TRAITS[type].options as readonly string[]).includes(option)
      ? `${option} applies only to endpoint ${describeEndpointTypes(endpointTypesAccepting(option))}, not ${type}`
      : undefined;
  const required = knownType ? (ENDPOINT_TYPE_TRAITS[type].required as Partial<Record<EndpointTypeOption, string>>) : {};

  if (typeof o.migrationId !== 'string' || o.migrationId.length === 0) p.push('migrationId must be a non-empty string');
  const nsValid = typeof o.namespace === 'string' && isDNSLabel(o.namespace);
  if (!nsValid) p.push(`namespace ${describe(o.namespace)} must be a DNS label (1-63 characters of [a-z0-9-])`);
  if (!isPort(o.backendPort)) p.push(`backendPort ${describe(o.backendPort)} must be an integer from 1 to 65535`);
  if (o.port !== undefined && !isPort(o.port)) p.push(`port ${describe(o.port)} must be an integer from 1 to 65535`);

  if (o.externalPort !== undefined) {
    const m = misplaced('externalPort');
    if (m) p.push(`${m} (use port)`);
    else if (!isPort(o.externalPort)) p.push(`externalPort ${describe(o.externalPort)} must be an integer from 1 to 65535`);
  }

  if (o.nodePort !== undefined) {
    const m = misplaced('nodePort');
    if (m) p.push(m);
    else if (typeof o.nodePort !== 'number' || !Number.isInteger(o.nodePort) || o.nodePort < NODE_PORT_MIN || o.nodePort > NODE_PORT_MAX) {
      p.push(`nodePort ${describe(o.nodePort)} must be an integer from ${NODE_PORT_MIN} to ${NODE_PORT_MAX} (the default node-port range)`);
    }
  }

  if (o.loadBalancerClass !== undefined) {
    const m = misplaced('loadBalancerClass');
    if (m) p.push(m);
    else if (typeof o.loadBalancerClass !== 'string' || !isQualifiedKey(o.loadBalancerClass)) {
      p.push(`loadBalancerClass ${describe(o.loadBalancerClass)} must be a label-style name such as "example.com/lb"`);
    }
  }

  if (o.ingressClassName !== undefined) {
    const m = misplaced('ingressClassName');
    if (m) p.push(m);
    else if (typeof o.ingressClassName !== 'string' || hostnameProblem(o.ingressClassName) !== undefined) {
      p.push(`ingressClassName ${describe(o.ingressClassName)} must be a valid IngressClass name (a lowercase DNS subdomain)`);
    }
  }

  if (o.hostname !== undefined) {
    const m = misplaced('hostname');
    if (m) p.push(m);
    else {
      const why = typeof o.hostname === 'string' ? hostnameProblem(o.hostname) : 'must be a string';
      if (why) p.push(`hostname ${describe(o.hostname)} ${why}`);
    }
  } else if (required.hostname !== undefined) {
    p.push(`hostname is required for endpoint type ${type} (${required.hostname})`);
  } else if (type === 'Route' && nsValid && typeof o.migrationId === 'string' && o.migrationId.length > 0) {
    // The router generates `<route name>-<namespace>.<domain>`; a first label over 63 characters is
    // rejected as InvalidHost (openshift/origin#24553, openshift/oc#486). Catch it before creating.
    const generated = `${objectName(o.migrationId, ENDPOINT_ROLE)}-${o.namespace}`;
    if (generated.length > DNS_LABEL_MAX) {
      p.push(
        `hostname is required for endpoint type Route in namespace ${describe(o.namespace)}: the generated host label ` +
          `"${generated}" would have ${generated.length} characters (> ${DNS_LABEL_MAX}) and the router would reject it`,
      );
    }
  }

  if (o.gateway !== undefined) {
    const m = misplaced('gateway');
    const g = o.gateway as Partial<GatewayRef> | null;
    if (m) p.push(m);
    else if (typeof g !== 'object' || g === null || typeof g.name !== 'string' || hostnameProblem(g.name) !== undefined) {
      p.push(`gateway ${describe(o.gateway)} must name a Gateway (name: a lowercase DNS subdomain)`);
    } else {
      if (g.namespace !== undefined && (typeof g.namespace !== 'string' || !isDNSLabel(g.namespace))) p.push(`gateway namespace ${describe(g.namespace)} must be a DNS label`);
      if (g.sectionName !== undefined && (typeof g.sectionName !== 'string' || hostnameProblem(g.sectionName) !== undefined)) {
        p.push(`gateway sectionName ${describe(g.sectionName)} must be a listener name (a lowercase DNS subdomain)`);
      }
    }
  } else if (required.gateway !== undefined) {
    p.push(`gateway is required for endpoint type ${type} (${required.gateway})`);
  }

  if (o.annotations !== undefined) {
    if (!isRecordOfStrings(o.annotations)) p.push('annotations must map strings to strings');
    else {
      for (const k of Object.keys(o.annotations)) {
        if (!isQualifiedKey(k)) p.push(`annotations key ${JSON.stringify(k)} is not a valid annotation key`);
        else if ((Object.values(ANNOTATIONS) as string[]).includes(k)) p.push(`annotations key ${JSON.stringify(k)} is reserved by Ferry`);
      }
    }
  }

  if (o.extraLabels !== undefined) {
    if (!isRecordOfStrings(o.extraLabels)) p.push('extraLabels must map strings to strings');
    else {
      for (const [k, v] of Object.entries(o.extraLabels)) {
        if (!isQualifiedKey(k)) p.push(`extraLabels key ${JSON.stringify(k)} is not a valid label key`);
        else if ((Object.values(LABELS) as string[]).includes(k)) p.push(`extraLabels key ${JSON.stringify(k)} is reserved by Ferry`);
        if (!isLabelValue(v)) p.push(`extraLabels value ${JSON.stringify(v)} of ${JSON.stringify(k)} is not a valid label value`);
      }
    }
  }
  return p;
}

/**
 * Validates `o` and applies defaults (port = backendPort; externalPort = 443 for Route/Ingress, the
 * Service port otherwise). Returns a frozen copy that shares nothing with `o`.
 *
 * @throws EndpointOptionsError listing every problem found by `validateEndpointOptions`.
 */
export function resolveEndpointOptions(o: EndpointOptions): ResolvedEndpointOptions {
  const problems = validateEndpointOptions(o);
  if (problems.length > 0) throw new EndpointOptionsError(problems);
  const port = o.port ?? o.backendPort;
  const frontend = ENDPOINT_TYPE_TRAITS[o.type].frontend;
  const r: ResolvedEndpointOptions = {
    type: o.type,
    migrationId: o.migrationId,
    namespace: o.namespace,
    backendPort: o.backendPort,
    port,
    ...(o.hostname !== undefined ? { hostname: o.hostname } : {}),
    ...(o.ingressClassName !== undefined ? { ingressClassName: o.ingressClassName } : {}),
    ...(o.nodePort !== undefined ? { nodePort: o.nodePort } : {}),
    ...(o.loadBalancerClass !== undefined ? { loadBalancerClass: o.loadBalancerClass } : {}),
    ...(o.gateway !== undefined ? { gateway: Object.freeze({ ...o.gateway }) } : {}),
    externalPort: frontend ? (o.externalPort ?? DEFAULT_EXTERNAL_PORT) : port,
    annotations: Object.freeze({ ...(o.annotations ?? {}) }),
    extraLabels: Object.freeze({ ...(o.extraLabels ?? {}) }),
  };
  return Object.freeze(r);
}
