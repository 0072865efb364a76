/**
 * The state of a migration as Ferry's workflows keep it, expose through queries and return as their
 * result, plus the pure helpers that derive figures from it. Plain data and functions (core: no I/O, no
 * Temporal): the workflows, the activity that describes namespace workflows, the client and the CLI
 * all read it.
 *
 * Three workflows, three levels (see ../workflows/index.ts):
 * - migrationWorkflow keeps a `MigrationState`: its own phases, and one `NamespaceEntry` per namespace
 *   (kept current by the namespace workflows' reports; the full `NamespaceState` once a namespace ended).
 * - namespaceWorkflow keeps a `NamespaceState`: phases, per-PVC status, quiesce records, downtime,
 *   rollback steps. Its `state` query is the per-PVC view.
 * - pvcTransferWorkflow keeps nothing: the transfer activity's heartbeats carry the live byte counts
 *   (read by the client through describe(); see ../cli/operations.ts).
 */
import type { CleanupReport, DestinationCheck, EndpointAddress, EndpointChoice, RebindResult, HookResult, ImageCopyReport, PreflightProblem, QuiesceRecord, TransferResult, UnmanagedPod } from './types';

/** Knobs for the workflows' timing; every field is optional and the defaults suit production. */
export interface WorkflowTuning {
  /** Heartbeat timeout of the activities that heartbeat, in seconds. Default 60. */
  heartbeatTimeoutSeconds?: number;
  /** Factor applied to every retry interval of every activity. Default 1 (tests use ~0.01). */
  retryIntervalScale?: number;
  /** Stage passes per run of namespaceWorkflow before it continues as new (bounding its history in a
   * long manual-cutover migration). Default: when Temporal suggests it (history size). */
  stagePassesPerRun?: number;
  /** Continue as new once a run's history has this many events (migrationWorkflow while its
   * namespaces run; namespaceWorkflow between stage passes), besides when Temporal suggests it.
   * Default: only when Temporal suggests it. Tests scale it down. */
  continueAsNewAfterEvents?: number;
  /** Seconds between the checks of a continued migration run on namespace workflows that have not
   * reported their end (a workflow terminated or timed out never does). Default 300. Tests use ~1. */
  namespaceWatchSeconds?: number;
}

/** A phase with its start and end times (ISO 8601, workflow time). */
export interface PhaseRecord {
  name: string;
  startedAt: string;
  endedAt?: string;
}

/** Phases of one namespace, in order; `rollback` may follow any of them. */
export const NAMESPACE_PHASES = [
  'pending',
  'prepare',
  'stage',
  'ready-for-cutover',
  'quiesce',
  'final-sync',
  'rebind',
  'unquiesce',
  'cleanup',
  'verify-destination',
  'rollback',
  'succeeded',
  'rolled-back',
] as const;
export type NamespacePhase = (typeof NAMESPACE_PHASES)[number];

/**
 * Phases of a migration, the values of the FerryPhase search attribute. While namespaces run, the
 * migration's phase is derived from theirs (see migrationPhase): `awaiting-decision` when a failed
 * PVC waits for the operator, `rollback` when a namespace rolls back, else the least advanced phase.
 */
export const MIGRATION_PHASES = [
  'discover',
  'preflight',
  'prepare',
  'stage',
  'ready-for-cutover',
  'quiesce',
  'final-sync',
  'rebind',
  'unquiesce',
  'cleanup',
  'verify-destination',
  'awaiting-decision',
  'rollback',
  'images',
  'succeeded',
  'failed',
  'rolled-back',
  'cancelled',
] as const;
export type MigrationPhase = (typeof MIGRATION_PHASES)[number];

/** What the operator decides for a failed PVC. */
export type DecisionAction = 'retry' | 'skip' | 'abort';
export const DECISION_ACTIONS: readonly DecisionAction[] = ['retry', 'skip', 'abort'];

/** Argument of the `decide` update. */
export interface Decision {
  /** Source PVC name. */
  pvc: string;
  action: DecisionAction;
}

/**
 * Status of one PVC. `failed`: its last sync failed after the activity's retries and it waits for
 * the operator's decision; `synced`: its last stage sync succeeded; `done`: its final sync succeeded;
 * `cancelled`: its sync was stopped by the namespace's rollback or cancellation.
 */
export type PVCStatus = 'pending' | 'syncing' | 'synced' | 'failed' | 'skipped' | 'done' | 'cancelled';

