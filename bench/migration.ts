/**
 * Orchestration benchmark on the lab (hack/lab): real migrations of N PVCs between the two clusters,
 * with a private Temporal dev server and a `ferry worker` child process per scenario (the compiled
 * dist/ it ships as, built first; `--tsx`: from the sources through tsx), and the figures
 * of issue 9 ("Orchestration at scale") for each:
 *
 *   worker start             seconds from spawning the scenario's fresh worker until its build is current
 *                            (it takes migrations); the clock of the figures below starts after it, as
 *                            `ferry migrate` runs against a worker that already serves
 *   first sync / first byte  seconds from startMigration (with --cli: from running `ferry migrate
 *                            --detach`) to the first PVC sync workflow's start, and to
 *                            the first client pod's containers running (Kubernetes timestamps: 1 s
 *                            resolution; "n/a" when no client pod was seen)
 *   prepare                  the namespaces' prepare phase (endpoint, server, credentials, probe), max
 *   per-PVC sync time        average duration of the stage syncs and of the final syncs (each sync's
 *                            pvcTransferWorkflow, start to close) beside the data per PVC: with the
 *                            small volumes used here nearly all of it is per-PVC overhead
 *   downtime                 the longest namespace downtime (quiesce start → final sync end) with that
 *                            namespace's quiesce and final-sync phases
 *   total                    the migration workflow, start to end
 *   worker RSS               peak of VmRSS sampled every 0.5 s from /proc/<pid>/status, and VmHWM
 *   history events           the largest history (event count) among the migration's workflow runs,
 *                            and the number of runs; the largest is re-read with fetchHistory
 *   API calls                the worker's Kubernetes API requests (HTTP requests to each cluster's API
 *                            server, counted by bench/support/count-requests.cjs preloaded in the
 *                            worker), in all and per PVC
 *   objects left             Ferry objects of this migration in either cluster afterwards (must be 0)
 *
 * Each scenario creates its own source namespaces (bm-<run>-...) in ferry-src: N PVCs of StorageClass
 * lab-local spread over S namespaces, each namespace with one writer Deployment (one pod mounting all
 * its PVCs) that seeds --mib MiB of random data into each and then appends a line to each every 2 s,
 * so that quiesce has a writer to stop and the final sync a small delta. The plan: stagePasses 1,
 * automatic cutover, quiesce, LoadBalancer endpoint, preserve-ownership (as examples/lab-plan.yaml).
 * Its namespaces (source and destination) are deleted at the end, also on failure.
 *
 *   npm run bench:migration -- [--pvcs 1,10] [--spread 1] [--concurrency 5] [--final-concurrency N] [--mib 4] [--cli] [--json]
 *
 * Tables go to stdout; with --json they go to stderr and stdout carries one JSON array of
 * ScenarioResult (`npm run -s bench:migration -- --json > results.json`).
 *
 * Exit status: 0 when every scenario's migration succeeded with nothing left, 1 otherwise, 2 when the
 * lab is not available. The lab is shared: figures measured beside other users are noisy.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { openSession, startMigration, type TemporalSession } from '../src/cli/operations';
import { parsePlan } from '../src/plan/load';
import { MAX_CONCURRENCY } from '../src/plan/schema';
import { LABELS, migrationKey } from '../src/statetransfer/names';
import { AGENT_ANNOTATION } from '../src/statetransfer/pods/agent';
import { resolveTemporal, type TemporalHandle } from '../src/temporal/devserver';
import type { MigrationState, NamespaceState } from '../src/core/state';
import { ferryObjects, freePort, kubectl, LAB_KUBECONFIG, labUnavailable, MANAGED_BY, phaseRows, startWorkerProcess } from '../hack/e2e/lib';

const ROOT = join(__dirname, '..');
const COUNTER = join(__dirname, 'support', 'count-requests.cjs');
const WRITER_IMAGE = 'ferry.local/lab/busybox:1';
const MiB = 1024 * 1024;

/** Command-line options. */
interface Options {
  pvcs: number[];
  spread: number[];
  concurrency: number;
  /** Plan finalConcurrency; undefined: the plan's default (finalSyncConcurrency). */
  finalConcurrency?: number;
  mib: number;
  json: boolean;
  timeoutMinutes: number;
  keep: boolean;
  /** Start each migration with `ferry migrate --detach` (the CLI) instead of the client API. */
  cli: boolean;
  /** Run the worker from the TypeScript sources through tsx instead of the compiled dist/ it ships as. */
  tsx: boolean;
}

/** One scenario: `pvcs` PVCs over `spread` namespaces. */
interface Scenario {
  pvcs: number;
  spread: number;
}

