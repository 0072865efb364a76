/**
 * Re-sync benchmark on the lab (hack/lab), issue 9 target "a no-change re-sync of a 2 GB / 30k-file PVC
 * ≤ 5 s end to end": one PVC synced between the two clusters through Ferry's activities called directly
 * (MockActivityEnvironment, as test/e2e/agent.e2e.test.ts does; no Temporal server, no worker):
 *
 *   1. namespace `rs-<run>` in ferry-src with one PVC (StorageClass lab-local) and a writer Deployment
 *      whose pod seeds it once — `--files` files totalling `--mib` MiB: 8 large random files and the
 *      rest ~¼ of the bytes as small files, 300 per directory in a two-level tree, each directory cut
 *      from one random stream by coreutils `split` in the image ferry/transfer:latest (lab/workload's
 *      busybox has no split; seconds, where a process per file takes minutes), plus a marker file —
 *      and then idles with the PVC mounted (the application: it pins the RWO volume to its node);
 *   2. discoverNamespace, prepareDestination, createEndpoint (LoadBalancer), createServer,
 *      probeConnectivity (as the namespace workflow does);
 *   3. the first stage sync (runTransfer, warm agent: it creates the agent), timed with its MB/s;
 *   4. `--runs` no-change stage syncs with `agents: warm` (the same agent pod), then the agent is
 *      deleted (not timed) and `--runs` no-change stage syncs with `agents: per-sync` (a client pod
 *      each), each timed end to end around runTransfer;
 *   5. cleanup (the cleanup activity, then both namespaces deleted), also on failure and on SIGINT.
 *
 * Prints one table: seconds per no-change sync (each run and the median; beside it rsync's own
 * duration as the activity reports it), warm vs per-sync, and the target.
 *
 *   npm run bench:resync -- [--files 30000] [--mib 2048] [--runs 3] [--keep]
 *
 * Exit status: 0 when every sync succeeded (whether the target is met or not), 1 otherwise, 2 when the
 * lab is not available. The lab is shared: figures measured beside other users are noisy.
 */
import { spawnSync } from 'node:child_process';
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Command, InvalidArgumentError } from 'commander';
import { createActivities } from '../src/activities';
import type { FerryActivities, TransferRequest } from '../src/activities/contract';
import type { EndpointAddress, PVCInfo, TransferResult } from '../src/core/types';
import { KubeClient } from '../src/k8s/client';
import { parsePlan } from '../src/plan/load';
import type { MigrationPlan } from '../src/plan/schema';
import { objectName } from '../src/statetransfer/names';
import { LAB_KUBECONFIG, labUnavailable, waitUntil, writerDeployment } from '../hack/e2e/lib';