/** One finished sync of one PVC: its TransferResult (bytesSent 0 when the engine reported none),
 * which sync it was, and when it finished (ISO 8601, workflow time). */
export interface SyncRecord extends Omit<TransferResult, 'bytesSent'> {
  pass: number;
  final: boolean;
  bytesSent: number;
  finishedAt: string;
}

/** One failed sync of one PVC (after the activity's own retries). */
export interface SyncFailure {
  pass: number;
  final: boolean;
  /** ApplicationFailure type (FerryNoSpace, ...) or the timeout kind. */
  type?: string;
  message: string;
  at: string;
}

/** Everything a namespace workflow knows about one PVC. */
export interface PVCState {
  name: string;
  destinationName: string;
  capacityBytes: number;
  status: PVCStatus;
  /** Syncs started so far: the `pass` of the latest sync (stage passes, final sync and retries). */
  syncs: number;
  /** Stage syncs that succeeded. */
  stageSyncsDone: number;
  /** Bytes sent over the wire by all finished syncs. */
  bytesSent: number;
  lastSync?: SyncRecord;
  /** The sync running now: its pvcTransferWorkflow id (describe it for live progress). */
  running?: { workflowId: string; pass: number; final: boolean; startedAt: string };
  /** Failed syncs, oldest first (the last MAX_PVC_ERRORS). */
  errors: SyncFailure[];
  /** Every decision the operator took for this PVC. */
  decisions: { action: DecisionAction; at: string }[];
}

/** Result of one rollback step. */
export interface RollbackStep {
  step: 'unquiesce' | 'cleanup' | 'deleteDestinationPVCs';
  ok: boolean;
  message?: string;
}

/** State (and result) of namespaceWorkflow. */
export interface NamespaceState {
  migrationId: string;
  source: string;
  destination: string;
  workflowId: string;
  phase: NamespacePhase;
  status: 'running' | 'succeeded' | 'rolled-back';
  startedAt: string;
  endedAt?: string;
  phases: PhaseRecord[];
  cutover: 'auto' | 'manual';
  cutoverRequested: boolean;
  /** Stage passes completed (every PVC synced or skipped). */
  stagePassesDone: number;
  pvcs: PVCState[];
  /** Workloads that mount the PVCs (what quiesce scales down). */
  workloads: number;
  /** Something may exist in a cluster (prepareDestination was called): cleanup is due on rollback. */
  touched: boolean;
  /** prepareDestination, createEndpoint, createServer and probeConnectivity all succeeded. */
  prepared: boolean;
  createdNamespace?: boolean;
  /** Destination PVCs Ferry created (the only ones rollback may delete). */
  createdPVCs: string[];
  address?: EndpointAddress;
  /** quiesce was called (its records below once it returned). */
  quiesceStarted: boolean;
  /** Prior state of every quiesced workload: what unquiesce restores. */
  quiesced: QuiesceRecord[];
  unquiesced: boolean;
  /** Every PVC's final sync finished: the copy is complete, rollback no longer deletes PVCs. */
  finalSynced: boolean;
  /** Application downtime: from the start of quiesce to the end of the final sync (on rollback: to the
   * end of the unquiesce step that restored the applications). */
  downtime?: { startedAt: string; endedAt?: string; seconds?: number };
  cleanup?: CleanupReport;
  /** Pods mounting a source PVC that Ferry cannot quiesce (bare pods, pods of unknown controllers), as
   * last found (discovery, re-discovery before quiesce, checks around the final sync). */
  unmanagedPods?: UnmanagedPod[];
  /** Problems after the copy was complete (unquiesce or cleanup failed): no rollback, but act on them. */
  warnings: string[];
  /** Why restoring the source workloads failed after the final sync (they are still scaled down). */
  unquiesceFailed?: string;
  /** Why the namespace rolled back. */
  error?: string;
  rollback?: { reason: string; startedAt: string; endedAt?: string; steps: RollbackStep[] };
  /** Runs of this workflow so far (continue-as-new in long stage phases). */
  runs: number;
  /** Cutover is held back: the last stage pass of these PVCs was partial (rsync exit 23, not only
   * vanished files), so the final sync would fail after the applications went down. Cleared by a
   * clean pass or by a forced cutover. */
  cutoverBlocked?: { pvcs: string[]; reason: string; since: string };
  /** The operator forced cutover despite partial stage passes (`ferry cutover --force`). */
  cutoverForcedAt?: string;
  /** Application hooks run so far, oldest first (the last MAX_HOOK_RESULTS; each with at most 5 pods). */
  hooks?: (HookResult & { at: string })[];
  /** Plan keepPVCNames: each PVC bound to its new volume under its own name, and the old volume kept. */
  rebound?: RebindResult[];
  /** The endpoint type the namespace got and why (absent before the endpoint exists, and in states
   * of older workers). */
  endpoint?: EndpointChoice;
  /** Plan stageSchedule: when the next stage pass starts (ISO 8601), while the namespace waits for it. */
  nextStageAt?: string;
  /** Plan verifyDestination: the post-cutover check of the destination pods (at most
   * MAX_DESTINATION_CHECK_PVCS PVCs listed, each with at most 5 pods). */
  destinationCheck?: DestinationCheck;
  /** The latest stage passes, oldest first (the last MAX_STAGE_HISTORY): the evidence for cutover. */
  stageHistory?: StagePassRecord[];
  /** Plan `cutoverWhen`: the stage pass whose projection triggered the cutover, or why Ferry stopped
   * waiting for one and waits for the operator instead. */
  cutoverEvidence?: { decision: 'cut-over' | 'operator'; pass: number; projectedSeconds?: number; thresholdSeconds: number; reason: string; at: string };
}

