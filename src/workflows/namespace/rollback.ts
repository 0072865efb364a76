/**
 * Rollback of a namespace: what runs (non-cancellable) after an abort, a cancellation or a failure
 * before the copy is complete.
 */
import { failureMessage } from '../failures';
import { secondsBetween } from '../../core/state';
import { now, type NamespaceRun } from './run';

/** Undoes what this namespace changed. Never throws; every step's outcome is recorded. */
export async function rollback(run: NamespaceRun, reason: string): Promise<void> {
  const { st, acts, migrationId, plan, namespace, ctx } = run;
  st.error = reason;
  st.rollback = { reason, startedAt: now(), steps: [] };
  run.enter('rollback');
  const steps = st.rollback.steps;
  const step = async (name: (typeof steps)[number]['step'], fn: () => Promise<unknown>) => {
    try {
      await fn();
      steps.push({ step: name, ok: true });
    } catch (err) {
      steps.push({ step: name, ok: false, message: failureMessage(err) });
    }
  };
  if ((st.quiesced.length > 0 || st.quiesceStarted) && !st.unquiesced) {
    // A quiesce that failed half-way returned no records: the activity then restores the
    // workloads from their ferry.dev/pre-quiesce annotations (the second copy of the prior state).
    await step('unquiesce', async () => {
      await acts.unquiesce({ migrationId, plan, records: st.quiesced, workloads: run.quiesceTargets });
      st.unquiesced = true;
      // The applications run again: the downtime ends here.
      if (st.downtime && st.downtime.endedAt === undefined) {
        st.downtime.endedAt = now();
        st.downtime.seconds = secondsBetween(st.downtime.startedAt, st.downtime.endedAt);
      }
    });
  }
  if (st.downtime && st.downtime.endedAt === undefined && !st.quiesceStarted && st.quiesced.length === 0) {
    // Cancelled before anything was scaled down: no application was down.
    st.downtime.endedAt = st.downtime.startedAt;
    st.downtime.seconds = 0;
  }
  if (st.touched) await step('cleanup', () => acts.cleanup({ migrationId, plan, namespace, ...(st.finalSynced ? {} : { clearCutoverMarks: true }), ...(st.downtime?.seconds !== undefined ? { downtimeSeconds: st.downtime.seconds } : {}) }));
  if (plan.deleteDestinationPVCsOnRollback && st.touched) {
    if (st.finalSynced) {
      steps.push({ step: 'deleteDestinationPVCs', ok: true, message: 'kept: the final sync had completed' });
    } else if (st.createdPVCs.length > 0) {
      await step('deleteDestinationPVCs', () => acts.deleteDestinationPVCs({ ...ctx, pvcs: st.createdPVCs }));
    } else if (st.createdNamespace === undefined) {
      // Only PVCs Ferry is known to have created are ever deleted.
      steps.push({ step: 'deleteDestinationPVCs', ok: true, message: 'none deleted: prepareDestination did not report which PVCs it created' });
    }
  }
  st.rollback.endedAt = now();
}
