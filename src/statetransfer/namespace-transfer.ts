/**
 * One namespace's state transfer: composes a Transfer, a Transport and an Endpoint into the exact
 * Kubernetes objects to create on each side.
 *
 * Order of use (what the workflows do, one step per activity):
 *   1. `endpoint.objects()` in the destination namespace; wait until `endpoint.health()` is healthy.
 *   2. `createTransferCredentials()` with the endpoint's address: a fresh CA, server and client
 *      certificates, and the transfer password. The caller keeps them out of logs and workflow state.
 *   3. `destinationObjects(credentials)`: TLS and transfer Secrets, ConfigMaps, the server's
 *      PodDisruptionBudget and the server pod.
 *   4. per source PVC, `sourceObjects(pvc, address, credentials, {final})`: client Secrets, ConfigMaps
 *      and the client pod.
 * Every object carries the migration's labels (names.ts `migrationSelector`) for cleanup.
 */
import { PROBE_CONTAINER, PROBE_POD_DEADLINE_SECONDS, probePodName } from './probe';
import type { KubernetesObject, V1Pod, V1PodDisruptionBudget } from '@kubernetes/client-node';
import { objectLabels, objectName } from './names';
import { deepFreeze, secret } from './objects';
import { buildClientPod, buildServerPod, type ClientLifecycle } from './pods/pods';
import { agentSyncScript as buildAgentSyncScript, buildAgentPod } from './pods/agent';
import type { WorkloadIdentity } from '../core/types';
import { type CertificateOptions, clientSecretData, createMigrationCertificates, type MigrationCertificates, serverSecretData } from './tls/certificates';
import { generatePassword } from './password';
import { BLOCK_DEVICE_FILE, type Endpoint, type PodParts, type SecurityMode, type Transfer, type Transport } from './types';
import type { EndpointAddress } from '../core/types';

/** Where the source PVC is mounted in the client pod. */
export const SOURCE_PATH = '/data';
/** Where a block source PVC's device node is in the client pod. */
export const SOURCE_DEVICE_PATH = `${SOURCE_PATH}/${BLOCK_DEVICE_FILE}`;
/** Parent directory of the destination PVC mounts in the server pod. */
export const DESTINATION_ROOT = '/mnt/ferry';

/** One PVC to move and how its client pod must run. */
export interface VolumePair {
  sourcePVC: string;
  destinationPVC: string;
  /** Node where the source PVC is mounted (ReadWriteOnce): the client pod is pinned there. */
  nodeName?: string;
  /** Identity of the workload that uses the PVC (fsGroup, supplementalGroups, runAsUser …). */
  identity?: WorkloadIdentity;
  /** Both PVCs are volumeMode Block: the device is copied (the engine must `copiesBlockDevices`). */
  block?: boolean;
}

/** Options of `createNamespaceTransfer`. */
export interface NamespaceTransferOptions {
  migrationId: string;
  sourceNamespace: string;
  destinationNamespace: string;
  volumes: VolumePair[];
  transfer: Transfer;
  transport: Transport;
  endpoint: Endpoint;
  security: SecurityMode;
  /** Transfer image reference. */
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Identity of the destination server pod (restricted mode: the UID that will own the files). */
  serverIdentity?: WorkloadIdentity;
  /** Client pod lifecycle; native-sidecar needs Kubernetes 1.29+ on the source cluster. */
  lifecycle?: ClientLifecycle;
  /** Allow a transfer that does not encrypt itself over the null transport (plaintext). */
  allowInsecure?: boolean;
}

/** Secret material of one namespace transfer. Never logged, never put in workflow state. */
export interface TransferCredentials {
  certificates: MigrationCertificates;
  /** Shared secret of the transfer (rsync auth user password). */
  password: string;
}

/** Options for one sync of one PVC. */
export interface SyncOptions {
  /** Final sync (cutover): the transfer deletes destination files that are gone at the source. */
  final: boolean;
  /** Read another claim than the source PVC: a point-in-time copy of it (a PVC made from a
   * VolumeSnapshot, or a clone; migration/snapshot.ts). Such a claim is attached nowhere yet, so the
   * client is not pinned to the writer's node. */
  readFrom?: string;
}

