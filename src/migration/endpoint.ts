/**
 * Creating the endpoint in the destination namespace and waiting until it is healthy.
 *
 * Endpoint type 'auto' (plan): Route when the destination serves route.openshift.io/v1 Route
 * (OpenShift); else a LoadBalancer Service, kept when the cluster assigns it an address within
 * AUTO_LOADBALANCER_SECONDS; else that Service is deleted and a NodePort Service takes its place.
 * When the connectivity probe then fails, the namespace workflow asks again with the failed types
 * excluded (`exclude`): their objects are deleted and the next type in AUTO_ORDER is taken. The
 * choice and why are returned (and logged), and visible afterwards from the live Service's type,
 * which is how later activities (createServer, runTransfer) find it again (`endpointTypeInUse`).
 */
import type { KubernetesObject, V1Node, V1Service } from '@kubernetes/client-node';
import type { EndpointAddress } from '../core/types';
import { objectName } from '../statetransfer/names';
import type { Endpoint, EndpointHealth, EndpointType } from '../statetransfer/types';
import { ENDPOINT_ROLE } from '../statetransfer/endpoint';
import { describeRef, keepWatching, refOf, waitFor, Wakeup, type KubeClient } from '../k8s/client';
import { FerryError, WaitTimeoutError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { endpointFor, type TransferPlan } from './compose';

/** How long 'auto' waits for a load-balancer address before falling back to NodePort (seconds). */
export const AUTO_LOADBALANCER_SECONDS = 60;

/** The live objects of an endpoint and, when it needs them, the nodes; then its health. */
export async function observeEndpoint(client: KubeClient, endpoint: Endpoint): Promise<EndpointHealth> {
  const objects: KubernetesObject[] = [];
  for (const o of endpoint.objects()) {
    const live = await client.get(refOf(o));
    if (live) objects.push({ ...live, kind: live.kind ?? o.kind });
  }
  // objects the endpoint reads but does not own (a TLSRoute's Gateway); absent or unserved: not observed
  for (const ref of endpoint.observes ?? []) {
    const live = (await client.hasApi(ref.apiVersion, ref.kind)) ? await client.get(ref) : undefined;
    if (live) objects.push({ ...live, kind: live.kind ?? ref.kind });
  }
  const nodes = endpoint.needsNodes ? await client.list<V1Node>({ apiVersion: 'v1', kind: 'Node' }) : undefined;
  return endpoint.health({ objects, ...(nodes ? { nodes } : {}) });
}

/**
 * The concrete endpoint type of a migration's namespace: the plan's when not 'auto'; for 'auto', the
 * type of the live endpoint Service when it is LoadBalancer or NodePort (also on OpenShift, after the
 * Route failed its connectivity probe), else Route on OpenShift (a Route's Service is ClusterIP), else
 * undefined (none exists yet).
 */
export async function endpointTypeInUse(client: KubeClient, plan: TransferPlan, migrationId: string, namespace: string): Promise<EndpointType | undefined> {
  if (plan.endpoint.type !== 'auto') return plan.endpoint.type;
  const svc = await client.get<V1Service>({ apiVersion: 'v1', kind: 'Service', namespace, name: objectName(migrationId, ENDPOINT_ROLE) });
  const t = svc?.spec?.type;
  if (t === 'LoadBalancer' || t === 'NodePort') return t;
  if (await client.hasApi('route.openshift.io/v1', 'Route')) return 'Route';
  return undefined;
}

/** The order in which 'auto' tries endpoint types when a connectivity probe fails (Route first when the
 * destination serves it: endpointTypeInUse picks it). */
export const AUTO_ORDER: readonly EndpointType[] = Object.freeze(['Route', 'LoadBalancer', 'NodePort']);

/** Deletes an endpoint's objects and waits until the first (its Service) is gone. */
async function deleteEndpointObjects(client: KubeClient, endpoint: Endpoint, signal?: AbortSignal): Promise<void> {
  for (const o of endpoint.objects()) await client.delete(o);
  const first = endpoint.objects()[0]!;
  await waitFor(async () => !(await client.get(refOf(first))), { timeoutSeconds: 60, intervalSeconds: 1, signal, description: `${describeRef(first)} to be deleted` });
}

/** Options of `ensureEndpoint`. */
export interface EnsureEndpointOptions {
  /** Overall limit for the endpoint to become healthy (plan timeouts.endpointReadySeconds). */
  timeoutSeconds: number;
  /** Heartbeat with the current health reason. */
  onTick?: (reason: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
  /** Seconds 'auto' waits for a load-balancer address (default AUTO_LOADBALANCER_SECONDS). */
  autoLoadBalancerSeconds?: number;
  /** 'auto' only: types already tried whose connectivity probe failed; their objects are deleted and
   * the next type in the order is taken. */
  exclude?: readonly EndpointType[];
}

async function createAll(client: KubeClient, endpoint: Endpoint): Promise<void> {
  for (const o of endpoint.objects()) await client.createOrAdopt(o);
}

/** Seconds between two health checks of an endpoint (also while its objects are watched: a resync). */
export const ENDPOINT_CHECK_SECONDS = 3;

/**
 * Waits until the endpoint is healthy. Its objects are watched (keepWatching, one watch per object,
 * selected by name): any change of one (a load-balancer address assigned, a Route admitted) runs the
 * next check at once instead of at the end of the 3 s interval. A client without `watch` polls.
 */
async function waitHealthy(client: KubeClient, endpoint: Endpoint, timeoutSeconds: number, options: EnsureEndpointOptions): Promise<EndpointAddress> {
  let reason = 'not observed yet';
  const wakeup = new Wakeup();
  const canWatch = typeof (client as Partial<KubeClient>).watch === 'function';
  const watches = canWatch
    ? endpoint.objects().map((o) =>
        keepWatching(
          client,
          { apiVersion: o.apiVersion!, kind: o.kind! },
          o.metadata?.namespace,
          { fieldSelector: `metadata.name=${o.metadata?.name}`, retryMs: ENDPOINT_CHECK_SECONDS * 1000, startBoundMs: 2000, onGap: () => wakeup.ring() },
          () => wakeup.ring(),
        ),
      )
    : [];
  try {
    await Promise.all(watches.map((w) => w.started));
    const address = await waitFor(
      async () => {
        const h = await observeEndpoint(client, endpoint);
        reason = h.reason;
        return h.healthy && h.address ? h.address : undefined;
      },
      {
        timeoutSeconds,
        intervalSeconds: ENDPOINT_CHECK_SECONDS,
        signal: options.signal,
        wakeup,
        onTick: () => options.onTick?.(reason),
        description: `${endpoint.type} endpoint ${endpoint.namespace}/${endpoint.name} to become healthy`,
        explain: () => reason,
      },
    );
    return { host: address.host, port: address.port, ...(address.sni ? { sni: address.sni } : {}) };
  } finally {
    for (const w of watches) w.stop();
  }
}

/**
 * Creates (or adopts) the endpoint objects and waits until healthy; returns where the source must
 * connect, the type in use and why that type (the plan's, or what 'auto' found: see the module
 * docstring).
 * @throws FerryError (config) when the endpoint is not healthy in time (the message is the
 *   endpoint's own explanation, e.g. "no load-balancer controller … consider NodePort"), or for
 *   invalid endpoint options; ConflictError when a foreign object holds the name.
 */
export async function ensureEndpoint(
  client: KubeClient,
  plan: TransferPlan,
  migrationId: string,
  namespace: string,
  options: EnsureEndpointOptions,
): Promise<{ type: EndpointType; address: EndpointAddress; reason: string }> {
  const log = options.logger ?? silentLogger;
  const started = Date.now();
  const left = () => Math.max(1, options.timeoutSeconds - (Date.now() - started) / 1000);
  let type = await endpointTypeInUse(client, plan, migrationId, namespace);
  const exclude = plan.endpoint.type === 'auto' ? (options.exclude ?? []) : [];
  if (type !== undefined && exclude.includes(type)) {
    // the type in use failed its connectivity probe: its objects go, the next type takes over
    await deleteEndpointObjects(client, endpointFor(plan, migrationId, namespace, type), options.signal);
    log.info({ namespace, type, exclude }, 'endpoint auto: the type in use failed its connectivity probe; trying the next one');
    type = undefined;
  }
  if (type === undefined && exclude.length > 0) {
    const routes = await client.hasApi('route.openshift.io/v1', 'Route');
    const next = AUTO_ORDER.filter((t) => t !== 'Route' || routes).find((t) => !exclude.includes(t));
    if (!next) throw new FerryError('config', `endpoint auto: every type was tried and failed the connectivity probe (${exclude.join(', ')}): choose endpoint.type in the plan (e.g. Route, Ingress or TLSRoute through a router the source can reach)`);
    type = next === 'LoadBalancer' ? undefined : next;
  }
  let reason =
    plan.endpoint.type !== 'auto'
      ? 'the plan names it (endpoint.type)'
      : type === 'Route'
        ? 'auto: the destination serves route.openshift.io/v1 Route (OpenShift)'
        : exclude.length > 0 && type !== undefined
          ? `auto: ${exclude.join(' and ')} failed the connectivity probe, so ${type}`
          : type !== undefined
            ? `auto: chosen by an earlier attempt (the live endpoint Service is ${type})`
            : '';
  const run = async (t: EndpointType, seconds: number) => {
    const endpoint = endpointFor(plan, migrationId, namespace, t);
    await createAll(client, endpoint);
    return waitHealthy(client, endpoint, seconds, options);
  };
  try {
    if (plan.endpoint.type === 'auto' && (type === undefined || type === 'LoadBalancer') && !exclude.includes('LoadBalancer')) {
      const lbSeconds = Math.min(options.autoLoadBalancerSeconds ?? AUTO_LOADBALANCER_SECONDS, left());
      try {
        const address = await run('LoadBalancer', lbSeconds);
        log.info({ namespace, type: 'LoadBalancer', address }, 'endpoint auto: the cluster assigned a load-balancer address; using LoadBalancer');
        return { type: 'LoadBalancer', address, reason: reason || `auto: the destination assigned a load-balancer address in ${Math.round((Date.now() - started) / 1000)} s` };
      } catch (err) {
        if (!(err instanceof WaitTimeoutError)) throw err;
        await deleteEndpointObjects(client, endpointFor(plan, migrationId, namespace, 'LoadBalancer'), options.signal);
        log.info({ namespace, waitedSeconds: lbSeconds }, 'endpoint auto: no load-balancer address assigned in time; falling back to NodePort');
        type = 'NodePort';
        reason = `auto: the destination assigned no load-balancer address within ${Math.round(lbSeconds)} s (no load-balancer controller?), so NodePort`;
      }
    }
    const chosen = type ?? 'NodePort';
    const address = await run(chosen, left());
    log.info({ namespace, type: chosen, address, reason }, 'endpoint healthy');
    return { type: chosen, address, reason: reason || 'auto' };
  } catch (err) {
    if (err instanceof WaitTimeoutError) {
      throw new FerryError('config', `${err.message}. Check the destination cluster or choose another endpoint.type in the plan`, { cause: err });
    }
    throw err;
  }
}
