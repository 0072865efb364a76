/**
 * Typed, validated rsync client options and their translation into rsync argv flags.
 *
 * Everything an operator can set is checked up front by `validateRsyncOptions`, which reports every
 * invalid field at once (an operator fixes a config in one round trip, not one error per attempt).
 * The argv produced by `rsyncClientArgs` is the exact flag set the client pod runs; every combination
 * it can emit is exercised against the real rsync binary in test/unit/rsync-options.test.ts.
 *
 * Facts used here come from rsync(1) (rsync 3.5.0 man page, sections OPTIONS and EXIT VALUES) and from
 * measurements recorded next to the decisions below.
 */
import { ProblemListError, type Problem } from '../../../core/errors';

/** A problem with one option field (core/errors.ts Problem): `path` is the field name as in
 * `RsyncOptionsInput`, with an index for list items (`excludes[2]`); `message` what to change. */
export type RsyncOptionProblem = Problem;

/**
 * Thrown when options are invalid. `problems` lists EVERY invalid field, not only the first.
 */
export class RsyncOptionsError extends ProblemListError {
  constructor(problems: RsyncOptionProblem[]) {
    super('rsync options', problems);
    this.name = 'RsyncOptionsError';
  }
}

/**
 * When extraneous destination files are deleted:
 * - `final`: only on the final (cutover) sync — stage syncs never delete (default);
 * - `always`: on every sync, stage syncs included;
 * - `never`: never, not even on the final sync (destination keeps files absent from the source).
 */
export type RsyncDeleteMode = 'final' | 'always' | 'never';

/** Operator-facing rsync options; every field is optional. Units are in the field names. */
export interface RsyncOptionsInput {
  /** Preserve the tree faithfully (recursive, links, perms, times, + owner/group/devices when root).
   * false keeps only --recursive --links. Default true. */
  archive?: boolean;
  /** true = delete on every sync, false = never delete, 'final' (default) = only on the final sync. */
  delete?: boolean | 'final';
  /** --hard-links. Default true. */
  hardLinks?: boolean;
  /** Keep partially transferred files to resume after an interruption. Default true. */
  partial?: boolean;
  /** Directory (relative to each destination directory) holding partial files. Default '.ferry-partial'. */
  partialDir?: string;
  /** --sparse: turn runs of zeros into holes at the destination. Default true (a sparse VM disk image
   * copied dense can outgrow a destination PVC sized like the source). Cost: rsync 3.5.0's receiver
   * scans every written byte for zeros, ≈ 0.6 CPU s per GiB of dense data (1 GiB random file: 2.7 vs
   * 2.1 CPU s, 2.35 vs 1.65 s wall; bench/stunnel-variants.ts); false for volumes known to hold no
   * sparse files. */
  sparse?: boolean;
  /** The "verify" option: --checksum, compare whole-file checksums instead of size+mtime. Default false. */
  checksum?: boolean;
  /** --bwlimit in KiB/s (1024 bytes per second units); integer > 0. Default: unlimited. */
  bwLimitKiBps?: number;
  /** --exclude patterns, relative to the volume root. Default ['/lost+found']. */
  excludes?: string[];
  /** --acls: POSIX ACLs. Default false here; the plan turns it on in preserve-ownership mode
   * (migration/compose.ts). Root (preserve-ownership) only: see `rsyncClientArgs`. */
  acls?: boolean;
  /** --xattrs: extended attributes except system.* (ACLs travel with `acls`) and, unless
   * `selinuxXattrs`, security.selinux. Default false here (see `acls`). Root only. In practice the
   * user.* namespace (and security.* names other than the label): trusted.* needs CAP_SYS_ADMIN
   * on both ends, which Ferry never grants, so rsync does not even see it (checked in
   * test/integration/dataplane.test.ts). */
  xattrs?: boolean;
  /** With `xattrs`: copy the security.selinux label too. Default false: the destination keeps the
   * labels its own SELinux policy gives (another cluster's MCS categories rarely fit). */
  selinuxXattrs?: boolean;
  /** --chown=UID:GID (numeric ids; either part may be omitted: '1000', ':2000'). Root only. */
  chown?: string;
  /** --usermap=FROM:TO[,FROM:TO…], numeric ids / LOW-HIGH ranges / '*'. Root only. */
  usermap?: string;
  /** --groupmap, same syntax as usermap. Root only. */
  groupmap?: string;
  /** --compress. Default false (zlib drops throughput ≈ 20x on fast links, as measured by the peers' users). */
  compress?: boolean;
  /** --timeout: I/O inactivity timeout in seconds; integer 1..86400. Default 600. */
  timeoutSeconds?: number;
  /** Keep rsync's incremental recursion (less memory, less accurate progress). Default false. */
  incrementalRecursion?: boolean;
  /** Extra long options (`--name` or `--name=value`), checked against an allow pattern and a denylist. */
  extraArgs?: string[];
}

