/**
 * The dry run's parts (issue 13 §5): the usage script run by bash on a real tree, its parser, the read
 * rate, the projection, the usage pod, the endpoint prediction and the objects it lists.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, linkSync, writeFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Service } from '@kubernetes/client-node';
import type { NamespaceDiscovery } from '../../src/core/types';
import { plannedObjects, predictEndpoint, scheduleSeconds } from '../../src/migration/dry-run';
import { parsePlan } from '../../src/plan/load';
import { buildUsagePod, parseUsage, readRate, usageScript, USAGE_MOUNT } from '../../src/statetransfer/usage';
import { FakeKube } from '../support/fake-kube';

describe('the usage script on a real tree', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-usage-'));
    mkdirSync(join(dir, 'a/b'), { recursive: true });
    mkdirSync(join(dir, 'lost+found'));
    mkdirSync(join(dir, '.ferry-partial'));
    writeFileSync(join(dir, 'lost+found/junk'), 'x'.repeat(1000));
    writeFileSync(join(dir, '.ferry-partial/half'), 'x'.repeat(2000));
    writeFileSync(join(dir, 'a/one'), 'x'.repeat(3000));
    linkSync(join(dir, 'a/one'), join(dir, 'a/b/one-again')); // a hard link: its bytes count once
    symlinkSync('one', join(dir, 'a/sym')); // a symlink: its size is its target's length (3)
    writeFileSync(join(dir, 'a/b/two'), Buffer.alloc(2 * 1024 * 1024, 7));
    writeFileSync(join(dir, 'sparse'), '');
    truncateSync(join(dir, 'sparse'), 64 * 1024 * 1024);
    execFileSync('mkfifo', [join(dir, 'fifo')]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('counts entries by type, hard-linked bytes once, skips lost+found and partial dirs, and times a sample', () => {
    const log = execFileSync('bash', ['-c', usageScript(1024 * 1024, dir)], { encoding: 'utf8' });
    const u = parseUsage(`some other line\n${log}`)!;
    expect(u).toMatchObject({ files: 4, directories: 2, symlinks: 1, others: 1, unreadable: 0, sampleBytes: 1024 * 1024 });
    expect(u.bytes).toBe(3000 + 3 + 2 * 1024 * 1024 + 64 * 1024 * 1024);
    // the sparse file allocates (almost) nothing
    expect(u.allocatedBytes).toBeLessThan(8 * 1024 * 1024);
    expect(u.walkSeconds).toBeGreaterThan(0);
    expect(u.sampleSeconds).toBeGreaterThan(0);
  });

  it('reads no more than the sample asks, and nothing with 0', () => {
    expect(parseUsage(execFileSync('bash', ['-c', usageScript(0, dir)], { encoding: 'utf8' }))!.sampleBytes).toBe(0);
    expect(parseUsage(execFileSync('bash', ['-c', usageScript(100, dir)], { encoding: 'utf8' }))!.sampleBytes).toBe(100);
  });

  it('says when the volume cannot be entered (exit 3)', () => {
    let out = '';
    try {
      execFileSync('bash', ['-c', usageScript(0, join(dir, 'missing'))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch (e) {
      out = (e as { stdout: string; status: number }).stdout;
      expect((e as { status: number }).status).toBe(3);
    }
    expect(() => parseUsage(out)).toThrow(/cannot enter the volume/);
  });
});

describe('parseUsage, readRate, scheduleSeconds', () => {
  it('waits for the summary line and refuses a partial one', () => {
    expect(parseUsage('')).toBeUndefined();
    expect(() => parseUsage('ferry-usage: files=1 dirs=2')).toThrow(/no symlinks/);
  });

  it('gives a read rate only from a sample large enough to say', () => {
    expect(readRate({ sampleBytes: 100 * 1024 * 1024, sampleSeconds: 0.5 })).toBe(200 * 1024 * 1024);
    expect(readRate({ sampleBytes: 1000, sampleSeconds: 0.5 })).toBeUndefined();
    expect(readRate({ sampleBytes: 100 * 1024 * 1024, sampleSeconds: 0.001 })).toBeUndefined();
  });

  it('schedules the PVCs longest first over the lanes', () => {
    expect(scheduleSeconds([3, 5, 3, 4], 2)).toBe(8); // 5+3 | 4+3
    expect(scheduleSeconds([3, 5, 3, 4], 1)).toBe(15);
    expect(scheduleSeconds([3, 5, 3, 4], 10)).toBe(5);
    expect(scheduleSeconds([], 3)).toBe(0);
  });
});

describe('the usage pod', () => {
  const base = { name: 'ferry-x-usage-data', namespace: 'app', labels: { a: 'b' }, pvcName: 'data', image: 'ferry/transfer:latest', sampleBytes: 1024 };
  it('mounts the PVC read-only, restricted with the workload identity, pinned when asked', () => {
    const pod = buildUsagePod({ ...base, root: false, identity: { runAsUser: 1000, fsGroup: 1000 }, nodeName: 'node-a' });
    const c = pod.spec!.containers[0]!;
    expect(pod.spec!.volumes![0]!.persistentVolumeClaim).toEqual({ claimName: 'data', readOnly: true });
    expect(c.volumeMounts!.find((m) => m.mountPath === USAGE_MOUNT)!.readOnly).toBe(true);
    expect(pod.spec!.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(JSON.stringify(pod.spec!.affinity)).toContain('node-a');
    expect(pod.spec!.restartPolicy).toBe('Never');
    expect(pod.spec!.activeDeadlineSeconds).toBeGreaterThan(0);
  });
  it('is not pinned without a node, and runs as root in preserve-ownership mode', () => {
    const pod = buildUsagePod({ ...base, root: true });
    expect(pod.spec!.affinity).toBeUndefined();
    expect(pod.spec!.securityContext).toMatchObject({ runAsUser: 0 });
  });
});

describe('predictEndpoint', () => {
  const lb = (name: string, address?: string): V1Service => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'x' },
    spec: { type: 'LoadBalancer' },
    status: { loadBalancer: address ? { ingress: [{ ip: address }] } : {} },
  });
  const fake = (services: V1Service[], routes: boolean) => {
    const f = new FakeKube(services);
    f.hasApi = async () => routes;
    return f.client();
  };
  const auto = { endpoint: { type: 'auto' as const } };

  it('takes the plan\'s type as it is', async () => {
    expect((await predictEndpoint(fake([], true), { endpoint: { type: 'NodePort' } })).type).toBe('NodePort');
  });
  it('auto: Route on OpenShift', async () => {
    expect(await predictEndpoint(fake([], true), auto)).toEqual({ type: 'Route', reason: expect.stringContaining('OpenShift') });
  });
  it('auto: LoadBalancer when existing LoadBalancer Services have addresses', async () => {
    expect(await predictEndpoint(fake([lb('a', '10.0.0.1'), lb('b')], false), auto)).toEqual({ type: 'LoadBalancer', reason: expect.stringContaining('1 of the destination\'s 2') });
  });
  it('auto: NodePort when none of them has an address', async () => {
    expect(await predictEndpoint(fake([lb('a'), lb('b')], false), auto)).toEqual({ type: 'NodePort', reason: expect.stringContaining('no load-balancer controller') });
  });
  it('auto: LoadBalancer first when nothing tells', async () => {
    expect(await predictEndpoint(fake([], false), auto)).toEqual({ type: 'LoadBalancer', reason: expect.stringContaining('tries LoadBalancer') });
  });
});

describe('plannedObjects', () => {
  const discovery: NamespaceDiscovery = {
    sourceNamespace: 'app',
    destinationNamespace: 'app2',
    workloads: [],
    pvcs: ['data', 'logs'].map((name) => ({ name, destinationName: name, capacity: '1Gi', capacityBytes: 1 << 30, accessModes: ['ReadWriteOnce'], destinationAccessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' as const, usedBy: [] })),
  };
  const plan = (fields: Record<string, unknown>) => parsePlan({ source: { context: 's' }, destination: { context: 'd' }, namespaces: ['app:app2'], ...fields });

  it('lists the destination PVCs, the endpoint and the server, and a warm agent per PVC', () => {
    const o = plannedObjects(plan({}), 'm1', discovery, 'LoadBalancer', false);
    const dst = o.destination.map((x) => `${x.kind} ${x.name}`);
    expect(dst).toEqual(expect.arrayContaining(['Namespace app2', 'PersistentVolumeClaim data', 'PersistentVolumeClaim logs', expect.stringMatching(/^Service ferry-.*-endpoint$/), expect.stringMatching(/^Pod ferry-.*-server$/)]));
    expect(o.destination.every((x) => x.kind === 'Namespace' || x.namespace === 'app2')).toBe(true);
    const pods = o.source.filter((x) => x.kind === 'Pod');
    expect(pods).toHaveLength(2);
    expect(pods[0]!.note).toMatch(/warm agent/);
    // Secrets shared by the PVCs' pods are listed once
    expect(new Set(o.source.map((x) => `${x.kind}/${x.name}`)).size).toBe(o.source.length);
  });

  it('does not list an existing destination namespace; per-sync client pods and point-in-time copies when the plan says so', () => {
    const o = plannedObjects(plan({ agents: 'per-sync', sourceCopyMethod: 'snapshot' }), 'm1', discovery, 'NodePort', true);
    expect(o.destination.some((x) => x.kind === 'Namespace')).toBe(false);
    expect(o.source.filter((x) => x.kind === 'Pod').every((x) => /client pod per sync/.test(x.note ?? ''))).toBe(true);
    expect(o.source.filter((x) => x.kind === 'VolumeSnapshot')).toHaveLength(2);
    expect(o.source.filter((x) => x.kind === 'PersistentVolumeClaim')).toHaveLength(2);
  });
});
