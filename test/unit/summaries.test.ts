/**
 * The Temporal UI texts of src/workflows/summaries.ts: summaries name the PVC, pass and clusters; the
 * current details say what the workflow waits for with the exact `ferry` command (test/ui shows them in
 * a real browser).
 */
import { projectedFinalSyncSeconds, type MigrationState, type NamespaceState, type PVCState } from '../../src/core/state';
import type { TransferRequest } from '../../src/activities/contract';
import {
  activitySummary,
  migrationDetails,
  migrationSummary,
  namespaceDetails,
  namespaceWaitingFor,
  pvcSyncSummary,
} from '../../src/workflows/summaries';
import { testPlan } from '../workflows/support/env';

const AT = '2026-12-05T07:30:00.000Z';

function pvc(name: string, over: Partial<PVCState> = {}): PVCState {
  return { name, destinationName: name, capacityBytes: 1000, status: 'synced', syncs: 1, stageSyncsDone: 1, bytesSent: 0, errors: [], decisions: [], ...over };
}

function nsState(over: Partial<NamespaceState> = {}): NamespaceState {
  return {
    migrationId: 'm1',
    source: 'shop',
    destination: 'shop',
    workflowId: 'm1/ns/shop',
    phase: 'stage',
    status: 'running',
    startedAt: AT,
    phases: [],
    cutover: 'auto',
    cutoverRequested: false,
    stagePassesDone: 1,
    pvcs: [],
    workloads: 2,
    touched: true,
    prepared: true,
    createdPVCs: [],
    quiesceStarted: false,
    quiesced: [],
    unquiesced: false,
    finalSynced: false,
    warnings: [],
    runs: 1,
    ...over,
  } as NamespaceState;
}

const lastSync = (durationSeconds: number, bytesSent: number) => ({ pass: 1, final: false, outcome: 'success', exitCode: 0, bytesSent, message: 'ok', durationSeconds, finishedAt: AT }) as PVCState['lastSync'];

describe('summaries', () => {
  const plan = testPlan({ namespaces: ['shop', 'blog:blog-new'] });

  it('name the migration, its namespaces and clusters; a sync its PVC, pass and kind', () => {
    expect(migrationSummary('m1', plan)).toBe('Ferry migration m1: shop, blog → blog-new (src → dst)');
    expect(pvcSyncSummary('m1', 'shop', 'data', 3, true)).toBe('PVC shop/data: final sync (pass 3) of migration m1');
  });

  it('say which PVC and which cluster an activity works on', () => {
    const req = { migrationId: 'm1', plan, namespace: plan.namespaces[1]!, pvc: { name: 'content', destinationName: 'content' }, final: false, pass: 2 } as unknown as TransferRequest;
    expect(activitySummary('runTransfer', req)).toBe('stage sync (pass 2) of PVC blog/content in src → blog-new/content in dst');
    expect(activitySummary('quiesce', { migrationId: 'm1', plan, workloads: [{}, {}] })).toBe('quiesce 2 workload(s) in src');
    expect(activitySummary('createServer', { migrationId: 'm1', plan, namespace: plan.namespaces[1]! })).toBe('transfer server in dst/blog-new');
  });
});