/** Fully defaulted, validated, frozen rsync options. */
export interface RsyncOptions {
  readonly archive: boolean;
  readonly deleteMode: RsyncDeleteMode;
  readonly hardLinks: boolean;
  readonly partial: boolean;
  readonly partialDir: string;
  readonly sparse: boolean;
  readonly checksum: boolean;
  /** KiB/s; undefined = unlimited. */
  readonly bwLimitKiBps: number | undefined;
  readonly excludes: readonly string[];
  readonly acls: boolean;
  readonly xattrs: boolean;
  readonly selinuxXattrs: boolean;
  readonly chown: string | undefined;
  readonly usermap: string | undefined;
  readonly groupmap: string | undefined;
  readonly compress: boolean;
  /** Seconds. */
  readonly timeoutSeconds: number;
  readonly incrementalRecursion: boolean;
  readonly extraArgs: readonly string[];
}

/** Default relative partial directory. */
export const DEFAULT_PARTIAL_DIR = '.ferry-partial';
/** Default I/O timeout in seconds (rsyncd.conf(5) calls 600 "a good choice"). */
export const DEFAULT_TIMEOUT_SECONDS = 600;
/** Largest accepted --timeout, in seconds (one day). */
export const MAX_TIMEOUT_SECONDS = 86_400;
/** Default exclude patterns: the ext* fsck directory at the volume root is never data. */
export const DEFAULT_EXCLUDES: readonly string[] = Object.freeze(['/lost+found']);

/**
 * The standard progress/diagnostic flags. No --human-readable: the parser wants exact byte counts
 * (it still accepts human-readable output). Needs rsync >= 3.1.0 on both ends (rsync(1) --info).
 */
export const RSYNC_INFO_FLAGS = '--info=COPY2,DEL2,REMOVE2,SKIP2,FLIST2,PROGRESS2,STATS2';

/** Shape every extra argument must have: one long option, optionally with a shell-safe value. */
export const EXTRA_ARG_PATTERN = /^--[a-z][a-z0-9-]*(=[A-Za-z0-9_.,:/+=-]*)?$/;

/**
 * Options refused in extraArgs, with the reason shown to the operator. Covers options that run
 * programs or reach other hosts, read or write files outside the transfer, destroy source data,
 * weaken deletion safety, or that Ferry manages itself (use the typed field instead). This is THE
 * list: the plan schema (src/plan/schema.ts) checks `rsync.extraArgs` with `extraArgProblem`, so a
 * plan that validates is never refused later by the library. Where a reason names a field, it is
 * the plan's `rsync.<field>` (the library's own name follows in parentheses when it differs).
 */