const TARGET_SECONDS = 5;
const LARGE_FILES = 8;
const FILES_PER_DIR = 300;
const MiB = 1024 * 1024;
const t0 = Date.now();
const log = (s: string) => process.stderr.write(`[bench +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

/** Command-line options. */
interface Options {
  files: number;
  mib: number;
  runs: number;
  keep: boolean;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
}

function parseOptions(argv: string[]): Options {
  const program = new Command('bench:resync')
    .description('Ferry no-change re-sync benchmark on the lab: one PVC, warm agent vs a client pod per sync, end to end through runTransfer')
    .option('--files <n>', 'files in the PVC (at least 9: 8 large, the rest small)', positiveInt, 30000)
    .option('--mib <n>', 'MiB of random data in the PVC', positiveInt, 2048)
    .option('--runs <n>', 'no-change syncs per mode', positiveInt, 3)
    .option('--keep', 'keep the namespaces (no cleanup)', false)
    .parse(argv);
  const o = program.opts<Options>();
  if (o.files <= LARGE_FILES) throw new InvalidArgumentError(`--files must be more than ${LARGE_FILES}`);
  return o;
}

/**
 * The writer's script: seeds /d once (files and bytes as asked, plus the marker /d/.seeded; sh, head, split), prints
 * "ready", then idles. Small files get ~¼ of the bytes (at least 1 byte each); the 8 large files share
 * the rest.
 */
export function seedScript(files: number, mib: number): string {
  const total = mib * MiB;
  const small = files - LARGE_FILES;
  const smallSize = Math.max(1, Math.floor(total / 4 / small));
  const largeSize = Math.max(1, Math.floor((total - smallSize * small) / LARGE_FILES));
  const dirs = Math.ceil(small / FILES_PER_DIR);
  return [
    'set -e',
    '[ -e /d/.seeded ] || {',
    '  mkdir -p /d/large',
    `  i=0; while [ $i -lt ${LARGE_FILES} ]; do head -c ${largeSize} /dev/urandom > /d/large/f$i; i=$((i+1)); done`,
    `  i=0; left=${small}`,
    `  while [ $left -gt 0 ]; do n=${FILES_PER_DIR}; [ $left -lt $n ] && n=$left`,
    '    dir=/d/tree/a$((i / 20))/b$((i % 20)); mkdir -p $dir',
    `    head -c $((n * ${smallSize})) /dev/urandom | split -b ${smallSize} -a 3 - $dir/f`,
    '    left=$((left - n)); i=$((i+1))',
    '  done',
    '  sync; touch /d/.seeded',
    '}',
    `echo "ready: $(find /d -type f ! -name .seeded | wc -l) files, $(du -sm /d | cut -f1) MiB (${dirs} small-file directories)"`,
    'while :; do sleep 3600; done',
  ].join('\n');
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Runs the benchmark; returns the exit status. */
async function main(o: Options): Promise<number> {
  const unavailable = labUnavailable(['kubectl']);
  if (unavailable) {
    process.stderr.write(`bench:resync needs the lab: ${unavailable}\n`);
    return 2;
  }
  const run = Math.random().toString(36).slice(2, 7);
  const ns = `rs-${run}`;
  const mid = `rs-${run}`;
  const src = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });
  const activities: FerryActivities = createActivities({ pollIntervalSeconds: 1, logger: { debug: () => undefined, info: () => undefined, warn: (f, m) => log(`warn: ${m} ${JSON.stringify(f)}`), error: (f, m) => log(`error: ${m} ${JSON.stringify(f)}`) } });
  const raw = {
    source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
    destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
    namespaces: [ns],
    endpoint: { type: 'LoadBalancer' },
    timeouts: { endpointReadySeconds: 120, serverReadySeconds: 180, podStartSeconds: 120 },
  };
  const warmPlan = parsePlan({ ...raw, agents: 'warm' });
  const perSyncPlan = parsePlan({ ...raw, agents: 'per-sync' });
  const ctx = (plan: MigrationPlan) => ({ migrationId: mid, plan, namespace: plan.namespaces[0]! });

  let cleaned = false;
  const cleanup = async () => {
    if (cleaned || o.keep) return;
    cleaned = true;
    log(`cleanup: the cleanup activity, then namespace ${ns} deleted in both clusters`);
    try {
      const report = await activities.cleanup({ migrationId: mid, plan: warmPlan });
      if (report.remaining) log(`cleanup left ${report.remaining} objects`);
    } catch (e) {
      log(`cleanup activity failed: ${(e as Error).message}`);
    }
    for (const c of ['ferry-src', 'ferry-dst'])
      spawnSync('kubectl', ['--context', c, 'delete', 'ns', ns, '--ignore-not-found', '--wait=false'], { env: { ...process.env, KUBECONFIG: LAB_KUBECONFIG }, timeout: 60_000, stdio: 'ignore' });
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // 1. The source namespace, its PVC and the writer that seeds it.
    const sizeGi = Math.max(1, Math.ceil((o.mib * 1.3 + (o.files * 8) / 1024) / 1024));
    log(`seeding ${ns}: one PVC of ${sizeGi}Gi, ${o.files} files, ${o.mib} MiB`);
    const seedStart = Date.now();
    await src.objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } as KubernetesObject);
    await src.objects.create({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'data', namespace: ns },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'lab-local', resources: { requests: { storage: `${sizeGi}Gi` } } },
    } as KubernetesObject);
    await src.objects.create(writerDeployment(ns, seedScript(o.files, o.mib), { image: 'ferry/transfer:latest' }));
    const ready = await waitUntil(
      async () => {
        const pods = await src.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, ns, { labelSelector: 'app=writer' });
        for (const p of pods) {
          const out = await src.core.readNamespacedPodLog({ name: p.metadata!.name!, namespace: ns }).catch(() => '');
          const c = p.status?.containerStatuses?.[0];
          if (c && (c.restartCount > 0 || c.state?.terminated)) throw new Error(`the writer ${p.metadata!.name} failed seeding the PVC: ${out.slice(-2000)}`);
          const line = out.split('\n').find((l) => l.startsWith('ready'));
          if (line) return line;
        }
        return undefined;
      },
      'the writer to have seeded the PVC',
      600_000,
      2000,
    );
    log(`seeded in ${((Date.now() - seedStart) / 1000).toFixed(1)} s: ${ready}`);

    // 2. Discovery, destination PVC, endpoint and server (once: the warm and per-sync plans share them).
    const discovery = await activities.discoverNamespace(ctx(warmPlan));
    const pvc: PVCInfo = discovery.pvcs.find((p) => p.name === 'data')!;
    await activities.prepareDestination({ ...ctx(warmPlan), discovery });
    const env = new MockActivityEnvironment();
    const address = (await env.run(activities.createEndpoint, ctx(warmPlan))) as EndpointAddress;
    await env.run(activities.createServer, { ...ctx(warmPlan), discovery, address });
    await env.run(activities.probeConnectivity, { ...ctx(warmPlan), address });
    log(`endpoint ${address.host}:${address.port} and server ready`);

    let pass = 0;
    const sync = async (plan: MigrationPlan): Promise<{ seconds: number; result: TransferResult }> => {
      const req: TransferRequest = { ...ctx(plan), pvc, address, final: false, pass: ++pass };
      const start = Date.now();
      let result: TransferResult | undefined;
      for (let attempt = 1; !result; attempt++) {
        // A transient failure is retried at once, as Temporal would (the time includes it).
        try {
          result = (await new MockActivityEnvironment().run(activities.runTransfer, req)) as TransferResult;
        } catch (e) {
          if (attempt >= 3 || (e as { nonRetryable?: boolean }).nonRetryable !== false) throw e;
          log(`sync ${req.pass} attempt ${attempt} failed (retrying): ${(e as Error).message.slice(0, 300)}`);
        }
      }
      const seconds = (Date.now() - start) / 1000;
      if (result.outcome !== 'success') throw new Error(`sync ${pass} (${plan.agents}) ended ${result.outcome}: ${result.message}`);
      return { seconds, result };
    };

    // 3. The first stage sync: everything is sent.
    const first = await sync(warmPlan);
    const firstMB = (first.result.totalFileSize ?? 0) / 1e6;
    log(`first sync: ${first.seconds.toFixed(1)} s, ${first.result.numberOfFiles} files, ${firstMB.toFixed(0)} MB`);

    // 4. No-change syncs: warm agent, then a client pod per sync.
    const warm: { seconds: number; result: TransferResult }[] = [];
    for (let i = 0; i < o.runs; i++) {
      warm.push(await sync(warmPlan));
      log(`warm no-change sync ${i + 1}: ${warm[i]!.seconds.toFixed(2)} s`);
      if (warm[i]!.result.filesTransferred) log(`  (it transferred ${warm[i]!.result.filesTransferred} files: not a no-change sync)`);
    }
    const agent = objectName(mid, 'client', 'data');
    await src.delete({ apiVersion: 'v1', kind: 'Pod', namespace: ns, name: agent });
    await waitUntil(async () => !(await src.get<V1Pod>({ apiVersion: 'v1', kind: 'Pod', namespace: ns, name: agent })), 'the warm agent to be gone', 120_000, 500);
    const perSync: { seconds: number; result: TransferResult }[] = [];
    for (let i = 0; i < o.runs; i++) {
      perSync.push(await sync(perSyncPlan));
      log(`per-sync no-change sync ${i + 1}: ${perSync[i]!.seconds.toFixed(2)} s`);
      if (perSync[i]!.result.filesTransferred) log(`  (it transferred ${perSync[i]!.result.filesTransferred} files: not a no-change sync)`);
    }

    // The table.
    const row = (name: string, r: { seconds: number; result: TransferResult }[]) => {
      const m = median(r.map((x) => x.seconds));
      return [name, r.map((x) => x.seconds.toFixed(2)).join(', '), m.toFixed(2), median(r.map((x) => x.result.durationSeconds)).toFixed(2), m <= TARGET_SECONDS ? `met (≤ ${TARGET_SECONDS} s)` : `missed (> ${TARGET_SECONDS} s)`];
    };
    const rows = [['agents', 'no-change sync, end to end (s)', 'median (s)', 'rsync median (s)', 'target'], row('warm', warm), row('per-sync', perSync)];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    const line = (r: string[]) => `| ${r.map((v, c) => v.padEnd(widths[c]!)).join(' | ')} |`;
    console.log(`\nbench:resync: one PVC of ${o.files} files (${first.result.numberOfFiles} entries with directories, rsync's count), ${firstMB.toFixed(0)} MB, lab-local → lab-local over LoadBalancer`);
    console.log(`first stage sync (warm agent created): ${first.seconds.toFixed(1)} s end to end, ${(firstMB / first.seconds).toFixed(1)} MB/s (rsync ${first.result.durationSeconds.toFixed(1)} s)`);
    console.log(line(rows[0]!));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const r of rows.slice(1)) console.log(line(r));
    console.log(`target (issue 9): a no-change re-sync of a 2 GB / 30k-file PVC ≤ ${TARGET_SECONDS} s end to end. The lab is shared: figures are noisy.`);
    return 0;
  } catch (e) {
    log(`failed: ${(e as Error).stack ?? e}`);
    return 1;
  } finally {
    await cleanup();
  }
}

if (require.main === module) {
  main(parseOptions(process.argv)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
