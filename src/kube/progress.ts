/**
 * Following a transfer client pod: live progress from its log, and the verdict once its transfer
 * container has terminated.
 *
 * Log access: polling, not a streaming `follow`. Every `intervalSeconds` (default 5) the last lines
 * of the transfer container's log are read (`tailLines` 50, `limitBytes` 64 KiB) and fed to a fresh
 * parser; rsync's progress2 lines carry cumulative values, so the newest line is the progress. This
 * survives API-server disconnects, worker restarts and re-attachment without stream bookkeeping,
 * costs one small request per interval, and never double-counts (each poll is parsed on its own).
 * MTC tails 5 lines every 5 s but ADDS the percentages of retries (anchors.md); here nothing is summed.
 *
 * Verdict: the container's exit code (the pod wrapper exits with the engine's code) and the output
 * that explains it: the log's last 2,000 lines (1 MiB) when the log is still readable, else the
 * termination message (last 40 lines + `ferry-exit-code=N`, see pods/lifecycle.ts). rsync codes are
 * classified by `classifyRsyncExit`; rclone codes by `classifyRcloneExit` below.
 */
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { TransferProgress, TransferResult } from '../activities/contract';
import { parseTerminationMessage } from '../statetransfer/pods/lifecycle';
import { classifyRsyncExit, type RsyncExitClassification } from '../statetransfer/transfer/rsync/exit-codes';
import { RsyncOutputParser, type RsyncParseResult, type RsyncProgress } from '../statetransfer/transfer/rsync/parser';
import type { TransferType } from '../statetransfer/types';
import { isTransient, sleep, statusCode, type KubeClient } from './client';
import { AbortedError, FerryError, type FerryErrorCategory } from './errors';

/** Log lines read per progress poll. */
export const PROGRESS_TAIL_LINES = 50;
/** Bytes read at most per progress poll (a progress2 line is under 100 bytes). */
export const PROGRESS_LIMIT_BYTES = 64 * 1024;
/** Log lines read once the transfer has ended (failed files, STATS2). */
export const FINAL_TAIL_LINES = 2000;
/** Bytes read at most once the transfer has ended. */
export const FINAL_LIMIT_BYTES = 1024 * 1024;
/** Failed files kept in a TransferResult / failure message. */
export const MAX_REPORTED_FAILED_FILES = 100;

/**
 * Smallest whole percent from which the total size is estimated from bytes and percent. rsync prints
 * the percent truncated (progress.c: `(int)(100.0 * ofs / size)`), so the true fraction lies in
 * [P, P+1) %: bytes·100/P overestimated the total by up to 1/P (6 % at P = 16, as seen on the lab).
 * Dividing by P + 0.5 halves the error bound to 0.5/(P + 0.5): under 1 % from P = 50 on. Below it,
 * no total is reported (the CLI then shows the PVC's capacity as the scale and rsync's percent).
 */
export const MIN_PERCENT_FOR_TOTAL = 50;

/** Pure: TransferProgress from an rsync progress2 line (and the file-list scan counter). */
export function progressFromRsync(p: RsyncProgress | undefined, filesScanned?: number): TransferProgress | undefined {
  if (!p) return filesScanned !== undefined ? { bytes: 0, filesChecked: 0, filesTotal: filesScanned } : undefined;
  const out: TransferProgress = { bytes: p.bytes, percent: p.percent, rate: p.rateBytesPerSecond };
  // progress2's percentage is of the total known so far; with --no-inc-recursive it is final.
  if (!p.incremental) {
    if (p.percent === 100) out.totalBytes = p.bytes;
    else if (p.percent >= MIN_PERCENT_FOR_TOTAL) out.totalBytes = Math.round((p.bytes * 100) / (p.percent + 0.5));
  }
  if (p.etaSeconds !== undefined) out.eta = p.etaSeconds;
  if (p.filesTotal !== undefined) {
    out.filesTotal = p.filesTotal;
    if (p.filesToCheck !== undefined) out.filesChecked = p.filesTotal - p.filesToCheck;
  }
  return out;
}

const RCLONE_SIZE_UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4, PiB: 1024 ** 5, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };
const RCLONE_STATS_RE =
  /Transferred:\s+([\d.]+)\s*(B|[KMGTP]i?B)\s*\/\s*([\d.]+)\s*(B|[KMGTP]i?B),\s*(\d+|-)%?,\s*([\d.]+)\s*(B|[KMGTP]i?B)\/s,\s*ETA\s*(\S+)/;

