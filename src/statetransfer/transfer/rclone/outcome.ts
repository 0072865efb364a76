/**
 * What rclone's output means to Ferry: live progress from its stats blocks and the engine-neutral
 * verdict of a finished run (exit codes: rclone docs, "Exit Code"). Pure.
 */
import type { TransferProgress, TransferStats, TransferVerdict } from '../../../core/types';

const RCLONE_SIZE_UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4, PiB: 1024 ** 5, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };
/**
 * rclone's byte stats: "Transferred:   \t  1.934 MiB / 5.722 MiB, 34%, 0 B/s, ETA -" in the stats
 * block, or the same figures after the log prefix with `--stats-one-line` ("INFO  :    97.662 KiB /
 * 97.662 KiB, 100%, 0 B/s, ETA -"). rclone 1.60 writes "-" for an unknown percentage or ETA.
 */
const RCLONE_STATS_RE =
  /(?:Transferred:|INFO\s*:)\s+([\d.]+)\s*(B|[KMGTP]i?B)\s*\/\s*([\d.]+)\s*(B|[KMGTP]i?B),\s*(\d+|-)%?,\s*([\d.]+)\s*(B|[KMGTP]i?B)\/s,\s*ETA\s*(\S+)/;
/** The stats block's file counters: "Transferred:            3 / 4, 75%", "Checks:  4 / 4, 100%". */
const RCLONE_COUNT_RE = /^\s*(Transferred|Checks):\s+(\d+)\s*\/\s*(\d+),/;
const RCLONE_DELETED_RE = /^\s*Deleted:\s+(\d+)\s*\(files\)/;

/** "1h2m3s" / "45s" / "-" to seconds. */
function rcloneDuration(s: string): number | undefined {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?$/.exec(s);
  if (!m || s === '' || s === '-') return undefined;
  return Number(m[1] ?? 0) * 86400 + Number(m[2] ?? 0) * 3600 + Number(m[3] ?? 0) * 60 + Math.round(Number(m[4] ?? 0));
}

/** Figures of rclone's newest stats block (rclone 1.60, `--stats` without `--stats-one-line`). */
export interface RcloneStats {
  /** File bytes transferred so far (the "Transferred:" size line). */
  bytes: number;
  /** Bytes expected in all (grows while rclone still lists). */
  totalBytes: number;
  percent?: number;
  /** Bytes per second. */
  rate: number;
  /** Seconds. */
  eta?: number;
  /** Files transferred / to transfer (the "Transferred:" count line). */
  filesTransferred?: number;
  filesToTransfer?: number;
  /** Files compared with the destination ("Checks:"). */
  checks?: number;
  /** Files deleted at the destination ("Deleted: N (files)"). */
  deletedFiles?: number;
}

/**
 * Pure: the newest stats block in rclone output; undefined when there is none. The counters that
 * follow a size line belong to it (rclone prints the size line first in each block).
 */
export function parseRcloneStats(text: string): RcloneStats | undefined {
  let cur: RcloneStats | undefined;
  const size = (n: string, u: string) => Math.round(Number(n) * (RCLONE_SIZE_UNITS[u] ?? 1));
  for (const line of text.split(/[\r\n]+/)) {
    const m = RCLONE_STATS_RE.exec(line);
    if (m) {
      cur = { bytes: size(m[1]!, m[2]!), totalBytes: size(m[3]!, m[4]!), rate: size(m[6]!, m[7]!) };
      if (m[5] !== '-') cur.percent = Number(m[5]);
      const eta = rcloneDuration(m[8]!);
      if (eta !== undefined) cur.eta = eta;
      continue;
    }
    if (!cur) continue;
    const c = RCLONE_COUNT_RE.exec(line);
    if (c?.[1] === 'Transferred') {
      cur.filesTransferred = Number(c[2]);
      cur.filesToTransfer = Number(c[3]);
    } else if (c?.[1] === 'Checks') cur.checks = Number(c[2]);
    const d = RCLONE_DELETED_RE.exec(line);
    if (d) cur.deletedFiles = Number(d[1]);
  }
  return cur;
}

/**
 * Pure: TransferProgress from rclone output (the stats block's "Transferred: 1.000 GiB / 2.000 GiB,
 * 50%, 100.000 MiB/s, ETA 10s", or the `--stats-one-line` form); the newest stats win.
 */