export const DENIED_EXTRA_ARGS: Readonly<Record<string, string>> = Object.freeze({
  '--rsh': 'runs a remote shell program; Ferry connects to its own rsync daemon',
  '--rsync-path': 'runs a program on the remote side',
  '--daemon': 'starts a daemon; not a client option',
  '--config': 'daemon option',
  '--dparam': 'daemon option',
  '--server': 'internal protocol option',
  '--sender': 'internal protocol option',
  '--password-file': 'Ferry mounts the password file itself',
  '--early-input': 'sends a local file to the daemon',
  '--remove-source-files': 'deletes data on the source volume',
  '--write-devices': 'writes into device files at the destination',
  '--copy-devices': 'reads device contents as data',
  '--log-file': 'writes a file on the client; the pod log already has the output',
  '--log-file-format': 'only meaningful with --log-file',
  '--write-batch': 'writes a batch file on the client',
  '--only-write-batch': 'writes a batch file and skips the transfer',
  '--read-batch': 'reads a local batch file instead of transferring',
  '--files-from': 'reads a file list from the client filesystem',
  '--exclude-from': 'reads patterns from a client file; use excludes',
  '--include-from': 'reads patterns from a client file',
  '--filter': 'filter rules can merge arbitrary files; use excludes',
  '--temp-dir': 'changes where the receiver writes temporary files',
  '--backup-dir': 'writes outside the destination tree',
  '--compare-dest': 'reads other directories on the receiver',
  '--copy-dest': 'reads other directories on the receiver',
  '--link-dest': 'hard-links to other directories on the receiver',
  '--address': 'Ferry decides how to connect',
  '--port': 'Ferry decides how to connect',
  '--sockopts': 'Ferry decides how to connect',
  '--connect-prog': 'runs a program to connect',
  '--protocol': 'forcing an old protocol disables features Ferry relies on',
  '--dry-run': 'transfers nothing while Ferry would count the sync as done',
  '--list-only': 'transfers nothing while Ferry would count the sync as done',
  '--daemon-bwlimit': 'daemon option',
  '--fake-super': 'stores ownership and ACLs in xattrs instead of applying them; use the preserve-ownership mode',
  '--ignore-errors': 'deletes destination files even after source I/O errors',
  '--inplace': 'overwrites destination files in place; conflicts with the partial directory',
  '--append': 'assumes destination files are unchanged prefixes; can leave corrupt files',
  '--append-verify': 'assumes destination files are unchanged prefixes',
  '--delete': 'use the delete option',
  '--del': 'use the delete option',
  '--delete-before': 'use the delete option',
  '--delete-during': 'use the delete option',
  '--delete-delay': 'use the delete option',
  '--delete-after': 'use the delete option',
  '--delete-excluded': 'deletes destination files that excludes protect',
  '--delete-missing-args': 'deletes destination files',
  '--info': 'Ferry sets --info for progress parsing',
  '--debug': 'changes the output Ferry parses',
  '--verbose': 'changes the output Ferry parses',
  '--quiet': 'hides the output Ferry parses',
  '--progress': 'changes the output Ferry parses',
  '--out-format': 'changes the output Ferry parses',
  '--itemize-changes': 'changes the output Ferry parses',
  '--stderr': 'changes the output Ferry parses',
  '--msgs2stderr': 'changes the output Ferry parses',
  '--timeout': 'Ferry sets the I/O timeout (600 s)',
  '--contimeout': 'Ferry connects through a local transport',
  '--bwlimit': 'use rsync.bandwidthLimitKiBps (library option bwLimitKiBps)',
  '--exclude': 'use rsync.excludes',
  '--include': 'include rules change what excludes mean; use excludes',
  '--chown': 'use security.chown',
  '--usermap': 'Ferry keeps numeric ids; use security.chown to re-own files',
  '--groupmap': 'Ferry keeps numeric ids; use security.chown to re-own files',
  '--partial': 'Ferry always passes it (resumes interrupted files)',
  '--partial-dir': 'Ferry sets it (.ferry-partial)',
  '--checksum': 'use rsync.verify (library option checksum)',
  '--compress': 'costs far more CPU than it saves on fast links; not offered',
  '--sparse': 'Ferry always passes it',
  '--hard-links': 'Ferry always passes it',
  '--acls': 'use rsync.acls (on by default in preserve-ownership mode)',
  '--xattrs': 'use rsync.xattrs (on by default in preserve-ownership mode)',
  '--archive': 'Ferry passes the archive flags that fit the security mode',
  '--inc-recursive': 'Ferry needs the full file list for accurate progress',
  '--no-inc-recursive': 'Ferry sets it',
  '--i-r': 'Ferry needs the full file list for accurate progress',
  '--no-i-r': 'Ferry sets it',
});

