/**
 * NamespaceRun: what one run of namespaceWorkflow (up to its continue-as-new) works on — the input,
 * the NamespaceState carried across runs, the activity proxies, the operator's pending decisions, the
 * main cancellation scope and the parent reporter. The workflow's phases (./syncs.ts, ./rollback.ts,
 * ...) take it instead of closing over the workflow function's locals.
 */
import * as wf from '@temporalio/workflow';
import { type FerryActivities, type NamespaceContext } from '../../activities/contract';
import type { NamespaceDiscovery, PVCInfo, WorkloadRef } from '../../core/types';
import type { MigrationPlan, NamespaceMapping } from '../../plan/schema';
import { ferryActivities } from '../activity-options';
import { switchPhase, type Decision, type NamespacePhase, type NamespaceState, type PVCState, type WorkflowTuning } from '../../core/state';
import { ParentReporter } from './reporter';
import { namespaceDetails } from '../summaries';

/** The input of namespaceWorkflow (migrationWorkflow starts one child per namespace mapping). */
export interface NamespaceWorkflowInput {
  migrationId: string;
  plan: MigrationPlan;
  namespace: NamespaceMapping;
  /** What the migration's discovery found in this namespace. */
  discovery: NamespaceDiscovery;
  tuning?: WorkflowTuning;
  /** State carried over continue-as-new (internal). */
  resume?: NamespaceState;
}

/** The workflow's clock (Temporal's deterministic time) as an ISO 8601 string. */
export const now = () => new Date().toISOString();

function initialState(input: NamespaceWorkflowInput, workflowId: string): NamespaceState {
  return {
    migrationId: input.migrationId,
    source: input.namespace.source,
    destination: input.namespace.destination,
    workflowId,
    phase: 'pending',
    status: 'running',
    startedAt: now(),
    phases: [],
    cutover: input.plan.cutover,
    cutoverRequested: false,
    stagePassesDone: 0,
    pvcs: input.discovery.pvcs.map((p) => ({
      name: p.name,
      destinationName: p.destinationName,
      capacityBytes: p.capacityBytes,
      status: 'pending',
      syncs: 0,
      stageSyncsDone: 0,
      bytesSent: 0,
      errors: [],
      decisions: [],
    })),
    workloads: input.discovery.workloads.length,
    ...(input.discovery.unmanagedPods?.length ? { unmanagedPods: input.discovery.unmanagedPods } : {}),
    touched: false,
    prepared: false,
    createdPVCs: [],
    quiesceStarted: false,
    quiesced: [],
    unquiesced: false,
    finalSynced: false,
    warnings: [],
    runs: 0,
  };
}

/**
 * The state of one run of namespaceWorkflow. Constructing it is the start of the workflow: it reads
 * workflowInfo(), starts the parent reporter and asks `patched('d-partial-stage')` — in that order.
 */
export class NamespaceRun {
  readonly migrationId: string;
  readonly plan: MigrationPlan;
  readonly namespace: NamespaceMapping;
  readonly discovery: NamespaceDiscovery;
  readonly tuning: WorkflowTuning | undefined;
  readonly info: wf.WorkflowInfo;
  readonly acts: FerryActivities;
  readonly ctx: NamespaceContext;
  readonly st: NamespaceState;
  readonly pvcInfo: Map<string, PVCInfo>;
  /** The operator's decisions (retry or skip) not yet carried out, by PVC name. */
  readonly decisions: Map<string, Decision>;
  /** The operator's abort, once it came (it cancels `main`). */
  abortedBy: Decision | undefined;
  /** The scope of the migration proper; rollback runs outside it. */
  readonly main: wf.CancellationScope;
  readonly reporter: ParentReporter;
  /** What quiesce stops: discovery's workloads, plus those re-discovery finds before quiesce. */
  quiesceTargets: WorkloadRef[];
  /** During a stage pass with plan groupSnapshot: each PVC's member VolumeSnapshot of the pass's group. */
  groupMembers: Record<string, string> | undefined;
  /** Issue 8 item 4: a partial stage pass holds cutover back (patch `d-partial-stage`). */
  readonly gatePartial: boolean;
  /**
   * The final syncs keep their warm agents (TransferRequest.keepAgent), and one releaseAgents before
   * unquiesce deletes them all (patch `agents-released-together`): before, each final sync
   * deleted its agent as it ended, and those pods' teardown (containers, cgroups, network) took CPU
   * from the final syncs still running, inside the downtime.
   */
  keepAgentsInFinal = false;

  constructor(readonly input: NamespaceWorkflowInput) {
    const { migrationId, plan, namespace, discovery, tuning } = input;
    this.migrationId = migrationId;
    this.plan = plan;
    this.namespace = namespace;
    this.discovery = discovery;
    this.tuning = tuning;
    const info = (this.info = wf.workflowInfo());
    this.acts = ferryActivities(plan, tuning);
    this.ctx = { migrationId, plan, namespace };
    const st: NamespaceState = (this.st = input.resume ?? initialState(input, info.workflowId));
    st.runs++;
    this.pvcInfo = new Map<string, PVCInfo>(discovery.pvcs.map((p) => [p.name, p]));
    this.decisions = new Map<string, Decision>();
    this.main = new wf.CancellationScope();
    this.reporter = new ParentReporter(st, () => this.showDetails());
    this.quiesceTargets = discovery.workloads;
    if (st.runs === 1 && plan.quiesce && plan.acceptRevisionChange) {
      for (const r of discovery.pendingRollouts ?? []) {
        st.warnings.push(`${r.workload.kind} ${r.workload.namespace}/${r.workload.name} is in the middle of a rollout (${r.detail}); accepted by acceptRevisionChange`);
      }
    }

    // Issue 8 item 4: a partial stage pass holds cutover back (new commands: behind a patch).
    this.gatePartial = wf.patched('d-partial-stage');
  }

  /** PVCs whose last stage pass was partial for a reason other than vanished files (exit 24 is a
   * success in the activity's result). */
  partialPVCs(): PVCState[] {
    const st = this.st;
    return this.gatePartial ? st.pvcs.filter((p) => p.status !== 'skipped' && p.lastSync && !p.lastSync.final && p.lastSync.outcome === 'partial' && p.lastSync.exitCode !== 24) : [];
  }

  /** "pvc (pass n, rsync exit e): message; ...", for messages about partial passes. */
  partialReason(ps: PVCState[]): string {
    return ps.map((p) => `${p.name} (pass ${p.lastSync!.pass}, rsync exit ${p.lastSync!.exitCode}): ${p.lastSync!.message}`).join('; ');
  }

  /** Shows the state in the Temporal UI's "current details" (user metadata: adds no command). */
  showDetails(): void {
    wf.setCurrentDetails(namespaceDetails(this.st, this.plan, now()));
  }

  /** Enters `phase`: records it in the state's phase timeline and tells the parent. */
  enter(phase: NamespacePhase): void {
    const st = this.st;
    st.phase = phase;
    // Terminal phases only close the last one.
    switchPhase(st.phases, now(), phase === 'succeeded' || phase === 'rolled-back' ? undefined : phase);
    this.reporter.touch();
  }
}
