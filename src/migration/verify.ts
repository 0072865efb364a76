/**
 * Post-copy verification of migrated PVCs (issue 13: `verify: manifest`, `ferry verify ID`): a manifest
 * pod on each side (statetransfer/manifest.ts) reads the tree; equal digests end it, otherwise both
 * manifests are read through exec and compared entry by entry, and the differences are reported by
 * kind. Read-only: the PVCs are mounted read-only and nothing else is touched; the pods carry the
 * migration's labels, so cleanup removes any a crash left.
 */
import type { V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { FerryError, errorMessage } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import type { WorkloadIdentity } from '../core/types';
import { waitFor, type KubeClient } from '../k8s/client';
import { BLOCK_CHUNK_BYTES, blockRangeHashCommand, buildManifestPod, compareBlockManifests, compareManifests, MANIFEST_DEVICE, MANIFEST_FILE, parseBlockManifest, parseBlockManifestBytes, parseManifest, parseManifestSummary, type CompareOptions, type DifferenceKind, type ManifestDifference } from '../statetransfer/manifest';
import { objectLabels, objectName } from '../statetransfer/names';
import { readLogTail, transferContainerState } from './follow';

/** Differences listed in a result at most (the counts by kind cover all). */
export const MAX_LISTED_DIFFERENCES = 100;
/** Largest manifest read through exec, bytes (about 5 million entries). */
export const MAX_MANIFEST_BYTES = 1024 * 1024 * 1024;

/** One PVC to verify: where it is on each side. */
export interface VerifyTarget {
  sourceNamespace: string;
  sourcePVC: string;
  destinationNamespace: string;
  destinationPVC: string;
}

/** Options of `verifyPVC`. */
export interface VerifyOptions extends CompareOptions {
  migrationId: string;
  image: string;
  imagePullPolicy?: string;
  /** Run the manifest pods as root (preserve-ownership mode), else restricted with `identity`. */
  root: boolean;
  identity?: WorkloadIdentity;
  /** Content sha256 of every file (reads every byte on both sides). */
  hashes: boolean;
  /** Limit for each manifest pod to print its summary, seconds (default 3600). */
  timeoutSeconds?: number;
  signal?: AbortSignal;
  logger?: Logger;
}

/** The verdict for one PVC. */
export interface VerifyResult extends VerifyTarget {
  identical: boolean;
  /** Entries in the source tree. */
  entries: number;
  /** Counts of differences by kind. */
  byKind: Partial<Record<DifferenceKind, number>>;
  /** The first MAX_LISTED_DIFFERENCES differences, in path order. */
  differences: ManifestDifference[];
}

interface ManifestPod {
  client: KubeClient;
  namespace: string;
  name: string;
}

/** Creates the manifest pod of one side and waits for its summary line. */
async function startManifest(client: KubeClient, namespace: string, pvc: string, side: string, o: VerifyOptions, block = false): Promise<ManifestPod & { entries: number; sha256: string; bytes?: number }> {
  const name = objectName(o.migrationId, `verify-${side}`, pvc);
  const pod = buildManifestPod({
    name,
    namespace,
    labels: objectLabels(o.migrationId, 'verify'),
    pvcName: pvc,
    image: o.image,
    ...(o.imagePullPolicy ? { imagePullPolicy: o.imagePullPolicy } : {}),
    hashes: o.hashes,
    ...(block ? { block } : {}),
    root: o.root,
    ...(o.identity ? { identity: o.identity } : {}),
  });
  await client.delete({ apiVersion: 'v1', kind: 'Pod', namespace, name }, 0).catch(() => undefined);
  await waitFor(async () => ((await client.get({ apiVersion: 'v1', kind: 'Pod', namespace, name })) ? undefined : true), { timeoutSeconds: 60, intervalSeconds: 1, description: `old manifest pod ${namespace}/${name} to go`, ...(o.signal ? { signal: o.signal } : {}) });
  await client.createOrAdopt(pod);
  const summary = await waitFor(
    async () => {
      const p = await client.get<V1Pod>({ apiVersion: 'v1', kind: 'Pod', namespace, name });
      if (!p) throw new FerryError('transient', `manifest pod ${namespace}/${name} disappeared`);
      const log = await readLogTail(client, namespace, name, 'manifest', 20, 64 * 1024);
      const s = parseManifestSummary(log);
      const bytes = block ? parseBlockManifestBytes(log) : undefined;
      if (s) return bytes !== undefined ? { ...s, bytes } : s;
      const st = transferContainerState(p);
      if (st.state === 'terminated') {
        throw new FerryError('fatal', `the manifest pod ${namespace}/${name} could not read PVC ${pvc} (exit ${st.exitCode}): ${log.trim().split('\n').slice(-3).join(' | ') || 'no output'}${o.root ? '' : ' — in restricted mode files the workload identity cannot read stop the manifest: verify with preserve-ownership'}`);
      }
      return undefined;
    },
    { timeoutSeconds: o.timeoutSeconds ?? 3600, intervalSeconds: 2, description: `the manifest of ${side} PVC ${namespace}/${pvc}`, ...(o.signal ? { signal: o.signal } : {}) },
  );
  return { client, namespace, name, ...summary };
}

async function readFile(p: ManifestPod): Promise<string> {
  const r = await p.client.exec(p.namespace, p.name, 'manifest', ['cat', MANIFEST_FILE], { maxOutputBytes: MAX_MANIFEST_BYTES, timeoutSeconds: 600 });
  if (r.exitCode !== 0) throw new FerryError('transient', `could not read the manifest of ${p.namespace}/${p.name}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  return r.stdout;
}

async function readManifest(p: ManifestPod) {
  return parseManifest(await readFile(p));
}

/** A block volume's two manifests compared over the source's bytes (compareBlockManifests). */
async function compareBlockVolumes(t: VerifyTarget, a: ManifestPod & { bytes?: number }, b: ManifestPod & { bytes?: number }, log: Logger): Promise<VerifyResult> {
  if (a.bytes === undefined || b.bytes === undefined) throw new FerryError('fatal', `the manifest pods of block PVC ${t.sourcePVC} did not report the device sizes`);
  const [ca, cb] = await Promise.all([readFile(a), readFile(b)]).then((x) => x.map(parseBlockManifest));
  const tail = a.bytes % BLOCK_CHUNK_BYTES;
  let lastChunk: { source: string; destination: string } | undefined;
  if (tail && b.bytes > a.bytes) {
    // The source's last chunk is partial and the destination's is not: hash the destination over the same bytes.
    const offset = a.bytes - tail;
    const r = await b.client.exec(b.namespace, b.name, 'manifest', blockRangeHashCommand(MANIFEST_DEVICE, offset, tail), { timeoutSeconds: 600 });
    if (r.exitCode !== 0) throw new FerryError('transient', `could not hash the last ${tail} bytes of ${b.namespace}/${b.name}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
    lastChunk = { source: ca[ca.length - 1] ?? '', destination: r.stdout.trim() };
  }
  const diffs = compareBlockManifests({ bytes: a.bytes, chunks: ca }, { bytes: b.bytes, chunks: cb }, lastChunk);
  const byKind: Partial<Record<DifferenceKind, number>> = {};
  for (const d of diffs) byKind[d.kind] = (byKind[d.kind] ?? 0) + 1;
  log.info({ ...t, bytes: a.bytes, byKind }, diffs.length ? 'verify found differences in the block device' : 'verified: the block devices hold the same bytes');
  return { ...t, identical: diffs.length === 0, entries: ca.length, byKind, differences: diffs.slice(0, MAX_LISTED_DIFFERENCES) };
}

/**
 * Verifies one migrated PVC: identical when the two manifests' digests match; otherwise the entries
 * are compared and the differences counted by kind. A block PVC (the source claim's volumeMode) is
 * compared chunk by chunk over the source device's bytes (compareBlockVolumes). Both pods are deleted at the end whatever happened.
 * @throws FerryError when a side cannot be read (the pod's explanation), or on timeout.
 */
export async function verifyPVC(source: KubeClient, destination: KubeClient, t: VerifyTarget, o: VerifyOptions): Promise<VerifyResult> {
  const log = o.logger ?? silentLogger;
  const pods: ManifestPod[] = [];
  try {
    const claim = await source.get<V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: t.sourceNamespace, name: t.sourcePVC });
    const block = claim?.spec?.volumeMode === 'Block';
    const started = await Promise.allSettled([startManifest(source, t.sourceNamespace, t.sourcePVC, 'src', o, block), startManifest(destination, t.destinationNamespace, t.destinationPVC, 'dst', o, block)]);
    for (const s of started) if (s.status === 'fulfilled') pods.push(s.value);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    const [a, b] = started.map((s) => (s as PromiseFulfilledResult<ManifestPod & { entries: number; sha256: string; bytes?: number }>).value) as [ManifestPod & { entries: number; sha256: string; bytes?: number }, ManifestPod & { entries: number; sha256: string; bytes?: number }];
    if (block) return await compareBlockVolumes(t, a, b, log);
    if (a.sha256 === b.sha256) {
      log.info({ ...t, entries: a.entries }, 'verified: the trees are identical');
      return { ...t, identical: true, entries: a.entries, byKind: {}, differences: [] };
    }
    const [sa, sb] = await Promise.all([readManifest(a), readManifest(b)]);
    const diffs = compareManifests(sa, sb, o);
    const byKind: Partial<Record<DifferenceKind, number>> = {};
    for (const d of diffs) byKind[d.kind] = (byKind[d.kind] ?? 0) + 1;
    log.info({ ...t, entries: sa.length, byKind }, diffs.length ? 'verify found differences' : 'verified: same entries (the digests differ only in file-system details)');
    return { ...t, identical: diffs.length === 0, entries: sa.length, byKind, differences: diffs.slice(0, MAX_LISTED_DIFFERENCES) };
  } finally {
    for (const p of pods) await p.client.delete({ apiVersion: 'v1', kind: 'Pod', namespace: p.namespace, name: p.name }, 0).catch((e: unknown) => log.warn({ pod: p.name, error: errorMessage(e) }, 'could not delete a manifest pod'));
  }
}
