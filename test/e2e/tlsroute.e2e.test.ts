/**
 * Lab drill: Ferry's TLSRoute endpoint (Gateway API, TLS passthrough by SNI) through a real Gateway
 * API implementation: traefik in the dst cluster (hack/lab/gateway.sh), Gateway
 * ferry-gateway/lab-gateway with the TLS Passthrough listener `tls` (*.gw.lab, port 443, routes from
 * all namespaces, status address 10.250.0.12 = dst-node1 on the lab wire).
 *
 *   migration  a real Temporal dev server, a real `ferry worker` child process, the small sample
 *              namespace of hack/e2e/sample-app.sh (`gw-<run>`, all its PVCs) migrated with
 *              `endpoint: {type: TLSRoute, hostname: <run>.gw.lab, gateway: {name: lab-gateway,
 *              namespace: ferry-gateway}}`. While it runs, the TLSRoute's status as traefik writes it
 *              is read: Accepted and ResolvedRefs True for the Gateway, controllerName traefik's. Then:
 *              succeeded, the source connected to the Gateway's address with SNI = the hostname
 *              (the migration's recorded endpoint address), every PVC's tree identical, the source
 *              workloads as before, no Ferry object (nor TLSRoute) left in either cluster.
 *   negative   a Gateway of the drill's own (`gw-<run>-gwy/restricted`, listener from: Same) and a
 *              TLSRoute endpoint for it from another namespace: preflight reports it from the
 *              Gateway's spec; created anyway, traefik reports Accepted False (NotAllowedByListeners)
 *              and Ferry's ensureEndpoint fails with that explanation.
 *
 * Skipped with a message unless the lab with nodes and its Gateway is up; FERRY_REQUIRE_LAB=1 makes
 * that a failure.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startMigration } from '../../src/cli/operations';
import { FerryError } from '../../src/core/errors';
import type { WorkflowTuning } from '../../src/core/state';
import { KubeClient } from '../../src/k8s/client';
import { ensureEndpoint, observeEndpoint } from '../../src/migration/endpoint';
import { endpointFor } from '../../src/migration/compose';
import { runPreflight } from '../../src/migration/preflight';
import { parsePlan } from '../../src/plan/load';
import { kubectl, LAB_KUBECONFIG, labUnavailable, waitUntil } from '../../hack/e2e/lib';
import { startLabWorker, type LabWorker } from '../../hack/e2e/lab-worker';
import { expectMigratedIntact, migrationOutcome, sampleDrill } from '../../hack/e2e/drill-checks';

const ROOT = join(__dirname, '..', '..');
const GATEWAY = { name: 'lab-gateway', namespace: 'ferry-gateway' };
const GATEWAY_IP = '10.250.0.12';
const GATEWAY_PORT = 443;
const CONTROLLER = 'traefik.io/gateway-controller';

/** Why the lab's Gateway cannot serve the drill: `hack/lab/gateway.sh status` fails (undefined when it can). */
function gatewayUnavailable(): string | undefined {
  const r = spawnSync('bash', [join(ROOT, 'hack/lab/gateway.sh'), 'status'], { encoding: 'utf8', timeout: 60000 });
  return r.status === 0 ? undefined : `hack/lab/gateway.sh status failed: ${(r.stdout + r.stderr).trim().replace(/\n\s*/g, ' | ')}`;
}

const unavailable = labUnavailable(['kubectl']) ?? gatewayUnavailable();
if (unavailable && process.env.FERRY_REQUIRE_LAB === '1') throw new Error(`FERRY_REQUIRE_LAB=1 but the lab is not available: ${unavailable}`);
if (unavailable) console.warn(`SKIPPED TLSRoute drill: ${unavailable}. Start it with: bash hack/lab/lab.sh up (FERRY_REQUIRE_LAB=1 makes this a failure)`);
const labDescribe = unavailable ? describe.skip : describe;

