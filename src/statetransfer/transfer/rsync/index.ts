/**
 * The rsync Transfer: an rsync daemon on the destination (one module per PVC, behind the stunnel
 * transport on 127.0.0.1) and an rsync client on the source that pushes one PVC.
 *
 * Secrets never appear in command lines or environment variables: the daemon reads its secrets file
 * and the client its password file, both mounted from Secrets and copied to private 0400 files at
 * container start (see SECRET_FILE_MODE). Kubernetes Secret
 * `data` is base64 (`stringData` is refused by Ferry's conventions: it is write-only and does not
 * round-trip through reads and diffs).
 *
 * Data volumes (the PVCs themselves) are mounted by the pod builder at `ServedVolume.mountPath`
 * (server) and `TransferClientContext.sourcePath` (client); this module adds only its own mounts.
 */
import type { V1ConfigMap, V1Secret, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import {
  BLOCK_DEVICE_FILE,
  FERRY_RUN_DIR,
  type PodParts,
  type ProcessSpec,
  type Transfer,
  type TransferClientContext,
  type TransferEngine,
  type TransferServerContext,
  type TransferType,
} from '../../types';
import { configMap as configMapObject, secret as secretObject } from '../../objects';
import { RsyncOptionsError, rsyncBlockArgs, rsyncClientArgs, validateRsyncOptions, type RsyncOptions, type RsyncOptionsInput } from './options';
import { moduleNameProblem, renderRsyncdConf, renderRsyncdSecrets } from './rsyncd-conf';
import { rsyncOutcome, rsyncProgressFromTail } from './outcome';
import { SYMLINK_LINKS_ROOT, SYMLINK_REPAIR_KEY, symlinkListUpload, symlinkRepairScript } from './symlinks';

/** Default daemon port inside the server pod (crane-lib's choice, kept for familiarity). */
export const RSYNC_DEFAULT_PORT = 2222;
/** The single rsync user the daemon accepts. */
export const RSYNC_AUTH_USER = 'ferry';
/** Name of the client and server process (container). */
export const RSYNC_PROCESS_NAME = 'rsync';

/** Where the daemon config is mounted (ConfigMap, read-only). */
export const RSYNCD_CONF_DIR = '/etc/ferry/rsyncd';
/** The daemon config file. */
export const RSYNCD_CONF_PATH = `${RSYNCD_CONF_DIR}/rsyncd.conf`;
/** Key of the config in the ConfigMap. */
export const RSYNCD_CONF_KEY = 'rsyncd.conf';
/** Where the daemon secrets are mounted (Secret, mode 0444; see SECRET_FILE_MODE). */
export const RSYNCD_SECRETS_DIR = '/etc/ferry/rsyncd-secrets';
/** Key of the secrets file in the Secret. */
export const RSYNCD_SECRETS_KEY = 'rsyncd.secrets';
/** The mounted secrets file. */
export const RSYNCD_MOUNTED_SECRETS_PATH = `${RSYNCD_SECRETS_DIR}/${RSYNCD_SECRETS_KEY}`;
/** Writable directory for the daemon's pid and lock files and its private copy of the secrets; it
 * lives in the pod's run emptyDir (FERRY_RUN_DIR), as the root filesystem is read-only. */
export const RSYNCD_RUN_DIR = `${FERRY_RUN_DIR}/rsyncd`;
/** The daemon's private 0400 copy of the secrets file, the one rsyncd.conf names. */
export const RSYNCD_SECRETS_PATH = `${RSYNCD_RUN_DIR}/${RSYNCD_SECRETS_KEY}`;
/** The daemon pid file (renderRsyncdConf puts it in the run directory). */
export const RSYNCD_PID_FILE = `${RSYNCD_RUN_DIR}/rsyncd.pid`;
/** Where the client's password is mounted (Secret, mode 0444; see SECRET_FILE_MODE). */
export const RSYNC_PASSWORD_DIR = '/etc/ferry/rsync-password';
/** Key of the password in the client Secret. */
export const RSYNC_PASSWORD_KEY = 'password';
/** The mounted password file. */
export const RSYNC_MOUNTED_PASSWORD_FILE = `${RSYNC_PASSWORD_DIR}/${RSYNC_PASSWORD_KEY}`;
/** The client's --password-file: a private 0400 copy in the pod's run emptyDir. */
export const RSYNC_PASSWORD_FILE = `${FERRY_RUN_DIR}/rsync.password`;

/** Pod volume names this transfer adds (prefixed to stay clear of other layers' volumes). */
export const RSYNC_VOLUME_NAMES = Object.freeze({
  conf: 'ferry-rsyncd-conf',
  secrets: 'ferry-rsyncd-secrets',
  password: 'ferry-rsync-password',
});

/** File mode of the mounted secrets: 0444, because a non-root pod without an fsGroup could not read a
 * root-owned 0400 file (and setting an fsGroup on the source pod would rewrite the group of every
 * file of the PVC). rsync refuses other-readable secrets and password files (rsyncd.conf(5) "strict
 * modes"; rsync(1) --password-file), so each container first copies its file with `install -m 0400`
 * into the run emptyDir, owned by its own UID, and rsync reads only that copy. The pod holds only
 * Ferry's containers. */
export const SECRET_FILE_MODE = 0o444;

/** Options of `createRsyncTransfer`: rsync options plus the daemon port. */
export type RsyncTransferOptions = RsyncOptionsInput & {
  /** Daemon port inside the server pod, 1..65535. Default 2222. */
  port?: number;
};

/** URL host part: IPv6 literals in brackets. */
function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function checkPassword(password: string): void {
  if (typeof password !== 'string' || password.length < 16 || /[\r\n\0]/.test(password)) {
    throw new Error('rsync password must be at least 16 characters without newline or NUL (use generatePassword())');
  }
}

class RsyncTransfer implements Transfer {
  readonly #options: RsyncOptions;
  readonly #port: number;

  constructor(options: RsyncOptions, port: number) {
    this.#options = options;
    this.#port = port;
    Object.freeze(this);
  }

  get type(): TransferType {
    return 'rsync';
  }

  get port(): number {
    return this.#port;
  }

  get selfEncrypting(): boolean {
    return false;
  }

  get copiesBlockDevices(): boolean {
    return true;
  }

  /** The validated options (frozen). */
  get options(): RsyncOptions {
    return this.#options;
  }

  server(ctx: TransferServerContext): PodParts {
    if (ctx.tls) throw new Error('the rsync transfer does not encrypt itself: use it with the stunnel transport, not the null transport');
    if (ctx.volumes.length === 0) throw new Error('the rsync server needs at least one volume to serve');
    checkPassword(ctx.password);
    const port = ctx.port;
    const conf = renderRsyncdConf({
      modules: ctx.volumes.map((v) => ({ name: v.pvcName, path: v.mountPath, ...(v.block ? { block: true } : {}) })),
      bindAddress: ctx.bindAddress,
      port,
      authUser: RSYNC_AUTH_USER,
      secretsFile: RSYNCD_SECRETS_PATH,
      root: ctx.root,
      runDir: RSYNCD_RUN_DIR,
      timeoutSeconds: this.#options.timeoutSeconds,
      // Without chroot the daemon sanitizes symlinks that leave the volume; repair them (symlinks.ts).
      symlinkRepair: ctx.root ? undefined : { script: `${RSYNCD_CONF_DIR}/${SYMLINK_REPAIR_KEY}`, linksRoot: SYMLINK_LINKS_ROOT },
    });
    const configMap: V1ConfigMap = configMapObject(ctx.objectName('rsyncd'), ctx.namespace, ctx.labels, {
      [RSYNCD_CONF_KEY]: conf,
      ...(ctx.root ? {} : { [SYMLINK_REPAIR_KEY]: symlinkRepairScript() }),
    });
    const secret: V1Secret = secretObject(ctx.objectName('rsyncd-secrets'), ctx.namespace, ctx.labels, { [RSYNCD_SECRETS_KEY]: renderRsyncdSecrets(RSYNC_AUTH_USER, ctx.password) }, { immutable: false });
    const volumes: V1Volume[] = [
      { name: RSYNC_VOLUME_NAMES.conf, configMap: { name: configMap.metadata!.name!, defaultMode: 0o444 } },
      { name: RSYNC_VOLUME_NAMES.secrets, secret: { secretName: secret.metadata!.name!, defaultMode: SECRET_FILE_MODE } },
    ];
    const volumeMounts: V1VolumeMount[] = [
      { name: RSYNC_VOLUME_NAMES.conf, mountPath: RSYNCD_CONF_DIR, readOnly: true },
      { name: RSYNC_VOLUME_NAMES.secrets, mountPath: RSYNCD_SECRETS_DIR, readOnly: true },
    ];
    const process: ProcessSpec = {
      name: RSYNC_PROCESS_NAME,
      command: ['rsync', '--daemon', '--no-detach', `--port=${port}`, `--config=${RSYNCD_CONF_PATH}`],
      volumeMounts,
      readyPort: port,
      prepare:
        `mkdir -p ${RSYNCD_RUN_DIR} && install -m 0400 ${RSYNCD_MOUNTED_SECRETS_PATH} ${RSYNCD_SECRETS_PATH}` +
        (ctx.root || ctx.volumes.every((v) => v.block) ? '' : ` && mkdir -p ${ctx.volumes.flatMap((v, i) => (v.block ? [] : [`${SYMLINK_LINKS_ROOT}/${i}`])).join(' ')}`) +
        ctx.volumes.filter((v) => v.block).map((v) => `\n${blockDeviceCheck(`${v.mountPath}/${BLOCK_DEVICE_FILE}`, 'w', v.pvcName)}`).join(''),
    };
    return { processes: [process], volumes, objects: [configMap, secret] };
  }

  client(ctx: TransferClientContext): PodParts {
    if (ctx.tls) throw new Error('the rsync transfer does not encrypt itself: use it with the stunnel transport, not the null transport');
    checkPassword(ctx.password);
    const problem = moduleNameProblem(ctx.module);
    if (problem) throw new Error(`module ${JSON.stringify(ctx.module)} ${problem}`);
    if (!/^[A-Za-z0-9._-]+$/.test(ctx.module)) {
      throw new Error(`module ${JSON.stringify(ctx.module)} must consist of letters, digits and . _ - to be used in an rsync URL`);
    }
    if (!ctx.sourcePath.startsWith('/') || /[\r\n\0]/.test(ctx.sourcePath) || ctx.sourcePath.split('/').includes('..')) {
      throw new Error(`sourcePath must be an absolute path without '..', got ${JSON.stringify(ctx.sourcePath)}`);
    }
    const { host, port } = ctx.connect;
    if (!host || /[\s/@?#]/.test(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new Error(`invalid rsync connect address ${JSON.stringify(ctx.connect)}`);
    }
    // A block volume: the device node itself, into the module's device node (rsyncBlockArgs).
    const source = ctx.block ? ctx.sourcePath : `${ctx.sourcePath.replace(/\/+$/, '')}/`;
    const destination = `rsync://${RSYNC_AUTH_USER}@${urlHost(host)}:${port}/${ctx.module}/${ctx.block ? BLOCK_DEVICE_FILE : ''}`;

    const secret: V1Secret = secretObject(ctx.objectName('rsync-password'), ctx.namespace, ctx.labels, { [RSYNC_PASSWORD_KEY]: ctx.password }, { immutable: false });
    const volumes: V1Volume[] = [
      { name: RSYNC_VOLUME_NAMES.password, secret: { secretName: secret.metadata!.name!, defaultMode: SECRET_FILE_MODE } },
    ];
    const process: ProcessSpec = {
      name: RSYNC_PROCESS_NAME,
      command: [
        'rsync',
        ...(ctx.block ? rsyncBlockArgs(this.#options) : rsyncClientArgs(this.#options, { final: ctx.final, root: ctx.root })),
        `--password-file=${RSYNC_PASSWORD_FILE}`,
        source,
        destination,
      ],
      volumeMounts: [{ name: RSYNC_VOLUME_NAMES.password, mountPath: RSYNC_PASSWORD_DIR, readOnly: true }],
      prepare: `install -m 0400 ${RSYNC_MOUNTED_PASSWORD_FILE} ${RSYNC_PASSWORD_FILE}${ctx.block ? `\n${blockDeviceCheck(ctx.sourcePath, 'r', ctx.module)}` : ''}`,
    };
    if (!ctx.root && !ctx.block) {
      process.finish = symlinkListUpload({
        sourcePath: source.replace(/\/$/, ''),
        workDir: FERRY_RUN_DIR,
        passwordFile: RSYNC_PASSWORD_FILE,
        daemonURL: `rsync://${RSYNC_AUTH_USER}@${urlHost(host)}:${port}/`,
        module: ctx.module,
      });
      process.finishAfter = RSYNC_FINISH_AFTER;
    }
    return { processes: [process], volumes, objects: [secret] };
  }
}

/** Exit code of a transfer container whose block device it cannot open (rsync(1) EXIT VALUES 3,
 * "Errors selecting input/output files, dirs": not retried, the explanation is in the output). */
export const BLOCK_DEVICE_EXIT = 3;

/**
 * The shell check, run before rsync, that the container can open a block volume's device node for
 * reading ('r', client) or writing ('w', server), with what to do when it cannot. A non-root container
 * gets a device node owned by root and mode 0600 unless the node's container runtime gives it the pod's
 * runAsUser/runAsGroup (containerd and CRI-O `device_ownership_from_security_context`, off by default;
 * Kubernetes blog 2021-11-09 "Non-root containers and devices").
 */
export function blockDeviceCheck(path: string, access: 'r' | 'w', pvc: string): string {
  const what = access === 'r' ? 'read' : 'write';
  return `if [ ! -b ${path} ] || [ ! -${access} ${path} ]; then echo "ferry: cannot ${what} the block device of PVC ${pvc} ($(ls -ln ${path} 2>&1)) as uid $(id -u): a non-root pod gets raw block devices owned by root unless the node's container runtime sets device_ownership_from_security_context (containerd, CRI-O); enable it, or migrate with security.mode preserve-ownership" >&2; exit ${BLOCK_DEVICE_EXIT}; fi`;
}

/**
 * Builds the rsync Transfer. Options are validated once, here; the result is immutable (frozen,
 * getters only). Ownership options (chown/usermap/groupmap) are checked again per client, because
 * only the client context says whether the pod runs as root.
 *
 * @throws RsyncOptionsError listing every invalid option (port problems included, as field `port`).
 */
export function createRsyncTransfer(options: RsyncTransferOptions = {}): Transfer {
  const { port = RSYNC_DEFAULT_PORT, ...rsyncInput } = options;
  let validated: RsyncOptions | undefined;
  const problems: { path: string; message: string }[] = [];
  try {
    validated = validateRsyncOptions(rsyncInput);
  } catch (e) {
    if (e instanceof RsyncOptionsError) problems.push(...e.problems);
    else throw e;
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    problems.push({ path: 'port', message: `must be a TCP port 1..65535, got ${JSON.stringify(port)}` });
  }
  if (problems.length > 0 || !validated) throw new RsyncOptionsError(problems);
  return new RsyncTransfer(validated, port);
}

/** rsync(1) EXIT VALUES 23 ("partial transfer due to error"): an unprivileged receiver cannot set the
 * volume root's attributes and reports 23 for that alone, which Ferry counts as success
 * (exit-codes.ts), so the client's finish step (the symlink list upload) runs after it too. */
export const RSYNC_FINISH_AFTER: readonly number[] = Object.freeze([23]);

/** rsync's engine knowledge (statetransfer/registry.ts): progress2 parsing, exit-code verdict, and the
 * daemon's greeting "@RSYNCD: <protocol>" (rsync's "CONNECTING TO AN RSYNC DAEMON" protocol). */
export const RSYNC_ENGINE: TransferEngine = Object.freeze({
  type: 'rsync' as const,
  progress: rsyncProgressFromTail,
  outcome: rsyncOutcome,
  greeting: '@RSYNCD:*',
});
