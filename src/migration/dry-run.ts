/**
 * The dry run of a migration (issue 13 §5, `ferry plan -f plan.yaml`, `ferry migrate --dry-run`):
 * everything the migration would check and do, without doing it. Per namespace: discovery (the PVCs,
 * the workloads quiesce would scale down, the pods it could not stop), the preflight problems (the
 * same checks the migration workflow runs first), the endpoint type the destination would get and
 * why, the objects Ferry would create in each cluster, the images it would copy; per PVC the bytes and
 * files a first copy sends and the source's read rate, measured by a short read-only pod
 * (statetransfer/usage.ts), and from them a projected duration of the first copy.
 *
 * Touches nothing but the usage pods: each mounts its PVC read-only (pinned to the node of the pod
 * that mounts a ReadWriteOnce volume, as the warm agent would be), carries the migration's labels
 * (role `usage`; cleanup finds any that a crash left) and is deleted when read, whatever happened.
 * The plan is not started and no Temporal is needed.
 */
import type { KubernetesObject, V1Namespace, V1Pod, V1Service, V1StorageClass } from '@kubernetes/client-node';
import { errorMessage, FerryError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import type { NamespaceDiscovery, PreflightProblem, PVCInfo } from '../core/types';
import { imageReferencesOf, listPodTemplateObjects, discoverRepositories, registryHost } from '../images/discover';
import { planImageStreamCopies, registryLocation, type ImageStreamObject } from '../images';
import { waitFor, type KubeClient } from '../k8s/client';
import { sourceCopyMethodOf, type MigrationPlan, type NamespaceMapping } from '../plan/schema';
import type { TransferCredentials } from '../statetransfer/namespace-transfer';
import { objectLabels, objectName } from '../statetransfer/names';
import type { EndpointType } from '../statetransfer/types';
import { pointInTimeClaimName, snapshotName } from '../statetransfer/snapshot';
import { buildUsagePod, parseUsage, readRate, USAGE_CONTAINER, type VolumeUsage } from '../statetransfer/usage';
import { deletePodAndWait } from './client-run';
import { clientIdentity, namespaceTransferFor } from './compose';
import { discoverNamespace, isSingleNode } from './discovery';
import { AUTO_LOADBALANCER_SECONDS } from './endpoint';
import { diagnosePod, readLogTail, transferContainerState } from './follow';
import { runPreflight, type PreflightCluster } from './preflight';

/** Bytes of content each usage pod reads to measure the read rate (default of DryRunOptions.sampleBytes). */
export const DEFAULT_SAMPLE_BYTES = 256 * 1024 * 1024;
/** Usage pods running at once (default of DryRunOptions.measureConcurrency). */
export const DEFAULT_MEASURE_CONCURRENCY = 4;

/** Options of `dryRunMigration`. */
export interface DryRunOptions {
  /** Measure each PVC with a usage pod (default true); false: discovery and preflight only. */
  measure?: boolean;
  /** Bytes each usage pod reads for the read rate (default DEFAULT_SAMPLE_BYTES). */
  sampleBytes?: number;
  /** Usage pods at once (default DEFAULT_MEASURE_CONCURRENCY). */
  measureConcurrency?: number;
  /** Limit for one usage pod, seconds (default 900). */
  measureTimeoutSeconds?: number;
  signal?: AbortSignal;
  logger?: Logger;
}

/** An object Ferry would create. */
export interface PlannedObject {
  kind: string;
  name: string;
  namespace?: string;
  /** When and why it exists, if not for the whole migration. */
  note?: string;
}

/** The endpoint type a namespace would get, and why. */
export interface EndpointChoice {
  type: EndpointType;
  reason: string;
}

/** One PVC in the dry run. */
export interface PVCDryRun {
  name: string;
  destinationName: string;
  capacityBytes: number;
  storageClass?: string;
  destinationStorageClass?: string;
  accessModes: string[];
  destinationAccessModes: string[];
  volumeMode: string;
  /** The node a usage pod / agent is pinned to (a ReadWriteOnce volume in use). */
  nodeName?: string;
  /** "Kind name" of the workloads that mount it. */
  usedBy: string[];
  usage?: VolumeUsage;
  /** The source's read rate measured by the usage pod, bytes per second. */
  readBytesPerSecond?: number;
  /** Projected first copy at the read rate, seconds. */
  projectedSeconds?: number;
  /** Why it was not measured (or the measurement failed). */
  notMeasured?: string;
}

/** The images a namespace's migration would copy. */
export interface ImagesDryRun {
  mode: string;
  /** Registry mode: repositories (listed in the plan, else found in the pod templates); ImageStreams
   * mode: the image references of the tags to copy. */
  found: string[];
  /** Whether `found` comes from the plan's list (registry mode). */
  fromPlan: boolean;
  skipped: { source: string; reason: string }[];
}

/** One namespace in the dry run. */
export interface NamespaceDryRun {
  source: string;
  destination: string;
  sourceExists: boolean;
  destinationExists: boolean;
  pvcs: PVCDryRun[];
  /** "Kind name" of the workloads quiesce scales down (with quiesce on). */
  quiesce: string[];
  /** Pods that mount source PVCs and that Ferry cannot stop (see preflight). */
  unmanagedPods: string[];
  endpoint?: EndpointChoice;
  objects: { source: PlannedObject[]; destination: PlannedObject[] };
  images?: ImagesDryRun;
  /** Projected first copy of the namespace (PVCs `concurrency` at a time, longest first), seconds;
   * undefined when a PVC with data was not measured. */
  projectedSeconds?: number;
  notes: string[];
}

/** What `dryRunMigration` found. */
export interface DryRunReport {
  migrationId: string;
  /** Preflight's problems: the migration would refuse to start while any is left. */
  problems: PreflightProblem[];
  namespaces: NamespaceDryRun[];
  totals: { pvcs: number; bytes: number; files: number; measured: number };
  /** Projected first copy of the migration (namespaces run at once), seconds. */
  projectedSeconds?: number;
}

/** The two clusters of a dry run (a client, or why none could be built). */
export interface DryRunClusters {
  source: PreflightCluster;
  destination: PreflightCluster;
}

/**
 * Pure: the time to run `seconds` (one per PVC) `lanes` at a time, longest first (each next one on the
 * lane free first): the namespace's first copy if the PVCs' reads do not slow one another.
 */
export function scheduleSeconds(seconds: readonly number[], lanes: number): number {
  const free = new Array<number>(Math.max(1, Math.floor(lanes))).fill(0);
  for (const s of [...seconds].sort((a, b) => b - a)) {
    let i = 0;
    for (let k = 1; k < free.length; k++) if (free[k]! < free[i]!) i = k;
    free[i]! += s;
  }
  return Math.max(0, ...free);
}

/**
 * The endpoint type a migration would give a destination namespace, read-only: the plan's type; for
 * `auto`, Route on OpenShift, else LoadBalancer when the destination's existing LoadBalancer Services
 * show that a load-balancer controller assigns addresses, else NodePort when they show none does; with
 * no LoadBalancer Service to judge by, LoadBalancer (the migration tries it for
 * AUTO_LOADBALANCER_SECONDS and falls back to NodePort). The migration itself decides when it runs
 * (migration/endpoint.ts); this is the prediction.
 */
export async function predictEndpoint(destination: KubeClient, plan: Pick<MigrationPlan, 'endpoint'>): Promise<EndpointChoice> {
  if (plan.endpoint.type !== 'auto') return { type: plan.endpoint.type, reason: 'the plan names it (endpoint.type)' };
  if (await destination.hasApi('route.openshift.io/v1', 'Route')) return { type: 'Route', reason: 'auto: the destination serves route.openshift.io/v1 Route (OpenShift)' };
  let services: V1Service[];
  try {
    services = (await destination.list<V1Service>({ apiVersion: 'v1', kind: 'Service' })).filter((s) => s.spec?.type === 'LoadBalancer');
  } catch (err) {
    return { type: 'LoadBalancer', reason: `auto: Services of the destination not readable (${errorMessage(err)}); the migration tries LoadBalancer for ${AUTO_LOADBALANCER_SECONDS} s, then NodePort` };
  }
  const withAddress = services.filter((s) => (s.status?.loadBalancer?.ingress ?? []).length > 0);
  if (withAddress.length > 0) return { type: 'LoadBalancer', reason: `auto: ${withAddress.length} of the destination's ${services.length} LoadBalancer Services have an address, so a load-balancer controller assigns them` };
  if (services.length > 0) return { type: 'NodePort', reason: `auto: none of the destination's ${services.length} LoadBalancer Services has an address (no load-balancer controller); the migration waits ${AUTO_LOADBALANCER_SECONDS} s for one, then uses NodePort` };
  return { type: 'LoadBalancer', reason: `auto: no LoadBalancer Service in the destination tells whether a load-balancer controller runs; the migration tries LoadBalancer for ${AUTO_LOADBALANCER_SECONDS} s, then NodePort` };
}

/** Stand-in credentials for listing objects: the builders only place them into Secrets. */
const NO_CREDENTIALS: TransferCredentials = {
  certificates: { ca: { certPem: '', keyPem: '' }, server: { certPem: '', keyPem: '' }, client: { certPem: '', keyPem: '' }, notAfter: '' },
  password: 'dry-run-placeholder-password',
};

function planned(o: KubernetesObject, note?: string): PlannedObject {
  return { kind: o.kind ?? '?', name: o.metadata?.name ?? '?', ...(o.metadata?.namespace ? { namespace: o.metadata.namespace } : {}), ...(note ? { note } : {}) };
}

function dedupe(objects: PlannedObject[]): PlannedObject[] {
  const seen = new Set<string>();
  return objects.filter((o) => {
    const k = `${o.kind}/${o.namespace ?? ''}/${o.name}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * Pure: the objects a namespace's migration would create in each cluster, from its discovery, the
 * endpoint type and the plan (the same builders the activities use; see compose.ts).
 * @throws FerryError (config) for options the library refuses (preflight reports them too).
 */
export function plannedObjects(plan: MigrationPlan, migrationId: string, d: NamespaceDiscovery, type: EndpointType, destinationExists: boolean): { source: PlannedObject[]; destination: PlannedObject[] } {
  const mapping = { source: d.sourceNamespace, destination: d.destinationNamespace };
  const nt = namespaceTransferFor(plan, migrationId, mapping, d.pvcs, type);
  const address = { host: 'endpoint.invalid', port: 443 };
  const destination: PlannedObject[] = [
    ...(destinationExists ? [] : [{ kind: 'Namespace', name: d.destinationNamespace, note: 'created with the source namespace\'s labels; kept after the migration' }]),
    ...d.pvcs.map((p) => ({ kind: 'PersistentVolumeClaim', name: p.destinationName, namespace: d.destinationNamespace, note: 'kept after the migration' })),
    ...nt.endpoint.objects().map((o) => planned(o)),
    ...nt.destinationObjects(NO_CREDENTIALS).map((o) => planned(o)),
  ];
  const warm = (plan.agents ?? 'warm') === 'warm';
  const source: PlannedObject[] = [];
  for (const p of d.pvcs) {
    const objects = warm ? nt.agentObjects(p.name, address, NO_CREDENTIALS) : nt.sourceObjects(p.name, address, NO_CREDENTIALS, { final: false });
    objects.forEach((o, i) => source.push(planned(o, i === objects.length - 1 ? (warm ? 'warm agent, until its final sync (beyond maxAgents: a client pod per sync)' : 'a client pod per sync') : undefined)));
  }
  const method = sourceCopyMethodOf(plan, plan.namespaces.find((m) => m.source === d.sourceNamespace) ?? {});
  if (method !== 'direct') {
    const note = `for each stage sync (sourceCopyMethod ${method}), deleted after it`;
    for (const p of d.pvcs) {
      if (method === 'snapshot') source.push({ kind: 'VolumeSnapshot', name: snapshotName(migrationId, p.name), namespace: d.sourceNamespace, note: plan.groupSnapshot ? `${note}; a member of the pass's VolumeGroupSnapshot` : note });
      source.push({ kind: 'PersistentVolumeClaim', name: pointInTimeClaimName(migrationId, p.name), namespace: d.sourceNamespace, note });
    }
  }
  return { source: dedupe(source), destination: dedupe(destination) };
}

/**
 * The images a namespace's migration would copy, read-only (no registry is contacted: tags are listed
 * when the copy runs). Undefined when images are not enabled.
 */
export async function plannedImages(source: KubeClient, plan: MigrationPlan, mapping: Pick<NamespaceMapping, 'source' | 'destination'>): Promise<ImagesDryRun | undefined> {
  const im = plan.images;
  if (!im.enabled || !im.sourceRegistry || !im.destinationRegistry) return undefined;
  if (im.mode === 'imagestreams') {
    if (!(await source.hasApi('image.openshift.io/v1', 'ImageStream'))) {
      return { mode: im.mode, found: [], fromPlan: false, skipped: [{ source: `namespace ${mapping.source}`, reason: 'the source cluster has no ImageStream API (image.openshift.io/v1); use images.mode: registry' }] };
    }
    const streams = await source.list<ImageStreamObject>({ apiVersion: 'image.openshift.io/v1', kind: 'ImageStream' }, mapping.source);
    const p = planImageStreamCopies(streams, mapping as NamespaceMapping, registryLocation(im.sourceRegistry).base, registryLocation(im.destinationRegistry).base, im.repositories);
    return { mode: im.mode, found: p.items.map((i) => i.source), fromPlan: false, skipped: p.skipped };
  }
  if (im.repositories?.length) return { mode: im.mode, found: [...im.repositories], fromPlan: true, skipped: [] };
  const hosts = [registryHost(im.sourceRegistry.url), ...(im.sourceRegistry.aliases ?? [])];
  const r = discoverRepositories(imageReferencesOf(await listPodTemplateObjects(source, mapping.source)), mapping.source, hosts);
  return { mode: im.mode, found: r.repositories, fromPlan: false, skipped: r.skipped };
}

/** Why a PVC cannot be measured by a usage pod now, or undefined. */
function cannotMeasure(p: PVCInfo): string | undefined {
  if (p.volumeMode === 'Block') return `a block volume: each sync reads the whole device (${p.capacity}) on both sides and sends the blocks that differ; the usage pod measures file trees only`;
  if (p.accessModes.includes('ReadWriteOncePod') && p.usedBy.length > 0) return 'ReadWriteOncePod in use: no second pod can mount it while the application runs';
  return undefined;
}

/**
 * Measures one PVC with a usage pod; the pod is deleted at the end whatever happened.
 * @throws FerryError when the pod cannot run (its explanation: image pull, scheduling, Pod Security)
 *   or does not finish in time.
 */
export async function measurePVC(source: KubeClient, plan: MigrationPlan, migrationId: string, namespace: string, p: PVCInfo, o: DryRunOptions = {}): Promise<VolumeUsage> {
  const name = objectName(migrationId, 'usage', p.name);
  const identity = clientIdentity(plan, p.identity);
  const pod = buildUsagePod({
    name,
    namespace,
    labels: objectLabels(migrationId, 'usage', p.name),
    pvcName: p.name,
    image: plan.transferImage,
    root: plan.security.mode === 'preserve-ownership',
    ...(identity ? { identity } : {}),
    ...(p.nodeName && isSingleNode(p.accessModes) ? { nodeName: p.nodeName } : {}),
    sampleBytes: o.sampleBytes ?? DEFAULT_SAMPLE_BYTES,
  });
  const ref = { apiVersion: 'v1', kind: 'Pod', namespace, name };
  await deletePodAndWait(source, namespace, name, o.signal);
  await source.createOrAdopt(pod);
  try {
    return await waitFor(
      async () => {
        const live = await source.get<V1Pod>(ref);
        if (!live) throw new FerryError('transient', `usage pod ${namespace}/${name} disappeared`);
        const st = transferContainerState(live);
        if (st.state === 'terminated') {
          const log = await readLogTail(source, namespace, name, USAGE_CONTAINER, 20, 16 * 1024);
          const usage = parseUsage(log);
          if (usage && st.exitCode === 0) return usage;
          throw new FerryError('fatal', `the usage pod could not read PVC ${namespace}/${p.name} (exit ${st.exitCode}): ${log.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
        }
        const created = live.metadata?.creationTimestamp ? new Date(live.metadata.creationTimestamp as unknown as string | Date).getTime() : Date.now();
        const trouble = await diagnosePod(source, live, (Date.now() - created) / 1000);
        if (trouble) throw trouble;
        return undefined;
      },
      { timeoutSeconds: o.measureTimeoutSeconds ?? 900, intervalSeconds: 1, description: `the usage pod of PVC ${namespace}/${p.name}`, ...(o.signal ? { signal: o.signal } : {}) },
    );
  } finally {
    await source.delete(ref, 0).catch(() => undefined);
  }
}

/** Runs `fn` over `items`, `n` at a time. */
async function eachLimited<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(Math.max(1, n), items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/**
 * The dry run of `plan` under `migrationId` (see the module docstring). Never throws for what it
 * checks: unreachable clusters and failed measurements are reported (problems, notMeasured).
 */
export async function dryRunMigration(plan: MigrationPlan, migrationId: string, clusters: DryRunClusters, options: DryRunOptions = {}): Promise<DryRunReport> {
  const log = options.logger ?? silentLogger;
  const src = 'client' in clusters.source ? clusters.source.client : undefined;
  const dst = 'client' in clusters.destination ? clusters.destination.client : undefined;
  const notes = new Map<string, string[]>();
  const note = (ns: string, text: string) => notes.set(ns, [...(notes.get(ns) ?? []), text]);

  let destinationClasses: V1StorageClass[] | undefined;
  if (dst) destinationClasses = await dst.list<V1StorageClass>({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass' }).catch(() => undefined);
  const discoveries: NamespaceDiscovery[] = [];
  for (const mapping of plan.namespaces) {
    const empty: NamespaceDiscovery = { sourceNamespace: mapping.source, destinationNamespace: mapping.destination, pvcs: [], workloads: [] };
    if (!src) {
      discoveries.push(empty);
      continue;
    }
    try {
      discoveries.push(await discoverNamespace(src, { mapping, plan, migrationId, ...(destinationClasses ? { destinationClasses } : {}), logger: log }));
    } catch (err) {
      note(mapping.source, `discovery failed: ${errorMessage(err)}`);
      discoveries.push(empty);
    }
  }
  const problems = await runPreflight({ migrationId, plan, discoveries, source: clusters.source, destination: clusters.destination });

  const namespaces: NamespaceDryRun[] = [];
  for (const d of discoveries) {
    const exists = async (c: KubeClient | undefined, name: string) => (c ? (await c.get<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace', name }).catch(() => undefined)) !== undefined : false);
    const entry: NamespaceDryRun = {
      source: d.sourceNamespace,
      destination: d.destinationNamespace,
      sourceExists: await exists(src, d.sourceNamespace),
      destinationExists: await exists(dst, d.destinationNamespace),
      pvcs: d.pvcs.map((p) => ({
        name: p.name,
        destinationName: p.destinationName,
        capacityBytes: p.capacityBytes,
        ...(p.storageClass ? { storageClass: p.storageClass } : {}),
        ...(p.destinationStorageClass ? { destinationStorageClass: p.destinationStorageClass } : {}),
        accessModes: p.accessModes,
        destinationAccessModes: p.destinationAccessModes,
        volumeMode: p.volumeMode,
        ...(p.nodeName && isSingleNode(p.accessModes) ? { nodeName: p.nodeName } : {}),
        usedBy: p.usedBy.map((w) => `${w.kind} ${w.name}`),
      })),
      quiesce: plan.quiesce ? d.workloads.map((w) => `${w.kind} ${w.name}`) : [],
      unmanagedPods: (d.unmanagedPods ?? []).map((u) => `pod ${u.name}${u.owner ? ` (controlled by ${u.owner})` : ''}`),
      objects: { source: [], destination: [] },
      notes: notes.get(d.sourceNamespace) ?? [],
    };
    if (dst) {
      entry.endpoint = await predictEndpoint(dst, plan);
      if (d.pvcs.length) {
        try {
          entry.objects = plannedObjects(plan, migrationId, d, entry.endpoint.type, entry.destinationExists);
        } catch (err) {
          entry.notes.push(`objects not listed: ${errorMessage(err)}`);
        }
      }
    }
    if (src) {
      try {
        const images = await plannedImages(src, plan, { source: d.sourceNamespace, destination: d.destinationNamespace });
        if (images) entry.images = images;
      } catch (err) {
        entry.notes.push(`images not listed: ${errorMessage(err)}`);
      }
    }
    if (!entry.sourceExists) entry.notes.push(src ? `source namespace ${d.sourceNamespace} does not exist` : 'the source cluster is not reachable');
    else if (d.pvcs.length === 0) entry.notes.push('no PVC selected');
    namespaces.push(entry);
  }

  // Measurements, a few pods at a time across all namespaces.
  const jobs: { ns: NamespaceDryRun; info: PVCInfo; out: PVCDryRun }[] = [];
  for (const [i, d] of discoveries.entries()) {
    const ns = namespaces[i]!;
    d.pvcs.forEach((info, k) => {
      const out = ns.pvcs[k]!;
      const why = options.measure === false ? 'not asked (--no-measure)' : !src ? 'the source cluster is not reachable' : cannotMeasure(info);
      if (why) out.notMeasured = why;
      else jobs.push({ ns, info, out });
    });
  }
  await eachLimited(jobs, options.measureConcurrency ?? DEFAULT_MEASURE_CONCURRENCY, async ({ ns, info, out }) => {
    try {
      const usage = await measurePVC(src!, plan, migrationId, ns.source, info, options);
      out.usage = usage;
      const rate = readRate(usage);
      if (rate !== undefined) {
        out.readBytesPerSecond = rate;
        out.projectedSeconds = usage.bytes / rate;
      } else if (usage.bytes < 1024 * 1024) out.projectedSeconds = 0;
      log.info({ namespace: ns.source, pvc: info.name, bytes: usage.bytes, files: usage.files }, 'measured');
    } catch (err) {
      out.notMeasured = `measurement failed: ${errorMessage(err)}`;
      log.warn({ namespace: ns.source, pvc: info.name, error: errorMessage(err) }, 'could not measure a PVC');
    }
  });

  for (const ns of namespaces) {
    if (ns.pvcs.length && ns.pvcs.every((p) => p.projectedSeconds !== undefined)) ns.projectedSeconds = scheduleSeconds(ns.pvcs.map((p) => p.projectedSeconds!), plan.concurrency);
  }
  const measured = namespaces.flatMap((n) => n.pvcs).filter((p) => p.usage);
  const projections = namespaces.filter((n) => n.pvcs.length > 0).map((n) => n.projectedSeconds);
  return {
    migrationId,
    problems,
    namespaces,
    totals: {
      pvcs: namespaces.reduce((s, n) => s + n.pvcs.length, 0),
      bytes: measured.reduce((s, p) => s + p.usage!.bytes, 0),
      files: measured.reduce((s, p) => s + p.usage!.files, 0),
      measured: measured.length,
    },
    ...(projections.length && projections.every((s) => s !== undefined) ? { projectedSeconds: Math.max(...(projections as number[])) } : {}),
  };
}
