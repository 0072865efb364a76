/**
 * Smoke test of the full lab (hack/lab/lab.sh up): two real single-node clusters, `ferry-src` and
 * `ferry-dst`, with the lab's LoadBalancer allocator, dynamic `lab-local` volumes and two TLS +
 * htpasswd registries. Every check is done against the real thing: pods really run on the nodes
 * (containerd + kubelet), data lands on real size-limited filesystems, packets cross from one
 * cluster's pod to the other cluster's node, images move between real registries.
 *
 * Skipped with a message when the lab is not up, unless FERRY_REQUIRE_LAB=1 (then it fails).
 * Run alone: npm run test:lab (after npm run lab:up).
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type * as K8s from '@kubernetes/client-node';
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';

// @kubernetes/client-node 1.x is ES modules only: Jest's registry cannot load it, Node's own
// require can (Node >= 20.19); process.getBuiltinModule bypasses Jest's node:module (as src/k8s/k8s.ts).
const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
const { AppsV1Api, CoreV1Api, KubeConfig } = nodeModule.createRequire(__filename)('@kubernetes/client-node') as typeof K8s;

const execFileP = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const STATE = process.env.FERRY_LAB_STATE ?? '/var/lib/ferry-lab';
const KUBECONFIG = join(STATE, 'kubeconfig');
const REG = join(STATE, 'registries');
const REGISTRY = { src: '127.0.0.1:15000', dst: '127.0.0.1:25000' } as const;
const REGISTRY_WIRE = { src: '10.250.0.21:5000', dst: '10.250.0.22:5000' } as const;
const LB_RANGE = { src: [100, 149], dst: [150, 199] } as const;
const WORKLOAD = 'lab/workload:latest';
type Cluster = 'src' | 'dst';

function labStatus(): string | undefined {
  if (!existsSync(KUBECONFIG)) return `no lab kubeconfig at ${KUBECONFIG}`;
  const r = spawnSync('bash', [join(ROOT, 'hack/lab/lab.sh'), 'status'], { encoding: 'utf8', timeout: 60000 });
  if (r.status === 0) return undefined;
  const bad = (r.stdout + r.stderr).split('\n').filter((l) => /not running|UNHEALTHY|UNREACHABLE|NotReady|NO|down/.test(l));
  return `hack/lab/lab.sh status failed: ${(bad.length ? bad : (r.stdout + r.stderr).trim().split('\n').slice(-2)).join(' | ')}`;
}
const unavailable = labStatus();
if (unavailable && process.env.FERRY_REQUIRE_LAB === '1') throw new Error(`FERRY_REQUIRE_LAB=1 but the lab is not available: ${unavailable}; run: bash hack/lab/lab.sh up`);
if (unavailable) console.warn(`SKIPPED lab smoke tests: ${unavailable}. Start it with: bash hack/lab/lab.sh up (FERRY_REQUIRE_LAB=1 makes this a failure)`);
const labDescribe = unavailable ? describe.skip : describe;

const run = randomBytes(3).toString('hex');
const NS = `lab-smoke-${run}`;

function clients(c: Cluster) {
  const kc = new KubeConfig();
  kc.loadFromFile(KUBECONFIG);
  kc.setCurrentContext(`ferry-${c}`);
  return { core: kc.makeApiClient(CoreV1Api), apps: kc.makeApiClient(AppsV1Api) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String((last as Error).message ?? last)}` : ''}`);
    await sleep(500);
  }
}

labDescribe('lab smoke (hack/lab/lab.sh)', () => {
  // made in beforeAll: describe bodies run even when skipped, and then there may be no kubeconfig
  let k: Record<Cluster, ReturnType<typeof clients>>;

  beforeAll(async () => {
    k = { src: clients('src'), dst: clients('dst') };
    for (const c of ['src', 'dst'] as const) await k[c].core.createNamespace({ body: { metadata: { name: NS } } });
    // pods need the namespace's default ServiceAccount (made by the controller-manager)
    for (const c of ['src', 'dst'] as const) await until(`${c} default ServiceAccount`, async () => (await k[c].core.readNamespacedServiceAccount({ name: 'default', namespace: NS })) ?? undefined);
  }, 120000);

  afterAll(async () => {
    for (const c of ['src', 'dst'] as const) await k[c].core.deleteNamespace({ name: NS }).catch(() => undefined);
  });

  /** A pod that runs `script` in the workload image (or `image`) and ends; returns its log. */
  async function runPod(c: Cluster, name: string, script: string, o: { spec?: Partial<V1PodSpec>; container?: Partial<V1Container>; image?: string } = {}): Promise<string> {
    const container: V1Container = { name: 'main', image: o.image ?? WORKLOAD, imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', script], ...o.container };
    await k[c].core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name }, spec: { restartPolicy: 'Never', terminationGracePeriodSeconds: 1, ...o.spec, containers: [container] } },
    });
    const pod = await until(`${c} pod ${name} to finish`, async () => {
      const p = await k[c].core.readNamespacedPod({ name, namespace: NS });
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
    }, 120000);
    const log = await k[c].core.readNamespacedPodLog({ name, namespace: NS });
    if (pod.status?.phase !== 'Succeeded') throw new Error(`${c} pod ${name} ${pod.status?.phase}: ${JSON.stringify(pod.status?.containerStatuses?.[0]?.state)}\n${log}`);
    return log;
  }

  test.each(['src', 'dst'] as const)('%s: a pod writes to a dynamically provisioned lab-local PVC; a full PVC fails with ENOSPC', async (c) => {
    const body = (name: string, size: string) => ({ metadata: { name }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } } } });
    await k[c].core.createNamespacedPersistentVolumeClaim({ namespace: NS, body: body('data', '64Mi') });
    await k[c].core.createNamespacedPersistentVolumeClaim({ namespace: NS, body: body('small', '16Mi') });
    const pvc = await until(`${c} PVC bound`, async () => {
      const p = await k[c].core.readNamespacedPersistentVolumeClaim({ name: 'data', namespace: NS });
      return p.status?.phase === 'Bound' ? p : undefined;
    }, 60000);
    expect(pvc.spec?.storageClassName).toBe('lab-local'); // the default class, not named in the claim
    const pv = await k[c].core.readPersistentVolume({ name: pvc.spec!.volumeName! });
    expect(pv.metadata?.annotations?.['pv.kubernetes.io/provisioned-by']).toBe('ferry.local/lab-local');
    expect(pv.spec?.capacity?.storage).toBe('64Mi');
    expect(pv.spec?.local?.path).toContain(`/nodes/${c}-node1/volumes/`);
    expect(pv.spec?.nodeAffinity?.required?.nodeSelectorTerms?.[0]?.matchExpressions?.[0]?.values).toEqual([`${c}-node1`]);
    // the claim is its own filesystem on the node, of the requested size
    expect(readFileSync('/proc/self/mounts', 'utf8')).toContain(` ${pv.spec!.local!.path} ext4 `);

    const token = `written-in-${c}-${run}`;
    const log = await runPod(c, 'writer',
      `set -e; echo ${token} > /data/proof.txt; sync; cat /data/proof.txt; df -k /data | tail -1; ` +
      `if dd if=/dev/zero of=/small/fill bs=1M count=64 2>/tmp/err; then echo NO-ENOSPC; else cat /tmp/err; fi`,
      {
        spec: {
          securityContext: { runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000 },
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }, { name: 'small', persistentVolumeClaim: { claimName: 'small' } }],
        },
        container: { volumeMounts: [{ name: 'data', mountPath: '/data' }, { name: 'small', mountPath: '/small' }] },
      });
    expect(log).toContain(token);
    expect(log).toContain('No space left on device');
    expect(log).not.toContain('NO-ENOSPC');
    // the data is on the PV's filesystem on the node
    expect(readFileSync(join(pv.spec!.local!.path!, 'proof.txt'), 'utf8').trim()).toBe(token);
  }, 240000);

  test('a pod in src reaches a NodePort and a LoadBalancer Service in dst, and its own cluster\'s API through the kubernetes Service', async () => {
    const token = `served-by-dst-${run}`;
    await k.dst.core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'web', labels: { app: 'web' } },
        spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'httpd', image: WORKLOAD, command: ['sh', '-c', `mkdir -p /www && echo ${token} > /www/index.html && exec httpd -f -p 8080 -h /www`], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } }] },
      },
    });
    const svc = (name: string, type: 'NodePort' | 'LoadBalancer') => ({ metadata: { name }, spec: { type, selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } });
    await k.dst.core.createNamespacedService({ namespace: NS, body: svc('web-np', 'NodePort') });
    await k.dst.core.createNamespacedService({ namespace: NS, body: svc('web-lb', 'LoadBalancer') });
    const nodePort = (await k.dst.core.readNamespacedService({ name: 'web-np', namespace: NS })).spec!.ports![0]!.nodePort!;
    const lbIP = await until('dst LoadBalancer IP', async () => (await k.dst.core.readNamespacedService({ name: 'web-lb', namespace: NS })).status?.loadBalancer?.ingress?.[0]?.ip);
    const last = Number(lbIP.split('.')[3]);
    expect(lbIP.startsWith('10.250.0.')).toBe(true);
    expect(last).toBeGreaterThanOrEqual(LB_RANGE.dst[0]);
    expect(last).toBeLessThanOrEqual(LB_RANGE.dst[1]);
    const node = await k.dst.core.readNode({ name: 'dst-node1' });
    const nodeIP = node.status!.addresses!.find((a) => a.type === 'InternalIP')!.address;
    await until('dst web pod ready', async () => {
      const p = await k.dst.core.readNamespacedPod({ name: 'web', namespace: NS });
      return p.status?.containerStatuses?.[0]?.ready ? p : undefined;
    });

    const get = (host: string, port: number, tag: string) => `echo ${tag}; printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${host} ${port}`;
    const log = await runPod('src', 'client',
      `${get(nodeIP, nodePort, 'NODEPORT')}; ${get(lbIP, 80, 'LOADBALANCER')}; echo KUBERNETES; ` +
      `wget -qO- --no-check-certificate --header "Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)" https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version`);
    const section = (name: string) => log.split(/^(?:NODEPORT|LOADBALANCER|KUBERNETES)$/m)[['NODEPORT', 'LOADBALANCER', 'KUBERNETES'].indexOf(name) + 1] ?? '';
    expect(section('NODEPORT')).toMatch(/HTTP\/1\.[01] 200/);
    expect(section('NODEPORT')).toContain(token);
    expect(section('LOADBALANCER')).toMatch(/HTTP\/1\.[01] 200/);
    expect(section('LOADBALANCER')).toContain(token);
    expect(JSON.parse(section('KUBERNETES')).gitVersion).toBe('v1.32.5');
  }, 240000);

  test('a Deployment scales 0 -> 2 -> 0 with its pods really starting and stopping', async () => {
    const name = 'scaler';
    await k.src.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: name } },
          template: { metadata: { labels: { app: name } }, spec: { terminationGracePeriodSeconds: 2, containers: [{ name: 'main', image: WORKLOAD, command: ['sh', '-c', 'echo started $(hostname); trap "echo stopping; exit 0" TERM; while :; do sleep 1; done'] }] } },
        },
      },
    });
    const pods = async () => (await k.src.core.listNamespacedPod({ namespace: NS, labelSelector: `app=${name}` })).items;
    const scale = (replicas: number) => k.src.apps.replaceNamespacedDeploymentScale({ name, namespace: NS, body: { metadata: { name, namespace: NS }, spec: { replicas } } });
    await sleep(1000);
    expect(await pods()).toHaveLength(0);

    await scale(2);
    const running = await until('2 running pods', async () => {
      const ps = await pods();
      const ok = ps.filter((p) => p.status?.phase === 'Running' && p.status.containerStatuses?.[0]?.ready && p.status.containerStatuses[0].state?.running?.startedAt);
      return ok.length === 2 ? ok : undefined;
    }, 120000);
    expect(new Set(running.map((p) => p.spec?.nodeName))).toEqual(new Set(['src-node1']));
    for (const p of running) {
      // the container really runs: its own output comes back from the kubelet
      const log = await until(`log of ${p.metadata!.name}`, async () => {
        const l = await k.src.core.readNamespacedPodLog({ name: p.metadata!.name!, namespace: NS });
        return l.includes('started') ? l : undefined;
      });
      expect(log).toContain(`started ${p.metadata!.name}`);
    }
    const d = await k.src.apps.readNamespacedDeployment({ name, namespace: NS });
    expect(d.status?.readyReplicas).toBe(2);

    await scale(0);
    // a pod object disappears only after the kubelet has stopped its containers
    await until('pods gone', async () => ((await pods()).length === 0 ? true : undefined), 120000);
    const d0 = await k.src.apps.readNamespacedDeployment({ name, namespace: NS });
    expect(d0.status?.replicas ?? 0).toBe(0);
    expect(d0.status?.readyReplicas ?? 0).toBe(0);
  }, 300000);

  test('an image is copied between the registries with skopeo (same digest) and pulled by a dst pod', async () => {
    const ca = join(REG, 'ca.crt');
    const auth = { src: join(REG, 'src', 'auth.json'), dst: join(REG, 'dst', 'auth.json') };
    for (const f of [ca, auth.src, auth.dst]) expect(existsSync(f)).toBe(true);
    const skopeo = async (...args: string[]) => (await execFileP('skopeo', args, { timeout: 120000, maxBuffer: 64 << 20 })).stdout;
    const from = `docker://${REGISTRY.src}/lab/workload:latest`;
    const dest = `docker://${REGISTRY.dst}/${NS}/workload:copied`;
    const certDir = REG; // skopeo reads every *.crt of it as a CA
    await skopeo('copy', '--quiet', `--src-authfile=${auth.src}`, `--src-cert-dir=${certDir}`, `--dest-authfile=${auth.dst}`, `--dest-cert-dir=${certDir}`, from, dest);
    const digest = async (ref: string, a: string) => `sha256:${createHash('sha256').update(await skopeo('inspect', '--raw', `--authfile=${a}`, `--cert-dir=${certDir}`, ref)).digest('hex')}`;
    const srcDigest = await digest(from, auth.src);
    const dstDigest = await digest(dest, auth.dst);
    expect(dstDigest).toBe(srcDigest);
    expect(JSON.parse(await skopeo('inspect', `--authfile=${auth.dst}`, `--cert-dir=${certDir}`, dest)).Digest).toBe(srcDigest);
    // the registries really authenticate and really serve TLS from the lab CA
    await expect(skopeo('inspect', '--raw', '--no-creds', `--cert-dir=${certDir}`, dest)).rejects.toThrow(/unauthorized|authentication required|401/i);
    const noCA = mkdtempSync(join(tmpdir(), 'lab-smoke-noca-'));
    try {
      await expect(skopeo('inspect', '--raw', `--authfile=${auth.dst}`, `--cert-dir=${noCA}`, dest)).rejects.toThrow(/x509|certificate/i);
    } finally {
      rmSync(noCA, { recursive: true, force: true });
    }
    // the dst node pulls the copy from its registry (lab CA trusted, node credentials) and runs it
    const log = await runPod('dst', 'pulled', 'echo pulled-and-ran', { image: `${REGISTRY_WIRE.dst}/${NS}/workload:copied`, container: { imagePullPolicy: 'Always' } });
    expect(log).toContain('pulled-and-ran');
    const pod = await k.dst.core.readNamespacedPod({ name: 'pulled', namespace: NS });
    expect(pod.status?.containerStatuses?.[0]?.imageID).toContain(srcDigest);
  }, 240000);

  // `npm run demo` exports KUBECONFIG (current context ferry-src) before it brings the lab up; traefik's
  // Kubernetes providers prefer $KUBECONFIG to their endpoint/token flags, so the dst Gateway waited
  // for a controller watching src (the demo's first step failed on a fresh clone, 2026-12-05).
  test.each([
    ['gateway.sh', 'traefik-dst.log'],
    ['ingress.sh', 'ingress-dst.log'],
  ])('%s restarted under the demo\'s KUBECONFIG still watches dst (its endpoint flag, not $KUBECONFIG)', (script, logName) => {
    const env = { ...process.env, KUBECONFIG, FERRY_LAB_READY_TIMEOUT: '40' };
    const log = join(STATE, 'logs', logName);
    const down = spawnSync('bash', [join(ROOT, 'hack/lab', script), 'down'], { encoding: 'utf8', env, timeout: 60000 });
    expect(down.status).toBe(0);
    const before = existsSync(log) ? readFileSync(log, 'utf8').length : 0;
    // `up` waits for the controller's own work in dst: the Gateway Programmed with its address, the
    // Ingress Service's address answered
    const up = spawnSync('bash', [join(ROOT, 'hack/lab', script), 'up'], { encoding: 'utf8', env, timeout: 120000 });
    expect({ status: up.status, stderr: up.stderr.slice(-600) }).toEqual({ status: 0, stderr: expect.any(String) });
    const started = readFileSync(log, 'utf8').slice(before);
    // traefik names the client it made: "…Provider client endpoint=https://127.0.0.1:26443" (Gateway),
    // "…Provider client with endpoint https://…" (Ingress), "…Provider client from KUBECONFIG …"
    expect(started).toMatch(/Creating cluster-external Provider client (endpoint=|with endpoint )https:\/\/127\.0\.0\.1:/);
    expect(started).not.toMatch(/Provider client from KUBECONFIG/);
    const status = spawnSync('bash', [join(ROOT, 'hack/lab', script), 'status'], { encoding: 'utf8', env, timeout: 60000 });
    expect({ status: status.status, out: status.stdout }).toEqual({ status: 0, out: expect.any(String) });
  }, 180000);
});