/** One completed stage pass of a namespace: what it changed and what a cutover now would cost. */
export interface StagePassRecord {
  /** 1-based number of the stage pass in this namespace. */
  pass: number;
  startedAt: string;
  endedAt: string;
  /** Wall time of the whole pass (all its PVCs), seconds. */
  seconds: number;
  /** Bytes sent and regular files transferred by the pass's syncs (the delta since the previous pass). */
  bytesSent: number;
  filesTransferred: number;
  /** projectedFinalSyncSeconds after this pass (undefined when no PVC synced). */
  projectedFinalSyncSeconds?: number;
}

/** How many hook results NamespaceState.hooks keeps. */
export const MAX_HOOK_RESULTS = 50;
/** PVCs listed at most in a namespace's destinationCheck (the check covers all). */
export const MAX_DESTINATION_CHECK_PVCS = 50;

/** How many stage passes NamespaceState.stageHistory keeps. */
export const MAX_STAGE_HISTORY = 20;

/**
 * The final sync's projected length from the last stage pass: each PVC's final sync takes about as long
 * as its last stage sync (a delta of the same age), `concurrency` at once — at least the longest one.
 * Undefined before a stage pass completed. Quiesce comes on top (the workloads' shutdown).
 */
export function projectedFinalSyncSeconds(pvcs: readonly PVCState[], concurrency: number): number | undefined {
  const last = pvcs.filter((p) => p.status !== 'skipped' && p.lastSync && !p.lastSync.final).map((p) => p.lastSync!.durationSeconds);
  if (last.length === 0) return undefined;
  return Math.max(Math.max(...last), last.reduce((a, b) => a + b, 0) / Math.max(1, concurrency));
}



/** What a namespace workflow reports to its parent (signal), on phase changes and failures. */
export interface NamespaceReport {
  source: string;
  phase: NamespacePhase;
  status: NamespaceState['status'];
  stagePassesDone: number;
  /** PVCs that failed at least once. */
  failedPVCs: number;
  /** PVCs waiting for the operator's decision. */
  awaitingDecision: string[];
  /** PVCs whose latest sync succeeded (stage or final), and bytes sent so far: for the migration's
   * Temporal UI details (../workflows/summaries.ts). Absent in reports of older workers. */
  pvcsSynced?: number;
  bytesSent?: number;
  /** The namespace's final state, in the last report. */
  final?: NamespaceState;
}

/** The migration's view of one namespace. */
export interface NamespaceEntry {
  source: string;
  destination: string;
  workflowId: string;
  phase: NamespacePhase;
  status: 'pending' | 'running' | 'succeeded' | 'rolled-back' | 'failed';
  stagePassesDone: number;
  pvcs: number;
  failedPVCs: number;
  awaitingDecision: string[];
  /** From the namespace's latest report (NamespaceReport): PVCs synced, bytes sent. */
  pvcsSynced?: number;
  bytesSent?: number;
  images: { status: 'disabled' | 'pending' | 'running' | 'succeeded' | 'failed'; report?: ImageCopyReport; error?: string };
  /** Why the namespace did not succeed (its workflow's failure). */
  error?: string;
  /** The namespace workflow's final state, once it ended. */
  result?: NamespaceState;
}

