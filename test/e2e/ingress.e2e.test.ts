/**
 * Lab drill: Ferry's Ingress endpoint (ingress-nginx annotations, ssl-passthrough) through a real
 * Ingress controller: traefik's Ingress NGINX provider in the dst cluster (hack/lab/ingress.sh),
 * IngressClass `nginx` (controller k8s.io/ingress-nginx), address = the LoadBalancer IP of Service
 * ingress-nginx/ingress-nginx-controller (lab-controller, 10.250.0.150-199) on port 443, published
 * in every Ingress's status (publishService).
 *
 *   migration  a real Temporal dev server, a real `ferry worker` child process, the small sample
 *              namespace of hack/e2e/sample-app.sh (`ig-<run>`, all its PVCs) migrated with
 *              `endpoint: {type: Ingress, hostname: m-<run>.ing.lab, ingressClassName: nginx}`.
 *              While it runs, the Ingress's status as the controller writes it is read (the
 *              Service's LoadBalancer IP) and the dst pod IPs are noted. Then: succeeded, the
 *              source connected to <LB IP>:443 with SNI = the hostname (the namespace's recorded
 *              address), traefik's log shows the passed-through TCP connections to a pod of the
 *              namespace, every PVC's tree identical, the workloads as before, no Ferry object (nor
 *              Ingress) left in either cluster.
 *   no class   an Ingress endpoint for an IngressClass that no controller serves: the Ingress never
 *              gets an address and Ferry's ensureEndpoint fails with its explanation.
 *
 * Skipped with a message unless the lab with nodes and its Ingress controller is up;
 * FERRY_REQUIRE_LAB=1 makes that a failure.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startMigration } from '../../src/cli/operations';
import { FerryError } from '../../src/core/errors';
import type { WorkflowTuning } from '../../src/core/state';
import { KubeClient } from '../../src/k8s/client';
import { ensureEndpoint } from '../../src/migration/endpoint';
import { kubectl, LAB_KUBECONFIG, LAB_STATE, labPlan, labUnavailable } from '../../hack/e2e/lib';
import { startLabWorker, type LabWorker } from '../../hack/e2e/lab-worker';
import { expectMigratedIntact, migrationOutcome, sampleDrill } from '../../hack/e2e/drill-checks';

const ROOT = join(__dirname, '..', '..');
const CLASS = 'nginx';
const CONTROLLER_SERVICE = { namespace: 'ingress-nginx', name: 'ingress-nginx-controller' };
const CONTROLLER_LOG = join(LAB_STATE, 'logs/ingress-dst.log');

/** Why the lab's Ingress controller cannot serve the drill: `hack/lab/ingress.sh status` fails (undefined when it can). */
function controllerUnavailable(): string | undefined {
  const r = spawnSync('bash', [join(ROOT, 'hack/lab/ingress.sh'), 'status'], { encoding: 'utf8', timeout: 60000 });
  return r.status === 0 ? undefined : `hack/lab/ingress.sh status failed: ${(r.stdout + r.stderr).trim().replace(/\n\s*/g, ' | ')}`;
}

const unavailable = labUnavailable(['kubectl']) ?? controllerUnavailable();
if (unavailable && process.env.FERRY_REQUIRE_LAB === '1') throw new Error(`FERRY_REQUIRE_LAB=1 but the lab is not available: ${unavailable}`);
if (unavailable) console.warn(`SKIPPED Ingress drill: ${unavailable}. Start it with: bash hack/lab/lab.sh up (FERRY_REQUIRE_LAB=1 makes this a failure)`);
const labDescribe = unavailable ? describe.skip : describe;

