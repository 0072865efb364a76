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
 * The CPU seconds are also split by process (rsync client, daemon, stunnel pair) to show where the
 * stunnel path's extra cost goes. Rsync-side variants (extra client flags) run through the pair as
 * rendered.
 *
 * With --resync N (N rounds, default 0) it then times a re-sync after 1 MiB appended to the file: the
 * destination holds the original (cp -p before every run), the source the grown copy, so rsync's delta
 * runs against the full basis; the table adds rsync's "Total bytes sent" (what the delta put on the
 * wire, must stay ≈ 1 MiB).
 *
 * --only REGEX keeps the paths whose name matches (plain rsync daemon, the baseline, always runs).
 *
 * With --pair N (N rounds, default 0) it also times each stunnel variant's pair alone, without rsync:
 * --mib MiB of zeros written by bash into the client stunnel, the server stunnel forwarding to a
 * discarding sink; the pair's CPU seconds per GiB, which rsync's own work on the same CPUs does not
 * blur. --repeat 0 skips the first-copy table.
 *
 *   sudo npx tsx bench/stunnel-variants.ts [--mib 1024] [--repeat 5] [--resync 5] [--pair 8] [--only REGEX]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
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
import { childrenReaped, cpuOf, timedWithCpu as timed } from './support/proc';

/** One stunnel variant: how it rewrites Ferry's rendered server and client configs. */
interface Variant {
  name: string;
  edit: (conf: string) => string;
}

/** One rsync-side variant: client flags added to Ferry's, through the stunnel pair as rendered. */
interface RsyncVariant {
  name: string;
  flags: string[];
  /** Also timed in the re-sync table. */
  resync?: boolean;
}

const drop = (re: RegExp) => (c: string) => c.split('\n').filter((l) => !re.test(l)).join('\n');
const add = (...lines: string[]) => (c: string) => `${c.trimEnd()}\n${lines.join('\n')}\n`;

/** debug = info makes stunnel log the negotiated protocol and cipher (once per connection). */
const info = (c: string) => c.replace('debug = notice', 'debug = info');

/** Sets the TLS 1.3 suite list (stunnel's `ciphersuites`, in order of preference): replaces the
 * rendered line, or adds one. */
const suites = (list: string) => (c: string) => (/^ciphersuites = /m.test(c) ? c.replace(/^ciphersuites = .*$/m, `ciphersuites = ${list}`) : add(`ciphersuites = ${list}`)(c));

const VARIANTS: Variant[] = [
  { name: 'as rendered', edit: (c) => c },
  { name: 'no TCP_NODELAY', edit: drop(/TCP_NODELAY/) },
  { name: 'SO_SNDBUF/SO_RCVBUF 4 MiB l+r', edit: add('socket = l:SO_SNDBUF=4194304', 'socket = l:SO_RCVBUF=4194304', 'socket = r:SO_SNDBUF=4194304', 'socket = r:SO_RCVBUF=4194304') },
  // OpenSSL 3.0's default TLS 1.3 order (AES-256-GCM first).
  { name: 'TLS1.3 AES-256-GCM first', edit: suites('TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256') },
  { name: 'TLS1.3 CHACHA20-POLY1305', edit: suites('TLS_CHACHA20_POLY1305_SHA256') },
];

