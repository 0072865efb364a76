/**
 * The rclone transfer: the destination runs `rclone serve webdav` over the directory holding every
 * destination PVC; each source client runs `rclone copy` (stage) or `rclone sync` (final) into its
 * PVC's sub-path.
 *
 * rclone encrypts itself when asked: with the null transport the WebDAV server serves HTTPS with the
 * migration's server certificate and requires client certificates signed by the migration's CA
 * (`--cert`, `--key`, `--client-ca`; the client presents `--client-cert`/`--client-key` and trusts
 * `--ca-cert`). It authenticates with HTTP basic auth against an htpasswd line (SHA-1 of a random
 * 256-bit password, so brute force is moot) either way.
 *
 * Limits, stated for operators: WebDAV carries file contents and modification times only; owners,
 * groups, modes, hard links, sparseness and special files are not preserved (use rsync for those).
 * Symlinks are carried as `.rclonelink` files (`--links`) and restored by the same engine.
 */
import { createHash } from 'node:crypto';
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { deepFreeze, secret } from '../../objects';
import type { PodParts, Transfer, TransferClientContext, TransferServerContext } from '../../types';

/** Options of the rclone transfer. */
export interface RcloneTransferOptions {
  /** Port of the WebDAV server behind the transport (default 2222). */
  port?: number;
  /** Compare checksums instead of size and time (slower, verifies content). */
  checksum?: boolean;
  /** Bandwidth limit in KiB/s (> 0). */
  bwLimitKiBps?: number;
  /** rclone filter patterns to exclude (default ['/lost+found/**']). */
  excludes?: string[];
  /** Parallel file transfers (--transfers, default 4). */
  transfers?: number;
}

/** Mount paths of the rclone transfer's secrets. */
export const RCLONE_PATHS = {
  passwordDir: '/etc/ferry/rclone-password',
  password: '/etc/ferry/rclone-password/password',
  htpasswdDir: '/etc/ferry/rclone-htpasswd',
  htpasswd: '/etc/ferry/rclone-htpasswd/htpasswd',
  tlsDir: '/etc/ferry/rclone-tls',
} as const;

/** The WebDAV user. */
export const RCLONE_USER = 'ferry';

/** An htpasswd line with a `{SHA}` hash (Apache htpasswd format, understood by rclone's HTTP auth). */
export function htpasswdLine(user: string, password: string): string {
  return `${user}:{SHA}${createHash('sha1').update(password, 'utf8').digest('base64')}\n`;
}

function validate(o: RcloneTransferOptions): void {
  const problems: string[] = [];
  if (o.port !== undefined && (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535)) problems.push(`port must be 1..65535, got ${o.port}`);
  if (o.bwLimitKiBps !== undefined && (!Number.isInteger(o.bwLimitKiBps) || o.bwLimitKiBps <= 0)) problems.push(`bwLimitKiBps must be a positive integer, got ${o.bwLimitKiBps}`);
  if (o.transfers !== undefined && (!Number.isInteger(o.transfers) || o.transfers < 1 || o.transfers > 64)) problems.push(`transfers must be 1..64, got ${o.transfers}`);
  for (const e of o.excludes ?? []) if (/[\n\0]/.test(e)) problems.push(`exclude pattern ${JSON.stringify(e)} contains a newline or NUL`);
  if (problems.length) throw new Error(`invalid rclone options: ${problems.join('; ')}`);
}

/**
 * Builds the rclone transfer. Immutable.
 * @throws Error listing every invalid option.
 */
