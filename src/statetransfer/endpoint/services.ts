/**
 * Endpoints made of one v1 Service selecting the server pod: LoadBalancer, NodePort and ClusterIP.
 *
 * Each Service has one TCP port named `ferry-transfer` (port = options.port, default the backend
 * port; targetPort = the backend port) and selects the server pod by `podSelector`. The objects carry
 * the name `objectName(migrationId, 'endpoint')` and the labels `objectLabels(migrationId, 'endpoint')`.
 *
 * Health is decided from the live Service (and, for NodePort, the live Nodes) only; see each class.
 * Build them through `createEndpoint` (index.ts); constructing one directly validates the same way.
 */
import { isIPv4 } from 'node:net';
import type { V1Node, V1Service } from '@kubernetes/client-node';
import type { EndpointHealth, EndpointKind, ObservedEndpoint } from '../types';
import { EndpointBase } from './base';
import { buildService, findObserved, missing, transferPortOf } from './common';
import type { EndpointOptions } from './options';

/**
 * A LoadBalancer Service. The source connects to the first `status.loadBalancer.ingress` entry that
 * has an address (its `ip` when present, else its `hostname`, e.g. an AWS ELB name) on the Service port.
 *
 * Spec choices: `externalTrafficPolicy: Cluster` (every node forwards, so the LB's node health checks
 * pass wherever the server pod runs; the client source IP, which Local would preserve, is not needed
 * because mutual TLS authenticates the source); `allocateLoadBalancerNodePorts` left at its API
 * default (true) because cloud LBs in instance mode forward to node ports; `loadBalancerClass` only
 * when given (immutable after creation). `annotations` go on the Service (cloud LB settings).
 *
 * Needs a load-balancer implementation in the destination cluster (cloud controller, MetalLB, …);
 * without one the Service never gets an address and health says so.
 */
export class LoadBalancerEndpoint extends EndpointBase {
  readonly type = 'LoadBalancer' as const;
  readonly needsNodes = false;

  /** @throws EndpointOptionsError when the options are invalid; Error when options.type is not LoadBalancer. */
  constructor(options: EndpointOptions) {
    super('LoadBalancer', options);
    const r = this.resolved;
    const spec = {
      externalTrafficPolicy: 'Cluster',
      ...(r.loadBalancerClass !== undefined ? { loadBalancerClass: r.loadBalancerClass } : {}),
    };
    this.setObjects([buildService(r, this.name, 'LoadBalancer', spec)]);
    Object.freeze(this);
  }

  /**
   * Healthy when the live Service's `status.loadBalancer.ingress` has an entry with an `ip` or a
   * `hostname` (an empty or missing list is simply "not yet"). Address = that ip (else hostname),
   * port = the Service port.
   */
  health(observed: ObservedEndpoint): EndpointHealth {
    const svc = findObserved<V1Service>(observed, 'Service', this.name);
    if (!svc) return { healthy: false, reason: missing('Service', this.name, this.namespace) };
    const entries = Array.isArray(svc.status?.loadBalancer?.ingress) ? svc.status.loadBalancer.ingress : [];
    for (const e of entries) {
      const host = e?.ip || e?.hostname;
      if (host) {
        return {
          healthy: true,
          address: { host, port: this.port },
          reason: `LoadBalancer Service ${this.namespace}/${this.name} has external address ${host}:${this.port}`,
        };
      }
    }
    return {
      healthy: false,
      reason:
        `LoadBalancer Service ${this.namespace}/${this.name}: no external address assigned yet (status.loadBalancer.ingress is empty): ` +
        'is there a load-balancer controller (MetalLB, cloud provider) in the destination cluster? Consider endpoint type NodePort',
    };
  }
}

const NODE_ADDRESS_PREFERENCE = ['ExternalIP', 'InternalIP', 'Hostname'] as const;

interface NodeCandidate {
  node: string;
  addressType: (typeof NODE_ADDRESS_PREFERENCE)[number];
  address: string;
  unschedulable: boolean;
}

function isReady(node: V1Node): boolean {
  const conditions = Array.isArray(node.status?.conditions) ? node.status.conditions : [];
  return conditions.some((c) => c?.type === 'Ready' && c.status === 'True');
}

/** The best address of one node by NODE_ADDRESS_PREFERENCE, IPv4 before IPv6 within a type. */
function bestAddress(node: V1Node): NodeCandidate | undefined {
  const addresses = Array.isArray(node.status?.addresses) ? node.status.addresses : [];
  for (const addressType of NODE_ADDRESS_PREFERENCE) {
    const of = addresses.filter((a) => a?.type === addressType && typeof a.address === 'string' && a.address !== '');
    const pick = of.find((a) => isIPv4(a.address)) ?? of[0];
    if (pick) {
      return { node: node.metadata?.name ?? '?', addressType, address: pick.address, unschedulable: node.spec?.unschedulable === true };
    }
  }
  return undefined;
}

/**
 * A NodePort Service. The source connects to a node address on the allocated node port.
 *
 * Node choice (health): only Ready nodes that are not being deleted; address type ExternalIP, then
 * InternalIP, then Hostname (the Service's ClusterIP is never used: it is not routable from another
 * cluster). Cordoned (unschedulable) nodes are still candidates, because cordoning only stops the
 * scheduler and kube-proxy on that node keeps forwarding NodePort traffic; but they rank after
 * schedulable nodes with the same address type, since a cordoned node is usually about to be
 * drained or removed. Ties go to the node name (deterministic). `externalTrafficPolicy: Cluster` is
 * set explicitly so that every node forwards, whichever node runs the server pod.
 *
 * The source cluster must be able to route to the chosen address and firewalls must allow the port.
 */
