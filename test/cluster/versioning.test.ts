/**
 * Worker Versioning on the production Temporal of hack/temporal/cluster.sh (server 1.29.1 on
 * PostgreSQL): Ferry's workers are versions of the worker deployment "ferry", workflows PINNED.
 * A migration started on build A keeps running on A's worker (its workflow tasks, its children's and
 * its activities) after build B came up and was made current, while a new migration runs on B.
 *
 * The worker processes (test/workflows/support/durable-worker.ts) are Ferry's runWorker with the
 * deployment read from the environment as `ferry worker` reads it (FERRY_BUILD_ID,
 * FERRY_SET_CURRENT=always: each worker sets its build current once it polls), the real workflows
 * and the simulated clusters of the workflow tests.
 *
 * Needs what test/cluster/temporal-cluster.test.ts needs (Go or the built server, PostgreSQL, the
 * temporal CLI); skipped with a message when one is missing, unless FERRY_REQUIRE_TEMPORAL=1.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { deploymentNameFor, describeDeployment } from '../../src/temporal/versioning';
import { cutoverWithRequestUpdate, namespaceWorkflowId } from '../../src/workflows/definitions';
import { migrationWorkflow } from '../../src/workflows';
import { FakeCluster, type JournalEntry, type SourceSpec } from '../workflows/support/fake-cluster';
import { testPlan, unique, waitFor } from '../workflows/support/env';
import { describeClusterIn, ROOT, startTestCluster, type TestCluster } from './support/cluster';

const { describeCluster, missing } = describeClusterIn('test/cluster/versioning.test.ts');

jest.setTimeout(180_000);

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
  let tc: TestCluster | undefined;

  beforeAll(async () => {
    if (missing) throw new Error(`FERRY_REQUIRE_TEMPORAL=1 but ${missing}`);
    tc = await startTestCluster('ferry-versioning');
  }, 15 * 60_000);

  afterAll(async () => {
    await tc?.stop();
  }, 150_000);

  /** A worker process of build `buildId` that sets its build current once it polls (as `ferry worker` with these variables). */
  function spawnWorker(configFile: string, buildId: string): ChildProcess {
    const env = { ...process.env, FERRY_BUILD_ID: buildId, FERRY_SET_CURRENT: 'always', FERRY_WORKER_VERSIONING: 'on' };
    return tc!.spawnWorker(join(ROOT, 'test', 'workflows', 'support', 'durable-worker.ts'), [configFile], buildId, env);
  }

  test('a migration started on build A finishes on A while build B, made current, runs a new one', async () => {
    const { dir, address, connection } = tc!;
    const taskQueue = unique('versioning');
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ address, taskQueue, dir, bundlePath: join(dir, 'workflow-bundle.js'), source: SOURCE, transferMs: 1500, quiesceWaitMs: 200 }));
    const fake = new FakeCluster({ source: SOURCE, dir }); // writes the initial cluster state
    const service = connection.workflowService;
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
    const watchA = died(a, buildA);
    watchA.catch(() => undefined);
    await Promise.race([watchA, waitFor('build A to become current', async () => (await current()) === buildA, 60_000)]);

    const client = new Client({ connection, namespace: 'default' });
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
    const watchB = died(b, buildB);
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