/**
 * Why one extraArgs entry is refused, or undefined when it is accepted: it must be ONE long option
 * (`--name` or `--name=value`, value of letters, digits and _ . , : / + = -; short options are refused
 * because bundles such as `-avz` or `-e ssh` cannot be checked) and not in DENIED_EXTRA_ARGS.
 * Used by `validateRsyncOptions` and by the plan schema.
 */
export function extraArgProblem(arg: unknown): string | undefined {
  if (typeof arg !== 'string' || !EXTRA_ARG_PATTERN.test(arg)) {
    return `${JSON.stringify(arg)} must be one long option such as --name or --name=value (value of letters, digits and _ . , : / + = -)`;
  }
  const name = arg.split('=')[0]!;
  const reason = DENIED_EXTRA_ARGS[name];
  return reason === undefined ? undefined : `${name} is not allowed: ${reason}`;
}

// A POSIX-ish numeric id: 0 .. 2^32-2 (4294967295 is (uid_t)-1, "no change").
const MAX_ID = 4_294_967_294;
const ID_RE = /^(0|[1-9][0-9]{0,9})$/;

function isId(s: string): boolean {
  return ID_RE.test(s) && Number(s) <= MAX_ID;
}

/** Problems with a --usermap/--groupmap string; empty when valid. */
function mapProblems(value: string): string[] {
  if (value.length === 0) return ['must not be empty'];
  const out: string[] = [];
  value.split(',').forEach((pair, i) => {
    const m = /^([^:]*):([^:]*)$/.exec(pair);
    if (!m) {
      out.push(`pair ${i + 1} ${JSON.stringify(pair)} must be FROM:TO`);
      return;
    }
    const [, from, to] = m as unknown as [string, string, string];
    const range = /^([0-9]+)-([0-9]+)$/.exec(from);
    const fromOk =
      from === '*' || isId(from) || (range !== null && isId(range[1]!) && isId(range[2]!) && Number(range[1]) <= Number(range[2]));
    if (!fromOk) {
      out.push(
        `pair ${i + 1}: FROM ${JSON.stringify(from)} must be a numeric id, a LOW-HIGH id range or '*' ` +
          '(Ferry passes --numeric-ids, so the sender sends no user/group names to match)',
      );
    }
    if (!isId(to)) {
      out.push(
        `pair ${i + 1}: TO ${JSON.stringify(to)} must be a numeric id ` +
          '(the daemon runs with "numeric ids = yes" and cannot look names up)',
      );
    }
  });
  return out;
}

/** Problems with a --chown value; empty when valid. */
function chownProblems(value: string): string[] {
  const m = /^([^:]*)(?::([^:]*))?$/.exec(value);
  if (!m || value === '' || value === ':') return ['must be UID:GID, UID or :GID with numeric ids (e.g. "1000:1000")'];
  const [, user, group] = m;
  const out: string[] = [];
  if (user !== undefined && user !== '' && !isId(user)) {
    out.push(`user ${JSON.stringify(user)} must be a numeric id (names cannot be resolved by the daemon: "numeric ids = yes")`);
  }
  if (group !== undefined && group !== '' && !isId(group)) {
    out.push(`group ${JSON.stringify(group)} must be a numeric id (names cannot be resolved by the daemon: "numeric ids = yes")`);
  }
  return out;
}

function checkBoolean(problems: RsyncOptionProblem[], input: Record<string, unknown>, field: string): void {
  const v = input[field];
  if (v !== undefined && typeof v !== 'boolean') {
    problems.push({ path: field, message: `must be true or false, got ${JSON.stringify(v)}` });
  }
}

