/**
 * End-to-end helpers over the lab (hack/lab) shared by hack/demo.sh (through hack/e2e/verify.ts) and
 * test/e2e: seeding the sample namespace, PVC manifests read inside the clusters, comparing them, the
 * source workloads' state, Ferry objects left over, image digests, and the figures of a summary.
 *
 * Everything goes through kubectl, skopeo and the two bash scripts next to this file, so that what the
 * demo checks and what the tests check are the same thing.
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { LABELS, migrationKey } from '../../src/statetransfer/names';
import { parsePlan } from '../../src/plan/load';
import type { MigrationPlan } from '../../src/plan/schema';
import type { MigrationState, NamespaceState } from '../../src/core/state';
import { WORKER_NODE_FLAGS } from '../../src/temporal/worker-heap';

const execFileAsync = promisify(execFile);

export const LAB_KUBECONFIG = process.env.FERRY_LAB_KUBECONFIG ?? '/var/lib/ferry-lab/kubeconfig';
export const LAB_STATE = process.env.FERRY_LAB_STATE ?? '/var/lib/ferry-lab';
export const REGISTRY_CA_DIR = join(LAB_STATE, 'registries');
export const SRC_REGISTRY = { url: '127.0.0.1:15000', authFile: join(LAB_STATE, 'registries/src/auth.json'), caFile: join(LAB_STATE, 'registries/ca.crt') };
export const DST_REGISTRY = { url: '127.0.0.1:25000', authFile: join(LAB_STATE, 'registries/dst/auth.json'), caFile: join(LAB_STATE, 'registries/ca.crt') };
export const E2E_DIR = __dirname;
export const MANAGED_BY = 'app.kubernetes.io/managed-by=ferry';

type Ctx = 'ferry-src' | 'ferry-dst';
const env = () => ({ ...process.env, KUBECONFIG: LAB_KUBECONFIG });

/** kubectl in one of the lab's clusters (synchronous, throws with stderr on failure). */
export function kubectl(ctx: Ctx, args: string[], input?: string): string {
  return execFileSync('kubectl', ['--context', ctx, ...args], { env: env(), encoding: 'utf8', maxBuffer: 256 << 20, ...(input !== undefined ? { input } : {}), stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Options of the sample namespace (hack/e2e/sample-app.sh). */
export interface SampleOptions {
  profile?: 'full' | 'small';
  owners?: 'mixed' | 'app';
  filesSize?: string;
  bigMiB?: number;
  sparse?: string;
  dstNamespace?: string;
}

/** Seeds (recreates) the sample namespace in src (and deletes dstNamespace in dst). */
export async function seedSample(namespace: string, o: SampleOptions = {}): Promise<void> {
  await execFileAsync('bash', [join(E2E_DIR, 'sample-app.sh'), namespace], {
    env: {
      ...env(),
      SAMPLE_PROFILE: o.profile ?? 'full',
      SAMPLE_OWNERS: o.owners ?? 'mixed',
      ...(o.filesSize ? { SAMPLE_FILES_SIZE: o.filesSize } : {}),
      ...(o.bigMiB !== undefined ? { SAMPLE_BIG_MB: String(o.bigMiB) } : {}),
      ...(o.sparse ? { SAMPLE_SPARSE: o.sparse } : {}),
      ...(o.dstNamespace ? { SAMPLE_DST_NS: o.dstNamespace } : {}),
    },
    maxBuffer: 64 << 20,
    timeout: 900_000,
  });
}

/** The manifest of a PVC's tree, read by a pod in its cluster (hack/e2e/manifest.sh). */
export async function manifest(ctx: Ctx, namespace: string, pvc: string, opts: { owners?: boolean } = {}): Promise<string> {
  const { stdout } = await execFileAsync('bash', [join(E2E_DIR, 'manifest.sh'), ctx, namespace, pvc, ...(opts.owners === false ? ['--no-owners'] : [])], {
    env: env(),
    maxBuffer: 256 << 20,
    timeout: 600_000,
  });
  return stdout;
}

interface Entry {
  type: string;
  mode: string;
  uid: string;
  gid: string;
  size: string;
  target: string;
  blocks: string;
  mtime: string;
  sha: string;
  group: string;
}

function parseManifest(text: string): Map<string, Entry> {
  const m = new Map<string, Entry>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.split('|');
    // Paths may contain '|': the last 10 fields are fixed.
    const tail = f.slice(-10);
    const path = f.slice(0, f.length - 10).join('|');
    const [type, mode, uid, gid, size, target, blocks, mtime, sha, group] = tail as [string, string, string, string, string, string, string, string, string, string];
    m.set(path, { type, mode, uid, gid, size, target, blocks, mtime, sha, group });
  }
  return m;
}

/** What a manifest comparison found. */
export interface ManifestComparison {
  entries: number;
  files: number;
  bytes: number;
  /** Human-readable differences (empty: identical). */
  differences: string[];
}

/**
 * Compares two manifests. Every field must be equal, except the allocated blocks of a regular file:
 * rsync --sparse turns runs of zeros into holes, so the destination may allocate fewer blocks, never
 * more (a sparse source file must stay sparse).
 */
export function compareManifests(source: string, destination: string): ManifestComparison {
  const s = parseManifest(source);
  const d = parseManifest(destination);
  const differences: string[] = [];
  let files = 0;
  let bytes = 0;
  for (const [path, a] of s) {
    const b = d.get(path);
    if (!b) {
      differences.push(`missing at the destination: ${path}`);
      continue;
    }
    if (a.type === 'f') {
      files++;
      bytes += Number(a.size);
    }
    for (const k of ['type', 'mode', 'uid', 'gid', 'size', 'target', 'mtime', 'sha', 'group'] as const) {
      if (a[k] !== b[k]) differences.push(`${path}: ${k} ${a[k]} at the source, ${b[k]} at the destination`);
    }
    // Sparseness: only files with holes at the source (allocated < size) can have a hole filled; the
    // allocation of a dense file may differ by a few metadata blocks between two filesystems. A
    // filled hole shows as at least 64 KiB more allocated at the destination.
    const sparseAtSource = a.type === 'f' && a.blocks !== '-' && Number(a.blocks) * 512 < Number(a.size);
    if (sparseAtSource && (Number(b.blocks) - Number(a.blocks)) * 512 >= 65536) {
      differences.push(`${path}: ${b.blocks} blocks at the destination, ${a.blocks} at the source (a hole was filled)`);
    }
  }
  for (const path of d.keys()) if (!s.has(path)) differences.push(`only at the destination: ${path}`);
  return { entries: s.size, files, bytes, differences };
}

/** Manifests of every PVC of a namespace pair, compared. */
export async function comparePVCs(srcNs: string, dstNs: string, pvcs: string[], opts: { owners?: boolean } = {}): Promise<Record<string, ManifestComparison>> {
  const out: Record<string, ManifestComparison> = {};
  // One PVC at a time per cluster keeps the 2-core machine responsive; both clusters in parallel.
  for (const pvc of pvcs) {
    const [a, b] = await Promise.all([manifest('ferry-src', srcNs, pvc, opts), manifest('ferry-dst', dstNs, pvc, opts)]);
    out[pvc] = compareManifests(a, b);
  }
  return out;
}

/** PVC names and phases of a namespace. */
export function pvcPhases(ctx: Ctx, namespace: string): Record<string, string> {
  const items = JSON.parse(kubectl(ctx, ['-n', namespace, 'get', 'pvc', '-o', 'json'])).items as { metadata: { name: string }; status?: { phase?: string } }[];
  return Object.fromEntries(items.map((p) => [p.metadata.name, p.status?.phase ?? '']));
}

/**
 * The state of the source workloads that quiesce touches: replicas, suspend, parallelism, and any
 * ferry.dev annotation left on them. Compare a snapshot taken before the migration with one after.
 */
export function workloadState(namespace: string): Record<string, unknown> {
  const list = JSON.parse(kubectl('ferry-src', ['-n', namespace, 'get', 'deployments,statefulsets,cronjobs,jobs,daemonsets', '-o', 'json'])).items as any[];
  const state: Record<string, unknown> = {};
  for (const o of list) {
    // Jobs created by a CronJob come and go with its schedule: not part of the state.
    if (o.kind === 'Job' && (o.metadata.ownerReferences ?? []).some((r: any) => r.kind === 'CronJob')) continue;
    const ferryAnnotations = Object.keys(o.metadata.annotations ?? {}).filter((k) => k.startsWith('ferry.dev/'));
    state[`${o.kind}/${o.metadata.name}`] = {
      ...(o.spec.replicas !== undefined ? { replicas: o.spec.replicas } : {}),
      ...(o.kind === 'Deployment' ? { paused: o.spec.paused ?? false } : {}),
      ...(o.kind === 'CronJob' ? { suspend: o.spec.suspend ?? false } : {}),
      ...(o.kind === 'Job' ? { parallelism: o.spec.parallelism } : {}),
      ...(o.kind === 'DaemonSet' ? { nodeSelector: o.spec.template.spec.nodeSelector ?? {} } : {}),
      ...(ferryAnnotations.length ? { ferryAnnotations } : {}),
    };
  }
  return state;
}

/** Ready replicas of the Deployments and StatefulSets (to wait until the restored apps run again). */
export function readyReplicas(namespace: string): Record<string, number> {
  const list = JSON.parse(kubectl('ferry-src', ['-n', namespace, 'get', 'deployments,statefulsets', '-o', 'json'])).items as any[];
  return Object.fromEntries(list.map((o) => [`${o.kind}/${o.metadata.name}`, o.status?.readyReplicas ?? 0]));
}

/** Objects labelled app.kubernetes.io/managed-by=ferry in both clusters, as "ctx kind/ns/name";
 * only in `namespaces` when given, and only those of migration `migrationId` (its label
 * ferry.dev/migration=<migrationKey(id)>) when given, so that other migrations running on the same
 * clusters are not counted. */
export function ferryObjects(namespaces?: string[], migrationId?: string): string[] {
  const kinds = 'pods,services,configmaps,secrets,serviceaccounts,roles,rolebindings,jobs,deployments,networkpolicies,ingresses,poddisruptionbudgets';
  const selector = migrationId !== undefined ? `${MANAGED_BY},${LABELS.migration}=${migrationKey(migrationId)}` : MANAGED_BY;
  const out: string[] = [];
  for (const ctx of ['ferry-src', 'ferry-dst'] as const) {
    const items = JSON.parse(kubectl(ctx, ['get', kinds, '-A', '-l', selector, '-o', 'json'])).items as any[];
    for (const o of items) if (!namespaces || namespaces.includes(o.metadata.namespace)) out.push(`${ctx} ${o.kind}/${o.metadata.namespace}/${o.metadata.name}`);
  }
  return out;
}

/** Manifest digest of an image in a lab registry (undefined when missing). */
export async function imageDigest(registry: typeof SRC_REGISTRY, ref: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync('skopeo', ['inspect', '--authfile', registry.authFile, '--cert-dir', REGISTRY_CA_DIR, '--format', '{{.Digest}}', `docker://${registry.url}/${ref}`], { timeout: 60_000 });
    return stdout.trim();
  } catch {
    return undefined;
  }
}

/** Polls `fn` until it returns a truthy value. */
export async function waitUntil<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 180_000, intervalMs = 2000): Promise<NonNullable<Exclude<T, false | '' | 0>>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<Exclude<T, false | '' | 0>>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Why the lab cannot run end-to-end tests: no kubeconfig, no Ready node in either cluster, or one of
 * `tools` missing; undefined when it can.
 */
