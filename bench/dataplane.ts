/**
 * Data-plane benchmark: throughput (MB/s) and files/s of
 *   1. plain rsync daemon (no TLS; the baseline),
 *   2. Ferry's path: the generated server and client pods (rsync daemon + stunnel, rsync + stunnel)
 *      run by LocalPod exactly as generated,
 *   3. rsync + stunnel with VolSync's rsync flags (-aAhHSxz: always compressed), through the same
 *      stunnel pair,
 * on the same data in one run, between two network namespaces, source and destination on tmpfs so
 * the disk does not dominate. Prints a table per scenario with each path's ratio to plain measured in
 * the same run. Paths are interleaved within each round (plain, Ferry, VolSync flags, plain, …) so
 * load from other processes hits them alike; figures are the median of the rounds, with min–max.
 * No pass/fail.
 *
 * Scenarios (--scenarios, comma-separated; default large,small,resync):
 * - large: one random file of --large-mib MiB, first copy into an empty destination;
 * - small: --small-files × 4 KiB files, first copy;
 * - resync: a no-change re-sync of the small-files tree (plain vs Ferry), seconds;
 * - delta (slow, off by default): a --delta-mib (2048) MiB random file copied, then 1 MiB appended and
 *   re-synced; bytes on the wire (both directions, the source namespace's veth) and rsync's
 *   "Total bytes sent" for the re-sync, plain vs Ferry;
 * - million (slow, off by default; also --million): a tree of 1,000,000 tiny files (one directory of
 *   100,000 entries, the rest 900 leaf directories of 1,000 files six levels deep), first copy and
 *   no-change re-sync once, plain vs Ferry, with the peak RSS (VmHWM) of the rsync processes on each
 *   side (polled from /proc every 200 ms, by network namespace);
 * - streams (off by default): parallel rsync streams within one volume (issue 9 §2), the design of
 *   bench/support/streams.ts: N = --streams-n (1,2,4) concurrent rsync clients, each given a share of
 *   the top-level entries balanced by bytes, plus one root pass deleting vanished top-level entries;
 *   plain rsync daemon and Ferry's rendered stunnel pair (its server pod, its stunnel client run by
 *   hand, Ferry's client flags), on a many-files tree (--streams-files × 4 KiB) and a few-large-files
 *   tree (--streams-mib MiB in 6 files), first copy and no-change re-sync, with CPU seconds; verifies
 *   each N once (trees equal after a first copy and after deletes at the source).
 *
 *   sudo npm run bench:dataplane -- [--large-mib 1024] [--small-files 20000] [--repeat 2]
 *                                   [--scenarios large,small,resync,delta,million,streams] [--delta-mib 2048] [--million]
 *                                   [--streams-files 32000] [--streams-mib 1024] [--streams-n 1,2,4]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, closeSync, openSync, writeSync, readFileSync, readdirSync, readlinkSync, statSync, linkSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { KubernetesObject, V1Pod, V1Secret, V1ConfigMap } from '@kubernetes/client-node';
import { createEndpoint } from '../src/statetransfer/endpoint';
import { createNamespaceTransfer, createTransferCredentials } from '../src/statetransfer/namespace-transfer';
import { secretValues } from '../src/statetransfer/objects';
import { createRsyncTransfer } from '../src/statetransfer/transfer/rsync';
import { rsyncClientArgs, validateRsyncOptions } from '../src/statetransfer/transfer/rsync/options';
import { createStunnelTransport, STUNNEL_PATHS } from '../src/statetransfer/transport/stunnel';
import { LocalPod, removeWorkDir } from '../test/support/local-pod';
import { createNetnsPair, type NetnsPair } from '../test/support/netns';
import { childrenReaped, cpuOf, timedWithCpu } from './support/proc';
import { partitionEntries, rootPassArgs, streamFilterArgs } from './support/streams';

/** Bytes in each file of the million-file tree (tmpfs stores each in a page of its own). */
const MILLION_FILE_BYTES = 64;