const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  'archive', 'delete', 'hardLinks', 'partial', 'partialDir', 'sparse', 'checksum', 'bwLimitKiBps',
  'excludes', 'acls', 'xattrs', 'selinuxXattrs', 'chown', 'usermap', 'groupmap', 'compress', 'timeoutSeconds',
  'incrementalRecursion', 'extraArgs',
]);

/** Why ACLs and xattrs need the preserve-ownership (root) mode. */
const METADATA_NEEDS_ROOT =
  'needs the preserve-ownership (root) security mode: restricted mode re-owns every file to the transfer\'s uid and cannot ' +
  'read other users\' files, so it cannot keep ACLs or extended attributes faithfully';

/** Context for validation that depends on the pod: whether the transfer runs as root. */
export interface RsyncValidationContext {
  /** When false, options that need root (chown, usermap, groupmap) are reported as problems. */
  root?: boolean;
}

/**
 * Validates operator input and returns frozen, fully defaulted options.
 *
 * Shapes: see `RsyncOptionsInput`; bwLimitKiBps in KiB/s, timeoutSeconds in seconds. Unknown fields
 * are problems too (a typo such as `bwlimit` must not be silently ignored). When `ctx.root === false`,
 * chown/usermap/groupmap are problems (a non-root receiver cannot change ownership, rsync(1) --usermap).
 *
 * @throws RsyncOptionsError listing every invalid field.
 */
