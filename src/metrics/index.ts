/**
 * Ferry's Prometheus metrics (prom-client): the definitions, the few recording calls the activities
 * make (one per event), and the HTTP endpoint the worker serves them on. No Temporal import: the
 * activities pass what they know (labels, the TransferResult, the failure type) in plain values.
 *
 * Metrics (labels are bounded: a migration's id, its namespaces and PVCs, and small fixed sets; never
 * a file name):
 *   ferry_transfer_bytes_total{migration,namespace,pvc}              counter  bytes the engine reported
 *                                                                   sent (TransferResult.bytesSent:
 *                                                                   rsync "Total bytes sent"), per sync
 *                                                                   that succeeded (also partially)
 *   ferry_transfer_files_total{migration,namespace,pvc}              counter  files transferred (filesTransferred)
 *   ferry_transfer_rate_bytes_per_second{migration,namespace,pvc}    gauge    current rate of the running
 *                                                                   sync (its latest progress); the series
 *                                                                   goes when the sync ends. Sum by
 *                                                                   namespace or migration in PromQL.
 *   ferry_transfer_progress_bytes{migration,namespace,pvc}           gauge    bytes of the running sync so far
 *   ferry_syncs_total{migration,namespace,sync,result,failure_type}  counter  finished syncs; sync = stage |
 *                                                                   final; result = success | partial |
 *                                                                   failed | cancelled; failure_type = a
 *                                                                   FailureType name for failed ones, else ""
 *   ferry_stage_passes_total{migration,namespace}                    counter  stage syncs finished (success or partial)
 *   ferry_sync_pass{migration,namespace,pvc}                         gauge    pass number of the PVC's latest finished sync
 *   ferry_activity_results_total{activity,migration,namespace,result,failure_type}
 *                                                                   counter  every activity execution's end
 *                                                                   (result success | failed | cancelled)
 *   ferry_quiesce_duration_seconds{migration,step}                   histogram step = scale (quiesce: scaling
 *                                                                   the workloads down) | wait (until their
 *                                                                   pods are gone); successful ones
 *   ferry_downtime_seconds{migration,namespace}                      histogram the application's downtime of a
 *                                                                   namespace (from quiesce to unquiesce or
 *                                                                   cutover); recorded by `observeDowntime`
 *   ferry_image_copies_total{migration,namespace,result}             counter  images copied (or found present
 *                                                                   with the same digest) | skipped
 *   ferry_active_client_pods{migration,namespace,kind}               gauge    client pods (kind pod) and warm
 *                                                                   agents (kind agent) this worker follows
 *                                                                   a sync in right now
 * plus prom-client's default process metrics (process_*, nodejs_*) on the endpoint of
 * `startMetricsServer`. The Temporal SDK's own metrics are served separately (src/worker.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FailureType, type ImageCopyReport, type TransferProgress, type TransferResult } from '../core/types';

/** Labels of one PVC sync. */
export interface SyncLabels {
  migration: string;
  /** Source namespace. */
  namespace: string;
  /** Source PVC name. */
  pvc: string;
  /** Final sync (cutover) or a stage sync. */
  final: boolean;
  /** Sync number (1-based) of this PVC. */
  pass: number;
}

/** Labels of a namespace of a migration (namespace omitted for migration-wide activities). */
export interface ScopeLabels {
  migration: string;
  namespace?: string;
}

/** How an activity execution ended: its value, the FailureType name it failed with, or cancelled. */
export type ActivityOutcome<T = unknown> = { result: 'success'; value: T } | { result: 'failed'; failureType: string } | { result: 'cancelled' };

/** The failure_type label values: Ferry's FailureType names; any other type is counted as "other". */
const FAILURE_TYPES: ReadonlySet<string> = new Set(Object.values(FailureType));

/** A failure type as a bounded label value. */
export function failureTypeLabel(type: string | undefined): string {
  return type && FAILURE_TYPES.has(type) ? type : 'other';
}

/** Downtime buckets, seconds: from a few seconds (a small PVC's final sync) to hours. */
export const DOWNTIME_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];
/** Quiesce buckets, seconds. */
export const QUIESCE_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600];

/**
 * Ferry's metrics in one prom-client Registry of their own (not prom-client's global one, so that
 * tests make fresh ones). The worker uses one per process (`defaultMetrics`).
 */