const SCENARIOS = ['large', 'small', 'resync', 'delta', 'million', 'streams'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Args {
  largeMiB: number;
  smallFiles: number;
  repeat: number;
  scenarios: Set<Scenario>;
  deltaMiB: number;
  /** streams scenario: files of the many-files tree, MiB of the few-large-files tree, the stream counts. */
  streamsFiles: number;
  streamsMiB: number;
  streamsN: number[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { largeMiB: 1024, smallFiles: 20000, repeat: 2, scenarios: new Set(['large', 'small', 'resync']), deltaMiB: 2048, streamsFiles: 32000, streamsMiB: 1024, streamsN: [1, 2, 4] };
  const usage = `use --large-mib N, --small-files N, --repeat N, --scenarios ${SCENARIOS.join(',')}, --delta-mib N, --million, --streams-files N, --streams-mib N, --streams-n 1,2,4`;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--million') {
      a.scenarios.add('million');
      continue;
    }
    const raw = argv[++i];
    if (raw === undefined) throw new Error(`${flag} needs a value (${usage})`);
    const v = Number(raw);
    if (flag === '--scenarios') {
      const list = raw.split(',').filter((x) => x !== '');
      const bad = list.filter((x) => !(SCENARIOS as readonly string[]).includes(x));
      if (bad.length > 0) throw new Error(`unknown scenario(s) ${bad.join(', ')} (${usage})`);
      a.scenarios = new Set(list as Scenario[]);
      continue;
    }
    if (flag === '--streams-n') {
      a.streamsN = raw.split(',').map(Number);
      if (a.streamsN.some((n) => !Number.isSafeInteger(n) || n < 1) || !a.streamsN.includes(1)) throw new Error(`--streams-n must list whole numbers ≥ 1, 1 among them, got ${raw}`);
      continue;
    }
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${flag} must be a whole number ≥ 1, got ${raw}`);
    if (flag === '--large-mib') a.largeMiB = v;
    else if (flag === '--small-files') a.smallFiles = v;
    else if (flag === '--repeat') a.repeat = v;
    else if (flag === '--delta-mib') a.deltaMiB = v;
    else if (flag === '--streams-files') a.streamsFiles = v;
    else if (flag === '--streams-mib') a.streamsMiB = v;
    else throw new Error(`unknown argument ${flag} (${usage})`);
  }
  return a;
}

/** Median of a non-empty list. */
function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Prints one table (left-aligned columns). */
function printTable(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ').trimEnd();
  console.log(`\n${title}\n${fmt(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of rows) console.log(fmt(r));
}

/** Writes `mib` MiB of random bytes to `file` (appending when `append`). */
function writeRandom(file: string, mib: number, append = false): void {
  const fd = openSync(file, append ? 'a' : 'w');
  for (let i = 0; i < mib; i += 8) writeSync(fd, randomBytes(Math.min(8, mib - i) * 1024 * 1024));
  closeSync(fd);
}

/** Bytes received + sent by the non-loopback interfaces of network namespace `ns` (/proc/net/dev). */
function wireBytes(ns: string): number {
  const text = sh('ip', ['netns', 'exec', ns, 'cat', '/proc/net/dev']);
  let total = 0;
  for (const line of text.split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (!rest || name!.trim() === 'lo') continue;
    const f = rest.trim().split(/\s+/).map(Number);
    total += f[0]! + f[8]!;
  }
  return total;
}

/**
 * Polls /proc every `periodMs` for processes named rsync and keeps, per network namespace inode, the
 * largest VmHWM (peak RSS, KiB) seen of any one process and the sum of the per-process peaks.
 * stop() returns { [netnsInode]: { maxKiB, sumKiB, processes } }.
 */
function rssWatcher(periodMs = 200): { stop: () => Map<number, { maxKiB: number; sumKiB: number; processes: number }> } {
  const peaks = new Map<number, { ns: number; kib: number }>();
  const poll = () => {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'rsync') continue;
        const ns = Number(/\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/net`))![1]);
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        if (!m) continue;
        const prev = peaks.get(Number(pid));
        peaks.set(Number(pid), { ns, kib: Math.max(prev?.kib ?? 0, Number(m[1])) });
      } catch {
        /* exited meanwhile */
      }
    }
  };
  poll();
  const timer = setInterval(poll, periodMs);
  return {
    stop: () => {
      clearInterval(timer);
      poll();
      const out = new Map<number, { maxKiB: number; sumKiB: number; processes: number }>();
      for (const { ns, kib } of peaks.values()) {
        const o = out.get(ns) ?? { maxKiB: 0, sumKiB: 0, processes: 0 };
        out.set(ns, { maxKiB: Math.max(o.maxKiB, kib), sumKiB: o.sumKiB + kib, processes: o.processes + 1 });
      }
      return out;
    },
  };
}

/** The inode of a named network namespace (what /proc/<pid>/ns/net links to). */
function netnsInode(ns: string): number {
  return statSync(`/run/netns/${ns}`).ino;
}

/** MemAvailable in MiB. */
function memAvailableMiB(): number {
  return Number(/MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) / 1024;
}

/**
 * Builds the million-file tree under `root` with a short Python script (C-speed enough: ≈ 1 M
 * open/write/close calls): `wide/` holds 100,000 files; `deep/a0..a9/b0..b9/c0..c8/d/e/` are 900 leaf
 * directories of 1,000 files each. Every file holds `bytes` bytes. Returns the number of files.
 */
function makeMillion(root: string, bytes: number): number {
  const py = [
    'import os, sys',
    'root, n = sys.argv[1], int(sys.argv[2])',
    'data = os.urandom(n)',
    'def fill(d, count, prefix):',
    '    os.makedirs(d, exist_ok=True)',
    '    for i in range(count):',
    '        fd = os.open(os.path.join(d, prefix + str(i)), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)',
    '        os.write(fd, data)',
    '        os.close(fd)',
    "fill(os.path.join(root, 'wide'), 100000, 'w')",
    'for a in range(10):',
    '    for b in range(10):',
    '        for c in range(9):',
    "            fill(os.path.join(root, 'deep', 'a%d' % a, 'b%d' % b, 'c%d' % c, 'd', 'e'), 1000, 'f')",
  ].join('\n');
  execFileSync('python3', ['-c', py, root, String(bytes)], { stdio: 'inherit' });
  return 1_000_000;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30 });
}

function makeData(root: string, a: Args): { large: string; small: string; smallBytes: number } {
  const large = join(root, 'large');
  const small = join(root, 'small');
  mkdirSync(large, { recursive: true });
  mkdirSync(small, { recursive: true });
  if (a.scenarios.has('large')) writeRandom(join(large, 'random.bin'), a.largeMiB);
  let smallBytes = 0;
  if (!a.scenarios.has('small') && !a.scenarios.has('resync')) return { large, small, smallBytes };
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

/** Ferry's generated transfer of one PVC between a pair's namespaces, as started by startFerryPair. */
interface FerryPair {
  nt: ReturnType<typeof createNamespaceTransfer>;
  address: { host: string; port: number };
  credentials: ReturnType<typeof createTransferCredentials>;
  /** The rsync password of the transfer, in a file for `rsync --password-file`. */
  passwordFile: string;
  /** Port of the hand-run stunnel client on the source's 127.0.0.1. */
  clientPort: number;
  /** Pid of the hand-run stunnel client. */
  clientStunnelPid: number;
  /** Stops the server pod and the stunnel client. */
  stop: () => Promise<void>;
}

/**
 * Ferry's transfer of PVC `data` (preserve-ownership, stunnel, ClusterIP endpoint on
 * `net.destinationIP`:8443): starts its generated server pod on `dst` with LocalPod (after `edit`
 * has rewritten its objects, when given) and runs its rendered stunnel client config by hand in the
 * source namespace on 127.0.0.1:`clientPort`, with the client's TLS files and the rsync password
 * written under `work`/`name`-client.
 */
async function startFerryPair(net: NetnsPair, dst: string, work: string, clientPort: number, name = 'ferry', edit?: (objects: KubernetesObject[]) => KubernetesObject[]): Promise<FerryPair> {
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
  const generated = nt.destinationObjects(credentials);
  const dobjs = edit ? edit(generated) : generated;
  const server = new LocalPod({ pod: dobjs.find((o) => o.kind === 'Pod') as V1Pod, objects: dobjs, pvcs: { data: dst }, netns: net.destination, workDir: join(work, `${name}-server`) });
  await server.start();
  await server.ready();

  const sobjs = nt.sourceObjects('data', address, credentials, { final: true });
  const dir = join(work, `${name}-client`);
  mkdirSync(dir);
  const tls = secretValues(sobjs.find((o) => o.kind === 'Secret' && o.metadata!.name!.endsWith('cli-tls')) as V1Secret);
  for (const [k, v] of Object.entries(tls)) writeFileSync(join(dir, k), v);
  const stunnelConf = (sobjs.find((o) => o.kind === 'ConfigMap') as V1ConfigMap).data!['stunnel.conf']!.replace(/\/etc\/ferry\/tls\//g, `${dir}/`).replace(STUNNEL_PATHS.key, `${dir}/tls.key`).replace('127.0.0.1:2222', `127.0.0.1:${clientPort}`);
  writeFileSync(join(dir, 'stunnel.conf'), stunnelConf);
  const client = spawn('ip', ['netns', 'exec', net.source, 'stunnel', join(dir, 'stunnel.conf')], { stdio: 'ignore' });
  await waitPort(net.source, '127.0.0.1', clientPort);
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, credentials.password, { mode: 0o600 });
  return {
    nt,
    address,
    credentials,
    passwordFile,
    clientPort,
    clientStunnelPid: client.pid!,
    stop: async () => {
      client.kill('SIGTERM');
      await server.stop();
    },
  };
}

/**
 * Plain rsync daemon on `net.destinationIP`:2873 serving `dst` as module `data` (the baseline): the
 * settings of Ferry's daemon that change its work per file (chroot, numeric ids, no symlink munging,
 * no reverse lookup); no TLS, no auth, no connection limit. Its config goes to `work`.
 */
function startPlainDaemon(net: NetnsPair, dst: string, work: string): { pid: number; stop: () => void } {
  const conf = join(work, `plain-rsyncd-${net.destination}.conf`);
  writeFileSync(conf, `use chroot = yes\nuid = 0\ngid = 0\nnumeric ids = yes\nmunge symlinks = no\nreverse lookup = no\n[data]\npath = ${dst}\nread only = no\n`);
  const p = spawn('ip', ['netns', 'exec', net.destination, 'rsync', '--daemon', '--no-detach', `--address=${net.destinationIP}`, '--port=2873', `--config=${conf}`], { stdio: 'ignore' });
  return { pid: p.pid!, stop: () => p.kill('SIGTERM') };
}

/** Shares of the many-files tree's files per top-level directory d00..d11: uneven, as in an
 * application's volume, so that the balancing by bytes has work to do. */
const MANY_WEIGHTS = [9, 7, 6, 5, 4, 3, 2, 2, 1, 1, 1, 1];

/**
 * The streams scenario's many-files tree under `root`: `files` × 4 KiB random files in the top-level
 * directories d00..d11 (MANY_WEIGHTS shares, 500 files per subdirectory), a top-level file, top-level
 * entries whose names need escaping in filter rules (`st*r`, `br[a]ck/`, `sp ace/`, 3 files each at
 * most), and one hard link between d00/hl-a and d11/hl-b (to see whether the streams keep it).
 */
function makeManyFiles(root: string, files: number): void {
  mkdirSync(root, { recursive: true });
  const total = MANY_WEIGHTS.reduce((x, y) => x + y, 0);
  MANY_WEIGHTS.forEach((w, d) => {
    const count = Math.round((files * w) / total);
    for (let i = 0; i < count; i++) {
      const dir = join(root, `d${String(d).padStart(2, '0')}`, `s${Math.floor(i / 500)}`);
      if (i % 500 === 0) mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `f${i}`), randomBytes(4096));
    }
  });
  writeFileSync(join(root, 'README'), randomBytes(4096));
  writeFileSync(join(root, 'st*r'), randomBytes(4096));
  for (const d of ['br[a]ck', 'sp ace']) {
    mkdirSync(join(root, d));
    for (let i = 0; i < 3; i++) writeFileSync(join(root, d, `f${i}`), randomBytes(4096));
  }
  writeFileSync(join(root, 'brack'), randomBytes(4096)); // what an unescaped 'br[a]ck' would match
  writeFileSync(join(root, 'd00', 'hl-a'), randomBytes(4096));
  linkSync(join(root, 'd00', 'hl-a'), join(root, 'd11', 'hl-b'));
}

/** The streams scenario's few-large-files tree under `root`: six random files totalling `mib` MiB,
 * two at the top level (25 %, 15 %), two in media/ (20 %, 10 %), two in archive/ (20 %, 10 %). */
function makeFewLarge(root: string, mib: number): void {
  for (const [file, pct] of [['big-0.bin', 25], ['big-1.bin', 15], ['media/a.bin', 20], ['media/b.bin', 10], ['archive/c.bin', 20], ['archive/d.bin', 10]] as const) {
    mkdirSync(join(root, file, '..'), { recursive: true });
    writeRandom(join(root, file), Math.max(1, Math.round((mib * pct) / 100)));
  }
}

/** Pids of the processes in network namespace `ns` whose argv (joined by spaces) matches `re`,
 * leaving out those whose parent matches too (a daemon's per-connection children). */
function pidsIn(ns: string, re: RegExp): number[] {
  const ino = netnsInode(ns);
  const out: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (Number(/\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/net`))![1]) !== ino) continue;
      if (re.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '))) out.push(Number(pid));
    } catch {
      /* exited meanwhile */
    }
  }
  const parent = (pid: number) => Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return out.filter((pid) => !out.includes(parent(pid)));
}