export function validateRsyncOptions(input: RsyncOptionsInput = {}, ctx: RsyncValidationContext = {}): RsyncOptions {
  const problems: RsyncOptionProblem[] = [];
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new RsyncOptionsError([{ path: '(options)', message: 'must be an object' }]);
  }
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!KNOWN_FIELDS.has(key)) problems.push({ path: key, message: 'unknown option' });
  }
  for (const f of ['archive', 'hardLinks', 'partial', 'sparse', 'checksum', 'acls', 'xattrs', 'selinuxXattrs', 'compress', 'incrementalRecursion']) {
    checkBoolean(problems, raw, f);
  }

  let deleteMode: RsyncDeleteMode = 'final';
  if (input.delete === true) deleteMode = 'always';
  else if (input.delete === false) deleteMode = 'never';
  else if (input.delete !== undefined && input.delete !== 'final') {
    problems.push({ path: 'delete', message: `must be true, false or 'final', got ${JSON.stringify(input.delete)}` });
  }

  const partialDir = input.partialDir ?? DEFAULT_PARTIAL_DIR;
  if (input.partialDir !== undefined) {
    if (typeof partialDir !== 'string' || partialDir === '') {
      problems.push({ path: 'partialDir', message: 'must be a non-empty relative directory name' });
    } else if (partialDir.startsWith('/')) {
      problems.push({ path: 'partialDir', message: 'must be relative (an absolute path is outside the volume)' });
    } else if (partialDir.split('/').some((c) => c === '..' || c === '.' || c === '')) {
      problems.push({ path: 'partialDir', message: "must not contain '..', '.' or empty path components" });
    } else if (!/^[A-Za-z0-9_.+-][A-Za-z0-9_.+/-]*$/.test(partialDir)) {
      problems.push({ path: 'partialDir', message: 'may only contain letters, digits, and _ . + - /' });
    } else if (partialDir.length > 255) {
      problems.push({ path: 'partialDir', message: 'must be at most 255 characters' });
    }
  }

  if (input.bwLimitKiBps !== undefined) {
    const v = input.bwLimitKiBps;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      problems.push({ path: 'bwLimitKiBps', message: `must be a whole number of KiB/s greater than 0, got ${JSON.stringify(v)}` });
    }
  }

  const timeoutSeconds = input.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  if (input.timeoutSeconds !== undefined) {
    const v = input.timeoutSeconds;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > MAX_TIMEOUT_SECONDS) {
      problems.push({
        path: 'timeoutSeconds',
        message: `must be a whole number of seconds from 1 to ${MAX_TIMEOUT_SECONDS} (0 would let a dead peer hang the transfer forever), got ${JSON.stringify(v)}`,
      });
    }
  }

  let excludes: string[] = [...DEFAULT_EXCLUDES];
  if (input.excludes !== undefined) {
    if (!Array.isArray(input.excludes)) {
      problems.push({ path: 'excludes', message: 'must be a list of patterns' });
    } else {
      excludes = [...input.excludes];
      input.excludes.forEach((p, i) => {
        const field = `excludes[${i}]`;
        if (typeof p !== 'string' || p.trim() === '') problems.push({ path: field, message: 'must be a non-empty pattern' });
        else if (/[\n\r\0]/.test(p)) problems.push({ path: field, message: 'must not contain newline, carriage return or NUL characters' });
        else if (p.length > 4096) problems.push({ path: field, message: 'must be at most 4096 characters' });
      });
    }
  }

  const root = ctx.root;
  for (const f of ['chown', 'usermap', 'groupmap'] as const) {
    const v = input[f];
    if (v === undefined) continue;
    if (typeof v !== 'string') {
      problems.push({ path: f, message: 'must be a string' });
      continue;
    }
    const ps = f === 'chown' ? chownProblems(v) : mapProblems(v);
    for (const message of ps) problems.push({ path: f, message });
    if (root === false) {
      problems.push({
        path: f,
        message: 'needs the preserve-ownership (root) security mode: a non-root receiver cannot change file ownership',
      });
    }
  }
  for (const f of ['acls', 'xattrs', 'selinuxXattrs'] as const) {
    if (input[f] === true && root === false) problems.push({ path: f, message: METADATA_NEEDS_ROOT });
  }
  if (input.selinuxXattrs === true && input.xattrs !== true) {
    problems.push({ path: 'selinuxXattrs', message: 'needs xattrs: true (the SELinux label is an extended attribute)' });
  }
  if (input.chown !== undefined && (input.usermap !== undefined || input.groupmap !== undefined)) {
    problems.push({ path: 'chown', message: 'cannot be combined with usermap/groupmap (rsync(1): --chown is a shorthand for them)' });
  }

  const extraArgs: string[] = [];
  if (input.extraArgs !== undefined) {
    if (!Array.isArray(input.extraArgs)) {
      problems.push({ path: 'extraArgs', message: 'must be a list of options' });
    } else {
      input.extraArgs.forEach((a, i) => {
        const problem = extraArgProblem(a);
        if (problem !== undefined) problems.push({ path: `extraArgs[${i}]`, message: problem });
        else extraArgs.push(a);
      });
    }
  }

  if (problems.length > 0) throw new RsyncOptionsError(problems);

  return Object.freeze({
    archive: input.archive ?? true,
    deleteMode,
    hardLinks: input.hardLinks ?? true,
    partial: input.partial ?? true,
    partialDir,
    sparse: input.sparse ?? true,
    checksum: input.checksum ?? false,
    bwLimitKiBps: input.bwLimitKiBps,
    excludes: Object.freeze(excludes),
    acls: input.acls ?? false,
    xattrs: input.xattrs ?? false,
    selinuxXattrs: input.selinuxXattrs ?? false,
    chown: input.chown,
    usermap: input.usermap,
    groupmap: input.groupmap,
    compress: input.compress ?? false,
    timeoutSeconds,
    incrementalRecursion: input.incrementalRecursion ?? false,
    extraArgs: Object.freeze(extraArgs),
  });
}

/** Which sync and which security mode the argv is for. */
export interface RsyncArgsContext {
  /** The final (cutover) sync; deletes extraneous destination files unless deleteMode is 'never'. */
  final: boolean;
  /** Whether the pods run as root (preserve-ownership mode). */
  root: boolean;
}

