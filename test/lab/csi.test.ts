/**
 * Drill of the lab's CSI stack (hack/lab/csi.sh) in both clusters, on the real components: the
 * kubelet's CSI volume plugin, kubernetes-csi external-provisioner, external-snapshotter
 * (snapshot-controller + csi-snapshotter) and the snapshot CRDs, with the lab's driver
 * lab-hostpath.csi.ferry.local (StorageClass csi-hostpath, VolumeSnapshotClass
 * csi-hostpath-snapclass).
 *
 * Per cluster, in namespace lab-csi-<random>:
 *   1. a Filesystem PVC and a Block PVC on csi-hostpath; a pod (fsGroup 2000) writes a token to
 *      the filesystem, keeps appending numbered records, and writes the token to the block device;
 *   2. while it writes, a VolumeSnapshot of each PVC (one naming no class: the default class is
 *      taken) and a VolumeGroupSnapshot of both (label selector), all readyToUse;
 *   3. PVCs restored from both snapshots (dataSource VolumeSnapshot; the filesystem one larger than
 *      its source), from the group's member snapshot of the filesystem PVC, and clones of both PVCs
 *      (dataSource PVC);
 *   4. a pod reads the token back from all of them, checks that both restored record logs are a
 *      prefix without a torn record (the snapshots are one point in time) and that the larger
 *      restore grew;
 *   5. everything is deleted: no PV, VolumeSnapshotContent, VolumeGroupSnapshotContent or driver
 *      image file of this run is left.
 *
 * Skipped when the lab or its CSI stack is not up, unless FERRY_REQUIRE_LAB=1 (then it fails).
 * Run alone: FERRY_REQUIRE_LAB=1 npx jest --runInBand --forceExit test/lab/csi.test.ts
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_STATE, kubectl, labUnavailable, waitUntil } from '../../hack/e2e/lib';

const DRIVER = 'lab-hostpath.csi.ferry.local';
const IMAGE = 'ferry.local/lab/busybox:1';
type Cluster = 'src' | 'dst';
const ctx = (c: Cluster) => `ferry-${c}` as const;

/** Why the CSI drill cannot run: the lab is down, or `hack/lab/csi.sh status` fails. */
function csiUnavailable(): string | undefined {
  const lab = labUnavailable(['kubectl']);
  if (lab) return lab;
  const r = spawnSync('bash', [join(__dirname, '../../hack/lab/csi.sh'), 'status'], { encoding: 'utf8', timeout: 60000 });
  return r.status === 0 ? undefined : `hack/lab/csi.sh status failed: ${(r.stdout + r.stderr).trim().replace(/\n\s*/g, ' | ')}`;
}
const unavailable = csiUnavailable();
if (unavailable && process.env.FERRY_REQUIRE_LAB === '1') throw new Error(`FERRY_REQUIRE_LAB=1 but the lab's CSI stack is not available: ${unavailable}; run: bash hack/lab/lab.sh up`);
if (unavailable) console.warn(`SKIPPED lab CSI drill: ${unavailable}`);
const labDescribe = unavailable ? describe.skip : describe;

const NS = `lab-csi-${randomBytes(3).toString('hex')}`;
const TOKEN = `token-${randomBytes(6).toString('hex')}`;
const RECORDS = 300000; // ~4 MB of "record N" lines: the writer is still at it when the snapshot is taken

const apply = (c: Cluster, obj: object) => kubectl(ctx(c), ['apply', '-n', NS, '-f', '-'], JSON.stringify(obj));
const getJson = (c: Cluster, args: string[]) => JSON.parse(kubectl(ctx(c), ['get', ...args, '-o', 'json']));

function pvc(name: string, size: string, o: { block?: boolean; from?: { kind: 'VolumeSnapshot' | 'PersistentVolumeClaim'; name: string } } = {}) {
  return {
    apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, labels: { 'lab-csi-group': o.from ? 'no' : 'yes' } },
    spec: {
      storageClassName: 'csi-hostpath', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } },
      volumeMode: o.block ? 'Block' : 'Filesystem',
      ...(o.from ? { dataSource: { kind: o.from.kind, name: o.from.name, ...(o.from.kind === 'VolumeSnapshot' ? { apiGroup: 'snapshot.storage.k8s.io' } : {}) } } : {}),
    },
  };
}

