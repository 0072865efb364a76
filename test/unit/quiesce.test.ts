/**
 * Quiesce / unquiesce patches of every workload kind (pure functions of src/migration/quiesce.ts).
 * The objects are shaped like what the API server returns; patches are applied here with a JSON
 * merge patch (RFC 7386) implementation to check the round trip end to end.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { QuiesceRecord } from '../../src/core/types';
import { isQuiesced, PRE_QUIESCE_ANNOTATION, QUIESCE_NODE_SELECTOR_KEY, quiescePatch, unquiescePatch } from '../../src/migration/quiesce';
import { mergePatch } from '../support/fake-kube';

const ns = 'shop';
function obj(apiVersion: string, kind: string, spec: Record<string, unknown>, annotations?: Record<string, string>): KubernetesObject {
  return { apiVersion, kind, metadata: { name: `${kind.toLowerCase()}-1`, namespace: ns, resourceVersion: '7', ...(annotations ? { annotations } : {}) }, spec } as KubernetesObject;
}
const spec = (o: KubernetesObject) => (o as unknown as { spec: Record<string, any> }).spec;

/** Quiesce, apply, unquiesce, apply: returns every stage. */
function roundTrip(o: KubernetesObject) {
  const q = quiescePatch(o);
  const quiesced = q.patch ? mergePatch(o, q.patch) : o;
  const u = unquiescePatch(quiesced, q.record);
  const restored = u.patch ? mergePatch(quiesced, u.patch) : quiesced;
  return { q, quiesced, u, restored };
}

