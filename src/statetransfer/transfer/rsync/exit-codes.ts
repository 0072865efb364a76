/**
 * Classification of rsync client exit codes into what Ferry should do next.
 *
 * Meanings are the texts of rsync(1) EXIT VALUES (rsync 3.5.0; code 6 from earlier man pages, which
 * listed it as "Daemon unable to append to log-file"). The outcome for each code, and the overrides
 * that look at the output, are Ferry's decisions, explained next to each entry. The anchors retried
 * everything up to 20 times, "No space left on device" included, and failed stage syncs on vanished
 * files; both are avoided here.
 */
import type { RsyncFailedFile, RsyncParseResult } from './parser';
import { SYMLINK_REPAIR_FAILED_EXIT, SYMLINK_REPAIR_FAILED_MARKER } from './symlinks';

/** What to do after an rsync run. */
export type RsyncOutcome = 'success' | 'partial' | 'retryable' | 'fatal';

/** The verdict on one rsync run. */
export interface RsyncExitClassification {
  code: number;
  outcome: RsyncOutcome;
  /** rsync(1) EXIT VALUES text for the code ("Unknown exit code N" otherwise). */
  meaning: string;
  /** What happened and what an operator should do, in one or two sentences. */
  explanation: string;
  /** Files rsync reported as not transferred (possibly capped; see failedFilesOmitted). */
  failedFiles: RsyncFailedFile[];
  failedFilesOmitted: number;
}

/** rsync(1) EXIT VALUES. */
export const RSYNC_EXIT_MEANINGS: Readonly<Record<number, string>> = Object.freeze({
  0: 'Success',
  1: 'Syntax or usage error',
  2: 'Protocol incompatibility',
  3: 'Errors selecting input/output files, directories',
  4: 'Requested action not supported',
  5: 'Error starting client-server protocol',
  6: 'Daemon unable to append to log-file',
  10: 'Error in socket I/O',
  11: 'Error in file I/O',
  12: 'Error in rsync protocol data stream',
  13: 'Errors with program diagnostics',
  14: 'Error in IPC code',
  15: 'Sibling process crashed (e.g. core dumped)',
  16: 'Sibling process was killed by a signal',
  19: 'Received SIGUSR1',
  20: 'Received SIGINT, SIGTERM, or SIGHUP',
  21: 'Some error returned by waitpid()',
  22: 'Error allocating core memory buffers',
  23: 'Partial transfer due to error',
  24: 'Partial transfer due to vanished source files',
  25: 'The --max-delete limit stopped deletions',
  30: 'Timeout in data send/receive',
  35: 'Timeout waiting for daemon connection',
});

const BY_CODE: Readonly<Record<number, { outcome: RsyncOutcome; explanation: string }>> = {
  0: { outcome: 'success', explanation: 'All files were transferred.' },
  1: {
    outcome: 'fatal',
    explanation: 'rsync rejected its command line: check extraArgs and that the transfer image has rsync >= 3.1.0. Retrying cannot help.',
  },
  2: {
    outcome: 'fatal',
    explanation: 'The client and server rsync versions cannot talk to each other: use the same transfer image on both clusters.',
  },
  3: {
    outcome: 'fatal',
    explanation: 'rsync could not select the source or destination directory: check that the source PVC is mounted and readable and the destination module path exists.',
  },
  4: {
    outcome: 'fatal',
    explanation: 'An option is not supported by the other side (e.g. ACLs or xattrs on a build or filesystem without them): remove it or use a matching image.',
  },
  5: {
    outcome: 'retryable',
    explanation: 'The rsync session could not start (connection closed before the daemon greeting, usually the transport could not reach the server): retrying.',
  },
  6: { outcome: 'fatal', explanation: 'The rsync daemon cannot write its log: check the server pod.' },
  10: {
    outcome: 'retryable',
    explanation: 'Socket error (e.g. connection refused or reset): the server or transport may not be ready yet, or the network dropped; retrying.',
  },
  11: {
    outcome: 'fatal',
    explanation: 'A file could not be read or written at one end (e.g. read-only or failing storage): see the messages; retrying will not fix storage.',
  },
  12: {
    outcome: 'retryable',
    explanation: 'The rsync data stream broke, usually because the connection or the other side died mid-transfer; retrying resumes from partial files.',
  },
  13: { outcome: 'fatal', explanation: 'rsync could not write its own diagnostics: check the client pod.' },
  14: { outcome: 'fatal', explanation: 'rsync failed in its inter-process pipes: check the pod for resource limits.' },
  15: { outcome: 'fatal', explanation: 'An rsync process crashed: check the pod logs; this is not transient.' },
  16: {
    outcome: 'retryable',
    explanation: 'An rsync process was killed by a signal (often the OOM killer): retrying; if it repeats, raise the memory limit or enable incrementalRecursion.',
  },
  19: { outcome: 'retryable', explanation: 'rsync received SIGUSR1 and stopped: retrying.' },
  20: {
    outcome: 'retryable',
    explanation: 'rsync was interrupted by a signal (pod deleted or node drained): retrying resumes from partial files.',
  },
  21: { outcome: 'fatal', explanation: 'waitpid() failed inside rsync: check the pod.' },
  22: {
    outcome: 'fatal',
    explanation: 'rsync ran out of memory: raise the transfer pods\' memory limit or enable incrementalRecursion for very large trees.',
  },
  23: {
    outcome: 'partial',
    explanation: 'Some files or attributes were not transferred; see the failed files. Everything else was copied.',
  },
  24: {
    outcome: 'partial',
    explanation: 'Some source files vanished while rsync ran. During a live stage sync this is expected (the application is still writing) and is not a failure; the final sync, after quiesce, copies the current state.',
  },
  25: { outcome: 'fatal', explanation: 'The --max-delete limit stopped deletions: check that the source is the intended volume, then raise or remove the limit.' },
  30: {
    outcome: 'retryable',
    explanation: 'No data moved within the I/O timeout (stalled network, transport or peer): retrying resumes from partial files.',
  },
  35: { outcome: 'retryable', explanation: 'The daemon connection was not established in time: retrying.' },
};

