/**
 * Lab drill (issue 11 §2, plan verifyDestination): the checkDestination activity on real kubelets'
 * readiness, in a destination namespace `vd-<run>` of the dst cluster where the "migrated" PVC `app`
 * holds a marker file and the operator's workloads (as GitOps would apply them after cutover) are:
 * - Deployment `good` mounting `app`, Ready only when the marker is there (readiness probe);
 * - Deployment `bad` mounting `logs`, whose readiness probe looks for a file that is not there.
 * The check must report `app` Ready and `logs` not Ready (with the pod's state), as a report within its
 * limit, not an error; once the missing file appears, the next check is ok.
 * Skipped unless the lab is up (FERRY_REQUIRE_LAB=1 makes that a failure).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../src/activities';
import type { DestinationCheck } from '../../src/core/types';
import { kubectl, labGate, labPlan, waitUntil } from '../../hack/e2e/lib';

const labDescribe = labGate('destination check drill');

const RUN = Math.random().toString(36).slice(2, 7);
const NS = `vd-${RUN}`;

function deployment(name: string, claim: string, readyWhen: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'app',
              image: 'ferry.local/lab/busybox:1',
              imagePullPolicy: 'IfNotPresent',
              command: ['sh', '-c', 'sleep 3600'],
              readinessProbe: { exec: { command: ['test', '-f', readyWhen] }, periodSeconds: 1 },
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
            },
          ],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }],
        },
      },
    },
  };
}

labDescribe('verifyDestination on the lab', () => {
  const activities = createActivities({ pollIntervalSeconds: 1 });
  const plan = labPlan({ namespaces: [NS], verifyDestination: true, timeouts: { verifyDestinationSeconds: 30 } });
  const check = (claims: { name: string; expected: boolean }[]) =>
    new MockActivityEnvironment({ startToCloseTimeoutMs: 300_000 } as never).run(activities.checkDestination, { migrationId: `vd-${RUN}`, plan, namespace: plan.namespaces[0]!, claims }) as Promise<DestinationCheck>;

  beforeAll(async () => {
    kubectl('ferry-dst', ['create', 'namespace', NS]);
    for (const pvc of ['app', 'logs']) {
      kubectl('ferry-dst', ['-n', NS, 'apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: pvc }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '64Mi' } } } }));
    }
    // the "migrated" data: a marker in app
    kubectl('ferry-dst', ['-n', NS, 'apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'seed' },
      spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'ferry.local/lab/busybox:1', imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', 'echo migrated > /data/marker'], volumeMounts: [{ name: 'd', mountPath: '/data' }] }], volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'app' } }] },
    }));
    await waitUntil(() => kubectl('ferry-dst', ['-n', NS, 'get', 'pod', 'seed', '-o', 'jsonpath={.status.phase}']) === 'Succeeded', 'the seed pod');
    kubectl('ferry-dst', ['-n', NS, 'delete', 'pod', 'seed']);
    kubectl('ferry-dst', ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [deployment('good', 'app', '/data/marker'), deployment('bad', 'logs', '/data/ready')] }));
  }, 300_000);

  afterAll(() => {
    kubectl('ferry-dst', ['delete', 'namespace', NS, '--wait=false']);
  });

  it('reports the PVC whose pod is not Ready, within its limit, and is ok once it is', async () => {
    const claims = [
      { name: 'app', expected: true },
      { name: 'logs', expected: true },
    ];
    const first = await check(claims);
    console.log(`[destination check drill] first: ok=${first.ok} in ${first.seconds.toFixed(1)} s: ${first.message}`);
    expect(first.ok).toBe(false);
    expect(first.seconds).toBeGreaterThanOrEqual(29);
    const [app, logs] = first.pvcs;
    expect(app).toMatchObject({ pvc: 'app', ready: true, pods: [expect.objectContaining({ name: expect.stringMatching(/^good-/), ready: true, state: 'Ready' })] });
    expect(logs).toMatchObject({ pvc: 'logs', ready: false, pods: [expect.objectContaining({ name: expect.stringMatching(/^bad-/), ready: false })] });
    expect(first.message).toMatch(/^not Ready after 30 s: logs: bad-\S+ phase Running; container app: running/);

    // the operator fixes it: the file the probe wants appears
    const bad = kubectl('ferry-dst', ['-n', NS, 'get', 'pods', '-l', 'app=bad', '-o', 'jsonpath={.items[0].metadata.name}']);
    kubectl('ferry-dst', ['-n', NS, 'exec', bad, '--', 'touch', '/data/ready']);
    const second = await check(claims);
    console.log(`[destination check drill] second: ok=${second.ok} in ${second.seconds.toFixed(1)} s: ${second.message}`);
    expect(second).toMatchObject({ ok: true, message: '2 PVC(s) mounted by Ready pods' });
    expect(second.seconds).toBeLessThan(20);
  }, 300_000);
});
