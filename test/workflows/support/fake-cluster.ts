/**
 * A simulated pair of clusters behind FerryActivities, for workflow tests: the workflows' decisions and
 * ordering are under test, not Kubernetes. The simulation keeps what the activities would change —
 * objects (destination namespace and PVCs, endpoint, server, client pods), source workloads' replicas,
 * the data version of each PVC on both sides — and follows the contract's rules: every activity is
 * idempotent (an existing object is adopted, never created twice) and failures are ApplicationFailures
 * typed with FailureType.
 *
 * Data model: each source PVC has a `version` that its running applications bump while a sync copies
 * it (writes during the transfer); a sync copies the version it started with. So the destination ends
 * equal to the source only if the final sync ran with the applications quiesced.
 *
 * Every activity start/completion/failure and every object created/adopted/deleted is appended to a
 * journal. With `dir`, the cluster state lives in <dir>/cluster.json and the journal in
 * <dir>/journal.jsonl, so that several worker processes share one simulated cluster, at the same time
 * too: every read-modify-write of the state holds <dir>/cluster.lock (see lockState).
 */
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { isWorkerShutdown } from '../../../src/activities/shutdown';
import { type FerryActivities, type TransferRequest } from '../../../src/activities/contract';
import { FailureType, type FailureTypeName, type NamespaceDiscovery, type PreflightProblem, type QuiesceRecord, type TransferResult, type WorkloadRef, type ClusterSide } from '../../../src/core/types';
import type { FerryObjectGroup, MigrationClusters } from '../../../src/migration/leftovers';
import { migrationKey } from '../../../src/statetransfer/names';
import { describeNamespaceWorkflow } from '../../../src/temporal/namespace-workflows';

/** The source cluster to simulate: namespace → its PVCs (name, size), the workloads mounting them, and
 * pods Ferry cannot quiesce (bare pods, or with `owner`, pods an unknown controller recreates). */
export type SourceSpec = Record<
  string,
  { pvcs: { name: string; bytes: number; nodeName?: string }[]; workloads?: { name: string; replicas: number }[]; pods?: FakePod[]; pendingRollouts?: { workload: string; detail: string }[] }
>;

/** A pod Ferry cannot quiesce. With `owner` its controller recreates it when deleted. */
export interface FakePod {
  name: string;
  pvcs: string[];
  owner?: string;
}

export interface FakeClusterOptions {
  source: SourceSpec;
  /** Duration of one simulated sync, ms. Default 50. */
  transferMs?: number;
  /** Duration of one simulated sync by its request (in-process only), ms; overrides transferMs. */
  transferMsFor?: (req: TransferRequest) => number;
  /** Heartbeat period during a sync, ms. Default 20. */
  heartbeatMs?: number;
  /** How long waitForQuiesced waits for pods to terminate, ms (heartbeating). Default 0. */
  quiesceWaitMs?: number;
  /** File-backed state and journal (shared between processes). */
  dir?: string;
}

/** One journal line. */
export interface JournalEntry {
  seq: number;
  pid: number;
  event: 'start' | 'complete' | 'fail' | 'create' | 'adopt' | 'delete' | 'progress';
  activity?: string;
  /** Workflow id, run id and activity id of the activity (unique per scheduled activity). */
  activityKey?: string;
  attempt?: number;
  object?: string;
  detail?: string;
}

/** A scripted failure of runTransfer. */
export interface TransferFailureScript {
  namespace: string;
  pvc: string;
  /** Only syncs with this `final` flag (default: any). */
  final?: boolean;
  /** How many attempts fail (each activity attempt consumes one). */
  times: number;
  type: FailureTypeName;
  message?: string;
}

/** A scripted partial result of runTransfer (rsync exit 23: some files could not be read). */
export interface TransferPartialScript {
  namespace: string;
  pvc: string;
  /** Only syncs with this `final` flag (default: any). */
  final?: boolean;
  /** How many syncs end partial. */
  times: number;
  failedFiles: string[];
}