export class NodePortEndpoint extends EndpointBase {
  readonly type = 'NodePort' as const;
  readonly needsNodes = true;
  /** Requested node port, or undefined when the API server allocates one. */
  readonly nodePort: number | undefined;

  /** @throws EndpointOptionsError when the options are invalid; Error when options.type is not NodePort. */
  constructor(options: EndpointOptions) {
    super('NodePort', options);
    const r = this.resolved;
    this.nodePort = r.nodePort;
    const portExtra = r.nodePort !== undefined ? { nodePort: r.nodePort } : {};
    this.setObjects([buildService(r, this.name, 'NodePort', { externalTrafficPolicy: 'Cluster' }, portExtra)]);
    Object.freeze(this);
  }

  /**
   * Healthy when the live Service's transfer port has a node port AND `observed.nodes` contains a
   * Ready node with a usable address (see the class doc for the choice). Address = node address,
   * port = node port.
   */
  health(observed: ObservedEndpoint): EndpointHealth {
    const where = `NodePort Service ${this.namespace}/${this.name}`;
    const svc = findObserved<V1Service>(observed, 'Service', this.name);
    if (!svc) return { healthy: false, reason: missing('Service', this.name, this.namespace) };
    const nodePort = transferPortOf(svc)?.nodePort;
    if (typeof nodePort !== 'number' || nodePort <= 0) {
      return { healthy: false, reason: `${where}: no node port allocated yet (spec.ports[].nodePort is unset)` };
    }
    if (!Array.isArray(observed.nodes)) {
      return { healthy: false, reason: `${where}: the node list was not observed (this endpoint needs nodes to find an address)` };
    }
    const nodes = observed.nodes as V1Node[];
    if (nodes.length === 0) return { healthy: false, reason: `${where}: the destination cluster has no nodes` };
    const ready = nodes.filter((n) => n && !n.metadata?.deletionTimestamp && isReady(n));
    if (ready.length === 0) {
      return { healthy: false, reason: `${where}: none of the ${nodes.length} node(s) is Ready (or all are being deleted)` };
    }
    const candidates = ready.map(bestAddress).filter((c): c is NodeCandidate => c !== undefined);
    if (candidates.length === 0) {
      return {
        healthy: false,
        reason: `${where}: none of the ${ready.length} Ready node(s) reports an ExternalIP, InternalIP or Hostname address`,
      };
    }
    const rank = (c: NodeCandidate) => NODE_ADDRESS_PREFERENCE.indexOf(c.addressType);
    candidates.sort(
      (a, b) =>
        rank(a) - rank(b) ||
        Number(a.unschedulable) - Number(b.unschedulable) ||
        (a.node < b.node ? -1 : a.node > b.node ? 1 : 0),
    );
    const best = candidates[0]!;
    const note = best.addressType === 'ExternalIP' ? '' : ' (no Ready node has an ExternalIP: the source cluster must be able to route to it)';
    return {
      healthy: true,
      address: { host: best.address, port: nodePort },
      reason: `${where}: node ${best.node} ${best.addressType} ${best.address} port ${nodePort}${best.unschedulable ? ' (node is cordoned)' : ''}${note}`,
    };
  }
}

/**
 * A ClusterIP Service. The address is the Service's cluster IP, which is reachable only from inside
 * the destination cluster or from networks routed flat into its service CIDR (e.g. multi-cluster
 * meshes such as Submariner); use it for same-cluster migrations (namespace to namespace) or such
 * flat networks.
 */
export class ClusterIPEndpoint extends EndpointBase {
  readonly type = 'ClusterIP' as const;
  readonly needsNodes = false;

  /** @throws EndpointOptionsError when the options are invalid; Error when options.type is not ClusterIP. */
  constructor(options: EndpointOptions) {
    super('ClusterIP', options);
    this.setObjects([buildService(this.resolved, this.name, 'ClusterIP')]);
    Object.freeze(this);
  }

  /** Healthy when the live Service has `spec.clusterIP` set and not `None` (headless). Address = clusterIP:port. */
  health(observed: ObservedEndpoint): EndpointHealth {
    const svc = findObserved<V1Service>(observed, 'Service', this.name);
    if (!svc) return { healthy: false, reason: missing('Service', this.name, this.namespace) };
    const ip = svc.spec?.clusterIP;
    if (!ip || ip === 'None') {
      return { healthy: false, reason: `ClusterIP Service ${this.namespace}/${this.name}: no cluster IP assigned (spec.clusterIP is ${ip ? 'None' : 'unset'})` };
    }
    return {
      healthy: true,
      address: { host: ip, port: this.port },
      reason: `ClusterIP Service ${this.namespace}/${this.name} at ${ip}:${this.port} (reachable only from inside the cluster or a flat network)`,
    };
  }
}

/** LoadBalancer: a Service of that type; nothing besides Services to create or clean up. */
export const LOAD_BALANCER_ENDPOINT: EndpointKind = Object.freeze({ type: 'LoadBalancer' as const, create: (o: EndpointOptions) => new LoadBalancerEndpoint(o), extraKinds: [], permissions: [] });
/** NodePort: a Service of that type, reached at a node address. */
export const NODE_PORT_ENDPOINT: EndpointKind = Object.freeze({ type: 'NodePort' as const, create: (o: EndpointOptions) => new NodePortEndpoint(o), extraKinds: [], permissions: [] });
/** ClusterIP: a Service of that type (same cluster, or a flat network between the clusters). */
export const CLUSTER_IP_ENDPOINT: EndpointKind = Object.freeze({ type: 'ClusterIP' as const, create: (o: EndpointOptions) => new ClusterIPEndpoint(o), extraKinds: [], permissions: [] });
