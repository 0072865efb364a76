/**
 * Ferry's domain types: the plain JSON shapes of a migration (PVCs, workloads, quiesce records, sync
 * progress and results, failure types) that every layer shares. Pure data, no I/O, no Temporal: the
 * libraries (statetransfer, k8s, migration, images), the activities and the workflows all import them
 * from here. They cross the workflow/activity boundary as JSON, so they never hold secrets.
 */
import type { FerryErrorCategory } from './errors';
/** Failure types thrown by activities (ApplicationFailure.type). */
export const FailureType = {
  /** Network trouble, timeouts, API server hiccups: retried with backoff. */
  Transient: 'FerryTransient',
  /** The plan or the clusters are not as required (missing StorageClass, namespace, permission). */
  Preflight: 'FerryPreflight',
  /** Authentication/authorization failure (rsync auth, TLS peer verification, RBAC). */
  Auth: 'FerryAuth',
  /** Destination out of space (rsync "No space left on device"). */
  NoSpace: 'FerryNoSpace',
  /** Bad configuration discovered at run time. */
  Config: 'FerryConfig',
  /** rsync finished with some files not transferred (exit 23/24) on the final sync. */
  Partial: 'FerryPartial',
  /** Anything else that retrying will not fix. */
  Fatal: 'FerryFatal',
} as const;
export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];

/** Failure types that must not be retried by Temporal's retry policy. */
export const NON_RETRYABLE_FAILURES: FailureTypeName[] = [
  FailureType.Preflight,
  FailureType.Auth,
  FailureType.NoSpace,
  FailureType.Config,
  FailureType.Partial,
  FailureType.Fatal,
];

/** Which cluster an object lives in. */
export type ClusterSide = 'source' | 'destination';

/** A workload (Deployment, StatefulSet, ReplicaSet, DeploymentConfig, DaemonSet, Job, CronJob). */
export interface WorkloadRef {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
}

/** Identity of the workload that mounts a PVC: the transfer pods run with it (restricted mode) so
 * that files they write belong to the application (src/statetransfer/pods/security.ts). */
export interface WorkloadIdentity {
  runAsUser?: number;
  runAsGroup?: number;
  fsGroup?: number;
  supplementalGroups?: number[];
  seLinuxOptions?: { level?: string; role?: string; type?: string; user?: string };
}

/** A source PVC and what its destination will be. */
export interface PVCInfo {
  /** Source PVC name. */
  name: string;
  /** Destination PVC name (same name; namespaces may be renamed). */
  destinationName: string;
  /** Requested size, a Kubernetes quantity string (e.g. "10Gi"). */
  capacity: string;
  /** Requested size in bytes. */
  capacityBytes: number;
  storageClass?: string;
  destinationStorageClass?: string;
  accessModes: string[];
  destinationAccessModes: string[];
  volumeMode: 'Filesystem' | 'Block';
  /** Node of a running pod that mounts the PVC (ReadWriteOnce: the client pod is pinned there). */
  nodeName?: string;
  identity?: WorkloadIdentity;
  /** Workloads whose pods mount this PVC. */
  usedBy: WorkloadRef[];
}

/** What discovery found in one namespace. */
export interface NamespaceDiscovery {
  sourceNamespace: string;
  destinationNamespace: string;
  pvcs: PVCInfo[];
  /** All workloads using the selected PVCs (deduplicated): what quiesce scales down. */
  workloads: WorkloadRef[];
  /** Active pods mounting a selected PVC that Ferry cannot quiesce (bare pods, pods of controllers
   * Ferry does not know). Preflight refuses them unless the plan says `unmanagedPods: delete`. */
  unmanagedPods?: UnmanagedPod[];
  /** Workloads whose pods do not all run their template's revision (partitioned, stalled or OnDelete
   * rollout): after quiesce they come back on the new revision. Preflight refuses them unless the plan
   * says `acceptRevisionChange: true`. */
  pendingRollouts?: PendingRollout[];
}

