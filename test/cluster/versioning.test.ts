/**
 * Worker Versioning on the production Temporal of hack/temporal/cluster.sh (server 1.29.1 on
 * PostgreSQL): Ferry's workers are versions of the worker deployment "ferry", workflows PINNED.
 * A migration started on build A keeps running on A's worker (its workflow tasks, its children's and
 * its activities) after build B came up and was made current, while a new migration runs on B.
 *
 * The worker processes are Ferry's runWorker with the deployment read from the environment as
 * `ferry worker` reads it (FERRY_BUILD_ID, FERRY_SET_CURRENT=always: each worker sets its build
 * current once it polls), the real workflows and the simulated clusters of the workflow tests.
 *
 * Needs what test/cluster/temporal-cluster.test.ts needs (Go or the built server, PostgreSQL, the
 * temporal CLI); skipped with a message when one is missing, unless FERRY_REQUIRE_TEMPORAL=1.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { findTemporalBinary } from '../../src/temporal/devserver';
import { deploymentNameFor, describeDeployment } from '../../src/temporal/versioning';
import { cutoverWithRequestUpdate, namespaceWorkflowId } from '../../src/workflows/definitions';
import { migrationWorkflow } from '../../src/workflows';
import { FakeCluster, type JournalEntry, type SourceSpec } from '../workflows/support/fake-cluster';
import { testPlan, unique, waitFor, workflowBundle } from '../workflows/support/env';

const ROOT = join(__dirname, '..', '..');
const CLUSTER_SH = join(ROOT, 'hack', 'temporal', 'cluster.sh');
const required = process.env.FERRY_REQUIRE_TEMPORAL === '1';

/** Why the cluster cannot be brought up here, or undefined (as in temporal-cluster.test.ts). */
function missingPiece(): string | undefined {
  const home = process.env.FERRY_TEMPORAL_HOME || join(process.env.XDG_CACHE_HOME || join(process.env.HOME ?? '', '.cache'), 'ferry', 'temporal-server-1.29.1');
  const built = existsSync(join(home, 'bin', 'temporal-server'));
  if (!built && spawnSync('go', ['version']).status !== 0) return 'Go is not installed and the Temporal server is not built (hack/temporal/build.sh)';
  const pg = existsSync('/usr/lib/postgresql') && readdirSync('/usr/lib/postgresql').some((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'pg_ctl')));
  if (!pg) return 'PostgreSQL is not installed (apt-get install postgresql)';
  if (!findTemporalBinary()) return 'the temporal CLI is not installed (npm run setup)';
  return undefined;
}

const missing = missingPiece();
if (missing && !required) console.warn(`SKIPPED test/cluster/versioning.test.ts: ${missing}; set FERRY_REQUIRE_TEMPORAL=1 to fail instead`);
const describeCluster = missing && !required ? describe.skip : describe;

jest.setTimeout(180_000);

function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port whose derived ports (cluster.sh) are free; at most 30000. */
async function freeBasePort(): Promise<number> {
  const offsets = [0, 1, 2, 3, 10, 20, 100, 101, 102, 103, 1000, 2000];
  for (let attempt = 0; attempt < 100; attempt++) {
    const p = 15_000 + Math.floor(Math.random() * 15_000);
    if ((await Promise.all(offsets.map((o) => free(p + o)))).every(Boolean)) return p;
  }
  throw new Error('no free port range for the Temporal cluster');
}

const SOURCE: SourceSpec = Object.fromEntries(
  ['alpha', 'bravo'].map((ns) => [
    ns,
    {
      pvcs: [
        { name: 'data', bytes: 3_000_000 },
        { name: 'logs', bytes: 1_000_000 },
      ],
      workloads: [{ name: 'app', replicas: 1 }],
    },
  ]),
);

const PINNED = temporal.api.enums.v1.VersioningBehavior.VERSIONING_BEHAVIOR_PINNED;
const WORKFLOW_TASK_COMPLETED = temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED;

