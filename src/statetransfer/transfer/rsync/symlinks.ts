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
 * '..' (NUL-separated triples: path relative to the volume, target, mtime) and uploads the list as
 * `.ferry-symlinks` into the module; the daemon's `post-xfer exec` (rsyncd.conf(5)) re-creates exactly
 * those links and removes the list. The script only replaces entries that are already symlinks, only
 * at paths without '.'/'..' components, and only inside the module (the parent directory's real path
 * is checked), so a list cannot write outside the volume. Root (chroot) mode needs none of this.
 */
import { shQuote } from '../../shell';

/** Name of the uploaded list at the module root; removed by the repair script. */
export const SYMLINK_LIST_NAME = '.ferry-symlinks';
/** ConfigMap key (next to rsyncd.conf) of the repair script. */
export const SYMLINK_REPAIR_KEY = 'repair-symlinks.sh';

/** The daemon-side repair script, run by `post-xfer exec` with rsync's RSYNC_* environment. */
export function symlinkRepairScript(): string {
  return `# Ferry: re-create symlinks the unprivileged rsync daemon sanitized (see symlinks.ts).
set -u
[ "\${RSYNC_EXIT_STATUS:-1}" = 0 ] || exit 0
root=$(realpath -e -- "$RSYNC_MODULE_PATH") || exit 0
list="$root/${SYMLINK_LIST_NAME}"
{ [ -f "$list" ] && [ ! -L "$list" ]; } || exit 0
fixed=0 refused=0
while IFS= read -r -d '' path && IFS= read -r -d '' target && IFS= read -r -d '' mtime; do
  case "/$path/" in */../*|*/./*|//*) refused=$((refused + 1)); continue ;; esac
  full="$root/$path"
  parent=$(realpath -e -- "$(dirname -- "$full")" 2>/dev/null) || { refused=$((refused + 1)); continue; }
  case "$parent/" in "$root"/*) ;; *) refused=$((refused + 1)); continue ;; esac
  if [ -L "$full" ] && ln -sfn -- "$target" "$full"; then
    touch -h -d "@$mtime" -- "$full" 2>/dev/null
    fixed=$((fixed + 1))
  else
    refused=$((refused + 1))
  fi
done < "$list"
rm -f -- "$list"
echo "ferry: module $RSYNC_MODULE_NAME: repaired $fixed symlink(s), refused $refused" >&2
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
  /** rsync:// URL of the module root, ending in '/'. */
  moduleURL: string;
}

/**
 * Client-side bash lines: list the symlinks the daemon would sanitize and upload the list. The
 * upload is retried (with 1-4 s pauses) because the module admits one connection at a time and the
 * main sync's slot is freed a moment after it ends (see rsyncd-conf.ts `max connections`).
 */
export function symlinkListUpload(o: SymlinkUploadOptions): string {
  const list = `${o.workDir}/${SYMLINK_LIST_NAME}`;
  return [
    `find ${shQuote(o.sourcePath)} -type l \\( -lname '/*' -o -lname '*..*' \\) -printf '%P\\0%l\\0%T@\\0' > ${list} 2>/dev/null || true`,
    `if [ -s ${list} ]; then`,
    `  echo "ferry: restoring $(( $(tr -cd '\\0' < ${list} | wc -c) / 3 )) symlink(s) the daemon sanitizes" >&2`,
    '  for try in 1 2 3 4 5; do',
    // Earlier tries stay quiet ("max connections reached" is expected right after the main sync).
    `    if [ "$try" = 5 ]; then rsync --quiet --password-file=${shQuote(o.passwordFile)} ${list} ${shQuote(`${o.moduleURL}${SYMLINK_LIST_NAME}`)} || exit $?; break; fi`,
    `    rsync --quiet --password-file=${shQuote(o.passwordFile)} ${list} ${shQuote(`${o.moduleURL}${SYMLINK_LIST_NAME}`)} 2>/dev/null && break`,
    '    sleep "$try"',
    '  done',
    'fi',
  ].join('\n');
}