/** What one scenario measured (also the --json output, one object per scenario). */
export interface ScenarioResult {
  scenario: { pvcs: number; namespaces: number; concurrency: number; mibPerPVC: number };
  migrationId: string;
  status: string;
  error?: string;
  /** Seeding the source namespaces (not part of the migration). */
  seedSeconds: number;
  totalSeconds?: number;
  firstSyncSeconds?: number;
  firstByteSeconds?: number;
  /** Seconds from spawning the scenario's worker to its build being current (it takes migrations). */
  workerReadySeconds?: number;
  prepareSeconds?: number;
  stage?: { wallSeconds: number; syncs: number; avgSyncSeconds: number; maxSyncSeconds: number };
  final?: { wallSeconds: number; syncs: number; avgSyncSeconds: number; maxSyncSeconds: number };
  dataMiB?: number;
  sentMiB?: number;
  downtime?: { seconds: number; quiesceSeconds: number; finalSyncSeconds: number; namespace: string };
  worker: { rssPeakMiB?: number; hwmMiB?: number };
  histories?: { runs: number; totalEvents: number; largest?: { workflowId: string; type: string; events: number } };
  apiCalls?: { src: number; dst: number; other: number; total: number; perPVC: number; byMethod: Record<string, number> };
  objectsLeft?: string[];
  /** Phase name → longest duration in seconds (migration scope, and the max over namespaces). */
  phases?: { scope: 'migration' | 'namespaces'; phase: string; seconds: number }[];
  workerLog?: string;
}

/** The worker of the scenario running (killed on SIGINT/SIGTERM). */
let currentWorker: ChildProcess | undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const log = (s: string) => process.stderr.write(`[bench +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

function intList(v: string): number[] {
  const out = v.split(',').map((x) => Number(x.trim()));
  if (out.length === 0 || out.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError('a comma-separated list of positive integers');
  return out;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
}

function parseOptions(argv: string[]): Options {
  const program = new Command('bench:migration')
    .description('Ferry orchestration benchmark on the lab: real migrations of N PVCs; prints first byte, per-PVC overhead, downtime, RSS, history size, API calls')
    .option('--pvcs <list>', 'PVC counts, one scenario each (e.g. 1,10,50,200)', intList, [1, 10])
    .option('--spread <list>', 'namespaces the PVCs are spread over (e.g. 1 or 1,10)', intList, [1])
    .option('--concurrency <n>', `plan concurrency (PVCs synced at once, max ${MAX_CONCURRENCY})`, positiveInt, 5)
    .option('--final-concurrency <n>', `plan finalConcurrency (final syncs at once, max ${MAX_CONCURRENCY}; default: the plan's default)`, positiveInt)
    .option('--mib <n>', 'MiB of random data seeded into each PVC', positiveInt, 4)
    .option('--timeout-minutes <n>', 'give up on a migration after this long', positiveInt, 45)
    .option('--json', 'also print the results as JSON: the JSON array alone on stdout, the tables on stderr', false)
    .option('--cli', 'start each migration with the `ferry migrate --detach` command (node dist/client.js, as a user does) instead of the client API: the figures then count from the command', false)
    .option('--keep', 'keep the namespaces and the work directory (worker logs)', false)
    .option('--tsx', 'run the worker from src/ through tsx (more memory: the TypeScript loader) instead of building dist/ and running it as shipped', false)
    .showHelpAfterError();
  program.parse(argv, { from: 'user' });
  const o = program.opts<Options>();
  if (o.concurrency > MAX_CONCURRENCY) program.error(`--concurrency must be at most ${MAX_CONCURRENCY}`);
  if ((o.finalConcurrency ?? 0) > MAX_CONCURRENCY) program.error(`--final-concurrency must be at most ${MAX_CONCURRENCY}`);
  if (Math.max(...o.spread) > 100) program.error('--spread must be at most 100 (namespaces per plan)');
  return o;
}

// ---------------------------------------------------------------------------------------------
// Source namespaces

/** Names of the namespaces of a scenario, and which PVCs each holds (round robin). */
function layout(run: string, s: Scenario): { namespaces: string[]; pvcsOf: Map<string, string[]> } {
  const count = Math.min(s.spread, s.pvcs);
  const namespaces = Array.from({ length: count }, (_, i) => `bm-${run}-${s.pvcs}p${s.spread}s-${i}`);
  const pvcsOf = new Map<string, string[]>(namespaces.map((n) => [n, []]));
  for (let i = 0; i < s.pvcs; i++) pvcsOf.get(namespaces[i % count]!)!.push(`data-${String(i).padStart(3, '0')}`);
  return { namespaces, pvcsOf };
}

/** The writer: seeds every mounted PVC once (random data), then appends a line to each every 2 s. */
function writerScript(mib: number): string {
  return [
    'set -e',
    'for d in /d/*; do',
    `  if [ ! -f "$d/.seeded" ]; then dd if=/dev/urandom of="$d/data.bin" bs=1048576 count=${mib} 2>/dev/null; mkdir -p "$d/dir"; echo seed > "$d/dir/a"; touch "$d/.seeded"; fi`,
    'done',
    'sync',
    'touch /tmp/ready',
    'i=0',
    'while true; do now=$(date +%s); for d in /d/*; do echo "$i $now" >> "$d/writes.log"; done; i=$((i+1)); sleep 2; done',
  ].join('\n');
}

/** Namespace, PVCs and writer Deployment of one source namespace, as one kubectl List. */
function namespaceObjects(ns: string, pvcs: string[], mib: number): unknown {
  const size = `${Math.max(16, mib * 2 + 8)}Mi`;
  const items: unknown[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'ferry-bench': 'migration' } } }];
  for (const p of pvcs) {
    items.push({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: p, namespace: ns },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'lab-local', resources: { requests: { storage: size } } },
    });
  }
  items.push({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'writer', namespace: ns },
    spec: {
      replicas: 1,
      strategy: { type: 'Recreate' },
      selector: { matchLabels: { app: 'writer' } },
      template: {
        metadata: { labels: { app: 'writer' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'writer',
              image: WRITER_IMAGE,
              imagePullPolicy: 'IfNotPresent',
              command: ['sh', '-c', writerScript(mib)],
              readinessProbe: { exec: { command: ['test', '-f', '/tmp/ready'] }, periodSeconds: 1 },
              volumeMounts: pvcs.map((p) => ({ name: p, mountPath: `/d/${p}` })),
            },
          ],
          volumes: pvcs.map((p) => ({ name: p, persistentVolumeClaim: { claimName: p } })),
        },
      },
    },
  });
  return { apiVersion: 'v1', kind: 'List', items };
}