/** Short timings: retries wait 1/5 of the default. */
const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const RUN = Math.random().toString(36).slice(2, 7);
const NS = `gw-${RUN}`;
const ID = `gw-${RUN}`;
const HOSTNAME = `m-${RUN}.gw.lab`;
const NEG_NS = `gw-${RUN}-neg`;
const NEG_GW_NS = `gw-${RUN}-gwy`;
const t0 = Date.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stdout.write(`[tlsroute drill +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

interface RouteParentStatus {
  parentRef?: { name?: string; namespace?: string };
  controllerName?: string;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
}

/** The status.parents of the TLSRoutes in a dst namespace, as their controller wrote them. */
function routeParents(namespace: string): { name: string; hostnames: string[]; parents: RouteParentStatus[] }[] {
  const items = JSON.parse(kubectl('ferry-dst', ['-n', namespace, 'get', 'tlsroutes.gateway.networking.k8s.io', '-o', 'json'])).items as any[];
  return items.map((r) => ({ name: r.metadata.name, hostnames: r.spec.hostnames, parents: r.status?.parents ?? [] }));
}

const condition = (p: RouteParentStatus | undefined, type: string) => p?.conditions?.find((c) => c.type === type);

labDescribe('TLSRoute endpoint through a real Gateway (traefik) on the lab', () => {
  let lab: LabWorker | undefined;
  const session = () => lab!.session;

  beforeAll(async () => {
    lab = await startLabWorker(ROOT, `gw-${RUN}`);
  }, 300_000);

  afterAll(async () => {
    await lab?.stop();
    if (process.env.FERRY_E2E_KEEP !== '1') {
      const del = (ctx: string, ns: string) => spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', ctx, 'delete', 'ns', ns, '--wait=false', '--ignore-not-found'], { timeout: 30000 });
      del('ferry-src', NS);
      for (const ns of [NS, NEG_NS, NEG_GW_NS]) del('ferry-dst', ns);
    }
  }, 120_000);

  test('a migration through the Gateway: route accepted by traefik, data identical, nothing left', async () => {
    const { plan, before, srcPVCs } = await sampleDrill(NS, { type: 'TLSRoute', hostname: HOSTNAME, gateway: GATEWAY });
    log(`seeded ${NS}`);
    const started = Date.now();
    await startMigration(session(), plan, ID, TUNING);

    // the route as traefik reports it, read while the migration runs (Ferry deletes it at the end)
    let seen: { name: string; hostnames: string[]; parents: RouteParentStatus[] } | undefined;
    let done = false;
    const result = migrationOutcome(session(), ID).finally(() => (done = true));
    while (!done && !seen) {
      try {
        seen = routeParents(NS).find((r) => condition(r.parents[0], 'Accepted')?.status === 'True');
      } catch {
        // the namespace or the route does not exist yet
      }
      if (!seen) await sleep(500);
    }
    const s = await result;
    const seconds = (Date.now() - started) / 1000;
    log(`migration ${s.status} in ${seconds.toFixed(0)} s; route status seen: ${JSON.stringify(seen?.parents)}`);
    expect({ status: s.status, error: s.error }).toEqual({ status: 'succeeded', error: undefined });

    // traefik accepted the route on lab-gateway, and the source went through the Gateway's address
    expect(seen).toBeDefined();
    expect(seen!.hostnames).toEqual([HOSTNAME]);
    const parent = seen!.parents.find((p) => p.parentRef?.name === GATEWAY.name && p.parentRef?.namespace === GATEWAY.namespace);
    expect(parent?.controllerName).toBe(CONTROLLER);
    expect(condition(parent, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(condition(parent, 'ResolvedRefs')).toMatchObject({ status: 'True' });
    expect(s.namespaces[0]!.result?.address).toEqual({ host: GATEWAY_IP, port: GATEWAY_PORT, sni: HOSTNAME });

    // data identical, workloads as before, nothing of Ferry's left (TLSRoutes included)
    await expectMigratedIntact(NS, srcPVCs, before, log);
    expect(routeParents(NS)).toEqual([]);
  }, 900_000);

  test('a listener that does not admit the namespace: preflight finds it in the spec, traefik says NotAllowedByListeners, Ferry reports it', async () => {
    const dst = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' });
    kubectl('ferry-dst', ['create', 'namespace', NEG_GW_NS]);
    kubectl('ferry-dst', ['create', 'namespace', NEG_NS]);
    kubectl('ferry-dst', ['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'restricted', namespace: NEG_GW_NS },
      spec: {
        gatewayClassName: 'traefik',
        listeners: [{ name: 'tls-same', protocol: 'TLS', port: GATEWAY_PORT, hostname: `*.${RUN}.restricted.gw.lab`, tls: { mode: 'Passthrough' }, allowedRoutes: { namespaces: { from: 'Same' } } }],
      },
    }));
    await waitUntil(() => kubectl('ferry-dst', ['-n', NEG_GW_NS, 'get', 'gateway', 'restricted', '-o', 'jsonpath={.status.conditions[?(@.type=="Programmed")].status}']) === 'True', 'Gateway restricted Programmed', 60_000, 500);

    const plan = parsePlan({
      source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
      destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
      namespaces: [NEG_NS],
      endpoint: { type: 'TLSRoute', hostname: `x.${RUN}.restricted.gw.lab`, gateway: { name: 'restricted', namespace: NEG_GW_NS, sectionName: 'tls-same' } },
    });
    // the dry run (preflight) sees it in the Gateway's spec already, before anything is created
    const source = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });
    const preflight = await runPreflight({ migrationId: ID, plan, discoveries: [], source: { client: source }, destination: { client: dst } });
    expect(preflight.filter((p) => p.message.startsWith('endpoint TLSRoute:'))).toEqual([
      { subject: 'namespaces[0]', message: expect.stringContaining(`Gateway ${NEG_GW_NS}/restricted listener tls-same admits routes from its own namespace ${NEG_GW_NS} only`) },
    ]);
    const started = Date.now();
    const err = await ensureEndpoint(dst, plan, ID, NEG_NS, { timeoutSeconds: 15 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    log(`ensureEndpoint failed after ${((Date.now() - started) / 1000).toFixed(0)} s: ${(err as Error)?.message}`);
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).category).toBe('config');
    expect((err as Error).message).toMatch(/did not accept it: Accepted False \(NotAllowedByListeners/);

    // the status Ferry read is traefik's own
    const routes = routeParents(NEG_NS);
    expect(routes).toHaveLength(1);
    const parent = routes[0]!.parents[0];
    expect(parent?.controllerName).toBe(CONTROLLER);
    expect(condition(parent, 'Accepted')).toMatchObject({ status: 'False', reason: 'NotAllowedByListeners' });
    const health = await observeEndpoint(dst, endpointFor(plan, ID, NEG_NS, 'TLSRoute'));
    expect(health.healthy).toBe(false);
    expect(health.reason).toContain(`Gateway ${NEG_GW_NS}/restricted did not accept it: Accepted False (NotAllowedByListeners`);
  }, 180_000);
});