export class FerryMetrics {
  readonly registry = new Registry();
  readonly transferBytes: Counter<'migration' | 'namespace' | 'pvc'>;
  readonly transferFiles: Counter<'migration' | 'namespace' | 'pvc'>;
  readonly transferRate: Gauge<'migration' | 'namespace' | 'pvc'>;
  readonly transferProgress: Gauge<'migration' | 'namespace' | 'pvc'>;
  readonly syncs: Counter<'migration' | 'namespace' | 'sync' | 'result' | 'failure_type'>;
  readonly stagePasses: Counter<'migration' | 'namespace'>;
  readonly syncPass: Gauge<'migration' | 'namespace' | 'pvc'>;
  readonly activityResults: Counter<'activity' | 'migration' | 'namespace' | 'result' | 'failure_type'>;
  readonly quiesceDuration: Histogram<'migration' | 'step'>;
  readonly downtime: Histogram<'migration' | 'namespace'>;
  readonly imageCopies: Counter<'migration' | 'namespace' | 'result'>;
  readonly activeClientPods: Gauge<'migration' | 'namespace' | 'kind'>;
  private defaultsCollected = false;

  constructor() {
    const registers = [this.registry];
    const pvc = ['migration', 'namespace', 'pvc'] as const;
    this.transferBytes = new Counter({ name: 'ferry_transfer_bytes_total', help: 'Bytes the transfer engine reported sent (rsync "Total bytes sent"), summed over finished syncs', labelNames: pvc, registers });
    this.transferFiles = new Counter({ name: 'ferry_transfer_files_total', help: 'Regular files transferred, summed over finished syncs', labelNames: pvc, registers });
    this.transferRate = new Gauge({ name: 'ferry_transfer_rate_bytes_per_second', help: 'Current rate of the running sync of a PVC (its latest progress line)', labelNames: pvc, registers });
    this.transferProgress = new Gauge({ name: 'ferry_transfer_progress_bytes', help: 'Bytes the running sync of a PVC has transferred so far', labelNames: pvc, registers });
    this.syncs = new Counter({ name: 'ferry_syncs_total', help: 'Finished syncs by kind (stage, final), result (success, partial, failed, cancelled) and failure type', labelNames: ['migration', 'namespace', 'sync', 'result', 'failure_type'], registers });
    this.stagePasses = new Counter({ name: 'ferry_stage_passes_total', help: 'Stage syncs finished (success or partial)', labelNames: ['migration', 'namespace'], registers });
    this.syncPass = new Gauge({ name: 'ferry_sync_pass', help: 'Pass number of the latest finished sync of a PVC', labelNames: pvc, registers });
    this.activityResults = new Counter({ name: 'ferry_activity_results_total', help: 'Activity executions by result (success, failed, cancelled) and failure type', labelNames: ['activity', 'migration', 'namespace', 'result', 'failure_type'], registers });
    this.quiesceDuration = new Histogram({ name: 'ferry_quiesce_duration_seconds', help: 'Quiesce durations: scale (scaling the workloads down), wait (until their pods are gone)', labelNames: ['migration', 'step'], buckets: QUIESCE_BUCKETS, registers });
    this.downtime = new Histogram({ name: 'ferry_downtime_seconds', help: "An application's downtime per namespace, from quiesce to the end of the cutover", labelNames: ['migration', 'namespace'], buckets: DOWNTIME_BUCKETS, registers });
    this.imageCopies = new Counter({ name: 'ferry_image_copies_total', help: 'Images copied (or present with the same digest) and skipped', labelNames: ['migration', 'namespace', 'result'], registers });
    this.activeClientPods = new Gauge({ name: 'ferry_active_client_pods', help: 'Client pods (kind pod) and warm agents (kind agent) this worker follows a sync in', labelNames: ['migration', 'namespace', 'kind'], registers });
  }

  /** Adds prom-client's default process metrics (CPU, memory, event loop) to the registry, once. */
  collectDefaults(): void {
    if (this.defaultsCollected) return;
    this.defaultsCollected = true;
    collectDefaultMetrics({ register: this.registry });
  }

  /** One activity execution ended (the activity wrapper calls this for every activity). */
  activityEnded(activity: string, scope: ScopeLabels, outcome: ActivityOutcome): void {
    this.activityResults.inc({ activity, migration: scope.migration, namespace: scope.namespace ?? '', result: outcome.result, failure_type: outcome.result === 'failed' ? failureTypeLabel(outcome.failureType) : '' });
  }

  /** Live progress of a running sync (the same callback that heartbeats it). */
  syncProgress(labels: SyncLabels, progress: TransferProgress | undefined): void {
    if (!progress) return;
    const l = pvcLabels(labels);
    this.transferRate.set(l, finite(progress.rate));
    if (Number.isFinite(progress.bytes)) this.transferProgress.set(l, progress.bytes);
  }