/** Creates the source namespaces and waits until every writer has seeded its PVCs. */
async function seed(namespaces: string[], pvcsOf: Map<string, string[]>, mib: number, timeoutMs: number): Promise<void> {
  for (const ns of namespaces) kubectl('ferry-src', ['apply', '-f', '-'], JSON.stringify(namespaceObjects(ns, pvcsOf.get(ns)!, mib)));
  const deadline = Date.now() + timeoutMs;
  for (const ns of namespaces) {
    const left = Math.max(10, Math.round((deadline - Date.now()) / 1000));
    const r = spawnSync('kubectl', ['--context', 'ferry-src', '-n', ns, 'rollout', 'status', 'deploy/writer', `--timeout=${left}s`], { env: { ...process.env, KUBECONFIG: LAB_KUBECONFIG }, encoding: 'utf8' });
    if (r.status !== 0) {
      const pods = spawnSync('kubectl', ['--context', 'ferry-src', '-n', ns, 'get', 'pods,pvc', '-o', 'wide'], { env: { ...process.env, KUBECONFIG: LAB_KUBECONFIG }, encoding: 'utf8' }).stdout;
      throw new Error(`the writer of ${ns} did not become ready (seeding ${pvcsOf.get(ns)!.length} PVCs): ${r.stderr.trim()}\n${pods}`);
    }
  }
}

/** Deletes namespaces in both clusters (without waiting: the lab reclaims their volumes). */
function deleteNamespaces(namespaces: string[]): void {
  for (const ctx of ['ferry-src', 'ferry-dst'] as const) {
    if (namespaces.length === 0) continue;
    spawnSync('kubectl', ['--context', ctx, 'delete', 'ns', ...namespaces, '--ignore-not-found', '--wait=false'], { env: { ...process.env, KUBECONFIG: LAB_KUBECONFIG }, timeout: 60_000, stdio: 'ignore' });
  }
}

// ---------------------------------------------------------------------------------------------
// Probes running beside the migration

/** Samples VmRSS of `pid` every 0.5 s; stop() returns the peak and the kernel's VmHWM (MiB). */
function rssSampler(pid: number): { stop(): { rssPeakMiB?: number; hwmMiB?: number } } {
  let peak = 0;
  let hwm = 0;
  const read = () => {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
      peak = Math.max(peak, kib('VmRSS'));
      hwm = Math.max(hwm, kib('VmHWM'));
    } catch {
      /* exited */
    }
  };
  read();
  const timer = setInterval(read, 500);
  return {
    stop() {
      read();
      clearInterval(timer);
      return { ...(peak ? { rssPeakMiB: peak / 1024 } : {}), ...(hwm ? { hwmMiB: hwm / 1024 } : {}) };
    },
  };
}

/** When the first sync began in a warm transfer agent (epoch ms), from the worker log (pino JSON lines): its `began` field, else the line's own time. */
function firstAgentSync(logFile: string): number | undefined {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.includes('"msg":"sync started in the transfer agent"'));
  if (!line) return undefined;
  try {
    // `began`: the sync's start in the agent (the lab's nodes share this machine's clock); the line
    // itself is written when the start exec returns, after a short sync has ended.
    const entry = JSON.parse(line) as { time?: number; began?: string };
    const began = entry.began !== undefined ? Date.parse(entry.began) : NaN;
    return Number.isFinite(began) ? began : entry.time;
  } catch {
    return undefined;
  }
}

