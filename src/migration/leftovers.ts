/**
 * What a migration leaves in the clusters when its workflow can no longer clean up after itself
 * (terminated by an operator or by Temporal's history limit, timed out): the transfer objects
 * (labelled with the migration, see ./cleanup.ts) and source workloads still quiesced (their
 * `ferry.dev/pre-quiesce` annotation holds the prior state). Used by `ferry cleanup` (../cli/cleanup.ts),
 * which first checks in Temporal that the migration no longer runs.
 *
 * What could destroy data here, and what this module does about it:
 * - Restoring the source of a namespace that cut over, or whose PVCs another running migration is
 *   syncing, would run the application twice or start writers under that migration's final sync.
 *   Which namespaces to leave alone is decided by the caller from Temporal (../cli/cleanup.ts reads
 *   each namespace workflow's last state), and passed in `leave`; clusters cannot tell it reliably
 *   (a PVC skipped by the operator, created or deleted since, carries no cutover mark).
 * - Only workloads that mount the plan's selected PVCs are considered, and only those whose
 *   annotation names this migration: an annotation of another migration, or without id (an older
 *   Ferry's keepSourceQuiesced), is left with a note, as the workflow's own rollback does.
 * - Cutover marks are removed only in the destination namespaces the caller names (those that did
 *   not cut over, as the workflow's rollback does), and only this migration's.
 * - PVCs and namespaces are never deleted here.
 */
import type { CleanupReport, ClusterSide } from '../core/types';
import type { MigrationPlan } from '../plan/schema';
import { LABELS } from '../statetransfer/names';
import { cleanupMigration, TRANSFER_OBJECT_KINDS } from './cleanup';
import type { KubeClient } from '../k8s/client';
import { clearCutoverMarks } from './destination';
import { discoverNamespace } from './discovery';
import { silentLogger, type Logger } from '../core/log';
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

/** What deleting a migration's leftovers did: the transfer objects, and the cutover marks removed. */
export interface LeftoverCleanupReport extends CleanupReport {
  /** Destination PVCs ("namespace/name") whose cutover mark of this migration was removed. */
  cutoverMarksCleared?: string[];
}

/** The clusters of one plan, as `ferry cleanup` needs them. */
export interface MigrationClusters {
  /** Every Ferry transfer object (label app.kubernetes.io/managed-by=ferry) in both clusters, grouped. */
  ferryObjects(): Promise<FerryObjectGroup[]>;
  /** Deletes the migration's transfer objects in the plan's namespaces on both sides; waits until gone.
   * Then removes the migration's cutover marks in the destination namespaces `clearCutoverMarksIn`. */
  cleanup(migrationId: string, plan: MigrationPlan, clearCutoverMarksIn?: readonly string[]): Promise<LeftoverCleanupReport>;
  /** Restores the source workloads the migration left quiesced (see module docstring); `leave`: source
   * namespaces not to touch → why (noted as "namespace NS: why"). */
  restoreQuiesced(migrationId: string, plan: MigrationPlan, leave: ReadonlyMap<string, string>): Promise<RestoreOutcome>;
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

    async cleanup(migrationId, plan, clearCutoverMarksIn = []) {
      const report: LeftoverCleanupReport = await cleanupMigration(
        source,
        destination,
        migrationId,
        { source: plan.namespaces.map((n) => n.source), destination: plan.namespaces.map((n) => n.destination) },
        { logger },
      );
      const cleared: string[] = [];
      for (const ns of new Set(clearCutoverMarksIn)) cleared.push(...(await clearCutoverMarks(destination, migrationId, ns, logger)).map((name) => `${ns}/${name}`));
      if (cleared.length > 0) report.cutoverMarksCleared = cleared;
      return report;
    },

    async restoreQuiesced(migrationId, plan, leave) {
      const out: RestoreOutcome = { restored: [], notes: [] };
      if (!plan.quiesce) return out;
      // Annotations of another migration (or without id) are logged by recordsFromAnnotations: noted too.
      const noting: Logger = {
        debug: (f, m) => logger.debug(f, m),
        info: (f, m) => logger.info(f, m),
        error: (f, m) => logger.error(f, m),
        warn: (f, m) => {
          logger.warn(f, m);
          const { workload, writtenBy } = f as { workload?: string; writtenBy?: string };
          if (workload && writtenBy) out.notes.push(`${workload} was quiesced by ${writtenBy}; left as it is`);
        },
      };
      for (const mapping of plan.namespaces) {
        const why = leave.get(mapping.source);
        if (why !== undefined) {
          out.notes.push(`namespace ${mapping.source}: ${why}`);
          continue;
        }
        const discovery = await discoverNamespace(source, { mapping, plan, logger });
        const records = await recordsFromAnnotations(source, discovery.workloads, [], { migrationId, logger: noting });
        for (const o of await unquiesceWorkloads(source, records, { logger })) {
          if (o.patched) out.restored.push(describeWorkload(o.workload));
          out.notes.push(...o.notes);
        }
      }
      return out;
    },
  };
}