export function progressFromRclone(text: string): TransferProgress | undefined {
  const st = parseRcloneStats(text);
  if (!st) return undefined;
  const out: TransferProgress = { bytes: st.bytes, totalBytes: st.totalBytes, rate: st.rate };
  if (st.percent !== undefined) out.percent = st.percent;
  if (st.eta !== undefined) out.eta = st.eta;
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

/** Pure: classifies an rclone exit code with its output lines. */
export function classifyRcloneExit(code: number, lines: readonly string[]): TransferVerdict {
  const text = lines.join('\n');
  const base = { failedFiles: [] as string[], failedFilesOmitted: 0 };
  const meaning = RCLONE_EXIT_MEANINGS[code] ?? `Unknown exit code ${code}`;
  if (/no hashes in common/i.test(text)) {
    // rclone then compares sizes only and may keep old content of files rewritten in place.
    return { ...base, outcome: 'fatal', category: 'config', explanation: 'rclone could not compare checksums (source and destination have no hash in common) and fell back to sizes, which can miss files changed in place: the transfer image\'s rclone must serve md5sum over SFTP (rclone serve sftp does); use transfer: rsync otherwise.' };
  }
  if (code === 0 || code === 9) {
    // rclone skips FIFOs, sockets and devices with a NOTICE and exits 0: say so.
    const skipped = lines.map((l) => /NOTICE: (.*): Can't transfer non file\/directory/.exec(l)?.[1]).filter((x): x is string => x !== undefined);
    const note = skipped.length ? ` rclone skipped ${skipped.length} special file(s) it cannot copy (FIFOs, sockets, devices): ${skipped.slice(0, 5).join(', ')}${skipped.length > 5 ? ', …' : ''}.` : '';
    return { ...base, outcome: 'success', explanation: `All files were transferred.${note}` };
  }
  if (/unable to authenticate|knownhosts: key (mismatch|is unknown)/i.test(text)) {
    return { ...base, outcome: 'fatal', category: 'auth', explanation: `rclone could not log in to the transfer server over SSH (${firstMatchLine(text, /unable to authenticate|knownhosts/i)}): the password or host key Secrets of the server and the client are out of sync, or something else answers at the endpoint; recreate the server.` };
  }
  if (/no space left on device|disk quota exceeded/i.test(text)) {
    return { ...base, outcome: 'fatal', category: 'noSpace', explanation: 'Destination PVC too small: the destination ran out of space. Grow it, then retry.' };
  }
  if (/401 Unauthorized|403 Forbidden|certificate|x509|tls: /i.test(text)) {
    return { ...base, outcome: 'fatal', category: 'auth', explanation: `rclone could not authenticate to the transfer server (${meaning}): the credentials Secrets are out of sync or the certificate does not match the endpoint; recreate the server.` };
  }
  if (code === 5 || code === 2) return { ...base, outcome: 'retryable', explanation: `rclone: ${meaning}; retrying.` };
  if (/couldn't connect SSH|connection refused|i\/o timeout|no route to host|connection reset by peer|broken pipe|connection lost/i.test(text)) {
    return { ...base, outcome: 'retryable', explanation: `rclone lost or could not open the connection to the transfer server (${firstMatchLine(text, /couldn't connect SSH|connection refused|i\/o timeout|no route to host|connection reset|broken pipe|connection lost/i)}); retrying.` };
  }
  return { ...base, outcome: 'fatal', category: code === 1 ? 'config' : 'fatal', explanation: `rclone exited with ${code} (${meaning}); check the client pod log.` };
}

/** The first line of `text` that matches `re`, trimmed to 200 characters. */
function firstMatchLine(text: string, re: RegExp): string {
  return (text.split('\n').find((l) => re.test(l)) ?? '').trim().slice(0, 200);
}

/** Pure: the verdict and end-of-run figures of a finished rclone run. rclone counts file bytes, not
 * wire bytes (no protocol overhead): the nearest figure to "sent". */
export function rcloneOutcome(exitCode: number, lines: readonly string[]): { verdict: TransferVerdict; stats?: TransferStats } {
  const verdict = classifyRcloneExit(exitCode, lines);
  const st = parseRcloneStats(lines.join('\n'));
  if (!st) return { verdict };
  return { verdict, stats: { bytesSent: st.bytes, ...(st.filesTransferred !== undefined ? { filesTransferred: st.filesTransferred } : {}) } };
}
