import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { BLOCK_DEVICE_FILE, type PodParts, type TransferClientContext, type TransferServerContext } from '../../src/statetransfer/types';
import { RsyncOptionsError } from '../../src/statetransfer/transfer/rsync/options';
import { parseRsyncOutput } from '../../src/statetransfer/transfer/rsync/parser';
import { classifyRsyncExit } from '../../src/statetransfer/transfer/rsync/exit-codes';
import { generatePassword } from '../../src/statetransfer/password';
import {
  RSYNCD_CONF_DIR,
  RSYNCD_CONF_KEY,
  RSYNCD_CONF_PATH,
  RSYNCD_RUN_DIR,
  RSYNCD_SECRETS_DIR,
  RSYNCD_SECRETS_KEY,
  RSYNCD_SECRETS_PATH,
  RSYNC_DEFAULT_PORT,
  RSYNC_PASSWORD_DIR,
  RSYNC_PASSWORD_FILE,
  RSYNC_PASSWORD_KEY,
  RSYNC_VOLUME_NAMES,
  createRsyncTransfer,
} from '../../src/statetransfer/transfer/rsync';
import { freePort, haveRsync, run, tempDir, waitForPort } from '../fixtures/rsync/helpers';

const PASSWORD = 'S3cr3t-password-for-tests_0123456789';

function serverCtx(patch: Partial<TransferServerContext> = {}): TransferServerContext {
  return {
    objectName: (suffix) => `ferry-abc-${suffix}`,
    labels: { 'app.kubernetes.io/managed-by': 'ferry' },
    namespace: 'dst-ns',
    volumes: [
      { pvcName: 'data', mountPath: '/mnt/dst/data' },
      { pvcName: 'logs', mountPath: '/mnt/dst/logs' },
    ],
    bindAddress: '127.0.0.1',
    port: 2222,
    password: PASSWORD,
    root: true,
    ...patch,
  };
}

function clientCtx(patch: Partial<TransferClientContext> = {}): TransferClientContext {
  return {
    objectName: (suffix) => `ferry-abc-${suffix}-data`,
    labels: { 'app.kubernetes.io/managed-by': 'ferry' },
    namespace: 'src-ns',
    module: 'data',
    sourcePath: '/mnt/src/data',
    connect: { host: '127.0.0.1', port: 2222 },
    password: PASSWORD,
    root: true,
    final: false,
    ...patch,
  };
}

function decode(secret: V1Secret, key: string): string {
  return Buffer.from(secret.data![key]!, 'base64').toString('utf8');
}

