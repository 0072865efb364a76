/**
 * Lab drill (issue 13 §3): a same-cluster StorageClass move keeping the PVC names (plan keepPVCNames)
 * on the lab's src cluster: the sample namespace `kp-<run>` (hack/e2e/sample-app.sh, small profile:
 * PVC `files` and the StatefulSet's `data-db-0/1`, class lab-local) moved to class csi-hostpath in
 * place, through a real Temporal dev server and `ferry worker`, endpoint ClusterIP (one cluster).
 * Afterwards every PVC has its own name, class csi-hostpath, a new volume, and the same tree as before
 * (manifest.sh, owners included); its old volume is kept (Released, Retain) and named on the claim;
 * the new volume's reclaim policy is its class's again; the workloads run as before on the new
 * volumes; `ferry verify` compares each claim with the old volume it replaced (identical, the old
 * volume Released again after); no temporary PVC and no Ferry object is left.
 * Skipped unless the lab is up (FERRY_REQUIRE_LAB=1 makes that a failure).
 */
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { startMigration } from '../../src/cli/operations';
import { verifyMigration } from '../../src/cli/verify';
import type { MigrationState, WorkflowTuning } from '../../src/core/state';
import { KubeClient } from '../../src/k8s/client';
import { discoverNamespace } from '../../src/migration/discovery';
import { runPreflight } from '../../src/migration/preflight';
import { REPLACED_VOLUME_ANNOTATION } from '../../src/migration/rebind';
import { compareManifests, ferryObjects, kubectl, LAB_KUBECONFIG, labGate, labPlan, manifest, readyReplicas, seedSample, waitUntil, workloadState } from '../../hack/e2e/lib';
import { startLabWorker, type LabWorker } from '../../hack/e2e/lab-worker';

const labDescribe = labGate('same-cluster drill');