interface ClusterState {
  /** Objects by key "<side>/<kind>/<namespace>/<name>" → migration id. */
  objects: Record<string, string>;
  /** Source workloads "<namespace>/<name>" → current replicas, and the annotation quiesce leaves. */
  workloads: Record<string, { replicas: number; preQuiesceReplicas?: number }>;
  /** Data version per PVC "<namespace>/<pvc>". */
  data: Record<string, { source: number; destination: number }>;
  /** Remaining scripted transfer failures. */
  failures: TransferFailureScript[];
  /** Cutover marks of destination PVCs "destination/pvc/<ns>/<name>" → migration id (after a final sync). */
  cutover?: Record<string, string>;
  /** Pods Ferry cannot quiesce, per namespace (they write to the PVCs they mount). */
  pods?: Record<string, FakePod[]>;
  /** Remaining scripted partial results (absent in state files of older runs). */
  partials?: TransferPartialScript[];
  /** Source PVCs created after the start (see addPVC), per namespace. */
  addedPVCs?: Record<string, { name: string; bytes: number; nodeName?: string }[]>;
  /** Namespaces where a quiesced StatefulSet's retention policy was set back to Delete (see revertRetention). */
  retentionReverted?: string[];
  seq: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether a process with this pid exists. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class FakeCluster {
  readonly journalInMemory: JournalEntry[] = [];
  /** Each cleanup activity's namespace and the downtime it was given (seconds), in call order. */
  readonly downtimeAtCleanup: { namespace: string | undefined; seconds: number | undefined }[] = [];
  /** Transfers running now, and the most that ever ran at once. */
  runningTransfers = 0;
  maxConcurrentTransfers = 0;
  /** Transfers running now per source node (PVCs with a nodeName), and the most that ever ran at once on each. */
  runningByNode: Record<string, number> = {};
  maxConcurrentByNode: Record<string, number> = {};
  /** Preflight answers these problems. */
  preflightProblems: PreflightProblem[] = [];
  /** runTransfer keeps heartbeating without finishing while this returns true (or until cancelled). */
  hold: (req: TransferRequest) => boolean = () => false;
  /** unquiesce fails (non-retryable) with this message for workloads of these namespaces. */
  unquiesceFailsIn: { namespaces: string[]; message: string } | undefined;
  private st: ClusterState;

  constructor(private readonly opts: FakeClusterOptions) {
    const file = opts.dir && join(opts.dir, 'cluster.json');
    if (file && existsSync(file)) {
      this.st = JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
      return;
    }
    this.st = { objects: {}, workloads: {}, data: {}, failures: [], pods: {}, seq: 0 };
    for (const [ns, spec] of Object.entries(opts.source)) {
      this.st.pods![ns] = [...(spec.pods ?? [])];
      for (const w of spec.workloads ?? []) this.st.workloads[`${ns}/${w.name}`] = { replicas: w.replicas };
      for (const p of spec.pvcs) {
        this.st.data[`${ns}/${p.name}`] = { source: 1, destination: 0 };
        this.st.objects[`source/pvc/${ns}/${p.name}`] = '';
      }
    }
    this.save();
  }

  // ------------------------------------------------------------------ inspection

  /** The journal (from the file in file-backed mode). */
  journal(): JournalEntry[] {
    if (!this.opts.dir) return this.journalInMemory;
    const file = join(this.opts.dir, 'journal.jsonl');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as JournalEntry);
  }

  /** Activity names in the order they started (first attempts only, unless `allAttempts`). */
  activityOrder(opts: { allAttempts?: boolean; namespace?: string } = {}): string[] {
    return this.journal()
      .filter((e) => e.event === 'start' && (opts.allAttempts || e.attempt === 1) && (!opts.namespace || e.detail?.split(' ')[0] === opts.namespace))
      .map((e) => e.activity!);
  }

  /** Whether an object exists ("destination/pvc/shop/data"). */
  has(key: string): boolean {
    return this.reload().objects[key] !== undefined;
  }

  /** Object keys with this prefix. */
  objectsUnder(prefix: string): string[] {
    return Object.keys(this.reload().objects).filter((k) => k.startsWith(prefix));
  }

  replicas(namespace: string, workload: string): number {
    return this.reload().workloads[`${namespace}/${workload}`]!.replicas;
  }

  /** The migration whose cutover mark the destination PVC `namespace/pvc` carries, if any. */
  cutoverMark(namespace: string, pvc: string): string | undefined {
    return this.reload().cutover?.[`destination/pvc/${namespace}/${pvc}`];
  }

  data(namespace: string, pvc: string): { source: number; destination: number } {
    return this.reload().data[`${namespace}/${pvc}`]!;
  }

  /** Puts an object in a cluster, owned by `owner` (another migration, or '' for the users'). */
  seed(key: string, owner = ''): void {
    this.reload().objects[key] = owner;
    this.save();
  }

  /** Adds a pod Ferry cannot quiesce (e.g. while the migration runs). */
  addPod(namespace: string, pod: FakePod): void {
    const st = this.reload();
    (st.pods ??= {})[namespace] = [...(st.pods[namespace] ?? []), pod];
    this.save();
    this.log({ event: 'create', object: `source/pod/${namespace}/${pod.name}` });
  }

  /** Pods Ferry cannot quiesce in a namespace now. */
  pods(namespace: string): FakePod[] {
    return this.reload().pods?.[namespace] ?? [];
  }

  /** Adds a source workload mounting every PVC of the namespace (e.g. created during a warm migration). */
  addWorkload(namespace: string, name: string, replicas: number): void {
    this.reload().workloads[`${namespace}/${name}`] = { replicas };
    this.save();
  }