/**
 * A pod running `script` with the Filesystem PVCs `fs` at /fs0, /fs1 … and the Block PVCs `block` at
 * /dev/blk0, /dev/blk1 …; as root (a block device node in a container is root's, as on any
 * cluster), with fsGroup 2000 (applied by the kubelet to the filesystems: CSIDriver fsGroupPolicy File).
 */
function pod(name: string, script: string, fs: string[], block: string[]) {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: {
      restartPolicy: 'Never', terminationGracePeriodSeconds: 1,
      securityContext: { runAsUser: 0, fsGroup: 2000 },
      containers: [{
        name: 'main', image: IMAGE, imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', script],
        volumeMounts: fs.map((_, i) => ({ name: `fs${i}`, mountPath: `/fs${i}` })),
        volumeDevices: block.map((_, i) => ({ name: `blk${i}`, devicePath: `/dev/blk${i}` })),
      }],
      volumes: [...fs.map((c, i) => ({ name: `fs${i}`, persistentVolumeClaim: { claimName: c } })), ...block.map((c, i) => ({ name: `blk${i}`, persistentVolumeClaim: { claimName: c } }))],
    },
  };
}

async function podLog(c: Cluster, name: string, phase: 'Running' | 'Succeeded'): Promise<string> {
  const p = await waitUntil(() => {
    const s = getJson(c, ['pod', '-n', NS, name]).status;
    if (s.phase === 'Failed') throw new Error(`pod ${name} failed: ${kubectl(ctx(c), ['logs', '-n', NS, name])}`);
    return s.phase === phase || s.phase === 'Succeeded' ? s : undefined;
  }, `${c} pod ${name} ${phase}`, 90_000, 500);
  expect(['Running', 'Succeeded']).toContain(p.phase);
  return kubectl(ctx(c), ['logs', '-n', NS, name]);
}

const bound = (c: Cluster, name: string) => waitUntil(() => {
  const p = getJson(c, ['pvc', '-n', NS, name]);
  return p.status?.phase === 'Bound' ? p : undefined;
}, `${c} PVC ${name} Bound`, 60_000, 500);