describe('quiescePatch / unquiescePatch', () => {
  const replicaKinds: [string, string][] = [
    ['apps/v1', 'Deployment'],
    ['apps/v1', 'StatefulSet'],
    ['apps/v1', 'ReplicaSet'],
    ['v1', 'ReplicationController'],
    ['apps.openshift.io/v1', 'DeploymentConfig'],
  ];
  it.each(replicaKinds)('%s %s: replicas to 0, recorded, annotated, restored', (apiVersion, kind) => {
    const o = obj(apiVersion, kind, { replicas: 3 });
    const { q, quiesced, u, restored } = roundTrip(o);
    expect(q.record).toMatchObject({ workload: { kind, namespace: ns, name: `${kind.toLowerCase()}-1` }, replicas: 3, changed: true });
    expect(spec(quiesced).replicas).toBe(0);
    expect(isQuiesced(quiesced)).toBe(true);
    expect(JSON.parse(quiesced.metadata!.annotations![PRE_QUIESCE_ANNOTATION]!)).toMatchObject({ replicas: 3, changed: true });
    expect(u.notes).toEqual([]);
    expect(spec(restored).replicas).toBe(3);
    expect(restored.metadata!.annotations ?? {}).not.toHaveProperty(PRE_QUIESCE_ANNOTATION);
  });

  it('Deployment without replicas counts as 1 (the API default)', () => {
    const { q, restored } = roundTrip(obj('apps/v1', 'Deployment', {}));
    expect(q.record.replicas).toBe(1);
    expect(spec(restored).replicas).toBe(1);
  });

  it('a paused Deployment stays paused: paused is recorded and never patched', () => {
    const o = obj('apps/v1', 'Deployment', { replicas: 2, paused: true });
    const { q, quiesced, u, restored } = roundTrip(o);
    expect(q.record.paused).toBe(true);
    expect(q.patch!.spec).toEqual({ replicas: 0 });
    expect(spec(quiesced).paused).toBe(true);
    expect(u.patch!.spec).toEqual({ replicas: 2 });
    expect(spec(restored)).toEqual({ replicas: 2, paused: true });
  });

  it('an unpaused Deployment records paused: false', () => {
    expect(quiescePatch(obj('apps/v1', 'Deployment', { replicas: 1 })).record.paused).toBe(false);
  });

  it('Job: parallelism to 0 and back', () => {
    const { q, quiesced, restored } = roundTrip(obj('batch/v1', 'Job', { parallelism: 4, completions: 8 }));
    expect(q.record).toMatchObject({ parallelism: 4, changed: true });
    expect(spec(quiesced)).toEqual({ parallelism: 0, completions: 8 });
    expect(spec(restored)).toEqual({ parallelism: 4, completions: 8 });
  });

  it('DaemonSet: an unsatisfiable nodeSelector key is added and removed, the prior selector kept', () => {
    const o = obj('apps/v1', 'DaemonSet', { template: { spec: { nodeSelector: { 'kubernetes.io/os': 'linux' }, containers: [{ name: 'c' }] } } });
    const { q, quiesced, restored } = roundTrip(o);
    expect(q.record.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(spec(quiesced).template.spec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', [QUIESCE_NODE_SELECTOR_KEY]: 'true' });
    expect(spec(quiesced).template.spec.containers).toEqual([{ name: 'c' }]);
    expect(spec(restored).template.spec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
  });

  it('DaemonSet without a nodeSelector records an empty one', () => {
    const { q, restored } = roundTrip(obj('apps/v1', 'DaemonSet', { template: { spec: {} } }));
    expect(q.record.nodeSelector).toEqual({});
    expect(spec(restored).template.spec.nodeSelector ?? {}).toEqual({});
  });

  it('CronJob (batch/v1): suspended and resumed', () => {
    const { q, quiesced, restored } = roundTrip(obj('batch/v1', 'CronJob', { schedule: '* * * * *' }));
    expect(q.record).toMatchObject({ suspend: false, changed: true, workload: { apiVersion: 'batch/v1', kind: 'CronJob' } });
    expect(spec(quiesced).suspend).toBe(true);
    expect(spec(restored).suspend).toBe(false);
  });

  it('an already-suspended CronJob is recorded suspend: true, changed: false, and is NOT resumed later', () => {
    const o = obj('batch/v1', 'CronJob', { schedule: '* * * * *', suspend: true });
    const q = quiescePatch(o);
    expect(q.record).toMatchObject({ suspend: true, changed: false });
    expect(q.patch).toBeUndefined();
    const u = unquiescePatch(o, q.record);
    expect(u.patch).toBeUndefined();
    expect(u.notes.join()).toMatch(/stays suspended/);
  });

  it('a CronJob ref recorded as batch/v1beta1 is normalised to batch/v1', () => {
    const q = quiescePatch(obj('batch/v1beta1', 'CronJob', { schedule: '@daily' }));
    expect(q.record.workload.apiVersion).toBe('batch/v1');
  });

  it('a Deployment already at 0 is recorded unchanged and not scaled up later', () => {
    const o = obj('apps/v1', 'Deployment', { replicas: 0 });
    const q = quiescePatch(o);
    expect(q.record).toMatchObject({ replicas: 0, changed: false });
    expect(q.patch).toBeUndefined();
    expect(unquiescePatch(o, q.record).patch).toBeUndefined();
  });

  it('quiescing twice keeps the ORIGINAL prior state from the annotation, not 0', () => {
    const o = obj('apps/v1', 'StatefulSet', { replicas: 5 });
    const first = quiescePatch(o);
    const once = mergePatch(o, first.patch);
    const second = quiescePatch(once);
    expect(second.record).toEqual(first.record);
    expect(second.record.replicas).toBe(5);
    expect(second.patch).toBeUndefined();
    // Someone scaled it back up between two quiesce attempts: re-quiesce, still remember 5.
    const scaledUp = mergePatch(once, { spec: { replicas: 2 } });
    const third = quiescePatch(scaledUp);
    expect(third.record.replicas).toBe(5);
    expect(third.patch).toEqual({ spec: { replicas: 0 } });
  });

  it('quiescing a suspended-by-Ferry CronJob again keeps suspend: false (original)', () => {
    const o = obj('batch/v1', 'CronJob', { schedule: '@hourly', suspend: false });
    const once = mergePatch(o, quiescePatch(o).patch);
    const again = quiescePatch(once);
    expect(again.record).toMatchObject({ suspend: false, changed: true });
    expect(unquiescePatch(once, again.record).patch).toEqual({ spec: { suspend: false }, metadata: { annotations: { [PRE_QUIESCE_ANNOTATION]: null } } });
  });

  it('replicas changed by an operator since quiesce are left as they are, with a note, and the annotation is removed', () => {
    const o = obj('apps/v1', 'Deployment', { replicas: 3 });
    const q = quiescePatch(o);
    const operatorScaled = mergePatch(mergePatch(o, q.patch), { spec: { replicas: 1 } });
    const u = unquiescePatch(operatorScaled, q.record);
    expect(u.patch).toEqual({ metadata: { annotations: { [PRE_QUIESCE_ANNOTATION]: null } } });
    expect(u.notes).toHaveLength(1);
    expect(u.notes[0]).toMatch(/replicas were changed to 1 since quiesce \(recorded 3\); left as is/);
  });

  it('a CronJob resumed by an operator is left alone; a Job whose parallelism changed too', () => {
    const cj = obj('batch/v1', 'CronJob', { schedule: '@daily' });
    const qc = quiescePatch(cj);
    const resumed = mergePatch(mergePatch(cj, qc.patch), { spec: { suspend: false } });
    const uc = unquiescePatch(resumed, qc.record);
    expect(uc.patch?.spec).toBeUndefined();
    expect(uc.notes[0]).toMatch(/already resumed/);

    const job = obj('batch/v1', 'Job', { parallelism: 2 });
    const qj = quiescePatch(job);
    const changed = mergePatch(mergePatch(job, qj.patch), { spec: { parallelism: 1 } });
    expect(unquiescePatch(changed, qj.record).patch?.spec).toBeUndefined();
  });

  it('a DaemonSet whose quiesce key was removed by an operator is left alone', () => {
    const ds = obj('apps/v1', 'DaemonSet', { template: { spec: { nodeSelector: { a: 'b' } } } });
    const q = quiescePatch(ds);
    const edited = mergePatch(mergePatch(ds, q.patch), { spec: { template: { spec: { nodeSelector: { [QUIESCE_NODE_SELECTOR_KEY]: null } } } } });
    const u = unquiescePatch(edited, q.record);
    expect(u.patch?.spec).toBeUndefined();
    expect(u.notes[0]).toMatch(/removed by someone else/);
  });

  it('unquiesce uses the given record even when the annotation is gone', () => {
    const o = obj('apps/v1', 'ReplicaSet', { replicas: 4 });
    const q = quiescePatch(o);
    const noAnnotation = mergePatch(mergePatch(o, q.patch), { metadata: { annotations: { [PRE_QUIESCE_ANNOTATION]: null } } });
    expect(unquiescePatch(noAnnotation, q.record).patch).toEqual({ spec: { replicas: 4 } });
  });

  it('an unreadable annotation is ignored (current state recorded)', () => {
    const o = obj('apps/v1', 'Deployment', { replicas: 2 }, { [PRE_QUIESCE_ANNOTATION]: 'not json' });
    expect(quiescePatch(o).record.replicas).toBe(2);
  });

  it('refuses kinds it cannot quiesce', () => {
    expect(() => quiescePatch(obj('v1', 'Pod', {}))).toThrow(/not a workload kind/);
  });

  it('the record stored in the annotation round-trips as the returned record', () => {
    const o = obj('apps/v1', 'Deployment', { replicas: 7, paused: false });
    const q = quiescePatch(o);
    const stored = JSON.parse((q.patch!.metadata as any).annotations[PRE_QUIESCE_ANNOTATION]) as Omit<QuiesceRecord, 'workload'>;
    expect({ ...stored, workload: q.record.workload }).toEqual(q.record);
  });
});