describe('namespace details', () => {
  const manual = testPlan({ cutover: 'manual', stagePasses: 1 });

  it('give the exact commands for a failed PVC', () => {
    const st = nsState({ pvcs: [pvc('db', { status: 'failed', errors: [{ pass: 2, final: false, type: 'FerryNoSpace', message: 'No space left on device', at: AT }] })] });
    const waits = namespaceWaitingFor(st, manual);
    expect(waits).toHaveLength(1);
    expect(waits[0]).toContain('(pass 2, FerryNoSpace): No space left on device');
    for (const action of ['retry', 'skip', 'abort']) expect(waits[0]).toContain(`\`ferry ${action} m1 --pvc db --namespace shop\``);
  });

  it('give the cutover command in manual mode once ready, and nothing in auto mode', () => {
    expect(namespaceWaitingFor(nsState({ phase: 'ready-for-cutover', cutover: 'manual' }), manual).join()).toContain('`ferry cutover m1 --namespace shop`');
    expect(namespaceWaitingFor(nsState({ phase: 'ready-for-cutover', cutover: 'manual', cutoverRequested: true }), manual)).toEqual([]);
    expect(namespaceWaitingFor(nsState({ phase: 'stage' }), testPlan())).toEqual([]);
    expect(namespaceWaitingFor(nsState({ status: 'succeeded', phase: 'succeeded' }), manual)).toEqual([]);
  });

  it('say when the next scheduled stage pass starts, beside the operator\'s cutover command; a held-back cutover still says only why', () => {
    const at = '2027-01-01T00:00:00.000Z';
    const waits = namespaceWaitingFor(nsState({ phase: 'ready-for-cutover', cutover: 'manual', nextStageAt: at }), manual);
    expect(waits).toEqual([expect.stringContaining('`ferry cutover m1 --namespace shop`'), `Next stage pass (stageSchedule): ${at}`]);
    const reason = 'cutover held back: ...';
    expect(namespaceWaitingFor(nsState({ phase: 'ready-for-cutover', cutover: 'manual', cutoverBlocked: { pvcs: ['a'], reason, since: AT } }), manual)).toEqual([`**Cutover held back**: ${reason}`]);
  });

  it('pass on why cutover is held back (its --force command included)', () => {
    const reason = 'cutover held back: ... or force it: ferry cutover m1 --namespace shop --force';
    expect(namespaceWaitingFor(nsState({ cutoverBlocked: { pvcs: ['a'], reason, since: AT } }), testPlan())).toEqual([`**Cutover held back**: ${reason}`]);
  });

  it('project the downtime from the last stage pass: the longest sync, or their sum over the final concurrency', () => {
    const pvcs = [pvc('a', { lastSync: lastSync(10, 1) }), pvc('b', { lastSync: lastSync(4, 1) }), pvc('c', { lastSync: lastSync(4, 1) })];
    expect(projectedFinalSyncSeconds(pvcs, 20)).toBe(10);
    expect(projectedFinalSyncSeconds(pvcs, 1)).toBe(18);
    expect(projectedFinalSyncSeconds([pvc('a')], 1)).toBeUndefined();
  });

  it('show PVCs, bytes, rate and projected downtime', () => {
    const st = nsState({ phase: 'ready-for-cutover', cutover: 'manual', pvcs: [pvc('a', { bytesSent: 2048, lastSync: lastSync(2, 2048) }), pvc('b', { status: 'syncing', running: { workflowId: 'w', pass: 2, final: false, startedAt: AT } })] });
    const text = namespaceDetails(st, manual, AT);
    expect(text).toContain('phase **ready-for-cutover**');
    expect(text).toContain('PVCs synced: 1 of 2');
    expect(text).toContain('Syncing now: b (pass 2)');
    expect(text).toContain('Sent: 2.00 KiB · rate of the latest syncs: 1.00 KiB/s per PVC');
    expect(text).toContain('Projected downtime: ≈ 2.0s');
    expect(text).toContain('`ferry cutover m1 --namespace shop`');
    expect(text).toContain('_Updated 07:30:00 UTC_');
  });
});

describe('migration details', () => {
  it('list every namespace and every decision awaited, with commands', () => {
    const st = {
      migrationId: 'm1',
      workflowId: 'm1',
      phase: 'awaiting-decision',
      status: 'running',
      startedAt: AT,
      phases: [],
      problems: [],
      totals: { namespaces: 2, pvcs: 3, pvcsDone: 0, pvcsSkipped: 0, pvcsFailed: 0, bytesSent: 0 },
      namespaces: [
        { source: 'shop', destination: 'shop', workflowId: 'm1/ns/shop', phase: 'ready-for-cutover', status: 'running', stagePassesDone: 1, pvcs: 2, pvcsSynced: 2, bytesSent: 3 * 1024 * 1024, failedPVCs: 0, awaitingDecision: [], images: { status: 'disabled' } },
        { source: 'blog', destination: 'blog-new', workflowId: 'm1/ns/blog', phase: 'stage', status: 'running', stagePassesDone: 0, pvcs: 1, failedPVCs: 1, awaitingDecision: ['content'], images: { status: 'disabled' } },
      ],
    } as unknown as MigrationState;
    const text = migrationDetails(st, AT);
    expect(text).toContain('PVCs synced: 2 of 3 · sent: 3.00 MiB');
    expect(text).toContain('- blog → blog-new: stage · PVCs synced 0 of 1');
    expect(text).toContain('`ferry cutover m1 --namespace shop`');
    expect(text).toContain('`ferry retry m1 --pvc content --namespace blog`');
    expect(text).toContain('`ferry rollback m1`');
  });
});