/**
 * The rsync client flags for one sync (no source or destination operands).
 *
 * Order: attribute flags, hard links, partial, sparse, checksum, acls/xattrs, compression, bandwidth,
 * timeout, recursion mode, deletion, excludes, ownership mapping, info flags, extra args.
 *
 * - Root: `--recursive --links --perms --times --owner --group --devices --specials --numeric-ids`
 *   (-a spelled out, plus --numeric-ids: the daemon runs with "numeric ids = yes", and ids are what a
 *   PVC's files carry across clusters — names differ between images).
 * - Non-root: `--recursive --links --perms --times --specials --omit-dir-times`. A non-root receiver
 *   cannot set times on directories it does not own — typically the volume root — which rsync reports
 *   as "failed to set times on "."" and exit 23 (seen in captures). Permissions of a root-owned
 *   volume root cannot be set either ("failed to set permissions on "."", capture nonroot-rootdir);
 *   there is no rsync flag to skip "." only, so classifyRsyncExit treats that lone failure as success.
 *   FIFOs and sockets need no privilege (mknod(2) requires CAP_MKNOD only for device nodes; a uid
 *   65534 receiver created both in the captures), so --specials stays.
 * - Deletion uses --delete-during (rsync's default mode for --delete, made explicit): the receiver
 *   frees space directory by directory before it writes, so a destination sized like the source does
 *   not fill up with files deleted at the source since the last stage sync. --delete-after would need
 *   room for both and forces non-incremental recursion; --delete-delay also defers the space.
 *   rsync itself skips all deletions after a sender I/O error ("IO error encountered -- skipping file
 *   deletion"), and Ferry refuses --ignore-errors, so an unreadable source never empties the target.
 * - `--no-inc-recursive` unless incrementalRecursion: with incremental recursion the progress2 total
 *   grows while the scan proceeds ("ir-chk"), so percent and ETA are wrong until the scan ends
 *   (measured: 92% shown after the first 50 MiB file of a 93 MB / 10,102-file tree). Cost measured on
 *   this machine (tmpfs, rsync 3.5.0): 10k files 0.25 s vs 0.13 s to first progress, same total time
 *   (0.6 s); 100k files 0.36 s vs 0.07 s to first progress, total 3.9–4.8 s vs 3.6–3.9 s, peak RSS
 *   client 14.2 MB vs 7.4 MB, daemon 12.1 MB vs 7.8 MB (≈ 70 bytes per file per side). It also
 *   avoids re-sending hard-linked data (rsync(1) --hard-links). Trees with tens of millions of files
 *   can turn incrementalRecursion on to save memory.
 * - No --whole-file: a first copy has no basis file, so rsync sends the data literally anyway
 *   (measured, 1 GiB: 2.85 vs 2.72 CPU s, within noise); on a re-sync the delta algorithm is what
 *   keeps 1 MiB appended to a 2 GiB file at 1.22 MiB sent, 1.60 MiB on the wire both ways
 *   (bench/dataplane.ts --scenarios delta). rsync's default block size (≈ √size) is kept.
 * - No --contimeout: it only bounds the TCP connect, which behind the local stunnel always succeeds
 *   at once; a missing greeting is bounded by --timeout (exit 30) or ends as exit 5 when stunnel drops
 *   the connection (both captured).
 *
 * - `--acls` and `--xattrs` (with `--filter=-x system.*` and, unless selinuxXattrs,
 *   `--filter=-x security.selinux`) in root mode only.
 *
 * @throws RsyncOptionsError when chown/usermap/groupmap/acls/xattrs are set and `ctx.root` is false.
 */
