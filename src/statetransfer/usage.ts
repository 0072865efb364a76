/**
 * Volume usage, as the dry run (`ferry plan`) measures it: a short read-only pod (pods/reader.ts)
 * walks the PVC's tree once and reads a sample of its content. Pure: the script, the pod and the
 * parser; migration/dry-run.ts runs them.
 *
 * What is counted: entries by type (find's %y), the bytes rsync would send on a first copy (the
 * apparent size of every non-directory, each hard-linked inode once: rsync -H sends it once), the
 * bytes allocated on disk (st_blocks × 512: less than the size for sparse files), how many entries
 * the pod could not read (find's error lines: in restricted mode, directories the workload's
 * identity cannot enter), and the time the walk took (close to what rsync spends building its file
 * list). lost+found and Ferry's partial directories are skipped, as the transfer skips them.
 *
 * The read sample: up to `sampleBytes` of file content, in find's order, read with `cat` and timed;
 * many small files read slower than one large one, as they will in the copy. The rate is the source
 * volume's read rate from that node, an upper bound for the copy's rate (the network and the
 * destination's writes come on top); content in the node's page cache reads faster than from disk.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { buildVolumeReaderPod, type VolumeReaderPodOptions } from './pods/reader';

/** Where the PVC is mounted (read-only) in the usage pod. */
export const USAGE_MOUNT = '/data';
/** The usage pod's container name. */
export const USAGE_CONTAINER = 'usage';
/** The summary line's prefix. */
export const USAGE_SUMMARY_PREFIX = 'ferry-usage:';
/** The usage pod's own limit (activeDeadlineSeconds), seconds. */
export const USAGE_POD_DEADLINE_SECONDS = 3600;

/** What the usage pod measured in one PVC. */
export interface VolumeUsage {
  /** Regular files. */
  files: number;
  directories: number;
  symlinks: number;
  /** Device nodes, FIFOs, sockets. */
  others: number;
  /** Bytes a first copy sends: apparent sizes of non-directories, each hard-linked inode once. */
  bytes: number;
  /** Bytes allocated on disk (st_blocks × 512), directories included. */
  allocatedBytes: number;
  /** Entries the pod could not read (their content is not counted). */
  unreadable: number;
  /** Time the walk of the tree took, seconds. */
  walkSeconds: number;
  /** Bytes read by the sample, and the time it took, seconds. */
  sampleBytes: number;
  sampleSeconds: number;
}

/** The usage script: walks the tree at `dir` (default USAGE_MOUNT), reads a sample of up to
 * `sampleBytes` bytes and prints one USAGE_SUMMARY_PREFIX line (see parseUsage); exit 3 when the
 * volume cannot be entered. */
export function usageScript(sampleBytes: number, dir: string = USAGE_MOUNT): string {
  if (!Number.isSafeInteger(sampleBytes) || sampleBytes < 0) throw new Error(`invalid sample size ${sampleBytes}`);
  const prune = "\\( -path ./lost+found -o -name '.ferry-partial*' \\) -prune -o";
  return [
    'set -uo pipefail',
    `cd ${dir} || { echo "${USAGE_SUMMARY_PREFIX} error=cannot enter the volume"; exit 3; }`,
    'errs=$(mktemp)',
    't0=$(date +%s%N)',
    // type size blocks inode links; hard-linked inodes (links > 1) count their bytes once
    `counts=$(find . -xdev -mindepth 1 ${prune} -printf '%y %s %b %i %n\\n' 2>"$errs" | awk '`,
    "  { alloc += $3 * 512 }",
    "  $1 == \"d\" { d++; next }",
    "  $1 == \"f\" { f++ } $1 == \"l\" { l++ } $1 != \"f\" && $1 != \"l\" { o++ }",
    "  $5 > 1 { if (seen[$4]++) next }",
    "  { b += $2 }",
    "  END { printf \"files=%d dirs=%d symlinks=%d other=%d bytes=%.0f allocated=%.0f\", f, d, l, o, b, alloc }')",
    't1=$(date +%s%N)',
    'unreadable=$(grep -c . "$errs")',
    `got=$(find . -xdev -mindepth 1 ${prune} -type f -size +0 -print0 2>/dev/null | xargs -0 -r cat -- 2>/dev/null | head -c ${sampleBytes} | wc -c)`,
    't2=$(date +%s%N)',
    `echo "${USAGE_SUMMARY_PREFIX} $counts unreadable=$unreadable walk_ns=$((t1 - t0)) sample_bytes=$got sample_ns=$((t2 - t1))"`,
  ].join('\n');
}

/** Options of `buildUsagePod`: a reader pod's (pods/reader.ts) without what the usage pod sets. */
export type UsagePodOptions = Omit<VolumeReaderPodOptions, 'container' | 'script' | 'mountPath' | 'deadlineSeconds'> & {
  /** Bytes of content the sample reads at most. */
  sampleBytes: number;
};

/** The usage pod of one PVC. Pure. */
export function buildUsagePod(o: UsagePodOptions): V1Pod {
  const { sampleBytes, ...reader } = o;
  return buildVolumeReaderPod({ ...reader, container: USAGE_CONTAINER, script: usageScript(sampleBytes), mountPath: USAGE_MOUNT, deadlineSeconds: USAGE_POD_DEADLINE_SECONDS });
}

/**
 * Pure: the usage in a usage pod's log; undefined before the summary line is printed.
 * @throws Error with the pod's own message when it printed `error=`.
 */
export function parseUsage(log: string): VolumeUsage | undefined {
  const line = log.split('\n').find((l) => l.startsWith(USAGE_SUMMARY_PREFIX));
  if (!line) return undefined;
  const error = /error=(.*)$/.exec(line);
  if (error) throw new Error(error[1]!.trim());
  const field = (k: string): number => {
    const m = new RegExp(`\\b${k}=(\\d+)`).exec(line);
    if (!m) throw new Error(`the usage summary has no ${k}: ${line.slice(0, 200)}`);
    return Number(m[1]);
  };
  return {
    files: field('files'),
    directories: field('dirs'),
    symlinks: field('symlinks'),
    others: field('other'),
    bytes: field('bytes'),
    allocatedBytes: field('allocated'),
    unreadable: field('unreadable'),
    walkSeconds: field('walk_ns') / 1e9,
    sampleBytes: field('sample_bytes'),
    sampleSeconds: field('sample_ns') / 1e9,
  };
}

/** Pure: the sample's read rate in bytes per second; undefined when too little was read to say
 * (less than 1 MiB, or under 10 ms). */
export function readRate(u: Pick<VolumeUsage, 'sampleBytes' | 'sampleSeconds'>): number | undefined {
  if (u.sampleBytes < 1024 * 1024 || u.sampleSeconds < 0.01) return undefined;
  return u.sampleBytes / u.sampleSeconds;
}
