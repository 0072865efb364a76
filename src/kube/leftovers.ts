/**
 * What a migration leaves in the clusters when its workflow can no longer clean up after itself
 * (terminated by an operator or by Temporal's history limit, timed out): the transfer objects
 * (labelled with the migration, see ./cleanup.ts) and source workloads still quiesced (their
 * `ferry.dev/pre-quiesce` annotation holds the prior state). Used by `ferry cleanup` (../cli/cleanup.ts),
 * which first checks in Temporal that the migration no longer runs.
 *
 * What could destroy data here, and what this module does about it:
 * - Restoring a workload whose PVCs another running migration is syncing would start writers under
 *   that migration's final sync: the caller passes the namespaces of running migrations in `skip`.
 * - Restoring the source of a namespace the migration cut over while the plan said
 *   `keepSourceQuiesced: true` would run the application twice: left down (every selected PVC's
 *   destination carries this migration's cutover mark). A namespace whose cutover did not complete
 *   is restored, as its rollback would have done: the source is still the truth.
 * - Only workloads that mount the plan's selected PVCs are considered, and only those carrying the
 *   annotation; a record tied to another migration (a `migrationId` field in the annotation) is left.
 * - PVCs and namespaces are never deleted here.
 */
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import type { CleanupReport, ClusterSide } from '../activities/contract';
import type { MigrationPlan } from '../plan/schema';
import { LABELS } from '../statetransfer/names';
import { cleanupMigration, TRANSFER_OBJECT_KINDS } from './cleanup';
import type { KubeClient } from './client';
import { cutoverMarkOf } from './destination';
import { discoverNamespace } from './discovery';
import { silentLogger, type Logger } from './log';
import { recordsFromAnnotations, unquiesceWorkloads } from './quiesce';
import { describeWorkload } from './workloads';

/** Ferry transfer objects found in one namespace of one cluster, per migration key (label value). */
export interface FerryObjectGroup {
  /** Value of the `ferry.dev/migration` label (migrationKey of the id). */
  key: string;
  side: ClusterSide;
  namespace: string;
  count: number;
}

/** What restoring the quiesced workloads did. */
export interface RestoreOutcome {
  /** Workloads patched back to their prior state ("Deployment shop/web"). */
  restored: string[];
  /** Why something was left as it is. */
  notes: string[];
}

/** The clusters of one plan, as `ferry cleanup` needs them. */
export interface MigrationClusters {
  /** Every Ferry transfer object (label app.kubernetes.io/managed-by=ferry) in both clusters, grouped. */
  ferryObjects(): Promise<FerryObjectGroup[]>;
  /** Deletes the migration's transfer objects in the plan's namespaces on both sides; waits until gone. */
  cleanup(migrationId: string, plan: MigrationPlan): Promise<CleanupReport>;
  /** Restores the source workloads the migration left quiesced (see module docstring); `skip`: source
   * namespaces not to touch. */
  restoreQuiesced(migrationId: string, plan: MigrationPlan, skip: ReadonlySet<string>): Promise<RestoreOutcome>;
}

/** MigrationClusters over two Kubernetes clients. */
export function kubeMigrationClusters(source: KubeClient, destination: KubeClient, logger: Logger = silentLogger): MigrationClusters {
  return {
    async ferryObjects() {
      const groups = new Map<string, FerryObjectGroup>();
      for (const [side, client] of [['source', source], ['destination', destination]] as const) {
        for (const kind of TRANSFER_OBJECT_KINDS) {
          if (!(await client.hasApi(kind.apiVersion, kind.kind))) continue;
          for (const o of await client.list(kind, undefined, { labelSelector: `${LABELS.managedBy}=ferry,${LABELS.migration}` })) {
            const key = o.metadata?.labels?.[LABELS.migration] ?? '';
            const namespace = o.metadata?.namespace ?? '';
            const id = `${side}/${namespace}/${key}`;
            const g = groups.get(id) ?? { key, side, namespace, count: 0 };
            g.count++;
            groups.set(id, g);
          }
        }
      }
      return [...groups.values()];
    },

    cleanup(migrationId, plan) {
      return cleanupMigration(
        source,
        destination,
        migrationId,
        { source: plan.namespaces.map((n) => n.source), destination: plan.namespaces.map((n) => n.destination) },
        { logger },
      );
    },

    async restoreQuiesced(migrationId, plan, skip) {
      const out: RestoreOutcome = { restored: [], notes: [] };
      if (!plan.quiesce) return out;
      for (const mapping of plan.namespaces) {
        if (skip.has(mapping.source)) {
          out.notes.push(`namespace ${mapping.source}: another running migration uses it; its workloads are left as they are`);
          continue;
        }
        const discovery = await discoverNamespace(source, { mapping, plan, logger });
        if (plan.keepSourceQuiesced && discovery.pvcs.length > 0) {
          // Cut over = the final sync of every selected PVC succeeded (each destination PVC marked).
          const marked = new Set(
            (await destination.list<V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim' }, mapping.destination))
              .filter((p) => cutoverMarkOf(p)?.by === migrationId)
              .map((p) => p.metadata?.name),
          );
          if (discovery.pvcs.every((p) => marked.has(p.destinationName))) {
            out.notes.push(`namespace ${mapping.source}: cut over with keepSourceQuiesced: true; its source workloads stay down`);
            continue;
          }
        }
        const records = (await recordsFromAnnotations(source, discovery.workloads, [])).filter((r) => {
          const owner = (r as { migrationId?: unknown }).migrationId;
          if (owner === undefined || owner === migrationId) return true;
          out.notes.push(`${describeWorkload(r.workload)} was quiesced by migration ${String(owner)}; left as it is`);
          return false;
        });
        for (const o of await unquiesceWorkloads(source, records, { logger })) {
          if (o.patched) out.restored.push(describeWorkload(o.workload));
          out.notes.push(...o.notes);
        }
      }
      return out;
    },
  };
}