export type MigrationStatus = 'running' | 'succeeded' | 'failed' | 'rolled-back' | 'cancelled';

/** Figures over every namespace, derived from the state (see migrationTotals). */
export interface MigrationTotals {
  namespaces: number;
  pvcs: number;
  pvcsDone: number;
  pvcsSkipped: number;
  pvcsFailed: number;
  bytesSent: number;
  /** Longest downtime of a namespace, in seconds (namespaces cut over independently). */
  downtimeSeconds?: number;
}

/** State of migrationWorkflow (its `state` query) and, once finished, its summary. */
export interface MigrationState {
  migrationId: string;
  workflowId: string;
  name?: string;
  phase: MigrationPhase;
  status: MigrationStatus;
  startedAt: string;
  endedAt?: string;
  phases: PhaseRecord[];
  namespaces: NamespaceEntry[];
  /** Preflight problems (the migration failed before touching anything when non-empty). */
  problems: PreflightProblem[];
  rollbackRequested?: { at: string; reason?: string };
  /** Why the migration did not succeed. */
  error?: string;
  totals: MigrationTotals;
}

/** The result of migrationWorkflow (also the `details[0]` of its failure). */
export type MigrationSummary = MigrationState;

/** How many failed syncs are kept per PVC. */
export const MAX_PVC_ERRORS = 20;

const NAMESPACE_ORDER: Record<NamespacePhase, number> = Object.fromEntries(NAMESPACE_PHASES.map((p, i) => [p, i])) as Record<NamespacePhase, number>;

/**
 * The phase of a running migration whose namespaces run: `awaiting-decision` when a PVC waits for the
 * operator, `rollback` when a namespace rolls back, else the least advanced phase of the namespaces
 * still running, `images` when only image copies run.
 */
export function migrationPhase(namespaces: NamespaceEntry[]): MigrationPhase {
  if (namespaces.some((n) => n.awaitingDecision.length > 0)) return 'awaiting-decision';
  if (namespaces.some((n) => n.phase === 'rollback')) return 'rollback';
  const running = namespaces.filter((n) => n.status === 'pending' || n.status === 'running');
  if (running.length > 0) {
    const least = running.reduce((a, b) => (NAMESPACE_ORDER[b.phase] < NAMESPACE_ORDER[a.phase] ? b : a)).phase;
    return least === 'pending' ? 'prepare' : (least as MigrationPhase);
  }
  if (namespaces.some((n) => n.images.status === 'running' || n.images.status === 'pending')) return 'images';
  return 'cleanup';
}

/** Totals over the namespaces whose final or live state is given. */
export function migrationTotals(namespaces: NamespaceEntry[], live: Record<string, NamespaceState | undefined> = {}): MigrationTotals {
  const t: MigrationTotals = { namespaces: namespaces.length, pvcs: 0, pvcsDone: 0, pvcsSkipped: 0, pvcsFailed: 0, bytesSent: 0 };
  for (const n of namespaces) {
    const ns = n.result ?? live[n.source];
    if (!ns) {
      t.pvcs += n.pvcs;
      continue;
    }
    t.pvcs += ns.pvcs.length;
    for (const p of ns.pvcs) {
      t.bytesSent += p.bytesSent;
      if (p.status === 'done') t.pvcsDone++;
      else if (p.status === 'skipped') t.pvcsSkipped++;
      else if (p.status === 'failed') t.pvcsFailed++;
    }
    if (ns.downtime?.seconds !== undefined) t.downtimeSeconds = Math.max(t.downtimeSeconds ?? 0, ns.downtime.seconds);
  }
  return t;
}

/** Ends the open phase of `phases` at `at` and, when `next` is given, opens `next`. */
export function switchPhase(phases: PhaseRecord[], at: string, next?: string): void {
  const open = phases[phases.length - 1];
  if (open && open.endedAt === undefined) open.endedAt = at;
  if (next !== undefined) phases.push({ name: next, startedAt: at });
}

/** Seconds between two ISO timestamps. */
export function secondsBetween(from: string, to: string): number {
  return (Date.parse(to) - Date.parse(from)) / 1000;
}
