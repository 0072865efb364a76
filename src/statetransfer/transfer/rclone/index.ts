/**
 * The rclone transfer: the destination runs `rclone serve sftp` over the directory holding every
 * destination PVC; each source client runs `rclone copy` (stage) or `rclone sync` (final) into its
 * PVC's sub-path over SFTP.
 *
 * Why SFTP and not WebDAV: measured with Debian's rclone 1.60 (the transfer image), `rclone serve
 * webdav` keeps no modification times (it ignores X-OC-Mtime) and exposes no hashes the webdav
 * backend reads, so a later sync compared sizes only and kept old content of files rewritten in place
 * (databases). `rclone serve sftp` stores modification times (to the second: SFTP v3 attributes) and
 * answers `md5sum`/`sha1sum`, computed on the destination's own disk.
 *
 * How changes are detected:
 * - stage passes (`copy`): size and modification time, or checksums with `checksum: true`;
 * - the final sync (`sync`, after quiesce): always `--checksum` (MD5 on both sides, each read
 *   locally). Modification times are kept to the second only, so a file rewritten in the same second
 *   with the same size would look unchanged by time; the final sync is what must not miss it. A final
 *   sync that falls back to sizes because no hash is common is refused by `classifyRcloneExit`.
 *
 * Security: SSH encrypts the stream, so rclone is usable with the null transport (LoadBalancer,
 * NodePort, ClusterIP endpoints; not Route/Ingress, which route TLS by SNI). The server's host key is
 * an Ed25519 key derived from the migration's random 256-bit password (HMAC-SHA-256), so the client
 * pins it (`known_hosts`) without another Secret exchange; the client logs in with that password.
 * Neither the password nor the key appears in a pod spec or on a command line: they reach rclone
 * from mounted Secrets (the password through the environment, obscured as rclone requires). Behind
 * the stunnel transport the server listens on 127.0.0.1 only.
 *
 * What the rclone engine keeps: file contents, file modification times (to the second), symlinks
 * (`--links`, carried as `.rclonelink` files and restored by the server), empty directories
 * (`--create-empty-src-dirs`). What it cannot keep (measured in test/integration/dataplane.test.ts):
 * owners and groups (files belong to the server's user), permission bits (0644 files, 0755 dirs),
 * hard links (each name becomes its own copy), sparseness (holes are written as zeros), POSIX ACLs
 * and extended attributes, directory modification times, special files (FIFOs, sockets, devices are
 * skipped). Use transfer: rsync for those; the plan refuses rclone with preserve-ownership.
 */
import { createHash, createHmac, createPrivateKey, createPublicKey } from 'node:crypto';
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { deepFreeze, secret } from '../../objects';
import type { PodParts, Transfer, TransferClientContext, TransferEngine, TransferServerContext } from '../../types';
import { progressFromRclone, rcloneOutcome } from './outcome';

/** Options of the rclone transfer. */
export interface RcloneTransferOptions {
  /** Port of the SFTP server behind the transport (default 2222). */
  port?: number;
  /** Stage passes compare checksums instead of size and time (the final sync always does). */
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
  /** Server and client: the Secret with `password` (and `host-key` / `known_hosts`). */
  secretDir: '/etc/ferry/rclone',
  password: '/etc/ferry/rclone/password',
  /** Server: the SSH host key (PKCS#8 PEM, Ed25519). */
  hostKey: '/etc/ferry/rclone/host-key',
  /** Client: the pinned host key's public half (`ssh-ed25519 AAAA...`). */
  hostPublicKey: '/etc/ferry/rclone/host-key.pub',
  /** Client: the known_hosts file written at start from `hostPublicKey` and the port in use. */
  knownHosts: '/tmp/rclone-known_hosts',
} as const;

/** The SFTP user. */
export const RCLONE_USER = 'ferry';

/** PKCS#8 DER prefix of an Ed25519 private key (RFC 8410 §7), followed by the 32-byte seed. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The SSH host key of a migration's rclone server. */
export interface RcloneHostKey {
  /** Private key, PKCS#8 PEM (what `rclone serve sftp --key` reads). */
  privateKeyPem: string;
  /** Public key in OpenSSH form: `ssh-ed25519 AAAA...`. */
  publicKey: string;
  /** SHA-256 fingerprint as OpenSSH prints it (`SHA256:...`), for logs and operators. */
  fingerprint: string;
}

/**
 * The server's SSH host key, derived from the migration's shared password: Ed25519 seed =
 * HMAC-SHA-256(password, "ferry rclone sftp host key v1"). Deterministic, so the server and the
 * client compute the same key from what each already holds; only a holder of the password can
 * present it, and the password holders are exactly the two ends of the transfer.
 */