export function rsyncClientArgs(opts: RsyncOptions, ctx: RsyncArgsContext): string[] {
  const { root, final } = ctx;
  if (!root) {
    const problems: RsyncOptionProblem[] = [];
    for (const f of ['chown', 'usermap', 'groupmap'] as const) {
      if (opts[f] !== undefined) {
        problems.push({
          path: f,
          message: 'needs the preserve-ownership (root) security mode: a non-root receiver cannot change file ownership',
        });
      }
    }
    for (const f of ['acls', 'xattrs'] as const) if (opts[f]) problems.push({ path: f, message: METADATA_NEEDS_ROOT });
    if (problems.length > 0) throw new RsyncOptionsError(problems);
  }

  const args: string[] = ['--recursive', '--links'];
  if (opts.archive) {
    args.push('--perms', '--times');
    if (root) args.push('--owner', '--group', '--devices', '--specials', '--numeric-ids');
    else args.push('--specials', '--omit-dir-times');
  }
  if (opts.hardLinks) args.push('--hard-links');
  if (opts.partial) args.push('--partial', `--partial-dir=${opts.partialDir}`);
  if (opts.sparse) args.push('--sparse');
  if (opts.checksum) args.push('--checksum');
  if (opts.acls) args.push('--acls');
  if (opts.xattrs) {
    args.push('--xattrs');
    // rsync(1) --xattrs: once any xattr filter rule is given, rsync no longer skips system.* by
    // itself, so both rules are needed. system.* holds the ACLs (carried by --acls) and kernel
    // attributes; security.selinux stays the destination's (and, as an excluded name, is not deleted
    // there either). Checked against rsync 3.5.0 as root: user.* copied, the label not.
    args.push('--filter=-x system.*');
    if (!opts.selinuxXattrs) args.push('--filter=-x security.selinux');
  }
  if (opts.compress) args.push('--compress');
  if (opts.bwLimitKiBps !== undefined) args.push(`--bwlimit=${opts.bwLimitKiBps}`);
  args.push(`--timeout=${opts.timeoutSeconds}`);
  if (!opts.incrementalRecursion) args.push('--no-inc-recursive');
  if (opts.deleteMode === 'always' || (opts.deleteMode === 'final' && final)) args.push('--delete-during');
  for (const p of opts.excludes) args.push(`--exclude=${p}`);
  if (root) {
    if (opts.chown !== undefined) args.push(`--chown=${opts.chown}`);
    if (opts.usermap !== undefined) args.push(`--usermap=${opts.usermap}`);
    if (opts.groupmap !== undefined) args.push(`--groupmap=${opts.groupmap}`);
  }
  args.push(RSYNC_INFO_FLAGS);
  args.push(...opts.extraArgs);
  return args;
}

/**
 * Client arguments of one sync of a block volume (volumeMode Block): the source device's bytes into
 * the destination's device node, rsync's delta algorithm sending only the blocks that differ.
 * - `--copy-devices`: the sender reads a device as a regular file (rsync(1); needs the daemon module's
 *   `refuse options = !write-devices`, rsyncd-conf.ts, for the other half).
 * - `--write-devices`: the receiver writes into the existing device node; implies `--inplace`
 *   (rsync(1)), given explicitly: a temporary file beside a device node is impossible.
 * - `--ignore-times`: a device node's size and mtime never change with its content, so the quick
 *   check would skip every re-sync (measured on rsync 3.5.0: 42 bytes sent after a 1 MiB change);
 *   every sync runs the delta (the receiver reads its device to checksum the blocks).
 * - `--no-whole-file`: the delta algorithm even where rsync would pick whole-file copies.
 * `--timeout`, `--bwlimit`, `--compress`, the progress flags and extraArgs as for file trees; none of
 * the tree options (recursion, ownership, deletes, sparse, partial, excludes) apply to one device.
 */
export function rsyncBlockArgs(opts: RsyncOptions): string[] {
  const args = ['--copy-devices', '--write-devices', '--inplace', '--ignore-times', '--no-whole-file'];
  if (opts.compress) args.push('--compress');
  if (opts.bwLimitKiBps !== undefined) args.push(`--bwlimit=${opts.bwLimitKiBps}`);
  args.push(`--timeout=${opts.timeoutSeconds}`, RSYNC_INFO_FLAGS, ...opts.extraArgs);
  return args;
}
