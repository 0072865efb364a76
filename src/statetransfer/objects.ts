/**
 * Small constructors for the ConfigMaps and Secrets the layers create. Secret values go into `data`
 * (base64), never into `stringData` (which the API server would echo back in last-applied state).
 */
import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';

/** A ConfigMap holding text files. */
export function configMap(
  name: string,
  namespace: string,
  labels: Readonly<Record<string, string>>,
  files: Record<string, string>,
): V1ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels: { ...labels } }, data: { ...files } };
}

/** An Opaque Secret; `values` are plain strings, base64-encoded here. Immutable unless
 * `options.immutable` is false. */
export function secret(
  name: string,
  namespace: string,
  labels: Readonly<Record<string, string>>,
  values: Record<string, string>,
  options: { immutable?: boolean } = {},
): V1Secret {
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) data[k] = Buffer.from(v, 'utf8').toString('base64');
  const s: V1Secret = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name, namespace, labels: { ...labels } }, data };
  if (options.immutable ?? true) s.immutable = true;
  return s;
}

/** Decodes a Secret's `data` back to plain strings (for tests and the local pod runner). */
export function secretValues(s: V1Secret): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return out;
}

/** Deep-freezes an object graph (layer implementations are immutable once built). */
export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v);
  }
  return o;
}