  /** Adds a source PVC the namespace's selection matches (e.g. a StatefulSet scaled up during a warm migration). */
  addPVC(namespace: string, pvc: { name: string; bytes: number }): void {
    const st = this.reload();
    (st.addedPVCs ??= {})[namespace] = [...(st.addedPVCs[namespace] ?? []), pvc];
    st.data[`${namespace}/${pvc.name}`] = { source: 1, destination: 0 };
    st.objects[`source/pvc/${namespace}/${pvc.name}`] = '';
    this.save();
    this.log({ event: 'create', object: `source/pvc/${namespace}/${pvc.name}` });
  }

  /** An operator sets a quiesced StatefulSet's retention policy back to Delete: checkSourceWriters
   * with `retentionGuard` then fails (FerryConfig), as src/migration/writers.ts does. */
  revertRetention(namespace: string): void {
    const st = this.reload();
    st.retentionReverted = [...(st.retentionReverted ?? []), namespace];
    this.save();
  }

  /** Scripts partial results (exit 23) of runTransfer. */
  partialTransfer(script: TransferPartialScript): void {
    const st = this.reload();
    (st.partials ??= []).push(script);
    this.save();
  }

  /** Scripts failures of runTransfer. */
  /** Every runTransfer request: the PVC, final or stage, and the member snapshot it was given (in-process only). */
  readonly transferSources: { pvc: string; final: boolean; fromSnapshot?: string; keepAgent?: boolean }[] = [];
  /** Hook name → runs that still fail (in-process only). */
  readonly failingHooks = new Map<string, number>();
  /** Every runHook call: the hook, the namespace, the source workloads' replicas at that moment. */
  readonly hookRuns: { hook: string; namespace: string; sourceReplicas: number[] }[] = [];
  /** Endpoint types whose connectivity probe fails (in-process only). */
  readonly unreachableEndpointTypes = new Set<string>();
  /** The endpoint type createEndpoint chose last, by source namespace (in-process only). */
  readonly endpointInUse = new Map<string, string>();
  /** Destination PVCs whose pods checkDestination finds not Ready (in-process only). */
  readonly destinationNotReady = new Set<string>();
  /** Every checkDestination call: the destination namespace and its claims (in-process only). */
  readonly destinationChecks: { namespace: string; claims: { name: string; expected: boolean }[] }[] = [];

  failTransfer(script: TransferFailureScript): void {
    this.reload().failures.push(script);
    this.save();
  }

  // ------------------------------------------------------------------ the activities