/** "1h2m3s" / "45s" / "-" to seconds. */
function rcloneDuration(s: string): number | undefined {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?$/.exec(s);
  if (!m || s === '' || s === '-') return undefined;
  return Number(m[1] ?? 0) * 86400 + Number(m[2] ?? 0) * 3600 + Number(m[3] ?? 0) * 60 + Math.round(Number(m[4] ?? 0));
}

/**
 * Pure: TransferProgress from rclone `--stats-one-line` output ("Transferred: 1.000 GiB / 2.000 GiB,
 * 50%, 100.000 MiB/s, ETA 10s"); the newest such line in `text` wins.
 */
export function progressFromRclone(text: string): TransferProgress | undefined {
  let last: RegExpExecArray | undefined;
  for (const line of text.split(/[\r\n]+/)) {
    const m = RCLONE_STATS_RE.exec(line);
    if (m) last = m;
  }
  if (!last) return undefined;
  const size = (n: string, u: string) => Math.round(Number(n) * (RCLONE_SIZE_UNITS[u] ?? 1));
  const out: TransferProgress = { bytes: size(last[1]!, last[2]!), totalBytes: size(last[3]!, last[4]!), rate: size(last[6]!, last[7]!) };
  if (last[5] !== '-') out.percent = Number(last[5]);
  const eta = rcloneDuration(last[8]!);
  if (eta !== undefined) out.eta = eta;
  return out;
}

/** rclone exit codes (rclone docs, "Exit Code"). */
export const RCLONE_EXIT_MEANINGS: Readonly<Record<number, string>> = Object.freeze({
  0: 'Success',
  1: 'Syntax or usage error',
  2: 'Error not otherwise categorised',
  3: 'Directory not found',
  4: 'File not found',
  5: 'Temporary error (one that more retries might fix)',
  6: 'Less serious errors (like 461 errors from dropbox)',
  7: 'Fatal error (one that more retries will not fix, like account suspended)',
  8: 'Transfer exceeded - limit set by --max-transfer reached',
  9: 'Operation successful, but no files transferred',
});

/** How a transfer ended, engine-neutral. */
export interface TransferVerdict {
  outcome: 'success' | 'partial' | 'retryable' | 'fatal';
  /** For failures: which FerryError category to raise. */
  category?: FerryErrorCategory;
  explanation: string;
  failedFiles: string[];
  failedFilesOmitted: number;
}

/** Pure: classifies an rclone exit code with its output lines. */
export function classifyRcloneExit(code: number, lines: readonly string[]): TransferVerdict {
  const text = lines.join('\n');
  const base = { failedFiles: [] as string[], failedFilesOmitted: 0 };
  const meaning = RCLONE_EXIT_MEANINGS[code] ?? `Unknown exit code ${code}`;
  if (code === 0 || code === 9) return { ...base, outcome: 'success', explanation: 'All files were transferred.' };
  if (/no space left on device|disk quota exceeded/i.test(text)) {
    return { ...base, outcome: 'fatal', category: 'noSpace', explanation: 'Destination PVC too small: the destination ran out of space. Grow it, then retry.' };
  }
  if (/401 Unauthorized|403 Forbidden|certificate|x509|tls: /i.test(text)) {
    return { ...base, outcome: 'fatal', category: 'auth', explanation: `rclone could not authenticate to the transfer server (${meaning}): the credentials Secrets are out of sync or the certificate does not match the endpoint; recreate the server.` };
  }
  if (code === 5 || code === 2) return { ...base, outcome: 'retryable', explanation: `rclone: ${meaning}; retrying.` };
  return { ...base, outcome: 'fatal', category: code === 1 ? 'config' : 'fatal', explanation: `rclone exited with ${code} (${meaning}); check the client pod log.` };
}

