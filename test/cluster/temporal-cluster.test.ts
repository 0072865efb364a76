/**
 * Ferry on a production Temporal with several workers: the real Temporal server (built from the Go
 * module proxy by hack/temporal/build.sh) on PostgreSQL, brought up by hack/temporal/cluster.sh in a
 * private state directory on free ports; Ferry's real workflows (migrationWorkflow, namespaceWorkflow)
 * run by TWO worker processes (test/workflows/support/durable-worker.ts: Ferry's runWorker with the
 * simulated clusters of test/workflows/support/fake-cluster.ts, shared through files). A migration of
 * four namespaces spreads over both workers; one worker is SIGKILLed while it runs a transfer; the
 * other finishes the migration, with no object created twice and no completed activity run again.
 *
 * Needs Go (or the binaries already built), PostgreSQL (Debian's `postgresql`) and the temporal CLI.
 * Skipped with a message when one is missing, unless FERRY_REQUIRE_TEMPORAL=1 (CI), which makes the
 * missing piece, a failed build or a server that does not start a failure.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, type Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
import { migrationWorkflow } from '../../src/workflows';
import { FakeCluster, type JournalEntry, type SourceSpec } from '../workflows/support/fake-cluster';
import { testPlan, unique, waitFor } from '../workflows/support/env';
import { describeClusterIn, ROOT, startTestCluster, type TestCluster } from './support/cluster';

const { describeCluster, missing } = describeClusterIn('test/cluster/temporal-cluster.test.ts');

jest.setTimeout(180_000);

const SOURCE: SourceSpec = Object.fromEntries(
  ['alpha', 'bravo', 'charlie', 'delta'].map((ns) => [
    ns,
    {
      pvcs: [
        { name: 'data', bytes: 3_000_000 },
        { name: 'logs', bytes: 1_000_000 },
      ],
      workloads: [{ name: 'app', replicas: 2 }],
    },
  ]),
);

describeCluster('Ferry on a production Temporal (PostgreSQL) with two worker processes', () => {
  let tc: TestCluster | undefined;
  let dir: string;
  let stateDir: string;
  let address: string;
  let connection: Connection | undefined;
  const cluster = (command: string, timeoutMs: number) => tc!.cluster(command, timeoutMs);

  beforeAll(async () => {
    if (missing) throw new Error(`FERRY_REQUIRE_TEMPORAL=1 but ${missing}`);
    tc = await startTestCluster('ferry-cluster');
    ({ dir, stateDir, address, connection } = tc);
  }, 15 * 60_000);

  afterAll(async () => {
    await tc?.stop();
  }, 150_000);

  function spawnWorker(configFile: string, n: number): ChildProcess {
    return tc!.spawnWorker(join(ROOT, 'test', 'workflows', 'support', 'durable-worker.ts'), [configFile], String(n));
  }

  test('the server runs on PostgreSQL with Ferry search attributes registered', async () => {
    const res = await connection!.operatorService.listSearchAttributes({ namespace: 'default' });
    expect(Object.keys(res.customAttributes ?? {})).toEqual(expect.arrayContaining(Object.values(SEARCH_ATTRIBUTES).map((k) => k.name)));
    const info = await connection!.workflowService.getSystemInfo({});
    expect(info.serverVersion).toBe('1.29.1');
    expect(cluster('status', 30_000)).toMatch(/postgresql\s+running[\s\S]*frontend\s+serving/);
    // The Web UI (ui-server) fronts this server: its HTTP API answers from the server's namespace.
    const ui = /TEMPORAL_UI_URL=(\S+)/.exec(cluster('env', 10_000))![1]!;
    const res2 = await fetch(`${ui}/api/v1/namespaces/default/search-attributes`);
    expect(res2.status).toBe(200);
    expect(Object.keys(((await res2.json()) as { customAttributes: Record<string, string> }).customAttributes)).toEqual(
      expect.arrayContaining(Object.values(SEARCH_ATTRIBUTES).map((k) => k.name)),
    );
  });

  test('a migration of four namespaces spreads over two workers; SIGKILL of one mid-transfer, the other finishes it', async () => {
    const taskQueue = unique('cluster');
    const configFile = join(dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({ address, taskQueue, dir, bundlePath: join(dir, 'workflow-bundle.js'), source: SOURCE, transferMs: 2500, quiesceWaitMs: 300 }),
    );
    const fake = new FakeCluster({ source: SOURCE, dir }); // writes the initial cluster state
    const w1 = spawnWorker(configFile, 1);
    const w2 = spawnWorker(configFile, 2);
    // A worker that exits before the test stops it fails the test, with its log.
    const stopped = new Set<ChildProcess>();
    const died = (w: ChildProcess, n: number) =>
      new Promise<never>((_, reject) =>
        w.once('exit', (code, signal) => {
          if (stopped.has(w)) return;
          let log = '';
          try {
            log = readFileSync(join(dir, `worker-${n}.log`), 'utf8').slice(-2000);
          } catch {
            // the test directory is gone
          }
          reject(new Error(`worker ${n} exited (${code ?? signal}):\n${log}`));
        }),
      );
    const watchdog = Promise.race([died(w1, 1), died(w2, 2)]);
    watchdog.catch(() => undefined);

    const client = new Client({ connection: connection!, namespace: 'default' });
    const id = unique('cluster-mig');
    const handle = await client.workflow.start(migrationWorkflow, {
      taskQueue,
      workflowId: id,
      args: [{ migrationId: id, plan: testPlan({ namespaces: Object.keys(SOURCE), concurrency: 2 }), tuning: { heartbeatTimeoutSeconds: 2, retryIntervalScale: 0.01 } }],
    });

    // Both workers ran activities, and w1 is in the middle of a transfer: started, progressing (a
    // progress line every 100 ms), far from its end (2.5 s), not ended.
    const startedBy = (journal: JournalEntry[], pid: number | undefined) => journal.filter((e) => e.event === 'start' && e.pid === pid);
    const runningTransfer = (journal: JournalEntry[], pid: number | undefined) =>
      startedBy(journal, pid).find((s) => {
        if (s.activity !== 'runTransfer') return false;
        if (journal.some((e) => (e.event === 'complete' || e.event === 'fail') && e.activityKey === s.activityKey && e.attempt === s.attempt)) return false;
        const [ns, pvc] = s.detail!.split(' ');
        const progress = journal.filter((e) => e.event === 'progress' && e.pid === pid && e.seq > s.seq && e.detail?.startsWith(`${ns}/${pvc} `)).length;
        return progress >= 3 && progress <= 12;
      });
    const interrupted = await Promise.race([
      watchdog,
      waitFor(
        'both workers to run activities, and worker 1 a transfer',
        async () => {
          const journal = fake.journal();
          return startedBy(journal, w2.pid).length > 0 ? runningTransfer(journal, w1.pid) : undefined;
        },
        90_000,
      ),
    ]);
    const exited = new Promise((resolve) => w1.once('exit', resolve));
    stopped.add(w1);
    w1.kill('SIGKILL');
    await exited;
    const killSeq = fake.journal().at(-1)!.seq; // everything after this was written after w1's death

    const summary = await Promise.race([watchdog, handle.result()]);
    stopped.add(w2);
    const w2Exit = new Promise<number | null>((resolve) => w2.once('exit', (code) => resolve(code)));
    w2.kill('SIGTERM');
    expect(await w2Exit).toBe(0);
    expect(summary.status).toBe('succeeded');
    expect(summary.namespaces.map((n) => [n.source, n.status]).sort()).toEqual(Object.keys(SOURCE).map((ns) => [ns, 'succeeded']));

    const journal = fake.journal();
    const before = journal.filter((e) => e.seq <= killSeq);
    const after = journal.filter((e) => e.seq > killSeq);
    // The work spread: each worker started activities before the kill (and a namespace's activities
    // are not tied to one worker: some namespace had activities on both).
    const byWorker = (pid: number | undefined) => before.filter((e) => e.event === 'start' && e.pid === pid);
    expect(byWorker(w1.pid).length).toBeGreaterThan(0);
    expect(byWorker(w2.pid).length).toBeGreaterThan(0);
    const namespacesOf = (pid: number | undefined) => new Set(byWorker(pid).map((e) => e.detail?.split(' ')[0]).filter((ns) => ns && ns in SOURCE));
    expect([...namespacesOf(w1.pid)].some((ns) => namespacesOf(w2.pid).has(ns))).toBe(true);
    // After the kill the survivor did the rest.
    expect(after.filter((e) => e.event === 'start').length).toBeGreaterThan(0);
    expect(after.filter((e) => e.event === 'start').every((e) => e.pid === w2.pid)).toBe(true);
    // The interrupted transfer was retried on the survivor, after the heartbeat timeout, and completed there.
    expect(journal.filter((e) => e.activityKey === interrupted.activityKey && e.pid === w1.pid && e.event !== 'start')).toEqual([]);
    const retried = journal.filter((e) => e.activityKey === interrupted.activityKey && e.event === 'complete');
    expect(retried).toEqual([expect.objectContaining({ pid: w2.pid })]);
    expect(retried[0]!.attempt).toBeGreaterThan(interrupted.attempt!);

    // No object created twice (the interrupted sync re-attached to its client pod).
    const creates = journal.filter((e) => e.event === 'create').map((e) => e.object!);
    expect(creates.length).toBe(new Set(creates).size);
    const [ns, pvc] = interrupted.detail!.split(' ');
    const pod = `source/client/${ns}/${pvc}-${/pass=(\d+)/.exec(interrupted.detail!)![1]}`;
    expect(journal.filter((e) => e.event === 'adopt' && e.object === pod).map((e) => e.pid)).toContain(w2.pid);

    // No completed activity ran again, and none completed twice.
    const completedAt = new Map<string, number>();
    for (const e of journal) if (e.event === 'complete') completedAt.set(e.activityKey!, e.seq);
    expect(journal.filter((e) => e.event === 'start' && completedAt.has(e.activityKey!) && e.seq > completedAt.get(e.activityKey!)!)).toEqual([]);
    const completes = journal.filter((e) => e.event === 'complete').map((e) => e.activityKey);
    expect(completes.length).toBe(new Set(completes).size);
    // Each namespace's one-off activities were scheduled once, its syncs once per PVC and pass.
    for (const n of Object.keys(SOURCE)) {
      const scheduled = (activity: string) => new Set(journal.filter((e) => e.event === 'start' && e.activity === activity && e.detail?.split(' ')[0] === n).map((e) => e.activityKey)).size;
      expect([n, ...['prepareDestination', 'createServer', 'quiesce', 'unquiesce'].map(scheduled), scheduled('runTransfer')]).toEqual([n, 1, 1, 1, 1, 4]);
      // The clusters end as after an uninterrupted migration.
      expect([n, fake.data(n, 'data').destination, fake.data(n, 'logs').destination]).toEqual([n, fake.data(n, 'data').source, fake.data(n, 'logs').source]);
      expect([n, fake.replicas(n, 'app')]).toEqual([n, 2]);
    }
    expect(fake.objectsUnder('source/client/')).toEqual([]);
  });

  test('cluster.sh down stops PostgreSQL, the server and the UI, and removes the state directory', () => {
    const pids = [join(stateDir, 'server.pid'), join(stateDir, 'ui.pid'), join(stateDir, 'pg', 'postmaster.pid')].map((f) => Number(readFileSync(f, 'utf8').split('\n')[0]));
    // A process that exited but is not reaped yet (a zombie: init reaps the detached PostgreSQL) is gone.
    const alive = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z';
      } catch {
        return false;
      }
    };
    expect(pids.map(alive)).toEqual([true, true, true]);
    cluster('down', 120_000);
    expect(pids.map(alive)).toEqual([false, false, false]);
    expect(existsSync(stateDir)).toBe(false);
  });
});