export function labUnavailable(tools: string[] = []): string | undefined {
  if (!existsSync(LAB_KUBECONFIG)) return `no lab kubeconfig at ${LAB_KUBECONFIG}`;
  for (const c of ['ferry-src', 'ferry-dst']) {
    const r = spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', c, 'get', 'nodes', '-o', 'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}'], { encoding: 'utf8', timeout: 30000 });
    if (r.status !== 0 || !r.stdout.includes('True')) return `no Ready node in ${c} (start the lab: bash hack/lab/lab.sh up)`;
  }
  for (const t of tools) if (spawnSync('which', [t]).status !== 0) return `${t} not installed`;
  return undefined;
}


/**
 * The gate of a lab drill: jest's `describe` when the lab is up and `tools` are on PATH, else
 * `describe.skip` with a warning naming the drill; with FERRY_REQUIRE_LAB=1 (CI) a lab that is not
 * available is an error instead.
 */
export function labGate(drill: string, tools: string[] = ['kubectl']): jest.Describe {
  const unavailable = labUnavailable(tools);
  if (unavailable && process.env.FERRY_REQUIRE_LAB === '1') throw new Error(`FERRY_REQUIRE_LAB=1 but the lab is not available: ${unavailable}`);
  if (unavailable) console.warn(`SKIPPED ${drill}: ${unavailable}. Start it with: bash hack/lab/lab.sh up (FERRY_REQUIRE_LAB=1 makes this a failure)`);
  return unavailable ? describe.skip : describe;
}
/** A free TCP port on 127.0.0.1, below 64000 (for a Temporal dev server). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    if (port < 64000) return port;
  }
}

/** The field of src/worker.ts's log line once a versioned worker has applied its set-current policy
 * (whatever the outcome: set, already-current, kept, never, failed). */