/** Pure: maps an rsync classification to the engine-neutral verdict (failure categories included). */
export function verdictFromRsync(c: RsyncExitClassification, parsed: RsyncParseResult): TransferVerdict {
  const failedFiles = c.failedFiles.map((f) => f.path);
  const base = { explanation: `rsync exit ${c.code} (${c.meaning}): ${c.explanation}`, failedFiles, failedFilesOmitted: c.failedFilesOmitted };
  if (c.outcome !== 'fatal') return { ...base, outcome: c.outcome };
  const errno = parsed.errnoCounts ?? {};
  let category: FerryErrorCategory = 'fatal';
  if ((errno[28] ?? 0) > 0 || (errno[122] ?? 0) > 0 || /ran out of space/.test(c.explanation)) category = 'noSpace';
  else if (c.code === 5 && /auth failed/i.test(parsed.daemonError ?? '')) category = 'auth';
  else if (c.code === 5 || [1, 2, 3, 4].includes(c.code)) category = 'config';
  return { ...base, outcome: 'fatal', category };
}

/** What a terminated transfer container reported. */
export interface FinishedTransfer {
  exitCode: number;
  /** Output lines used for the verdict (log tail, else termination message). */
  lines: string[];
}

/** Options of `transferVerdict`. */
export interface VerdictOptions {
  engine: TransferType;
  /** Final sync (after quiesce): partial transfers fail it. */
  final: boolean;
  durationSeconds: number;
  /** Who the client ran as, for the fix hint of a partial transfer: root (preserve-ownership) or the
   * uid/gid of its pod security context. */
  client?: { root: boolean; uid?: number; gid?: number };
}

/**
 * Pure: the TransferResult of a finished transfer, or the FerryError to throw.
 * - success → result `success`;
 * - partial (rsync 23/24): stage sync → result (`success` with a note for 24 vanished files, which
 *   are expected while the application writes; `partial` for 23); final sync → FerryError `partial`
 *   naming the files;
 * - retryable → FerryError `transient`;
 * - fatal → FerryError `noSpace` / `auth` / `config` / `fatal` with the explanation.
 */
export function transferVerdict(finished: FinishedTransfer, options: VerdictOptions): TransferResult {
  const { exitCode, lines } = finished;
  let verdict: TransferVerdict;
  let stats: RsyncParseResult['stats'];
  if (options.engine === 'rsync') {
    const parser = new RsyncOutputParser({ maxFailedFiles: MAX_REPORTED_FAILED_FILES });
    parser.feed(`${lines.join('\n')}\n`);
    parser.end();
    const parsed = parser.result();
    stats = parsed.stats;
    verdict = verdictFromRsync(classifyRsyncExit(exitCode, parsed), parsed);
  } else {
    verdict = classifyRcloneExit(exitCode, lines);
  }
  const failedFiles = verdict.failedFiles.slice(0, MAX_REPORTED_FAILED_FILES);
  const omitted = verdict.failedFilesOmitted + Math.max(0, verdict.failedFiles.length - MAX_REPORTED_FAILED_FILES);
  const filesNote = failedFiles.length ? ` Files: ${failedFiles.slice(0, 10).join(', ')}${failedFiles.length + omitted > 10 ? ` and ${failedFiles.length + omitted - 10} more` : ''}.` : '';
  const details = { exitCode, failedFiles, failedFilesOmitted: omitted };
  if (verdict.outcome === 'retryable') throw new FerryError('transient', verdict.explanation, { details });
  if (verdict.outcome === 'fatal') throw new FerryError(verdict.category ?? 'fatal', verdict.explanation + filesNote, { details });
  // Issue 8 item 4: a partial stage pass names the cause and the fix; the workflow holds cutover back.
  let hint = '';
  const c = options.client;
  if (verdict.outcome === 'partial' && exitCode !== 24 && c && !c.root && /Permission denied \(13\)|Operation not permitted \(1\)/.test(lines.join('\n'))) {
    hint =
      ` The client runs as uid ${c.uid ?? 'of the transfer image'}${c.gid !== undefined ? ` (gid ${c.gid})` : ''} and cannot read these files: ` +
      "use security mode preserve-ownership, or set security.runAsUser/runAsGroup (or fsGroup) to the workload's ids.";
  }
  if (verdict.outcome === 'partial' && options.final) {
    throw new FerryError('partial', `final sync incomplete: ${verdict.explanation}${filesNote}${hint}`, { details });
  }
  const vanishedOnly = verdict.outcome === 'partial' && exitCode === 24;
  const result: TransferResult = {
    exitCode,
    outcome: verdict.outcome === 'success' || vanishedOnly ? 'success' : 'partial',
    message: vanishedOnly ? `stage sync complete; some files vanished while the application was writing (expected before quiesce).${filesNote}` : verdict.outcome === 'partial' ? `${verdict.explanation}${filesNote}${hint}` : verdict.explanation,
    durationSeconds: options.durationSeconds,
  };
  if (failedFiles.length) result.failedFiles = failedFiles;
  if (stats) {
    const sent = stats.totalBytesSent ?? stats.sentBytes;
    if (sent !== undefined) result.bytesSent = sent;
    const size = stats.totalFileSizeBytes ?? stats.totalSizeBytes;
    if (size !== undefined) result.totalFileSize = size;
    if (stats.regularFilesTransferred !== undefined) result.filesTransferred = stats.regularFilesTransferred;
    if (stats.files?.total !== undefined) result.numberOfFiles = stats.files.total;
  }
  return result;
}

