/**
 * rsync daemon configuration (rsyncd.conf), its secrets file, and password generation.
 *
 * The daemon only ever writes (the source pushes), listens on the loopback interface behind the
 * stunnel transport, and serves one module per destination PVC. Parameter meanings and defaults are
 * from rsyncd.conf(5) of rsync 3.5.0; behaviour noted below was checked against that binary.
 */
import { FerryError } from '../../../core/errors';
import { symlinkLinksModule, symlinkRepairModule } from './symlinks';

/** One module: a name (the destination PVC name) and the directory it serves. */
export interface RsyncdModule {
  name: string;
  /** Absolute path of the mounted PVC in the server container (of a block volume: the directory of
   * its device node). */
  path: string;
  /** A block volume's module: accepts --write-devices (see renderRsyncdConf). */
  block?: boolean;
}

/** Inputs of `renderRsyncdConf`. */
export interface RsyncdConfParams {
  modules: RsyncdModule[];
  /** Loopback address the daemon binds (127.0.0.1 or ::1): stunnel is the only way in. */
  bindAddress: string;
  /** TCP port, 1..65535. */
  port: number;
  /** The single user allowed by `auth users`. */
  authUser: string;
  /** Absolute path of the secrets file (mode 0400, see `renderRsyncdSecrets`). */
  secretsFile: string;
  /** Whether the daemon runs as root (preserve-ownership mode). */
  root: boolean;
  /** Absolute path of a writable directory (an emptyDir) for the pid file `rsyncd.pid` and the
   * per-module lock files `module-<index>.lock` of `max connections`. */
  runDir: string;
  /** The symlink repair of non-root mode (symlinks.ts): per data module `i`, a write-only module
   * `<name>_ferry-links` and a read-only module `<name>_ferry-repair`, both at `<linksRoot>/<i>`, the
   * latter running `/bin/bash <script> <module path> <linksRoot>/<i>` as its pre-xfer exec. */
  symlinkRepair?: { script: string; linksRoot: string };
  /** Daemon-side I/O timeout in seconds (so a vanished client frees its module). Default 600. */
  timeoutSeconds?: number;
  /** Where the daemon logs. Default '/dev/stdout' (the container log). */
  logFile?: string;
}

/** Thrown when daemon configuration inputs are invalid (a programming or naming error). */
export class RsyncdConfError extends FerryError {
  constructor(message: string) {
    super('config', message);
    this.name = 'RsyncdConfError';
  }
}

/** Longest module name Ferry accepts (a PVC name is at most 253 characters). */
const MAX_MODULE_NAME = 253;

/**
 * Why `name` cannot be an rsync module name, or undefined when it can. rsyncd.conf(5): the name
 * "cannot contain a slash or a closing square bracket", whitespace at the ends is discarded and
 * internal runs are collapsed; Ferry also refuses '[' , control characters, '%' (variable
 * expansion), leading '#'/';' (comment markers) and the reserved section name 'global'.
 */
export function moduleNameProblem(name: string): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'must not be empty';
  if (name.length > MAX_MODULE_NAME) return `must be at most ${MAX_MODULE_NAME} characters`;
  if (/[\]\[/%]/.test(name)) return "must not contain '[', ']', '/' or '%'";
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) return 'must not contain control characters (newline, tab, …)';
  if (/\s/.test(name)) return 'must not contain whitespace';
  if (/^[#;]/.test(name)) return "must not start with '#' or ';'";
  if (name.toLowerCase() === 'global') return "'global' is reserved by rsyncd.conf";
  return undefined;
}

/** True when `s` is a loopback IP literal. */
function isLoopback(s: string): boolean {
  return /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(s) || s === '::1';
}

/** A config value: one line, no leading/trailing whitespace (rsyncd.conf(5) trims them). */
function checkValue(what: string, v: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof v !== 'string' || v === '' || /[\x00-\x1f\x7f]/.test(v) || v !== v.trim()) {
    throw new RsyncdConfError(`${what} must be a non-empty single-line value without surrounding spaces, got ${JSON.stringify(v)}`);
  }
  if (v.includes('%')) throw new RsyncdConfError(`${what} must not contain '%' (rsyncd.conf expands %VAR%)`);
}

