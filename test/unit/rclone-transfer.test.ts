/**
 * The rclone transfer's pod parts (src/statetransfer/transfer/rclone): SFTP server and client, the
 * comparison each sync uses, the pinned host key, and secrets kept out of pod specs. The real
 * processes run in test/integration/dataplane.test.ts.
 */
import { createPublicKey } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { secretValues } from '../../src/statetransfer/objects';
import { createRcloneTransfer, rcloneHostKey, RCLONE_PATHS } from '../../src/statetransfer/transfer/rclone';
import type { TransferClientContext, TransferServerContext } from '../../src/statetransfer/types';

const password = 'a'.repeat(43);
const serverCtx: TransferServerContext = {
  objectName: (s) => `ferry-x-srv-${s}`,
  labels: { a: 'b' },
  namespace: 'dst',
  volumes: [{ pvcName: 'data', mountPath: '/mnt/ferry/data' }],
  bindAddress: '127.0.0.1',
  port: 2222,
  password,
  root: false,
};
const clientCtx = (final: boolean): TransferClientContext => ({
  objectName: (s) => `ferry-x-cli-${s}`,
  labels: { a: 'b' },
  namespace: 'src',
  module: 'data',
  sourcePath: '/mnt/source',
  connect: { host: '127.0.0.1', port: 2222 },
  password,
  root: false,
  final,
});

describe('rclone transfer (SFTP)', () => {
  const t = createRcloneTransfer({ bwLimitKiBps: 512 });

  it('stage passes compare size and modification time; the final sync always compares checksums and deletes', () => {
    const stage = t.client(clientCtx(false)).processes[0]!.command;
    const final = t.client(clientCtx(true)).processes[0]!.command;
    expect(stage.slice(0, 4)).toEqual(['rclone', 'copy', '/mnt/source/', ':sftp:data']);
    expect(final.slice(0, 4)).toEqual(['rclone', 'sync', '/mnt/source/', ':sftp:data']);
    expect(stage).not.toContain('--checksum');
    expect(final).toContain('--checksum');
    for (const argv of [stage, final]) {
      expect(argv).toEqual(expect.arrayContaining(['--links', '--create-empty-src-dirs', '--bwlimit=512k', '--exclude=/lost+found/**']));
      // The stats block (not --stats-one-line) carries the file counts the summary reports.
      expect(argv).not.toContain('--stats-one-line');
    }
    expect(createRcloneTransfer({ checksum: true }).client(clientCtx(false)).processes[0]!.command).toContain('--checksum');
  });

  it('the server keeps modification times and restores symlinks; password login only', () => {
    const argv = t.server(serverCtx).processes[0]!.command;
    expect(argv.slice(0, 4)).toEqual(['rclone', 'serve', 'sftp', '/mnt/ferry']);
    expect(argv).toEqual(expect.arrayContaining(['--addr=127.0.0.1:2222', '--links', '--authorized-keys=/dev/null', `--key=${RCLONE_PATHS.hostKey}`]));
  });

  it('the client pins the host key the server presents (derived from the shared password); neither secret is in a pod spec', () => {
    const server = t.server(serverCtx);
    const client = t.client(clientCtx(true));
    const serverSecret = secretValues(server.objects[0] as V1Secret);
    const clientSecret = secretValues(client.objects[0] as V1Secret);
    // The public half of the server's private key is exactly the key the client trusts.
    const pub = createPublicKey(serverSecret['host-key']!).export({ format: 'der', type: 'spki' }).subarray(-32);
    const pinned = Buffer.from(clientSecret['host-key.pub']!.trim().split(' ')[1]!, 'base64');
    expect(pinned.subarray(-32).equals(pub)).toBe(true);
    expect(clientSecret['host-key.pub']!.trim()).toBe(rcloneHostKey(password).publicKey);
    expect(rcloneHostKey('another password').publicKey).not.toBe(rcloneHostKey(password).publicKey);
    expect(clientSecret.password).toBe(password);
    expect(clientSecret['host-key']).toBeUndefined();
    for (const parts of [server, client]) {
      const p = parts.processes[0]!;
      expect(JSON.stringify({ command: p.command, env: p.env })).not.toContain(password);
      expect(JSON.stringify({ command: p.command, env: p.env })).not.toContain('PRIVATE KEY');
    }
    expect(client.processes[0]!.prepare).toContain(`[*]:%s`);
  });
});