/** The state of the transfer container of a client pod (pure). */
export type TransferContainerState =
  | { state: 'waiting'; reason?: string; message?: string }
  | { state: 'running' }
  | { state: 'terminated'; exitCode: number; message?: string };

/** Name of the transfer container: the first container of the client pod (pods/pods.ts buildClientPod). */
export function transferContainerName(pod: V1Pod): string {
  return pod.spec?.containers?.[0]?.name ?? 'rsync';
}

/** Pure: the transfer container's state from the pod status. */
export function transferContainerState(pod: V1Pod): TransferContainerState {
  const name = transferContainerName(pod);
  const cs: V1ContainerStatus | undefined = pod.status?.containerStatuses?.find((c) => c.name === name);
  const t = cs?.state?.terminated;
  if (t) return { state: 'terminated', exitCode: t.exitCode, ...(t.message ? { message: t.message } : {}) };
  if (cs?.state?.running) return { state: 'running' };
  const w = cs?.state?.waiting;
  return { state: 'waiting', ...(w?.reason ? { reason: w.reason } : {}), ...(w?.message ? { message: w.message } : {}) };
}

/** Seconds a pod may stay in each trouble state before it is reported. */
export interface PendingLimits {
  /** ErrImagePull / ImagePullBackOff (default 180: MTC warns after 3 min). */
  imagePullSeconds: number;
  /** CreateContainerConfigError / CreateContainerError (default 60). */
  containerConfigSeconds: number;
  /** Unschedulable (default 600: MTC warns when a pod is Pending for 10 min). */
  unschedulableSeconds: number;
}

/** Defaults of PendingLimits. */
export const DEFAULT_PENDING_LIMITS: PendingLimits = Object.freeze({ imagePullSeconds: 180, containerConfigSeconds: 60, unschedulableSeconds: 600 });

/**
 * Pure: why a pod that has not finished cannot make progress, once it has been stuck longer than the
 * limits; undefined while it may still start. `stuckSeconds` = time since the pod was created.
 */
export function podTrouble(pod: V1Pod, stuckSeconds: number, limits: PendingLimits = DEFAULT_PENDING_LIMITS): FerryError | undefined {
  const where = `pod ${pod.metadata?.namespace}/${pod.metadata?.name}`;
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const cs of statuses) {
    const w = cs.state?.waiting;
    if (!w?.reason) continue;
    const msg = w.message ? `: ${w.message}` : '';
    if (w.reason === 'InvalidImageName') return new FerryError('config', `${where}: invalid image ${cs.image}${msg}; fix transferImage in the plan`);
    if ((w.reason === 'ErrImagePull' || w.reason === 'ImagePullBackOff') && stuckSeconds >= limits.imagePullSeconds) {
      return new FerryError('config', `${where}: cannot pull image ${cs.image} for ${Math.round(stuckSeconds)} s${msg}; check transferImage, registry access and imagePullSecrets`);
    }
    if ((w.reason === 'CreateContainerConfigError' || w.reason === 'CreateContainerError') && stuckSeconds >= limits.containerConfigSeconds) {
      return new FerryError('config', `${where}: container ${cs.name} cannot be created (${w.reason}${msg})`);
    }
  }
  if (pod.status?.phase === 'Failed' && !statuses.some((c) => c.state?.terminated)) {
    return new FerryError('transient', `${where} failed before its containers ran (${pod.status.reason ?? 'unknown reason'}${pod.status.message ? `: ${pod.status.message}` : ''})`);
  }
  const sched = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (sched?.status === 'False' && sched.reason === 'Unschedulable' && stuckSeconds >= limits.unschedulableSeconds) {
    return new FerryError(
      'transient',
      `${where} cannot be scheduled after ${Math.round(stuckSeconds)} s: ${sched.message ?? 'no reason given'} (a ReadWriteOnce volume pins the pod to the node of the workload using it; is that node full or gone?)`,
    );
  }
  return undefined;
}