/**
 * Watches the migration's client pods in the source cluster (kubectl get -w) and keeps the earliest
 * time all containers of one of them were started (running or already terminated): the first byte
 * can flow from then on. Kubernetes timestamps have 1 s resolution.
 */
function clientPodWatch(migrationId: string): { stop(): number | undefined } {
  const selector = `${MANAGED_BY},${LABELS.migration}=${migrationKey(migrationId)},${LABELS.role}=client`;
  // -o json prints each event's object pretty-printed: a top-level object ends with a line "}".
  const child = spawn('kubectl', ['--context', 'ferry-src', 'get', 'pods', '-A', '-l', selector, '-w', '-o', 'json'], {
    env: { ...process.env, KUBECONFIG: LAB_KUBECONFIG },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let first: number | undefined;
  let buf = '';
  let object: string[] = [];
  const onPod = (pod: { metadata?: { annotations?: Record<string, string> }; status?: { containerStatuses?: { state?: { running?: { startedAt?: string }; terminated?: { startedAt?: string } } }[] } }) => {
    // A warm agent (issue 9) runs before its first sync: its first byte is the sync's start (worker log).
    if (pod.metadata?.annotations?.[AGENT_ANNOTATION] === 'true') return;
    const statuses = pod.status?.containerStatuses ?? [];
    if (statuses.length === 0) return;
    const times = statuses.map((c) => Date.parse(c.state?.running?.startedAt ?? c.state?.terminated?.startedAt ?? ''));
    if (times.some((t) => !Number.isFinite(t))) return; // a container not started yet
    const allStarted = Math.max(...times);
    first = first === undefined ? allStarted : Math.min(first, allStarted);
  };
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const line of lines) {
      object.push(line);
      if (line !== '}') continue;
      try {
        onPod(JSON.parse(object.join('\n')));
      } catch {
        /* not one object: skip */
      }
      object = [];
    }
  });
  return {
    stop() {
      child.kill('SIGTERM');
      return first;
    },
  };
}

/** The request counts the worker's preload wrote (see bench/support/count-requests.cjs). */
function readCounts(dir: string, pid: number): { total: number; byHost: Record<string, number>; byHostMethod: Record<string, number> } | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, `${pid}.json`), 'utf8'));
  } catch {
    return undefined;
  }
}

/** host:port of each lab context's API server, from the kubeconfig. */
function apiServers(): Record<'src' | 'dst', string> {
  const server = (ctx: string) => {
    const url = kubectl(ctx as 'ferry-src', ['config', 'view', '--minify', '-o', 'jsonpath={.clusters[0].cluster.server}']).trim();
    const u = new URL(url);
    return `${u.hostname}:${u.port || '443'}`;
  };
  return { src: server('ferry-src'), dst: server('ferry-dst') };
}

// ---------------------------------------------------------------------------------------------
// After the migration

/** The final state of a migration: its result, or its failure's details. */
async function outcome(session: TemporalSession, id: string, timeoutMs: number): Promise<MigrationState> {
  const handle = session.client.workflow.getHandle(id);
  const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`migration ${id} did not end within ${timeoutMs / 60000} minutes (--timeout-minutes)`)), timeoutMs).unref());
  try {
    return (await Promise.race([handle.result(), timer])) as MigrationState;
  } catch (e) {
    if (e instanceof WorkflowFailedError && e.cause instanceof ApplicationFailure && e.cause.details?.[0]) return e.cause.details[0] as MigrationState;
    throw e;
  }
}

interface RunInfo {
  workflowId: string;
  runId: string;
  type: string;
  start: number;
  close?: number;
  events: number;
}

/** Every workflow run of migration `id` (visibility; retried until the closed runs are all indexed). */
async function migrationRuns(session: TemporalSession, id: string): Promise<RunInfo[]> {
  let runs: RunInfo[] = [];
  for (let attempt = 0; attempt < 10; attempt++) {
    runs = [];
    for await (const w of session.client.workflow.list()) {
      if (w.workflowId !== id && !w.workflowId.startsWith(`${id}/`)) continue;
      runs.push({ workflowId: w.workflowId, runId: w.runId, type: w.type, start: w.startTime.getTime(), ...(w.closeTime ? { close: w.closeTime.getTime() } : {}), events: w.historyLength });
    }
    if (runs.length > 0 && runs.every((r) => r.close !== undefined && r.events > 0)) break;
    await sleep(1000);
  }
  return runs;
}

const avg = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const secs = (a?: string, b?: string) => (a && b ? (Date.parse(b) - Date.parse(a)) / 1000 : NaN);

