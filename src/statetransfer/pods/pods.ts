/**
 * The transfer pods as @kubernetes/client-node objects:
 * - the server pod, one per destination namespace: the transfer server (rsync daemon) and the
 *   transport server (stunnel), all of the namespace's destination PVCs mounted;
 * - the client pod, one per source PVC: the transfer client (rsync) and the transport client
 *   (stunnel) in ONE pod, talking over 127.0.0.1, the PVC mounted read-only.
 */
import type { V1Affinity, V1Container, V1Pod, V1Probe, V1ResourceRequirements, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { BLOCK_DEVICE_FILE, FERRY_RUN_DIR, type PodParts, type ProcessSpec, type SecurityMode } from '../types';
import { serverScript, TERMINATION_MESSAGE_PATH, transferClientScript, transportClientScript, WAIT_PORT_FN } from './lifecycle';
import { containerSecurityContext, podSecurityContext } from './security';
import { type WorkloadIdentity } from '../../core/types';

/** How the client pod orders its transport and transfer containers.
 * - native-sidecar: the transport is an init container with restartPolicy Always (Kubernetes 1.29+,
 *   SidecarContainers feature); kubelet starts it first (startup probe) and stops it after the transfer.
 * - done-file: both are ordinary containers; the transfer waits for the port and drops a done-file
 *   on a shared emptyDir, which stops the transport. */
export type ClientLifecycle = 'native-sidecar' | 'done-file';

/** Options shared by both pods. */
export interface CommonPodOptions {
  name: string;
  namespace: string;
  labels: Readonly<Record<string, string>>;
  /** The transfer image (images/transfer/Containerfile). */
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  security: SecurityMode;
  identity?: WorkloadIdentity;
  resources?: V1ResourceRequirements;
  /** Extra annotations on the pod (never secrets). */
  annotations?: Record<string, string>;
}

/** Options of `buildServerPod`. */
export interface ServerPodOptions extends CommonPodOptions {
  /** Destination PVCs to mount: claim name → mount path; a `block` PVC (volumeMode Block) becomes the
   * device node `<mountPath>/BLOCK_DEVICE_FILE` (volumeDevices). */
  volumes: { pvcName: string; mountPath: string; block?: boolean }[];
  transfer: PodParts;
  transport: PodParts;
}

/** Options of `buildClientPod`. */
export interface ClientPodOptions extends CommonPodOptions {
  /** Source PVC, mounted read-only at `sourcePath`; absent for a pod that mounts none (the
   * connectivity probe). */
  pvcName?: string;
  sourcePath: string;
  /** The source PVC is volumeMode Block: its device node is at `sourcePath` (volumeDevices). */
  block?: boolean;
  transfer: PodParts;
  transport: PodParts;
  /** Port on 127.0.0.1 where the transport client listens (absent with the null transport). */
  transportPort?: number;
  lifecycle: ClientLifecycle;
  /** Pin to the node where a ReadWriteOnce PVC is in use (the pod that mounts it runs there). */
  nodeName?: string;
  /** Seconds the transfer waits for the transport's port in done-file mode (default 120). */
  transportWaitSeconds?: number;
  /** Bound of the pod's whole run (spec.activeDeadlineSeconds); unset: none. */
  activeDeadlineSeconds?: number;
}

/**
 * Resources of each server container when the caller gives none: small requests so that the
 * scheduler reserves room for the server for the whole migration and the kubelet does not evict it
 * first under node pressure (pods without requests are BestEffort, evicted before everything else),
 * and no CPU limit (a CPU limit throttles rsync and stunnel, whose throughput is the migration's
 * speed) nor memory limit (rsync's memory grows with the file list: ~100 bytes per file).
 */
export const DEFAULT_SERVER_RESOURCES: Readonly<V1ResourceRequirements> = Object.freeze({ requests: Object.freeze({ cpu: '50m', memory: '64Mi' }) });

const RUN_VOLUME = 'ferry-run';
const TMP_VOLUME = 'ferry-tmp';
const COMMON_MOUNTS: V1VolumeMount[] = [
  { name: RUN_VOLUME, mountPath: FERRY_RUN_DIR },
  { name: TMP_VOLUME, mountPath: '/tmp' },
];
const COMMON_VOLUMES: V1Volume[] = [
  { name: RUN_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
  { name: TMP_VOLUME, emptyDir: { sizeLimit: '64Mi' } },
];

/**
 * An exec probe that succeeds once something accepts TCP on 127.0.0.1:port (kubelet's tcpSocket
 * probe dials the pod IP, which misses servers bound to loopback). `waitSeconds` > 0: one probe
 * waits that long for the port (lifecycle.ts `wait_port`) before it fails (its timeout grows to
 * cover it). That is for a readiness probe with a long period: the kubelet runs a readiness probe
 * that has no result yet as soon as the container runs (kubelet prober_manager.go
 * UpdatePodStatus), which can be a moment before the server listens, and a failure then costs a
 * whole period (5 s for the server pod) before the next try.
 */
export function loopbackProbe(port: number, periodSeconds: number, failureThreshold: number, waitSeconds = 0): V1Probe {
  const connect = `exec 3<>/dev/tcp/127.0.0.1/${port}`;
  // WAIT_PORT_FN checks at 0.1, 0.2, 0.5, 1 s, then every 2 s: it may end up to 2 s past its limit.
  return {
    exec: { command: ['/bin/bash', '-c', waitSeconds > 0 ? `${WAIT_PORT_FN}\nwait_port ${port} ${Math.ceil(waitSeconds)}` : connect] },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: waitSeconds > 0 ? 4 + Math.ceil(waitSeconds) : 2,
  };
}

function container(
  opts: CommonPodOptions,
  proc: ProcessSpec,
  command: string[],
  extraMounts: V1VolumeMount[],
  rootCapabilities: boolean,
): V1Container {
  const c: V1Container = {
    name: proc.name,
    image: opts.image,
    imagePullPolicy: opts.imagePullPolicy ?? 'IfNotPresent',
    command,
    volumeMounts: [...COMMON_MOUNTS, ...proc.volumeMounts, ...extraMounts],
    securityContext: containerSecurityContext(opts.security, rootCapabilities),
    terminationMessagePath: TERMINATION_MESSAGE_PATH,
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (proc.env?.length) c.env = proc.env.map((e) => ({ ...e }));
  if (opts.resources) c.resources = opts.resources;
  return c;
}

function assertNoDuplicateVolumes(volumes: V1Volume[]): void {
  const seen = new Set<string>();
  for (const v of volumes) {
    if (seen.has(v.name)) throw new Error(`duplicate pod volume ${v.name}`);
    seen.add(v.name);
  }
}

function metadata(opts: CommonPodOptions) {
  return {
    name: opts.name,
    namespace: opts.namespace,
    labels: { ...opts.labels },
    ...(opts.annotations ? { annotations: { ...opts.annotations } } : {}),
  };
}

/** Seconds one readiness probe of the server pod waits for its transfer port (loopbackProbe). */
const SERVER_READY_WAIT_SECONDS = 3;

/**
 * Builds the destination's server pod. Each destination PVC `i` is volume `pvc-<i>`, mounted only in
 * the transfer container. The transfer container gets a readiness probe on its loopback port. Every
 * container gets `opts.resources`, by default DEFAULT_SERVER_RESOURCES (requests, no limits).
 * @throws Error when the parts have no transfer process or volumes collide.
 */
export function buildServerPod(options: ServerPodOptions): V1Pod {
  const opts: ServerPodOptions = { ...options, resources: options.resources ?? structuredClone(DEFAULT_SERVER_RESOURCES) as V1ResourceRequirements };
  const [transferProc] = opts.transfer.processes;
  if (!transferProc) throw new Error('the transfer layer returned no server process');
  const pvcVolumes: V1Volume[] = opts.volumes.map((v, i) => ({ name: `pvc-${i}`, persistentVolumeClaim: { claimName: v.pvcName } }));
  const pvcMounts: V1VolumeMount[] = opts.volumes.flatMap((v, i) => (v.block ? [] : [{ name: `pvc-${i}`, mountPath: v.mountPath }]));
  const transferContainer = container(opts, transferProc, ['/bin/bash', '-c', serverScript(transferProc.command, transferProc.prepare)], pvcMounts, true);
  const devices = opts.volumes.flatMap((v, i) => (v.block ? [{ name: `pvc-${i}`, devicePath: `${v.mountPath}/${BLOCK_DEVICE_FILE}` }] : []));
  if (devices.length) transferContainer.volumeDevices = devices;
  if (transferProc.readyPort) transferContainer.readinessProbe = loopbackProbe(transferProc.readyPort, 5, 3, SERVER_READY_WAIT_SECONDS);
  const containers = [
    transferContainer,
    ...opts.transport.processes.map((p) => container(opts, p, ['/bin/bash', '-c', serverScript(p.command, p.prepare)], [], false)),
  ];
  const volumes = [...COMMON_VOLUMES, ...pvcVolumes, ...opts.transfer.volumes, ...opts.transport.volumes];
  assertNoDuplicateVolumes(volumes);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: metadata(opts),
    spec: {
      restartPolicy: 'Always',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: podSecurityContext(opts.security, opts.identity),
      terminationGracePeriodSeconds: 10,
      containers,
      volumes,
    },
  };
}

/** The affinity that pins a pod to node `nodeName` (matchFields metadata.name, so the scheduler still
 * checks the node's resources and taints, unlike spec.nodeName). */
export function nodeAffinity(nodeName: string): V1Affinity {
  return {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [nodeName] }] }],
      },
    },
  };
}