/** What one application hook did (migration/hooks.ts): per pod its exit code and the tail of its
 * output; `ok` when it ran in at least one pod and every run exited 0. */
export interface HookResult {
  name: string;
  phase: string;
  cluster: 'source' | 'destination';
  namespace: string;
  ok: boolean;
  /** Why it failed (no matching pod, exit code, timeout, API error), or undefined. */
  message?: string;
  pods: { pod: string; exitCode?: number; outputTail: string }[];
  /** Wall time, seconds. */
  seconds: number;
}

/** What the keepPVCNames rebind did for one PVC (migration/rebind.ts). */
export interface RebindResult {
  pvc: string;
  /** The PV now bound under the PVC's name. */
  newVolume: string;
  /** The PV that held the data before, kept (Released, reclaim policy Retain); absent when none. */
  oldVolume?: string;
  /** Finished pods (a completed Job's) deleted because they still named the old claim. */
  deletedPods?: string[];
}

/** The endpoint type a namespace got and why (the plan's, or what `auto` found). */
export interface EndpointChoice {
  /** An endpoint type (statetransfer/types.ts ENDPOINT_TYPES). */
  type: string;
  reason: string;
}

/** What the createEndpoint activity returns: where the source connects, and the endpoint chosen
 * (absent in results recorded by older workers). */
export type CreatedEndpoint = EndpointAddress & { chosen?: EndpointChoice };

/** Workload kinds whose pods run until stopped: a PVC one of them mounted at the source is expected to
 * be mounted again in the destination (plan verifyDestination). Jobs and CronJobs are not. */