/** Short timings: retries wait 1/5 of the default. */
const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const RUN = Math.random().toString(36).slice(2, 7);
const NS = `ig-${RUN}`;
const ID = `ig-${RUN}`;
const HOSTNAME = `m-${RUN}.ing.lab`;
const NOCLASS_NS = `ig-${RUN}-noclass`;
const t0 = Date.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stdout.write(`[ingress drill +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

/** The Ingresses of a dst namespace: rule hosts, class, annotations and status addresses (as the controller wrote them). */
function ingresses(namespace: string): { name: string; hosts: string[]; className?: string; annotations: Record<string, string>; addresses: string[] }[] {
  const items = JSON.parse(kubectl('ferry-dst', ['-n', namespace, 'get', 'ingresses.networking.k8s.io', '-o', 'json'])).items as any[];
  return items.map((i) => ({
    name: i.metadata.name,
    hosts: (i.spec.rules ?? []).map((r: any) => r.host),
    className: i.spec.ingressClassName,
    annotations: i.metadata.annotations ?? {},
    addresses: (i.status?.loadBalancer?.ingress ?? []).map((e: any) => e.ip ?? e.hostname),
  }));
}

/** The controller Service's LoadBalancer IP (lab-controller assigns it). */
function controllerAddress(): string {
  return kubectl('ferry-dst', ['-n', CONTROLLER_SERVICE.namespace, 'get', 'svc', CONTROLLER_SERVICE.name, '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}']).trim();
}

/** traefik's log from byte `from` on (its DEBUG lines name every TCP connection it passes on). */
function controllerLogSince(from: number): string {
  const buf = readFileSync(CONTROLLER_LOG);
  return buf.subarray(Math.min(from, buf.length)).toString('utf8');
}

labDescribe('Ingress endpoint through a real ingress-nginx-compatible controller (traefik) on the lab', () => {
  let lab: LabWorker | undefined;
  const session = () => lab!.session;

  beforeAll(async () => {
    lab = await startLabWorker(ROOT, `ig-${RUN}`);
  }, 300_000);

  afterAll(async () => {
    await lab?.stop();
    if (process.env.FERRY_E2E_KEEP !== '1') {
      const del = (ctx: string, ns: string) => spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', ctx, 'delete', 'ns', ns, '--wait=false', '--ignore-not-found'], { timeout: 30000 });
      del('ferry-src', NS);
      for (const ns of [NS, NOCLASS_NS]) del('ferry-dst', ns);
    }
  }, 120_000);

  test('a migration through the Ingress controller: address from the controller, passed through by SNI, data identical, nothing left', async () => {
    const lbIP = controllerAddress();
    expect(lbIP).toMatch(/^10\.250\.0\.(1[5-9]\d)$/);
    const { plan, before, srcPVCs } = await sampleDrill(NS, { type: 'Ingress', hostname: HOSTNAME, ingressClassName: CLASS });
    log(`seeded ${NS}; controller address ${lbIP}:443`);
    const logFrom = statSync(CONTROLLER_LOG).size;
    const started = Date.now();
    await startMigration(session(), plan, ID, TUNING);

    // the Ingress as the controller reports it and the dst pod IPs, read while the migration runs
    // (Ferry deletes its objects at the end)
    let seen: ReturnType<typeof ingresses>[number] | undefined;
    const podIPs = new Set<string>();
    let done = false;
    const result = migrationOutcome(session(), ID).finally(() => (done = true));
    while (!done) {
      try {
        seen ??= ingresses(NS).find((i) => i.addresses.length > 0);
        for (const ip of kubectl('ferry-dst', ['-n', NS, 'get', 'pods', '-o', 'jsonpath={.items[*].status.podIP}']).split(/\s+/)) if (ip) podIPs.add(ip);
      } catch {
        // the namespace does not exist yet
      }
      await sleep(500);
    }
    const s = await result;
    const seconds = (Date.now() - started) / 1000;
    log(`migration ${s.status} in ${seconds.toFixed(0)} s; Ingress seen: ${JSON.stringify(seen)}`);
    expect({ status: s.status, error: s.error }).toEqual({ status: 'succeeded', error: undefined });

    // the controller published its address in the Ingress's status; the source went there with SNI
    expect(seen).toMatchObject({ hosts: [HOSTNAME], className: CLASS, addresses: [lbIP] });
    expect(seen!.annotations).toMatchObject({ 'nginx.ingress.kubernetes.io/ssl-passthrough': 'true', 'nginx.ingress.kubernetes.io/backend-protocol': 'HTTPS' });
    expect(s.namespaces[0]!.result?.address).toEqual({ host: lbIP, port: 443, sni: HOSTNAME });
    // traefik made a TLS passthrough router for the rule host (SNI) and passed TCP connections on to
    // a pod of the namespace (its Service's endpoint)
    const since = controllerLogSince(logFrom);
    const sniRule = new RegExp(`"rule":"HostSNI\\(\\\\"${HOSTNAME.replace(/\./g, '\\.')}\\\\"\\)"[^}]*"tls":\\{"passthrough":true\\}`);
    expect(since).toMatch(sniRule);
    const passed = [...since.matchAll(/Handling TCP connection.*?address=(\S+)/g)].map((m) => m[1]!);
    const toNamespace = passed.filter((a) => podIPs.has(a.replace(/:\d+$/, '')));
    log(`traefik passed ${passed.length} TCP connections on, ${toNamespace.length} to pods of ${NS} (${[...new Set(toNamespace)].join(', ')})`);
    expect(toNamespace.length).toBeGreaterThanOrEqual(1);

    // data identical, workloads as before, nothing of Ferry's left (Ingresses included)
    await expectMigratedIntact(NS, srcPVCs, before, log);
    expect(ingresses(NS)).toEqual([]);
  }, 900_000);

  test('an IngressClass no controller serves: no address in the status, Ferry says so', async () => {
    const dst = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' });
    kubectl('ferry-dst', ['create', 'namespace', NOCLASS_NS]);
    const plan = labPlan({ namespaces: [NOCLASS_NS], endpoint: { type: 'Ingress', hostname: `x-${RUN}.ing.lab`, ingressClassName: `none-${RUN}` } });
    const started = Date.now();
    const err = await ensureEndpoint(dst, plan, ID, NOCLASS_NS, { timeoutSeconds: 10 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    log(`ensureEndpoint failed after ${((Date.now() - started) / 1000).toFixed(0)} s: ${(err as Error)?.message}`);
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).category).toBe('config');
    expect((err as Error).message).toContain(`no controller address in status.loadBalancer.ingress yet: is an ingress-nginx controller for class none-${RUN} running`);
    const [ing] = ingresses(NOCLASS_NS);
    expect(ing).toMatchObject({ className: `none-${RUN}`, addresses: [] });
  }, 120_000);
});