/**
 * What differs between trees `a` and `b` ('' when nothing): each entry's type, mode, owner, group,
 * size, mtime and link target (find -printf), and file contents (diff -rq, links not followed).
 * Directory mtimes count to the second: rsync leaves a directory's time alone when it already matches
 * to the second (seen here with plain `rsync -a` too: a directory made and copied within one second
 * keeps the copy's sub-second part), and this benchmark copies trees it has just changed.
 */
function treeDifference(a: string, b: string): string {
  const manifest = (d: string) =>
    sh('bash', ['-c', `cd '${d}' && find . -printf '%P\\t%y\\t%m\\t%U\\t%G\\t%s\\t%T@\\t%l\\n' | LC_ALL=C sort`])
      .split('\n')
      .map((l) => l.split('\t'))
      .map((f) => (f[1] === 'd' ? [...f.slice(0, 6), f[6]!.replace(/\..*$/, ''), ...f.slice(7)] : f).join('\t'));
  const ma = manifest(a);
  const mb = new Set(manifest(b));
  const sa = new Set(ma);
  const diffs = [...ma.filter((l) => !mb.has(l)).map((l) => `only in source: ${l}`), ...[...mb].filter((l) => !sa.has(l)).map((l) => `only in destination: ${l}`)];
  try {
    sh('diff', ['-rq', '--no-dereference', a, b]);
  } catch (e) {
    diffs.push(String((e as { stdout?: string }).stdout ?? e));
  }
  return diffs.slice(0, 6).join('\n');
}