/** The composed transfer of one namespace. Immutable. */
export interface NamespaceTransfer {
  readonly migrationId: string;
  readonly sourceNamespace: string;
  readonly destinationNamespace: string;
  readonly volumes: readonly VolumePair[];
  readonly endpoint: Endpoint;
  readonly transfer: Transfer;
  readonly transport: Transport;
  /** Name of the destination's server pod. */
  readonly serverPodName: string;
  /** Name of the client pod of a source PVC. */
  clientPodName(sourcePVC: string): string;
  /** Secrets, ConfigMaps, the server's PodDisruptionBudget and the server pod for the destination
   * namespace, in creation order (pod last). */
  destinationObjects(credentials: TransferCredentials): KubernetesObject[];
  /** Secrets, ConfigMaps and the client pod for one source PVC, in creation order (pod last). */
  sourceObjects(sourcePVC: string, address: EndpointAddress, credentials: TransferCredentials, sync: SyncOptions): KubernetesObject[];
  /** Secrets, ConfigMaps and the warm agent pod (pods/agent.ts) for one source PVC, pod last. The
   * agent pod has the client pod's name and labels: one agent per PVC. */
  agentObjects(sourcePVC: string, address: EndpointAddress, credentials: TransferCredentials): KubernetesObject[];
  /** Secrets and the connectivity probe pod (probe.ts), pod last: the transport client and `script`
   * (its container named `probe`), mounting no PVC, pinned to no node, with the first PVC's identity
   * and the client side's Secrets. */
  probeObjects(address: EndpointAddress, credentials: TransferCredentials, script: string): KubernetesObject[];
  /** The script one sync of `sourcePVC` runs in its agent (pods/agent.ts `agentSyncScript`).
   * @throws Error when the engine's client would need other pod settings for this sync than the agent has. */
  agentSyncScript(id: string, sourcePVC: string, address: EndpointAddress, credentials: TransferCredentials, sync: SyncOptions): string;
}

/**
 * Creates the credentials of a namespace transfer: certificates whose server names are the endpoint's
 * address (and SNI name, and the endpoint's known host names), and a random transfer password.
 * `keys`: the certificates' three fresh key pairs (CertificateOptions.keys; `generateKeyPairs(3)`),
 * else made here synchronously.
 */
export function createTransferCredentials(migrationId: string, endpoint: Endpoint, address: EndpointAddress, validityDays?: number, keys?: CertificateOptions['keys']): TransferCredentials {
  const serverNames = [address.host, ...(address.sni ? [address.sni] : []), ...endpoint.knownHostnames];
  return {
    certificates: createMigrationCertificates({ migrationId, serverNames, validityDays, ...(keys ? { keys } : {}) }),
    password: generatePassword(),
  };
}

function validate(o: NamespaceTransferOptions): void {
  const problems: string[] = [];
  if (!o.migrationId) problems.push('migrationId is empty');
  if (!o.volumes.length) problems.push('no volumes to transfer');
  if (o.endpoint.namespace !== o.destinationNamespace) {
    problems.push(`endpoint namespace ${o.endpoint.namespace} differs from destination namespace ${o.destinationNamespace}`);
  }
  if (o.transport.direct && !o.transfer.selfEncrypting && !o.allowInsecure) {
    problems.push(`transfer ${o.transfer.type} does not encrypt itself: use transport stunnel (or allow insecure transfers explicitly)`);
  }
  if (o.transport.direct && o.transfer.type === 'rclone' && (o.endpoint.type === 'Route' || o.endpoint.type === 'Ingress')) {
    problems.push(`rclone encrypts itself with SSH, which a ${o.endpoint.type} cannot carry (it routes TLS by SNI): use transport stunnel, or a LoadBalancer or NodePort endpoint`);
  }
  const block = o.volumes.filter((v) => v.block).map((v) => v.sourcePVC);
  if (block.length && !o.transfer.copiesBlockDevices) problems.push(`transfer ${o.transfer.type} does not copy block volumes (volumeMode Block: ${block.join(', ')}): use transfer rsync`);
  const seen = new Set<string>();
  for (const v of o.volumes) {
    if (seen.has(v.destinationPVC)) problems.push(`destination PVC ${v.destinationPVC} is the target of two source PVCs`);
    seen.add(v.destinationPVC);
  }
  if (problems.length) throw new Error(`invalid namespace transfer ${o.sourceNamespace} → ${o.destinationNamespace}: ${problems.join('; ')}`);
}

