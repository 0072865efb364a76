/**
 * Direct Image Migration of one namespace, registry to registry with skopeo (./skopeo.ts).
 *
 * - mode 'imagestreams' (OpenShift): every image.openshift.io/v1 ImageStream of the source namespace
 *   (only those named in `images.repositories`, as "name" or "namespace/name", when given); for each
 *   tag whose current image (status.tags[].items[0]) lives in the source's internal registry (its
 *   reference starts with the host of the stream's status.dockerImageRepository), the image is read
 *   by digest from the exposed source registry (`sourceRegistry.url`) and written to
 *   `<destinationRegistry>/<destination namespace>/<imagestream>:<tag>` (MTC's layout). Tags that
 *   reference external images (docker.io/…) are skipped: they are not the cluster's to move.
 * - mode 'registry': every tag of each repository that lies in the source namespace
 *   ("<namespace>/<name…>"), to `<destinationRegistry>/<destination namespace>/<name…>:<tag>`; the
 *   repositories are `images.repositories` when given, else those the namespace's pod templates
 *   reference in the source registry (./discover.ts), with the external ones reported as skipped.
 *
 * Every platform of a multi-arch image is copied (`--all`) and digests are preserved; an image already
 * at the destination with the same digest is not copied again (resume after a retry is cheap). All
 * images are attempted; failures are thrown together at the end, the most severe category first.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ImageCopyReport } from '../core/types';
import type { MigrationPlan, NamespaceMapping, RegistryConfig } from '../plan/schema';
import type { KubeClient } from '../k8s/client';
import { FerryError, errorMessage, type FerryErrorCategory } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { discoverRepositories, imageReferencesOf, listPodTemplateObjects, registryHost } from './discover';
import { registryLocation, Skopeo, SkopeoError, type SkopeoOptions } from './skopeo';

export { registryArgs, registryLocation, classifySkopeoError, Skopeo, SkopeoError } from './skopeo';

/** One image to copy: source reference (by digest or tag) and destination reference (by tag). */
export interface ImageCopyItem {
  source: string;
  destination: string;
}

/** An ImageStream as far as Ferry reads it (image.openshift.io/v1). */
export interface ImageStreamObject extends KubernetesObject {
  status?: {
    dockerImageRepository?: string;
    tags?: { tag: string; items?: { dockerImageReference?: string; image?: string }[] | null }[] | null;
  };
}

/** Pure: whether an ImageStream is selected by `repositories` ("name" or "namespace/name"). */
export function imageStreamSelected(namespace: string, name: string, repositories: readonly string[] | undefined): boolean {
  if (!repositories || repositories.length === 0) return true;
  return repositories.includes(name) || repositories.includes(`${namespace}/${name}`);
}

/**
 * Pure: the copies and skips of the ImageStreams of one namespace (see module docstring).
 * `sourceBase`/`destinationBase` are registry reference prefixes (registryLocation().base).
 */
export function planImageStreamCopies(
  streams: readonly ImageStreamObject[],
  mapping: Pick<NamespaceMapping, 'source' | 'destination'>,
  sourceBase: string,
  destinationBase: string,
  repositories?: readonly string[],
): { items: ImageCopyItem[]; skipped: ImageCopyReport['skipped'] } {
  const items: ImageCopyItem[] = [];
  const skipped: ImageCopyReport['skipped'] = [];
  for (const is of streams) {
    const name = is.metadata?.name ?? '';
    if (!imageStreamSelected(mapping.source, name, repositories)) continue;
    const internal = is.status?.dockerImageRepository?.split('/')[0];
    for (const tag of is.status?.tags ?? []) {
      const ref = tag.items?.[0]?.dockerImageReference;
      const what = `imagestream ${mapping.source}/${name}:${tag.tag}`;
      if (!ref) {
        skipped.push({ source: what, reason: 'the tag has no image yet' });
        continue;
      }
      if (!internal || !ref.startsWith(`${internal}/`)) {
        skipped.push({ source: ref, reason: `${what} references an image outside the internal registry` });
        continue;
      }
      items.push({ source: `${sourceBase}/${ref.slice(internal.length + 1)}`, destination: `${destinationBase}/${mapping.destination}/${name}:${tag.tag}` });
    }
  }
  return { items, skipped };
}

/** Pure: the repositories of `repositories` that lie in namespace `ns`, as [repository, name-within-namespace]. */
export function repositoriesOf(ns: string, repositories: readonly string[]): [string, string][] {
  return repositories.filter((r) => r.startsWith(`${ns}/`) && r.length > ns.length + 1).map((r) => [r, r.slice(ns.length + 1)]);
}

/** Options of `copyNamespaceImages`. */
export interface CopyImagesOptions {
  logger?: Logger;
  /** Called before each image (heartbeat here). */
  onProgress?: (done: number, total: number, current: string) => void;
  signal?: AbortSignal;
  skopeo?: SkopeoOptions;
}

const SEVERITY: FerryErrorCategory[] = ['auth', 'config', 'noSpace', 'fatal', 'transient'];

/**
 * Copies the images of one namespace (see module docstring) and reports what was copied (including
 * images found already present with the same digest) and skipped.
 * @throws FerryError (config) when image migration is not configured; the most severe category of
 *   the failed copies otherwise (auth > config > noSpace > fatal > transient), listing them all.
 */
