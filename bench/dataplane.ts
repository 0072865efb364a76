/**
 * Data-plane benchmark: throughput (MB/s) and files/s of
 *   1. plain rsync daemon (no TLS; the baseline),
 *   2. Ferry's path: the generated server and client pods (rsync daemon + stunnel, rsync + stunnel)
 *      run by LocalPod exactly as generated,
 *   3. rsync + stunnel with VolSync's rsync flags (-aAhHSxz: always compressed), through the same
 *      stunnel pair,
 * on the same data in one run, between two network namespaces, source and destination on tmpfs so
 * the disk does not dominate. Prints a table with each path's ratio to plain. No pass/fail.
 *
 *   sudo npm run bench:dataplane -- [--large-mib 1024] [--small-files 20000] [--repeat 2]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, closeSync, openSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { V1Pod, V1Secret, V1ConfigMap } from '@kubernetes/client-node';
import { createEndpoint } from '../src/statetransfer/endpoint';
import { createNamespaceTransfer, createTransferCredentials } from '../src/statetransfer/namespace-transfer';
import { secretValues } from '../src/statetransfer/objects';
import { createRsyncTransfer } from '../src/statetransfer/transfer/rsync/rsync-transfer';
import { createStunnelTransport, STUNNEL_PATHS } from '../src/statetransfer/transport/stunnel';
import { LocalPod, removeWorkDir } from '../test/support/local-pod';
import { createNetnsPair, type NetnsPair } from '../test/support/netns';

interface Args {
  largeMiB: number;
  smallFiles: number;
  repeat: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { largeMiB: 1024, smallFiles: 20000, repeat: 2 };
  for (let i = 0; i < argv.length; i += 2) {
    const v = Number(argv[i + 1]);
    if (argv[i] === '--large-mib') a.largeMiB = v;
    else if (argv[i] === '--small-files') a.smallFiles = v;
    else if (argv[i] === '--repeat') a.repeat = v;
    else throw new Error(`unknown argument ${argv[i]} (use --large-mib N, --small-files N, --repeat N)`);
  }
  return a;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function makeData(root: string, a: Args): { large: string; small: string; smallBytes: number } {
  const large = join(root, 'large');
  const small = join(root, 'small');
  mkdirSync(large, { recursive: true });
  const fd = openSync(join(large, 'random.bin'), 'w');
  for (let i = 0; i < a.largeMiB; i += 8) writeSync(fd, randomBytes(Math.min(8, a.largeMiB - i) * 1024 * 1024));
  closeSync(fd);
  let smallBytes = 0;
  for (let i = 0; i < a.smallFiles; i++) {
    const d = join(small, `d${Math.floor(i / 1000)}`);
    if (i % 1000 === 0) mkdirSync(d, { recursive: true });
    const b = randomBytes(4096);
    smallBytes += b.length;
    writeFileSync(join(d, `f${i}`), b);
  }
  return { large, small, smallBytes };
}

/** Runs `argv` in the namespace and resolves with the elapsed seconds; rejects on a non-zero exit. */
function timed(ns: string, argv: string[], env: Record<string, string> = {}): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e9) : reject(new Error(`${argv.join(' ')} exited ${code}: ${err.slice(-2000)}`))));
  });
}

function background(ns: string, argv: string[]): () => void {
  const p = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'ignore' });
  return () => p.kill('SIGTERM');
}