/** One run of a streams path: wall seconds in all and by step, CPU seconds of every process, groups. */
interface StreamsSample {
  wall: number;
  /** Listing the top-level entries, du and the partition (0 for one stream). */
  plan: number;
  /** The root pass that deletes vanished top-level entries (0 for one stream). */
  root: number;
  /** The streams, from the first start to the last exit. */
  streams: number;
  /** CPU seconds: the rsync clients and du, the daemon and its children, the stunnel pair if any. */
  cpu: number;
  /** MiB each stream was given. */
  groupMiB: number[];
}

/**
 * The streams scenario (issue 9 §2): N concurrent rsync clients on one volume, the tree partitioned
 * by bench/support/streams.ts, for each N of `a.streamsN`, plain rsync daemon and Ferry's rendered
 * stunnel pair, on a many-files tree and a few-large-files tree, first copy and no-change re-sync.
 * Runs in a network-namespace pair of its own with its own server pod, whose rsyncd.conf allows
 * max(N) connections (the generated one allows 1). Prints a verification table and the timings.
 */
async function streamsScenario(work: string, a: Args): Promise<void> {
  const base = join(work, 'streams');
  const trees = [
    { key: 'many', name: `many files (${a.streamsFiles} × 4 KiB in 12 top-level dirs + 5 top-level entries)`, dir: join(base, 'src-many'), nested: 'd00' },
    { key: 'few', name: `few large files (6 random files, ${a.streamsMiB} MiB: 2 at the top level, 2 in each of 2 dirs)`, dir: join(base, 'src-few'), nested: 'media' },
  ];
  let t0 = Date.now();
  makeManyFiles(trees[0]!.dir, a.streamsFiles);
  makeFewLarge(trees[1]!.dir, a.streamsMiB);
  console.log(`streams: trees built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const dst = join(base, 'dst');
  mkdirSync(dst);
  const maxN = Math.max(...a.streamsN);
  const net = createNetnsPair('ferryp');
  const stops: (() => unknown)[] = [];
  try {
    // The one change N streams need in Ferry's server: its module admits one connection.
    const ferry = await startFerryPair(net, dst, base, 2874, 'streams', (objects) =>
      objects.map((o) => {
        const conf = (o as V1ConfigMap).data?.['rsyncd.conf'];
        if (o.kind !== 'ConfigMap' || conf === undefined) return o;
        if (!/^max connections = 1$/m.test(conf)) throw new Error('the generated rsyncd.conf has no "max connections = 1" to raise');
        return { ...o, data: { 'rsyncd.conf': conf.replace(/^max connections = 1$/m, `max connections = ${maxN}`) } } as V1ConfigMap;
      }),
    );
    stops.push(() => ferry.stop());
    const plain = startPlainDaemon(net, dst, base);
    stops.push(plain.stop);
    await waitPort(net.source, net.destinationIP, 2873);

    // Ferry's client flags, checked against its generated client pod's rsync command line.
    const flags = rsyncClientArgs(validateRsyncOptions({}), { final: true, root: true });
    const script = (ferry.nt.sourceObjects('data', ferry.address, ferry.credentials, { final: true }).find((o) => o.kind === 'Pod') as V1Pod).spec!.containers.find((c) => c.name === 'rsync')!.command![2]!;
    if (!script.includes(`rsync ${flags.join(' ')} --password-file=`)) throw new Error("rsyncClientArgs no longer matches the client pod's rsync command line");

    const serverPids = pidsIn(net.destination, /^rsync .*--daemon .*--port=2222|^stunnel/);
    if (serverPids.length !== 2) throw new Error(`expected the server pod's rsync daemon and stunnel, found pids ${serverPids.join(', ')}`);
    const paths = [
      { name: 'plain rsync daemon', url: `rsync://${net.destinationIP}:2873/data/`, extra: [] as string[], pids: [plain.pid] },
      { name: "Ferry's stunnel pair", url: `rsync://ferry@127.0.0.1:${ferry.clientPort}/data/`, extra: [`--password-file=${ferry.passwordFile}`], pids: [...serverPids, ferry.clientStunnelPid] },
    ];
    const scratch = join(base, 'scratch');
    mkdirSync(scratch);
    /** One sync of `src` into dst by `path` with `n` streams (n = 1: Ferry's single rsync as today). */
    const run = async (path: (typeof paths)[number], src: string, n: number): Promise<StreamsSample> => {
      const out = (tag: string) => [join(scratch, `${tag}.time`), join(scratch, `${tag}.out`)] as const;
      for (const pid of path.pids) await childrenReaped(pid);
      const before = path.pids.map(cpuOf);
      const start = process.hrtime.bigint();
      const since = () => Number(process.hrtime.bigint() - start) / 1e9;
      let cpu = 0;
      let groups: { entries: string[] | null; bytes: number }[] = [{ entries: null, bytes: NaN }];
      let plan = 0;
      let root = 0;
      if (n > 1) {
        const entries = readdirSync(src).filter((e) => e !== 'lost+found');
        const [tf, of] = out('du');
        const du = await timedWithCpu(net.source, ['du', '-s', '-B1', '--apparent-size', '-0', '--', ...entries.map((e) => join(src, e))], tf, of);
        cpu += du.cpu;
        const sizes = readFileSync(of, 'utf8').split('\0').filter((l) => l !== '').map((l) => {
          const [bytes, p] = l.split('\t') as [string, string];
          return { name: p.slice(src.length + 1), bytes: Number(bytes) };
        });
        groups = partitionEntries(sizes, n);
        plan = since();
        const [rtf, rof] = out('root');
        const r = await timedWithCpu(net.source, ['rsync', ...rootPassArgs(flags), ...path.extra, `${src}/`, path.url], rtf, rof);
        cpu += r.cpu;
        root = since() - plan;
      }
      const s0 = since();
      const streams = await Promise.all(groups.map((g, i) => timedWithCpu(net.source, ['rsync', ...flags, ...path.extra, ...(g.entries ? streamFilterArgs(g.entries) : []), `${src}/`, path.url], ...out(`stream-${i}`))));
      const wall = since();
      for (const s of streams) cpu += s.cpu;
      for (const pid of path.pids) await childrenReaped(pid);
      path.pids.forEach((pid, i) => (cpu += cpuOf(pid) - before[i]!));
      return { wall, plan, root, streams: wall - s0, cpu, groupMiB: groups.map((g) => g.bytes / 2 ** 20) };
    };
    const clearDst = () => sh('bash', ['-c', `find ${dst} -mindepth 1 -delete`]);

    // Verification, once per tree, N and path: a first copy with three entries more at the source
    // (a top-level directory, a top-level file, a nested file), compared; then those removed at the
    // source, a re-sync, compared again; and whether the hard link d00/hl-a = d11/hl-b was kept.
    const checks: string[][] = [];
    for (const tree of trees) {
      for (const n of a.streamsN) {
        for (const path of paths) {
          const extra = [join(tree.dir, 'zz-vanish'), join(tree.dir, 'vanish-top.txt'), join(tree.dir, tree.nested, 'vanish-nested.txt')];
          mkdirSync(extra[0]!);
          for (const f of ['a', 'b']) writeFileSync(join(extra[0]!, f), randomBytes(4096));
          writeFileSync(extra[1]!, randomBytes(4096));
          writeFileSync(extra[2]!, randomBytes(4096));
          clearDst();
          await run(path, tree.dir, n);
          const first = treeDifference(tree.dir, dst);
          for (const e of extra) rmSync(e, { recursive: true });
          await run(path, tree.dir, n);
          const after = treeDifference(tree.dir, dst);
          const gone = extra.filter((e) => existsSync(join(dst, e.slice(tree.dir.length + 1)))).length === 0;
          let link = '';
          if (tree.key === 'many') link = statSync(join(dst, 'd00', 'hl-a')).ino === statSync(join(dst, 'd11', 'hl-b')).ino ? 'kept' : 'NOT kept (two copies)';
          checks.push([tree.key, String(n), path.name, first === '' ? 'equal' : `DIFFERENT: ${first}`, after === '' && gone ? 'equal' : `DIFFERENT: ${after}`, link]);
        }
      }
    }
    printTable('streams: verification (first copy with 3 extra entries; then those deleted at the source and re-synced)', ['tree', 'N', 'path', 'first copy', 'after deletes + re-sync', 'hard link d00/hl-a = d11/hl-b'], checks);

    // Timings: rounds of (tree, N, path) interleaved; each a first copy into an empty destination,
    // then a no-change re-sync.
    const samples = new Map<string, { copy: StreamsSample[]; resync: StreamsSample[] }>();
    const key = (t: string, n: number, p: string) => `${t}|${n}|${p}`;
    for (let r = 0; r < a.repeat; r++) {
      t0 = Date.now();
      for (const tree of trees) {
        for (const n of a.streamsN) {
          for (const path of paths) {
            clearDst();
            const s = samples.get(key(tree.key, n, path.name)) ?? { copy: [], resync: [] };
            s.copy.push(await run(path, tree.dir, n));
            s.resync.push(await run(path, tree.dir, n));
            samples.set(key(tree.key, n, path.name), s);
          }
        }
      }
      console.log(`streams: round ${r + 1}/${a.repeat} in ${((Date.now() - t0) / 1000).toFixed(0)} s (load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
    }
    clearDst();
    const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
    for (const tree of trees) {
      const rows: string[][] = [];
      for (const sync of ['copy', 'resync'] as const) {
        for (const path of paths) {
          const one = median(samples.get(key(tree.key, 1, path.name))![sync].map((x) => x.wall));
          for (const n of a.streamsN) {
            const xs = samples.get(key(tree.key, n, path.name))![sync];
            const wall = median(xs.map((x) => x.wall));
            rows.push([
              sync === 'copy' ? 'first copy' : 'no-change re-sync',
              String(n),
              path.name,
              wall.toFixed(2),
              spread(xs.map((x) => x.wall)),
              (one / wall).toFixed(2),
              median(xs.map((x) => x.cpu)).toFixed(2),
              n > 1 ? `${median(xs.map((x) => x.plan)).toFixed(2)} / ${median(xs.map((x) => x.root)).toFixed(2)} / ${median(xs.map((x) => x.streams)).toFixed(2)}` : '',
              n > 1 ? xs[0]!.groupMiB.map((m) => m.toFixed(m < 10 ? 1 : 0)).join(' + ') : '',
            ]);
          }
        }
      }
      printTable(`streams: ${tree.name}`, ['sync', 'N', 'path', 'median s', 'min–max s', 'speed-up vs N=1', 'CPU s', 'plan / root pass / streams s', 'MiB per stream'], rows);
    }
    console.log(
      '(speed-up: the same path\'s N=1 median over this median. CPU s: rsync clients and du, the daemon and its children, the stunnel pair. ' +
        'N=1 is Ferry\'s single rsync as today; N>1 adds the plan (top-level listing, du, partition) and the root pass that deletes vanished top-level entries. ' +
        'Not kept with N>1: hard links between entries of different streams. One top-level entry is never split.)',
    );
  } finally {
    for (const s of stops.reverse()) await s();
    await new Promise((r) => setTimeout(r, 300));
    net.destroy();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark uses network and mount namespaces');
  const a = parseArgs(process.argv.slice(2));
  const work = mkdtempSync('/tmp/ferry-bench-');
  // Room: the large file twice, the small files twice (≈ 12 KiB each with metadata), the delta file
  // three times (source, destination, rsync's temporary copy), the million files twice (a page each
  // plus ≈ 1.5 KiB of inode and dentry, which tmpfs does not count in its size but memory does).
  let sizeMiB = 256;
  if (a.scenarios.has('large')) sizeMiB += Math.ceil(a.largeMiB * 2 * 1.3);
  if (a.scenarios.has('small') || a.scenarios.has('resync')) sizeMiB += Math.ceil(((a.smallFiles * 12 * 2) / 1024) * 1.3);
  if (a.scenarios.has('delta')) sizeMiB += a.deltaMiB * 3 + 16;
  // streams: both trees twice (the many files ≈ 12 KiB each with metadata), and rsync's temporary copies.
  if (a.scenarios.has('streams')) sizeMiB += Math.ceil(((a.streamsFiles * 12 * 2) / 1024) * 1.3) + a.streamsMiB * 3;
  let inodesMiB = 0;
  if (a.scenarios.has('million')) {
    sizeMiB += Math.ceil((2 * 1_000_000 * 4) / 1024);
    inodesMiB = Math.ceil((2 * 1_000_000 * 1.5) / 1024);
  }
  if (memAvailableMiB() < sizeMiB + inodesMiB + 4096) {
    throw new Error(
      `the chosen scenarios need about ${sizeMiB + inodesMiB} MiB of memory for their tmpfs trees and 4 GiB to spare; MemAvailable is ` +
        `${memAvailableMiB().toFixed(0)} MiB: drop a scenario (--scenarios) or free memory`,
    );
  }
  sh('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,nr_inodes=0`, 'tmpfs', work]);
  const net: NetnsPair = createNetnsPair('ferryb');
  const cleanups: (() => void)[] = [];
  try {
    console.log(`preparing data (tmpfs): ${[...a.scenarios].join(', ')}`);
    const data = makeData(join(work, 'src'), a);
    const dst = join(work, 'dst');
    mkdirSync(dst);

    // Ferry's server pod, as generated, and its rendered stunnel client run by hand (for the
    // VolSync-flags path) on 127.0.0.1:2874.
    const ferry = await startFerryPair(net, dst, work, 2874);
    cleanups.push(() => void ferry.stop());
    const { nt, address, credentials } = ferry;
    const pwFile = ferry.passwordFile;

    // Plain rsync daemon on the destination's address (baseline).
    cleanups.push(startPlainDaemon(net, dst, work).stop);
    await waitPort(net.source, net.destinationIP, 2873);

    const sobjs = nt.sourceObjects('data', address, credentials, { final: true });
    const clientPod = sobjs.find((o) => o.kind === 'Pod') as V1Pod;
    const ferryArgv = (() => {
      const script = clientPod.spec!.containers.find((c) => c.name === 'rsync')!.command![2]!;
      const line = script.split('\n').find((l) => l.startsWith('rsync '))!;
      return line.replace(/ 2>&1 \| awk.*$/, '');
    })();
    const ferryFlags = ferryArgv.split(' ').filter((w) => w.startsWith('--') && !w.startsWith('--password-file'));

    /** Runs Ferry's generated client pod on `src` (a final sync unless `final` is false: a stage sync
     * deletes nothing); resolves with the seconds and the rsync log. */
    const ferryRun = async (src: string, final = true): Promise<{ seconds: number; logs: string }> => {
      const objects = nt.sourceObjects('data', address, credentials, { final });
      const pod = new LocalPod({ pod: objects.find((o) => o.kind === 'Pod') as V1Pod, objects, pvcs: { data: src }, netns: net.source, workDir: join(work, `client-${Date.now()}`) });
      const t0 = process.hrtime.bigint();
      await pod.start();
      const r = await pod.completion(3_600_000);
      if (r.rsync!.exitCode !== 0) throw new Error(`Ferry client failed: ${r.rsync!.logs.slice(-2000)}`);
      return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, logs: r.rsync!.logs };
    };
    /** Runs the plain rsync client with Ferry's flags on `src`; resolves with the seconds and its output. */
    const plainRun = async (src: string): Promise<{ seconds: number; logs: string }> => {
      const log = join(work, 'plain.log');
      const seconds = await timed(net.source, ['bash', '-c', `exec rsync ${ferryFlags.join(' ')} '${src}/' rsync://${net.destinationIP}:2873/data/ > ${log}`]);
      return { seconds, logs: readFileSync(log, 'utf8') };
    };
    const paths: { name: string; run: (src: string) => Promise<number> }[] = [
      { name: 'plain rsync daemon', run: async (src) => (await plainRun(src)).seconds },
      { name: 'Ferry (rsync + stunnel pods)', run: async (src) => (await ferryRun(src)).seconds },
      {
        name: 'rsync + stunnel, VolSync flags -aAhHSxz',
        run: (src) => timed(net.source, ['rsync', '-aAhHSxz', '--delete', `--password-file=${pwFile}`, `${src}/`, 'rsync://ferry@127.0.0.1:2874/data/']),
      },
    ];
    const clearDst = () => sh('bash', ['-c', `find ${dst} -mindepth 1 -delete`]);
    const totalSent = (logs: string) => {
      const m = /Total bytes sent: ([\d,.]+)/.exec(logs);
      return m ? Number(m[1]!.replace(/,/g, '')) : NaN;
    };
    const transferred = (logs: string) => /Number of regular files transferred: ([\d,]+)/.exec(logs)?.[1] ?? '?';
    const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;

    // Fixed cost of Ferry's path (pod start, stunnel start, wait for its port, TLS handshake, pod
    // stop), measured in every round as a stage sync of an empty volume (which deletes nothing at the
    // destination), so that the net figures compare the data paths under the same load.
    const empty = join(work, 'empty');
    mkdirSync(empty);
    const overheadRun = async () => (await ferryRun(empty, false)).seconds;
    const overheads: number[] = [];
    /** "X s, ratio R" for Ferry's seconds net of the same round's start-up, or a note when within noise. */
    const netCell = (ferry: number[], rounds: number[], plain: number, per?: (netSec: number) => string) => {
      const nets = ferry.map((f, i) => f - rounds[i]!);
      const n = median(nets);
      if (n < 0.05) return `within start-up noise (${spread(nets)} s)`;
      return `${n.toFixed(2)} s${per ? `, ${per(n)}` : ''}, ratio ${(plain / n).toFixed(2)}`;
    };

    const datasets = [
      { key: 'large', name: `${a.largeMiB} MiB file`, dir: data.large, bytes: a.largeMiB * 1024 * 1024, files: 1 },
      { key: 'small', name: `${a.smallFiles} small files`, dir: data.small, bytes: data.smallBytes, files: a.smallFiles },
    ].filter((d) => a.scenarios.has(d.key as Scenario));
    for (const ds of datasets) {
      const samples: number[][] = paths.map(() => []);
      const rounds: number[] = [];
      for (let r = 0; r < a.repeat; r++) {
        for (const [i, p] of paths.entries()) {
          clearDst();
          samples[i]!.push(await p.run(ds.dir));
        }
        rounds.push(await overheadRun());
      }
      overheads.push(...rounds);
      const plain = median(samples[0]!);
      const rows = paths.map((p, i) => {
        const sec = median(samples[i]!);
        return [
          p.name,
          sec.toFixed(2),
          spread(samples[i]!),
          (ds.bytes / 1e6 / sec).toFixed(1),
          (ds.files / sec).toFixed(0),
          (plain / sec).toFixed(2),
          i === 1 ? netCell(samples[1]!, rounds, plain, (n) => `${(ds.bytes / 1e6 / n).toFixed(1)} MB/s, ${(ds.files / n).toFixed(0)} files/s`) : '',
        ];
      });
      printTable(`${ds.name}, first copy into an empty destination`, ['path', 'median s', 'min–max s', 'MB/s', 'files/s', 'ratio to plain', `Ferry net of the round's pod start-up (median ${median(rounds).toFixed(2)} s)`], rows);
    }

    if (a.scenarios.has('resync')) {
      // No-change re-sync of the small-files tree: one copy, then plain and Ferry re-sync in turn.
      clearDst();
      await plainRun(data.small);
      const plainS: number[] = [];
      const ferryS: number[] = [];
      const rounds: number[] = [];
      let ferryLogs = '';
      for (let r = 0; r < a.repeat; r++) {
        plainS.push((await plainRun(data.small)).seconds);
        const f = await ferryRun(data.small);
        ferryS.push(f.seconds);
        ferryLogs = f.logs;
        rounds.push(await overheadRun());
      }
      overheads.push(...rounds);
      const p = median(plainS);
      const f = median(ferryS);
      printTable(`${a.smallFiles} small files, no-change re-sync`, ['path', 'median s', 'min–max s', 'ratio to plain', 'files transferred', `Ferry net of the round's pod start-up (median ${median(rounds).toFixed(2)} s)`], [
        ['plain rsync daemon', p.toFixed(2), spread(plainS), '1.00', '', ''],
        ['Ferry (rsync + stunnel pods)', f.toFixed(2), spread(ferryS), (p / f).toFixed(2), transferred(ferryLogs), netCell(ferryS, rounds, p)],
      ]);
    }

    if (a.scenarios.has('delta')) {
      // Delta: a large file copied, 1 MiB appended, re-synced; what crosses the wire on the re-sync.
      const deltaDir = join(work, 'src', 'delta');
      mkdirSync(deltaDir, { recursive: true });
      const file = join(deltaDir, 'grows.bin');
      const rows: string[][] = [];
      for (const [name, run] of [['plain rsync daemon', plainRun], ['Ferry (rsync + stunnel pods)', ferryRun]] as const) {
        writeRandom(file, a.deltaMiB);
        clearDst();
        let w0 = wireBytes(net.source);
        const first = await run(deltaDir);
        const firstWire = wireBytes(net.source) - w0;
        writeRandom(file, 1, true);
        w0 = wireBytes(net.source);
        const again = await run(deltaDir);
        const againWire = wireBytes(net.source) - w0;
        rows.push([
          name,
          first.seconds.toFixed(2),
          (firstWire / 2 ** 20).toFixed(1),
          again.seconds.toFixed(2),
          (againWire / 2 ** 20).toFixed(2),
          (totalSent(again.logs) / 2 ** 20).toFixed(2),
        ]);
      }
      rmSync(file, { force: true });
      printTable(`delta: ${a.deltaMiB} MiB random file copied, 1 MiB appended, re-synced (one run each)`, ['path', 'first copy s', 'first copy wire MiB', 're-sync s', 're-sync wire MiB', 're-sync rsync "Total bytes sent" MiB'], rows);
    }

    if (a.scenarios.has('million')) {
      const mdir = join(work, 'src', 'million');
      const t0 = Date.now();
      const files = makeMillion(mdir, MILLION_FILE_BYTES);
      console.log(`million-file tree built in ${((Date.now() - t0) / 1000).toFixed(1)} s (${files} files of ${MILLION_FILE_BYTES} bytes); MemAvailable ${memAvailableMiB().toFixed(0)} MiB`);
      const srcIno = netnsInode(net.source);
      const dstIno = netnsInode(net.destination);
      const rss = (m: Map<number, { maxKiB: number; sumKiB: number; processes: number }>, ino: number) => {
        const x = m.get(ino);
        return x ? `${(x.maxKiB / 1024).toFixed(0)} MiB (${x.processes} procs, sum ${(x.sumKiB / 1024).toFixed(0)})` : '?';
      };
      // Order: plain first copy, Ferry first copy, then the two no-change re-syncs back to back
      // (both copies leave the same tree), so each pair runs as close in time as the load allows.
      const runners = [['plain rsync daemon', plainRun], ['Ferry (rsync + stunnel pods)', ferryRun]] as const;
      const watched = async (run: (src: string) => Promise<{ seconds: number; logs: string }>) => {
        const w = rssWatcher();
        const r = await run(mdir);
        return { ...r, rss: w.stop() };
      };
      const firsts: Awaited<ReturnType<typeof watched>>[] = [];
      for (const [, run] of runners) {
        clearDst();
        firsts.push(await watched(run));
      }
      const agains: Awaited<ReturnType<typeof watched>>[] = [];
      for (const [, run] of runners) agains.push(await watched(run));
      const rows = runners.map(([name], i) => [
        name,
        firsts[i]!.seconds.toFixed(1),
        (firsts[0]!.seconds / firsts[i]!.seconds).toFixed(2),
        rss(firsts[i]!.rss, srcIno),
        rss(firsts[i]!.rss, dstIno),
        agains[i]!.seconds.toFixed(1),
        (agains[0]!.seconds / agains[i]!.seconds).toFixed(2),
        transferred(agains[i]!.logs),
        rss(agains[i]!.rss, srcIno),
        rss(agains[i]!.rss, dstIno),
      ]);
      clearDst();
      printTable('1,000,000 files (one run each)', ['path', 'first copy s', 'ratio', 'source rsync peak RSS', 'destination rsync peak RSS', 'no-change re-sync s', 'ratio', 'files transferred', 'source peak RSS', 'destination peak RSS'], rows);
      console.log('(peak RSS: largest VmHWM of one rsync process on that side; "sum" adds the peaks of all its rsync processes)');
    }
    if (a.scenarios.has('streams')) await streamsScenario(work, a);
    if (overheads.length > 0) console.log(`\nFerry pod start-up and stop (stage sync of an empty volume, once per round): median ${median(overheads).toFixed(2)} s, ${spread(overheads)} s over ${overheads.length} runs`);
    console.log(`\n(median of ${a.repeat} interleaved runs unless said otherwise; ${new Date().toISOString()}; ${sh('nproc', []).trim()} CPUs; load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
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
