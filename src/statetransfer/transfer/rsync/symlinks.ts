/**
 * Faithful symlinks without privileges.
 *
 * An rsync daemon that does not chroot (the only choice without CAP_SYS_CHROOT, i.e. in the
 * "restricted" security mode) sanitizes every received symlink whose target leaves the module:
 * rsync's flist code strips a leading '/' and leading '..' components (measured on rsync 3.5.0:
 * `abs -> /etc/passwd` arrives as `abs -> etc/passwd`), whatever `munge symlinks` says. A PVC holding
 * such links (e.g. `current -> /var/lib/app/releases/42`) would be silently changed.
 *
 * Repair: after a successful sync the client lists the symlinks whose targets are absolute or contain
 * '..' (NUL-separated triples: path relative to the volume, target, mtime) and hands the list to the
 * daemon, then waits for the daemon to have repaired them. Ferry's bookkeeping never enters the
 * user's tree (a file of any name in the PVC is data, copied and kept like any other), and the sync
 * only reports success once the repair is done:
 * 1. the client uploads the list into `<pvc>_ferry-links`, a write-only module whose path is a
 *    directory of the server pod's /tmp emptyDir (SYMLINK_LINKS_ROOT/<module index>), over the same
 *    authenticated TLS tunnel and password as the data;
 * 2. the client then opens `<pvc>_ferry-repair` (read-only, same directory) with `--list-only`; that
 *    module's `pre-xfer exec` (rsyncd.conf(5)) runs the repair script and the daemon waits for it
 *    before it answers: exit 0 lets the listing proceed (the client's acknowledgement), any other exit
 *    aborts it and its stdout is shown to the client ("pre-xfer exec returned failure").
 * '_' cannot occur in a PVC name (a DNS subdomain), so these names never collide with a data module.
 * The script only replaces entries that are already symlinks, only at paths without '.'/'..'
 * components, and only inside the data module (the parent directory's real path is checked), so a
 * list cannot write outside the volume. Root (chroot) mode needs none of this.
 */
import { shQuote } from '../../shell';

/** Name of the uploaded list inside the links directory (never in the user's tree). */
export const SYMLINK_LIST_NAME = 'symlinks.list';
/** ConfigMap key (next to rsyncd.conf) of the repair script. */
export const SYMLINK_REPAIR_KEY = 'repair-symlinks.sh';
/** Server-side directory holding one links directory per module (in the pod's /tmp emptyDir, which
 * is disk-backed: a list takes about 100 bytes per repaired link). */
export const SYMLINK_LINKS_ROOT = '/tmp/ferry-links';
/** Exit code of the client's finish step when the destination refused or failed the repair (rsync's
 * 11, "Error in file I/O": not transient; classifyRsyncExit explains it from the marker line). */
export const SYMLINK_REPAIR_FAILED_EXIT = 11;
/** Marker printed by the client when the destination reports a failed repair. */
export const SYMLINK_REPAIR_FAILED_MARKER = 'ferry: symlink repair failed on the destination';

/** The module receiving the list of data module `module`. */
export function symlinkLinksModule(module: string): string {
  return `${module}_ferry-links`;
}

/** The module whose opening runs the repair of data module `module` (its pre-xfer exec). */
export function symlinkRepairModule(module: string): string {
  return `${module}_ferry-repair`;
}

/**
 * The daemon-side repair script, run by `pre-xfer exec` of the repair module as
 * `bash script DATA_ROOT LINKS_DIR`. Exits 0 when every listed link that is still a symlink at the
 * destination was re-created (entries that are not symlinks there, e.g. excluded or changed since,
 * are skipped; unsafe entries refused), 1 with a one-line reason on stdout otherwise (no list
 * uploaded, or ln/touch failing). Counts go to stderr (the daemon's log) and, on success, nowhere
 * else: rsync shows pre-xfer output to the client only on failure.
 */