export function rcloneHostKey(password: string): RcloneHostKey {
  const seed = createHmac('sha256', password).update('ferry rclone sftp host key v1').digest();
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const raw = createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32);
  const sshString = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(raw)]);
  return {
    privateKeyPem: key.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKey: `ssh-ed25519 ${blob.toString('base64')}`,
    fingerprint: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`,
  };
}

/**
 * The shell line that writes the client's known_hosts: the pinned key for any host on the port in
 * use (`[*]:PORT`; rclone's known_hosts matching needs the port spelled out). The key, unique to the
 * migration, is what is pinned; the host is a wildcard because the client reaches the server as
 * 127.0.0.1 behind stunnel or under the endpoint's name or address with the null transport. Written
 * at start so that the (immutable) client Secret does not depend on the endpoint's port.
 */
function writeKnownHosts(): string {
  return `printf '[*]:%s %s\\n' "$RCLONE_SFTP_PORT" "$(cat ${RCLONE_PATHS.hostPublicKey})" > ${RCLONE_PATHS.knownHosts}`;
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
  const secretVolume = (secretName: string): V1Volume => ({ name: 'ferry-rclone', secret: { secretName, defaultMode: 0o444 } });
  const secretMount: V1VolumeMount = { name: 'ferry-rclone', mountPath: RCLONE_PATHS.secretDir, readOnly: true };
  const transfer: Transfer = {
    type: 'rclone',
    port,
    selfEncrypting: true,
    // rclone copies files; a device node is not one (no device-to-device mode in rclone's sftp backend).
    copiesBlockDevices: false,

    server(ctx: TransferServerContext): PodParts {
      if (!ctx.volumes.length) throw new Error('rclone server needs at least one volume');
      if (ctx.volumes.some((v) => v.block)) throw new Error('the rclone transfer does not copy block volumes (volumeMode Block): use transfer rsync');
      const root = ctx.volumes[0]!.mountPath.replace(/\/[^/]+$/, '');
      for (const v of ctx.volumes) {
        if (v.mountPath !== `${root}/${v.pvcName}`) throw new Error(`rclone serves one root: volume ${v.pvcName} must be mounted at ${root}/${v.pvcName}`);
      }
      const name = ctx.objectName('rclone');
      const argv = [
        'rclone', 'serve', 'sftp', root,
        `--addr=${ctx.bindAddress}:${ctx.port}`,
        `--user=${RCLONE_USER}`,
        `--key=${RCLONE_PATHS.hostKey}`,
        // Password login only: no authorized_keys of whatever home directory the image has.
        '--authorized-keys=/dev/null',
        '--links',
        '--config=/dev/null',
        '--cache-dir=/tmp/rclone',
        '-v',
      ];
      return {
        // No readiness probe: a bare TCP connect makes the SSH server log a failed login every period.
        processes: [{ name: 'rclone', command: argv, volumeMounts: [secretMount], prepare: `export RCLONE_PASS="$(cat ${RCLONE_PATHS.password})"` }],
        volumes: [secretVolume(name)],
        objects: [secret(name, ctx.namespace, ctx.labels, { password: ctx.password, 'host-key': rcloneHostKey(ctx.password).privateKeyPem })],
      };
    },

    client(ctx: TransferClientContext): PodParts {
      if (ctx.block) throw new Error('the rclone transfer does not copy block volumes (volumeMode Block): use transfer rsync');
      const name = ctx.objectName('rclone');
      const env: V1EnvVar[] = [
        { name: 'RCLONE_CONFIG', value: '/dev/null' },
        { name: 'RCLONE_CACHE_DIR', value: '/tmp/rclone' },
        { name: 'RCLONE_SFTP_HOST', value: ctx.connect.host },
        { name: 'RCLONE_SFTP_PORT', value: String(ctx.connect.port) },
        { name: 'RCLONE_SFTP_USER', value: RCLONE_USER },
        { name: 'RCLONE_SFTP_KNOWN_HOSTS_FILE', value: RCLONE_PATHS.knownHosts },
      ];
      const argv = [
        'rclone', ctx.final ? 'sync' : 'copy', `${ctx.sourcePath}/`, `:sftp:${ctx.module}`,
        '--links',
        '--create-empty-src-dirs',
        '--stats=5s',
        '-v',
        `--transfers=${options.transfers ?? 4}`,
      ];
      if (ctx.final || options.checksum) argv.push('--checksum');
      if (options.bwLimitKiBps) argv.push(`--bwlimit=${options.bwLimitKiBps}k`);
      for (const e of excludes) argv.push(`--exclude=${e}`);
      return {
        processes: [
          {
            name: 'rclone',
            command: argv,
            env,
            volumeMounts: [secretMount],
            // The password reaches rclone through its own environment, obscured as rclone requires;
            // it is never in the pod spec or on a command line.
            prepare: `export RCLONE_SFTP_PASS="$(rclone obscure - < ${RCLONE_PATHS.password})"\n${writeKnownHosts()}`,
          },
        ],
        volumes: [secretVolume(name)],
        objects: [secret(name, ctx.namespace, ctx.labels, { password: ctx.password, 'host-key.pub': `${rcloneHostKey(ctx.password).publicKey}\n` })],
      };
    },
  };
  return deepFreeze(transfer);
}

/** rclone's engine knowledge (statetransfer/registry.ts): stats parsing, exit-code verdict, and the
 * SSH server's identification string "SSH-2.0-rclone..." (RFC 4253 §4.2: the server may speak first). */
export const RCLONE_ENGINE: TransferEngine = Object.freeze({
  type: 'rclone' as const,
  progress: progressFromRclone,
  outcome: (exitCode: number, lines: readonly string[]) => rcloneOutcome(exitCode, lines),
  greeting: 'SSH-2.0-*',
});
