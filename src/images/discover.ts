/**
 * Which internal images a namespace uses, read from its pod templates: the containers, init
 * containers and ephemeral containers of its Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets,
 * ReplicationControllers, Jobs, CronJobs and (OpenShift) DeploymentConfigs. A reference counts when
 * its registry host is the source registry's (its `url` host or one of its `aliases`, the names pods
 * use, e.g. an in-cluster Service) and its repository lies in the namespace ("<namespace>/<name…>");
 * the others are reported as skipped with the reason (external images are not the cluster's to move).
 * Pure, except `listPodTemplateObjects`.
 */
import type { KubernetesObject, V1PodSpec } from '@kubernetes/client-node';
import type { ImageCopyReport } from '../core/types';
import type { KubeClient } from '../k8s/client';

/** The kinds whose objects carry a pod spec, and where it is. */
export const POD_TEMPLATE_KINDS: readonly { apiVersion: string; kind: string; spec: (o: KubernetesObject) => V1PodSpec | undefined }[] = Object.freeze([
  { apiVersion: 'v1', kind: 'Pod', spec: (o) => (o as { spec?: V1PodSpec }).spec },
  ...(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'] as const).map((kind) => ({ apiVersion: 'apps/v1', kind, spec: templateSpec })),
  { apiVersion: 'v1', kind: 'ReplicationController', spec: templateSpec },
  { apiVersion: 'batch/v1', kind: 'Job', spec: templateSpec },
  { apiVersion: 'batch/v1', kind: 'CronJob', spec: (o) => (o as { spec?: { jobTemplate?: { spec?: { template?: { spec?: V1PodSpec } } } } }).spec?.jobTemplate?.spec?.template?.spec },
  { apiVersion: 'apps.openshift.io/v1', kind: 'DeploymentConfig', spec: templateSpec },
]);

function templateSpec(o: KubernetesObject): V1PodSpec | undefined {
  return (o as { spec?: { template?: { spec?: V1PodSpec } } }).spec?.template?.spec;
}

/** An image reference split by the Docker reference grammar (distribution/reference). */
export interface ImageReference {
  /** Registry host[:port]; docker.io when the reference names none. */
  host: string;
  /** Repository path within the registry, e.g. "shop/web". */
  repository: string;
  tag?: string;
  digest?: string;
}

/**
 * Pure: parses an image reference. The first path component is a registry host when it contains a
 * '.' or a ':' or is "localhost" (distribution/reference's rule); else the host is docker.io.
 * undefined for an empty reference.
 */
export function parseImageReference(ref: string): ImageReference | undefined {
  const s = ref.trim();
  if (s === '') return undefined;
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  const hasHost = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const host = hasHost ? first : 'docker.io';
  let path = hasHost ? rest.slice(slash + 1) : rest;
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon > path.lastIndexOf('/')) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
  }
  return { host, repository: path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** Pure: every image reference of the objects' pod specs, each once, with the first object using it. */
export function imageReferencesOf(objects: readonly KubernetesObject[]): { image: string; usedBy: string }[] {
  const seen = new Map<string, string>();
  for (const o of objects) {
    const kind = POD_TEMPLATE_KINDS.find((k) => k.kind === o.kind);
    const spec = kind?.spec(o);
    if (!spec) continue;
    // Pods that a controller made carry the same images as their template: name the controller.
    const owner = o.kind === 'Pod' ? o.metadata?.ownerReferences?.find((r) => r.controller) : undefined;
    const usedBy = owner ? `${owner.kind} ${owner.name}` : `${o.kind} ${o.metadata?.name ?? '?'}`;
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])]) {
      if (c.image && !seen.has(c.image)) seen.set(c.image, usedBy);
    }
  }
  return [...seen].map(([image, usedBy]) => ({ image, usedBy }));
}

/** Pure: the host[:port] a registry `url` names ("https://host:5000/path" -> "host:5000"). */
export function registryHost(url: string): string {
  return url.replace(/^https?:\/\//, '').split('/')[0]!;
}

/**
 * Pure: the repositories of namespace `namespace` that the references point at in the source
 * registry (`hosts`: its host[:port] names), sorted; and the references skipped, with why.
 */
export function discoverRepositories(references: readonly { image: string; usedBy: string }[], namespace: string, hosts: readonly string[]): { repositories: string[]; skipped: ImageCopyReport['skipped'] } {
  const repositories = new Set<string>();
  const skipped: ImageCopyReport['skipped'] = [];
  for (const { image, usedBy } of references) {
    const r = parseImageReference(image);
    if (!r) continue;
    if (!hosts.includes(r.host)) {
      skipped.push({ source: image, reason: `external image (registry ${r.host}, used by ${usedBy}): not in the source registry ${hosts.join(' / ')}` });
    } else if (!r.repository.startsWith(`${namespace}/`)) {
      skipped.push({ source: image, reason: `in the source registry but outside namespace ${namespace}'s repositories (used by ${usedBy}): migrate it with its own namespace` });
    } else {
      repositories.add(r.repository);
    }
  }
  return { repositories: [...repositories].sort(), skipped };
}

/** Lists the objects of every pod-template kind the cluster serves in `namespace`. */
export async function listPodTemplateObjects(client: KubeClient, namespace: string): Promise<KubernetesObject[]> {
  const out: KubernetesObject[] = [];
  for (const k of POD_TEMPLATE_KINDS) {
    if (!(await client.hasApi(k.apiVersion, k.kind))) continue;
    for (const o of await client.list(k, namespace)) out.push({ ...o, kind: o.kind ?? k.kind });
  }
  return out;
}
