/**
 * Worker Versioning settings (src/temporal/versioning.ts): the deployment read from the environment,
 * and the set-current policy a worker applies, against a scripted WorkflowService.
 */
import type { WorkflowService } from '@temporalio/client';
import { deploymentFromEnv, deploymentNameFor, ensureCurrent, ferryVersion, workerDeploymentOptions, type FerryDeployment } from '../../src/temporal/versioning';

describe('deploymentFromEnv', () => {
  it('defaults: deployment "ferry", build <version>-<code key>, set current always on the dev server, if-none elsewhere', () => {
    expect(ferryVersion()).toMatch(/^\d+\.\d+\.\d+/);
    expect(deploymentFromEnv({}, 'abcdef0123456789', { embedded: true, taskQueue: 'ferry' })).toEqual({ deploymentName: 'ferry', buildId: `${ferryVersion()}-abcdef0123456789`, setCurrent: 'always' });
    expect(deploymentFromEnv({}, 'k', { embedded: false, taskQueue: 'ferry' })?.setCurrent).toBe('if-none');
  });
  it('a task queue other than "ferry" has a deployment of its own', () => {
    expect(deploymentFromEnv({}, 'k', { embedded: false, taskQueue: 'team.a' })?.deploymentName).toBe('ferry-team-a');
    expect(deploymentNameFor('ferry')).toBe('ferry');
  });
  it('overrides, and off', () => {
    expect(deploymentFromEnv({ FERRY_BUILD_ID: 'b-2', FERRY_DEPLOYMENT_NAME: 'ferry-eu', FERRY_SET_CURRENT: 'never' }, 'k', { embedded: true, taskQueue: 'ferry' })).toEqual({
      deploymentName: 'ferry-eu',
      buildId: 'b-2',
      setCurrent: 'never',
    });
    expect(deploymentFromEnv({ FERRY_WORKER_VERSIONING: 'off' }, 'k', { embedded: true, taskQueue: 'ferry' })).toBeUndefined();
  });
  it('refuses invalid values, naming the variable', () => {
    expect(() => deploymentFromEnv({ FERRY_SET_CURRENT: 'sometimes' }, 'k', { embedded: true, taskQueue: 'ferry' })).toThrow(/FERRY_SET_CURRENT=sometimes: use always, if-none, never/);
    expect(() => deploymentFromEnv({ FERRY_BUILD_ID: 'a b' }, 'k', { embedded: true, taskQueue: 'ferry' })).toThrow(/FERRY_BUILD_ID/);
    expect(() => deploymentFromEnv({ FERRY_DEPLOYMENT_NAME: 'a.b' }, 'k', { embedded: true, taskQueue: 'ferry' })).toThrow(/FERRY_DEPLOYMENT_NAME.*no '\.'/);
    expect(() => deploymentFromEnv({ FERRY_WORKER_VERSIONING: 'maybe' }, 'k', { embedded: true, taskQueue: 'ferry' })).toThrow(/FERRY_WORKER_VERSIONING/);
  });
  it('worker options: versioned, PINNED', () => {
    expect(workerDeploymentOptions({ deploymentName: 'ferry', buildId: 'b', setCurrent: 'always' })).toEqual({
      version: { deploymentName: 'ferry', buildId: 'b' },
      useWorkerVersioning: true,
      defaultVersioningBehavior: 'PINNED',
    });
  });
});

/** A WorkflowService whose deployment has `current` and the versions of `seen()` (pollers seen). */
function service(state: { current?: string; seen: () => string[] }) {
  const sets: { buildId: string; conflictToken?: Uint8Array }[] = [];
  const svc = {
    describeWorkerDeployment: async () => ({
      conflictToken: new Uint8Array([1, 2]),
      workerDeploymentInfo: {
        routingConfig: state.current ? { currentDeploymentVersion: { buildId: state.current } } : {},
        versionSummaries: state.seen().map((buildId) => ({ deploymentVersion: { buildId } })),
      },
    }),
    setWorkerDeploymentCurrentVersion: async (req: { buildId: string; conflictToken?: Uint8Array }) => {
      sets.push(req);
      state.current = req.buildId;
      return {};
    },
  };
  return { svc: svc as unknown as WorkflowService, sets };
}

describe('ensureCurrent', () => {
  const d = (setCurrent: FerryDeployment['setCurrent']): FerryDeployment => ({ deploymentName: 'ferry', buildId: 'new', setCurrent });

  it('always: waits until the server has seen the build polling, then sets it current with the conflict token', async () => {
    let polls = 0;
    const { svc, sets } = service({ current: 'old', seen: () => (++polls >= 3 ? ['old', 'new'] : ['old']) });
    expect(await ensureCurrent(svc, 'default', d('always'), { intervalMs: 1 })).toEqual({ action: 'set', previous: 'old' });
    expect(sets).toEqual([expect.objectContaining({ buildId: 'new', conflictToken: new Uint8Array([1, 2]) })]);
    expect(polls).toBe(3);
  });
  it('by default re-reads every 0.25 s: a fresh worker takes migrations soon after the server sees its build', async () => {
    let polls = 0;
    const { svc } = service({ current: 'old', seen: () => (++polls >= 3 ? ['old', 'new'] : ['old']) });
    const started = Date.now();
    expect(await ensureCurrent(svc, 'default', d('always'))).toEqual({ action: 'set', previous: 'old' });
    // two waits between three reads: 0.5 s (1 s each before, 2 s in all)
    expect(Date.now() - started).toBeLessThan(1000);
  });
  it('if-none keeps another current build, and sets the first one', async () => {
    const kept = service({ current: 'old', seen: () => ['old', 'new'] });
    expect(await ensureCurrent(kept.svc, 'default', d('if-none'), { intervalMs: 1 })).toEqual({ action: 'kept', current: 'old' });
    expect(kept.sets).toEqual([]);
    const first = service({ seen: () => ['new'] });
    expect(await ensureCurrent(first.svc, 'default', d('if-none'), { intervalMs: 1 })).toEqual({ action: 'set' });
  });
  it('already current, never, and a build never seen polling (times out with the reason)', async () => {
    expect(await ensureCurrent(service({ current: 'new', seen: () => ['new'] }).svc, 'default', d('always'))).toEqual({ action: 'already-current' });
    const never = service({ seen: () => ['new'] });
    expect(await ensureCurrent(never.svc, 'default', d('never'))).toEqual({ action: 'skipped' });
    expect(never.sets).toEqual([]);
    await expect(ensureCurrent(service({ seen: () => [] }).svc, 'default', d('always'), { timeoutMs: 20, intervalMs: 5 })).rejects.toThrow(/no poller of build new/);
  });
});
