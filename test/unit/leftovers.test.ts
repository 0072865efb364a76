/**
 * `ferry cleanup`'s decisions (review findings A1, A2 on issue 8): which namespaces it restores, from
 * the namespace workflows' last state (src/cli/cleanup.ts namespaceVerdict), and which quiesced
 * workloads it restores in the clusters (src/migration/leftovers.ts restoreQuiesced, over FakeKube).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { NamespaceWorkflowStatus } from '../../src/activities/contract';
import { namespaceVerdict } from '../../src/cli/cleanup';
import { kubeMigrationClusters } from '../../src/migration/leftovers';
import { PRE_QUIESCE_ANNOTATION } from '../../src/migration/quiesce';
import { parsePlan } from '../../src/plan/load';
import type { NamespaceState } from '../../src/core/state';
import { FakeKube } from '../support/fake-kube';

const ns = 'shop';
const ID = 'mig-b';
const plan = (extra: Record<string, unknown> = {}) => parsePlan({ source: { context: 'src' }, destination: { context: 'dst' }, namespaces: [ns], ...extra });
const pvc = (name: string): KubernetesObject =>
  ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: ns }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } }, status: { phase: 'Bound' } }) as KubernetesObject;
/** A Deployment scaled to 0 mounting `claim`, with a pre-quiesce annotation holding `record`. */
const quiescedDeployment = (name: string, claim: string, record: object): KubernetesObject =>
  ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns, uid: `${name}-uid`, annotations: { [PRE_QUIESCE_ANNOTATION]: JSON.stringify(record) } },
    spec: { replicas: 0, template: { spec: { containers: [{ name: 'c', volumeMounts: [{ name: 'v', mountPath: '/d' }] }], volumes: [{ name: 'v', persistentVolumeClaim: { claimName: claim } }] } } },
  }) as KubernetesObject;
const replicas = (kube: FakeKube, name: string) => (kube.find('Deployment', ns, name) as unknown as { spec: { replicas: number } }).spec.replicas;

describe('restoreQuiesced (A2: one policy for annotations without a migration id)', () => {
  it("restores only this migration's annotations; one without id (an older Ferry's keepSourceQuiesced) or of another migration stays, noted", async () => {
    const kube = new FakeKube([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
      pvc('data'),
      pvc('logs'),
      pvc('cache'),
      quiescedDeployment('web', 'data', { replicas: 3, changed: true, migrationId: ID }),
      quiescedDeployment('legacy', 'logs', { replicas: 2, changed: true }),
      quiescedDeployment('other', 'cache', { replicas: 4, changed: true, migrationId: 'mig-a' }),
    ]);
    const clusters = kubeMigrationClusters(kube.client(), new FakeKube().client());
    const out = await clusters.restoreQuiesced(ID, plan(), new Map());
    expect(out.restored).toEqual([`Deployment ${ns}/web`]);
    expect(replicas(kube, 'web')).toBe(3);
    expect(replicas(kube, 'legacy')).toBe(0);
    expect(replicas(kube, 'other')).toBe(0);
    expect(out.notes).toEqual(
      expect.arrayContaining([expect.stringMatching(/Deployment shop\/legacy was quiesced by an unknown migration .*left as it is/), expect.stringMatching(/Deployment shop\/other was quiesced by migration mig-a; left as it is/)]),
    );
  });

  it('a namespace the caller leaves is not touched, with the reason', async () => {
    const kube = new FakeKube([pvc('data'), quiescedDeployment('web', 'data', { replicas: 3, changed: true, migrationId: ID })]);
    const out = await kubeMigrationClusters(kube.client(), new FakeKube().client()).restoreQuiesced(ID, plan(), new Map([[ns, 'cut over with keepSourceQuiesced: true; its source workloads stay down']]));
    expect(out).toEqual({ restored: [], notes: ['namespace shop: cut over with keepSourceQuiesced: true; its source workloads stay down'] });
    expect(replicas(kube, 'web')).toBe(0);
  });
});

describe('namespaceVerdict (A1, B9: decided from the namespace workflow, not from the clusters)', () => {
  const state = (s: Partial<NamespaceState>) => ({ finalSynced: false, status: 'rolled-back', unquiesced: false, ...s }) as NamespaceState;
  const closed = (lastState?: NamespaceState, status: NamespaceWorkflowStatus['status'] = 'TERMINATED'): NamespaceWorkflowStatus => ({
    workflowId: `${ID}--${ns}`,
    status,
    ...(lastState ? { lastState } : { stateError: 'its state query: no answer within 10 s' }),
  });

  it('did not cut over: restored and its cutover marks removed, as its rollback would', () => {
    expect(namespaceVerdict(closed(state({ finalSynced: false, status: 'running' })), true, ID)).toEqual({ restore: true, clearCutoverMarks: true });
  });

  it.each([
    ['keepSourceQuiesced: true', true, /keepSourceQuiesced: true; its source workloads stay down/],
    ['the stored plan unreadable', undefined, /cannot be read.*stay down/],
  ])('cut over with %s: left down, marks kept', (_what, keep, why) => {
    for (const st of [state({ finalSynced: true, status: 'running' }), state({ finalSynced: true, status: 'succeeded' })]) {
      const v = namespaceVerdict(closed(st, 'COMPLETED'), keep, ID);
      expect(v).toMatchObject({ restore: false, clearCutoverMarks: false });
      expect(v.why).toMatch(why);
    }
  });

  it('cut over with keepSourceQuiesced: false: restored (as the workflow does after its final sync), marks kept', () => {
    expect(namespaceVerdict(closed(state({ finalSynced: true, status: 'running' })), false, ID)).toEqual({ restore: true, clearCutoverMarks: false });
  });

  it('last state unreadable: nothing touched, and the way out named', () => {
    const v = namespaceVerdict(closed(undefined), false, ID);
    expect(v).toMatchObject({ restore: false, clearCutoverMarks: false });
    expect(v.why).toMatch(/unknown .*no answer within 10 s.*`ferry worker`.*`ferry cleanup mig-b` again/);
  });

  it('never started: restored (only annotations naming this migration are), no marks to remove', () => {
    expect(namespaceVerdict({ workflowId: 'x', status: 'NOT_FOUND' }, true, ID)).toEqual({ restore: true, clearCutoverMarks: false });
  });
});
