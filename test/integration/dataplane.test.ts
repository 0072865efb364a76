/**
 * Data plane, for real: the rsync daemon, stunnel server, stunnel client and rsync client run as
 * real processes with exactly the config files, command lines, certificates and secrets the library
 * generates for the pods (LocalPod executes the generated V1Pod specs; see test/support/local-pod.ts).
 * Source and destination pods live in two network namespaces joined by a veth pair.
 * Needs root, rsync and stunnel4 (installed by .ci/run).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync, writeSync, existsSync, readdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { createEndpoint } from '../../src/statetransfer/endpoint';
import { createNamespaceTransfer, createTransferCredentials, type NamespaceTransfer, type TransferCredentials } from '../../src/statetransfer/namespace-transfer';
import { parseTerminationMessage } from '../../src/statetransfer/pods/lifecycle';
import type { ClientLifecycle } from '../../src/statetransfer/pods/pods';
import { createRsyncTransfer } from '../../src/statetransfer/transfer/rsync';
import type { RsyncOptionsInput } from '../../src/statetransfer/transfer/rsync/options';
import { PROGRESS_TAIL_LINES } from '../../src/migration/follow';
import { progressFromRsync } from '../../src/statetransfer/transfer/rsync/outcome';
import { RsyncOutputParser, parseRsyncOutput } from '../../src/statetransfer/transfer/rsync/parser';
import { classifyRsyncExit } from '../../src/statetransfer/transfer/rsync/exit-codes';
import { createStunnelTransport } from '../../src/statetransfer/transport/stunnel';
import { createNullTransport } from '../../src/statetransfer/transport/null';
import { createRcloneTransfer } from '../../src/statetransfer/transfer/rclone';
import type { SecurityMode, Transfer } from '../../src/statetransfer/types';
import type { EndpointAddress } from '../../src/core/types';
import { transferFor } from '../../src/migration/compose';
import { parsePlan } from '../../src/plan/load';
import { LocalPod, removeWorkDir, type ContainerResult } from '../support/local-pod';
import { createNetnsPair, type NetnsPair } from '../support/netns';
import { buildTree, chownTree, diffManifests, manifest } from '../support/tree';

const MiB = 1024 * 1024;
const BACKEND_PORT = 8443;

interface Setup {
  nt: NamespaceTransfer;
  credentials: TransferCredentials;
  address: EndpointAddress;
  server: LocalPod;
}

/** Waits until something accepts TCP on host:port as seen from network namespace `ns`. */
async function waitForTCP(ns: string, host: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (spawnSync('ip', ['netns', 'exec', ns, 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`]).status === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`nothing accepts ${host}:${port} from ${ns}`);
}

describe('data plane: rsync over stunnel mutual TLS between two network namespaces', () => {
  let net: NetnsPair;
  let work: string;
  const pods: LocalPod[] = [];

  beforeAll(() => {
    if (process.getuid?.() !== 0) throw new Error('the data-plane test needs root (network and mount namespaces)');
    net = createNetnsPair();
    work = mkdtempSync(join(tmpdir(), 'ferry-dataplane-'));
  });

  // Pods of one test share the namespaces' ports with the next test's: stop them all, pass or fail.
  afterEach(async () => {
    for (const p of pods.splice(0)) await p.stop();
  });

  afterAll(async () => {
    net?.destroy();
    if (work) removeWorkDir(work);
  });

  /** Starts the destination side exactly as the library describes it and waits until it is ready. */
  async function startServer(migrationId: string, mode: SecurityMode, lifecycle: ClientLifecycle, dstDir: string, rsync: RsyncOptionsInput | Transfer = {}): Promise<Setup> {
    const endpoint = createEndpoint({ type: 'ClusterIP', migrationId, namespace: 'dst-ns', backendPort: BACKEND_PORT, port: BACKEND_PORT });
    // The endpoint's Service as the API server would report it, its cluster IP being the destination
    // host's address (no kube-proxy here: the port is the backend port).
    const service = structuredClone(endpoint.objects()[0]!) as { spec: { clusterIP?: string } };
    service.spec.clusterIP = net.destinationIP;
    const health = endpoint.health({ objects: [service as never] });
    expect(health.healthy).toBe(true);
    const address = health.address!;
    expect(address).toEqual({ host: net.destinationIP, port: BACKEND_PORT });

    const nt = createNamespaceTransfer({
      migrationId,
      sourceNamespace: 'src-ns',
      destinationNamespace: 'dst-ns',
      volumes: [{ sourcePVC: 'data', destinationPVC: 'data', identity: mode === 'restricted' ? { runAsUser: 1000, runAsGroup: 1000 } : undefined }],
      transfer: 'server' in rsync ? rsync : createRsyncTransfer(rsync),
      transport: createStunnelTransport(),
      endpoint,
      security: mode,
      image: 'ferry/transfer:test',
      serverIdentity: mode === 'restricted' ? { runAsUser: 2000, runAsGroup: 2000 } : undefined,
      lifecycle,
    });
    const credentials = createTransferCredentials(migrationId, endpoint, address);
    const objects = nt.destinationObjects(credentials);
    const pod = objects.find((o) => o.kind === 'Pod') as V1Pod;
    expect(pod.metadata?.name).toBe(nt.serverPodName);
    const server = new LocalPod({ pod, objects, pvcs: { data: dstDir }, netns: net.destination, workDir: join(work, `${migrationId}-server`) });
    pods.push(server);
    await server.start();
    await server.ready();
    return { nt, credentials, address, server };
  }

  async function startClient(s: Setup, name: string, srcDir: string, credentials: TransferCredentials, final: boolean): Promise<LocalPod> {
    const objects = s.nt.sourceObjects('data', s.address, credentials, { final });
    const pod = objects.find((o) => o.kind === 'Pod') as V1Pod;
    const client = new LocalPod({ pod, objects, pvcs: { data: srcDir }, netns: net.source, workDir: join(work, name) });
    pods.push(client);
    await client.start();
    return client;
  }

  async function runClient(s: Setup, name: string, srcDir: string, credentials: TransferCredentials, final: boolean): Promise<Record<string, ContainerResult>> {
    return (await startClient(s, name, srcDir, credentials, final)).completion(300_000);
  }

  /** The client succeeded as Ferry judges it: exit 0, or rsync's exit 23 when its only failure is
   * setting the volume root's attributes (an unprivileged receiver; see exit-codes.ts). */
  function expectSuccess(r: Record<string, ContainerResult>): RsyncOutputParser {
    const rsync = r.rsync!;
    // Classified as the activity does: from the termination message (the main rsync's last lines).
    const parsed = parseRsyncOutput(parseTerminationMessage(rsync.terminationMessage).lines.join('\n'));
    const verdict = classifyRsyncExit(rsync.exitCode ?? -1, parsed);
    if (verdict.outcome !== 'success') throw new Error(`rsync exited ${rsync.exitCode} (${verdict.outcome}):\ntermination message:\n${rsync.terminationMessage}\nlog:\n${rsync.logs.slice(-4000)}\nstunnel:\n${r.stunnel?.logs.slice(-2000)}`);
    const report = parseTerminationMessage(rsync.terminationMessage);
    expect(report.exitCode).toBe(rsync.exitCode);
    const parser = new RsyncOutputParser();
    parser.feed(`${report.lines.join('\n')}\n`);
    return parser;
  }

  it('copies a demanding tree identically in preserve-ownership mode (done-file lifecycle), then re-syncs with nothing to do', async () => {
    const src = join(work, 'po-src');
    const dst = join(work, 'po-dst');
    buildTree(src, { smallFiles: 10_000, largeFileBytes: 200 * MiB, sparseFileBytes: 256 * MiB, mixedOwners: true });
    mkdirSync(join(src, 'lost+found'));
    writeFileSync(join(src, 'lost+found', '#12345'), 'fsck debris\n');
    mkdirSync(dst);
    const s = await startServer('mig-preserve', 'preserve-ownership', 'done-file', dst);

    const first = expectSuccess(await runClient(s, 'po-client-1', src, s.credentials, true));
    const stats = first.result().stats!;
    expect(stats.regularFilesTransferred).toBeGreaterThanOrEqual(10_000);

    const diffs = diffManifests(manifest(src, { owners: true, ignore: ['lost+found'] }), manifest(dst, { owners: true }));
    expect(diffs).toEqual([]);
    expect(existsSync(join(dst, 'lost+found'))).toBe(false);
    const m = manifest(dst);
    expect(m.get('sparse.img')!.sparse).toBe(true);
    expect(m.get('links/second')!.linkGroup).toBe(m.get('links/original')!.linkGroup);
    expect(m.get('modes/private')!.uid).toBe(999);

    // The same sync again moves no file data.
    const again = expectSuccess(await runClient(s, 'po-client-2', src, s.credentials, true));
    expect(again.result().stats!.regularFilesTransferred).toBe(0);
    await s.server.stop();
  });

  it('keeps POSIX ACLs and extended attributes in preserve-ownership mode by default, not the SELinux label (issue 8 item 5)', async () => {
    const src = join(work, 'acl-src');
    const dst = join(work, 'acl-dst');
    mkdirSync(join(src, 'shared', 'sub'), { recursive: true });
    writeFileSync(join(src, 'shared', 'report.txt'), 'acl\n');
    writeFileSync(join(src, 'tagged.bin'), 'xattr\n');
    writeFileSync(join(src, 'plain.txt'), 'plain\n');
    const sh = (cmd: string) => execFileSync('bash', ['-c', cmd], { cwd: src, encoding: 'utf8' });
    // Three paths with ACLs: an access ACL on a file, access + default ACLs on a directory.
    sh('setfacl -m u:1234:rwx,g:2345:r shared/report.txt && setfacl -m u:1234:rx shared && setfacl -d -m g:2345:rx,u:1234:rwx shared/sub');
    sh('setfattr -n user.checksum -v 0xcafe tagged.bin && setfattr -n user.origin -v "cluster a" shared && setfattr -n user.x -v 1 plain.txt && setfattr -n trusted.app -v 1 plain.txt');
    sh('setfattr -n security.selinux -v system_u:object_r:container_file_t:s0:c1,c2 tagged.bin');
    mkdirSync(dst);
    // The plan's defaults, as the activities build the Transfer (migration/compose.ts transferFor).
    const plan = parsePlan({ source: { context: 'a' }, destination: { context: 'b' }, namespaces: ['n'], security: { mode: 'preserve-ownership' } });
    const s = await startServer('mig-acl', 'preserve-ownership', 'done-file', dst, transferFor(plan));
    expectSuccess(await runClient(s, 'acl-client', src, s.credentials, false));
    const acls = (dir: string) => execFileSync('getfacl', ['-R', '-n', '-p', '.'], { cwd: dir, encoding: 'utf8' });
    const xattrs = (dir: string) => execFileSync('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '.'], { cwd: dir, encoding: 'utf8' });
    // trusted.* can only be read and written with CAP_SYS_ADMIN, which the pods never get (not in the
    // "baseline" Pod Security Standard): it stays behind, as documented in options.ts.
    const comparable = (text: string) =>
      text.split('\n\n').map((block) => block.split('\n').filter((l) => !/^(security\.selinux|trusted\.)/.test(l)).join('\n')).filter((b) => b.split('\n').length > 1).join('\n\n');
    expect(acls(src)).toMatch(/user:1234:rwx/);
    expect(acls(dst)).toEqual(acls(src));
    expect(acls(dst)).toMatch(/default:group:2345:r-x/);
    expect(comparable(xattrs(dst))).toEqual(comparable(xattrs(src)));
    expect(xattrs(dst)).toMatch(/user\.checksum=/);
    expect(xattrs(dst)).toMatch(/user\.origin=/);
    expect(xattrs(dst)).not.toMatch(/trusted\.app=/);
    // The destination's SELinux labels are its own: the source's label did not travel.
    expect(xattrs(src)).toMatch(/security\.selinux=/);
    expect(xattrs(dst)).not.toMatch(/security\.selinux=/);
    await s.server.stop();
  });

  it('copies the tree without privileges in restricted mode (native sidecar lifecycle)', async () => {
    const src = join(work, 'r-src');
    const dst = join(work, 'r-dst');
    buildTree(src, { smallFiles: 2_000, largeFileBytes: 20 * MiB, sparseFileBytes: 64 * MiB, mixedOwners: false, owner: { uid: 1000, gid: 1000 } });
    symlinkSync('../../outside/the/volume', join(src, 'links', 'escaping'));
    symlinkSync('/var/lib/app/releases/42', join(src, 'small', 'd0', 'current'));
    // A user file with the name of the old repair list, at the volume root and deeper: plain data
    // (issue 8 item 7: it used to be taken for Ferry's list and deleted at the destination).
    writeFileSync(join(src, '.ferry-symlinks'), 'user data: not a list\n');
    writeFileSync(join(src, 'small', '.ferry-symlinks'), 'more user data\n');
    chownTree(join(src, '.ferry-symlinks'), 1000, 1000);
    chownTree(join(src, 'small', '.ferry-symlinks'), 1000, 1000);
    // A fresh PVC's root belongs to root; the unprivileged receiver can write into it but cannot set
    // its mode, so rsync ends with exit 23 for the root alone, which Ferry counts as success; the
    // symlink repair must still run.
    mkdirSync(dst, { mode: 0o777 });
    chmodSync(dst, 0o777);
    chmodSync(src, 0o750);
    const s = await startServer('mig-restricted', 'restricted', 'native-sidecar', dst);
    // Every container runs non-root with no capabilities.
    const pod = s.nt.destinationObjects(s.credentials).find((o) => o.kind === 'Pod') as V1Pod;
    expect(pod.spec!.securityContext!.runAsNonRoot).toBe(true);

    const client = await runClient(s, 'r-client', src, s.credentials, true);
    expectSuccess(client);
    // The repair finished before the client ended: the destination acknowledged it to the client.
    expect(client.rsync!.logs).toMatch(/ferry: restored \d+ symlink\(s\) .*repair acknowledged by the destination/);
    const diffs = diffManifests(manifest(src, { owners: false }), manifest(dst, { owners: false }));
    // Without chroot (CAP_SYS_CHROOT is not allowed by the restricted standard) the rsync daemon
    // sanitizes symlinks that leave the volume; Ferry repairs them after the sync (symlinks.ts).
    expect(diffs).toEqual([]);
    expect(readlinkSync(join(dst, 'links', 'absolute'))).toBe('/etc/hostname');
    expect(readFileSync(join(dst, '.ferry-symlinks'), 'utf8')).toBe('user data: not a list\n');
    expect(readFileSync(join(dst, 'small', '.ferry-symlinks'), 'utf8')).toBe('more user data\n');
    // Ferry's bookkeeping never entered the user's tree.
    expect(readdirSync(dst).filter((n) => /ferry|symlinks\.list/.test(n) && n !== '.ferry-symlinks')).toEqual([]);
    // Files belong to the server's UID: ownership is not (and cannot be) preserved without privileges.
    expect(manifest(dst).get('large.bin')!.uid).toBe(2000);
    await s.server.stop();
  });

  it('a symlink repair that fails on the destination fails the sync, with the reason (issue 8 item 7)', async () => {
    const src = join(work, 'rf-src');
    const dst = join(work, 'rf-dst');
    mkdirSync(join(src, 'links'), { recursive: true });
    symlinkSync('/etc/hostname', join(src, 'links', 'absolute'));
    chownTree(src, 1000, 1000);
    // The destination already holds the link (as the daemon sanitized it) in a directory the
    // unprivileged server (uid 2000) cannot write: rsync cannot update it (exit 23) and neither can
    // the repair, which must then fail the sync instead of reporting success.
    mkdirSync(join(dst, 'links'), { recursive: true, mode: 0o755 });
    chmodSync(dst, 0o777);
    symlinkSync('etc/hostname', join(dst, 'links', 'absolute'));
    const s = await startServer('mig-repair-fail', 'restricted', 'done-file', dst);
    const r = (await runClient(s, 'rf-client', src, s.credentials, false)).rsync!;
    expect(r.exitCode).toBe(11);
    const report = parseTerminationMessage(r.terminationMessage);
    expect(report.exitCode).toBe(11);
    expect(report.lines.join('\n')).toMatch(/ferry: symlink repair failed on the destination: could not re-create 1 symlink/);
    const verdict = classifyRsyncExit(11, parseRsyncOutput(report.lines.join('\n')));
    expect(verdict.outcome).toBe('fatal');
    expect(verdict.explanation).toMatch(/re-creating the symlinks .* failed on the destination/);
    expect(readlinkSync(join(dst, 'links', 'absolute'))).toBe('etc/hostname');
    await s.server.stop();
  });

  it('rclone (SFTP, null transport): files rewritten in place between passes arrive, times and empty dirs kept; what it cannot keep', async () => {
    const src = join(work, 'rc-src');
    const dst = join(work, 'rc-dst');
    buildTree(src, { smallFiles: 300, largeFileBytes: 8 * MiB, sparseFileBytes: 8 * MiB, mixedOwners: false, owner: { uid: 1000, gid: 1000 } });
    // A database file rewritten in place (same size) between the passes, and what rclone cannot copy.
    mkdirSync(join(src, 'db'));
    const table = join(src, 'db', 'table.dat');
    writeFileSync(table, randomBytes(MiB));
    const past = new Date('2020-01-02T03:04:05Z');
    utimesSync(table, past, past);
    execFileSync('mkfifo', [join(src, 'db', 'fifo')]);
    execFileSync('setfattr', ['-n', 'user.ferry', '-v', 'kept?', join(src, 'large.bin')]);
    chownTree(src, 1000, 1000);
    mkdirSync(dst);
    chownTree(dst, 2000, 2000);
    const migrationId = 'mig-rclone';
    const endpoint = createEndpoint({ type: 'ClusterIP', migrationId, namespace: 'dst-ns', backendPort: BACKEND_PORT, port: BACKEND_PORT });
    const address = { host: net.destinationIP, port: BACKEND_PORT };
    const nt = createNamespaceTransfer({
      migrationId,
      sourceNamespace: 'src-ns',
      destinationNamespace: 'dst-ns',
      volumes: [{ sourcePVC: 'data', destinationPVC: 'data', identity: { runAsUser: 1000, runAsGroup: 1000 } }],
      transfer: createRcloneTransfer({}),
      transport: createNullTransport(),
      endpoint,
      security: 'restricted',
      image: 'ferry/transfer:test',
      serverIdentity: { runAsUser: 2000, runAsGroup: 2000 },
    });
    const credentials = createTransferCredentials(migrationId, endpoint, address);
    const dobjs = nt.destinationObjects(credentials);
    const server = new LocalPod({ pod: dobjs.find((o) => o.kind === 'Pod') as V1Pod, objects: dobjs, pvcs: { data: dst }, netns: net.destination, workDir: join(work, 'rc-server') });
    pods.push(server);
    await server.start();
    await waitForTCP(net.source, address.host, address.port);

    const run = async (name: string, creds: TransferCredentials, final: boolean) => {
      const objects = nt.sourceObjects('data', address, creds, { final });
      const client = new LocalPod({ pod: objects.find((o) => o.kind === 'Pod') as V1Pod, objects, pvcs: { data: src }, netns: net.source, workDir: join(work, name) });
      pods.push(client);
      await client.start();
      return (await client.completion(300_000)).rclone!;
    };
    const expectOk = (r: ContainerResult) => {
      if (r.exitCode !== 0) throw new Error(`rclone exited ${r.exitCode}:\n${r.logs.slice(-3000)}\nserver:\n${server.log('rclone').slice(-2000)}`);
      return r;
    };
    const files = (m: ReturnType<typeof manifest>) => new Map([...m].filter(([, e]) => e.type === 'file').map(([p, e]) => [p, `${e.sha256} ${e.size}`]));
    const times = (m: ReturnType<typeof manifest>) => new Map([...m].filter(([, e]) => e.type === 'file').map(([p, e]) => [p, e.mtimeMs]));
    const links = (m: ReturnType<typeof manifest>) => new Map([...m].filter(([, e]) => e.type === 'symlink').map(([p, e]) => [p, e.target]));
    const dirs = (m: ReturnType<typeof manifest>) => [...m].filter(([, e]) => e.type === 'dir').map(([p]) => p).sort();
    const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
    const rewriteInPlace = (path: string, at: number) => {
      const fd = openSync(path, 'r+');
      writeSync(fd, randomBytes(4096), 0, 4096, at);
      closeSync(fd);
    };

    // Stage pass 1: contents and symlinks arrive.
    expectOk(await run('rc-stage-1', credentials, false));
    const srcM = () => manifest(src, { owners: false });
    const dstM = () => manifest(dst, { owners: false });
    expect(files(dstM())).toEqual(files(srcM()));
    expect(links(dstM())).toEqual(links(srcM()));

    // The database rewrites a block in place: same size, a new modification time. Stage pass 2
    // (size + time) must carry it; with WebDAV (no times at the destination) it compared sizes only.
    rewriteInPlace(table, 4096);
    expect(statSync(table).size).toBe(MiB);
    expectOk(await run('rc-stage-2', credentials, false));
    expect(sha(join(dst, 'db', 'table.dat'))).toBe(sha(table));

    // Worst case: rewritten in place again and its modification time put back, as a tool restoring
    // times would (or a rewrite within the same second: SFTP keeps whole seconds). Times and sizes
    // then match; the final sync compares checksums and must still carry it. A file deleted at the
    // source disappears at the destination.
    const before = statSync(table);
    rewriteInPlace(table, 65536);
    utimesSync(table, before.atime, before.mtime);
    // Same size, same time to the second as the destination's copy: only a checksum tells them apart.
    expect(Math.floor(statSync(table).mtimeMs / 1000) * 1000).toBe(statSync(join(dst, 'db', 'table.dat')).mtimeMs);
    expect(sha(join(dst, 'db', 'table.dat'))).not.toBe(sha(table));
    rmSync(join(src, 'small', 'd0', 'f0.txt'));
    const final = expectOk(await run('rc-final', credentials, true));
    expect(sha(join(dst, 'db', 'table.dat'))).toBe(sha(table));
    expect(files(dstM())).toEqual(files(srcM()));
    expect(links(dstM())).toEqual(links(srcM()));
    // File modification times are kept to the second (SFTP v3).
    expect(times(dstM())).toEqual(times(srcM()));
    // Empty directories are kept (--create-empty-src-dirs); the FIFO is reported, not copied.
    expect(dirs(dstM())).toEqual(dirs(srcM()));
    expect(existsSync(join(dst, 'empty', 'nested', 'deeper'))).toBe(true);
    expect(final.logs).toMatch(/db\/fifo: Can't transfer non file\/directory/);

    // What the rclone engine cannot keep (README, plan schema): owners, permission bits, hard links,
    // sparseness, extended attributes, POSIX ACLs, special files.
    const d = manifest(dst, { owners: true });
    const sm = manifest(src, { owners: true });
    expect(d.get('large.bin')!.uid).toBe(2000);
    expect(sm.get('modes/private')!.mode).toBe(0o600);
    expect(d.get('modes/private')!.mode).toBe(0o644);
    expect(sm.get('links/second')!.linkGroup).toBeDefined();
    expect(d.get('links/second')!.linkGroup).toBeUndefined();
    expect(sm.get('sparse.img')!.sparse).toBe(true);
    expect(d.get('sparse.img')!.sparse).toBe(false);
    expect(execFileSync('getfattr', ['-d', join(src, 'large.bin')], { encoding: 'utf8' })).toContain('user.ferry');
    expect(execFileSync('getfattr', ['-d', join(dst, 'large.bin')], { encoding: 'utf8' })).not.toContain('user.ferry');
    expect(existsSync(join(dst, 'db', 'fifo'))).toBe(false);
    execFileSync('setfacl', ['-m', 'u:4242:r', join(src, 'modes', 'group')]);
    expectOk(await run('rc-acl', credentials, true));
    expect(execFileSync('getfacl', ['-cp', join(src, 'modes', 'group')], { encoding: 'utf8' })).toContain('user:4242:r--');
    expect(execFileSync('getfacl', ['-cp', join(dst, 'modes', 'group')], { encoding: 'utf8' })).not.toContain('user:4242');

    // A client without the migration's password is refused by the SSH server.
    writeFileSync(join(src, 'must-not-arrive'), 'x');
    const refused = await run('rc-rogue', { certificates: credentials.certificates, password: createTransferCredentials(migrationId, endpoint, address).password }, true);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.logs).toMatch(/unable to authenticate|knownhosts/);
    expect(existsSync(join(dst, 'must-not-arrive'))).toBe(false);
  });

  it('rclone behind the stunnel transport: SFTP to 127.0.0.1 through the mutual TLS tunnel', async () => {
    const src = join(work, 'rcs-src');
    const dst = join(work, 'rcs-dst');
    buildTree(src, { smallFiles: 50, largeFileBytes: 2 * MiB, sparseFileBytes: 1 * MiB, mixedOwners: false, owner: { uid: 1000, gid: 1000 } });
    mkdirSync(dst);
    chownTree(dst, 2000, 2000);
    const migrationId = 'mig-rclone-stunnel';
    const endpoint = createEndpoint({ type: 'ClusterIP', migrationId, namespace: 'dst-ns', backendPort: BACKEND_PORT, port: BACKEND_PORT });
    const address = { host: net.destinationIP, port: BACKEND_PORT };
    const nt = createNamespaceTransfer({
      migrationId,
      sourceNamespace: 'src-ns',
      destinationNamespace: 'dst-ns',
      volumes: [{ sourcePVC: 'data', destinationPVC: 'data', identity: { runAsUser: 1000, runAsGroup: 1000 } }],
      transfer: createRcloneTransfer({}),
      transport: createStunnelTransport(),
      endpoint,
      security: 'restricted',
      image: 'ferry/transfer:test',
      serverIdentity: { runAsUser: 2000, runAsGroup: 2000 },
    });
    const credentials = createTransferCredentials(migrationId, endpoint, address);
    const dobjs = nt.destinationObjects(credentials);
    const server = new LocalPod({ pod: dobjs.find((o) => o.kind === 'Pod') as V1Pod, objects: dobjs, pvcs: { data: dst }, netns: net.destination, workDir: join(work, 'rcs-server') });
    pods.push(server);
    await server.start();
    await server.ready();
    const cobjs = nt.sourceObjects('data', address, credentials, { final: true });
    const client = new LocalPod({ pod: cobjs.find((o) => o.kind === 'Pod') as V1Pod, objects: cobjs, pvcs: { data: src }, netns: net.source, workDir: join(work, 'rcs-client') });
    pods.push(client);
    await client.start();
    const r = await client.completion(300_000);
    if (r.rclone!.exitCode !== 0) throw new Error(`rclone exited ${r.rclone!.exitCode}:\n${r.rclone!.logs.slice(-3000)}\nserver:\n${server.log('rclone').slice(-2000)}`);
    const contents = (m: ReturnType<typeof manifest>) => new Map([...m].filter(([, e]) => e.type === 'file' || e.type === 'symlink').map(([p, e]) => [p, `${e.sha256 ?? e.target} ${e.mtimeMs}`]));
    expect(contents(manifest(dst, { owners: false }))).toEqual(contents(manifest(src, { owners: false })));
    // The SFTP server listens on loopback only: stunnel is the only way in.
    expect(server.log('rclone')).toMatch(/SFTP server listening on 127\.0\.0\.1:2222/);
  });

  it('refuses a client certificate from another CA, and moves no data over plaintext', async () => {
    const dst = join(work, 'neg-dst');
    mkdirSync(dst);
    const s = await startServer('mig-negative', 'preserve-ownership', 'done-file', dst);
    const src = join(work, 'neg-src');
    mkdirSync(src);
    writeFileSync(join(src, 'must-not-arrive'), 'secret\n');

    // Same password, same endpoint, but certificates from a different CA.
    const rogue = createTransferCredentials('mig-negative', s.nt.endpoint, s.address);
    const r = await runClient(s, 'neg-client', src, { certificates: rogue.certificates, password: s.credentials.password }, true);
    expect(r.rsync!.exitCode).not.toBe(0);
    expect(readdirSync(dst)).toEqual([]);
    expect(s.server.log('stunnel')).toMatch(/certificate verify failed|unknown ca|Rejected by CERT|verification error/i);

    // Plaintext rsync protocol to the TLS port: no daemon greeting comes back, nothing is written.
    const probe = spawnSync(
      'ip',
      ['netns', 'exec', net.source, 'timeout', '5', 'bash', '-c', `exec 3<>/dev/tcp/${s.address.host}/${s.address.port}; printf '@RSYNCD: 32.0\\ndata\\n' >&3; cat <&3`],
      { encoding: 'utf8' },
    );
    expect(probe.stdout).not.toContain('@RSYNCD');
    expect(readdirSync(dst)).toEqual([]);
    // The server is still healthy after both attempts.
    execFileSync('ip', ['netns', 'exec', net.destination, 'bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/2222']);
    await s.server.stop();
  });

  it('shows live progress every few seconds at a throttled rate (issue 8 item 12)', async () => {
    const src = join(work, 'bw-src');
    const dst = join(work, 'bw-dst');
    mkdirSync(src);
    mkdirSync(dst);
    // 20 MiB at 2 MiB/s: about 10 s of transfer.
    writeFileSync(join(src, 'big.bin'), execFileSync('head', ['-c', String(20 * MiB), '/dev/urandom'], { maxBuffer: 32 * MiB }));
    const s = await startServer('mig-progress', 'preserve-ownership', 'done-file', dst, { bwLimitKiBps: 2048 });
    const client = await startClient(s, 'bw-client', src, s.credentials, false);
    const done = client.completion(120_000);
    let finished = false;
    void done.then(() => (finished = true));
    // Poll the container log as followTransferPod does (its last PROGRESS_TAIL_LINES lines, a fresh
    // parser each time) every 500 ms, and note when a new byte count first shows up.
    const seen: { at: number; bytes: number }[] = [];
    const started = Date.now();
    while (!finished) {
      const tail = client.log('rsync').split('\n').slice(-PROGRESS_TAIL_LINES).join('\n');
      const parser = new RsyncOutputParser();
      parser.feed(tail);
      const p = progressFromRsync(parser.result().progress);
      if (p && (seen.length === 0 || p.bytes !== seen[seen.length - 1]!.bytes)) seen.push({ at: Date.now() - started, bytes: p.bytes });
      await new Promise((r) => setTimeout(r, 500));
    }
    expectSuccess(await done);
    const total = Date.now() - started;
    expect(total).toBeGreaterThan(8_000);
    const during = seen.filter((x) => x.bytes < 20 * MiB);
    // rsync prints an update about once a second: most of them must be visible while it runs…
    expect(during.length).toBeGreaterThanOrEqual(5);
    // …the first within a few seconds of the start, and never a gap of more than 3 s between updates.
    expect(during[0]!.at).toBeLessThan(5_000);
    for (let i = 1; i < during.length; i++) expect(during[i]!.at - during[i - 1]!.at).toBeLessThan(3_000);
    expect(readFileSync(join(dst, 'big.bin')).equals(readFileSync(join(src, 'big.bin')))).toBe(true);
    await s.server.stop();
  });
});
