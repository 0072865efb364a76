/**
 * Parsing of rsync client output as it appears in a pod log: `--info=progress2` lines separated by
 * '\r', error and warning lines, deletion lines, the file-list scan counter and the STATS2 block.
 *
 * Formats were taken from real rsync 3.5.0 runs (test/fixtures/rsync/*.out, produced by capture.sh):
 *
 *   progress2 (rsync(1) --info=progress2, default --human-readable level 1 → thousands separators):
 *        52,432,896  92%  480.51MB/s    0:00:00 (xfr#2, ir-chk=1099/1202)
 *   with -h (level 2, units of 1000): `     52.43M 100%   19.73MB/s    0:00:02 (xfr#1, to-chk=0/1)`
 *   with --no-h (level 0):            `     52428800 100%   19.96MB/s    0:00:02 (xfr#1, to-chk=0/1)`
 *
 * The rate is always printed in 1024-based units whatever the -h level ("kB/s" = KiB/s, "MB/s" =
 * MiB/s): measured with --bwlimit=20000 (KiB/s), shown as 19.5 MB/s. On a line ending with
 * "(xfr#N, …)" (a file just finished) rsync prints the elapsed time in place of the ETA. "to-chk"
 * counts are final only without incremental recursion; "ir-chk" totals still grow.
 *
 * Memory is bounded: only the latest progress, counters, at most `maxFailedFiles` failed files and
 * `maxMessages` other messages are kept; a line longer than `maxLineLength` is cut.
 */

/** One parsed progress2 line. Bytes in bytes, rate in bytes per second, times in seconds. */
export interface RsyncProgress {
  /** Bytes of file data handled so far (transferred or matched). */
  bytes: number;
  /** Percent of the total size known so far, 0..100 (integer as printed by rsync). */
  percent: number;
  /** Current rate in bytes/second (rsync prints 1024-based kB/s, MB/s, GB/s). */
  rateBytesPerSecond: number;
  /** Remaining time estimated by rsync; absent on "xfr#" lines (where rsync shows elapsed time)
   * and when rsync prints "??:??:??". */
  etaSeconds?: number;
  /** Elapsed time rsync shows on "xfr#" lines. */
  elapsedSeconds?: number;
  /** Number of files transferred so far ("xfr#N"). */
  filesTransferred?: number;
  /** Files still to check ("to-chk=N/…" or "ir-chk=N/…"). */
  filesToCheck?: number;
  /** Total files in the list ("…-chk=…/N"); still growing when `incremental`. */
  filesTotal?: number;
  /** True for "ir-chk": incremental recursion, totals not final yet. */
  incremental?: boolean;
}

/** Options of number parsing for human-readable (-h) output. */
export interface RsyncNumberOptions {
  /** Unit base of K/M/G/T/P suffixes: 1000 for one -h (level 2), 1024 for -hh (level 3). Default 1000. */
  humanBase?: 1000 | 1024;
}

const SUFFIX_POWER: Readonly<Record<string, number>> = { K: 1, M: 2, G: 3, T: 4, P: 5 };

/**
 * Parses an rsync number as printed at any --human-readable level: `123456`, `123,456` (or
 * `123.456` in a locale with ',' decimals), `1.23M` (suffix K/M/G/T/P with base 1000 or 1024).
 * Returns undefined for anything else. Human-readable suffixed values are approximate by nature.
 */
export function parseRsyncNumber(text: string, opts: RsyncNumberOptions = {}): number | undefined {
  const s = text.trim();
  if (/^\d+$/.test(s)) return Number(s);
  if (/^\d{1,3}(,\d{3})+$/.test(s)) return Number(s.replace(/,/g, ''));
  if (/^\d{1,3}(\.\d{3})+$/.test(s)) return Number(s.replace(/\./g, ''));
  const m = /^(\d+(?:[.,]\d+)?)([KMGTP])$/.exec(s);
  if (m) {
    const base = opts.humanBase ?? 1000;
    return Math.round(Number(m[1]!.replace(',', '.')) * base ** SUFFIX_POWER[m[2]!]!);
  }
  return undefined;
}

