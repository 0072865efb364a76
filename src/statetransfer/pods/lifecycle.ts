/**
 * Bash wrappers that give a pod's processes their lifecycle:
 * - the transfer client waits for the transport's local port (legacy mode), runs, records its exit
 *   code and final statistics in the termination message, and drops a done-file;
 * - the transport client, in legacy mode, stops when the done-file appears.
 * On clusters with native sidecar containers (Kubernetes 1.29+) the transport is an init container
 * with restartPolicy Always and a startup probe; kubelet then orders start and stop itself and only
 * the termination-message part of the wrapper is used.
 */
import { shJoin, shQuote } from '../shell';
import { FERRY_RUN_DIR } from '../types';

/** File whose existence tells the transport the transfer has finished (legacy mode). */
export const DONE_FILE = `${FERRY_RUN_DIR}/done`;
/** Last lines of the transfer's output, kept for the termination message. */
export const SUMMARY_FILE = `${FERRY_RUN_DIR}/summary`;
/** Where the transfer container writes its termination message (the Kubernetes default). */
export const TERMINATION_MESSAGE_PATH = '/dev/termination-log';
/** Marker line carrying the transfer's exit code in the termination message. */
export const EXIT_CODE_MARKER = 'ferry-exit-code=';
/** Number of final output lines kept for the termination message (rsync's STATS2 block is ~18),
 * each cut to SUMMARY_LINE_CHARS. */
export const SUMMARY_LINES = 30;
const SUMMARY_LINE_CHARS = 100;
/** Error lines (rsync: …, rsync error, file has vanished, @ERROR) seen BEFORE the final lines are kept
 * too, the first SUMMARY_ERROR_LINES of them, each cut to 160 characters: e.g. rsync reports the
 * volume root's "failed to set permissions" first, and the exit code 23 it causes is harmless only
 * if that line is the evidence (exit-codes.ts). */
export const SUMMARY_ERROR_LINES = 5;
/** Kubernetes caps the termination message at 4096 bytes: 30×101 + 5×161 = 3835, plus the marker. */
const SUMMARY_BYTES = 4000;

export { shJoin, shQuote };

/** Bash function waiting for a TCP port on 127.0.0.1, with exponential back-off capped at 2 s (no
 * busy loop). Returns 1 after `seconds`. */
/** Bash function `wait_port PORT SECONDS`: succeeds once something accepts TCP on 127.0.0.1:PORT,
 * checking at 0.1, 0.2, 0.5, 1, then every 2 s; after SECONDS it says so on stderr and returns 1. */
export const WAIT_PORT_FN = `wait_port() {
  local port=$1 limit=$2 delay=0.1 start=$SECONDS
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if (( SECONDS - start >= limit )); then echo "ferry: nothing listens on 127.0.0.1:$port after $limit s (transport not started?)" >&2; return 1; fi
    sleep "$delay"
    case $delay in 0.1) delay=0.2;; 0.2) delay=0.5;; 0.5) delay=1;; *) delay=2;; esac
  done
}`;

/** Turns rsync's '\r'-separated progress updates into lines, each written as soon as it is complete. */
export const PROGRESS_LINES_FILTER = "stdbuf -oL tr '\\r' '\\n'";

/** An awk ERE matching rsync's --info=progress2 lines ("  52,432,896  92%  480.51MB/s  0:00:00 …",
 * with or without -h units; the shape parser.ts reads), which the client script throttles. */
export const PROGRESS_LINE_AWK_RE = '/^ *[0-9][0-9,.]*[KMGTP]? +[0-9]+% /';

/** Bash function running awk so that it reads its input line by line: mawk needs `-W interactive`
 * (otherwise it waits for a full block of a pipe), other awks read a pipe as it delivers. */
const LINE_AWK_FN = `line_awk() {
  case $(awk -W version 2>&1 </dev/null) in *mawk*) awk -W interactive "$@" ;; *) awk "$@" ;; esac
}`;