export async function copyNamespaceImages(source: KubeClient, plan: MigrationPlan, mapping: NamespaceMapping, options: CopyImagesOptions = {}): Promise<ImageCopyReport> {
  const log = options.logger ?? silentLogger;
  const report: ImageCopyReport = { copied: [], skipped: [] };
  if (!plan.images.enabled) return report;
  const srcReg = plan.images.sourceRegistry;
  const dstReg = plan.images.destinationRegistry;
  if (!srcReg || !dstReg) throw new FerryError('config', 'images.sourceRegistry and images.destinationRegistry are required when images.enabled is true');
  const srcBase = registryLocation(srcReg).base;
  const dstBase = registryLocation(dstReg).base;
  const skopeo = new Skopeo({ ...options.skopeo, ...(options.signal ? { signal: options.signal } : {}) });
  const failures: FerryError[] = [];
  try {
    let items: ImageCopyItem[] = [];
    if (plan.images.mode === 'imagestreams') {
      if (!(await source.hasApi('image.openshift.io/v1', 'ImageStream'))) {
        report.skipped.push({ source: `namespace ${mapping.source}`, reason: 'the source cluster has no ImageStream API (image.openshift.io/v1); use images.mode: registry' });
        return report;
      }
      const streams = await source.list<ImageStreamObject>({ apiVersion: 'image.openshift.io/v1', kind: 'ImageStream' }, mapping.source);
      const planned = planImageStreamCopies(streams, mapping, srcBase, dstBase, plan.images.repositories);
      items = planned.items;
      report.skipped.push(...planned.skipped);
    } else {
      // The plan's list, when given, decides; else the repositories the namespace's pod templates use.
      let repositories = plan.images.repositories;
      if (repositories === undefined || repositories.length === 0) {
        const hosts = [registryHost(srcReg.url), ...(srcReg.aliases ?? [])];
        const found = discoverRepositories(imageReferencesOf(await listPodTemplateObjects(source, mapping.source)), mapping.source, hosts);
        repositories = found.repositories;
        report.found = found.repositories;
        report.skipped.push(...found.skipped);
        log.info({ namespace: mapping.source, found: found.repositories, skipped: found.skipped.length }, 'images discovered from pod templates');
      }
      for (const [repo, rest] of repositoriesOf(mapping.source, repositories)) {
        try {
          const tags = await skopeo.listTags(`${srcBase}/${repo}`, srcReg);
          if (tags.length === 0) report.skipped.push({ source: `${srcBase}/${repo}`, reason: 'the repository has no tags' });
          for (const tag of tags) items.push({ source: `${srcBase}/${repo}:${tag}`, destination: `${dstBase}/${mapping.destination}/${rest}:${tag}` });
        } catch (err) {
          if (err instanceof SkopeoError && err.missing) report.skipped.push({ source: `${srcBase}/${repo}`, reason: 'the repository does not exist in the source registry' });
          else failures.push(err instanceof FerryError ? err : new FerryError('transient', errorMessage(err)));
        }
      }
    }
    for (const [i, item] of items.entries()) {
      options.onProgress?.(i, items.length, item.source);
      try {
        const copied = await copyOne(skopeo, item, srcReg, dstReg, log);
        if (copied) report.copied.push(copied);
        else report.skipped.push({ source: item.source, reason: 'the image does not exist in the source registry' });
      } catch (err) {
        if (options.signal?.aborted) throw err;
        failures.push(err instanceof FerryError ? err : new FerryError('transient', errorMessage(err)));
      }
    }
    options.onProgress?.(items.length, items.length, '');
  } finally {
    skopeo.close();
  }
  if (failures.length) {
    const category = SEVERITY.find((c) => failures.some((f) => f.category === c)) ?? 'fatal';
    throw new FerryError(category, `${failures.length} image copy failure(s) in namespace ${mapping.source}: ${failures.slice(0, 5).map((f) => f.message).join('; ')}${failures.length > 5 ? ' …' : ''}`, {
      details: { copied: report.copied.length, failed: failures.length },
    });
  }
  log.info({ namespace: mapping.source, copied: report.copied.length, skipped: report.skipped.length }, 'images copied');
  return report;
}

/** Copies one image unless the destination already has the same digest. undefined: source missing. */
async function copyOne(skopeo: Skopeo, item: ImageCopyItem, srcReg: RegistryConfig, dstReg: RegistryConfig, log: Logger): Promise<ImageCopyReport['copied'][number] | undefined> {
  const sourceDigest = await skopeo.digest(item.source, srcReg);
  if (!sourceDigest) return undefined;
  const existing = await skopeo.digest(item.destination, dstReg);
  if (existing === sourceDigest) {
    log.info({ source: item.source, destination: item.destination, digest: existing }, 'image already at the destination with the same digest');
    return { source: item.source, destination: item.destination, digest: existing };
  }
  const digest = await skopeo.copy(item.source, item.destination, srcReg, dstReg);
  log.info({ source: item.source, destination: item.destination, digest }, 'image copied');
  return { source: item.source, destination: item.destination, digest };
}
