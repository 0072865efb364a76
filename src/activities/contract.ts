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
import type { NamespaceState } from '../core/state';
import type { CleanupReport, CreatedEndpoint, RebindResult, DestinationCheck, EndpointAddress, HookResult, ImageCopyReport, NamespaceDiscovery, PreflightProblem, PVCInfo, QuiesceRecord, TransferResult, WorkloadRef, WriterCheck } from '../core/types';

/** Identifies one namespace of one migration for every namespace-level activity. */
export interface NamespaceContext {
  migrationId: string;
  plan: MigrationPlan;
  namespace: NamespaceMapping;
}

/** Identifies one PVC sync. */
export interface TransferRequest extends NamespaceContext {
  pvc: PVCInfo;
  address: EndpointAddress;
  /** Final sync (cutover, with --delete) or a stage sync. */
  final: boolean;
  /** Sync number (1-based) of this PVC, part of the client pod's identity so a retry of the same
   * sync re-attaches to its pod instead of starting another. */
  pass: number;
  /** A stage sync with plan groupSnapshot: the PVC's member VolumeSnapshot of the stage pass's
   * VolumeGroupSnapshot (prepareGroupSnapshot), restored instead of a snapshot of its own. */
  fromSnapshot?: string;
  /** A final sync that leaves its warm agent running (the namespace's releaseAgents deletes them all
   * after the last final sync); absent: the final sync deletes its agent as it ends. */
  keepAgent?: boolean;
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
  /** Creates the endpoint and waits until healthy; with `exclude` (endpoint auto, after a failed
   * connectivity probe) the types tried so far are deleted and skipped. */
  createEndpoint(ctx: NamespaceContext & { exclude?: string[] }): Promise<CreatedEndpoint>;
  /** Creates certificates, Secrets, ConfigMaps and the server pod; waits until ready. Credentials
   * stay in Secrets (re-read on retry), never returned. */
  createServer(input: NamespaceContext & { discovery: NamespaceDiscovery; address: EndpointAddress }): Promise<void>;
  /** From the source cluster, a probe pod opens TCP + TLS (client certificate) to the endpoint and
   * reads the transfer server's greeting. Throws FerryTransient/FerryAuth with an explanation. */
  probeConnectivity(input: NamespaceContext & { address: EndpointAddress }): Promise<void>;
  /** One sync of one PVC: first ensures the destination server and both sides' credentials
   * (recreates a lost server pod, renews expiring certificates: migration/server-sync.ts), then creates
   * (or re-attaches to) the client pod, heartbeats TransferProgress, returns the result or throws a
   * classified failure (a connection-level one says what happened to the server). Deletes the
   * finished client pod. */
  runTransfer(req: TransferRequest): Promise<TransferResult>;
  /** Runs the plan hook `hook` (by name) of the namespace: migration/hooks.ts runExecHook in its
   * cluster's namespace (source or destination). A failed hook is a result with ok false, not an
   * error; never retried (a user's command may not run twice). */
  runHook(input: NamespaceContext & { hook: string }): Promise<HookResult>;
  /** Plan groupSnapshot: snaps `pvcs` of the source namespace together for stage pass `pass` (one
   * VolumeGroupSnapshot, migration/snapshot.ts); returns PVC name → member VolumeSnapshot name. */
  prepareGroupSnapshot(input: NamespaceContext & { pass: number; pvcs: string[] }): Promise<Record<string, string>>;
  /** prepareGroupSnapshot with the plan's background hooks `hooks` (names) held over the cut
   * (migration/hooks.ts holdBackgroundHooks): started, held at their FERRY_WAIT, released as soon as
   * the group is cut. When a hook with onError fail cannot hold, no snapshot is taken (`members`
   * empty) and the workflow fails the namespace with the hook's result. */
  prepareHeldGroupSnapshot(input: NamespaceContext & { pass: number; pvcs: string[]; hooks: string[] }): Promise<{ members: Record<string, string>; hooks: HookResult[] }>;
  /** Deletes the namespace's VolumeGroupSnapshot (and its member snapshots) after a stage pass. */
  releaseGroupSnapshot(input: NamespaceContext): Promise<void>;
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
  /** After the namespace's final syncs: deletes the warm transfer agents of the migration in the
   * source namespace (no wait for the pods to go); returns how many. Idempotent. */
  releaseAgents(ctx: NamespaceContext): Promise<{ released: number }>;
  /** Plan keepPVCNames, after the final sync (applications quiesced): deletes the namespace's transfer
   * objects (no Ferry pod may hold a claim), then binds each original PVC name to the volume of its
   * temporary PVC (migration/rebind.ts); idempotent. */
  rebindPVCs(input: NamespaceContext & { pvcs: { name: string; temporary: string }[] }): Promise<RebindResult[]>;
  /** Plan verifyDestination, after cleanup: waits (heartbeating, up to timeouts.verifyDestinationSeconds)
   * until the destination pods mounting the migrated PVCs (`claims`: destination names, expected =
   * a running workload mounted it at the source) are Ready; returns the report, never fails for what
   * it finds (migration/destination-check.ts). */
  checkDestination(input: NamespaceContext & { claims: { name: string; expected: boolean }[] }): Promise<DestinationCheck>;
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
    /** The namespace's downtime (seconds from quiesce to the end of its final sync or rollback),
     * when its applications were quiesced: recorded in the ferry_downtime_seconds metric once the
     * cleanup succeeds (a failed attempt records nothing, so a retry does not count it twice). */
    downtimeSeconds?: number;
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