/** "h:mm:ss" (hours may exceed 24 and be padded) to seconds; undefined for "??:??:??". */
function parseClock(s: string): number | undefined {
  const m = /^(\d+):(\d{2}):(\d{2})$/.exec(s);
  if (!m) return undefined;
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

const RATE_UNITS: Readonly<Record<string, number>> = { B: 1, kB: 1024, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

const PROGRESS2_BODY =
  '^\\s*(\\d[\\d,.]*[KMGTP]?)\\s+(\\d{1,3})%\\s+(\\d+(?:[.,]\\d+)?)(B|kB|KB|MB|GB|TB)\\/s\\s+(\\d+:\\d{2}:\\d{2}|\\?\\?:\\?\\?:\\?\\?)(?:\\s+\\((?:xfr#(\\d+),\\s*)?(to|ir)-chk=(\\d+)\\/(\\d+)\\))?';
const PROGRESS2_RE = new RegExp(`${PROGRESS2_BODY}\\s*$`);
/** A progress2 line directly followed by a message: rsync writes its fatal error right after the
 * last progress text, without a separator (captured: sigterm.out). */
const PROGRESS2_PREFIX_RE = new RegExp(`${PROGRESS2_BODY}\\s+(?=\\S)`);

/**
 * Parses one `--info=progress2` line (without the '\r'/'\n' separators, surrounding spaces allowed).
 * Returns undefined when the line is not a progress2 line.
 */
export function parseProgress2Line(line: string, opts: RsyncNumberOptions = {}): RsyncProgress | undefined {
  const m = PROGRESS2_RE.exec(line);
  if (!m) return undefined;
  const bytes = parseRsyncNumber(m[1]!, opts);
  const percent = Number(m[2]);
  if (bytes === undefined || percent > 100) return undefined;
  const rateBytesPerSecond = Math.round(Number(m[3]!.replace(',', '.')) * RATE_UNITS[m[4]!]!);
  const clock = parseClock(m[5]!);
  const p: RsyncProgress = { bytes, percent, rateBytesPerSecond };
  if (m[6] !== undefined) {
    p.filesTransferred = Number(m[6]);
    if (clock !== undefined) p.elapsedSeconds = clock;
  } else if (clock !== undefined) {
    p.etaSeconds = clock;
  }
  if (m[7] !== undefined) {
    p.filesToCheck = Number(m[8]);
    p.filesTotal = Number(m[9]);
    p.incremental = m[7] === 'ir';
  }
  return p;
}

/** Counts by file type as in "Number of files: 10,102 (reg: 10,001, dir: 101, link: 2)". */
export interface RsyncFileCounts {
  total: number;
  reg?: number;
  dir?: number;
  link?: number;
  dev?: number;
  special?: number;
}

/** The STATS2 block (rsync(1) --stats). Sizes in bytes, times in seconds; absent when not printed. */
export interface RsyncStats {
  files?: RsyncFileCounts;
  createdFiles?: RsyncFileCounts;
  deletedFiles?: RsyncFileCounts;
  regularFilesTransferred?: number;
  totalFileSizeBytes?: number;
  totalTransferredFileSizeBytes?: number;
  literalDataBytes?: number;
  matchedDataBytes?: number;
  fileListSizeBytes?: number;
  fileListGenerationSeconds?: number;
  fileListTransferSeconds?: number;
  totalBytesSent?: number;
  totalBytesReceived?: number;
  /** From the summary line "sent … bytes  received … bytes  … bytes/sec". */
  sentBytes?: number;
  receivedBytes?: number;
  rateBytesPerSecond?: number;
  /** From "total size is … speedup is …". */
  totalSizeBytes?: number;
  speedup?: number;
  /** "(DRY RUN)" after the speedup. */
  dryRun?: boolean;
}

/** A file rsync reported as not (fully) transferred. */
export interface RsyncFailedFile {
  /** Path as printed by rsync (non-printable bytes appear as rsync's "\#ooo" escapes). */
  path: string;
  /** strerror text ("Permission denied") or "vanished". */
  reason: string;
  /** errno from the "(13)" suffix. */
  errno?: number;
  /** Which rsync process reported it: sender, receiver, generator. */
  role?: string;
  /** The failed operation as printed ("send_files failed to open", "write failed on", "mkstemp"). */
  operation?: string;
}

/** A final "rsync error|warning: … (code N) at file.c(L) [role=version]" line. */
export interface RsyncErrorReport {
  code: number;
  message: string;
  role?: string;
  version?: string;
}

/** Everything the streaming parser collected. */
export interface RsyncParseResult {
  /** The latest progress2 line. */
  progress?: RsyncProgress;
  /** Latest "N files..." count while the file list is built (FLIST2). */
  filesScanned?: number;
  /** "deleting …" lines seen (DEL2). */
  deletedCount: number;
  /** "skipping non-regular file" lines seen. */
  skippedCount: number;
  /** Failed files, at most `maxFailedFiles`. */
  failedFiles: RsyncFailedFile[];
  /** Failed files beyond the cap (counted, not kept). */
  failedFilesOmitted: number;
  /** Vanished source files (rsync exit 24), all counted even beyond the cap. */
  vanishedCount: number;
  /** Other error and warning lines ("rsync: …", "@ERROR: …", "IO error encountered …"), at most `maxMessages`. */
  messages: string[];
  messagesOmitted: number;
  /** Count of each errno seen in any error line, e.g. {28: 3} for "No space left on device (28)". */
  errnoCounts: Record<number, number>;
  /** Text after "@ERROR: " sent by the daemon (auth failed, unknown module, max connections). */
  daemonError?: string;
  /** True when rsync printed "IO error encountered -- skipping file deletion". */
  deletionsSkipped: boolean;
  /** The last "rsync error: … (code N)" or "rsync warning: … (code N)" line, when printed. */
  errorReport?: RsyncErrorReport;
  /** The STATS2 block, when printed (absent when rsync failed early). */
  stats?: RsyncStats;
}

/** Limits of the streaming parser. */
export interface RsyncOutputParserOptions extends RsyncNumberOptions {
  /** Failed files kept; the rest are counted. Default 1000. */
  maxFailedFiles?: number;
  /** Other messages kept; the rest are counted. Default 200. */
  maxMessages?: number;
  /** Longest line kept, in characters; longer lines are cut. Default 8192. */
  maxLineLength?: number;
}

const ERRNO_SUFFIX_RE = /:\s*([^:()]+?) \((\d+)\)\s*$/;
const ROLE_RE = /^rsync:\s+\[(sender|receiver|generator|client|server|Receiver|Sender)\]\s+/;

function parseCounts(text: string, opts: RsyncNumberOptions): RsyncFileCounts | undefined {
  const m = /^\s*(\S+)(?:\s+\((.*)\))?\s*$/.exec(text);
  if (!m) return undefined;
  const total = parseRsyncNumber(m[1]!, opts);
  if (total === undefined) return undefined;
  const counts: RsyncFileCounts = { total };
  if (m[2]) {
    for (const part of m[2].split(/,\s+/)) {
      const kv = /^(reg|dir|link|dev|special):\s*(\S+)$/.exec(part.trim());
      if (kv) {
        const n = parseRsyncNumber(kv[2]!, opts);
        if (n !== undefined) counts[kv[1] as 'reg'] = n;
      }
    }
  }
  return counts;
}

/** Parses `value` that may end with " bytes". */
function bytesValue(text: string, opts: RsyncNumberOptions): number | undefined {
  return parseRsyncNumber(text.replace(/\s*bytes\s*$/, ''), opts);
}

/**
 * Streaming parser of rsync client output. Feed it chunks in arrival order (any split, '\r' or '\n'
 * separators); call `end()` when the stream closes, then `result()`.
 */
export class RsyncOutputParser {
  private buffer = '';
  private bufferCut = false;
  private readonly maxFailedFiles: number;
  private readonly maxMessages: number;
  private readonly maxLineLength: number;
  private readonly numberOpts: RsyncNumberOptions;
  private progress: RsyncProgress | undefined;
  private filesScanned: number | undefined;
  private deletedCount = 0;
  private skippedCount = 0;
  private readonly failedFiles: RsyncFailedFile[] = [];
  private failedFilesOmitted = 0;
  private vanishedCount = 0;
  private readonly messages: string[] = [];
  private messagesOmitted = 0;
  private readonly errnoCounts: Record<number, number> = {};
  private daemonError: string | undefined;
  private deletionsSkipped = false;
  private errorReport: RsyncErrorReport | undefined;
  private stats: RsyncStats | undefined;

  /** Creates a parser; see `RsyncOutputParserOptions` for limits. */
  constructor(opts: RsyncOutputParserOptions = {}) {
    this.maxFailedFiles = opts.maxFailedFiles ?? 1000;
    this.maxMessages = opts.maxMessages ?? 200;
    this.maxLineLength = opts.maxLineLength ?? 8192;
    this.numberOpts = { humanBase: opts.humanBase ?? 1000 };
  }

  /** Consumes a chunk of output. Lines may span chunks; '\r', '\n' and "\r\n" all end a line. */
  feed(chunk: string): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c === 10 || c === 13) {
        this.append(chunk.slice(start, i));
        this.flushLine();
        start = i + 1;
      }
    }
    this.append(chunk.slice(start));
  }

  /** Processes a last line that had no separator. Idempotent. */
  end(): void {
    if (this.buffer.length > 0) this.flushLine();
  }

  /** A snapshot of everything collected so far (copies; the parser can keep going). */
  result(): RsyncParseResult {
    return {
      progress: this.progress ? { ...this.progress } : undefined,
      filesScanned: this.filesScanned,
      deletedCount: this.deletedCount,
      skippedCount: this.skippedCount,
      failedFiles: this.failedFiles.map((f) => ({ ...f })),
      failedFilesOmitted: this.failedFilesOmitted,
      vanishedCount: this.vanishedCount,
      messages: [...this.messages],
      messagesOmitted: this.messagesOmitted,
      errnoCounts: { ...this.errnoCounts },
      daemonError: this.daemonError,
      deletionsSkipped: this.deletionsSkipped,
      errorReport: this.errorReport ? { ...this.errorReport } : undefined,
      stats: this.stats ? structuredClone(this.stats) : undefined,
    };
  }

  /** The latest progress, without building a whole result. */
  latestProgress(): RsyncProgress | undefined {
    return this.progress ? { ...this.progress } : undefined;
  }

  private append(s: string): void {
    if (this.bufferCut || s.length === 0) return;
    const room = this.maxLineLength - this.buffer.length;
    if (s.length > room) {
      this.buffer += s.slice(0, Math.max(0, room));
      this.bufferCut = true;
    } else {
      this.buffer += s;
    }
  }

  private flushLine(): void {
    const line = this.buffer;
    this.buffer = '';
    this.bufferCut = false;
    if (line.trim().length > 0) this.processLine(line);
  }

  private addMessage(line: string): void {
    if (this.messages.length < this.maxMessages) this.messages.push(line);
    else this.messagesOmitted++;
  }

  private addFailed(f: RsyncFailedFile): void {
    if (this.failedFiles.length < this.maxFailedFiles) this.failedFiles.push(f);
    else this.failedFilesOmitted++;
  }

  private countErrno(line: string): RegExpExecArray | null {
    const m = ERRNO_SUFFIX_RE.exec(line);
    if (m) {
      const e = Number(m[2]);
      this.errnoCounts[e] = (this.errnoCounts[e] ?? 0) + 1;
    }
    return m;
  }

  private stat(): RsyncStats {
    if (!this.stats) this.stats = {};
    return this.stats;
  }

  private processLine(line: string): void {
    const o = this.numberOpts;
    const p = parseProgress2Line(line, o);
    if (p) {
      this.progress = p;
      return;
    }
    const prefix = PROGRESS2_PREFIX_RE.exec(line);
    if (prefix) {
      const head = parseProgress2Line(prefix[0], o);
      if (head) this.progress = head;
      this.processLine(line.slice(prefix[0].length));
      return;
    }
    const t = line.trim();

    // File-list scan counter (FLIST2 without incremental recursion): " 1200 files...".
    let m = /^(\d[\d,.]*) files\.\.\.$/.exec(t);
    if (m) {
      const n = parseRsyncNumber(m[1]!, o);
      if (n !== undefined) this.filesScanned = n;
      return;
    }
    m = /^(\d[\d,.]*) files to consider$/.exec(t);
    if (m) {
      const n = parseRsyncNumber(m[1]!, o);
      if (n !== undefined) this.filesScanned = n;
      return;
    }
    if (t.startsWith('deleting ')) {
      this.deletedCount++;
      return;
    }
    if (this.statsLine(t)) return;

    // Vanished files: 'file has vanished: "/path"' (optionally prefixed by "rsync: [sender] ").
    m = /file has vanished: "(.*)"\s*$/.exec(t);
    if (m) {
      this.vanishedCount++;
      this.addFailed({ path: m[1]!, reason: 'vanished', role: 'sender' });
      return;
    }
    if (/^skipping non-regular file /.test(t)) {
      this.skippedCount++;
      return;
    }
    m = /^@ERROR:\s*(.*)$/.exec(t);
    if (m) {
      this.daemonError = m[1]!;
      this.addMessage(t);
      return;
    }
    // "rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]"
    m = /^rsync (?:error|warning): (.*) \(code (\d+)\)(?: at [^\[]*)?(?:\[(\w+)=([^\]]+)\])?\s*$/.exec(t);
    if (m) {
      this.errorReport = { code: Number(m[2]), message: m[1]!, ...(m[3] ? { role: m[3] } : {}), ...(m[4] ? { version: m[4] } : {}) };
      this.addMessage(t);
      return;
    }
    if (/^IO error encountered -- skipping file deletion/.test(t)) {
      this.deletionsSkipped = true;
      this.addMessage(t);
      return;
    }
    if (t.startsWith('rsync:') || t.startsWith('rsync warning:') || /^\[\w+\] io timeout/.test(t) || t.startsWith('ERROR:') || t.startsWith('cannot delete')) {
      const errnoMatch = this.countErrno(t);
      const q = /"(.*?)"/.exec(t);
      const role = ROLE_RE.exec(t)?.[1]?.toLowerCase();
      if (q && errnoMatch && t.startsWith('rsync:')) {
        const body = t.replace(/^rsync:\s+(\[[^\]]+\]\s+)?/, '');
        const operation = body.slice(0, body.indexOf('"')).replace(/[\s:]+$/, '').trim();
        this.addFailed({
          path: q[1]!,
          reason: errnoMatch[1]!.trim(),
          errno: Number(errnoMatch[2]),
          ...(role ? { role } : {}),
          ...(operation ? { operation } : {}),
        });
        return;
      }
      this.addMessage(t);
      return;
    }
    if (t.startsWith('*** Skipping any contents from this failed directory')) {
      this.addMessage(t);
      return;
    }
    // Ferry's own lines from the client pod's script (e.g. the symlink repair's outcome, symlinks.ts).
    if (t.startsWith('ferry: ')) this.addMessage(t);
  }

  /** Parses one line of the STATS2 block; true when it was one. */
  private statsLine(t: string): boolean {
    const o = this.numberOpts;
    let m = /^Number of (files|created files|deleted files): (.*)$/.exec(t);
    if (m) {
      const c = parseCounts(m[2]!, o);
      if (c) {
        const key = m[1] === 'files' ? 'files' : m[1] === 'created files' ? 'createdFiles' : 'deletedFiles';
        this.stat()[key] = c;
      }
      return true;
    }
    m = /^Number of regular files transferred: (\S+)$/.exec(t);
    if (m) {
      const n = parseRsyncNumber(m[1]!, o);
      if (n !== undefined) this.stat().regularFilesTransferred = n;
      return true;
    }
    const byteFields: [RegExp, keyof RsyncStats][] = [
      [/^Total file size: (.+)$/, 'totalFileSizeBytes'],
      [/^Total transferred file size: (.+)$/, 'totalTransferredFileSizeBytes'],
      [/^Literal data: (.+)$/, 'literalDataBytes'],
      [/^Matched data: (.+)$/, 'matchedDataBytes'],
      [/^File list size: (.+)$/, 'fileListSizeBytes'],
      [/^Total bytes sent: (.+)$/, 'totalBytesSent'],
      [/^Total bytes received: (.+)$/, 'totalBytesReceived'],
    ];
    for (const [re, key] of byteFields) {
      m = re.exec(t);
      if (m) {
        const n = bytesValue(m[1]!, o);
        if (n !== undefined) (this.stat() as Record<string, unknown>)[key] = n;
        return true;
      }
    }
    m = /^File list (generation|transfer) time: ([\d.]+) seconds$/.exec(t);
    if (m) {
      this.stat()[m[1] === 'generation' ? 'fileListGenerationSeconds' : 'fileListTransferSeconds'] = Number(m[2]);
      return true;
    }
    m = /^sent (\S+) bytes\s+received (\S+) bytes\s+(\S+) bytes\/sec$/.exec(t);
    if (m) {
      const s = this.stat();
      const sent = parseRsyncNumber(m[1]!, o);
      const received = parseRsyncNumber(m[2]!, o);
      const rate = parseRsyncNumber(m[3]!.replace(/[.,]\d{2}$/, ''), o) ?? parseRsyncNumber(m[3]!, o);
      if (sent !== undefined) s.sentBytes = sent;
      if (received !== undefined) s.receivedBytes = received;
      if (rate !== undefined) s.rateBytesPerSecond = rate;
      return true;
    }
    m = /^total size is (\S+)\s+speedup is ([\d.,]+)( \(DRY RUN\))?$/.exec(t);
    if (m) {
      const s = this.stat();
      const size = parseRsyncNumber(m[1]!, o);
      if (size !== undefined) s.totalSizeBytes = size;
      s.speedup = Number(m[2]!.replace(/,/g, ''));
      if (m[3]) s.dryRun = true;
      return true;
    }
    return false;
  }
}

/**
 * Parses a whole captured output at once (convenience for tests and for a finished pod log).
 */
export function parseRsyncOutput(text: string, opts: RsyncOutputParserOptions = {}): RsyncParseResult {
  const p = new RsyncOutputParser(opts);
  p.feed(text);
  p.end();
  return p.result();
}
