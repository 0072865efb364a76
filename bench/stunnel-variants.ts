/**
 * A/B benchmark of stunnel and rsync options on one large file: the same rsync client flags as
 * Ferry's client pod, plain (rsync daemon, no TLS) and through several stunnel pairs at once, each
 * pair rendered by Ferry's own config functions (renderStunnelServerConf / renderStunnelClientConf)
 * and then changed by one variant. Runs are interleaved (plain, variant 1, variant 2, …, plain, …) so
 * load from other processes hits every path alike; the table shows the median, min and max seconds
 * and each path's median ratio to plain. Because wall time on a shared machine swings several-fold,
 * it also reports the CPU seconds each path costs (user + system of the rsync client, the daemon's
 * children and both stunnel processes), which the other tenants of the machine barely move and
 * which bounds throughput on a CPU-bound host. Source and destination on tmpfs, between two network
 * namespaces. No pods: this isolates the transport from pod start-up (see dataplane.ts for that).
 *
 *   sudo npx tsx bench/stunnel-variants.ts [--mib 1024] [--repeat 5]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { createEndpoint } from '../src/statetransfer/endpoint';
import { createTransferCredentials, createNamespaceTransfer } from '../src/statetransfer/namespace-transfer';
import { secretValues } from '../src/statetransfer/objects';
import { createRsyncTransfer } from '../src/statetransfer/transfer/rsync';
import { rsyncClientArgs, validateRsyncOptions } from '../src/statetransfer/transfer/rsync/options';
import { createStunnelTransport, renderStunnelClientConf, renderStunnelServerConf } from '../src/statetransfer/transport/stunnel';
import { createNetnsPair } from '../test/support/netns';

/** One stunnel variant: how it rewrites Ferry's rendered server and client configs. */
interface Variant {
  name: string;
  edit: (conf: string) => string;
}

const drop = (re: RegExp) => (c: string) => c.split('\n').filter((l) => !re.test(l)).join('\n');
const add = (...lines: string[]) => (c: string) => `${c.trimEnd()}\n${lines.join('\n')}\n`;
const both = (...fs: ((c: string) => string)[]) => (c: string) => fs.reduce((acc, f) => f(acc), c);

/** debug = info makes stunnel log the negotiated protocol and cipher (once per connection). */
const info = (c: string) => c.replace('debug = notice', 'debug = info');

const VARIANTS: Variant[] = [
  { name: 'as rendered', edit: (c) => c },
  { name: 'no TCP_NODELAY', edit: drop(/TCP_NODELAY/) },
  { name: 'SO_SNDBUF/SO_RCVBUF 4 MiB l+r', edit: add('socket = l:SO_SNDBUF=4194304', 'socket = l:SO_RCVBUF=4194304', 'socket = r:SO_SNDBUF=4194304', 'socket = r:SO_RCVBUF=4194304') },
  { name: 'TLS1.3 AES-128-GCM', edit: add('ciphersuites = TLS_AES_128_GCM_SHA256') },
  { name: 'TLS1.3 CHACHA20-POLY1305', edit: add('ciphersuites = TLS_CHACHA20_POLY1305_SHA256') },
  { name: 'TLS1.3 AES-256-GCM', edit: add('ciphersuites = TLS_AES_256_GCM_SHA384') },
  { name: 'AES-128-GCM + 4 MiB buffers', edit: both(add('ciphersuites = TLS_AES_128_GCM_SHA256'), add('socket = l:SO_SNDBUF=4194304', 'socket = l:SO_RCVBUF=4194304', 'socket = r:SO_SNDBUF=4194304', 'socket = r:SO_RCVBUF=4194304')) },
];

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

/** CPU seconds (user + system) of process `pid`, itself and its reaped children. */
function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // Fields after "comm)": state is [0]; utime, stime, cutime, cstime are fields 14..17 of stat(5).
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICK;
}