labDescribe('lab CSI stack (hack/lab/csi.sh): provision, snapshot, restore, clone, block', () => {
  beforeAll(() => {
    for (const c of ['src', 'dst'] as const) kubectl(ctx(c), ['create', 'namespace', NS]);
  });
  afterAll(() => {
    for (const c of ['src', 'dst'] as const) spawnSync('kubectl', ['--kubeconfig', join(LAB_STATE, 'kubeconfig'), '--context', ctx(c), 'delete', 'namespace', NS, '--wait=false'], { timeout: 30000 });
  });

  test.each(['src', 'dst'] as const)('%s', async (c) => {
    // the driver is registered with the node's kubelet (CSINode) and the classes are in place
    const csinode = getJson(c, ['csinode', `${c}-node1`]);
    expect(csinode.spec.drivers.map((d: { name: string }) => d.name)).toContain(DRIVER);
    expect(getJson(c, ['storageclass', 'csi-hostpath']).provisioner).toBe(DRIVER);
    expect(getJson(c, ['volumesnapshotclass', 'csi-hostpath-snapclass']).driver).toBe(DRIVER);
    await waitUntil(() => getJson(c, ['serviceaccount', '-n', NS, 'default']), `${c} default ServiceAccount`, 60_000, 500);

    // 1. provision; a writer that is still writing when the snapshots are taken
    apply(c, pvc('data', '32Mi'));
    apply(c, pvc('raw', '8Mi', { block: true }));
    const data = await bound(c, 'data');
    const raw = await bound(c, 'raw');
    const pv = getJson(c, ['pv', data.spec.volumeName]);
    expect(pv.spec.csi.driver).toBe(DRIVER);
    expect(pv.spec.capacity.storage).toBe('32Mi');
    expect(getJson(c, ['pv', raw.spec.volumeName]).spec.volumeMode).toBe('Block');
    apply(c, pod('writer', `set -e
      echo ${TOKEN} > /fs0/token
      printf ${TOKEN} | dd of=/dev/blk0 bs=512 count=1 conv=sync 2>/dev/null; sync
      : > /fs0/log; echo ready; i=0; while [ $i -lt ${RECORDS} ]; do i=$((i+1)); echo "record $i"; done >> /fs0/log
      echo done; sleep 3600`, ['data'], ['raw']));
    expect(await waitUntil(async () => (await podLog(c, 'writer', 'Running')).includes('ready') && 'ok', `${c} writer ready`, 60_000, 300)).toBe('ok');

    // 2. snapshots while it writes
    // snap-raw names no class: the driver's default class (annotated) is taken
    for (const [name, source, cls] of [['snap-data', 'data', 'csi-hostpath-snapclass'], ['snap-raw', 'raw', undefined]]) {
      apply(c, { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', metadata: { name }, spec: { ...(cls ? { volumeSnapshotClassName: cls } : {}), source: { persistentVolumeClaimName: source } } });
    }
    apply(c, { apiVersion: 'groupsnapshot.storage.k8s.io/v1', kind: 'VolumeGroupSnapshot', metadata: { name: 'group' }, spec: { volumeGroupSnapshotClassName: 'csi-hostpath-groupsnapclass', source: { selector: { matchLabels: { 'lab-csi-group': 'yes' } } } } });
    const snaps = await waitUntil(() => {
      const s = ['snap-data', 'snap-raw'].map((n) => getJson(c, ['volumesnapshot', '-n', NS, n]).status);
      return s.every((x) => x?.readyToUse === true) ? s : undefined;
    }, `${c} snapshots readyToUse`, 60_000, 500);
    expect(snaps[0].restoreSize).toBe('32Mi');
    expect(getJson(c, ['volumesnapshot', '-n', NS, 'snap-raw']).spec.volumeSnapshotClassName).toBe('csi-hostpath-snapclass');
    await waitUntil(() => getJson(c, ['volumegroupsnapshot', '-n', NS, 'group']).status?.readyToUse, `${c} group snapshot readyToUse`, 60_000, 500);
    // the member VolumeSnapshots are made by the snapshot-controller, ready a moment after the group
    type Member = { metadata: { name: string }; spec: { source: { persistentVolumeClaimName: string } }; status?: { volumeGroupSnapshotName?: string; readyToUse?: boolean } };
    const members: Member[] = await waitUntil(() => {
      const m = getJson(c, ['volumesnapshot', '-n', NS]).items.filter((v: Member) => v.status?.volumeGroupSnapshotName === 'group' && v.status.readyToUse);
      return m.length >= 2 ? m : undefined;
    }, `${c} group member snapshots`, 60_000, 500);
    expect(members.map((m) => m.spec.source.persistentVolumeClaimName).sort()).toEqual(['data', 'raw']);
    const member = members.find((m) => m.spec.source.persistentVolumeClaimName === 'data')!;
    const contents = [...snaps, ...members.map((m) => m.status)].map((s) => getJson(c, ['volumesnapshotcontent', s.boundVolumeSnapshotContentName]));
    for (const vsc of contents) expect(vsc.spec.driver).toBe(DRIVER);
    kubectl(ctx(c), ['delete', 'pod', '-n', NS, 'writer', '--wait=false']);

    // 3. restores (the filesystem one larger than its source) and clones
    apply(c, pvc('restored', '64Mi', { from: { kind: 'VolumeSnapshot', name: 'snap-data' } }));
    apply(c, pvc('restored-raw', '8Mi', { block: true, from: { kind: 'VolumeSnapshot', name: 'snap-raw' } }));
    apply(c, pvc('group-restored', '32Mi', { from: { kind: 'VolumeSnapshot', name: member.metadata.name } }));
    apply(c, pvc('clone', '32Mi', { from: { kind: 'PersistentVolumeClaim', name: 'data' } }));
    apply(c, pvc('clone-raw', '8Mi', { block: true, from: { kind: 'PersistentVolumeClaim', name: 'raw' } }));
    for (const n of ['restored', 'restored-raw', 'group-restored', 'clone', 'clone-raw']) await bound(c, n);

    // 4. read everything back
    apply(c, pod('reader', `
      for f in /fs0 /fs1 /fs2; do echo "fs $f $(cat $f/token) group $(stat -c %g $f)"; done
      for d in /dev/blk0 /dev/blk1; do echo "block $d $(dd if=$d bs=${TOKEN.length} count=1 2>/dev/null)"; done
      for f in /fs0 /fs2; do awk -v f=$f '$0 != ("record " NR) { bad = NR } END { print "records " f " " NR " torn " (bad ? bad : 0) }' $f/log; done
      echo "size $(df -k /fs0 | awk 'NR == 2 {print $2}')"`, ['restored', 'clone', 'group-restored'], ['restored-raw', 'clone-raw']));
    const out = await podLog(c, 'reader', 'Succeeded');
    expect(out).toContain(`fs /fs0 ${TOKEN} group 2000`);
    expect(out).toContain(`fs /fs1 ${TOKEN} group 2000`);
    expect(out).toContain(`fs /fs2 ${TOKEN} group 2000`);
    expect(out).toContain(`block /dev/blk0 ${TOKEN}`);
    expect(out).toContain(`block /dev/blk1 ${TOKEN}`);
    expect(out).toMatch(/records \/fs0 \d+ torn 0\n/);
    expect(out).toMatch(/records \/fs2 \d+ torn 0\n/);
    expect(Number(/size (\d+)/.exec(out)?.[1])).toBeGreaterThan(48 * 1024); // 64Mi restore of a 32Mi snapshot: grown

    // 5. delete everything; nothing of this run is left in the cluster or on the node
    const handles = {
      volumes: ['data', 'raw', 'restored', 'restored-raw', 'group-restored', 'clone', 'clone-raw'].map((n) => getJson(c, ['pv', getJson(c, ['pvc', '-n', NS, n]).spec.volumeName]).spec.csi.volumeHandle as string),
      snapshots: contents.map((vsc) => vsc.status.snapshotHandle as string),
    };
    kubectl(ctx(c), ['delete', 'pod', '-n', NS, '--all', '--wait=true', '--timeout=60s']);
    const groupContent = getJson(c, ['volumegroupsnapshot', '-n', NS, 'group']).status.boundVolumeGroupSnapshotContentName as string;
    kubectl(ctx(c), ['delete', 'volumegroupsnapshot', '-n', NS, '--all', '--wait=true', '--timeout=60s']);
    kubectl(ctx(c), ['delete', 'volumesnapshot', '-n', NS, '--all', '--wait=true', '--timeout=60s']);
    kubectl(ctx(c), ['delete', 'pvc', '-n', NS, '--all', '--wait=true', '--timeout=60s']);
    await waitUntil(() => {
      const pvs = getJson(c, ['pv']).items.filter((p: { spec: { claimRef?: { namespace?: string } } }) => p.spec.claimRef?.namespace === NS);
      const vscs = getJson(c, ['volumesnapshotcontent']).items.filter((v: { spec: { volumeSnapshotRef?: { namespace?: string } } }) => v.spec.volumeSnapshotRef?.namespace === NS);
      const groups = getJson(c, ['volumegroupsnapshotcontent']).items.filter((g: { metadata: { name: string } }) => g.metadata.name === groupContent);
      return pvs.length === 0 && vscs.length === 0 && groups.length === 0;
    }, `${c} PVs, VolumeSnapshotContents and the VolumeGroupSnapshotContent of ${NS} gone`, 60_000, 500);
    const dataDir = join(LAB_STATE, 'nodes', `${c}-node1`, 'csi-hostpath');
    const left = [...handles.volumes.map((h) => join(dataDir, 'volumes', `${h}.img`)), ...handles.snapshots.map((h) => join(dataDir, 'snapshots', `${h}.img`))].filter((f) => existsSync(f));
    expect(left).toEqual([]);
  }, 150_000);
});
