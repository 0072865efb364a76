/**
 * The namespace workflow's messages: the state query, the operator's `decide` update (retry, skip or
 * abort a failed PVC) and the `cutover` update (manual cutover, or --force past partial stage passes).
 */
import * as wf from '@temporalio/workflow';
import { cutoverWithRequestUpdate, decideUpdate, namespaceStateQuery, type CutoverRequest } from '../definitions';
import { DECISION_ACTIONS, type NamespacePhase } from '../../core/state';
import { now, type NamespaceRun } from './run';

/** Phases during which the operator may still ask for cutover. */
const BEFORE_CUTOVER: readonly NamespacePhase[] = ['pending', 'prepare', 'stage', 'ready-for-cutover'];

/** Registers the query and update handlers of a namespace workflow (at its start). */
export function setHandlers(run: NamespaceRun): void {
  const { plan, st, decisions, main, reporter } = run;
  wf.setHandler(namespaceStateQuery, () => st);

  wf.setHandler(
    decideUpdate,
    (d) => {
      if (d.action === 'abort') {
        run.abortedBy = d;
        st.pvcs.find((x) => x.name === d.pvc)!.decisions.push({ action: 'abort', at: now() });
        main.cancel();
      } else {
        decisions.set(d.pvc, d);
      }
      return { namespace: st.source, pvc: d.pvc, action: d.action };
    },
    {
      validator: (d) => {
        if (!d || typeof d !== 'object') throw new Error('expected { pvc, action }');
        if (!DECISION_ACTIONS.includes(d.action)) {
          throw new Error(`unknown action ${JSON.stringify(d.action)}: use ${DECISION_ACTIONS.join(', ')}`);
        }
        const p = st.pvcs.find((x) => x.name === d.pvc);
        if (!p) {
          throw new Error(`namespace ${st.source} has no PVC ${JSON.stringify(d.pvc)} in this migration (PVCs: ${st.pvcs.map((x) => x.name).join(', ') || 'none'})`);
        }
        if (st.status !== 'running' || st.phase === 'rollback') throw new Error(`namespace ${st.source} is ${st.phase}: nothing to decide`);
        if (p.status !== 'failed') throw new Error(`PVC ${d.pvc} is ${p.status}, not failed: only a failed PVC waits for a decision`);
        if (decisions.has(d.pvc) || run.abortedBy) throw new Error(`PVC ${d.pvc} already has a decision being carried out`);
      },
    },
  );

  wf.setHandler(
    cutoverWithRequestUpdate,
    (req: CutoverRequest | undefined) => {
      if (req?.force && run.partialPVCs().length > 0) st.cutoverForcedAt = now();
      if (plan.cutover === 'manual') st.cutoverRequested = true;
      reporter.touch();
      return { namespace: st.source, stagePassesDone: st.stagePassesDone, minimumStagePasses: plan.stagePasses };
    },
    {
      validator: (req: CutoverRequest | undefined) => {
        const partial = run.partialPVCs();
        const releasesAuto = plan.cutover !== 'manual' && req?.force === true && partial.length > 0 && st.cutoverForcedAt === undefined;
        if (plan.cutover !== 'manual' && !releasesAuto) {
          throw new Error(
            `namespace ${st.source} cuts over automatically (plan cutover: auto): nothing to trigger` +
              (partial.length > 0 ? ' (a cutover held back by partial stage passes is released with --force)' : ''),
          );
        }
        if (plan.cutover === 'manual' && st.cutoverRequested) throw new Error(`cutover of namespace ${st.source} was already requested`);
        if (st.status !== 'running' || !BEFORE_CUTOVER.includes(st.phase)) throw new Error(`namespace ${st.source} is past cutover (phase ${st.phase})`);
        if (partial.length > 0 && !req?.force) {
          throw new Error(
            `cutover of namespace ${st.source} refused: the last stage pass was partial for ${partial.map((p) => p.name).join(', ')} — ` +
              `${run.partialReason(partial)}. The final sync would fail the same way after the applications went down. ` +
              'Fix the cause and wait for the next stage pass, or cut over anyway with --force.',
          );
        }
      },
    },
  );
}