const ROOT = join(__dirname, '..', '..');
const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const RUN = Math.random().toString(36).slice(2, 7);
const NS = `kp-${RUN}`;
const ID = `kp-${RUN}`;
const t0 = Date.now();
const log = (s: string) => process.stdout.write(`[same-cluster drill +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

const claims = (): V1PersistentVolumeClaim[] => JSON.parse(kubectl('ferry-src', ['-n', NS, 'get', 'pvc', '-o', 'json'])).items;
const volume = (name: string): V1PersistentVolume => JSON.parse(kubectl('ferry-src', ['get', 'pv', name, '-o', 'json']));

labDescribe('same-cluster StorageClass move keeping the PVC names', () => {
  let lab: LabWorker | undefined;

  beforeAll(async () => {
    lab = await startLabWorker(ROOT, `kp-${RUN}`);
  }, 300_000);

  afterAll(async () => {
    await lab?.stop();
    if (process.env.FERRY_E2E_KEEP === '1') return;
    spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', 'ferry-src', 'delete', 'ns', NS, '--wait=false', '--ignore-not-found'], { timeout: 30000 });
    // the old volumes are kept (Retain) by design: the drill deletes them
    const pvs = JSON.parse(kubectl('ferry-src', ['get', 'pv', '-o', 'json'])).items as V1PersistentVolume[];
    for (const pv of pvs.filter((p) => p.spec?.claimRef?.namespace === NS && p.spec.persistentVolumeReclaimPolicy === 'Retain')) {
      spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', 'ferry-src', 'delete', 'pv', pv.metadata!.name!, '--wait=false'], { timeout: 30000 });
    }
  }, 120_000);

  test('every PVC ends with its own name on a volume of the new class, with the same tree; the old volume is kept', async () => {
    await seedSample(NS, { profile: 'small', owners: 'mixed', bigMiB: 16, sparse: '16M', dstNamespace: `${NS}-none` });
    const before = workloadState(NS);
    const ready = readyReplicas(NS);
    const original = Object.fromEntries(claims().map((c) => [c.metadata!.name!, c]));
    const names = Object.keys(original).sort();
    expect(names).toEqual(['data-db-0', 'data-db-1', 'files']);
    expect(Object.values(original).every((c) => c.spec?.storageClassName === 'lab-local')).toBe(true);
    const trees = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await manifest('ferry-src', NS, n)] as const)));
    log(`seeded ${NS}: ${names.join(', ')}`);

    // one cluster: the destination is the source's context
    const plan = labPlan({ destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' }, namespaces: [NS], keepPVCNames: true, storageClassMapping: { 'lab-local': 'csi-hostpath' }, stagePasses: 1, stageIntervalSeconds: 0, endpoint: { type: 'ClusterIP' }, security: { mode: 'preserve-ownership' } });
    // preflight refuses a PVC that would not move (no class mapping: lab-local onto lab-local)
    const src = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });
    const still = labPlan({ destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' }, namespaces: [NS], keepPVCNames: true });
    const discovery = await discoverNamespace(src, { mapping: still.namespaces[0]!, plan: still, migrationId: ID });
    expect(discovery.pvcs.map((p) => p.destinationName).every((n) => n.startsWith('ferry-'))).toBe(true);
    const refused = await runPreflight({ migrationId: ID, plan: still, discoveries: [discovery], source: { client: src }, destination: { client: src } });
    expect(refused.filter((p) => /keepPVCNames would move it to the StorageClass it is in \(lab-local\)/.test(p.message)).map((p) => p.subject).sort()).toEqual(names.map((n) => `pvc ${NS}/${n}`));

    await startMigration(lab!.session, plan, ID, TUNING);
    const s = await lab!.session.client.workflow.getHandle(ID).result().then(
      (x) => x as MigrationState,
      (e: unknown) => {
        if (e instanceof WorkflowFailedError && e.cause instanceof ApplicationFailure && e.cause.details?.[0]) return e.cause.details[0] as MigrationState;
        throw e;
      },
    );
    log(`migration ${s.status}${s.error ? `: ${s.error}` : ''}`);
    expect({ status: s.status, error: s.error }).toEqual({ status: 'succeeded', error: undefined });
    const result = s.namespaces[0]!.result!;
    expect(result.rebound!.map((r) => r.pvc).sort()).toEqual(names);
    // the sample's completed seed Job pod still named `files`: without its deletion the old claim
    // would stay Terminating (kubernetes.io/pvc-protection) and the move would hang. The sample's
    // CronJob `compact` (every minute, mounts files) may have left finished pods too, depending on
    // the minute the rebind runs in: those go the same way, and nothing else does.
    const deleted = result.rebound!.find((r) => r.pvc === 'files')!.deletedPods ?? [];
    expect(deleted).toContainEqual(expect.stringMatching(/^seed-/));
    for (const pod of deleted) expect(pod).toMatch(/^(seed|compact)-/);

    // every PVC: its own name, the new class, a new volume, the old one kept and named
    const after = Object.fromEntries(claims().map((c) => [c.metadata!.name!, c]));
    expect(Object.keys(after).sort()).toEqual(names); // no temporary PVC left
    for (const n of names) {
      const c = after[n]!;
      const oldVolume = original[n]!.spec!.volumeName!;
      expect({ n, cls: c.spec?.storageClassName, phase: c.status?.phase }).toEqual({ n, cls: 'csi-hostpath', phase: 'Bound' });
      expect(c.spec!.volumeName).not.toBe(oldVolume);
      expect(c.metadata!.annotations?.[REPLACED_VOLUME_ANNOTATION]).toBe(oldVolume);
      expect(c.metadata!.labels).toEqual(original[n]!.metadata!.labels ?? {});
      const old = volume(oldVolume);
      expect({ phase: old.status?.phase, policy: old.spec?.persistentVolumeReclaimPolicy }).toEqual({ phase: 'Released', policy: 'Retain' });
      expect(volume(c.spec!.volumeName!).spec!.persistentVolumeReclaimPolicy).toBe('Delete');
      const cmp = compareManifests(trees[n]!, await manifest('ferry-src', NS, n));
      log(`  ${n}: ${oldVolume} -> ${c.spec!.volumeName}: ${cmp.entries} entries, ${(cmp.bytes / 1048576).toFixed(1)} MiB, ${cmp.differences.length} differences`);
      expect({ n, differences: cmp.differences.slice(0, 20) }).toEqual({ n, differences: [] });
    }
    // ferry verify compares each claim (its new volume) with the old volume it replaced, through a
    // temporary claim bound to the old volume and deleted after: the old volumes end Released again
    const verified = await verifyMigration(ID, plan, { source: src, destination: src }, { hashes: true });
    log(`ferry verify: ${verified.results.map((r) => `${r.sourcePVC} -> ${r.destinationPVC}: ${r.identical ? 'identical' : JSON.stringify(r.differences.slice(0, 5))}`).join('; ')}`);
    expect(verified.results.map((r) => ({ source: r.sourcePVC, destination: r.destinationPVC, identical: r.identical }))).toEqual(
      names.map((n) => ({ source: `${n} (old volume ${original[n]!.spec!.volumeName})`, destination: n, identical: true })),
    );
    expect(claims().map((c) => c.metadata!.name!).sort()).toEqual(names);
    for (const n of names) expect({ n, phase: volume(original[n]!.spec!.volumeName!).status?.phase }).toEqual({ n, phase: 'Released' });

    // the applications came back on the new volumes
    expect(workloadState(NS)).toEqual(before);
    await waitUntil(() => JSON.stringify(readyReplicas(NS)) === JSON.stringify(ready), 'the workloads to be ready again', 180_000);
    expect(ferryObjects([NS])).toEqual([]);
  }, 900_000);
});