/** What the classifier may look at besides the exit code. */
export type RsyncExitEvidence = Partial<Pick<RsyncParseResult, 'failedFiles' | 'failedFilesOmitted' | 'errnoCounts' | 'daemonError' | 'deletionsSkipped' | 'messages'>> & {
  /** Raw output lines (e.g. a log tail) when no parser result is available. */
  lines?: string[];
};

/** errno values that decide the outcome whatever the exit code (Linux numbering). */
const ENOSPC = 28;
const EDQUOT = 122;
const EROFS = 30;

function hasErrno(ev: RsyncExitEvidence, errno: number, strerror: string): boolean {
  if ((ev.errnoCounts?.[errno] ?? 0) > 0) return true;
  if (ev.failedFiles?.some((f) => f.errno === errno)) return true;
  const needle = `${strerror} (${errno})`;
  return (ev.lines ?? []).some((l) => l.includes(needle)) || (ev.messages ?? []).some((l) => l.includes(needle));
}

function daemonErrorText(ev: RsyncExitEvidence): string | undefined {
  if (ev.daemonError !== undefined) return ev.daemonError;
  for (const l of [...(ev.lines ?? []), ...(ev.messages ?? [])]) {
    const m = /@ERROR:\s*(.*)$/.exec(l);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * True when the only failures are attribute changes on the destination volume root "." that a
 * non-root receiver may not make (EPERM). Captured (nonroot-rootdir.out):
 *   rsync: [generator] failed to set permissions on "." (in rootdir): Operation not permitted (1)
 * The volume root's mode and owner are the destination's own (kubelet fsGroup handling), not data.
 * Only decided when no failure was left uncounted and no other error message was seen.
 */
function onlyVolumeRootAttributes(ev: RsyncExitEvidence, failed: RsyncFailedFile[], omitted: number): boolean {
  if (omitted > 0 || failed.length === 0) return false;
  const rootAttr = (f: RsyncFailedFile): boolean =>
    f.path === '.' && f.errno === 1 && /^failed to set (permissions|times|owner|group)/.test(f.operation ?? '');
  if (!failed.every(rootAttr)) return false;
  const other = [...(ev.messages ?? []), ...(ev.lines ?? [])].filter(
    (l) => /^rsync:|^ERROR:|^IO error|^@ERROR/.test(l.trim()) && !/failed to set (permissions|times|owner|group) on "\." /.test(l),
  );
  return other.length === 0;
}

function anyLine(ev: RsyncExitEvidence, re: RegExp): boolean {
  return [...(ev.lines ?? []), ...(ev.messages ?? [])].some((l) => re.test(l));
}

/**
 * Classifies an rsync exit code, using the parsed output (or raw lines) where the code alone is
 * ambiguous:
 * - any non-zero code with "No space left on device (28)" or "Disk quota exceeded (122)": fatal,
 *   the destination PVC is too small (retrying would fill it again); "Read-only file system (30)":
 *   fatal;
 * - code 5: "@ERROR: auth failed on module" → fatal (credentials mismatch); "Unknown module",
 *   "access denied", "chdir failed" → fatal (server configuration); "max connections … reached" →
 *   retryable (another client still holds the module); anything else (typically "did not see server
 *   greeting" when stunnel cannot reach the server) → retryable;
 * - codes >= 128 are how a container reports death by signal (128 + signal): unknown to rsync,
 *   hence fatal like every unknown code, with the signal named in the explanation.
 * Never throws.
 */
export function classifyRsyncExit(code: number, parsed: RsyncExitEvidence = {}): RsyncExitClassification {
  const failedFiles = [...(parsed.failedFiles ?? [])];
  const failedFilesOmitted = parsed.failedFilesOmitted ?? 0;
  const meaning = RSYNC_EXIT_MEANINGS[code] ?? `Unknown exit code ${code}`;
  const base = { code, meaning, failedFiles, failedFilesOmitted };

  if (code !== 0) {
    if (hasErrno(parsed, ENOSPC, 'No space left on device') || hasErrno(parsed, EDQUOT, 'Disk quota exceeded')) {
      return {
        ...base,
        outcome: 'fatal',
        explanation: 'Destination PVC too small: the destination ran out of space (or quota). Grow it, then retry; files already copied are kept.',
      };
    }
    if (hasErrno(parsed, EROFS, 'Read-only file system')) {
      return { ...base, outcome: 'fatal', explanation: 'The destination volume is mounted read-only: fix the mount, then retry.' };
    }
  }

  if (code === 5) {
    const d = daemonErrorText(parsed);
    if (d !== undefined) {
      if (/auth failed/i.test(d)) {
        return {
          ...base,
          outcome: 'fatal',
          explanation: `Credentials mismatch: the daemon refused the rsync password (@ERROR: ${d}). The client and server Secrets are out of sync; recreate both.`,
        };
      }
      if (/unknown module/i.test(d)) {
        return { ...base, outcome: 'fatal', explanation: `The server has no such module (@ERROR: ${d}): the client targets a PVC the server does not serve.` };
      }
      if (/access denied|chdir failed|chroot failed|setgid failed|setgroups failed|setuid failed|invalid uid|invalid gid/i.test(d)) {
        return { ...base, outcome: 'fatal', explanation: `The server refused the module (@ERROR: ${d}): check the server pod's mounts, security context and capabilities.` };
      }
      if (/max connections/i.test(d)) {
        return {
          ...base,
          outcome: 'retryable',
          explanation: `Another client is still connected to this module (@ERROR: ${d}), e.g. a previous attempt still running: retrying once it ends.`,
        };
      }
      return { ...base, outcome: 'retryable', explanation: `The daemon refused the session (@ERROR: ${d}): retrying.` };
    }
  }

  if (code === SYMLINK_REPAIR_FAILED_EXIT && anyLine(parsed, new RegExp(SYMLINK_REPAIR_FAILED_MARKER))) {
    const line = [...(parsed.lines ?? []), ...(parsed.messages ?? [])].find((l) => l.includes(SYMLINK_REPAIR_FAILED_MARKER))!;
    return {
      ...base,
      outcome: 'fatal',
      explanation:
        `The files were copied, but re-creating the symlinks that the unprivileged rsync daemon sanitizes failed on the destination (${line.trim()}). ` +
        'Check the server pod log (what it says about the listed link), fix the destination path, then `ferry retry ID --pvc PVC` redoes the sync and the repair.',
    };
  }

  const known = BY_CODE[code];
  if (!known) {
    const sig = code > 128 && code < 160 ? ` (a container exit code of ${code} means killed by signal ${code - 128}${code === 137 ? ', SIGKILL — often the OOM killer' : ''})` : '';
    return { ...base, outcome: 'fatal', explanation: `rsync exited with unknown code ${code}${sig}; check the pod log.` };
  }

  let explanation = known.explanation;
  if (code === 23 && onlyVolumeRootAttributes(parsed, failedFiles, failedFilesOmitted)) {
    return {
      ...base,
      outcome: 'success',
      explanation:
        'All files were transferred; only the permissions or times of the destination volume root could not be set (it belongs to another user, typically root with an fsGroup, and a non-root transfer cannot change it). Nothing to do.',
    };
  }
  if (code === 23) {
    if (failedFiles.some((f) => f.errno === 13 || f.errno === 1)) {
      explanation += ' Permission errors: a non-root transfer cannot read or set files owned by other users; use the preserve-ownership mode or fix the permissions.';
    }
    if (parsed.deletionsSkipped || anyLine(parsed, /IO error encountered -- skipping file deletion/)) {
      explanation += ' rsync skipped all deletions at the destination because of the source I/O errors.';
    }
  }
  if (code === 1 && anyLine(parsed, /password file/)) {
    explanation =
      'rsync refused its password file: it must not be readable by others, and must be owned by root when rsync runs as root (mount the Secret with mode 0400, plus an fsGroup for non-root pods).';
  }
  if (code === 1 && anyLine(parsed, /module is write only/)) {
    explanation = 'The client tried to read from the write-only daemon module: Ferry only pushes; check the command.';
  }
  if (code === 10 && anyLine(parsed, /Connection refused \(111\)/)) {
    explanation = 'Connection refused: nothing listens at the address rsync connects to (transport or server not started yet); retrying.';
  }
  return { ...base, outcome: known.outcome, explanation };
}