/** Waits until `pid` has no live children (the daemon reaped its per-connection child). */
async function childrenReaped(pid: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const kids = readdirSync(`/proc/${pid}/task`).map((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim()).join('');
    if (kids === '') return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `argv` in `ns` under /usr/bin/time; resolves with wall seconds and the client's CPU seconds. */
function timed(ns: string, argv: string[], timeFile: string): Promise<{ wall: number; cpu: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns, '/usr/bin/time', '-f', '%e %U %S', '-o', timeFile, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${argv.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      const [e, u, s] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
      resolve({ wall: e!, cpu: u! + s! });
    });
  });
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

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let mib = 1024;
  let repeat = 5;
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--mib') mib = Number(argv[i + 1]);
    else if (argv[i] === '--repeat') repeat = Number(argv[i + 1]);
    else throw new Error(`unknown argument ${argv[i]} (use --mib N, --repeat N)`);
  }
  const work = mkdtempSync('/tmp/ferry-stv-');
  sh('mount', ['-t', 'tmpfs', '-o', `size=${mib * 2 + 256}m`, 'tmpfs', work]);
  const net = createNetnsPair('ferrys');
  const procs: ChildProcess[] = [];
  /** Starts a long-lived process in `ns` (ip netns exec execs it, so the pid is the process's own). */
  const bg = (ns: string, args: string[], log?: string): number => {
    const p = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'ignore', log ? openSync(log, 'w') : 'ignore'] });
    procs.push(p);
    return p.pid!;
  };
  try {
    const src = join(work, 'src');
    const dst = join(work, 'dst');
    mkdirSync(src);
    mkdirSync(dst);
    const fd = openSync(join(src, 'random.bin'), 'w');
    for (let i = 0; i < mib; i += 8) writeSync(fd, randomBytes(Math.min(8, mib - i) * 1024 * 1024));
    closeSync(fd);

    // TLS material as Ferry generates it (server cert for the destination IP, client cert).
    const migrationId = 'stv';
    const endpoint = createEndpoint({ type: 'ClusterIP', migrationId, namespace: 'dst', backendPort: 8443, port: 8443 });
    const address = { host: net.destinationIP, port: 8443 };
    const credentials = createTransferCredentials(migrationId, endpoint, address);
    const nt = createNamespaceTransfer({
      migrationId, sourceNamespace: 'src', destinationNamespace: 'dst', volumes: [{ sourcePVC: 'data', destinationPVC: 'data' }],
      transfer: createRsyncTransfer({}), transport: createStunnelTransport(), endpoint, security: 'preserve-ownership', image: 'local',
    });
    const tlsDir = (side: 'srv' | 'cli', objs: { kind?: string; metadata?: { name?: string } }[]) => {
      const d = join(work, side);
      mkdirSync(d);
      const s = objs.find((o) => o.kind === 'Secret' && o.metadata!.name!.endsWith(`${side}-tls`)) as V1Secret;
      for (const [k, v] of Object.entries(secretValues(s))) writeFileSync(join(d, k), v, { mode: 0o600 });
      return { cert: join(d, 'tls.crt'), key: join(d, 'tls.key'), ca: join(d, 'ca.crt') };
    };
    const srvPaths = tlsDir('srv', nt.destinationObjects(credentials));
    const cliPaths = tlsDir('cli', nt.sourceObjects('data', address, credentials, { final: true }));

    const conf = join(work, 'rsyncd.conf');
    writeFileSync(conf, `use chroot = yes\nuid = 0\ngid = 0\nnumeric ids = yes\nmunge symlinks = no\nreverse lookup = no\n[data]\npath = ${dst}\nread only = no\n`);
    const plainDaemon = bg(net.destination, ['rsync', '--daemon', '--no-detach', `--address=${net.destinationIP}`, '--port=2873', `--config=${conf}`]);
    const tlsDaemon = bg(net.destination, ['rsync', '--daemon', '--no-detach', '--address=127.0.0.1', '--port=2875', `--config=${conf}`]);
    await waitPort(net.source, net.destinationIP, 2873);
    await waitPort(net.destination, '127.0.0.1', 2875);

    const flags = rsyncClientArgs(validateRsyncOptions({}), { final: true, root: true });
    const paths: { name: string; argv: string[]; pids: number[] }[] = [
      { name: 'plain rsync daemon', argv: ['rsync', ...flags, `${src}/`, `rsync://${net.destinationIP}:2873/data/`], pids: [plainDaemon] },
      { name: 'plain, --whole-file', argv: ['rsync', ...flags, '--whole-file', `${src}/`, `rsync://${net.destinationIP}:2873/data/`], pids: [plainDaemon] },
      { name: 'plain, no --sparse', argv: ['rsync', ...flags.filter((f) => f !== '--sparse'), `${src}/`, `rsync://${net.destinationIP}:2873/data/`], pids: [plainDaemon] },
    ];
    for (const [i, v] of VARIANTS.entries()) {
      const sconf = join(work, `srv-${i}.conf`);
      const cconf = join(work, `cli-${i}.conf`);
      writeFileSync(sconf, info(v.edit(renderStunnelServerConf(9000 + i, 2875, { paths: srvPaths }))));
      writeFileSync(cconf, info(v.edit(renderStunnelClientConf(9100 + i, { ...address, port: 9000 + i }, { paths: cliPaths }))));
      const sp = bg(net.destination, ['stunnel', sconf], join(work, `srv-${i}.log`));
      const cp = bg(net.source, ['stunnel', cconf], join(work, `cli-${i}.log`));
      await waitPort(net.source, '127.0.0.1', 9100 + i);
      paths.push({ name: `stunnel: ${v.name}`, argv: ['rsync', ...flags, `${src}/`, `rsync://127.0.0.1:${9100 + i}/data/`], pids: [tlsDaemon, sp, cp] });
    }

    const samples = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    const cpus = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    const timeFile = join(work, 'time.out');
    for (let r = 0; r < repeat; r++) {
      for (const p of paths) {
        sh('bash', ['-c', `find ${dst} -mindepth 1 -delete`]);
        for (const pid of p.pids) await childrenReaped(pid);
        const before = p.pids.map(cpuOf);
        const t = await timed(net.source, p.argv, timeFile);
        for (const pid of p.pids) await childrenReaped(pid);
        const after = p.pids.map(cpuOf);
        samples.get(p.name)!.push(t.wall);
        cpus.get(p.name)!.push(t.cpu + after.reduce((acc, x, i) => acc + x - before[i]!, 0));
      }
      process.stderr.write(`round ${r + 1}/${repeat} done\n`);
    }
    const plain = median(samples.get(paths[0]!.name)!);
    const plainCpu = median(cpus.get(paths[0]!.name)!);
    const rows = paths.map((p) => {
      const xs = samples.get(p.name)!;
      const cs = cpus.get(p.name)!;
      const m = median(xs);
      const c = median(cs);
      return [p.name, m.toFixed(2), Math.min(...xs).toFixed(2), Math.max(...xs).toFixed(2), ((mib * 1.048576) / m).toFixed(0), (plain / m).toFixed(2), c.toFixed(2), `${Math.min(...cs).toFixed(2)}–${Math.max(...cs).toFixed(2)}`, (plainCpu / c).toFixed(2)];
    });
    const header = ['path', 'median s', 'min s', 'max s', 'MB/s', 'ratio to plain', 'CPU s', 'CPU min–max', 'CPU ratio (plain/path)'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    console.log(`\n${mib} MiB random file, ${repeat} interleaved rounds, ${new Date().toISOString()}, ${sh('nproc', []).trim()} CPUs, load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    console.log(`${fmt(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
    for (const r of rows) console.log(fmt(r));
    for (const [i, v] of VARIANTS.entries()) {
      const log = readFileSync(join(work, `cli-${i}.log`), 'utf8');
      const m = /(TLSv1\.\d) ciphersuite: (\S+)/.exec(log);
      console.log(`  ${v.name}: ${m ? `${m[1]} ${m[2]}` : 'cipher not logged'}`);
    }
  } finally {
    for (const p of procs.reverse()) p.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    net.destroy();
    try {
      sh('umount', ['-l', work]);
    } catch {
      /* not mounted */
    }
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