/**
 * The server pod's PodDisruptionBudget (policy/v1): minAvailable 1, so that a node drain or any other
 * eviction through the Eviction API waits instead of taking the only server away mid-transfer.
 * (Integer minAvailable is the form Kubernetes accepts for pods without a controller; deletions and
 * kubelet evictions under node pressure ignore PDBs: Ferry recreates the pod before each sync.)
 */
export function serverDisruptionBudget(name: string, namespace: string, labels: Readonly<Record<string, string>>): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name, namespace, labels: { ...labels } },
    spec: { minAvailable: 1, selector: { matchLabels: { ...labels } } },
  };
}

function merge(...parts: PodParts[]): PodParts {
  return { processes: parts.flatMap((p) => p.processes), volumes: parts.flatMap((p) => p.volumes), objects: parts.flatMap((p) => p.objects) };
}

/** Name of the destination's server TLS Secret (server certificate + key, CA certificate). */
export function serverTLSSecretName(migrationId: string): string {
  return objectName(migrationId, 'srv-tls');
}

/**
 * Composes a namespace transfer.
 * @throws Error listing every problem (no volumes, plaintext without allowInsecure, duplicate targets …).
 */
export function createNamespaceTransfer(options: NamespaceTransferOptions): NamespaceTransfer {
  validate(options);
  const o = { ...options, volumes: options.volumes.map((v) => ({ ...v })) };
  const mid = o.migrationId;
  const lifecycle = o.lifecycle ?? 'done-file';
  const serverName = (s: string) => objectName(mid, `srv-${s}`);
  const clientName = (s: string) => objectName(mid, `cli-${s}`);
  const serverLabels = objectLabels(mid, 'server');
  const clientLabels = objectLabels(mid, 'client');
  const serverTLS = serverTLSSecretName(mid);
  const clientTLS = clientName('tls');
  const root = o.security === 'preserve-ownership';
  const direct = o.transport.direct;

  const findVolume = (sourcePVC: string): VolumePair => {
    const v = o.volumes.find((x) => x.sourcePVC === sourcePVC);
    if (!v) throw new Error(`PVC ${sourcePVC} is not part of the transfer of namespace ${o.sourceNamespace}`);
    return v;
  };

  /** The client side of one PVC: its Secrets/ConfigMaps and the options of its client or agent pod. */
  const clientParts = (sourcePVC: string, address: EndpointAddress, credentials: TransferCredentials, sync: SyncOptions) => {
    const v = findVolume(sourcePVC);
    const ns = o.sourceNamespace;
    const localPort = o.transfer.port;
    const transferParts = o.transfer.client({
      objectName: clientName,
      labels: clientLabels,
      namespace: ns,
      module: v.destinationPVC,
      sourcePath: v.block ? SOURCE_DEVICE_PATH : SOURCE_PATH,
      ...(v.block ? { block: true } : {}),
      connect: direct ? address : { host: '127.0.0.1', port: localPort },
      password: credentials.password,
      root,
      final: sync.final,
      tls: direct ? { secretName: clientTLS } : undefined,
    });
    const transportParts = o.transport.client({
      objectName: clientName,
      labels: clientLabels,
      namespace: ns,
      localPort,
      connect: address,
      tlsSecretName: clientTLS,
    });
    const pod = {
      name: objectName(mid, 'client', sourcePVC),
      namespace: ns,
      labels: objectLabels(mid, 'client', sourcePVC),
      image: o.image,
      imagePullPolicy: o.imagePullPolicy,
      security: o.security,
      identity: v.identity,
      pvcName: sync.readFrom ?? sourcePVC,
      sourcePath: v.block ? SOURCE_DEVICE_PATH : SOURCE_PATH,
      ...(v.block ? { block: true } : {}),
      transfer: transferParts,
      transport: transportParts,
      transportPort: direct ? undefined : localPort,
      nodeName: sync.readFrom !== undefined ? undefined : v.nodeName,
    };
    const tls = secret(clientTLS, ns, clientLabels, clientSecretData(credentials.certificates));
    return { objects: [tls, ...merge(transferParts, transportParts).objects], pod };
  };

  const nt: NamespaceTransfer = {
    migrationId: mid,
    sourceNamespace: o.sourceNamespace,
    destinationNamespace: o.destinationNamespace,
    volumes: o.volumes,
    endpoint: o.endpoint,
    transfer: o.transfer,
    transport: o.transport,
    serverPodName: objectName(mid, 'server'),
    clientPodName: (pvc) => objectName(mid, 'client', pvc),

    destinationObjects(credentials: TransferCredentials): KubernetesObject[] {
      const ns = o.destinationNamespace;
      const transferParts = o.transfer.server({
        objectName: serverName,
        labels: serverLabels,
        namespace: ns,
        volumes: o.volumes.map((v) => ({ pvcName: v.destinationPVC, mountPath: `${DESTINATION_ROOT}/${v.destinationPVC}`, ...(v.block ? { block: true } : {}) })),
        bindAddress: direct ? '0.0.0.0' : '127.0.0.1',
        port: direct ? o.endpoint.backendPort : o.transfer.port,
        password: credentials.password,
        root,
        tls: direct ? { secretName: serverTLS } : undefined,
      });
      const transportParts = o.transport.server({
        objectName: serverName,
        labels: serverLabels,
        namespace: ns,
        listenPort: o.endpoint.backendPort,
        transferPort: o.transfer.port,
        tlsSecretName: serverTLS,
      });
      const pod: V1Pod = buildServerPod({
        name: nt.serverPodName,
        namespace: ns,
        labels: { ...serverLabels, ...o.endpoint.podSelector },
        image: o.image,
        imagePullPolicy: o.imagePullPolicy,
        security: o.security,
        identity: o.serverIdentity,
        volumes: o.volumes.map((v) => ({ pvcName: v.destinationPVC, mountPath: `${DESTINATION_ROOT}/${v.destinationPVC}`, ...(v.block ? { block: true } : {}) })),
        transfer: transferParts,
        transport: transportParts,
      });
      const tls = secret(serverTLS, ns, serverLabels, serverSecretData(credentials.certificates));
      return [tls, ...merge(transferParts, transportParts).objects, serverDisruptionBudget(serverName('pdb'), ns, serverLabels), pod];
    },

    sourceObjects(sourcePVC: string, address: EndpointAddress, credentials: TransferCredentials, sync: SyncOptions): KubernetesObject[] {
      const c = clientParts(sourcePVC, address, credentials, sync);
      const pod = buildClientPod({ ...c.pod, lifecycle, annotations: { 'ferry.dev/sync': sync.final ? 'final' : 'stage' } });
      return [...c.objects, pod];
    },

    agentObjects(sourcePVC: string, address: EndpointAddress, credentials: TransferCredentials): KubernetesObject[] {
      const c = clientParts(sourcePVC, address, credentials, { final: false });
      return [...c.objects, buildAgentPod(c.pod)];
    },

    probeObjects(address: EndpointAddress, credentials: TransferCredentials, script: string): KubernetesObject[] {
      const c = clientParts(o.volumes[0]!.sourcePVC, address, credentials, { final: false });
      const probe = { processes: [{ name: PROBE_CONTAINER, command: ['/bin/bash', '-c', script], volumeMounts: [] }], volumes: [], objects: [] };
      const { pvcName: _pvc, nodeName: _node, ...common } = c.pod;
      const pod = buildClientPod({
        ...common,
        name: probePodName(mid),
        labels: objectLabels(mid, 'probe'),
        transfer: probe,
        lifecycle,
        transportWaitSeconds: 60,
        activeDeadlineSeconds: PROBE_POD_DEADLINE_SECONDS,
      });
      return [...c.objects, pod];
    },

    agentSyncScript(id: string, sourcePVC: string, address: EndpointAddress, credentials: TransferCredentials, sync: SyncOptions): string {
      const stage = clientParts(sourcePVC, address, credentials, { final: false }).pod.transfer.processes[0]!;
      const c = clientParts(sourcePVC, address, credentials, sync);
      const proc = c.pod.transfer.processes[0]!;
      // The agent pod is built from the stage sync's client: a final sync may change only the command.
      if (JSON.stringify([proc.env ?? [], proc.volumeMounts]) !== JSON.stringify([stage.env ?? [], stage.volumeMounts])) {
        throw new Error(`the ${o.transfer.type} client needs other environment or mounts for a ${sync.final ? 'final' : 'stage'} sync than its agent has`);
      }
      return buildAgentSyncScript(id, {
        argv: proc.command,
        ...(proc.prepare ? { prepare: proc.prepare } : {}),
        ...(proc.finish ? { finish: proc.finish } : {}),
        ...(proc.finishAfter ? { finishAfter: proc.finishAfter } : {}),
        ...(c.pod.transportPort !== undefined ? { transportPort: c.pod.transportPort } : {}),
      });
    },
  };
  return deepFreeze(nt);
}

