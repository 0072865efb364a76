/**
 * Set-up steps that do not depend on each other run at the same time (issue 9 item 1, patch
 * `setup-concurrent`): prepareDestination (destination namespace and PVCs) and createEndpoint (which
 * ensures the namespace itself) are scheduled together, and both settle before the namespace goes on
 * or rolls back:
 * - the namespace workflow's history schedules both before either completes, and the set-up takes
 *   about the longer of the two, not their sum;
 * - a failed prepareDestination cancels the endpoint's wait (rollback starts at once);
 * - a failed createEndpoint still lets prepareDestination finish, so the PVCs it created are recorded
 *   and deleted by the rollback (deleteDestinationPVCsOnRollback).
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { type FerryActivities } from '../../src/activities/contract';
import { FailureType } from '../../src/core/types';
import type { MigrationPlan } from '../../src/plan/schema';
import { createWorker } from '../../src/worker';
import { migrationWorkflow } from '../../src/workflows';
import { namespaceWorkflowId } from '../../src/workflows/definitions';
import { FakeCluster } from './support/fake-cluster';
import { startTemporal, TEST_TUNING, testPlan, unique, workflowBundle } from './support/env';

jest.setTimeout(90_000);

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  [env] = await Promise.all([startTemporal(), workflowBundle()]);
});

afterAll(async () => {
  await env?.teardown();
});

const SOURCE = { shop: { pvcs: [{ name: 'data', bytes: 100 }, { name: 'logs', bytes: 100 }], workloads: [{ name: 'web', replicas: 1 }] } };

/** Sleeps `ms` while heartbeating; throws the activity's cancellation when cancelled. */
async function busy(ms: number): Promise<void> {
  const ctx = Context.current();
  for (let waited = 0; waited < ms; waited += 50) {
    ctx.heartbeat();
    await Promise.race([new Promise((r) => setTimeout(r, 50)), ctx.cancelled]);
  }
}

/** Runs a migration of `plan` with the fake's activities, some replaced; returns its handle once it ended. */
async function run(fake: FakeCluster, plan: MigrationPlan, replace: Partial<FerryActivities>): Promise<WorkflowHandle<typeof migrationWorkflow>> {
  const taskQueue = unique('setup');
  const worker = await createWorker({ connection: env.nativeConnection, taskQueue, activities: { ...fake.activities(), ...replace }, workflowBundle: await workflowBundle() });
  return worker.runUntil(async () => {
    const id = unique('setup');
    const handle = await env.client.workflow.start(migrationWorkflow, { taskQueue, workflowId: id, args: [{ migrationId: id, plan, tuning: TEST_TUNING }] });
    await handle.result().catch((e: unknown) => {
      if (!(e instanceof WorkflowFailedError)) throw e;
    });
    return handle;
  });
}

interface ActivityEvents {
  scheduled: number;
  scheduledAt: number;
  /** Event id and time of its completion, failure or cancellation. */
  closed?: { id: number; at: number; how: 'completed' | 'failed' | 'canceled' };
  cancelRequested?: number;
}

/** The first scheduling of each activity type in the namespace workflow's history, and how it closed. */
async function activityEvents(migration: WorkflowHandle, namespace: string): Promise<Record<string, ActivityEvents>> {
  const history = await env.client.workflow.getHandle(namespaceWorkflowId(migration.workflowId, namespace)).fetchHistory();
  const num = (v: unknown) => Number(String(v));
  const time = (e: temporal.api.history.v1.IHistoryEvent) => num(e.eventTime?.seconds) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
  const byScheduled = new Map<number, string>();
  const out: Record<string, ActivityEvents> = {};
  for (const e of history.events ?? []) {
    const id = num(e.eventId);
    const s = e.activityTaskScheduledEventAttributes;
    if (s) {
      const name = s.activityType!.name!;
      byScheduled.set(id, name);
      out[name] ??= { scheduled: id, scheduledAt: time(e) };
      continue;
    }
    const closed: [string, { scheduledEventId?: unknown } | null | undefined][] = [
      ['completed', e.activityTaskCompletedEventAttributes],
      ['failed', e.activityTaskFailedEventAttributes],
      ['canceled', e.activityTaskCanceledEventAttributes],
    ];
    for (const [how, attrs] of closed) {
      if (!attrs) continue;
      const name = byScheduled.get(num(attrs.scheduledEventId));
      if (name && out[name]?.scheduled === num(attrs.scheduledEventId)) out[name]!.closed ??= { id, at: time(e), how: how as 'completed' };
    }
    const cancel = e.activityTaskCancelRequestedEventAttributes;
    if (cancel) {
      const name = byScheduled.get(num(cancel.scheduledEventId));
      if (name) out[name]!.cancelRequested ??= id;
    }
  }
  return out;
}