export function createRcloneTransfer(options: RcloneTransferOptions = {}): Transfer {
  validate(options);
  const port = options.port ?? 2222;
  const excludes = options.excludes ?? ['/lost+found/**'];
  const transfer: Transfer = {
    type: 'rclone',
    port,
    selfEncrypting: true,

    server(ctx: TransferServerContext): PodParts {
      if (!ctx.volumes.length) throw new Error('rclone server needs at least one volume');
      const root = ctx.volumes[0]!.mountPath.replace(/\/[^/]+$/, '');
      for (const v of ctx.volumes) {
        if (v.mountPath !== `${root}/${v.pvcName}`) throw new Error(`rclone serves one root: volume ${v.pvcName} must be mounted at ${root}/${v.pvcName}`);
      }
      const htName = ctx.objectName('rclone-htpasswd');
      const volumes: V1Volume[] = [{ name: 'ferry-rclone-htpasswd', secret: { secretName: htName, defaultMode: 0o444 } }];
      const mounts: V1VolumeMount[] = [{ name: 'ferry-rclone-htpasswd', mountPath: RCLONE_PATHS.htpasswdDir, readOnly: true }];
      const argv = ['rclone', 'serve', 'webdav', root, `--addr=${ctx.bindAddress}:${ctx.port}`, `--htpasswd=${RCLONE_PATHS.htpasswd}`, '--links', '--config=/dev/null', '--cache-dir=/tmp/rclone', '-v'];
      if (ctx.tls) {
        volumes.push({ name: 'ferry-rclone-tls', secret: { secretName: ctx.tls.secretName, defaultMode: 0o444 } });
        mounts.push({ name: 'ferry-rclone-tls', mountPath: RCLONE_PATHS.tlsDir, readOnly: true });
        argv.push(`--cert=${RCLONE_PATHS.tlsDir}/tls.crt`, `--key=${RCLONE_PATHS.tlsDir}/tls.key`, `--client-ca=${RCLONE_PATHS.tlsDir}/ca.crt`);
      }
      return {
        processes: [{ name: 'rclone', command: argv, volumeMounts: mounts, readyPort: ctx.tls ? undefined : ctx.port }],
        volumes,
        objects: [secret(htName, ctx.namespace, ctx.labels, { htpasswd: htpasswdLine(RCLONE_USER, ctx.password) })],
      };
    },

    client(ctx: TransferClientContext): PodParts {
      const pwName = ctx.objectName('rclone-password');
      const scheme = ctx.tls ? 'https' : 'http';
      const host = ctx.connect.host.includes(':') ? `[${ctx.connect.host}]` : ctx.connect.host;
      const env: V1EnvVar[] = [
        { name: 'RCLONE_CONFIG', value: '/dev/null' },
        { name: 'RCLONE_CACHE_DIR', value: '/tmp/rclone' },
        { name: 'RCLONE_WEBDAV_URL', value: `${scheme}://${host}:${ctx.connect.port}/${encodeURIComponent(ctx.module)}` },
        { name: 'RCLONE_WEBDAV_USER', value: RCLONE_USER },
        { name: 'RCLONE_WEBDAV_VENDOR', value: 'rclone' },
      ];
      const volumes: V1Volume[] = [{ name: 'ferry-rclone-password', secret: { secretName: pwName, defaultMode: 0o444 } }];
      const mounts: V1VolumeMount[] = [{ name: 'ferry-rclone-password', mountPath: RCLONE_PATHS.passwordDir, readOnly: true }];
      const argv = ['rclone', ctx.final ? 'sync' : 'copy', `${ctx.sourcePath}/`, ':webdav:', '--links', '--stats=5s', '--stats-one-line', '-v', `--transfers=${options.transfers ?? 4}`];
      if (options.checksum) argv.push('--checksum');
      if (options.bwLimitKiBps) argv.push(`--bwlimit=${options.bwLimitKiBps}k`);
      for (const e of excludes) argv.push(`--exclude=${e}`);
      if (ctx.tls) {
        volumes.push({ name: 'ferry-rclone-tls', secret: { secretName: ctx.tls.secretName, defaultMode: 0o444 } });
        mounts.push({ name: 'ferry-rclone-tls', mountPath: RCLONE_PATHS.tlsDir, readOnly: true });
        argv.push(`--ca-cert=${RCLONE_PATHS.tlsDir}/ca.crt`, `--client-cert=${RCLONE_PATHS.tlsDir}/tls.crt`, `--client-key=${RCLONE_PATHS.tlsDir}/tls.key`);
      }
      return {
        processes: [
          {
            name: 'rclone',
            command: argv,
            env,
            volumeMounts: mounts,
            // The password reaches rclone through its own environment, obscured as rclone requires;
            // it is never in the pod spec or on a command line.
            prepare: `export RCLONE_WEBDAV_PASS="$(rclone obscure - < ${RCLONE_PATHS.password})"`,
          },
        ],
        volumes,
        objects: [secret(pwName, ctx.namespace, ctx.labels, { password: ctx.password })],
      };
    },
  };
  return deepFreeze(transfer);
}