describe('createRsyncTransfer', () => {
  test('identity and immutability', () => {
    const t = createRsyncTransfer();
    expect(t.type).toBe('rsync');
    expect(t.port).toBe(RSYNC_DEFAULT_PORT);
    expect(t.selfEncrypting).toBe(false);
    expect(Object.isFrozen(t)).toBe(true);
    expect(() => {
      (t as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (t as unknown as Record<string, unknown>).extra = 1;
    }).toThrow(TypeError);
    expect(createRsyncTransfer({ port: 8730 }).port).toBe(8730);
  });

  test('invalid options are reported together, port included', () => {
    try {
      createRsyncTransfer({ port: 0, bwLimitKiBps: -1, extraArgs: ['--rsh=sh'] });
      throw new Error('should throw');
    } catch (e) {
      expect(e).toBeInstanceOf(RsyncOptionsError);
      expect((e as RsyncOptionsError).problems.map((p) => p.path).sort()).toEqual(['bwLimitKiBps', 'extraArgs[0]', 'port']);
    }
  });
});

describe('server parts', () => {
  const parts = createRsyncTransfer().server(serverCtx());

  test('ConfigMap with rsyncd.conf, one module per volume', () => {
    const cm = parts.objects[0] as V1ConfigMap;
    expect(cm).toMatchObject({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ferry-abc-rsyncd', namespace: 'dst-ns', labels: { 'app.kubernetes.io/managed-by': 'ferry' } },
    });
    const conf = cm.data![RSYNCD_CONF_KEY]!;
    expect(conf).toContain('[data]\npath = /mnt/dst/data\n');
    expect(conf).toContain('[logs]\npath = /mnt/dst/logs\n');
    expect(conf).toContain(`secrets file = ${RSYNCD_SECRETS_PATH}`);
    expect(conf).toContain(`pid file = ${RSYNCD_RUN_DIR}/rsyncd.pid`);
    expect(conf).toContain('port = 2222');
    expect(conf).not.toContain(PASSWORD);
  });

  test('Secret uses base64 data, never stringData', () => {
    const s = parts.objects[1] as V1Secret;
    expect(s).toMatchObject({ kind: 'Secret', type: 'Opaque', metadata: { name: 'ferry-abc-rsyncd-secrets', namespace: 'dst-ns' } });
    expect(s.stringData).toBeUndefined();
    expect(decode(s, RSYNCD_SECRETS_KEY)).toBe(`ferry:${PASSWORD}\n`);
  });

  test('volumes: config, secret readable by any UID (copied to a private 0400 file at start)', () => {
    expect(parts.volumes).toEqual([
      { name: RSYNC_VOLUME_NAMES.conf, configMap: { name: 'ferry-abc-rsyncd', defaultMode: 0o444 } },
      { name: RSYNC_VOLUME_NAMES.secrets, secret: { secretName: 'ferry-abc-rsyncd-secrets', defaultMode: 0o444 } },
    ]);
  });

  test('daemon process', () => {
    expect(parts.processes).toEqual([
      {
        name: 'rsync',
        command: ['rsync', '--daemon', '--no-detach', '--port=2222', `--config=${RSYNCD_CONF_PATH}`],
        volumeMounts: [
          { name: RSYNC_VOLUME_NAMES.conf, mountPath: RSYNCD_CONF_DIR, readOnly: true },
          { name: RSYNC_VOLUME_NAMES.secrets, mountPath: RSYNCD_SECRETS_DIR, readOnly: true },
        ],
        readyPort: 2222,
        prepare: `mkdir -p ${RSYNCD_RUN_DIR} && install -m 0400 ${RSYNCD_SECRETS_DIR}/${RSYNCD_SECRETS_KEY} ${RSYNCD_SECRETS_PATH}`,
      },
    ]);
    expect(JSON.stringify(parts.processes)).not.toContain(PASSWORD);
  });

  test('non-root server conf has no chroot', () => {
    const cm = createRsyncTransfer().server(serverCtx({ root: false })).objects[0] as V1ConfigMap;
    expect(cm.data![RSYNCD_CONF_KEY]).toContain('use chroot = no');
    expect(cm.data![RSYNCD_CONF_KEY]).not.toMatch(/^uid/m);
  });

  test('refusals', () => {
    const t = createRsyncTransfer();
    expect(() => t.server(serverCtx({ tls: { secretName: 'x' } }))).toThrow(/stunnel/);
    expect(() => t.server(serverCtx({ volumes: [] }))).toThrow(/at least one/);
    expect(() => t.server(serverCtx({ bindAddress: '0.0.0.0' }))).toThrow(/loopback/);
    expect(() => t.server(serverCtx({ password: 'short' }))).toThrow(/16 characters/);
    expect(() => t.server(serverCtx({ password: `${PASSWORD}\nx` }))).toThrow(/newline/);
  });
});

describe('client parts', () => {
  test('stage sync argv, password only in a file', () => {
    const parts = createRsyncTransfer().client(clientCtx());
    const [proc] = parts.processes;
    expect(proc!.name).toBe('rsync');
    const cmd = proc!.command;
    expect(cmd[0]).toBe('rsync');
    expect(cmd.slice(-3)).toEqual([`--password-file=${RSYNC_PASSWORD_FILE}`, '/mnt/src/data/', 'rsync://ferry@127.0.0.1:2222/data/']);
    expect(cmd).toContain('--owner');
    expect(cmd).not.toContain('--delete-during');
    expect(proc!.env).toBeUndefined();
    expect(JSON.stringify(parts.processes)).not.toContain(PASSWORD);
    expect(proc!.volumeMounts).toEqual([{ name: RSYNC_VOLUME_NAMES.password, mountPath: RSYNC_PASSWORD_DIR, readOnly: true }]);
    expect(parts.volumes).toEqual([
      { name: RSYNC_VOLUME_NAMES.password, secret: { secretName: 'ferry-abc-rsync-password-data', defaultMode: 0o444 } },
    ]);
    const secret = parts.objects[0] as V1Secret;
    expect(secret.metadata).toMatchObject({ name: 'ferry-abc-rsync-password-data', namespace: 'src-ns' });
    expect(secret.stringData).toBeUndefined();
    expect(decode(secret, RSYNC_PASSWORD_KEY)).toBe(PASSWORD);
  });

  test('final, non-root, trailing slashes, IPv6', () => {
    const parts = createRsyncTransfer({ checksum: true }).client(
      clientCtx({ final: true, root: false, sourcePath: '/mnt/src/data//', connect: { host: 'fd00::1', port: 8443 } }),
    );
    const cmd = parts.processes[0]!.command;
    expect(cmd).toContain('--delete-during');
    expect(cmd).toContain('--checksum');
    expect(cmd).toContain('--omit-dir-times');
    expect(cmd).not.toContain('--owner');
    expect(cmd.slice(-2)).toEqual(['/mnt/src/data/', 'rsync://ferry@[fd00::1]:8443/data/']);
  });

  test('refusals', () => {
    const t = createRsyncTransfer();
    expect(() => t.client(clientCtx({ tls: { secretName: 'x' } }))).toThrow(/stunnel/);
    expect(() => t.client(clientCtx({ module: 'a b' }))).toThrow(/module/);
    expect(() => t.client(clientCtx({ module: 'a@b' }))).toThrow(/URL/);
    expect(() => t.client(clientCtx({ sourcePath: 'relative' }))).toThrow(/absolute/);
    expect(() => t.client(clientCtx({ sourcePath: '/a/../b' }))).toThrow(/absolute/);
    expect(() => t.client(clientCtx({ connect: { host: 'a/b', port: 1 } }))).toThrow(/connect/);
    expect(() => t.client(clientCtx({ connect: { host: 'h', port: 0 } }))).toThrow(/connect/);
    expect(() => createRsyncTransfer({ chown: '1:1' }).client(clientCtx({ root: false }))).toThrow(RsyncOptionsError);
    expect(createRsyncTransfer({ chown: '1:1' }).client(clientCtx({ root: true })).processes[0]!.command).toContain('--chown=1:1');
  });
});

// End to end with the real binaries: the generated daemon config and client command, with only the
// mount paths swapped for temporary directories.
describe('generated server and client run with the real rsync', () => {
  if (!haveRsync()) {
    test('rsync is installed', () => {
      throw new Error('rsync binary not found: these tests need the real rsync');
    });
    return;
  }
  const isRoot = process.getuid?.() === 0;
  const NOBODY = 65534;
  const daemons: ChildProcess[] = [];
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of daemons) d.kill('SIGTERM');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Materializes PodParts in a temp dir the way the kubelet would, with paths remapped. */
  async function startServer(root: boolean, dst: string, base: string, ids?: { uid: number; gid: number }, block = false): Promise<number> {
    const port = await freePort();
    const parts: PodParts = createRsyncTransfer().server(
      serverCtx({ root, port, password: PASSWORD, volumes: [{ pvcName: 'data', mountPath: dst, ...(block ? { block } : {}) }] }),
    );
    const remap = (s: string): string =>
      s.split(RSYNCD_SECRETS_DIR).join(join(base, 'secrets')).split(RSYNCD_RUN_DIR).join(join(base, 'run')).split(RSYNCD_CONF_DIR).join(join(base, 'conf'));
    for (const d of ['secrets', 'run', 'conf']) mkdirSync(join(base, d));
    writeFileSync(join(base, 'conf', RSYNCD_CONF_KEY), remap((parts.objects[0] as V1ConfigMap).data![RSYNCD_CONF_KEY]!));
    // The daemon reads the private copy that the container's `prepare` step makes in the run dir.
    const secretFile = join(base, 'run', RSYNCD_SECRETS_KEY);
    writeFileSync(secretFile, decode(parts.objects[1] as V1Secret, RSYNCD_SECRETS_KEY), { mode: 0o400 });
    if (ids) {
      chownSync(secretFile, ids.uid, ids.gid);
      chownSync(join(base, 'run'), ids.uid, ids.gid);
    }
    const argv = parts.processes[0]!.command.map(remap);
    const d = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', ...(ids ?? {}) });
    daemons.push(d);
    await waitForPort(port);
    return port;
  }

  async function runClient(opts: { root: boolean; final: boolean; src: string; port: number; base: string; ids?: { uid: number; gid: number }; block?: boolean }) {
    const parts = createRsyncTransfer().client(
      clientCtx({ root: opts.root, final: opts.final, sourcePath: opts.src, connect: { host: '127.0.0.1', port: opts.port }, ...(opts.block ? { block: true } : {}) }),
    );
    const pwFile = join(opts.base, `password-${opts.final}`);
    writeFileSync(pwFile, decode(parts.objects[0] as V1Secret, RSYNC_PASSWORD_KEY), { mode: 0o400 });
    if (opts.ids) chownSync(pwFile, opts.ids.uid, opts.ids.gid);
    const argv = parts.processes[0]!.command.map((a) => (a === `--password-file=${RSYNC_PASSWORD_FILE}` ? `--password-file=${pwFile}` : a));
    const r = await run(argv, opts.ids ?? {});
    return { ...r, parsed: parseRsyncOutput(r.output) };
  }

  function makeTree(src: string): void {
    mkdirSync(join(src, 'a/b'), { recursive: true });
    writeFileSync(join(src, 'a/b/file.txt'), 'content');
    writeFileSync(join(src, 'sparse.img'), Buffer.alloc(2 << 20));
    linkSync(join(src, 'a/b/file.txt'), join(src, 'hard.txt'));
    symlinkSync('a/b/file.txt', join(src, 'rel-link'));
    symlinkSync('/etc/hostname', join(src, 'abs-link'));
    writeFileSync(join(src, 'to-delete'), 'x');
    mkdirSync(join(src, 'lost+found'));
  }

  (isRoot ? test : test.skip)('root mode: faithful copy incl. ownership and absolute symlinks; deletes only on final', async () => {
    const base = tempDir();
    dirs.push(base);
    const src = join(base, 'src');
    const dst = join(base, 'dst');
    mkdirSync(src);
    mkdirSync(dst);
    makeTree(src);
    chownSync(join(src, 'a/b/file.txt'), 1234, 5678);
    const port = await startServer(true, dst, base);

    const first = await runClient({ root: true, final: false, src, port, base });
    expect({ code: first.code, out: first.code === 0 ? '' : first.output }).toEqual({ code: 0, out: '' });
    expect(classifyRsyncExit(first.code!, first.parsed).outcome).toBe('success');
    expect(readFileSync(join(dst, 'a/b/file.txt'), 'utf8')).toBe('content');
    expect(statSync(join(dst, 'a/b/file.txt'))).toMatchObject({ uid: 1234, gid: 5678 });
    expect(statSync(join(dst, 'hard.txt')).ino).toBe(statSync(join(dst, 'a/b/file.txt')).ino);
    expect(readlinkSync(join(dst, 'rel-link'))).toBe('a/b/file.txt');
    expect(readlinkSync(join(dst, 'abs-link'))).toBe('/etc/hostname');
    expect(statSync(join(dst, 'sparse.img')).blocks).toBeLessThan(64);
    expect(existsSync(join(dst, 'lost+found'))).toBe(false);
    expect(first.parsed.stats?.files?.total).toBe(first.parsed.progress?.filesTotal);

    rmSync(join(src, 'to-delete'));
    writeFileSync(join(dst, 'extraneous'), 'x');
    await new Promise((r) => setTimeout(r, 1500)); // max connections = 1: let the previous session end
    const stage = await runClient({ root: true, final: false, src, port, base });
    expect(stage.code).toBe(0);
    expect(existsSync(join(dst, 'to-delete'))).toBe(true);

    await new Promise((r) => setTimeout(r, 1500));
    const final = await runClient({ root: true, final: true, src, port, base });
    expect(final.code).toBe(0);
    expect(existsSync(join(dst, 'to-delete'))).toBe(false);
    expect(existsSync(join(dst, 'extraneous'))).toBe(false);
    expect(final.parsed.deletedCount).toBe(2);
  });

  (isRoot ? test : test.skip)('root mode: wrong password is a fatal credentials mismatch', async () => {
    const base = tempDir();
    dirs.push(base);
    mkdirSync(join(base, 'dst'));
    mkdirSync(join(base, 'src'));
    const port = await startServer(true, join(base, 'dst'), base);
    const parts = createRsyncTransfer().client(clientCtx({ sourcePath: join(base, 'src'), connect: { host: '127.0.0.1', port } }));
    const pw = join(base, 'wrong');
    writeFileSync(pw, generatePassword(), { mode: 0o400 });
    const argv = parts.processes[0]!.command.map((a) => (a.startsWith('--password-file=') ? `--password-file=${pw}` : a));
    const r = await run(argv);
    const c = classifyRsyncExit(r.code!, parseRsyncOutput(r.output));
    expect(r.code).toBe(5);
    expect(c.outcome).toBe('fatal');
    expect(c.explanation).toMatch(/Credentials mismatch/);
  });

  (isRoot ? test : test.skip)('non-root mode (uid 65534 on both sides): copies; symlinks leaving the volume are rewritten by rsyncd', async () => {
    const base = tempDir();
    dirs.push(base);
    chmodSync(base, 0o755);
    const ids = { uid: NOBODY, gid: NOBODY };
    const src = join(base, 'src');
    const dst = join(base, 'dst');
    mkdirSync(src);
    mkdirSync(dst);
    makeTree(src);
    for (const p of [src, dst, join(src, 'a'), join(src, 'a/b'), join(src, 'a/b/file.txt'), join(src, 'sparse.img'), join(src, 'to-delete'), join(src, 'lost+found')]) {
      chownSync(p, NOBODY, NOBODY);
    }
    for (const l of ['rel-link', 'abs-link']) lstatSync(join(src, l));
    const port = await startServer(false, dst, base, ids);
    const r = await runClient({ root: false, final: true, src, port, base, ids });
    expect({ code: r.code, out: r.code === 0 ? '' : r.output }).toEqual({ code: 0, out: '' });
    expect(readFileSync(join(dst, 'a/b/file.txt'), 'utf8')).toBe('content');
    expect(statSync(join(dst, 'a/b/file.txt')).uid).toBe(NOBODY);
    expect(readlinkSync(join(dst, 'rel-link'))).toBe('a/b/file.txt');
    // Known limitation (rsyncd.conf(5) "munge symlinks"; measured on rsync 3.5.0): without chroot
    // the daemon sanitizes symlink values, dropping the leading '/'. If this starts failing, rsync
    // changed and the non-root limitation note in rsyncd-conf.ts must be revisited.
    expect(readlinkSync(join(dst, 'abs-link'))).toBe('etc/hostname');
  });

  // Block volumes: two loop devices stand for the source and destination PVCs' devices, the
  // destination's node in the module directory as the kubelet makes it (owned by the non-root daemon,
  // as containerd's device_ownership_from_security_context makes it).
  const haveLoop = isRoot && spawnSync('losetup', ['--version']).status === 0;
  (haveLoop ? test : test.skip)('block volume: the device copied byte for byte into a non-root daemon; a re-sync after a 1 MiB change sends about 1 MiB', async () => {
    const base = tempDir();
    dirs.push(base);
    chmodSync(base, 0o755);
    const size = 32 << 20;
    const images = ['src.img', 'dst.img'].map((f) => join(base, f));
    writeFileSync(images[0]!, randomBytes(size));
    writeFileSync(images[1]!, Buffer.alloc(size));
    const loops = images.map((img) => spawnSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).stdout.trim());
    try {
      expect(loops.every((l) => l.startsWith('/dev/loop'))).toBe(true);
      const dst = join(base, 'dst');
      mkdirSync(dst);
      const rdev = statSync(loops[1]!).rdev;
      expect(spawnSync('mknod', [join(dst, BLOCK_DEVICE_FILE), 'b', String(Math.floor(rdev / 256) & 0xfff), String((rdev & 0xff) | ((rdev >> 12) & 0xfff00))]).status).toBe(0);
      chownSync(join(dst, BLOCK_DEVICE_FILE), NOBODY, NOBODY);
      const port = await startServer(false, dst, base, { uid: NOBODY, gid: NOBODY }, true);
      const digest = (dev: string) => createHash('sha256').update(readFileSync(dev).subarray(0, size)).digest('hex');

      const first = await runClient({ root: false, final: false, src: loops[0]!, port, base, block: true });
      expect({ code: first.code, out: first.code === 0 ? '' : first.output }).toEqual({ code: 0, out: '' });
      expect(digest(loops[1]!)).toBe(digest(loops[0]!));

      // 1 MiB rewritten in the middle of the source device
      const fd = openSync(loops[0]!, 'r+');
      writeSync(fd, randomBytes(1 << 20), 0, 1 << 20, 5 << 20);
      closeSync(fd);
      const again = await runClient({ root: false, final: true, src: loops[0]!, port, base, block: true });
      expect({ code: again.code, out: again.code === 0 ? '' : again.output }).toEqual({ code: 0, out: '' });
      expect(digest(loops[1]!)).toBe(digest(loops[0]!));
      const sent = again.parsed.stats?.totalBytesSent ?? Number.NaN;
      expect(sent).toBeGreaterThan(1 << 20);
      expect(sent).toBeLessThan(2 << 20);
    } finally {
      for (const l of loops) if (l.startsWith('/dev/loop')) spawnSync('losetup', ['-d', l]);
    }
  });
});