export const RUNNING_WORKLOAD_KINDS: readonly string[] = Object.freeze(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ReplicationController', 'DeploymentConfig']);

/** Default of the plan's timeouts.verifyDestinationSeconds, seconds. */
export const DEFAULT_VERIFY_DESTINATION_SECONDS = 600;

/** One migrated PVC in the post-cutover check of the destination (plan verifyDestination). */
export interface DestinationPVCCheck {
  /** Destination PVC name. */
  pvc: string;
  /** A running workload mounted it at the source, so pods are expected to mount it here. */
  expected: boolean;
  /** The destination pods that mount it, with their state ("Ready", or why not). */
  pods: { name: string; ready: boolean; state: string }[];
  /** At least one pod mounts it and every such pod is Ready. */
  ready: boolean;
}

/** The post-cutover check of one destination namespace (plan verifyDestination; MTC's `verify`). */
export interface DestinationCheck {
  namespace: string;
  /** Every expected PVC is mounted by Ready pods only. */
  ok: boolean;
  pvcs: DestinationPVCCheck[];
  /** Why not ok, or what there was to check. */
  message?: string;
  /** Wall time of the check, seconds. */
  seconds: number;
}

/** A pod that mounts a source PVC and that Ferry cannot quiesce. */
export interface UnmanagedPod {
  name: string;
  /** The selected source PVCs it mounts (writable mounts only). */
  pvcs: string[];
  /** What controls it, when something Ferry does not know does ("Kind name", "Kind name (controls
   * StatefulSet ns/x)"); absent for a bare pod. */
  owner?: string;
}

/** A workload in the middle of a rollout (see NamespaceDiscovery.pendingRollouts). */
export interface PendingRollout {
  workload: WorkloadRef;
  /** What differs, e.g. "2 of 3 pods run revision web-5d4 while the template is web-7f9 (partition 2)". */
  detail: string;
}

/** StatefulSet spec.persistentVolumeClaimRetentionPolicy (Kubernetes ≥ 1.27 beta, GA in 1.32);
 * an absent field means Retain. */
export interface PVCRetentionPolicy {
  whenScaled?: string;
  whenDeleted?: string;
}

/** Result of `checkSourceWriters`. */
export interface WriterCheck {
  /** Active pods other than Ferry's that mount a source PVC of the namespace (after any deletion). */
  pods: UnmanagedPod[];
  /** Pods this call deleted (plan `unmanagedPods: delete`). */
  deleted: string[];
}

/** One problem found by preflight. */
export interface PreflightProblem {
  /** e.g. "namespaces[0]", "pvc shop/data", "destination". */
  subject: string;
  message: string;
}

/** Prior state of a quiesced workload, kept in workflow state AND in an annotation on the object. */
export interface QuiesceRecord {
  workload: WorkloadRef;
  /** Replicas before (Deployment, StatefulSet, ReplicaSet, DeploymentConfig). */
  replicas?: number;
  /** Deployment paused before. */
  paused?: boolean;
  /** CronJob suspend before (false when unset). */
  suspend?: boolean;
  /** Job parallelism before. */
  parallelism?: number;
  /** DaemonSet nodeSelector before. */
  nodeSelector?: Record<string, string>;
  /** StatefulSet persistentVolumeClaimRetentionPolicy before, recorded when it deleted PVCs
   * (a Delete in either field): quiesce sets both to Retain before scaling to 0, unquiesce restores it. */
  pvcRetentionPolicy?: PVCRetentionPolicy;
  /** The migration that wrote the record (in the `ferry.dev/pre-quiesce` annotation too): a record of
   * another migration (e.g. one left by keepSourceQuiesced) is never restored by this one. */
  migrationId?: string;
  /** Whether Ferry changed anything (an already-suspended CronJob is recorded but untouched). */
  changed: boolean;
}

/** Where the source side must connect to reach the destination's transfer server (from the
 * endpoint's health). */
export interface EndpointAddress {
  /** DNS name or IP address. */
  host: string;
  /** TCP port. */
  port: number;
  /** TLS server name (SNI) the client must send, when routing depends on it (Route, Ingress). */
  sni?: string;
}

/** Live progress of one PVC transfer, reported in heartbeats and the workflow's state. */
export interface TransferProgress {
  bytes: number;
  totalBytes?: number;
  percent?: number;
  /** Bytes per second. */
  rate?: number;
  /** Seconds. */
  eta?: number;
  filesChecked?: number;
  filesTotal?: number;
}

/** Result of one sync of one PVC: the engine's figures (TransferStats) and the verdict. */
export interface TransferResult extends TransferStats {
  exitCode: number;
  outcome: 'success' | 'partial';
  /** Files that failed or vanished (partial), capped. */
  failedFiles?: string[];
  /** Human-readable summary. */
  message: string;
  durationSeconds: number;
}

/** Counts of what cleanup deleted, per cluster. */
export interface CleanupReport {
  source: number;
  destination: number;
  /** Objects still present after cleanup (should be 0). */
  remaining: number;
}

/** Result of the images copy of a namespace. */
export interface ImageCopyReport {
  /** Registry mode without a list: the repositories found in the namespace's pod templates. */
  found?: string[];
  copied: { source: string; destination: string; digest: string }[];
  skipped: { source: string; reason: string }[];
}

/** How a transfer ended, engine-neutral. */
export interface TransferVerdict {
  outcome: 'success' | 'partial' | 'retryable' | 'fatal';
  /** For failures: which FerryError category to raise. */
  category?: FerryErrorCategory;
  explanation: string;
  failedFiles: string[];
  failedFilesOmitted: number;
}

/** Figures an engine reports at the end of a run (rsync: its STATS2 block; rclone: its stats). */
export interface TransferStats {
  /** Bytes sent over the wire (rsync "Total bytes sent"; rclone: file bytes, its nearest figure). */
  bytesSent?: number;
  /** Size of all files in the tree, bytes. */
  totalFileSize?: number;
  /** Regular files transferred. */
  filesTransferred?: number;
  /** Entries in the tree. */
  numberOfFiles?: number;
}