export function symlinkRepairScript(): string {
  return `# Ferry: re-create symlinks the unprivileged rsync daemon sanitized (see symlinks.ts).
set -u
root=$(realpath -e -- "$1") || { echo "data directory $1 missing"; exit 1; }
list="$2/${SYMLINK_LIST_NAME}"
{ [ -f "$list" ] && [ ! -L "$list" ]; } || { echo "no symlink list was uploaded to $2"; exit 1; }
fixed=0 skipped=0 refused=0 failed=0
while IFS= read -r -d '' path && IFS= read -r -d '' target && IFS= read -r -d '' mtime; do
  case "/$path/" in */../*|*/./*|//*) refused=$((refused + 1)); continue ;; esac
  full="$root/$path"
  parent=$(realpath -e -- "$(dirname -- "$full")" 2>/dev/null) || { skipped=$((skipped + 1)); continue; }
  case "$parent/" in "$root"/*) ;; *) refused=$((refused + 1)); continue ;; esac
  [ -L "$full" ] || { skipped=$((skipped + 1)); continue; }
  if ln -sfn -- "$target" "$full"; then
    touch -h -d "@$mtime" -- "$full" 2>/dev/null
    fixed=$((fixed + 1))
  else
    failed=$((failed + 1))
  fi
done < "$list"
rm -f -- "$list"
echo "ferry: module \${RSYNC_MODULE_NAME:-?}: repaired $fixed symlink(s), skipped $skipped, refused $refused, failed $failed" >&2
[ "$failed" -eq 0 ] || { echo "could not re-create $failed symlink(s) in $root (see the server pod log)"; exit 1; }
exit 0
`;
}

/** Options of `symlinkListUpload`. */
export interface SymlinkUploadOptions {
  /** The source volume's mount path. */
  sourcePath: string;
  /** Where the list is written (a writable directory of the client container). */
  workDir: string;
  /** rsync password file. */
  passwordFile: string;
  /** rsync:// URL of the daemon with the user, ending in '/' (e.g. rsync://ferry@127.0.0.1:2222/). */
  daemonURL: string;
  /** The data module (the destination PVC). */
  module: string;
}

/**
 * Client-side bash lines: list the symlinks the daemon sanitizes, upload the list to the links
 * module, and wait for the repair through the repair module. Exits with rsync's code when the daemon
 * cannot be reached (transient: a retry redoes the sync, which then has nothing to copy), and with
 * SYMLINK_REPAIR_FAILED_EXIT after printing SYMLINK_REPAIR_FAILED_MARKER when the repair itself
 * failed. Prints how many links were restored.
 */
export function symlinkListUpload(o: SymlinkUploadOptions): string {
  const list = `${o.workDir}/${SYMLINK_LIST_NAME}`;
  const pw = `--password-file=${shQuote(o.passwordFile)}`;
  const upload = shQuote(`${o.daemonURL}${symlinkLinksModule(o.module)}/${SYMLINK_LIST_NAME}`);
  const repair = shQuote(`${o.daemonURL}${symlinkRepairModule(o.module)}/`);
  return [
    `find ${shQuote(o.sourcePath)} -type l \\( -lname '/*' -o -lname '*..*' \\) -printf '%P\\0%l\\0%T@\\0' > ${list} 2>/dev/null || true`,
    `if [ -s ${list} ]; then`,
    `  n=$(( $(tr -cd '\\0' < ${list} | wc -c) / 3 ))`,
    `  rsync --quiet ${pw} ${list} ${upload} || exit $?`,
    `  out=$(rsync --list-only ${pw} ${repair} 2>&1); rc=$?`,
    '  if [ "$rc" -ne 0 ]; then',
    `    case $out in *"pre-xfer exec returned failure"*) echo "${SYMLINK_REPAIR_FAILED_MARKER}: $(printf '%s' "$out" | grep -v -e '^rsync' -e 'pre-xfer exec' | head -n 3 | tr '\\n' ' ')"; exit ${SYMLINK_REPAIR_FAILED_EXIT} ;; esac`,
    `    printf '%s\\n' "$out"; exit "$rc"`,
    '  fi',
    '  echo "ferry: restored $n symlink(s) the unprivileged daemon sanitizes (repair acknowledged by the destination)"',
    'fi',
  ].join('\n');
}