const PROMOTION_FIELD = '"promotion":"';

/**
 * Starts `ferry worker` (src/client.ts of the tree at `root`) as a child process with `env`, passes
 * every output chunk to `onOutput`, and resolves once it logged "worker started". With
 * FERRY_WORKER_CPU_PROF=<dir> in this process's environment the worker writes V8 CPU profiles there
 * when it exits (node --cpu-prof, which NODE_OPTIONS does not accept), e.g. for bench:migration.
 * `compiled`: run dist/client.js (build it first: `npm run build`), the worker as the image ships it.
 * `current`: also wait until a versioned worker has applied its set-current policy (src/worker.ts
 * `promote` logs the outcome), so that a migration started next runs at once instead of waiting for
 * the build to become current (0.5–2 s after "worker started" on the lab); an unversioned worker is
 * ready at "worker started".
 * The worker gets WORKER_NODE_FLAGS (src/temporal/worker-heap.ts) like `ferry worker` and the image.
 * @throws Error with its output when it exits first or does not start within 120 s (it is killed then).
 */
export async function startWorkerProcess(root: string, env: NodeJS.ProcessEnv, onOutput: (chunk: string) => void = () => undefined, options: { compiled?: boolean; current?: boolean } = {}): Promise<ChildProcess> {
  const profile = process.env.FERRY_WORKER_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.FERRY_WORKER_CPU_PROF}`] : [];
  // compiled: dist/client.js as shipped (npm run build), else the sources through tsx
  const entry = options.compiled ? [join(root, 'dist', 'client.js')] : ['--import', 'tsx', join(root, 'src', 'client.ts')];
  // the V8 heap flags `ferry worker` runs with (its shebang; node ignores a shebang when started like this)
  const child = spawn(process.execPath, [...WORKER_NODE_FLAGS, ...profile, ...entry, 'worker'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString();
    if (out.length > 1 << 20) out = out.slice(-(1 << 19));
    onOutput(d.toString());
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  try {
    await waitUntil(() => {
      if (child.exitCode !== null) throw new Error(`the worker exited ${child.exitCode}: ${out.slice(-2000)}`);
      const started = out.split('\n').find((l) => l.includes('"msg":"worker started"'));
      if (!started) return false;
      if (!options.current || !started.includes('"deployment":')) return true;
      return out.includes(PROMOTION_FIELD);
    }, options.current ? 'the worker to start and apply its set-current policy' : 'the worker to start', 120_000, options.current ? 100 : 500);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return child;
}

// ---------------------------------------------------------------------------------------------
// Figures of a finished migration (from its summary).

const MiB = 1024 * 1024;
const secs = (a: string, b?: string) => (b ? (Date.parse(b) - Date.parse(a)) / 1000 : NaN);

/** One row per phase: the migration's own, then each namespace's. */
export function phaseRows(state: MigrationState): { scope: string; phase: string; seconds: number }[] {
  const rows = state.phases.map((p) => ({ scope: 'migration', phase: p.name, seconds: secs(p.startedAt, p.endedAt) }));
  for (const n of state.namespaces) for (const p of n.result?.phases ?? []) rows.push({ scope: n.source, phase: p.name, seconds: secs(p.startedAt, p.endedAt) });
  return rows;
}

/** Data volume, bytes on the wire, throughput of the first stage pass, downtime. */
export function figures(state: MigrationState): {
  pvcs: number;
  dataBytes: number;
  files: number;
  bytesSent: number;
  stageSeconds: number;
  stageMiBps: number;
  downtimeSeconds: number;
  totalSeconds: number;
} {
  let dataBytes = 0;
  let files = 0;
  let stageSeconds = 0;
  const nss = state.namespaces.map((n) => n.result).filter((n): n is NamespaceState => !!n);
  for (const ns of nss) {
    for (const p of ns.pvcs) {
      dataBytes += p.lastSync?.totalFileSize ?? 0;
      files += p.lastSync?.numberOfFiles ?? 0;
    }
    const stage = ns.phases.find((p) => p.name === 'stage');
    if (stage) stageSeconds = Math.max(stageSeconds, secs(stage.startedAt, stage.endedAt));
  }
  const bytesSent = state.totals.bytesSent;
  return {
    pvcs: state.totals.pvcs,
    dataBytes,
    files,
    bytesSent,
    stageSeconds,
    stageMiBps: stageSeconds > 0 ? dataBytes / MiB / stageSeconds : NaN,
    downtimeSeconds: state.totals.downtimeSeconds ?? NaN,
    totalSeconds: secs(state.startedAt, state.endedAt),
  };
}

/** The figures as a small text table (what the closing note quotes). */
export function figuresTable(label: string, state: MigrationState): string {
  const f = figures(state);
  const lines = [`== ${label}: migration ${state.migrationId} ${state.status} in ${f.totalSeconds.toFixed(1)} s`];
  lines.push('phase                      scope                 seconds');
  for (const r of phaseRows(state)) lines.push(`${r.phase.padEnd(26)} ${r.scope.padEnd(20)} ${r.seconds.toFixed(1).padStart(8)}`);
  lines.push(
    `PVCs ${f.pvcs}, data ${(f.dataBytes / MiB).toFixed(1)} MiB in ${f.files} files, sent ${(f.bytesSent / MiB).toFixed(1)} MiB (stage + final), ` +
      `stage pass ${f.stageSeconds.toFixed(1)} s = ${f.stageMiBps.toFixed(1)} MiB/s of data, downtime ${f.downtimeSeconds.toFixed(1)} s`,
  );
  for (const n of state.namespaces) {
    for (const p of n.result?.pvcs ?? []) {
      const syncs = p.lastSync ? `last sync ${p.lastSync.durationSeconds.toFixed(1)} s, ${(p.lastSync.bytesSent / MiB).toFixed(2)} MiB sent` : '';
      lines.push(`  ${n.source}/${p.name}: ${p.status}, ${p.syncs} syncs, ${(p.bytesSent / MiB).toFixed(1)} MiB sent in all; ${syncs}`);
    }
    if (n.images.report) lines.push(`  images: ${n.images.report.copied.length} copied, ${n.images.report.skipped.length} skipped`);
  }
  return lines.join('\n');
}

/**
 * The application of the lab drills that drive the activities directly: Deployment `writer` (one
 * replica, pods labelled app=writer, 1 s grace) whose container `w` runs `script` with `sh -c` in
 * `image` (default lab/workload:latest), the PVC `data` mounted at /d (or `mounts`: each claim at its
 * path). Its pods are what quiesce stops.
 */
export function writerDeployment(namespace: string, script: string, options: { image?: string; mounts?: { claim: string; path: string }[] } = {}): KubernetesObject {
  const mounts = options.mounts ?? [{ claim: 'data', path: '/d' }];
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'writer', namespace },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'writer' } },
      template: {
        metadata: { labels: { app: 'writer' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'w', image: options.image ?? 'lab/workload:latest', imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', script], volumeMounts: mounts.map((m, i) => ({ name: i === 0 ? 'd' : `d${i}`, mountPath: m.path })) }],
          volumes: mounts.map((m, i) => ({ name: i === 0 ? 'd' : `d${i}`, persistentVolumeClaim: { claimName: m.claim } })),
        },
      },
    },
  } as KubernetesObject;
}

/**
 * Runs a one-off pod `name` with `spec` (restartPolicy Never is set) in `namespace` of cluster `ctx`,
 * waits until it Succeeded or Failed (up to `timeoutMs`), deletes it and returns its phase and log
 * (trimmed). The drills' readers and checkers of a PVC.
 */
export async function runPod(ctx: Ctx, namespace: string, name: string, spec: Record<string, unknown>, timeoutMs = 300_000): Promise<{ phase: string; log: string }> {
  kubectl(ctx, ['-n', namespace, 'apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { restartPolicy: 'Never', ...spec } }));
  const phase = await waitUntil(() => {
    const p = kubectl(ctx, ['-n', namespace, 'get', 'pod', name, '-o', 'jsonpath={.status.phase}']);
    return ['Succeeded', 'Failed'].includes(p) && p;
  }, `pod ${namespace}/${name} to finish`, timeoutMs, 1000);
  const log = kubectl(ctx, ['-n', namespace, 'logs', name]).trim();
  kubectl(ctx, ['-n', namespace, 'delete', 'pod', name, '--wait=false']);
  return { phase, log };
}

/** A migration plan between the lab's two clusters (kubeconfig and contexts set), with `fields`. */
export function labPlan(fields: Record<string, unknown>): MigrationPlan {
  return parsePlan({ source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' }, destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' }, ...fields });
}
