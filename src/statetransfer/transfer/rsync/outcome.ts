/**
 * What rsync's output means to Ferry: live progress from its progress2 lines and the engine-neutral
 * verdict of a finished run (exit code + output; the codes are rsync(1)'s "EXIT VALUES", classified in
 * exit-codes.ts). Pure.
 */
import type { FerryErrorCategory } from '../../../core/errors';
import type { TransferProgress, TransferStats, TransferVerdict } from '../../../core/types';
import { classifyRsyncExit, type RsyncExitClassification } from './exit-codes';
import { RsyncOutputParser, type RsyncParseResult, type RsyncProgress } from './parser';

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

/** Pure: the latest progress in the tail of rsync's output (undefined before its first progress line). */
export function rsyncProgressFromTail(tail: string): TransferProgress | undefined {
  const parser = new RsyncOutputParser();
  parser.feed(tail);
  const r = parser.result();
  return progressFromRsync(r.progress, r.filesScanned);
}

/** Pure: the verdict and end-of-run figures of a finished rsync run (at most `maxFailedFiles` named). */
export function rsyncOutcome(exitCode: number, lines: readonly string[], maxFailedFiles: number): { verdict: TransferVerdict; stats?: TransferStats } {
  const parser = new RsyncOutputParser({ maxFailedFiles });
  parser.feed(`${lines.join('\n')}\n`);
  parser.end();
  const parsed = parser.result();
  const verdict = verdictFromRsync(classifyRsyncExit(exitCode, parsed), parsed);
  const st = parsed.stats;
  if (!st) return { verdict };
  const stats: TransferStats = {};
  const sent = st.totalBytesSent ?? st.sentBytes;
  if (sent !== undefined) stats.bytesSent = sent;
  const size = st.totalFileSizeBytes ?? st.totalSizeBytes;
  if (size !== undefined) stats.totalFileSize = size;
  if (st.regularFilesTransferred !== undefined) stats.filesTransferred = st.regularFilesTransferred;
  if (st.files?.total !== undefined) stats.numberOfFiles = st.files.total;
  return { verdict, stats };
}
