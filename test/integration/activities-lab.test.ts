/**
 * The activities against REAL kube-apiservers: the lab of hack/lab/apiserver.sh (two API servers with
 * their controller managers, contexts ferry-src and ferry-dst, no nodes, so no pod ever runs).
 *
 * What cannot happen without a kubelet is done the way a kubelet does it, through the API: a test
 * writes a transfer container's terminated state (exit code, termination message) to the pod's status
 * subresource. Everything else is the real API server and controllers: Deployment → ReplicaSet → Pod
 * ownership, pod deletion on scale-down, 409 conflicts, label selectors, SelfSubjectAccessReview.
 *
 * Skipped with a message when the lab is not up, unless FERRY_REQUIRE_LAB=1 (then it fails).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesObject, V1Pod, V1Secret } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../../src/activities';
import type { FerryActivities } from '../../src/activities/contract';
import type { EndpointAddress, NamespaceDiscovery, PVCInfo, QuiesceRecord } from '../../src/core/types';
import { KubeClient, statusCode, waitFor } from '../../src/k8s/client';
import { ensureEndpoint } from '../../src/migration/endpoint';
import { FerryError } from '../../src/core/errors';
import { PRE_QUIESCE_ANNOTATION, QUIESCE_NODE_SELECTOR_KEY } from '../../src/migration/quiesce';
import { serverTLSSecretName } from '../../src/statetransfer/namespace-transfer';
import { probePodName } from '../../src/statetransfer/probe';
import { PASS_LABEL } from '../../src/migration/client-run';
import { credentialsSecretName } from '../../src/migration/credentials';
import { parsePlan } from '../../src/plan/load';
import type { MigrationPlan } from '../../src/plan/schema';
import { EXIT_CODE_MARKER } from '../../src/statetransfer/pods/lifecycle';
import { LABELS, migrationKey, objectName } from '../../src/statetransfer/names';
import { secretValues } from '../../src/statetransfer/objects';
import { RSYNC_INFO_FLAGS } from '../../src/statetransfer/transfer/rsync/options';
import { parseRsyncOutput } from '../../src/statetransfer/transfer/rsync/parser';

const LAB_KUBECONFIG = process.env.FERRY_LAB_KUBECONFIG ?? '/var/lib/ferry-lab/kubeconfig';
const ROOT = join(__dirname, '..', '..');

function labStatus(): string | undefined {
  if (!existsSync(LAB_KUBECONFIG)) return `no lab kubeconfig at ${LAB_KUBECONFIG}`;
  const r = spawnSync('bash', [join(ROOT, 'hack/lab/apiserver.sh'), 'status'], { encoding: 'utf8', timeout: 30000 });
  return r.status === 0 ? undefined : `hack/lab/apiserver.sh status failed: ${(r.stdout + r.stderr).trim().split('\n').slice(-2).join(' ')}`;
}
const unavailable = labStatus();
if (unavailable && process.env.FERRY_REQUIRE_LAB === '1') throw new Error(`FERRY_REQUIRE_LAB=1 but the lab is not available: ${unavailable}; run: bash hack/lab/apiserver.sh up`);
if (unavailable) console.warn(`SKIPPED activities lab tests: ${unavailable}. Start it with: bash hack/lab/apiserver.sh up (FERRY_REQUIRE_LAB=1 makes this a failure)`);
const labDescribe = unavailable ? describe.skip : describe;

const run = Math.random().toString(36).slice(2, 8);
const SRC_NS = `fit-${run}-shop`;
const DST_NS = `fit-${run}-shop-dst`;
const MID = `lab-${run}`;

function makePlan(extra: Record<string, unknown> = {}): MigrationPlan {
  return parsePlan({
    source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
    destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
    namespaces: [`${SRC_NS}:${DST_NS}`],
    endpoint: { type: 'ClusterIP' },
    stagePasses: 0,
    // A class no lab has: destination PVCs stay Pending, so no pod of this suite ever runs, with
    // or without lab nodes (the real transfer is test/integration/activities-transfer.test.ts).
    storageClassMapping: { 'local-path': 'ferry-it-absent' },
    // No pod runs here, so no warm agent could either: client and probe pods, as a kubelet-less API sees them.
    agents: 'per-sync',
    ...extra,
  });
}

const podSpec = (claims: string[], securityContext?: object) => ({
  ...(securityContext ? { securityContext } : {}),
  containers: [{ name: 'app', image: 'busybox', volumeMounts: claims.map((c, i) => ({ name: `v${i}`, mountPath: `/d${i}` })) }],
  volumes: claims.map((c, i) => ({ name: `v${i}`, persistentVolumeClaim: { claimName: c } })),
});
const pvcObj = (name: string, size = '1Gi', labels: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'PersistentVolumeClaim',
  metadata: { name, namespace: SRC_NS, labels: { app: 'shop', ...labels }, annotations: { 'example.com/owner': 'team-a' } },
  spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'local-path', resources: { requests: { storage: size } } },
});
const deployment = (name: string, replicas: number, claims: string[], extra: object = {}) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: SRC_NS },
  spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { ...podSpec(claims, { fsGroup: 2000, runAsUser: 1001 }), terminationGracePeriodSeconds: 0 } }, ...extra },
});

/** Writes the transfer container's terminated state to the pod status, as the kubelet would. */
async function finishPod(client: KubeClient, namespace: string, name: string, exitCode: number, message: string): Promise<void> {
  // The scheduler or a kubelet may update the fresh pod's status at the same moment (409): read again.
  for (let i = 0; ; i++) {
    try {
      return await writeFinished(client, namespace, name, exitCode, message);
    } catch (err) {
      if (statusCode(err) !== 409 || i >= 10) throw err;
    }
  }
}

