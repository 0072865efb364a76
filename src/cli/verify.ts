/**
 * `ferry verify ID`: after a migration's final syncs, compares every cut-over PVC with its source
 * (migration/verify.ts): a manifest of each tree, read by a pod on each side, identical or the
 * differences by kind. The PVCs are those the migration marked cut over in the destination
 * (destination.ts CUTOVER_ANNOTATIONS); the plan is the workflow's stored input unless -f gives one.
 * Read-only; runs from the CLI with the plan's kubeconfigs, so it works after the migration ended.
 */
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import type { KubeClient } from '../k8s/client';
import { CUTOVER_ANNOTATIONS } from '../migration/destination';
import { objectLabels, objectName } from '../statetransfer/names';
import type { VerifyResult } from '../migration/verify';
import type { MigrationPlan } from '../plan/schema';
import { CliError, EXIT } from './exit-codes';

/** The two clusters of a plan, as Kubernetes clients. */
export type KubeClientsFor = (plan: MigrationPlan) => { source: KubeClient; destination: KubeClient };

/** What `ferry verify ID` found. */
export interface VerifyOutcome {
  id: string;
  results: VerifyResult[];
  /** True when every PVC is identical to its source. */
  identical: boolean;
}

/**
 * Verifies every PVC the migration `id` cut over.
 * @throws CliError NOT_FOUND when no PVC of the plan's destination namespaces carries the migration's
 *   cutover mark (nothing was cut over, or another migration owns them).
 *
 * After a keepPVCNames move the claim of each name is the destination (its new volume); the source
 * is the old volume it replaced, Released with Retain: a temporary claim `ferry-<key>-old-<pvc>` is
 * bound to it for the comparison and deleted after (migration/rebind.ts bindReplacedVolume), and the
 * result's source reads "<pvc> (old volume <pv>)".
 * @throws FerryError (config) from bindReplacedVolume when an old volume cannot be read safely.
 */
export async function verifyMigration(id: string, plan: MigrationPlan, clients: { source: KubeClient; destination: KubeClient }, o: { hashes: boolean }): Promise<VerifyOutcome> {
  const { verifyPVC } = await import('../migration/verify');
  const { bindReplacedVolume } = await import('../migration/rebind');
  const results: VerifyResult[] = [];
  for (const ns of plan.namespaces) {
    const pvcs = await clients.destination.list<V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim' }, ns.destination);
    for (const pvc of pvcs.filter((p) => p.metadata?.annotations?.[CUTOVER_ANNOTATIONS.by] === id).sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1))) {
      const name = pvc.metadata!.name!;
      const options = {
        migrationId: id,
        image: plan.transferImage,
        root: plan.security.mode === 'preserve-ownership',
        hashes: o.hashes,
        owners: plan.security.mode === 'preserve-ownership',
        metadata: false,
      };
      if (!plan.keepPVCNames) {
        results.push(await verifyPVC(clients.source, clients.destination, { sourceNamespace: ns.source, sourcePVC: name, destinationNamespace: ns.destination, destinationPVC: name }, options));
        continue;
      }
      // the claim is the destination now; the source is the volume it replaced
      const old = await bindReplacedVolume(clients.source, ns.source, name, objectName(id, 'old', name), objectLabels(id, 'verify', name));
      try {
        const r = await verifyPVC(clients.source, clients.destination, { sourceNamespace: ns.source, sourcePVC: old.claim, destinationNamespace: ns.destination, destinationPVC: name }, options);
        results.push({ ...r, sourcePVC: `${name} (old volume ${old.volume})` });
      } finally {
        await old.release();
      }
    }
  }
  if (results.length === 0) throw new CliError(`no PVC in the destination namespaces of migration ${id} carries its cutover mark: verify runs after the final sync of a PVC`, EXIT.NOT_FOUND);
  return { id, results, identical: results.every((r) => r.identical) };
}

/** The human rendering: a line per PVC, then the listed differences. */
export function renderVerify(o: VerifyOutcome): string {
  const lines: string[] = [];
  for (const r of o.results) {
    const where = `${r.sourceNamespace}/${r.sourcePVC} -> ${r.destinationNamespace}/${r.destinationPVC}`;
    if (r.identical) {
      lines.push(`${where}: identical (${r.entries} entries)`);
      continue;
    }
    lines.push(`${where}: DIFFERENT (${Object.entries(r.byKind).map(([k, n]) => `${n} ${k}`).join(', ')})`);
    for (const d of r.differences) lines.push(`  ${d.kind} ${JSON.stringify(d.path)}${d.detail ? ` (${d.detail})` : ''}`);
  }
  lines.push(o.identical ? `migration ${o.id}: every PVC is identical to its source` : `migration ${o.id}: differences found`);
  return lines.join('\n');
}