const RSYNC_VARIANTS: RsyncVariant[] = [
  { name: '--whole-file', flags: ['--whole-file'], resync: true },
  { name: '--block-size=131072', flags: ['--block-size=131072'], resync: true },
  { name: '--checksum-choice=xxh3', flags: ['--checksum-choice=xxh3'] },
];

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
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
  let resync = 0;
  let only: RegExp | undefined;
  let pairRounds = 0;
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--mib') mib = Number(argv[i + 1]);
    else if (argv[i] === '--repeat') repeat = Number(argv[i + 1]);
    else if (argv[i] === '--resync') resync = Number(argv[i + 1]);
    else if (argv[i] === '--only') only = new RegExp(argv[i + 1]!);
    else if (argv[i] === '--pair') pairRounds = Number(argv[i + 1]);
    else throw new Error(`unknown argument ${argv[i]} (use --mib N, --repeat N, --resync N, --pair N, --only REGEX)`);
  }
  const work = mkdtempSync('/tmp/ferry-stv-');
  // Room: source and destination; with --resync also the grown copy and rsync's temporary file.
  sh('mount', ['-t', 'tmpfs', '-o', `size=${mib * (resync > 0 ? 4 : 2) + 256}m`, 'tmpfs', work]);
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
    // A path: the client's argv without the source directory, the processes whose CPU it costs (the
    // daemon first, then the stunnel pair if any), whether the re-sync table times it too.
    interface Path { name: string; argv: string[]; pids: number[]; resync: boolean }
    const plainUrl = `rsync://${net.destinationIP}:2873/data/`;
    const paths: Path[] = [
      { name: 'plain rsync daemon', argv: ['rsync', ...flags, plainUrl], pids: [plainDaemon], resync: true },
      { name: 'plain, --whole-file', argv: ['rsync', ...flags, '--whole-file', plainUrl], pids: [plainDaemon], resync: true },
      { name: 'plain, no --sparse', argv: ['rsync', ...flags.filter((f) => f !== '--sparse'), plainUrl], pids: [plainDaemon], resync: false },
    ];
    for (const [i, v] of VARIANTS.entries()) {
      const sconf = join(work, `srv-${i}.conf`);
      const cconf = join(work, `cli-${i}.conf`);
      writeFileSync(sconf, info(v.edit(renderStunnelServerConf(9000 + i, 2875, { paths: srvPaths }))));
      writeFileSync(cconf, info(v.edit(renderStunnelClientConf(9100 + i, { ...address, port: 9000 + i }, { paths: cliPaths }))));
      const sp = bg(net.destination, ['stunnel', sconf], join(work, `srv-${i}.log`));
      const cp = bg(net.source, ['stunnel', cconf], join(work, `cli-${i}.log`));
      await waitPort(net.source, '127.0.0.1', 9100 + i);
      paths.push({ name: `stunnel: ${v.name}`, argv: ['rsync', ...flags, `rsync://127.0.0.1:${9100 + i}/data/`], pids: [tlsDaemon, sp, cp], resync: i === 0 });
    }
    const rendered = paths.find((p) => p.name === `stunnel: ${VARIANTS[0]!.name}`)!;
    for (const rv of RSYNC_VARIANTS) {
      paths.push({ name: `stunnel, rsync ${rv.name}`, argv: [...rendered.argv.slice(0, -1), ...rv.flags, rendered.argv.at(-1)!], pids: rendered.pids, resync: rv.resync ?? false });
    }

    const chosen = paths.filter((p, i) => i === 0 || !only || only.test(p.name));
    const timeFile = join(work, 'time.out');
    const outFile = join(work, 'rsync.out');
    /** One measured run of path `p` from directory `from`: wall s, CPU s split by process, bytes sent. */
    const measure = async (p: Path, from: string) => {
      for (const pid of p.pids) await childrenReaped(pid);
      const before = p.pids.map(cpuOf);
      const argv = [...p.argv.slice(0, -1), `${from}/`, p.argv.at(-1)!];
      const t = await timed(net.source, argv, timeFile, outFile);
      for (const pid of p.pids) await childrenReaped(pid);
      const d = p.pids.map((pid, i) => cpuOf(pid) - before[i]!);
      const sent = /Total bytes sent: ([\d,]+)/.exec(readFileSync(outFile, 'utf8'));
      return { wall: t.wall, client: t.cpu, daemon: d[0]!, stunnel: d.slice(1).reduce((a, x) => a + x, 0), sent: sent ? Number(sent[1]!.replace(/,/g, '')) : NaN };
    };
    type Sample = Awaited<ReturnType<typeof measure>>;
    /** Runs every path `rounds` times, interleaved, `prepare` before each run; prints the table. */
    const table = async (title: string, list: Path[], rounds: number, from: string, prepare: () => void) => {
      const samples = new Map<string, Sample[]>(list.map((p) => [p.name, []]));
      for (let r = 0; r < rounds; r++) {
        for (const p of list) {
          prepare();
          samples.get(p.name)!.push(await measure(p, from));
        }
        process.stderr.write(`${title}: round ${r + 1}/${rounds} done\n`);
      }
      const cpuOfSample = (x: Sample) => x.client + x.daemon + x.stunnel;
      const plain = median(samples.get(list[0]!.name)!.map((x) => x.wall));
      const plainCpu = median(samples.get(list[0]!.name)!.map(cpuOfSample));
      const rows = list.map((p) => {
        const xs = samples.get(p.name)!;
        const walls = xs.map((x) => x.wall);
        const cs = xs.map(cpuOfSample);
        const m = median(walls);
        const c = median(cs);
        return [
          p.name, m.toFixed(2), `${Math.min(...walls).toFixed(2)}–${Math.max(...walls).toFixed(2)}`, ((mib * 1.048576) / m).toFixed(0), (plain / m).toFixed(2),
          c.toFixed(2), `${Math.min(...cs).toFixed(2)}–${Math.max(...cs).toFixed(2)}`, (plainCpu / c).toFixed(2),
          median(xs.map((x) => x.client)).toFixed(2), median(xs.map((x) => x.daemon)).toFixed(2), median(xs.map((x) => x.stunnel)).toFixed(2),
          (median(xs.map((x) => x.sent)) / 2 ** 20).toFixed(2),
        ];
      });
      const header = ['path', 'median s', 'min–max s', 'MB/s', 'ratio to plain', 'CPU s', 'CPU min–max', 'CPU ratio (plain/path)', 'CPU client', 'CPU daemon', 'CPU stunnels', 'sent MiB'];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
      console.log(`\n${title}, ${rounds} interleaved rounds, ${new Date().toISOString()}, ${sh('nproc', []).trim()} CPUs, load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
      console.log(`${fmt(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
      for (const r of rows) console.log(fmt(r));
    };
    const file = join(src, 'random.bin');
    if (repeat > 0) await table(`${mib} MiB random file, first copy`, chosen, repeat, src, () => sh('bash', ['-c', `find ${dst} -mindepth 1 -delete`]));
    if (resync > 0) {
      const grown = join(work, 'grown');
      mkdirSync(grown);
      sh('cp', [file, join(grown, 'random.bin')]);
      const gfd = openSync(join(grown, 'random.bin'), 'a');
      writeSync(gfd, randomBytes(1024 * 1024));
      closeSync(gfd);
      // The destination holds the original file (its size and mtime differ from the grown copy's).
      const prepare = () => sh('bash', ['-c', `find ${dst} -mindepth 1 -delete && cp -p ${file} ${dst}/`]);
      await table(`${mib} MiB random file + 1 MiB appended, re-sync against the original`, chosen.filter((p) => p.resync), resync, grown, prepare);
    }
    if (pairRounds > 0) {
      // The pair alone: a second pair per variant, its server forwarding to a sink that discards.
      const sinkPort = 2876;
      bg(net.destination, [process.execPath, '-e', `require('net').createServer((s) => s.resume()).listen(${sinkPort}, '127.0.0.1')`]);
      await waitPort(net.destination, '127.0.0.1', sinkPort);
      const pairs: { name: string; port: number; pids: number[]; cpu: number[]; wall: number[] }[] = [];
      for (const [i, v] of VARIANTS.entries()) {
        if (only && !only.test(`stunnel: ${v.name}`)) continue;
        const sconf = join(work, `pair-srv-${i}.conf`);
        const cconf = join(work, `pair-cli-${i}.conf`);
        writeFileSync(sconf, v.edit(renderStunnelServerConf(9200 + i, sinkPort, { paths: srvPaths })));
        writeFileSync(cconf, v.edit(renderStunnelClientConf(9300 + i, { ...address, port: 9200 + i }, { paths: cliPaths })));
        const sp = bg(net.destination, ['stunnel', sconf]);
        const cp = bg(net.source, ['stunnel', cconf]);
        await waitPort(net.source, '127.0.0.1', 9300 + i);
        pairs.push({ name: `stunnel: ${v.name}`, port: 9300 + i, pids: [sp, cp], cpu: [], wall: [] });
      }
      const pairCpu = (x: (typeof pairs)[number]) => x.pids.reduce((a, pid) => a + cpuOf(pid), 0);
      for (let r = 0; r < pairRounds; r++) {
        for (const x of pairs) {
          const before = pairCpu(x);
          const t = await timed(net.source, ['bash', '-c', `head -c ${mib}M /dev/zero > /dev/tcp/127.0.0.1/${x.port}`], timeFile, outFile);
          // bash returns once the kernel has the bytes; the pair is still forwarding them.
          await new Promise((res) => setTimeout(res, 500));
          x.cpu.push((pairCpu(x) - before) / (mib / 1024));
          x.wall.push(t.wall);
        }
        process.stderr.write(`pair alone: round ${r + 1}/${pairRounds} done\n`);
      }
      console.log(`\nThe stunnel pair alone, ${mib} MiB of zeros into a discarding sink, ${pairRounds} interleaved rounds, load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
      for (const x of pairs) {
        console.log(`  ${x.name.padEnd(40)} pair CPU s/GiB ${median(x.cpu).toFixed(3)} (${Math.min(...x.cpu).toFixed(2)}–${Math.max(...x.cpu).toFixed(2)}), writer's wall ${median(x.wall).toFixed(2)} s`);
      }
    }
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