describe('block volumes (volumeMode Block)', () => {
  test('client: the device node into the module\'s device node, delta always, no tree options, no symlink upload', () => {
    const parts = createRsyncTransfer({ delete: true, sparse: true, hardLinks: true }).client(clientCtx({ block: true, root: false, final: true, sourcePath: '/data/device' }));
    const argv = parts.processes[0]!.command;
    expect(argv.slice(-2)).toEqual(['/data/device', 'rsync://ferry@127.0.0.1:2222/data/device']);
    expect(argv).toEqual(expect.arrayContaining(['--copy-devices', '--write-devices', '--inplace', '--ignore-times', '--no-whole-file']));
    for (const tree of ['--recursive', '--delete-during', '--sparse', '--hard-links']) expect(argv).not.toContain(tree);
    expect(parts.processes[0]!.finish).toBeUndefined();
    expect(parts.processes[0]!.prepare).toMatch(/\[ ! -r \/data\/device \].*device_ownership_from_security_context/);
  });

  test('server: the block module accepts --write-devices, the file module does not; the prepare step checks the device is writable', () => {
    const parts = createRsyncTransfer().server(serverCtx({ root: false, volumes: [{ pvcName: 'disk', mountPath: '/mnt/ferry/disk', block: true }, { pvcName: 'data', mountPath: '/mnt/ferry/data' }] }));
    const conf = (parts.objects[0] as V1ConfigMap).data![RSYNCD_CONF_KEY]!;
    const section = (name: string) => conf.split(/^\[/m).find((s) => s.startsWith(`${name}]`)) ?? '';
    expect(section('disk')).toMatch(/^refuse options = !write-devices$/m);
    expect(section('data')).not.toMatch(/refuse options/);
    expect(conf).not.toMatch(/^\[disk-links\]|^\[disk\.links/m);
    expect(parts.processes[0]!.prepare).toMatch(/\[ ! -w \/mnt\/ferry\/disk\/device \]/);
    expect(parts.processes[0]!.prepare).not.toMatch(/\/mnt\/ferry\/data\/device/);
  });
});