  /** A sync ended: counts its bytes and files (successful ones), its result, and drops its live gauges. */
  syncEnded(labels: SyncLabels, outcome: ActivityOutcome<TransferResult>): void {
    const l = pvcLabels(labels);
    this.transferRate.remove(l);
    this.transferProgress.remove(l);
    const scope = { migration: labels.migration, namespace: labels.namespace, sync: labels.final ? 'final' : 'stage' };
    if (outcome.result !== 'success') {
      this.syncs.inc({ ...scope, result: outcome.result, failure_type: outcome.result === 'failed' ? failureTypeLabel(outcome.failureType) : '' });
      return;
    }
    const r = outcome.value;
    this.transferBytes.inc(l, finite(r.bytesSent));
    this.transferFiles.inc(l, finite(r.filesTransferred));
    this.syncs.inc({ ...scope, result: r.outcome, failure_type: '' });
    this.syncPass.set(l, labels.pass);
    if (!labels.final) this.stagePasses.inc({ migration: labels.migration, namespace: labels.namespace });
  }

  /** A sync runs in a client pod or warm agent followed by this worker; call the returned function when it ends. */
  clientPodActive(scope: Required<ScopeLabels>, kind: 'pod' | 'agent'): () => void {
    const l = { migration: scope.migration, namespace: scope.namespace, kind };
    this.activeClientPods.inc(l);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.activeClientPods.dec(l);
    };
  }

  /** Runs a quiesce step and records its duration when it succeeds. */
  async timeQuiesce<T>(migration: string, step: 'scale' | 'wait', body: () => Promise<T>): Promise<T> {
    const end = this.quiesceDuration.startTimer({ migration, step });
    const value = await body();
    end();
    return value;
  }

  /** The images of a namespace were copied (copyImages' report). */
  imagesCopied(scope: Required<ScopeLabels>, report: ImageCopyReport): void {
    const l = { migration: scope.migration, namespace: scope.namespace };
    this.imageCopies.inc({ ...l, result: 'copied' }, report.copied.length);
    this.imageCopies.inc({ ...l, result: 'skipped' }, report.skipped.length);
  }

  /** Records the downtime of one namespace's applications, seconds (>= 0). */
  observeDowntime(scope: Required<ScopeLabels>, seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) throw new RangeError(`downtime must be a number of seconds >= 0, not ${seconds}`);
    this.downtime.observe({ migration: scope.migration, namespace: scope.namespace }, seconds);
  }

  /** The metrics in Prometheus' text format. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** A finite number >= 0, else 0 (a counter never goes down, a gauge takes no NaN). */
function finite(n: number | undefined): number {
  return n !== undefined && Number.isFinite(n) && n > 0 ? n : 0;
}

function pvcLabels(l: SyncLabels): { migration: string; namespace: string; pvc: string } {
  return { migration: l.migration, namespace: l.namespace, pvc: l.pvc };
}

let processMetrics: FerryMetrics | undefined;

/** The process's metrics (what the worker's activities record and its endpoint serves). */
export function defaultMetrics(): FerryMetrics {
  processMetrics ??= new FerryMetrics();
  return processMetrics;
}

/**
 * Records the downtime of one namespace's applications (seconds from its quiesce to the end of its
 * cutover) in the process's metrics, or in `metrics`.
 * @throws RangeError when `seconds` is negative or not a number.
 */
export function observeDowntime(scope: Required<ScopeLabels>, seconds: number, metrics: FerryMetrics = defaultMetrics()): void {
  metrics.observeDowntime(scope, seconds);
}

/** Where a metrics endpoint listens. */
export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * Parses "<port>" or "<host>:<port>" (a bare port listens on every interface, 0.0.0.0). undefined for
 * an empty or unset value (metrics off).
 * @throws Error naming `what` when the value is not a port (1-65535) or host:port.
 */
export function parseListenAddress(value: string | undefined, what: string): ListenAddress | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  const m = /^(?:(.+):)?(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`${what} must be a port (e.g. 9464) or host:port (e.g. 127.0.0.1:9464), not "${v}"`);
  return { host: m[1] ?? '0.0.0.0', port };
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The address it listens on (the real port when 0 was asked). */
  address: ListenAddress;
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `metrics` (with the default process metrics) at http://host:port/metrics; every other path
 * is 404. Port 0 picks a free port.
 * @throws the listen error (EADDRINUSE: another process holds the port; choose another).
 */
export async function startMetricsServer(at: ListenAddress, metrics: FerryMetrics = defaultMetrics()): Promise<MetricsServer> {
  metrics.collectDefaults();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  const port = (server.address() as AddressInfo).port;
  const host = at.host === '0.0.0.0' ? '127.0.0.1' : at.host;
  return {
    address: { host: at.host, port },
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