/** Figures derived from the final state and the workflow runs. */
function derive(state: MigrationState, runs: RunInfo[], startedAt: number): Partial<ScenarioResult> {
  const nss = state.namespaces.map((n) => n.result).filter((n): n is NamespaceState => !!n);
  const phaseOf = (ns: NamespaceState, name: string) => {
    const p = ns.phases.find((x) => x.name === name);
    return p ? secs(p.startedAt, p.endedAt) : NaN;
  };
  // Which sync of each PVC was its final one: everything before it was a stage sync (or a retry).
  const finalPass = new Map<string, number>();
  for (const ns of nss) for (const p of ns.pvcs) if (p.lastSync?.final) finalPass.set(`${ns.workflowId}/pvc/${p.name}`, p.lastSync.pass);
  const stage: RunInfo[] = [];
  const final: RunInfo[] = [];
  for (const r of runs.filter((x) => x.type === 'pvcTransferWorkflow')) {
    const m = /^(.*\/pvc\/.*)\/(\d+)$/.exec(r.workflowId);
    if (!m) continue;
    (finalPass.get(m[1]!) === Number(m[2]) ? final : stage).push(r);
  }
  const syncStats = (rs: RunInfo[], phase: string) => {
    const d = rs.filter((r) => r.close !== undefined).map((r) => (r.close! - r.start) / 1000);
    return { wallSeconds: Math.max(...nss.map((ns) => phaseOf(ns, phase))), syncs: rs.length, avgSyncSeconds: avg(d), maxSyncSeconds: d.length ? Math.max(...d) : NaN };
  };
  let dataBytes = 0;
  for (const ns of nss) for (const p of ns.pvcs) dataBytes += p.lastSync?.totalFileSize ?? 0;
  const worst = nss.filter((n) => n.downtime?.seconds !== undefined).sort((a, b) => b.downtime!.seconds! - a.downtime!.seconds!)[0];
  const phaseMax = new Map<string, number>();
  for (const r of phaseRows(state).filter((x) => x.scope !== 'migration')) phaseMax.set(r.phase, Math.max(phaseMax.get(r.phase) ?? 0, r.seconds));
  const syncStarts = runs.filter((r) => r.type === 'pvcTransferWorkflow').map((r) => r.start);
  return {
    totalSeconds: secs(state.startedAt, state.endedAt),
    ...(syncStarts.length ? { firstSyncSeconds: (Math.min(...syncStarts) - startedAt) / 1000 } : {}),
    prepareSeconds: Math.max(...nss.map((ns) => phaseOf(ns, 'prepare'))),
    stage: syncStats(stage, 'stage'),
    final: syncStats(final, 'final-sync'),
    dataMiB: dataBytes / MiB,
    sentMiB: state.totals.bytesSent / MiB,
    ...(worst
      ? { downtime: { seconds: worst.downtime!.seconds!, quiesceSeconds: phaseOf(worst, 'quiesce'), finalSyncSeconds: phaseOf(worst, 'final-sync'), namespace: worst.source } }
      : {}),
    phases: [
      ...state.phases.map((p) => ({ scope: 'migration' as const, phase: p.name, seconds: secs(p.startedAt, p.endedAt) })),
      ...[...phaseMax].map(([phase, seconds]) => ({ scope: 'namespaces' as const, phase, seconds })),
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// One scenario

interface Bench {
  run: string;
  work: string;
  session: TemporalSession;
  workerEnv: NodeJS.ProcessEnv;
  servers: Record<'src' | 'dst', string>;
  opts: Options;
  /** Namespaces created and not yet deleted (deleted on exit, also on failure). */
  live: Set<string>;
}

/**
 * Starts migration `id` the way a user does: `ferry migrate -f <plan.json> --id <id> --detach` (the
 * compiled CLI, or src/client.ts through tsx with --tsx), against the bench's Temporal server.
 * @throws Error with the command's output when it exits non-zero
 */
async function ferryMigrate(b: Bench, planInput: unknown, id: string): Promise<void> {
  const planFile = join(b.work, `plan-${id}.json`);
  writeFileSync(planFile, JSON.stringify(planInput));
  const entry = b.opts.tsx ? ['--import', 'tsx', join(ROOT, 'src', 'client.ts')] : [join(ROOT, 'dist', 'client.js')];
  const { NODE_OPTIONS: _counter, ...env } = b.workerEnv; // the request counter preload is the worker's
  const child = spawn(process.execPath, [...entry, 'migrate', '-f', planFile, '--id', id, '--detach'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`ferry migrate exited ${code}: ${out.slice(-2000)}`);
}

async function runScenario(b: Bench, s: Scenario): Promise<ScenarioResult> {
  const { namespaces, pvcsOf } = layout(b.run, s);
  const id = `bm-${b.run}-${s.pvcs}p${s.spread}s`;
  const result: ScenarioResult = {
    scenario: { pvcs: s.pvcs, namespaces: namespaces.length, concurrency: b.opts.concurrency, mibPerPVC: b.opts.mib },
    migrationId: id,
    status: 'not started',
    seedSeconds: NaN,
    worker: {},
  };
  for (const ns of namespaces) b.live.add(ns);
  let worker: ChildProcess | undefined;
  let workerLog: WriteStream | undefined;
  let rss: ReturnType<typeof rssSampler> | undefined;
  let pods: ReturnType<typeof clientPodWatch> | undefined;
  try {
    log(`${id}: seeding ${s.pvcs} PVC(s) of ${b.opts.mib} MiB in ${namespaces.length} namespace(s)`);
    const seedStart = Date.now();
    await seed(namespaces, pvcsOf, b.opts.mib, 900_000);
    result.seedSeconds = (Date.now() - seedStart) / 1000;

    // A fresh worker per scenario: its RSS and request counts are this scenario's.
    const logFile = join(b.work, `worker-${id}.log`);
    workerLog = createWriteStream(logFile);
    result.workerLog = logFile;
    // Started first and ready (its build current) before the clock starts: `ferry migrate` is run
    // against a worker that serves; a fresh worker's own start-up is reported on its own.
    const spawnedAt = Date.now();
    worker = await startWorkerProcess(ROOT, b.workerEnv, (chunk) => workerLog!.write(chunk), { compiled: !b.opts.tsx, current: true });
    result.workerReadySeconds = (Date.now() - spawnedAt) / 1000;
    currentWorker = worker;
    const pid = worker.pid!;
    const countsBefore = readCounts(join(b.work, 'counts'), pid);
    rss = rssSampler(pid);
    pods = clientPodWatch(id);

    const planInput = {
      source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
      destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
      namespaces,
      endpoint: { type: 'LoadBalancer' },
      security: { mode: 'preserve-ownership' },
      concurrency: b.opts.concurrency,
      ...(b.opts.finalConcurrency !== undefined ? { finalConcurrency: b.opts.finalConcurrency } : {}),
      stagePasses: 1,
      stageIntervalSeconds: 0,
      cutover: 'auto',
      quiesce: true,
      timeouts: { endpointReadySeconds: 120, serverReadySeconds: 300 },
    };
    const plan = parsePlan(planInput);
    log(`${id}: migrating (worker pid ${pid}, log ${logFile})${b.opts.cli ? ' with `ferry migrate --detach`' : ''}`);
    const startedAt = Date.now();
    if (b.opts.cli) await ferryMigrate(b, planInput, id);
    else await startMigration(b.session, plan, id);
    const state = await outcome(b.session, id, b.opts.timeoutMinutes * 60_000);
    const firstByte = pods.stop();
    pods = undefined;
    result.status = state.status;
    if (state.error) result.error = state.error;
    log(`${id}: ${state.status} in ${secs(state.startedAt, state.endedAt).toFixed(1)} s`);

    await sleep(1500); // the preload writes its counts every second
    result.worker = rss.stop();
    rss = undefined;
    const counts = readCounts(join(b.work, 'counts'), pid);
    if (counts) {
      const delta = (k: string) => (counts.byHost[k] ?? 0) - (countsBefore?.byHost[k] ?? 0);
      const src = delta(b.servers.src);
      const dst = delta(b.servers.dst);
      const total = counts.total - (countsBefore?.total ?? 0);
      const byMethod: Record<string, number> = {};
      for (const [k, v] of Object.entries(counts.byHostMethod)) {
        const [host, method] = k.split(' ') as [string, string];
        const side = host === b.servers.src ? 'src' : host === b.servers.dst ? 'dst' : host;
        const n = v - (countsBefore?.byHostMethod[k] ?? 0);
        if (n > 0) byMethod[`${side} ${method}`] = n;
      }
      result.apiCalls = { src, dst, other: total - src - dst, total, perPVC: (src + dst) / s.pvcs, byMethod };
    }

    const runs = await migrationRuns(b.session, id);
    Object.assign(result, derive(state, runs, startedAt));
    const agentStart = firstAgentSync(logFile);
    const first = [firstByte, agentStart].filter((t): t is number => t !== undefined);
    if (first.length) result.firstByteSeconds = (Math.min(...first) - startedAt) / 1000;
    const largest = [...runs].sort((a, c) => c.events - a.events)[0];
    if (largest) {
      // historyLength comes from visibility: re-read the largest history itself.
      const history = await b.session.client.workflow.getHandle(largest.workflowId, largest.runId).fetchHistory();
      result.histories = {
        runs: runs.length,
        totalEvents: runs.reduce((a, r) => a + r.events, 0),
        largest: { workflowId: largest.workflowId, type: largest.type, events: history.events?.length ?? largest.events },
      };
    }
    result.objectsLeft = ferryObjects(namespaces, id);
  } catch (e) {
    result.status = result.status === 'not started' || result.status === 'running' ? 'error' : result.status;
    result.error = e instanceof Error ? e.message : String(e);
    log(`${id}: ${result.error}`);
  } finally {
    pods?.stop();
    if (rss) result.worker = rss.stop();
    if (worker) await stopWorker(worker);
    currentWorker = undefined;
    workerLog?.end();
    if (!b.opts.keep) {
      deleteNamespaces(namespaces);
      for (const ns of namespaces) b.live.delete(ns);
    }
  }
  return result;
}

async function stopWorker(w: ChildProcess): Promise<void> {
  if (w.exitCode !== null || w.signalCode !== null) return;
  const exited = new Promise((r) => w.once('exit', r));
  w.kill('SIGTERM');
  await Promise.race([exited, sleep(30_000)]);
  if (w.exitCode === null && w.signalCode === null) {
    w.kill('SIGKILL');
    await exited;
  }
}

// ---------------------------------------------------------------------------------------------
// Output

const f1 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(1));

/** The figures of one scenario as a two-column text table. */
export function scenarioTable(r: ScenarioResult): string {
  const rows: [string, string][] = [];
  rows.push(['status', `${r.status}${r.error ? `: ${r.error.slice(0, 300)}` : ''}`]);
  rows.push(['seeding (not measured below)', `${f1(r.seedSeconds)} s`]);
  rows.push(['worker start (spawn until its build is current; before the start)', `${f1(r.workerReadySeconds)} s`]);
  rows.push(['total (migration workflow)', `${f1(r.totalSeconds)} s`]);
  rows.push(['first sync started', `${f1(r.firstSyncSeconds)} s after start`]);
  rows.push(['first byte (client pod running, or first sync started in a warm agent)', `${f1(r.firstByteSeconds)} s after start (1 s resolution)`]);
  rows.push(['prepare phase (max over namespaces)', `${f1(r.prepareSeconds)} s`]);
  if (r.stage) rows.push(['stage pass', `${f1(r.stage.wallSeconds)} s wall; ${r.stage.syncs} syncs, avg ${f1(r.stage.avgSyncSeconds)} s, max ${f1(r.stage.maxSyncSeconds)} s per sync`]);
  if (r.final) rows.push(['final sync', `${f1(r.final.wallSeconds)} s wall; ${r.final.syncs} syncs, avg ${f1(r.final.avgSyncSeconds)} s, max ${f1(r.final.maxSyncSeconds)} s per sync`]);
  if (r.stage && r.dataMiB !== undefined) {
    const perPVC = r.dataMiB / r.scenario.pvcs;
    rows.push(['per-PVC overhead', `stage sync avg ${f1(r.stage.avgSyncSeconds)} s for ${perPVC.toFixed(1)} MiB; final sync avg ${f1(r.final?.avgSyncSeconds)} s for a few changed lines; wall/PVC stage ${f1(r.stage.wallSeconds / r.scenario.pvcs)} s`]);
  }
  rows.push(['data / sent', `${f1(r.dataMiB)} MiB / ${f1(r.sentMiB)} MiB`]);
  rows.push(['downtime', r.downtime ? `${f1(r.downtime.seconds)} s = quiesce ${f1(r.downtime.quiesceSeconds)} s + final sync ${f1(r.downtime.finalSyncSeconds)} s (${r.downtime.namespace})` : 'n/a']);
  rows.push(['worker RSS peak (0.5 s samples) / VmHWM', `${f1(r.worker.rssPeakMiB)} MiB / ${f1(r.worker.hwmMiB)} MiB`]);
  rows.push(['largest history', r.histories?.largest ? `${r.histories.largest.events} events (${r.histories.largest.type} ${r.histories.largest.workflowId}); ${r.histories.runs} runs, ${r.histories.totalEvents} events in all` : 'n/a']);
  rows.push([
    'Kubernetes API calls (worker)',
    r.apiCalls
      ? `${r.apiCalls.total} (src ${r.apiCalls.src}, dst ${r.apiCalls.dst}) = ${r.apiCalls.perPVC.toFixed(1)} per PVC; ${Object.entries(r.apiCalls.byMethod)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`
      : 'not measured',
  ]);
  rows.push(['Ferry objects left', r.objectsLeft ? (r.objectsLeft.length === 0 ? '0' : `${r.objectsLeft.length}: ${r.objectsLeft.slice(0, 5).join(', ')}`) : 'n/a']);
  const w = Math.max(...rows.map(([k]) => k.length));
  const head = `== ${r.migrationId}: ${r.scenario.pvcs} PVC(s) × ${r.scenario.mibPerPVC} MiB in ${r.scenario.namespaces} namespace(s), concurrency ${r.scenario.concurrency}`;
  const phases = (r.phases ?? []).map((p) => `  ${p.phase.padEnd(20)} ${p.scope.padEnd(11)} ${f1(p.seconds).padStart(8)} s`);
  return [head, ...rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`), ...(phases.length ? ['phases (namespaces: the longest):', ...phases] : [])].join('\n');
}

/** One line per scenario, for before/after comparisons. */
export function summaryTable(results: ScenarioResult[]): string {
  const header = ['PVCs', 'ns', 'status', 'total s', 'first sync s', 'first byte s', 'stage avg s/sync', 'final avg s/sync', 'downtime s', 'quiesce s', 'final s', 'RSS MiB', 'max events', 'API/PVC', 'left'];
  const rows = results.map((r) => [
    String(r.scenario.pvcs),
    String(r.scenario.namespaces),
    r.status,
    f1(r.totalSeconds),
    f1(r.firstSyncSeconds),
    f1(r.firstByteSeconds),
    f1(r.stage?.avgSyncSeconds),
    f1(r.final?.avgSyncSeconds),
    f1(r.downtime?.seconds),
    f1(r.downtime?.quiesceSeconds),
    f1(r.downtime?.finalSyncSeconds),
    f1(r.worker.rssPeakMiB),
    r.histories?.largest ? String(r.histories.largest.events) : 'n/a',
    r.apiCalls ? r.apiCalls.perPVC.toFixed(1) : 'n/a',
    r.objectsLeft ? String(r.objectsLeft.length) : 'n/a',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const unavailable = labUnavailable(['kubectl']);
  if (unavailable) {
    console.error(`bench:migration needs the lab: ${unavailable}. Start it with: bash hack/lab/lab.sh up`);
    return 2;
  }
  const run = Math.random().toString(36).slice(2, 7);
  const work = mkdtempSync(join(tmpdir(), 'ferry-bench-migration-'));
  mkdirSync(join(work, 'counts'));
  const scenarios: Scenario[] = opts.pvcs.flatMap((pvcs) => opts.spread.map((spread) => ({ pvcs, spread })));
  const live = new Set<string>();
  let temporal: TemporalHandle | undefined;
  let session: TemporalSession | undefined;
  const results: ScenarioResult[] = [];
  // With --json, stdout carries the JSON alone (`npm run -s bench:migration -- --json > out.json`).
  const tables = opts.json ? process.stderr : process.stdout;
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: deleting the bench namespaces ${[...live].join(' ')}`);
    currentWorker?.kill('SIGKILL');
    deleteNamespaces([...live]);
    log(`work directory kept: ${work} (worker logs)`);
    void temporal?.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const port = await freePort();
    const stateDir = join(work, 'temporal');
    const { TEMPORAL_ADDRESS: _external, ...env } = process.env;
    const base = { ...env, KUBECONFIG: LAB_KUBECONFIG, FERRY_STATE_DIR: stateDir, FERRY_TEMPORAL_PORT: String(port), FERRY_TASK_QUEUE: `ferry-bench-${run}` };
    temporal = await resolveTemporal({ env: base, stateDir, port, headless: true });
    session = await openSession(base);
    const workerEnv: NodeJS.ProcessEnv = {
      ...base,
      FERRY_LOG_LEVEL: env.FERRY_LOG_LEVEL ?? 'info',
      FERRY_BENCH_COUNT_DIR: join(work, 'counts'),
      NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --require ${COUNTER}`.trim(),
    };
    if (!opts.tsx) {
      // the worker as shipped (package.json bin, Containerfile): compiled JavaScript, no TypeScript loader
      log('building dist/ (npm run build) for the worker');
      const built = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
      if (built.status !== 0) throw new Error(`npm run build failed: ${built.stdout}${built.stderr}`);
    }
    const b: Bench = { run, work, session, workerEnv, servers: apiServers(), opts, live };
    log(`run ${run}: ${scenarios.length} scenario(s), Temporal dev server ${temporal.address}, work dir ${work}`);
    for (const s of scenarios) {
      const r = await runScenario(b, s);
      results.push(r);
      tables.write(`\n${scenarioTable(r)}\n`);
    }
  } finally {
    deleteNamespaces([...live]);
    await session?.close().catch(() => undefined);
    await temporal?.stop().catch(() => undefined);
  }
  tables.write(`\n== bench:migration summary (${new Date().toISOString()}, ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} CPUs, shared lab)\n${summaryTable(results)}\n`);
  if (opts.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  const ok = results.every((r) => r.status === 'succeeded' && r.objectsLeft?.length === 0);
  if (ok && !opts.keep) rmSync(work, { recursive: true, force: true });
  else log(`work directory kept: ${work} (worker logs)`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  },
);
