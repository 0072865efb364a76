/**
 * The contracts of Ferry's state-transfer library: the three swappable layers (Transfer, Transport,
 * Endpoint) and the shapes they exchange. Pure TypeScript; no Temporal import anywhere below
 * src/statetransfer.
 *
 * How the layers fit together (destination = server side, source = client side, data is pushed):
 *
 *   source client pod                                   destination server pod
 *   ┌─────────────────────────────┐   endpoint host:port  ┌──────────────────────────────┐
 *   │ transfer client (rsync) ──► │  ───── mutual TLS ──► │ transport server (stunnel) ─► │
 *   │ 127.0.0.1:transferPort      │                       │ transfer server (rsyncd)     │
 *   │ transport client (stunnel)  │                       │ 127.0.0.1:transferPort       │
 *   └─────────────────────────────┘                       └──────────────────────────────┘
 *
 * With the null transport the transfer engine encrypts itself (rclone over SSH) and listens on the
 * endpoint's backend port directly.
 */
import type { KubernetesObject, V1Container, V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { EndpointAddress, TransferProgress, TransferStats, TransferVerdict } from '../core/types';

/** The transfer engines (plan `transfer`); each has a folder under transfer/ and a line in registry.ts. */
export const TRANSFER_TYPES = ['rsync', 'rclone'] as const;
export type TransferType = (typeof TRANSFER_TYPES)[number];
/** The transports (plan `transport`); each has a folder under transport/ and a line in registry.ts. */
export const TRANSPORT_TYPES = ['stunnel', 'null'] as const;
export type TransportType = (typeof TRANSPORT_TYPES)[number];
/** Options of an endpoint type beyond the common ones (endpoint/options.ts EndpointOptions). */
export type EndpointTypeOption = 'hostname' | 'ingressClassName' | 'nodePort' | 'loadBalancerClass' | 'externalPort' | 'gateway';

/** What the plan schema and the options validation know of an endpoint type before anything is built. */
export interface EndpointTypeTraits {
  /** The type-specific options it accepts (any other is refused: it would be ignored silently). */
  readonly options: readonly EndpointTypeOption[];
  /** Options it cannot do without, with the reason. */
  readonly required: Readonly<Partial<Record<EndpointTypeOption, string>>>;
  /** Reached through a router that routes TLS by SNI (Route, Ingress): `externalPort` defaults to 443. */
  readonly frontend: boolean;
}

/**
 * The endpoint types (plan `endpoint.type`, besides `auto`) and their traits; each type also has a
 * file under endpoint/ and a line in registry.ts. Pure data, so that the plan schema (bundled into the
 * workflows) reads it without loading the implementations.
 */
export const ENDPOINT_TYPE_TRAITS = {
  LoadBalancer: { options: ['loadBalancerClass'], required: {}, frontend: false },
  NodePort: { options: ['nodePort'], required: {}, frontend: false },
  ClusterIP: { options: [], required: {}, frontend: false },
  Route: { options: ['hostname', 'externalPort'], required: {}, frontend: true },
  Ingress: {
    options: ['hostname', 'ingressClassName', 'externalPort'],
    required: { hostname: 'ingress-nginx routes ssl-passthrough by TLS SNI host' },
    frontend: true,
  },
  TLSRoute: {
    options: ['hostname', 'gateway'],
    required: { hostname: 'the Gateway routes TLS passthrough by SNI host', gateway: 'a TLSRoute attaches to a Gateway with a TLS Passthrough listener' },
    frontend: true,
  },
} as const satisfies Record<string, EndpointTypeTraits>;
export type EndpointType = keyof typeof ENDPOINT_TYPE_TRAITS;
/** The endpoint types, in the table's order. */
export const ENDPOINT_TYPES = Object.freeze(Object.keys(ENDPOINT_TYPE_TRAITS)) as readonly EndpointType[];

/** The endpoint types that accept `option`, in the table's order. */
export function endpointTypesAccepting(option: EndpointTypeOption): EndpointType[] {
  return ENDPOINT_TYPES.filter((t) => (ENDPOINT_TYPE_TRAITS[t].options as readonly EndpointTypeOption[]).includes(option));
}

/** "type NodePort" / "types Route and Ingress" / "types A, B and C", for messages. */
export function describeEndpointTypes(types: readonly string[]): string {
  if (types.length === 1) return `type ${types[0]}`;
  return `types ${types.slice(0, -1).join(', ')} and ${types.at(-1)}`;
}

/** Security mode of the transfer pods. See src/statetransfer/pods/security.ts. */
export type SecurityMode = 'restricted' | 'preserve-ownership';

/** Health of an endpoint as decided from the live objects' status. */
export interface EndpointHealth {
  healthy: boolean;
  /** Set when healthy: where the source side must connect. */
  address?: EndpointAddress;
  /** Human-readable explanation, for operators ("waiting for status.loadBalancer.ingress"). */
  reason: string;
}

/** What an endpoint needs to see to decide its health: the live versions of its own objects, and
 * the cluster's nodes where the endpoint is reached through a node address (NodePort, Ingress). */
export interface ObservedEndpoint {
  objects: KubernetesObject[];
  nodes?: KubernetesObject[];
}

/**
 * Endpoint layer: exposes the destination's transfer server so the source cluster can reach it.
 * Immutable once built by its factory (src/statetransfer/endpoint/index.ts).
 */
export interface Endpoint {
  readonly type: EndpointType;
  /** Name of the endpoint's main object (Service, Route or Ingress). */
  readonly name: string;
  /** Destination namespace. */
  readonly namespace: string;
  /** Port on the server pod the endpoint forwards to. */
  readonly backendPort: number;
  /** Labels the server pod must carry for the endpoint's Service to select it. */
  readonly podSelector: Readonly<Record<string, string>>;
  /** Host names known before creation (Route/Ingress host) that the server certificate must carry. */
  readonly knownHostnames: readonly string[];
  /** The objects to create in the destination cluster, in creation order. */
  objects(): KubernetesObject[];
  /** Whether the endpoint needs the node list to decide health (NodePort). */
  readonly needsNodes: boolean;
  /** Objects health reads but Ferry does not create (a TLSRoute's parent Gateway); observed with
   * the endpoint's own objects. */
  readonly observes?: readonly ObjectRefOf[];
  /** Decides health and the address from observed live objects. Pure. */
  health(observed: ObservedEndpoint): EndpointHealth;
}

/** A Kubernetes object by kind, namespace and name. */
export interface ObjectRefOf {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
}

/** A Kubernetes kind by API version, e.g. { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress' }. */
export interface ObjectKind {
  apiVersion: string;
  kind: string;
}

/** Permissions (RBAC) on one resource in the destination namespace. */
export interface ResourcePermission {
  /** API group ('' for the core group). */
  group: string;
  /** Plural resource name, e.g. 'routes'. */
  resource: string;
  verbs: readonly string[];
}

/**
 * What the rest of Ferry knows of an endpoint type without building one: how to build it, which
 * kinds of objects it creates (cleanup deletes them by label) and which permissions it needs
 * (preflight checks them). One per type, next to its implementation, listed in registry.ts.
 */
export interface EndpointKind {
  readonly type: EndpointType;
  /** Builds the endpoint from options already checked by `resolveEndpointOptions`. */
  create(options: EndpointOptionsOf): Endpoint;
  /** Kinds it creates besides the Service every endpoint type has (pods, Services, Secrets and
   * ConfigMaps are cleaned up anyway). */
  readonly extraKinds: readonly ObjectKind[];
  /** Permissions it needs in the destination namespace besides Services. */
  readonly permissions: readonly ResourcePermission[];
}

/** The endpoint options `EndpointKind.create` takes (endpoint/options.ts EndpointOptions). */
export type EndpointOptionsOf = import('./endpoint/options').EndpointOptions;

/** A process of a pod: command, environment and mounts, before the pod builder decides its lifecycle
 * (plain container, native sidecar, done-file wrapper). */
export interface ProcessSpec {
  /** Container name. */
  name: string;
  /** Full argv; with a shell script use ['/bin/bash', '-c', script]. */
  command: string[];
  env?: V1EnvVar[];
  volumeMounts: V1VolumeMount[];
  /** TCP port on 127.0.0.1 that answers once the process is ready, for probes and waiting. */
  readyPort?: number;
  /** Bash lines run before `command` in the same container (e.g. copying a mounted secret into
   * FERRY_RUN_DIR with mode 0400). Must not print secrets. */
  prepare?: string;
  /** Bash lines run after `command` succeeded (transfer clients only); a failure becomes the
   * container's exit code. Output goes to the log, not to the termination message. */
  finish?: string;
  /** Exit codes besides 0 after which `finish` still runs (rsync's 23: a partial transfer, e.g. only
   * the volume root's attributes could not be set, which Ferry counts as success). */
  finishAfter?: readonly number[];
}

/** A writable emptyDir every Ferry container mounts: done-file, summaries, private copies of
 * secrets, lock files. The root filesystem is read-only. */
export const FERRY_RUN_DIR = '/run/ferry';

/** Pieces a layer contributes to a pod: processes, volumes and the ConfigMaps/Secrets they mount. */
export interface PodParts {
  processes: ProcessSpec[];
  volumes: V1Volume[];
  /** ConfigMaps and Secrets to create in the same namespace before the pod. */
  objects: KubernetesObject[];
}

/** Name of a block volume's device node inside its directory (server module path, client source
 * directory, reader pod): the one entry a block volume's rsync module holds. */
export const BLOCK_DEVICE_FILE = 'device';

/** One destination PVC served by the transfer server. */
export interface ServedVolume {
  /** Destination PVC name; also the rsync module / rclone path name. */
  pvcName: string;
  /** Where the PVC is mounted in the server pod; for a `block` volume, the directory holding its
   * device node (BLOCK_DEVICE_FILE), which is the module's only entry. */
  mountPath: string;
  /** A volumeMode Block PVC: served as a device node, written in place (rsync --write-devices). */
  block?: boolean;
}

/** Context given to Transfer.server(). */
export interface TransferServerContext {
  /** Object name prefix for this server's ConfigMaps/Secrets (see names.ts). */
  objectName: (suffix: string) => string;
  labels: Readonly<Record<string, string>>;
  namespace: string;
  volumes: ServedVolume[];
  /** Address the transfer server binds: 127.0.0.1 behind a transport, 0.0.0.0 when direct. */
  bindAddress: string;
  port: number;
  /** Shared secret the client must present (rsync auth user password, rclone SFTP password). */
  password: string;
  /** Whether the server runs as root (preserve-ownership mode). */
  root: boolean;
  /** TLS material paths, set when the transport is null and the engine must encrypt itself. */
  tls?: { secretName: string };
}

/** Context given to Transfer.client(). */
export interface TransferClientContext {
  objectName: (suffix: string) => string;
  labels: Readonly<Record<string, string>>;
  namespace: string;
  /** Destination module (= destination PVC name). */
  module: string;
  /** Where the source PVC is mounted in the client pod; for a `block` volume, its device node. */
  sourcePath: string;
  /** A volumeMode Block PVC: the device's bytes are copied into the destination module's device
   * node (BLOCK_DEVICE_FILE), only changed blocks on a re-sync. */
  block?: boolean;
  /** Where the transfer client connects: 127.0.0.1 behind a transport, the endpoint when direct. */
  connect: EndpointAddress;
  password: string;
  root: boolean;
  /** Whether this sync is the final one (cutover): deletes extraneous files at the destination. */
  final: boolean;
  tls?: { secretName: string };
}

/**
 * Transfer layer: the engine that copies files (rsync, rclone). Immutable once built by its factory.
 */
export interface Transfer {
  readonly type: TransferType;
  /** Port the transfer server listens on inside the server pod. */
  readonly port: number;
  /** Whether the engine encrypts and authenticates itself (usable with the null transport): rclone over SSH. */
  readonly selfEncrypting: boolean;
  /** Whether the engine copies volumeMode Block PVCs (device to device). */
  readonly copiesBlockDevices: boolean;
  server(ctx: TransferServerContext): PodParts;
  /** The client process's shell command (run by the pod builder's wrapper) and what it mounts. */
  client(ctx: TransferClientContext): PodParts;
}

/**
 * What Ferry knows of a transfer engine beyond its pods: how to read its output and its exit codes,
 * and what its server says first. One per engine, in the engine's folder, listed in
 * statetransfer/registry.ts; the migration layer asks the registry instead of branching on the type.
 */
export interface TransferEngine {
  readonly type: TransferType;
  /** Pure: the latest progress in the tail of the client's output (undefined before the first
   * progress line). */
  progress(outputTail: string): TransferProgress | undefined;
  /** Pure: how a finished client run ended (exit code + its last output lines), naming at most
   * `maxFailedFiles` failed files, and the run's figures when the output has them. */
  outcome(exitCode: number, lines: readonly string[], maxFailedFiles: number): { verdict: TransferVerdict; stats?: TransferStats };
  /** Bash glob the server's first line matches (the connectivity probe reads it): both engines' servers
   * speak first. */
  readonly greeting: string;
}

/** Context given to Transport.server()/client(). */
export interface TransportServerContext {
  objectName: (suffix: string) => string;
  labels: Readonly<Record<string, string>>;
  namespace: string;
  /** Port exposed to the endpoint. */
  listenPort: number;
  /** Port of the transfer server on 127.0.0.1. */
  transferPort: number;
  /** Name of the Secret holding tls.crt, tls.key, ca.crt for the server. */
  tlsSecretName: string;
}

export interface TransportClientContext {
  objectName: (suffix: string) => string;
  labels: Readonly<Record<string, string>>;
  namespace: string;
  /** Port on 127.0.0.1 where the transfer client connects. */
  localPort: number;
  /** The endpoint's address. */
  connect: EndpointAddress;
  tlsSecretName: string;
}

/**
 * Transport layer: carries the transfer's TCP stream between the clusters (stunnel with mutual TLS),
 * or nothing at all (null) for engines that encrypt themselves. Immutable once built.
 */
export interface Transport {
  readonly type: TransportType;
  /** True when the transfer talks to the endpoint itself (null transport). */
  readonly direct: boolean;
  server(ctx: TransportServerContext): PodParts;
  client(ctx: TransportClientContext): PodParts;
}

/** Re-exported Kubernetes shapes used across the library. */
export type { KubernetesObject, V1Container, V1Volume, V1VolumeMount };
