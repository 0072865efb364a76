/**
 * Helpers shared by the endpoint implementations: metadata, the Service builder, lookup of observed
 * live objects and freezing. Internal to src/statetransfer/endpoint (re-exported only where useful).
 */
import type { KubernetesObject, V1ObjectMeta, V1Service, V1ServicePort, V1ServiceSpec } from '@kubernetes/client-node';
import type { ObservedEndpoint } from '../types';
import { ANNOTATIONS, LABELS, migrationSelector, objectLabels } from '../names';
import { ENDPOINT_ROLE, SERVER_ROLE, TRANSFER_PORT_NAME, type ResolvedEndpointOptions } from './options';

/**
 * The labels the server pod must carry for the endpoint's Service to select it:
 * the migration selector plus `ferry.dev/role: server`. Frozen.
 */
export function serverPodSelector(migrationId: string): Readonly<Record<string, string>> {
  return Object.freeze({ ...migrationSelector(migrationId), [LABELS.role]: SERVER_ROLE });
}

/**
 * Metadata of an endpoint object: name, namespace, labels (extra labels first, Ferry's labels on top
 * so they always win) and annotations (the full migration id, plus `extraAnnotations`).
 */
export function endpointMetadata(
  r: ResolvedEndpointOptions,
  name: string,
  extraAnnotations: Readonly<Record<string, string>> = {},
): V1ObjectMeta {
  return {
    name,
    namespace: r.namespace,
    labels: { ...r.extraLabels, ...objectLabels(r.migrationId, ENDPOINT_ROLE) },
    annotations: { ...extraAnnotations, [ANNOTATIONS.migrationId]: r.migrationId },
  };
}

/**
 * A v1 Service of `type` selecting the server pod: one TCP port named `ferry-transfer`,
 * port = r.port, targetPort = r.backendPort, plus `extraSpec` and `portExtra` (e.g. nodePort).
 * Carries the user's Service annotations.
 */
export function buildService(
  r: ResolvedEndpointOptions,
  name: string,
  type: 'LoadBalancer' | 'NodePort' | 'ClusterIP',
  extraSpec: Partial<V1ServiceSpec> = {},
  portExtra: Partial<V1ServicePort> = {},
): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: endpointMetadata(r, name, r.annotations),
    spec: {
      type,
      selector: { ...serverPodSelector(r.migrationId) },
      ports: [{ name: TRANSFER_PORT_NAME, protocol: 'TCP', port: r.port, targetPort: r.backendPort, ...portExtra }],
      ...extraSpec,
    },
  };
}

/**
 * The observed live object named `name`. `kind` must match when the live object carries one (items
 * of list responses often do not). Returns undefined when absent.
 */
export function findObserved<T extends KubernetesObject>(
  observed: ObservedEndpoint,
  kind: string,
  name: string,
): T | undefined {
  const objects = Array.isArray(observed?.objects) ? observed.objects : [];
  return objects.find((o) => o?.metadata?.name === name && (o.kind === undefined || o.kind === kind)) as T | undefined;
}

/** The `ferry-transfer` port of a live Service (or its only port), undefined when none. */
export function transferPortOf(svc: V1Service): V1ServicePort | undefined {
  const ports = Array.isArray(svc.spec?.ports) ? svc.spec.ports : [];
  return ports.find((p) => p?.name === TRANSFER_PORT_NAME) ?? (ports.length === 1 ? ports[0] : undefined);
}

/** Freezes `v` and everything reachable from it; returns `v`. */
export function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as Record<string, unknown>)) deepFreeze(x);
  }
  return v;
}

/** A mutable deep copy of frozen template objects, so callers may edit what objects() returns. */
export function copyObjects(templates: readonly KubernetesObject[]): KubernetesObject[] {
  return templates.map((t) => structuredClone(t));
}

/** Reason text for an endpoint object absent from the observation. */
export function missing(kind: string, name: string, namespace: string): string {
  return `${kind} ${namespace}/${name} not found among the observed objects (not created yet, or deleted)`;
}