async function waitPort(ns: string, host: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      sh('ip', ['netns', 'exec', ns, 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`]);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`nothing listens on ${host}:${port} in ${ns}`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark uses network and mount namespaces');
  const a = parseArgs(process.argv.slice(2));
  const work = mkdtempSync('/tmp/ferry-bench-');
  sh('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil((a.largeMiB * 2 + (a.smallFiles * 12 * 2) / 1024) * 1.3) + 256}m`, 'tmpfs', work]);
  const net: NetnsPair = createNetnsPair('ferryb');
  const cleanups: (() => void)[] = [];
  try {
    console.log(`preparing data: 1 × ${a.largeMiB} MiB random file, ${a.smallFiles} × 4 KiB files (tmpfs)`);
    const data = makeData(join(work, 'src'), a);
    const dst = join(work, 'dst');
    mkdirSync(dst);

    // Ferry's server pod, as generated.
    const migrationId = 'bench';
    const endpoint = createEndpoint({ type: 'ClusterIP', migrationId, namespace: 'dst', backendPort: 8443, port: 8443 });
    const address = { host: net.destinationIP, port: 8443 };
    const credentials = createTransferCredentials(migrationId, endpoint, address);
    const nt = createNamespaceTransfer({
      migrationId,
      sourceNamespace: 'src',
      destinationNamespace: 'dst',
      volumes: [{ sourcePVC: 'data', destinationPVC: 'data' }],
      transfer: createRsyncTransfer({}),
      transport: createStunnelTransport(),
      endpoint,
      security: 'preserve-ownership',
      image: 'local',
    });
    const dobjs = nt.destinationObjects(credentials);
    const server = new LocalPod({ pod: dobjs.find((o) => o.kind === 'Pod') as V1Pod, objects: dobjs, pvcs: { data: dst }, netns: net.destination, workDir: join(work, 'server') });
    await server.start();
    await server.ready();
    cleanups.push(() => void server.stop());

    // Plain rsync daemon on the destination's address (baseline): same modules layout, no TLS, no auth.
    const plainConf = join(work, 'plain-rsyncd.conf');
    writeFileSync(plainConf, `use chroot = no\nuid = 0\ngid = 0\n[data]\npath = ${dst}\nread only = no\n`);
    cleanups.push(background(net.destination, ['rsync', '--daemon', '--no-detach', `--address=${net.destinationIP}`, '--port=2873', `--config=${plainConf}`]));
    await waitPort(net.source, net.destinationIP, 2873);

    // For the VolSync-flags path: Ferry's stunnel client config and credentials, run by hand.
    const sobjs = nt.sourceObjects('data', address, credentials, { final: true });
    const clientPod = sobjs.find((o) => o.kind === 'Pod') as V1Pod;
    const ferryArgv = (() => {
      const script = clientPod.spec!.containers.find((c) => c.name === 'rsync')!.command![2]!;
      const line = script.split('\n').find((l) => l.startsWith('rsync '))!;
      return line.replace(/ 2>&1 \| awk.*$/, '');
    })();
    const ferryFlags = ferryArgv.split(' ').filter((w) => w.startsWith('--') && !w.startsWith('--password-file'));
    const vsDir = join(work, 'volsync');
    mkdirSync(vsDir);
    const tls = secretValues(sobjs.find((o) => o.kind === 'Secret' && o.metadata!.name!.endsWith('cli-tls')) as V1Secret);
    for (const [k, v] of Object.entries(tls)) writeFileSync(join(vsDir, k), v);
    const stunnelConf = (sobjs.find((o) => o.kind === 'ConfigMap') as V1ConfigMap).data!['stunnel.conf']!.replace(/\/etc\/ferry\/tls\//g, `${vsDir}/`).replace(STUNNEL_PATHS.key, `${vsDir}/tls.key`).replace('127.0.0.1:2222', '127.0.0.1:2874');
    writeFileSync(join(vsDir, 'stunnel.conf'), stunnelConf);
    cleanups.push(background(net.source, ['stunnel', join(vsDir, 'stunnel.conf')]));
    await waitPort(net.source, '127.0.0.1', 2874);
    const pwFile = join(vsDir, 'password');
    writeFileSync(pwFile, credentials.password, { mode: 0o600 });

    const paths: { name: string; run: (src: string) => Promise<number> }[] = [
      { name: 'plain rsync daemon', run: (src) => timed(net.source, ['rsync', ...ferryFlags, `${src}/`, `rsync://${net.destinationIP}:2873/data/`]) },
      {
        name: 'Ferry (rsync + stunnel pods)',
        run: async (src) => {
          const objects = nt.sourceObjects('data', address, credentials, { final: true });
          const pod = new LocalPod({ pod: objects.find((o) => o.kind === 'Pod') as V1Pod, objects, pvcs: { data: src }, netns: net.source, workDir: join(work, `client-${Date.now()}`) });
          const t0 = process.hrtime.bigint();
          await pod.start();
          const r = await pod.completion(3_600_000);
          if (r.rsync!.exitCode !== 0) throw new Error(`Ferry client failed: ${r.rsync!.logs.slice(-2000)}`);
          return Number(process.hrtime.bigint() - t0) / 1e9;
        },
      },
      {
        name: 'rsync + stunnel, VolSync flags -aAhHSxz',
        run: (src) => timed(net.source, ['rsync', '-aAhHSxz', '--delete', `--password-file=${pwFile}`, `${src}/`, 'rsync://ferry@127.0.0.1:2874/data/']),
      },
    ];

    const datasets = [
      { name: `${a.largeMiB} MiB file`, dir: data.large, bytes: a.largeMiB * 1024 * 1024, files: 1 },
      { name: `${a.smallFiles} small files`, dir: data.small, bytes: data.smallBytes, files: a.smallFiles },
    ];
    // Fixed cost of Ferry's path (pod start, stunnel start, wait for its port, TLS handshake),
    // measured on an empty volume and shown separately so the net figures compare the data paths.
    const empty = join(work, 'empty');
    mkdirSync(empty);
    let overhead = Infinity;
    for (let r = 0; r < a.repeat; r++) overhead = Math.min(overhead, await paths[1]!.run(empty));
    const rows: string[][] = [];
    for (const ds of datasets) {
      const results: { name: string; seconds: number }[] = [];
      for (const p of paths) {
        let best = Infinity;
        for (let r = 0; r < a.repeat; r++) {
          sh('bash', ['-c', `find ${dst} -mindepth 1 -delete`]);
          best = Math.min(best, await p.run(ds.dir));
        }
        results.push({ name: p.name, seconds: best });
      }
      const plain = results[0]!.seconds;
      for (const [i, r] of results.entries()) {
        const net = i === 1 ? Math.max(r.seconds - overhead, 1e-3) : r.seconds;
        rows.push([
          ds.name,
          r.name,
          r.seconds.toFixed(2),
          (ds.bytes / 1e6 / r.seconds).toFixed(1),
          (ds.files / r.seconds).toFixed(0),
          (plain / r.seconds).toFixed(2),
          i === 1 ? `${(ds.bytes / 1e6 / net).toFixed(1)} MB/s, ${(ds.files / net).toFixed(0)} files/s, ratio ${(plain / net).toFixed(2)}` : '',
        ]);
      }
    }
    const header = ['dataset', 'path', 'best s', 'MB/s', 'files/s', 'ratio to plain', `net of pod start-up (${overhead.toFixed(2)} s)`];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    console.log(`\n${fmt(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
    for (const r of rows) console.log(fmt(r));
    console.log(`\n(best of ${a.repeat} runs each; empty destination each run; ${new Date().toISOString()}; ${sh('nproc', []).trim()} CPUs)`);
  } finally {
    for (const c of cleanups.reverse()) c();
    await new Promise((r) => setTimeout(r, 500));
    net.destroy();
    try {
      sh('umount', ['-l', work]);
    } catch {
      /* not mounted */
    }
    removeWorkDir(work);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