  activities(): FerryActivities {
    return {
      discoverNamespace: (ctx) =>
        this.activity('discoverNamespace', ctx.namespace.source, async () => {
          const spec = this.opts.source[ctx.namespace.source];
          if (!spec) throw ApplicationFailure.nonRetryable(`namespace ${ctx.namespace.source} not found in the source cluster`, FailureType.Preflight);
          const st = this.reload();
          const workloads: WorkloadRef[] = Object.keys(st.workloads)
            .filter((k) => k.startsWith(`${ctx.namespace.source}/`))
            .map((k) => ({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: ctx.namespace.source, name: k.split('/')[1]! }));
          const unmanagedPods = (st.pods?.[ctx.namespace.source] ?? []).map((p) => ({ ...p }));
          const d: NamespaceDiscovery = {
            sourceNamespace: ctx.namespace.source,
            destinationNamespace: ctx.namespace.destination,
            workloads,
            ...(unmanagedPods.length ? { unmanagedPods } : {}),
            ...(spec.pendingRollouts ? { pendingRollouts: spec.pendingRollouts.map((r) => ({ workload: workloads.find((w) => w.name === r.workload)!, detail: r.detail })) } : {}),
            pvcs: [...spec.pvcs, ...(st.addedPVCs?.[ctx.namespace.source] ?? [])].map((p) => ({
              name: p.name,
              // keepPVCNames: a temporary destination claim, as discovery names it (migration/rebind.ts)
              destinationName: ctx.plan.keepPVCNames ? `${p.name}-new` : p.name,
              capacity: `${p.bytes}`,
              capacityBytes: p.bytes,
              accessModes: ['ReadWriteOnce'],
              destinationAccessModes: ['ReadWriteOnce'],
              volumeMode: 'Filesystem',
              usedBy: workloads,
              ...(p.nodeName !== undefined ? { nodeName: p.nodeName } : {}),
            })),
          };
          return d;
        }),
      preflight: (input) =>
        this.activity('preflight', '', async () => {
          const objects = this.reload().objects;
          const taken = input.discoveries.flatMap((d) =>
            d.pvcs
              .filter((p) => {
                const owner = objects[`destination/pvc/${d.destinationNamespace}/${p.destinationName}`];
                return owner !== undefined && owner !== input.migrationId;
              })
              .map((p) => ({ subject: `pvc ${d.destinationNamespace}/${p.destinationName}`, message: 'already exists in the destination cluster and was not created by this migration' })),
          );
          // As src/migration/preflight.ts cutoverMarkProblem.
          const marks = this.reload().cutover ?? {};
          const marked = input.plan.overwriteCutoverPVCs
            ? []
            : input.discoveries.flatMap((d) =>
                d.pvcs
                  .filter((p) => marks[`destination/pvc/${d.destinationNamespace}/${p.destinationName}`] !== undefined)
                  .map((p) => ({ subject: `pvc ${d.destinationNamespace}/${p.destinationName}`, message: `was cut over by migration ${marks[`destination/pvc/${d.destinationNamespace}/${p.destinationName}`]}` })),
              );
          return [...taken, ...marked, ...this.preflightProblems];
        }),
      prepareDestination: (input) =>
        this.activity('prepareDestination', input.namespace.source, async () => {
          const ns = input.namespace.destination;
          const createdNamespace = this.create(`destination/namespace/${ns}/${ns}`, input.migrationId);
          const createdPVCs = input.discovery.pvcs.filter((p) => this.create(`destination/pvc/${ns}/${p.destinationName}`, input.migrationId)).map((p) => p.destinationName);
          return { createdNamespace, createdPVCs };
        }),
      createEndpoint: (ctx) =>
        this.activity('createEndpoint', ctx.namespace.source, async () => {
          this.create(`destination/endpoint/${ctx.namespace.destination}/ferry-endpoint`, ctx.migrationId);
          const exclude = ctx.exclude ?? [];
          const type = ctx.plan.endpoint.type === 'auto' ? ['LoadBalancer', 'NodePort'].find((t) => !exclude.includes(t)) : ctx.plan.endpoint.type;
          if (!type) throw ApplicationFailure.nonRetryable(`endpoint auto: every type was tried and failed the connectivity probe (${exclude.join(', ')})`, FailureType.Config);
          this.endpointInUse.set(ctx.namespace.source, type);
          const port = type === 'NodePort' ? 31000 : 443;
          return { host: `endpoint.${ctx.namespace.destination}.example`, port, chosen: { type, reason: exclude.length ? `simulated: ${exclude.join(', ')} failed` : `simulated: ${ctx.plan.endpoint.type}` } };
        }),
      createServer: (input) =>
        this.activity('createServer', input.namespace.source, async () => {
          this.create(`destination/server/${input.namespace.destination}/ferry-server`, input.migrationId);
        }),
      probeConnectivity: (input) =>
        this.activity('probeConnectivity', input.namespace.source, async () => {
          if (!this.has(`destination/server/${input.namespace.destination}/ferry-server`)) {
            throw ApplicationFailure.retryable('transfer server not reachable', FailureType.Transient);
          }
          const type = this.endpointInUse.get(input.namespace.source) ?? '';
          if (this.unreachableEndpointTypes.has(type)) {
            throw ApplicationFailure.nonRetryable(`no route from the source cluster to the endpoint ${input.address.host}:${input.address.port} (simulated for ${type})`, FailureType.Transient);
          }
        }),
      runTransfer: (req) =>
        this.activity('runTransfer', `${req.namespace.source} ${req.pvc.name} pass=${req.pass} final=${req.final}`, () => {
          this.transferSources.push({ pvc: req.pvc.name, final: req.final, ...(req.fromSnapshot !== undefined ? { fromSnapshot: req.fromSnapshot } : {}), ...(req.keepAgent !== undefined ? { keepAgent: req.keepAgent } : {}) });
          return this.transfer(req);
        }),
      prepareGroupSnapshot: (input) =>
        this.activity('prepareGroupSnapshot', `${input.namespace.source} pass=${input.pass}`, async () => Object.fromEntries(input.pvcs.map((p) => [p, `group-${input.pass}-${p}`]))),
      releaseGroupSnapshot: (input) => this.activity('releaseGroupSnapshot', input.namespace.source, async () => undefined),
      prepareHeldGroupSnapshot: (input) =>
        this.activity('prepareHeldGroupSnapshot', `${input.namespace.source} pass=${input.pass} hooks=${input.hooks.join(',')}`, async () => {
          const hooks = input.hooks.map((name) => {
            const hook = input.plan.hooks.find((h) => h.name === name)!;
            const failing = this.failingHooks.get(name) ?? 0;
            if (failing > 0) this.failingHooks.set(name, failing - 1);
            this.hookRuns.push({ hook: name, namespace: input.namespace.source, sourceReplicas: [] });
            return { name, phase: hook.phase, cluster: 'source' as const, namespace: input.namespace.source, ok: failing === 0, ...(failing > 0 ? { message: `the command did not reach \${FERRY_WAIT} within 300 s in pod ${input.namespace.source}/db-0 (simulated)` } : {}), pods: [{ pod: 'db-0', exitCode: 0, outputTail: 'held\n' }], seconds: 0.01 };
          });
          const fatal = hooks.some((r, i) => !r.ok && input.plan.hooks.find((h) => h.name === input.hooks[i])!.onError !== 'continue');
          return { members: fatal ? {} : Object.fromEntries(input.pvcs.map((p) => [p, `group-${input.pass}-${p}`])), hooks };
        }),
      runHook: (input) =>
        this.activity('runHook', `${input.namespace.source} ${input.hook}`, async () => {
          const hook = input.plan.hooks.find((h) => h.name === input.hook)!;
          const inDestination = (hook.cluster ?? (hook.phase === 'postCutover' ? 'destination' : 'source')) === 'destination';
          const failing = this.failingHooks.get(input.hook) ?? 0;
          if (failing > 0) this.failingHooks.set(input.hook, failing - 1);
          // The state of the source workloads when the hook ran (a preQuiesce hook sees them running).
          const st = this.reload();
          const replicas = Object.entries(st.workloads).filter(([k]) => k.startsWith(`${input.namespace.source}/`)).map(([, w]) => w.replicas);
          this.hookRuns.push({ hook: input.hook, namespace: input.namespace.source, sourceReplicas: replicas });
          return {
            name: hook.name,
            phase: hook.phase,
            cluster: inDestination ? 'destination' : 'source',
            namespace: inDestination ? input.namespace.destination : input.namespace.source,
            ok: failing === 0,
            ...(failing > 0 ? { message: `exited 3 in pod ${input.namespace.source}/db-0 (container db): simulated` } : {}),
            pods: [{ pod: 'db-0', exitCode: failing > 0 ? 3 : 0, outputTail: 'flushed\n' }],
            seconds: 0.01,
          };
        }),
      rebindPVCs: (input) =>
        this.activity('rebindPVCs', input.namespace.source, async () => input.pvcs.map((p) => ({ pvc: p.name, newVolume: `pv-${p.temporary}`, oldVolume: `pv-${p.name}` }))),
      checkDestination: (input) =>
        this.activity('checkDestination', input.namespace.source, async () => {
          this.destinationChecks.push({ namespace: input.namespace.destination, claims: input.claims });
          const pvcs = input.claims.map((c) => {
            const ready = !this.destinationNotReady.has(c.name);
            return { pvc: c.name, expected: c.expected, pods: [{ name: `${c.name}-app-0`, ready, state: ready ? 'Ready' : 'Waiting: CrashLoopBackOff' }], ready };
          });
          const bad = pvcs.filter((p) => p.expected && !p.ready);
          return { namespace: input.namespace.destination, ok: bad.length === 0, pvcs, seconds: 0.01, message: bad.length ? `not Ready after 600 s: ${bad.map((p) => `${p.pvc}: ${p.pods[0]!.name} ${p.pods[0]!.state}`).join('; ')}` : `${pvcs.length} PVC(s) mounted by Ready pods` };
        }),
      quiesce: (input) =>
        this.activity('quiesce', input.workloads[0]?.namespace ?? '', async () => {
          const st = this.reload();
          const records: QuiesceRecord[] = input.workloads.map((w) => {
            const cur = st.workloads[`${w.namespace}/${w.name}`]!;
            // Idempotent: the annotation keeps the prior replicas of an already quiesced workload.
            const prior = cur.preQuiesceReplicas ?? cur.replicas;
            cur.preQuiesceReplicas = prior;
            cur.replicas = 0;
            return { workload: w, replicas: prior, changed: prior !== 0 };
          });
          this.save();
          return records;
        }),
      checkSourceWriters: (input) =>
        this.activity('checkSourceWriters', `${input.namespace.source} delete=${input.deleteUnmanaged}`, async () => {
          const ns = input.namespace.source;
          if (input.retentionGuard && this.reload().retentionReverted?.includes(ns)) {
            throw ApplicationFailure.nonRetryable(`StatefulSet ${ns}/db: its persistentVolumeClaimRetentionPolicy is {"whenScaled":"Delete"} again while Ferry holds it quiesced`, FailureType.Config);
          }
          const mounting = (p: FakePod) => p.pvcs.some((c) => input.pvcs.includes(c));
          const deleted: string[] = [];
          if (input.deleteUnmanaged) {
            const st = this.reload();
            const doomed = (st.pods?.[ns] ?? []).filter(mounting);
            // A pod with an owner is recreated by its controller.
            st.pods![ns] = (st.pods?.[ns] ?? []).filter((p) => !mounting(p) || p.owner !== undefined);
            this.save();
            for (const p of doomed) {
              deleted.push(p.name);
              this.log({ event: 'delete', object: `source/pod/${ns}/${p.name}` });
            }
          }
          const st = this.reload();
          const running = Object.entries(st.workloads)
            .filter(([k, w]) => k.startsWith(`${ns}/`) && w.replicas > 0)
            .map(([k]) => ({ name: `${k.split('/')[1]}-0`, pvcs: [...input.pvcs], owner: `Deployment ${k} (not quiesced)` }));
          return { pods: [...(st.pods?.[ns] ?? []).filter(mounting), ...running], deleted };
        }),
      waitForQuiesced: (input) =>
        this.activity('waitForQuiesced', input.workloads[0]?.namespace ?? '', async () => {
          const ctx = Context.current();
          for (let waited = 0; waited < (this.opts.quiesceWaitMs ?? 0); waited += 100) {
            ctx.heartbeat();
            await Promise.race([sleep(100), ctx.cancelled]);
          }
          const st = this.reload();
          if (input.workloads.some((w) => st.workloads[`${w.namespace}/${w.name}`]!.replicas !== 0)) {
            throw ApplicationFailure.retryable('pods still running', FailureType.Transient);
          }
        }),
      releaseAgents: (ctx) => this.activity('releaseAgents', ctx.namespace.source, async () => ({ released: 0 })),
      unquiesce: (input) =>
        this.activity('unquiesce', input.records[0]?.workload.namespace ?? '', async () => {
          const failing = this.unquiesceFailsIn;
          if (failing && input.records.some((r) => failing.namespaces.includes(r.workload.namespace))) {
            throw ApplicationFailure.nonRetryable(failing.message, FailureType.Auth);
          }
          const st = this.reload();
          for (const r of input.records) {
            const cur = st.workloads[`${r.workload.namespace}/${r.workload.name}`]!;
            if (r.changed && cur.replicas === 0) cur.replicas = r.replicas ?? 1;
            delete cur.preQuiesceReplicas;
          }
          this.save();
        }),
      cleanup: (input) =>
        this.activity('cleanup', input.namespace?.source ?? '', async () => {
          this.downtimeAtCleanup.push({ namespace: input.namespace?.source, seconds: input.downtimeSeconds });
          const ns = input.namespace;
          const doomed = Object.entries(this.reload().objects)
            .filter(([k, owner]) => owner === input.migrationId && /^(source|destination)\/(endpoint|server|client)\//.test(k))
            .filter(([k]) => !ns || k.split('/')[2] === ns.source || k.split('/')[2] === ns.destination)
            .map(([k]) => k);
          for (const k of doomed) this.delete(k);
          if (input.clearCutoverMarks) {
            const st = this.reload();
            for (const [k, by] of Object.entries(st.cutover ?? {})) {
              if (by === input.migrationId && (!ns || k.split('/')[2] === ns.destination)) delete st.cutover![k];
            }
            this.save();
          }
          return {
            source: doomed.filter((k) => k.startsWith('source/')).length,
            destination: doomed.filter((k) => k.startsWith('destination/')).length,
            remaining: 0,
          };
        }),
      deleteDestinationPVCs: (input) =>
        this.activity('deleteDestinationPVCs', input.namespace.source, async () => {
          for (const p of input.pvcs) {
            const key = `destination/pvc/${input.namespace.destination}/${p}`;
            if (this.reload().objects[key] === input.migrationId) this.delete(key);
          }
        }),
      copyImages: (ctx) =>
        this.activity('copyImages', ctx.namespace.source, async () => ({
          copied: [{ source: `src/${ctx.namespace.source}/app:1`, destination: `dst/${ctx.namespace.destination}/app:1`, digest: 'sha256:0' }],
          skipped: [],
        })),
      // Not simulated: Temporal itself is real in the workflow tests (the worker's own client).
      describeNamespaceWorkflows: (input) =>
        this.activity('describeNamespaceWorkflows', '', async () => {
          const client = Context.current().client;
          const out = [];
          for (const id of input.workflowIds) out.push(await describeNamespaceWorkflow(client, id));
          return out;
        }),
    };
  }

  // ------------------------------------------------------------------ `ferry cleanup`

  /** The simulated clusters as `ferry cleanup` sees them (src/migration/leftovers.ts MigrationClusters). */
  clusters(): MigrationClusters {
    const transferObject = /^(source|destination)\/(endpoint|server|client)\//;
    return {
      ferryObjects: async () => {
        const groups = new Map<string, FerryObjectGroup>();
        for (const [k, owner] of Object.entries(this.reload().objects)) {
          if (!owner || !transferObject.test(k)) continue;
          const [side, , namespace] = k.split('/') as [ClusterSide, string, string];
          const id = `${side}/${namespace}/${owner}`;
          const g = groups.get(id) ?? { key: migrationKey(owner), side, namespace, count: 0 };
          g.count++;
          groups.set(id, g);
        }
        return [...groups.values()];
      },
      cleanup: async (migrationId, plan, clearCutoverMarksIn = []) => {
        const sources = plan.namespaces.map((n) => n.source);
        const destinations = plan.namespaces.map((n) => n.destination);
        const doomed = Object.entries(this.reload().objects)
          .filter(([k, owner]) => owner === migrationId && transferObject.test(k))
          .filter(([k]) => (k.startsWith('source/') ? sources : destinations).includes(k.split('/')[2]!))
          .map(([k]) => k);
        for (const k of doomed) this.delete(k);
        const st = this.reload();
        const cutoverMarksCleared: string[] = [];
        for (const [k, by] of Object.entries(st.cutover ?? {})) {
          if (by === migrationId && clearCutoverMarksIn.includes(k.split('/')[2]!)) {
            delete st.cutover![k];
            cutoverMarksCleared.push(k.split('/').slice(2).join('/'));
          }
        }
        this.save();
        this.log({ event: 'complete', activity: 'ferry cleanup', detail: migrationId });
        return { ...(cutoverMarksCleared.length ? { cutoverMarksCleared } : {}), source: doomed.filter((k) => k.startsWith('source/')).length, destination: doomed.filter((k) => k.startsWith('destination/')).length, remaining: 0 };
      },
      restoreQuiesced: async (_migrationId, plan, leave) => {
        const out = { restored: [] as string[], notes: [] as string[] };
        const st = this.reload();
        for (const n of plan.namespaces) {
          const why = leave.get(n.source);
          if (why !== undefined) {
            out.notes.push(`namespace ${n.source}: ${why}`);
            continue;
          }
          for (const [key, w] of Object.entries(st.workloads)) {
            if (!key.startsWith(`${n.source}/`) || w.preQuiesceReplicas === undefined) continue;
            if (w.replicas === 0) w.replicas = w.preQuiesceReplicas;
            delete w.preQuiesceReplicas;
            out.restored.push(`Deployment ${key}`);
          }
        }
        this.save();
        return out;
      },
    };
  }

  // ------------------------------------------------------------------ internals

  private async transfer(req: TransferRequest): Promise<TransferResult> {
    const ns = req.namespace.source;
    const server = `destination/server/${req.namespace.destination}/ferry-server`;
    if (!this.has(server)) throw ApplicationFailure.retryable(`no transfer server in ${req.namespace.destination}`, FailureType.Transient);
    const st = this.reload();
    const script = st.failures.find((f) => f.namespace === ns && f.pvc === req.pvc.name && (f.final === undefined || f.final === req.final) && f.times > 0);
    if (script) {
      script.times--;
      this.save();
      throw ApplicationFailure.create({ type: script.type, message: script.message ?? `simulated ${script.type} on ${ns}/${req.pvc.name}`, nonRetryable: false });
    }
    const dataKey = `${ns}/${req.pvc.name}`;
    const startVersion = st.data[dataKey]!.source;
    // The client pod's name carries the sync number: an activity retry re-attaches to it.
    const pod = `source/client/${ns}/${req.pvc.name}-${req.pass}`;
    this.create(pod, req.migrationId);
    this.runningTransfers++;
    this.maxConcurrentTransfers = Math.max(this.maxConcurrentTransfers, this.runningTransfers);
    const node = req.pvc.nodeName;
    if (node !== undefined) {
      this.runningByNode[node] = (this.runningByNode[node] ?? 0) + 1;
      this.maxConcurrentByNode[node] = Math.max(this.maxConcurrentByNode[node] ?? 0, this.runningByNode[node]!);
    }
    const ctx = Context.current();
    const total = req.pvc.capacityBytes;
    const started = Date.now();
    const duration = this.opts.transferMsFor?.(req) ?? this.opts.transferMs ?? 50;
    try {
      for (;;) {
        const elapsed = Date.now() - started;
        const bytes = Math.min(total, Math.round((total * elapsed) / duration));
        ctx.heartbeat({ bytes, totalBytes: total, percent: Math.round((100 * bytes) / total) });
        if (elapsed >= duration && !this.hold(req)) break;
        if (this.opts.dir) this.log({ event: 'progress', activity: 'runTransfer', detail: `${dataKey} ${bytes}` });
        await Promise.race([sleep(this.opts.heartbeatMs ?? 20), ctx.cancelled]);
      }
    } catch (err) {
      // As the real runTransfer: a worker shutting down leaves the client pod for the next attempt to
      // re-attach to; a real cancellation deletes it.
      if (err instanceof CancelledFailure && !isWorkerShutdown(ctx)) this.delete(pod);
      throw err;
    } finally {
      this.runningTransfers--;
      if (node !== undefined) this.runningByNode[node]!--;
    }
    const after = this.reload();
    after.data[dataKey]!.destination = startVersion;
    if (req.final) (after.cutover ??= {})[`destination/pvc/${req.namespace.destination}/${req.pvc.destinationName}`] = req.migrationId;
    // Applications that still run kept writing while the sync copied.
    const writers = [
      ...Object.entries(after.workloads).filter(([k, w]) => k.startsWith(`${ns}/`) && w.replicas > 0),
      ...(after.pods?.[ns] ?? []).filter((p) => p.pvcs.includes(req.pvc.name)),
    ];
    if (writers.length > 0) after.data[dataKey]!.source = startVersion + 1;
    this.save();
    this.delete(pod);
    const partial = after.partials?.find((f) => f.namespace === ns && f.pvc === req.pvc.name && (f.final === undefined || f.final === req.final) && f.times > 0);
    if (partial) {
      partial.times--;
      this.save();
      return {
        exitCode: 23,
        outcome: 'partial',
        bytesSent: total,
        failedFiles: partial.failedFiles,
        message: `rsync exit 23 (Partial transfer due to error): Some files or attributes were not transferred. Files: ${partial.failedFiles.join(', ')}. The client runs as uid 65532 and cannot read these files: use security mode preserve-ownership, or set security.runAsUser/runAsGroup (or fsGroup) to the workload's ids.`,
        durationSeconds: (Date.now() - started) / 1000,
      };
    }
    return { exitCode: 0, outcome: 'success', bytesSent: total, totalFileSize: total, message: 'ok', durationSeconds: (Date.now() - started) / 1000 };
  }

  /** Runs one activity, journaling its start and end. */
  private async activity<T>(name: string, detail: string, fn: () => Promise<T>): Promise<T> {
    const info = Context.current().info;
    const activityKey = `${info.workflowExecution?.workflowId}|${info.workflowExecution?.runId}|${info.activityId}`;
    this.log({ event: 'start', activity: name, activityKey, attempt: info.attempt, detail });
    try {
      const r = await fn();
      this.log({ event: 'complete', activity: name, activityKey, attempt: info.attempt, detail });
      return r;
    } catch (err) {
      this.log({ event: 'fail', activity: name, activityKey, attempt: info.attempt, detail: `${detail} ${(err as Error).message}` });
      throw err;
    }
  }

  /** Creates an object unless it exists; returns whether it was created. */
  private create(key: string, migrationId: string): boolean {
    const st = this.reload();
    if (st.objects[key] !== undefined) {
      this.log({ event: 'adopt', object: key });
      return false;
    }
    st.objects[key] = migrationId;
    this.save();
    this.log({ event: 'create', object: key });
    return true;
  }

  private delete(key: string): void {
    const st = this.reload();
    if (st.objects[key] === undefined) return;
    delete st.objects[key];
    this.save();
    this.log({ event: 'delete', object: key });
  }

  private log(e: Omit<JournalEntry, 'seq' | 'pid'>): void {
    const st = this.reload();
    const entry: JournalEntry = { seq: ++st.seq, pid: process.pid, ...e };
    this.save();
    if (this.opts.dir) appendFileSync(join(this.opts.dir, 'journal.jsonl'), JSON.stringify(entry) + '\n');
    else this.journalInMemory.push(entry);
  }

  /** In file-backed mode, re-reads the state (another process may have changed it). */
  private reload(): ClusterState {
    if (this.opts.dir) {
      this.lockState();
      this.st = JSON.parse(readFileSync(join(this.opts.dir, 'cluster.json'), 'utf8')) as ClusterState;
    }
    return this.st;
  }

  private save(): void {
    if (!this.opts.dir) return;
    this.lockState();
    const file = join(this.opts.dir, 'cluster.json');
    writeFileSync(`${file}.${process.pid}.tmp`, JSON.stringify(this.st));
    renameSync(`${file}.${process.pid}.tmp`, file);
  }

  private stateLocked = false;

  /**
   * File-backed mode, several worker processes at once: takes <dir>/cluster.lock (O_EXCL, holder pid
   * inside) unless this process holds it, and releases it when the current synchronous section ends
   * (process.nextTick). Every reload()…save() sequence of this class is synchronous, so it runs under
   * one lock and no other process's write falls in between. A lock whose holder died (SIGKILLed
   * worker) is taken over. Blocks (1 ms sleeps) while another process holds it.
   */
  private lockState(): void {
    if (this.stateLocked) return;
    const file = join(this.opts.dir!, 'cluster.lock');
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
      try {
        const fd = openSync(file, 'wx');
        writeFileSync(fd, String(process.pid));
        closeSync(fd);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      try {
        const holder = readFileSync(file, 'utf8');
        const dead = holder === '' ? Date.now() - statSync(file).mtimeMs > 1000 : !processAlive(Number(holder));
        if (dead && readFileSync(file, 'utf8') === holder) unlinkSync(file);
      } catch {
        // released meanwhile
      }
      Atomics.wait(pause, 0, 0, 1);
    }
    this.stateLocked = true;
    process.nextTick(() => {
      this.stateLocked = false;
      try {
        unlinkSync(file);
      } catch {
        // taken over after a stall
      }
    });
  }
}