/** Options of `followTransferPod`. */
export interface FollowOptions {
  namespace: string;
  name: string;
  engine: TransferType;
  /** Seconds between polls (default 5). */
  intervalSeconds?: number;
  /** Called after every poll with the latest progress (undefined before the first progress line). */
  onProgress?: (progress: TransferProgress | undefined, podPhase: string) => void;
  /** Stops following (AbortedError); the caller deletes the pod. */
  signal?: AbortSignal;
  pendingLimits?: PendingLimits;
  /** uid of the pod to follow: a pod of the same name with another uid (a replacement made by
   * another attempt or sync) ends the follow with a transient error instead of reporting its result. */
  uid?: string;
}

/** Reads the tail of a container's log; '' when the log is not available (yet / anymore). */
export async function readLogTail(client: KubeClient, namespace: string, name: string, container: string, tailLines: number, limitBytes: number): Promise<string> {
  try {
    return await client.core.readNamespacedPodLog({ name, namespace, container, tailLines, limitBytes });
  } catch (err) {
    const code = statusCode(err);
    if (code === 400 || code === 404) return '';
    throw err;
  }
}

/**
 * Follows a client pod until its transfer container terminates and returns the exit code and the
 * explaining output. Transient API errors while polling are tolerated (the next poll retries).
 * @throws FerryError (transient) when the pod disappears; the FerryError of `podTrouble` when it is
 *   stuck; AbortedError when `signal` aborts.
 */
export async function followTransferPod(client: KubeClient, options: FollowOptions): Promise<FinishedTransfer> {
  const interval = (options.intervalSeconds ?? 5) * 1000;
  let last: TransferProgress | undefined;
  for (;;) {
    if (options.signal?.aborted) throw new AbortedError();
    let pod: V1Pod | undefined;
    try {
      pod = await client.get<V1Pod>({ apiVersion: 'v1', kind: 'Pod', namespace: options.namespace, name: options.name });
    } catch (err) {
      if (!isTransient(err)) throw err;
      options.onProgress?.(last, 'Unknown');
      await sleep(interval, options.signal);
      continue;
    }
    if (!pod) throw new FerryError('transient', `client pod ${options.namespace}/${options.name} disappeared before its transfer finished (deleted or evicted)`);
    if (options.uid && pod.metadata?.uid && pod.metadata.uid !== options.uid) {
      throw new FerryError('transient', `client pod ${options.namespace}/${options.name} was replaced by another attempt or sync while this one followed it`);
    }
    const container = transferContainerName(pod);
    const state = transferContainerState(pod);
    if (state.state === 'terminated') {
      const tail = await readLogTail(client, options.namespace, options.name, container, FINAL_TAIL_LINES, FINAL_LIMIT_BYTES).catch(() => '');
      const report = parseTerminationMessage(state.message);
      const lines = tail.trim() ? tail.split(/[\r\n]+/).filter((l) => l.length > 0) : report.lines;
      return { exitCode: state.exitCode, lines };
    }
    const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp as unknown as string | Date).getTime() : Date.now();
    if (state.state === 'waiting') {
      const trouble = podTrouble(pod, (Date.now() - created) / 1000, options.pendingLimits);
      if (trouble) throw trouble;
    } else {
      const tail = await readLogTail(client, options.namespace, options.name, container, PROGRESS_TAIL_LINES, PROGRESS_LIMIT_BYTES).catch(() => '');
      if (tail) {
        let p: TransferProgress | undefined;
        if (options.engine === 'rsync') {
          const parser = new RsyncOutputParser();
          parser.feed(tail);
          const r = parser.result();
          p = progressFromRsync(r.progress, r.filesScanned);
        } else p = progressFromRclone(tail);
        if (p) last = p;
      }
    }
    options.onProgress?.(last, pod.status?.phase ?? 'Unknown');
    await sleep(interval, options.signal);
  }
}