test('prepareDestination and createEndpoint are scheduled together: both before either completes; the set-up lasts the longer one', async () => {
  const fake = new FakeCluster({ source: SOURCE });
  const acts = fake.activities();
  const handle = await run(fake, testPlan(), {
    prepareDestination: async (input) => (await busy(800), acts.prepareDestination(input)),
    createEndpoint: async (ctx) => (await busy(800), acts.createEndpoint(ctx)),
  });
  const ev = await activityEvents(handle, 'shop');
  const prep = ev.prepareDestination!;
  const endpoint = ev.createEndpoint!;
  expect([prep.closed?.how, endpoint.closed?.how]).toEqual(['completed', 'completed']);
  // Both scheduled (in the same workflow task) before either completed.
  expect(Math.max(prep.scheduled, endpoint.scheduled)).toBeLessThan(Math.min(prep.closed!.id, endpoint.closed!.id));
  // Overlap in time: from the first scheduling to the last completion, less than the sum (1.6 s).
  const span = Math.max(prep.closed!.at, endpoint.closed!.at) - Math.min(prep.scheduledAt, endpoint.scheduledAt);
  expect(span).toBeGreaterThanOrEqual(800);
  expect(span).toBeLessThan(1500);
  // createServer comes after both.
  expect(ev.createServer!.scheduled).toBeGreaterThan(Math.max(prep.closed!.id, endpoint.closed!.id));
  expect((await handle.describe()).status.name).toBe('COMPLETED');
});

test('a failed prepareDestination cancels the endpoint\'s wait: the namespace rolls back at once with prepareDestination\'s reason', async () => {
  const fake = new FakeCluster({ source: SOURCE });
  const acts = fake.activities();
  const started = Date.now();
  const handle = await run(fake, testPlan(), {
    prepareDestination: async () => {
      await busy(200);
      throw ApplicationFailure.nonRetryable('destination namespace shop is being deleted (Terminating)', FailureType.Preflight);
    },
    // A load-balancer address that never comes: the wait would last its whole timeout.
    createEndpoint: async (ctx) => (await busy(30_000), acts.createEndpoint(ctx)),
  });
  const ev = await activityEvents(handle, 'shop');
  expect(ev.prepareDestination!.closed?.how).toBe('failed');
  expect(ev.createEndpoint!.cancelRequested).toBeGreaterThan(ev.prepareDestination!.closed!.id);
  expect(ev.createEndpoint!.closed?.how).toBe('canceled');
  expect(Date.now() - started).toBeLessThan(20_000);
  const err = await handle.result().catch((e: unknown) => e);
  expect(String((err as WorkflowFailedError).cause?.message)).toMatch(/namespace shop rolled back: failed in phase prepare: .*being deleted \(Terminating\)/);
  expect(ev.cleanup).toBeDefined();
});

test('a failed createEndpoint lets prepareDestination finish: the PVCs it created are recorded and deleted by the rollback', async () => {
  const fake = new FakeCluster({ source: SOURCE });
  const acts = fake.activities();
  const handle = await run(fake, testPlan({ deleteDestinationPVCsOnRollback: true }), {
    prepareDestination: async (input) => (await busy(1000), acts.prepareDestination(input)),
    createEndpoint: async () => {
      await busy(100);
      throw ApplicationFailure.nonRetryable('LoadBalancer endpoint shop/ferry-endpoint not healthy: no load-balancer controller', FailureType.Config);
    },
  });
  const ev = await activityEvents(handle, 'shop');
  expect(ev.createEndpoint!.closed?.how).toBe('failed');
  expect(ev.prepareDestination!.closed?.how).toBe('completed');
  const err = await handle.result().catch((e: unknown) => e);
  expect(String((err as WorkflowFailedError).cause?.message)).toMatch(/namespace shop rolled back: failed in phase prepare: .*no load-balancer controller/);
  // prepareDestination created both PVCs; the rollback knew it and deleted them.
  expect(fake.journal().filter((e) => e.event === 'create' && e.object?.startsWith('destination/pvc/')).map((e) => e.object).sort()).toEqual(['destination/pvc/shop/data', 'destination/pvc/shop/logs']);
  expect(fake.objectsUnder('destination/pvc/')).toEqual([]);
  expect(ev.deleteDestinationPVCs!.closed?.how).toBe('completed');
});
