/**
 * The contract between Ferry's workflows and its activities: the activity signatures and the plain
 * JSON shapes they exchange. Workflows import only types from here (deterministic code never touches
 * Kubernetes); src/activities implements `FerryActivities` over the library (src/migration, src/k8s,
 * src/statetransfer, src/images).
 *
 * Rules every activity follows:
 * - Idempotent: deterministic object names (src/statetransfer/names.ts); an object that already exists
 *   with Ferry's labels for this migration is adopted, never duplicated.
 * - Secrets (keys, passwords) never cross this boundary: they would land in workflow history.
 * - Failures are thrown as ApplicationFailure with a `type` from `FailureType`; non-retryable types are
 *   listed in `NON_RETRYABLE_FAILURES` and carry an explanation an operator can act on.
 */
import type { MigrationPlan, NamespaceMapping } from '../plan/schema';
import type { NamespaceState } from '../workflows/state';

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

/** Identity of the workload that mounts a PVC (copied to the client pod). */
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

/** Where the source side connects (from the endpoint's health). */
export interface EndpointAddressInfo {
  host: string;
  port: number;
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

/** Result of one sync of one PVC. */
export interface TransferResult {
  exitCode: number;
  outcome: 'success' | 'partial';
  /** Total bytes sent over the wire (rsync "Total bytes sent"). */
  bytesSent?: number;
  /** Size of all files in bytes. */
  totalFileSize?: number;
  filesTransferred?: number;
  numberOfFiles?: number;
  /** Files that failed or vanished (partial), capped. */
  failedFiles?: string[];
  /** Human-readable summary. */
  message: string;
  durationSeconds: number;
}

/** Identifies one namespace of one migration for every namespace-level activity. */
export interface NamespaceContext {
  migrationId: string;
  plan: MigrationPlan;
  namespace: NamespaceMapping;
}

/** Identifies one PVC sync. */
export interface TransferRequest extends NamespaceContext {
  pvc: PVCInfo;
  address: EndpointAddressInfo;
  /** Final sync (cutover, with --delete) or a stage sync. */
  final: boolean;
  /** Sync number (1-based) of this PVC, part of the client pod's identity so a retry of the same
   * sync re-attaches to its pod instead of starting another. */
  pass: number;
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
  copied: { source: string; destination: string; digest: string }[];
  skipped: { source: string; reason: string }[];
}

/**
 * The activities. Every method is idempotent (see module docstring).
 */
export interface FerryActivities {
  /** Lists the selected PVCs of a namespace and the workloads that mount them. */
  discoverNamespace(ctx: NamespaceContext): Promise<NamespaceDiscovery>;
  /**
   * Checks before anything is touched: both clusters reachable; permissions (SelfSubjectAccessReview);
   * source namespaces exist; PVCs bound; destination StorageClasses exist; names fit; destination PVCs
   * do not already exist with other owners. Returns every problem found (empty = go).
   */
  preflight(input: { migrationId: string; plan: MigrationPlan; discoveries: NamespaceDiscovery[] }): Promise<PreflightProblem[]>;
  /** Creates the destination namespace (copying the source's labels and annotations) and the
   * destination PVCs. Returns the names of the PVCs Ferry created (for rollback). */
  prepareDestination(input: NamespaceContext & { discovery: NamespaceDiscovery }): Promise<{ createdNamespace: boolean; createdPVCs: string[] }>;
  /** Creates the endpoint and waits (heartbeating) until healthy; returns the address. Ensures the
   * destination namespace first as prepareDestination does (it may run at the same time). */
  createEndpoint(ctx: NamespaceContext): Promise<EndpointAddressInfo>;
  /** Creates certificates, Secrets, ConfigMaps and the server pod; waits until ready. Credentials
   * stay in Secrets (re-read on retry), never returned. */
  createServer(input: NamespaceContext & { discovery: NamespaceDiscovery; address: EndpointAddressInfo }): Promise<void>;
  /** From the source cluster, a probe pod opens TCP + TLS (client certificate) to the endpoint and
   * reads the transfer server's greeting. Throws FerryTransient/FerryAuth with an explanation. */
  probeConnectivity(input: NamespaceContext & { address: EndpointAddressInfo }): Promise<void>;
  /** One sync of one PVC: first ensures the destination server and both sides' credentials
   * (recreates a lost server pod, renews expiring certificates: migration/server-sync.ts), then creates
   * (or re-attaches to) the client pod, heartbeats TransferProgress, returns the result or throws a
   * classified failure (a connection-level one says what happened to the server). Deletes the
   * finished client pod. */
  runTransfer(req: TransferRequest): Promise<TransferResult>;
  /** Quiesces the workloads; returns their prior state. */
  quiesce(input: { migrationId: string; plan: MigrationPlan; workloads: WorkloadRef[] }): Promise<QuiesceRecord[]>;
  /**
   * Lists the active pods other than Ferry's own that mount (read-write) one of `pvcs` in the source
   * namespace. With `deleteUnmanaged`, first deletes those no quiesced workload controls (waits until
   * they are gone), then lists again. Used right before and right after the final sync. With
   * `retentionGuard` (right before it), first fails (FerryConfig) when a StatefulSet this migration
   * quiesced holds a retention policy that deletes PVCs again.
   */
  checkSourceWriters(input: NamespaceContext & { pvcs: string[]; deleteUnmanaged: boolean; retentionGuard?: boolean }): Promise<WriterCheck>;
  /** Waits (heartbeating) until no pod of the workloads runs; fails (FerryConfig) as soon as a
   * StatefulSet this migration quiesced holds a retention policy that deletes PVCs again. */
  waitForQuiesced(input: { migrationId: string; plan: MigrationPlan; workloads: WorkloadRef[] }): Promise<void>;
  /** Restores workloads exactly as recorded (only what is still in the quiesced state). `workloads`
   * lists workloads to restore from their `ferry.dev/pre-quiesce` annotation when no record was
   * returned (a quiesce that failed half-way); workloads without the annotation are left alone. */
  unquiesce(input: { migrationId: string; plan: MigrationPlan; records: QuiesceRecord[]; workloads?: WorkloadRef[] }): Promise<void>;
  /** Deletes every object labelled with the migration in both clusters (for one namespace when
   * given); verifies none remain. */
  cleanup(input: {
    migrationId: string;
    plan: MigrationPlan;
    namespace?: NamespaceMapping;
    /** Rollback before the namespace's final sync completed: also remove this migration's cutover
     * marks from the destination PVCs (../migration/destination.ts clearCutoverMarks). */
    clearCutoverMarks?: boolean;
  }): Promise<CleanupReport>;
  /** Rollback: deletes destination PVCs Ferry created (when the plan asks). */
  deleteDestinationPVCs(input: NamespaceContext & { pvcs: string[] }): Promise<void>;
  /** Direct Image Migration for one namespace. */
  copyImages(ctx: NamespaceContext): Promise<ImageCopyReport>;
  /** Asks Temporal how the namespace workflows of a migration stand (latest run of each id; a
   * continued-as-new run is followed to the run after it) and, for closed ones, their last state
   * when obtainable. Read-only; used by a continued migration run to notice namespace workflows that
   * ended without a final report (terminated, timed out). */
  describeNamespaceWorkflows(input: { migrationId: string; workflowIds: string[] }): Promise<NamespaceWorkflowStatus[]>;
}

/**
 * One namespace workflow as Temporal describes it (describeNamespaceWorkflows). `status` is the
 * status of its latest run: the names of Temporal's WorkflowExecutionStatus, plus NOT_FOUND when
 * Temporal knows no run of the id (never started, or deleted after its retention period).
 */
export interface NamespaceWorkflowStatus {
  workflowId: string;
  status: 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TERMINATED' | 'TIMED_OUT' | 'NOT_FOUND' | 'OTHER';
  runId?: string;
  /** When the latest run closed (ISO 8601), for closed ones. */
  closedAt?: string;
  /** The last state of a closed one, when obtainable: its result (COMPLETED), the state its failure
   * carries (FAILED with FerryRolledBack), else the answer of its `state` query, which Temporal
   * computes by replaying its history (TERMINATED, TIMED_OUT, CANCELLED). */
  lastState?: NamespaceState;
  /** Where `lastState` comes from: the workflow's result, its failure's details, its `state` query,
   * or its latest run's input (the state that run started from: it closed before running). */
  lastStateFrom?: 'result' | 'failure' | 'query' | 'run-input';
  /** Why `lastState` could not be obtained (a closed one without it). */
  stateError?: string;
}

/** Warm transfer agents of a plan when it sets no maxAgents (migration/agent.ts); shared equally by its
 * namespaces (workflows/migration.ts `planFor`). */
export const DEFAULT_MAX_AGENTS = 50;

/** Syncs a plan runs at once at most when it sets no maxConcurrentSyncs; shared equally by its
 * namespaces (workflows/migration.ts `planFor`). */
export const DEFAULT_MAX_CONCURRENT_SYNCS = 50;