function checkAbsolutePath(what: string, v: string): void {
  checkValue(what, v);
  if (!v.startsWith('/')) throw new RsyncdConfError(`${what} must be an absolute path, got ${JSON.stringify(v)}`);
  if (v.split('/').some((c) => c === '..' || c === '.')) {
    throw new RsyncdConfError(`${what} must not contain '.' or '..' components (a "/./" splits a chroot path), got ${JSON.stringify(v)}`);
  }
}

/**
 * Renders rsyncd.conf.
 *
 * Global section, with the reasons:
 * - `port`, `address`: the loopback address only; a non-loopback bindAddress is refused because the
 *   rsync daemon protocol is plaintext and must sit behind the TLS transport.
 * - root: `use chroot = yes`, `uid = 0`, `gid = 0` (the default as root would be the "nobody" user,
 *   which cannot write arbitrary owners). Non-root: `use chroot = no` (chroot(2) needs privilege) and
 *   no uid/gid (a non-root daemon keeps its own ids).
 * - `numeric ids = yes`: ids, not names, cross clusters; the chroot has no passwd/group files.
 * - `munge symlinks = no`: rsyncd.conf(5) makes munging the default for every non-chroot module,
 *   which prefixes EVERY stored symlink with "/rsyncd-munged/" — all links, even relative in-volume
 *   ones, would break. The daemon only receives from an authenticated Ferry client, so no uploaded
 *   symlink is hostile. Measured on rsync 3.5.0: chrooted (root) modules then store symlinks verbatim
 *   (`abs -> /etc/passwd`, `up -> ../../outside`); NON-chrooted (non-root) modules still sanitize them
 *   (`abs -> etc/passwd`, `up -> outside`): rsync drops a leading '/' and leading '..' that leave the
 *   module. In-volume relative links survive in both modes; absolute and escaping links are only
 *   faithful in root mode.
 * - `log file = /dev/stdout`: unset, a daemon logs to syslog even with --no-detach, and a container
 *   has no /dev/log, so connection and auth failures would be lost. /dev/stdout is the container log
 *   and needs no writable filesystem; rsyncd.conf(5): if the file cannot be opened the daemon falls
 *   back to syslog (not fatal).
 * - `reverse lookup = no`: clients are always 127.0.0.1 (stunnel); no DNS needed.
 * - `pid file`: under the writable runDir (the root filesystem may be read-only).
 *
 * Module section (one per PVC):
 * - `read only = no`, `write only = yes`: the source pushes; nothing can be read back through the
 *   daemon.
 * - `list = no`, `hosts allow = 127.0.0.1 ::1` (or the bind address), `hosts deny = *`.
 * - `auth users`, `secrets file`, `strict modes = yes` (the secrets file must not be readable by
 *   others and, when root, must be owned by root: mount it with mode 0400).
 * - `max connections = 1` with a `lock file` per module: a second client for the same PVC — e.g. a
 *   retry while a stale client pod still writes — is refused with "@ERROR: max connections (1)
 *   reached -- try again later" (exit 5, retryable) instead of two writers interleaving in one
 *   volume. The lock file must be per module: measured on rsync 3.5.0, modules sharing one lock file
 *   share ONE connection slot, so a client of a second PVC was refused too.
 * - `timeout`: the daemon side ends a connection whose client vanished, freeing the module.
 * - no `fake super`: root mode stores real ownership; non-root mode cannot preserve it anyway.
 * - a block volume's module: `refuse options = !write-devices`. rsyncd.conf(5) "refuse options": the
 *   daemon refuses --copy-devices and --write-devices unless accepted with "!"; the client writes
 *   the source device's bytes into the module's device node in place (rsync(1) --write-devices).
 *   No symlink repair modules: the module holds one device node and nothing else.
 *
 * @throws RsyncdConfError on an invalid module name, duplicate module names, a relative path, a
 * non-loopback bind address, an out-of-range port, or an invalid user name.
 */