/** Options of `transferClientScript`. */
export interface TransferClientScriptOptions {
  /** Wait for this local port before starting (legacy mode, transport in the same pod). */
  waitPort?: number;
  /** Seconds to wait for `waitPort` (default 120). */
  waitSeconds?: number;
  /** Bash lines run before the command. */
  prepare?: string;
  /** Bash lines run after the command succeeded (exit 0, or a code of `finishAfter`); their failure
   * code becomes the exit code. */
  finish?: string;
  /** Exit codes besides 0 after which `finish` runs (the engine's: ProcessSpec.finishAfter). */
  finishAfter?: readonly number[];
  /** Drop the done-file on exit (legacy mode with a transport). */
  signalDone: boolean;
  /** Where the exit code and final lines are written (default TERMINATION_MESSAGE_PATH; a warm
   * agent's sync writes them into its own directory, agent.ts). */
  terminationPath?: string;
}

/**
 * The transfer client container's script: optional wait for the transport, the engine's argv with its
 * output passed through (and its last lines kept), the exit code and those lines written to the
 * termination message, and the engine's exit code as the container's exit code.
 * Exit code 35 (rsync(1): "timeout waiting for daemon connection") when the transport never listened.
 */
export function transferClientScript(argv: string[], opts: TransferClientScriptOptions): string {
  const lines = ['set -u -o pipefail', `mkdir -p ${FERRY_RUN_DIR}`];
  if (opts.signalDone) lines.push(`trap 'touch ${DONE_FILE}' EXIT`);
  lines.push(
    `write_termination() { { tail -c ${SUMMARY_BYTES} ${SUMMARY_FILE} 2>/dev/null; printf '${EXIT_CODE_MARKER}%d\\n' "$1"; } > ${opts.terminationPath ?? TERMINATION_MESSAGE_PATH} 2>/dev/null || true; }`,
  );
  if (opts.waitPort !== undefined) {
    lines.push(WAIT_PORT_FN, `wait_port ${opts.waitPort} ${opts.waitSeconds ?? 120} || { write_termination 35; exit 35; }`);
  }
  if (opts.prepare) lines.push(`{\n${opts.prepare}\n} || { echo 'ferry: preparing the transfer failed' >&2; write_termination 1; exit 1; }`);
  // The output filter: every progress update must reach the container log at once, because the
  // log is where live progress is read (migration/follow.ts polls it every few seconds). rsync writes
  // its progress2 updates about once a second, ending in '\r', not '\n'. mawk (the image's awk)
  // reads a pipe in blocks: with a regex RS ("[\r\n]") it held the updates until a 4-32 KiB block
  // was full (measured: 40-55 s late at 8 MiB/s, nothing at all for a short sync), and even plain
  // lines wait for a full block unless mawk runs with `-W interactive` (line-at-a-time reads, its
  // records are then always lines, whatever RS says). So: `tr` turns '\r' into '\n', with its
  // output line-buffered by `stdbuf -oL` (coreutils, in the image), and awk reads line by line
  // (`-W interactive` for mawk; gawk reads what a pipe delivers anyway). Measured with
  // --bwlimit=2048: one log line per rsync update, ~1 s apart.
  // awk keeps the last lines in a ring and the first error lines with their line numbers (printed
  // only if they fell out of the ring).
  // Progress lines are passed on at most once per second (PROGRESS_LINE_AWK_RE): rsync also prints
  // one at the end of every file, so a tree of 1,000,000 small files made 1,000,000 log lines (≈ 74
  // MB) that tr, awk and the container runtime each had to write (measured, 200,000 × 64-byte files
  // over a loopback rsync daemon: the client side's CPU 2.4 s with output to /dev/null, 4.4 s through
  // this filter unthrottled). A progress line that arrives within the second of the last one shown is
  // held, and shown before the next other line, or at the end: the last progress and every other
  // line still reach the log, in order. The clock is POSIX awk's: srand() seeds with the time of day
  // in seconds and returns the previous seed.
  const awk = [
    // Counters start at 0 explicitly: an unset variable used as an array subscript is "", not "0".
    'BEGIN { n = 0; e = 0; shown = -1; held = "" }',
    `{ if ($0 ~ ${PROGRESS_LINE_AWK_RE}) { srand(); now = srand(); if (now != shown) { print; fflush(); shown = now; held = "" } else held = $0 }`,
    '  else { if (held != "") { print held; held = "" } print; fflush() }',
    `  if (length($0)) { ring[n % ${SUMMARY_LINES}] = substr($0, 1, ${SUMMARY_LINE_CHARS})`,
    // rsync may print an error right after progress text on the same line: match anywhere.
    `    if (e < ${SUMMARY_ERROR_LINES} && match($0, /rsync: |rsync error|file has vanished|@ERROR|ERROR: /)) { err[e] = substr($0, RSTART, 160); errn[e] = n; e++ }`,
    '    n++ } }',
    `END { if (held != "") { print held; fflush() }`,
    `  s = n > ${SUMMARY_LINES} ? n - ${SUMMARY_LINES} : 0`,
    `  for (i = 0; i < e; i++) if (errn[i] < s) print err[i] > "${SUMMARY_FILE}"`,
    `  for (i = s; i < n; i++) print ring[i % ${SUMMARY_LINES}] > "${SUMMARY_FILE}" }`,
  ].join('\n');
  lines.push(LINE_AWK_FN);
  lines.push(`${shJoin(argv)} 2>&1 | ${PROGRESS_LINES_FILTER} | line_awk ${shQuote(awk)}`, 'rc=${PIPESTATUS[0]}');
  // Finish also after the engine's `finishAfter` codes (rsync's 23, see RSYNC_FINISH_AFTER); the code
  // is kept. Its output goes to the log and into the termination message's lines too (after rsync's), so a
  // failure of the finish step is explained even when the log is gone.
  if (opts.finish) {
    lines.push(
      `if ${[0, ...(opts.finishAfter ?? [])].map((c) => `[ "$rc" -eq ${c} ]`).join(' || ')}; then ( set -u\n${opts.finish}\n) 2>&1 | tee -a ${SUMMARY_FILE} >&2; frc=\${PIPESTATUS[0]}; [ "$frc" -eq 0 ] || rc=$frc; fi`,
    );
  }
  lines.push('write_termination "$rc"', 'exit "$rc"');
  return lines.join('\n');
}