async function writeFinished(client: KubeClient, namespace: string, name: string, exitCode: number, message: string): Promise<void> {
  const pod = await waitFor(() => client.get<V1Pod>({ apiVersion: 'v1', kind: 'Pod', namespace, name }), { timeoutSeconds: 30, intervalSeconds: 0.2, description: `pod ${name}` });
  const now = new Date();
  pod.status = {
    ...pod.status,
    phase: exitCode === 0 ? 'Succeeded' : 'Failed',
    containerStatuses: (pod.spec?.containers ?? []).map((c, i) => ({
      name: c.name,
      image: c.image!,
      imageID: '',
      ready: false,
      restartCount: 0,
      state: { terminated: { exitCode: i === 0 ? exitCode : 0, reason: 'Completed', startedAt: now, finishedAt: now, ...(i === 0 ? { message } : {}) } },
    })),
  };
  await client.core.replaceNamespacedPodStatus({ name, namespace, body: pod });
}

/**
 * Real rsync client output for a small tree, with the flags Ferry uses (progress2, STATS2, no
 * incremental recursion); `vanished` appends what rsync prints when source files disappear (exit 24).
 */
function rsyncOutput(vanished = false): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-rsync-'));
  try {
    mkdirSync(join(dir, 'src/sub'), { recursive: true });
    for (let i = 0; i < 20; i++) writeFileSync(join(dir, 'src/sub', `f${i}`), Buffer.alloc(4096 * (i + 1), i));
    const r = spawnSync('rsync', ['--recursive', '--times', '--no-inc-recursive', RSYNC_INFO_FLAGS, `${dir}/src/`, `${dir}/dst/`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`rsync failed: ${r.stderr}`);
    const tail = vanished ? 'file has vanished: "/data/sub/tmp.lock"\nrsync warning: some files vanished before they could be transferred (code 24) at main.c(1394) [sender=3.5.0]\n' : '';
    return r.stdout + tail;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
/** The termination message the pod wrapper writes: the last lines plus the exit-code marker. */
function terminationMessage(output: string, exitCode: number): string {
  const lines = output.split(/[\r\n]+/).filter((l) => l.length > 0).slice(-40);
  return `${lines.join('\n')}\n${EXIT_CODE_MARKER}${exitCode}\n`;
}

/** Marks a promise as handled now (it is awaited later): a rejection meanwhile is not "unhandled". */
function later<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

async function expectFailure(p: Promise<unknown>, type: string, message?: RegExp): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  const f = err as ApplicationFailure;
  expect(f.type).toBe(type);
  if (message) expect(f.message).toMatch(message);
  return f;
}

labDescribe('activities against the lab API servers', () => {
  let src: KubeClient;
  let dst: KubeClient;
  let activities: FerryActivities;
  let plan: MigrationPlan;
  let discovery: NamespaceDiscovery;
  let address: EndpointAddress;

  const apply = async (client: KubeClient, o: object) => (await client.createOrAdopt(o as KubernetesObject)).object;
  const get = <T extends KubernetesObject>(client: KubeClient, apiVersion: string, kind: string, name: string, namespace = SRC_NS) => client.get<T>({ apiVersion, kind, namespace, name });
  const ctx = () => ({ migrationId: MID, plan, namespace: plan.namespaces[0]! });

  beforeAll(async () => {
    src = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });
    dst = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' });
    activities = createActivities({ pollIntervalSeconds: 0.2, logger: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} } });
    plan = makePlan();
    await src.objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: SRC_NS, labels: { team: 'shop' }, annotations: { 'openshift.io/sa.scc.uid-range': '1000/10000' } } } as KubernetesObject);
    for (const p of ['uploads', 'data-db-0', 'archive', 'logs', 'api-data']) await apply(src, pvcObj(p));
    await apply(src, deployment('web', 2, ['uploads']));
    await apply(src, deployment('api', 3, ['api-data']));
    await apply(src, {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db', namespace: SRC_NS },
      spec: {
        replicas: 0,
        serviceName: 'db',
        selector: { matchLabels: { app: 'db' } },
        template: { metadata: { labels: { app: 'db' } }, spec: { securityContext: { runAsUser: 999, fsGroup: 999 }, containers: [{ name: 'pg', image: 'postgres', volumeMounts: [{ name: 'data', mountPath: '/var/lib/pg' }] }] } },
        volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
      },
    });
    const cron = (name: string, suspend: boolean, claims: string[]) => ({
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name, namespace: SRC_NS },
      spec: { schedule: '0 3 * * *', suspend, jobTemplate: { spec: { template: { spec: { ...podSpec(claims), restartPolicy: 'OnFailure' } } } } },
    });
    await apply(src, cron('backup', false, ['uploads']));
    await apply(src, cron('archiver', true, ['archive']));
    await apply(src, {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'agent', namespace: SRC_NS },
      spec: { selector: { matchLabels: { app: 'agent' } }, template: { metadata: { labels: { app: 'agent' } }, spec: { ...podSpec(['logs']), nodeSelector: { 'kubernetes.io/os': 'linux' } } } },
    });
    // The Deployment controller makes ReplicaSets and (unschedulable) pods.
    await waitFor(async () => (await src.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, SRC_NS, { labelSelector: 'app=web' })).length === 2, { timeoutSeconds: 60, intervalSeconds: 0.5, description: 'web pods' });
  });

  afterAll(async () => {
    if (!src) return;
    await src.delete({ apiVersion: 'v1', kind: 'Namespace', name: SRC_NS }).catch(() => undefined);
    await dst.delete({ apiVersion: 'v1', kind: 'Namespace', name: DST_NS }).catch(() => undefined);
  });

  test('discoverNamespace: PVCs, owners through ReplicaSets, StatefulSet claim templates, CronJobs, identity', async () => {
    discovery = await activities.discoverNamespace(ctx());
    expect(discovery.pvcs.map((p) => p.name)).toEqual(['api-data', 'archive', 'data-db-0', 'logs', 'uploads']);
    const by = (n: string) => discovery.pvcs.find((p) => p.name === n)!;
    expect(by('uploads').usedBy.map((w) => `${w.kind}/${w.name}`)).toEqual(['CronJob/backup', 'Deployment/web']);
    expect(by('uploads')).toMatchObject({ capacity: '1Gi', capacityBytes: 2 ** 30, storageClass: 'local-path', destinationStorageClass: 'ferry-it-absent', volumeMode: 'Filesystem', identity: { runAsUser: 1001, fsGroup: 2000 } });
    expect(by('uploads').nodeName).toBeUndefined(); // pods exist but none runs (their PVCs never bind)
    expect(by('data-db-0').usedBy).toEqual([{ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: SRC_NS, name: 'db' }]);
    expect(by('data-db-0').identity).toEqual({ runAsUser: 999, fsGroup: 999 });
    expect(by('archive').usedBy.map((w) => w.name)).toEqual(['archiver']);
    expect(by('logs').usedBy.map((w) => `${w.kind}/${w.name}`)).toEqual(['DaemonSet/agent']);
    expect(discovery.workloads.map((w) => `${w.kind}/${w.name}`)).toEqual(['CronJob/archiver', 'CronJob/backup', 'DaemonSet/agent', 'Deployment/api', 'Deployment/web', 'StatefulSet/db']);

    const byLabel = await activities.discoverNamespace({ ...ctx(), namespace: { ...plan.namespaces[0]!, pvcs: { labelSelector: 'app=shop' } } });
    expect(byLabel.pvcs).toHaveLength(5);
    const missingNs = await activities.discoverNamespace({ ...ctx(), namespace: { source: `${SRC_NS}-nope`, destination: 'x', pvcs: { all: true } } });
    expect(missingNs.pvcs).toEqual([]);
  });

  test('preflight reports every problem at once', async () => {
    const p = makePlan({ namespaces: [`${SRC_NS}:${DST_NS}`, { source: `${SRC_NS}-nope`, destination: `${DST_NS}-2`, pvcs: { names: ['a'] } }] });
    const problems = await activities.preflight({ migrationId: MID, plan: p, discoveries: [discovery] });
    const text = problems.map((x) => `${x.subject}: ${x.message}`).join('\n');
    expect(text).toMatch(new RegExp(`namespaces\\[1\\]: source namespace ${SRC_NS}-nope does not exist`));
    expect(text).toMatch(new RegExp(`pvc ${SRC_NS}/uploads: is Pending`));
    expect(text).toMatch(/pvc .*uploads: destination StorageClass ferry-it-absent does not exist in context ferry-dst \(available: [^)]*\); map it with storageClassMapping/);
    expect(text).not.toMatch(/missing permissions/); // the lab identity is cluster-admin
    const unreachable = await activities.preflight({ migrationId: MID, plan: makePlan({ destination: { kubeconfig: LAB_KUBECONFIG, context: 'no-such' } }), discoveries: [discovery] });
    expect(unreachable.find((x) => x.subject === 'destination')?.message).toMatch(/context "no-such" not found .*available contexts: .*ferry-dst/);
  });

  test('quiesce / waitForQuiesced / unquiesce round trip on real objects, idempotent, operator changes respected', async () => {
    const records = await activities.quiesce({ migrationId: MID, plan, workloads: discovery.workloads });
    const rec = (name: string) => records.find((r) => r.workload.name === name)!;
    expect(rec('web')).toMatchObject({ replicas: 2, paused: false, changed: true });
    expect(rec('api')).toMatchObject({ replicas: 3, changed: true });
    expect(rec('db')).toMatchObject({ replicas: 0, changed: false });
    expect(rec('backup')).toMatchObject({ suspend: false, changed: true, workload: { apiVersion: 'batch/v1' } });
    expect(rec('archiver')).toMatchObject({ suspend: true, changed: false });
    expect(rec('agent')).toMatchObject({ nodeSelector: { 'kubernetes.io/os': 'linux' }, changed: true });

    const web = await get<any>(src, 'apps/v1', 'Deployment', 'web');
    expect(web.spec.replicas).toBe(0);
    expect(JSON.parse(web.metadata.annotations[PRE_QUIESCE_ANNOTATION])).toMatchObject({ replicas: 2 });
    expect((await get<any>(src, 'batch/v1', 'CronJob', 'backup')).spec.suspend).toBe(true);
    expect((await get<any>(src, 'apps/v1', 'DaemonSet', 'agent')).spec.template.spec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', [QUIESCE_NODE_SELECTOR_KEY]: 'true' });
    expect((await get<any>(src, 'batch/v1', 'CronJob', 'archiver')).metadata.annotations?.[PRE_QUIESCE_ANNOTATION]).toBeUndefined();

    // A retried quiesce returns the original state, not the quiesced one.
    const again = await activities.quiesce({ migrationId: MID, plan, workloads: discovery.workloads });
    expect(again).toEqual(records);

    // The ReplicaSet controller deletes the pods; waitForQuiesced heartbeats while it waits.
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    await env.run(activities.waitForQuiesced, { migrationId: MID, plan, workloads: discovery.workloads });
    expect(await src.list({ apiVersion: 'v1', kind: 'Pod' }, SRC_NS, { labelSelector: 'app in (web,api)' })).toEqual([]);

    // An operator scales api by hand in the meantime: unquiesce leaves it.
    await src.patch({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: SRC_NS, name: 'api' }, { spec: { replicas: 1 } });
    await activities.unquiesce({ migrationId: MID, plan, records });
    const after = async (kind: string, apiVersion: string, name: string) => get<any>(src, apiVersion, kind, name);
    expect((await after('Deployment', 'apps/v1', 'web')).spec.replicas).toBe(2);
    expect((await after('Deployment', 'apps/v1', 'api')).spec.replicas).toBe(1);
    expect((await after('StatefulSet', 'apps/v1', 'db')).spec.replicas).toBe(0);
    expect((await after('CronJob', 'batch/v1', 'backup')).spec.suspend).toBe(false);
    expect((await after('CronJob', 'batch/v1', 'archiver')).spec.suspend).toBe(true);
    expect((await after('DaemonSet', 'apps/v1', 'agent')).spec.template.spec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    for (const [k, v, n] of [['Deployment', 'apps/v1', 'web'], ['Deployment', 'apps/v1', 'api'], ['CronJob', 'batch/v1', 'backup'], ['DaemonSet', 'apps/v1', 'agent']]) {
      expect((await after(k!, v!, n!)).metadata.annotations?.[PRE_QUIESCE_ANNOTATION]).toBeUndefined();
    }
    // Unquiesce twice is harmless; a workload deleted meanwhile is not an error.
    await activities.unquiesce({ migrationId: MID, plan, records: [...records, { workload: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: SRC_NS, name: 'gone' }, replicas: 1, changed: true } as QuiesceRecord] });
    expect((await after('Deployment', 'apps/v1', 'web')).spec.replicas).toBe(2);

    // A quiesce whose records never reached the workflow (it failed half-way): rollback passes the
    // workloads, and the prior state comes back from the annotations.
    await activities.quiesce({ migrationId: MID, plan, workloads: discovery.workloads });
    expect((await after('Deployment', 'apps/v1', 'web')).spec.replicas).toBe(0);
    await activities.unquiesce({ migrationId: MID, plan, records: [], workloads: discovery.workloads });
    expect((await after('Deployment', 'apps/v1', 'web')).spec.replicas).toBe(2);
    expect((await after('CronJob', 'batch/v1', 'backup')).spec.suspend).toBe(false);
    expect((await after('CronJob', 'batch/v1', 'archiver')).spec.suspend).toBe(true);
    expect((await after('DaemonSet', 'apps/v1', 'agent')).spec.template.spec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect((await after('Deployment', 'apps/v1', 'web')).metadata.annotations?.[PRE_QUIESCE_ANNOTATION]).toBeUndefined();
  });

  test('prepareDestination copies namespace metadata, creates PVCs, adopts its own on retry, refuses foreign ones', async () => {
    const input = { ...ctx(), discovery };
    const first = await activities.prepareDestination(input);
    expect(first).toEqual({ createdNamespace: true, createdPVCs: ['api-data', 'archive', 'data-db-0', 'logs', 'uploads'] });
    const ns = await dst.get<any>({ apiVersion: 'v1', kind: 'Namespace', name: DST_NS });
    expect(ns.metadata.labels.team).toBe('shop');
    expect(ns.metadata.annotations['openshift.io/sa.scc.uid-range']).toBe('1000/10000');
    const pvc = await dst.get<any>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: DST_NS, name: 'uploads' });
    expect(pvc.metadata.labels).toMatchObject({ app: 'shop', [LABELS.migration]: migrationKey(MID) });
    expect(pvc.metadata.annotations['example.com/owner']).toBe('team-a');
    expect(pvc.spec).toMatchObject({ accessModes: ['ReadWriteOnce'], storageClassName: 'ferry-it-absent', resources: { requests: { storage: '1Gi' } } });
    expect(await activities.prepareDestination(input)).toEqual(first);

    // A PVC of the same name that is not this migration's: never overwritten.
    await dst.createOrAdopt({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'foreign', namespace: DST_NS }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } } as KubernetesObject);
    const foreign: PVCInfo = { ...discovery.pvcs[0]!, name: 'foreign', destinationName: 'foreign' };
    await expectFailure(activities.prepareDestination({ ...input, discovery: { ...discovery, pvcs: [foreign] } }), 'FerryPreflight', /PersistentVolumeClaim .*\/foreign already exists .*not created by Ferry; Ferry never overwrites it/);
    const problems = await activities.preflight({ migrationId: MID, plan, discoveries: [{ ...discovery, pvcs: [foreign] }] });
    expect(problems.map((x) => x.message).join('\n')).toMatch(/destination PVC .*\/foreign already exists and is not this migration's/);
  });

  test('createEndpoint (ClusterIP) and the auto fallback from LoadBalancer to NodePort', async () => {
    address = await activities.createEndpoint(ctx());
    expect(address.port).toBe(8443);
    expect(address.host).toMatch(/^10\.112\./); // the lab destination's service CIDR
    expect(await activities.createEndpoint(ctx())).toEqual(address);

    // auto: Route when the cluster serves the Route API (the lab can register OpenShift CRDs, but
    // no router admits Routes there); else LoadBalancer first, replaced by a NodePort Service when
    // no address comes within the wait (here 0.01 s, so the lab's LB allocator is normally too
    // slow), healthy when the cluster has a Ready node and explained when it has none.
    const ns2 = `${DST_NS}-auto`;
    await dst.objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns2 } } as KubernetesObject);
    try {
      const autoPlan = makePlan({ endpoint: { type: 'auto' } });
      const nodes = (await dst.list<any>({ apiVersion: 'v1', kind: 'Node' })).filter((n) => n.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'));
      const result = await ensureEndpoint(dst, autoPlan, MID, ns2, { timeoutSeconds: 8, autoLoadBalancerSeconds: 0.01 }).catch((e: unknown) => e);
      if (await dst.hasApi('route.openshift.io/v1', 'Route')) {
        expect(result).toBeInstanceOf(FerryError);
        expect((result as FerryError).message).toMatch(/Route endpoint .* to become healthy/);
        expect(await dst.get({ apiVersion: 'route.openshift.io/v1', kind: 'Route', namespace: ns2, name: objectName(MID, 'endpoint') })).toBeDefined();
        return;
      }
      const svc = await dst.get<any>({ apiVersion: 'v1', kind: 'Service', namespace: ns2, name: objectName(MID, 'endpoint') });
      if (svc.spec.type === 'LoadBalancer') {
        // The allocator answered within the first check: auto keeps the LoadBalancer.
        expect(result).toMatchObject({ type: 'LoadBalancer', address: { host: svc.status.loadBalancer.ingress[0].ip } });
      } else {
        expect(svc.spec.type).toBe('NodePort');
        if (nodes.length > 0) {
          expect(result).toMatchObject({ type: 'NodePort', address: { port: svc.spec.ports[0].nodePort } });
        } else {
          expect(result).toBeInstanceOf(FerryError);
          expect((result as FerryError).category).toBe('config');
          expect((result as FerryError).message).toMatch(/NodePort endpoint .* to become healthy: .*has no nodes/);
        }
      }
    } finally {
      await dst.delete({ apiVersion: 'v1', kind: 'Namespace', name: ns2 });
    }
  });

  test('createServer stores credentials only in Secrets, re-reads them on retry, regenerates both sides when one is missing', async () => {
    const shortPlan = makePlan({ timeouts: { serverReadySeconds: 2 } });
    const input = { migrationId: MID, plan: shortPlan, namespace: shortPlan.namespaces[0]!, discovery, address };
    // No node will ever run the server pod: createServer fails after serverReadySeconds, explaining.
    await expectFailure(activities.createServer(input), 'FerryConfig', /server pod .* to be Ready/);
    const serverSecret = await dst.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace: DST_NS, name: serverTLSSecretName(MID) });
    const clientSecret = await src.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace: SRC_NS, name: credentialsSecretName(MID) });
    expect(serverSecret && clientSecret).toBeTruthy();
    const sv = secretValues(serverSecret!);
    const cv = secretValues(clientSecret!);
    expect(sv['ca.crt']).toBe(cv['ca.crt']);
    expect(Object.keys(cv).sort()).toEqual(['ca.crt', 'password', 'tls.crt', 'tls.key']);
    expect(cv['tls.key']).not.toBe(sv['tls.key']);
    // Each stored key belongs to its own leaf certificate; the CA key is stored nowhere.
    const ca = new X509Certificate(sv['ca.crt']!);
    expect(new X509Certificate(sv['tls.crt']!).checkPrivateKey(createPrivateKey(sv['tls.key']!))).toBe(true);
    expect(new X509Certificate(cv['tls.crt']!).checkPrivateKey(createPrivateKey(cv['tls.key']!))).toBe(true);
    for (const key of [sv['tls.key']!, cv['tls.key']!]) expect(ca.checkPrivateKey(createPrivateKey(key))).toBe(false);
    expect(new X509Certificate(sv['tls.crt']!).checkIP(address.host)).toBe(address.host);
    const serverPod = await dst.get<V1Pod>({ apiVersion: 'v1', kind: 'Pod', namespace: DST_NS, name: objectName(MID, 'server') });
    expect(serverPod?.spec?.volumes?.map((v) => v.persistentVolumeClaim?.claimName).filter(Boolean).sort()).toEqual(['api-data', 'archive', 'data-db-0', 'logs', 'uploads']);

    // Retry: the same Secrets (same objects, same CA) are reused.
    await expectFailure(activities.createServer(input), 'FerryConfig');
    const reread = await dst.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace: DST_NS, name: serverTLSSecretName(MID) });
    expect(reread!.metadata!.uid).toBe(serverSecret!.metadata!.uid);

    // One side lost: everything is regenerated on both sides (new CA).
    await src.delete(clientSecret!);
    await expectFailure(activities.createServer(input), 'FerryConfig');
    const regenerated = secretValues((await dst.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace: DST_NS, name: serverTLSSecretName(MID) }))!);
    const newClient = secretValues((await src.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', namespace: SRC_NS, name: credentialsSecretName(MID) }))!);
    expect(regenerated['ca.crt']).not.toBe(sv['ca.crt']);
    expect(regenerated['ca.crt']).toBe(newClient['ca.crt']);
  });

  test('probeConnectivity: the probe pod reports success, or an explained failure, and is always deleted', async () => {
    // The probe pod mounts no PVC: on a lab with nodes it really runs (activities-transfer.test.ts
    // covers that); writing its status here as a kubelet would only works without nodes.
    if ((await src.list({ apiVersion: 'v1', kind: 'Node' })).length > 0) return;
    const name = probePodName(MID);
    const ok = later(activities.probeConnectivity({ ...ctx(), address }));
    await finishPod(src, SRC_NS, name, 0, 'ferry-probe: OK, server says: @RSYNCD: 32.0 sha512\nferry-exit-code=0\n');
    await ok;
    await waitFor(async () => !(await src.get({ apiVersion: 'v1', kind: 'Pod', namespace: SRC_NS, name })), { timeoutSeconds: 20, intervalSeconds: 0.2 });

    const pod = await (async () => {
      const p = later(activities.probeConnectivity({ ...ctx(), address }));
      const created = await waitFor(() => src.get<V1Pod>({ apiVersion: 'v1', kind: 'Pod', namespace: SRC_NS, name }), { timeoutSeconds: 30, intervalSeconds: 0.2 });
      await finishPod(src, SRC_NS, name, 4, 'ferry-probe: no greeting from the transfer server within 15 s\nferry-exit-code=4\n');
      await expectFailure(p, 'FerryTransient', /did not answer through the tunnel/);
      return created;
    })();
    // The probe reuses the client pieces: stunnel sidecar, TLS Secret, no PVC, no pinning.
    expect(pod.spec!.containers.map((c) => c.name)).toEqual(['probe', 'stunnel']);
    expect(pod.spec!.volumes!.some((v) => v.persistentVolumeClaim)).toBe(false);
    expect(pod.spec!.volumes!.some((v) => v.secret?.secretName === objectName(MID, 'cli-tls'))).toBe(true);
    expect(await src.get({ apiVersion: 'v1', kind: 'Pod', namespace: SRC_NS, name })).toBeUndefined();
  });

  test('runTransfer: creates the client pod for the pass, re-attaches on retry, classifies the exit, deletes the pod', async () => {
    // runTransfer ensures the server before every sync: without nodes, its pod is made Ready here as
    // the kubelet would.
    const serverRef = { apiVersion: 'v1', kind: 'Pod', namespace: DST_NS, name: objectName(MID, 'server') };
    const server = (await dst.get<V1Pod>(serverRef))!;
    server.status = { ...server.status, phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };
    await dst.core.replaceNamespacedPodStatus({ name: serverRef.name, namespace: DST_NS, body: server });
    const pvc = discovery.pvcs.find((p) => p.name === 'uploads')!;
    // The per-sync client pod (plan agents: per-sync); the warm agent is test/e2e/agent.e2e.test.ts.
    const req = (pass: number, final: boolean) => ({ ...ctx(), plan: { ...plan, agents: 'per-sync' as const }, pvc, address, final, pass });
    const podName = objectName(MID, 'client', 'uploads');
    const podRef = { apiVersion: 'v1', kind: 'Pod', namespace: SRC_NS, name: podName };

    // Stage sync 1 starts in a worker process that dies (kill -9) while the pod runs; the pod then
    // finishes with vanished files (exit 24). The retry re-attaches to that pod (no second pod) and
    // reports its result: success with a note.
    const worker = spawn('npx', ['tsx', '-e', `
      const { createActivities } = require('./src/activities');
      const silent = { debug() {}, info() {}, warn() {}, error() {} };
      createActivities({ logger: silent, pollIntervalSeconds: 0.2 }).runTransfer(${JSON.stringify(req(1, false))});
    `], { cwd: ROOT, stdio: 'ignore', detached: true });
    const created = await waitFor(() => src.get<V1Pod>(podRef), { timeoutSeconds: 60, intervalSeconds: 0.2, description: 'the dying worker\'s client pod' });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    process.kill(-worker.pid!, 'SIGKILL');
    await exited;
    // No process of that group left (the worker's node process under npx/tsx included).
    await waitFor(async () => spawnSync('pgrep', ['-g', String(worker.pid)]).status === 1, { timeoutSeconds: 10, intervalSeconds: 0.1, description: 'the killed worker to be gone' });
    expect(created.metadata!.labels![PASS_LABEL]).toBe('1');
    expect(created.metadata!.annotations!['ferry.dev/sync']).toBe('stage');
    const output = rsyncOutput(true);
    await finishPod(src, SRC_NS, podName, 24, terminationMessage(output, 24));
    const a = await activities.runTransfer(req(1, false));
    const stats = parseRsyncOutput(output).stats!;
    expect(a).toMatchObject({
      exitCode: 24,
      outcome: 'success',
      filesTransferred: stats.regularFilesTransferred,
      numberOfFiles: stats.files!.total,
      bytesSent: stats.totalBytesSent,
      totalFileSize: stats.totalFileSizeBytes,
    });
    expect(a.filesTransferred).toBeGreaterThan(0);
    expect(a.message).toMatch(/vanished/);
    await waitFor(async () => !(await src.get(podRef)), { timeoutSeconds: 20, intervalSeconds: 0.2 });

    // Two attempts of the same sync at once (a zombie attempt): one pod only.
    const attempt1 = later(activities.runTransfer(req(7, false)));
    const p7 = await waitFor(() => src.get<V1Pod>(podRef), { timeoutSeconds: 30, intervalSeconds: 0.2 });
    const attempt2 = later(activities.runTransfer(req(7, false)));
    await new Promise((r) => setTimeout(r, 1000));
    expect((await src.get<V1Pod>(podRef))!.metadata!.uid).toBe(p7.metadata!.uid);
    await finishPod(src, SRC_NS, podName, 0, terminationMessage(rsyncOutput(), 0));
    // Whichever attempt reads the end first deletes the pod; the other gets the same result or, when
    // the pod is already gone, a retryable "disappeared" (a retry then syncs again, idempotently).
    const settled = await Promise.allSettled([attempt1, attempt2]);
    const results = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(results.length).toBeGreaterThanOrEqual(1);
    for (const r of results) expect(r).toMatchObject({ exitCode: 0, outcome: 'success' });
    for (const r of settled) if (r.status === 'rejected') expect((r.reason as ApplicationFailure).type).toBe('FerryTransient');
    await waitFor(async () => !(await src.get(podRef)), { timeoutSeconds: 20, intervalSeconds: 0.2 });

    // The final sync with vanished files fails as Partial (non-retryable).
    const fin = later(activities.runTransfer(req(2, true)));
    const finalPod = await waitFor(() => src.get<V1Pod>(podRef), { timeoutSeconds: 30, intervalSeconds: 0.2 });
    expect(finalPod.metadata!.annotations!['ferry.dev/sync']).toBe('final');
    await finishPod(src, SRC_NS, podName, 24, terminationMessage(rsyncOutput(true), 24));
    const partial = await expectFailure(fin, 'FerryPartial', /final sync incomplete/);
    expect(partial.nonRetryable).toBe(true);

    // No space left on device: non-retryable NoSpace.
    const full = later(activities.runTransfer(req(3, false)));
    await finishPod(src, SRC_NS, podName, 23, `rsync: [receiver] write failed on "/big.bin" (in uploads): No space left on device (28)\nrsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338) [sender=3.5.0]\n${EXIT_CODE_MARKER}23\n`);
    await expectFailure(full, 'FerryNoSpace', /too small/);

    // Connection trouble: retryable.
    const flaky = later(activities.runTransfer(req(4, false)));
    await finishPod(src, SRC_NS, podName, 12, `rsync error: error in rsync protocol data stream (code 12) at io.c(232) [sender=3.5.0]\n${EXIT_CODE_MARKER}12\n`);
    const t = await expectFailure(flaky, 'FerryTransient');
    expect(t.nonRetryable).toBe(false);

    // A leftover pod of an earlier pass is replaced, not followed.
    const stale = later(activities.runTransfer(req(5, false)));
    const p5 = await waitFor(() => src.get<V1Pod>(podRef), { timeoutSeconds: 30, intervalSeconds: 0.2 });
    const env = new MockActivityEnvironment();
    const six = later(env.run(activities.runTransfer, req(6, false)));
    const p6 = await waitFor(async () => {
      const p = await src.get<V1Pod>(podRef);
      return p && p.metadata!.uid !== p5.metadata!.uid ? p : undefined;
    }, { timeoutSeconds: 30, intervalSeconds: 0.2 });
    expect(p6.metadata!.labels![PASS_LABEL]).toBe('6');
    await expectFailure(stale, 'FerryTransient', /disappeared|replaced/);
    // Cancelling the activity deletes its pod.
    env.cancel();
    await expect(six).rejects.toBeTruthy();
    await waitFor(async () => !(await src.get(podRef)), { timeoutSeconds: 20, intervalSeconds: 0.2 });

    // Without credentials (createServer never ran for that namespace): a clear Config failure.
    await expectFailure(activities.runTransfer({ ...req(1, false), migrationId: `${MID}-other` }), 'FerryConfig', /credentials Secret .* is missing in the source cluster: .*ferry cancel/);
  });

  test('cleanup deletes every labelled transfer object on both clusters and checks none remain; rollback deletes only our PVCs', async () => {
    const labelled = async (client: KubeClient, ns: string) =>
      (await Promise.all(['Pod', 'Service', 'Secret', 'ConfigMap'].map((kind) => client.list({ apiVersion: 'v1', kind }, ns, { labelSelector: `${LABELS.migration}=${migrationKey(MID)},${LABELS.managedBy}=ferry` })))).flat();
    expect((await labelled(dst, DST_NS)).length).toBeGreaterThan(0);
    expect((await labelled(src, SRC_NS)).length).toBeGreaterThan(0);
    const pdbs = () => dst.list({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' }, DST_NS, { labelSelector: `${LABELS.migration}=${migrationKey(MID)}` });
    expect((await pdbs()).length).toBe(1); // the server's (createServer)
    const report = await activities.cleanup({ migrationId: MID, plan });
    expect(await pdbs()).toEqual([]);
    expect(report.remaining).toBe(0);
    expect(report.source).toBeGreaterThan(0);
    expect(report.destination).toBeGreaterThan(0);
    expect(await labelled(dst, DST_NS)).toEqual([]);
    expect(await labelled(src, SRC_NS)).toEqual([]);
    expect(await activities.cleanup({ migrationId: MID, plan })).toEqual({ source: 0, destination: 0, remaining: 0 });
    // PVCs are not transfer objects.
    expect(await dst.get({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: DST_NS, name: 'uploads' })).toBeDefined();

    await activities.deleteDestinationPVCs({ ...ctx(), pvcs: ['uploads', 'foreign', 'never-existed'] });
    await waitFor(async () => !(await dst.get({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: DST_NS, name: 'uploads' })), { timeoutSeconds: 30, intervalSeconds: 0.5, description: 'uploads PVC deleted' });
    expect(await dst.get({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: DST_NS, name: 'foreign' })).toBeDefined();
  });
});