export function renderRsyncdConf(params: RsyncdConfParams): string {
  const { modules, bindAddress, port, authUser, secretsFile, root, runDir, symlinkRepair } = params;
  const timeout = params.timeoutSeconds ?? 600;
  const logFile = params.logFile ?? '/dev/stdout';
  if (!Array.isArray(modules) || modules.length === 0) throw new RsyncdConfError('at least one module is required');
  if (!isLoopback(bindAddress)) {
    throw new RsyncdConfError(
      `bindAddress must be a loopback address (127.x.x.x or ::1): the rsync daemon protocol is plaintext and is reached only through the TLS transport, got ${JSON.stringify(bindAddress)}`,
    );
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RsyncdConfError(`port must be 1..65535, got ${port}`);
  if (!Number.isInteger(timeout) || timeout < 0) throw new RsyncdConfError(`timeoutSeconds must be a whole number >= 0, got ${timeout}`);
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(authUser)) {
    throw new RsyncdConfError(`authUser must be 1-32 characters of letters, digits, _ . - (not starting with a digit), got ${JSON.stringify(authUser)}`);
  }
  checkAbsolutePath('secretsFile', secretsFile);
  checkAbsolutePath('runDir', runDir);
  const dir = runDir.replace(/\/+$/, '');
  checkAbsolutePath('logFile', logFile);
  if (symlinkRepair) {
    checkAbsolutePath('symlinkRepair.script', symlinkRepair.script);
    checkAbsolutePath('symlinkRepair.linksRoot', symlinkRepair.linksRoot);
  }

  const seen = new Set<string>();
  for (const m of modules) {
    const problem = moduleNameProblem(m.name);
    if (problem) throw new RsyncdConfError(`module name ${JSON.stringify(m.name)} ${problem}`);
    if (seen.has(m.name.toLowerCase())) throw new RsyncdConfError(`duplicate module name ${JSON.stringify(m.name)} (module names are case-insensitive)`);
    seen.add(m.name.toLowerCase());
    checkAbsolutePath(`path of module ${m.name}`, m.path);
  }

  const hostsAllow = bindAddress === '127.0.0.1' || bindAddress === '::1' ? '127.0.0.1 ::1' : `${bindAddress} 127.0.0.1 ::1`;
  const lines: string[] = [
    '# rsyncd.conf generated by Ferry. Do not edit: it is rewritten for every transfer.',
    `port = ${port}`,
    `address = ${bindAddress}`,
    `pid file = ${dir}/rsyncd.pid`,
    `log file = ${logFile}`,
    'reverse lookup = no',
    `use chroot = ${root ? 'yes' : 'no'}`,
    ...(root ? ['uid = 0', 'gid = 0'] : []),
    'numeric ids = yes',
    'munge symlinks = no',
    '',
  ];
  // One module section: who may connect (loopback, the auth user) and one connection at a time.
  const section = (name: string, path: string, lock: string, access: string[]): string[] => [
    `[${name}]`,
    `path = ${path}`,
    ...access,
    'list = no',
    `hosts allow = ${hostsAllow}`,
    'hosts deny = *',
    `auth users = ${authUser}`,
    `secrets file = ${secretsFile}`,
    'strict modes = yes',
    'max connections = 1',
    `lock file = ${dir}/${lock}.lock`,
    `timeout = ${timeout}`,
  ];
  modules.forEach((m, i) => {
    lines.push(...section(m.name, m.path, `module-${i}`, ['read only = no', 'write only = yes', ...(m.block ? ['refuse options = !write-devices'] : [])]), '');
    if (symlinkRepair && !m.block) {
      const links = `${symlinkRepair.linksRoot.replace(/\/+$/, '')}/${i}`;
      lines.push(
        ...section(symlinkLinksModule(m.name), links, `module-${i}-links`, ['read only = no', 'write only = yes']),
        '',
        ...section(symlinkRepairModule(m.name), links, `module-${i}-repair`, ['read only = yes', 'write only = no']),
        `pre-xfer exec = /bin/bash ${symlinkRepair.script} ${m.path} ${links}`,
        '',
      );
    }
  });
  return lines.join('\n');
}

/**
 * The secrets file content for one user: `user:password\n` (rsyncd.conf(5) "secrets file").
 *
 * @throws RsyncdConfError when the user name is invalid or the password is empty or contains a
 * newline/NUL (which would split the line).
 */
export function renderRsyncdSecrets(user: string, password: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(user)) throw new RsyncdConfError(`invalid rsync user name ${JSON.stringify(user)}`);
  if (typeof password !== 'string' || password.length === 0 || /[\r\n\0]/.test(password)) {
    throw new RsyncdConfError('password must be non-empty and must not contain newline or NUL characters');
  }
  return `${user}:${password}\n`;
}