/**
 * Builds the source's client pod for one PVC. restartPolicy Never: a failed transfer is retried by
 * Ferry, which reads the exit code and termination message first.
 * @throws Error when the parts have no transfer process, or a transport without `transportPort`.
 */
export function buildClientPod(opts: ClientPodOptions): V1Pod {
  const [transferProc] = opts.transfer.processes;
  if (!transferProc) throw new Error('the transfer layer returned no client process');
  const transportProc = opts.transport.processes[0];
  if (transportProc && opts.transportPort === undefined) throw new Error('a transport process needs transportPort');
  const legacy = opts.lifecycle === 'done-file' && transportProc !== undefined;
  const script = transferClientScript(transferProc.command, {
    waitPort: legacy ? opts.transportPort : undefined,
    waitSeconds: opts.transportWaitSeconds,
    prepare: transferProc.prepare,
    finish: transferProc.finish,
    ...(transferProc.finishAfter ? { finishAfter: transferProc.finishAfter } : {}),
    signalDone: legacy,
  });
  const sourceMounts: V1VolumeMount[] = opts.pvcName !== undefined && !opts.block ? [{ name: 'source', mountPath: opts.sourcePath, readOnly: true }] : [];
  const transferContainer = container(opts, transferProc, ['/bin/bash', '-c', script], sourceMounts, true);
  // A block PVC: the device node (read-only through the claim's readOnly, below).
  if (opts.pvcName !== undefined && opts.block) transferContainer.volumeDevices = [{ name: 'source', devicePath: opts.sourcePath }];
  const volumes = [
    ...COMMON_VOLUMES,
    ...(opts.pvcName !== undefined ? [{ name: 'source', persistentVolumeClaim: { claimName: opts.pvcName, readOnly: true } }] : []),
    ...opts.transfer.volumes,
    ...opts.transport.volumes,
  ];
  assertNoDuplicateVolumes(volumes);
  const pod: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: metadata(opts),
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: podSecurityContext(opts.security, opts.identity),
      terminationGracePeriodSeconds: 10,
      containers: [transferContainer],
      volumes,
    },
  };
  if (transportProc) {
    const prep = transportProc.prepare ? `set -e\n${transportProc.prepare}\nset +e\n` : '';
    if (legacy) {
      const c = container(opts, transportProc, ['/bin/bash', '-c', prep + transportClientScript(transportProc.command)], [], false);
      pod.spec!.containers.push(c);
    } else {
      const c = container(opts, transportProc, ['/bin/bash', '-c', serverScript(transportProc.command, transportProc.prepare)], [], false);
      c.restartPolicy = 'Always';
      c.startupProbe = loopbackProbe(opts.transportPort!, 1, 120);
      pod.spec!.initContainers = [c];
    }
  }
  if (opts.nodeName) pod.spec!.affinity = nodeAffinity(opts.nodeName);
  if (opts.activeDeadlineSeconds !== undefined) pod.spec!.activeDeadlineSeconds = opts.activeDeadlineSeconds;
  return pod;
}