describeCluster('Worker Versioning on a production Temporal: running migrations stay on their build', () => {
  let dir: string;
  let stateDir: string;
  let clusterEnv: NodeJS.ProcessEnv;
  let address: string;
  let connection: Connection | undefined;
  const workers: ChildProcess[] = [];

  const cluster = (command: string, timeoutMs: number) => {
    const r = spawnSync('bash', [CLUSTER_SH, command], { env: clusterEnv, encoding: 'utf8', timeout: timeoutMs });
    if (r.status !== 0) throw new Error(`cluster.sh ${command} failed (exit ${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  beforeAll(async () => {
    if (missing) throw new Error(`FERRY_REQUIRE_TEMPORAL=1 but ${missing}`);
    dir = mkdtempSync(join(tmpdir(), 'ferry-versioning-test-'));
    stateDir = mkdtempSync(join(tmpdir(), 'ferry-versioning-state-'));
    chmodSync(stateDir, 0o711); // PostgreSQL runs as `postgres` when the tests run as root
    clusterEnv = { ...process.env, FERRY_TEMPORAL_CLUSTER_DIR: stateDir, FERRY_TEMPORAL_CLUSTER_PORT: String(await freeBasePort()) };
    const [, bundle] = await Promise.all([
      new Promise<void>((resolve, reject) => {
        const child = spawn('bash', [CLUSTER_SH, 'up'], { env: clusterEnv, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`cluster.sh up failed (exit ${code}):\n${stderr}`))));
      }),
      workflowBundle(),
    ]);
    writeFileSync(join(dir, 'workflow-bundle.js'), bundle.code);
    address = /TEMPORAL_ADDRESS=(\S+)/.exec(cluster('env', 10_000))![1]!;
    connection = await Connection.connect({ address });
  }, 15 * 60_000);

  afterAll(async () => {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    await connection?.close();
    if (clusterEnv && existsSync(stateDir)) cluster('down', 120_000);
    if (dir && process.env.FERRY_KEEP_TEST_DIRS !== '1') rmSync(dir, { recursive: true, force: true });
  }, 150_000);

  /** A worker process of build `buildId` that sets its build current once it polls. */
  function spawnWorker(configFile: string, buildId: string): ChildProcess {
    const log = openSync(join(dir, `worker-${buildId}.log`), 'a');
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'cluster', 'support', 'versioned-worker.ts'), configFile], {
      cwd: ROOT,
      stdio: ['ignore', log, log],
      env: { ...process.env, FERRY_BUILD_ID: buildId, FERRY_SET_CURRENT: 'always', FERRY_WORKER_VERSIONING: 'on' },
    });
    workers.push(child);
    return child;
  }

  test('a migration started on build A finishes on A while build B, made current, runs a new one', async () => {
    const taskQueue = unique('versioning');
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ address, taskQueue, dir, bundlePath: join(dir, 'workflow-bundle.js'), source: SOURCE, transferMs: 1500, quiesceWaitMs: 200 }));
    const fake = new FakeCluster({ source: SOURCE, dir }); // writes the initial cluster state
    const service = connection!.workflowService;
    const deploymentName = deploymentNameFor(taskQueue);
    const current = async () => (await describeDeployment(service, 'default', deploymentName))?.current;
    const stopped = new Set<ChildProcess>();
    const died = (w: ChildProcess, build: string) =>
      new Promise<never>((_, reject) =>
        w.once('exit', (code, signal) => {
          if (stopped.has(w)) return;
          let log = '';
          try {
            log = readFileSync(join(dir, `worker-${build}.log`), 'utf8').slice(-2000);
          } catch {
            // the test directory is gone
          }
          reject(new Error(`worker ${build} exited (${code ?? signal}):\n${log}`));
        }),
      );

    const buildA = `0.1.0-test-a-${Date.now().toString(36)}`;
    const buildB = `0.1.0-test-b-${Date.now().toString(36)}`;
    const a = spawnWorker(configFile, buildA);
    const watchA = died(a, 'A');
    watchA.catch(() => undefined);
    await Promise.race([watchA, waitFor('build A to become current', async () => (await current()) === buildA, 60_000)]);

    const client = new Client({ connection: connection!, namespace: 'default' });
    const tuning = { heartbeatTimeoutSeconds: 3, retryIntervalScale: 0.01 };
    const idA = unique('on-a');
    const migA = await client.workflow.start(migrationWorkflow, {
      taskQueue,
      workflowId: idA,
      // Manual cutover: A's migration syncs until told to cut over, which the test does after the switch.
      args: [{ migrationId: idA, plan: testPlan({ namespaces: ['alpha'], stagePasses: 1, cutover: 'manual', stageIntervalSeconds: 1, concurrency: 2 }), tuning }],
    });
    const ofMigration = (id: string) => (e: JournalEntry) => {
      const wid = e.activityKey?.split('|')[0];
      return e.event === 'start' && (wid === id || wid?.startsWith(`${id}/`) === true);
    };
    await Promise.race([watchA, waitFor("A's first transfer", async () => fake.journal().some((e) => ofMigration(idA)(e) && e.activity === 'runTransfer'), 60_000)]);

    // Build B comes up while A's migration transfers, and sets itself current.
    const b = spawnWorker(configFile, buildB);
    const watchB = died(b, 'B');
    watchB.catch(() => undefined);
    const watchdog = Promise.race([watchA, watchB]);
    await Promise.race([watchdog, waitFor('build B to become current', async () => (await current()) === buildB, 60_000)]);
    const switchSeq = fake.journal().at(-1)!.seq;
    // B's worker tells that running workflows are pinned to A (A's migration, its namespace workflow...).
    const pinnedLine = await waitFor("B's note on workflows pinned to A", async () =>
      readFileSync(join(dir, `worker-${buildB}.log`), 'utf8')
        .split('\n')
        .find((l) => l.includes('"pinnedToOtherBuilds"')),
    );
    expect((JSON.parse(pinnedLine) as { pinnedToOtherBuilds: Record<string, number> }).pinnedToOtherBuilds[buildA]).toBeGreaterThanOrEqual(2);
    expect((await migA.describe()).status.name).toBe('RUNNING');

    const idB = unique('on-b');
    const migB = await client.workflow.start(migrationWorkflow, {
      taskQueue,
      workflowId: idB,
      args: [{ migrationId: idB, plan: testPlan({ namespaces: ['bravo'], stagePasses: 1, concurrency: 2 }), tuning }],
    });
    // A's cutover (an update, handled by A's worker): its final syncs run after the switch.
    const nsA = client.workflow.getHandle(namespaceWorkflowId(idA, 'alpha'));
    await Promise.race([watchdog, waitFor("A's cutover to be accepted", () => nsA.executeUpdate(cutoverWithRequestUpdate, { args: [{}] }), 60_000)]);
    const [resultA, resultB] = await Promise.race([watchdog, Promise.all([migA.result(), migB.result()])]);
    for (const w of [a, b]) stopped.add(w);
    const exits = [a, b].map((w) => new Promise<number | null>((resolve) => w.once('exit', (code) => resolve(code))));
    for (const w of [a, b]) w.kill('SIGTERM');
    expect(await Promise.all(exits)).toEqual([0, 0]);
    expect([resultA.status, resultB.status]).toEqual(['succeeded', 'succeeded']);

    // Activities: A's migration ran all of its activities on A's worker, part of them after B became
    // current; the new migration ran all of its own on B's.
    const journal = fake.journal();
    const startsA = journal.filter(ofMigration(idA));
    const startsB = journal.filter(ofMigration(idB));
    expect(startsA.filter((e) => e.seq > switchSeq).length).toBeGreaterThan(0);
    expect(startsA.filter((e) => e.seq > switchSeq && e.activity === 'runTransfer' && e.detail?.includes('final=true')).length).toBe(2);
    expect(new Set(startsA.map((e) => e.pid))).toEqual(new Set([a.pid]));
    expect(startsB.length).toBeGreaterThan(0);
    expect(new Set(startsB.map((e) => e.pid))).toEqual(new Set([b.pid]));

    // Workflows: each migration, its namespace workflow and its PVC sync workflows are pinned to their
    // build, and every workflow task of theirs was completed by that build's worker.
    const familyOf = (id: string, ns: string, starts: JournalEntry[]) => [...new Set([id, namespaceWorkflowId(id, ns), ...starts.map((e) => e.activityKey!.split('|')[0]!)])];
    for (const [id, ns, starts, build, pid] of [
      [idA, 'alpha', startsA, buildA, a.pid],
      [idB, 'bravo', startsB, buildB, b.pid],
    ] as const) {
      const family = familyOf(id, ns, starts);
      expect(family.length).toBeGreaterThanOrEqual(3); // migration, namespace, PVC syncs
      for (const wid of family) {
        const handle = client.workflow.getHandle(wid);
        const v = (await handle.describe()).raw.workflowExecutionInfo?.versioningInfo;
        expect([wid, v?.behavior, v?.deploymentVersion?.deploymentName, v?.deploymentVersion?.buildId]).toEqual([wid, PINNED, deploymentName, build]);
        const tasks = ((await handle.fetchHistory()).events ?? []).filter((e) => e.eventType === WORKFLOW_TASK_COMPLETED).map((e) => e.workflowTaskCompletedEventAttributes!);
        expect(tasks.length).toBeGreaterThan(0);
        expect([wid, [...new Set(tasks.map((t) => `${t.identity?.split('@')[0]} ${t.deploymentVersion?.buildId}`))]]).toEqual([wid, [`${pid} ${build}`]]);
      }
    }
  });
});
