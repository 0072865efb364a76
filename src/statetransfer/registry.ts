/**
 * The registry of the transfer layers: one table per layer. Adding an engine, a transport or an
 * endpoint type means a folder (or file) of its own plus one line here; the plan schema, preflight,
 * cleanup and the migration layer read these tables instead of listing the types themselves.
 */
import { RCLONE_ENGINE } from './transfer/rclone';
import { RSYNC_ENGINE } from './transfer/rsync';
import { INGRESS_ENDPOINT } from './endpoint/ingress';
import { ROUTE_ENDPOINT } from './endpoint/route';
import { TLS_ROUTE_ENDPOINT } from './endpoint/tlsroute';
import { CLUSTER_IP_ENDPOINT, LOAD_BALANCER_ENDPOINT, NODE_PORT_ENDPOINT } from './endpoint/services';
import { createNullTransport } from './transport/null';
import { createStunnelTransport } from './transport/stunnel';
import type { EndpointKind, EndpointType, ObjectKind, ResourcePermission, TransferEngine, TransferType, Transport, TransportType } from './types';

/** Transfer engines by type (`plan.transfer`). */
export const TRANSFER_ENGINES: Readonly<Record<TransferType, TransferEngine>> = Object.freeze({
  rsync: RSYNC_ENGINE,
  rclone: RCLONE_ENGINE,
});

/**
 * The engine knowledge of a transfer type.
 * @throws Error for a type no engine is registered for (a plan is validated before, so this is a bug).
 */
export function transferEngine(type: TransferType): TransferEngine {
  const engine = TRANSFER_ENGINES[type];
  if (!engine) throw new Error(`no transfer engine registered for ${JSON.stringify(type)}`);
  return engine;
}

/** Transports by type (`plan.transport`): their factories. */
export const TRANSPORTS: Readonly<Record<TransportType, () => Transport>> = Object.freeze({
  stunnel: createStunnelTransport,
  null: createNullTransport,
});

/** Endpoint types (`plan.endpoint.type`, besides auto). */
export const ENDPOINT_KINDS: Readonly<Record<EndpointType, EndpointKind>> = Object.freeze({
  LoadBalancer: LOAD_BALANCER_ENDPOINT,
  NodePort: NODE_PORT_ENDPOINT,
  ClusterIP: CLUSTER_IP_ENDPOINT,
  Route: ROUTE_ENDPOINT,
  Ingress: INGRESS_ENDPOINT,
  TLSRoute: TLS_ROUTE_ENDPOINT,
});

/**
 * What Ferry knows of an endpoint type.
 * @throws Error for a type no endpoint is registered for (options are validated before: a bug).
 */
export function endpointKind(type: EndpointType): EndpointKind {
  const kind = ENDPOINT_KINDS[type];
  if (!kind) throw new Error(`no endpoint registered for type ${JSON.stringify(type)}`);
  return kind;
}

/** The kinds every registered endpoint type may create besides Services (cleanup deletes them). */
export function endpointExtraKinds(): ObjectKind[] {
  const seen = new Map<string, ObjectKind>();
  for (const k of Object.values(ENDPOINT_KINDS)) for (const x of k.extraKinds) seen.set(`${x.apiVersion}/${x.kind}`, x);
  return [...seen.values()];
}

/** The destination permissions the given endpoint types need besides Services (preflight checks them). */
export function endpointPermissions(types: readonly EndpointType[]): ResourcePermission[] {
  return [...new Set(types)].flatMap((t) => endpointKind(t).permissions);
}