/**
 * The transport client's script in legacy mode: run the transport in the background and stop it once
 * the transfer has dropped the done-file (checked once a second). Exits 0 after a clean stop, or with
 * the transport's own code if it died first.
 */
export function transportClientScript(argv: string[]): string {
  return [
    'set -u',
    `${shJoin(argv)} &`,
    'pid=$!',
    `trap 'kill -TERM "$pid" 2>/dev/null' TERM INT`,
    'while kill -0 "$pid" 2>/dev/null; do',
    `  if [ -e ${DONE_FILE} ]; then kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0; fi`,
    '  sleep 1',
    'done',
    'wait "$pid"; rc=$?',
    'echo "ferry: transport exited before the transfer finished (code $rc)" >&2',
    'exit "$rc"',
  ].join('\n');
}

/** A long-running server process with optional preparation: `prepare`, then exec the argv. */
export function serverScript(argv: string[], prepare?: string): string {
  return ['set -eu', `mkdir -p ${FERRY_RUN_DIR}`, ...(prepare ? [prepare] : []), `exec ${shJoin(argv)}`].join('\n');
}

/** What a finished client pod reports: the engine's exit code and its final output lines. */
export interface TerminationReport {
  exitCode?: number;
  /** The last output lines (rsync: the STATS2 block and any error lines). */
  lines: string[];
}

/** Parses a client container's termination message written by `transferClientScript`. */
export function parseTerminationMessage(message: string | undefined): TerminationReport {
  const lines = (message ?? '').split('\n').filter((l) => l.length > 0);
  let exitCode: number | undefined;
  const rest: string[] = [];
  for (const l of lines) {
    if (l.startsWith(EXIT_CODE_MARKER)) exitCode = Number.parseInt(l.slice(EXIT_CODE_MARKER.length), 10);
    else rest.push(l);
  }
  return { exitCode: Number.isNaN(exitCode) ? undefined : exitCode, lines: rest };
}
