/**
 * namespaceWorkflow: the migration of one namespace's PVCs.
 *
 *   prepareDestination ∥ createEndpoint → createServer → probeConnectivity
 *   → stage passes (every PVC synced while the applications run; at most plan.concurrency at once;
 *     plan.stageIntervalSeconds between passes; with cutover 'manual' the passes go on until the
 *     operator's `cutover` update)
 *   → quiesce → waitForQuiesced → final sync of every PVC (each keeps its warm agent: patch
 *     `agents-released-together`) → releaseAgents (all at once) and unquiesce (unless
 *     keepSourceQuiesced) → cleanup.
 *
 * With quiesce (patch `q-writers`): discoverNamespace again right before quiesce (workloads created
 * during a long warm migration are quiesced too; pods Ferry cannot stop fail the namespace unless the
 * plan says `unmanagedPods: delete`; PVCs the selection matches that the migration did not discover
 * fail it too, before quiesce), and checkSourceWriters right before the final sync (deleting
 * those pods with `unmanagedPods: delete`) and right after it: while any pod other than Ferry's mounts
 * a source PVC the final sync does not start, and a final sync such a pod overlapped is not trusted;
 * either way the namespace rolls back (source restored) with the pods' names. waitForQuiesced and the
 * check before the final sync also fail when a quiesced StatefulSet's retention policy deletes PVCs
 * again.
 *
 * A PVC whose sync still fails after the activity's retries does not stop the others: it is marked
 * `failed` and waits for the operator's `decide` update — retry (sync it again), skip (leave it out of
 * the rest of the migration) or abort (roll the namespace back).
 *
 * Rollback (abort, cancellation, any other failure before the copy is complete) runs in a
 * non-cancellable scope, after every running activity and sync has stopped: unquiesce what was
 * quiesced (from this workflow's records), cleanup (every transfer object), and, when the plan asks,
 * delete the destination PVCs Ferry created. The workflow then fails with FerryRolledBack (details[0]:
 * the final NamespaceState), or ends cancelled when it was cancelled.
 *
 * Once the final sync is complete the copy is committed: later failures (unquiesce, cleanup) become
 * warnings instead of a rollback that would throw a finished copy away.
 */
import * as wf from '@temporalio/workflow';
import { WorkflowFailureType } from '../definitions';
import { failureMessage } from '../failures';
import { MAX_DESTINATION_CHECK_PVCS, secondsBetween, type NamespaceState } from '../../core/state';
import { RUNNING_WORKLOAD_KINDS, type CreatedEndpoint, type EndpointAddress, type NamespaceDiscovery } from '../../core/types';
import { setHandlers } from './handlers';
import { rollback } from './rollback';
import { NamespaceRun, now, type NamespaceWorkflowInput } from './run';
import { stagePasses, syncAll } from './syncs';
import { mergeWorkloads, newPVCsFailure, writersFailure } from './writers';
import { hasHooks, runHooks } from './hooks';

/** Migrates one namespace (see above); returns its final NamespaceState, or throws FerryRolledBack. */
export async function namespaceWorkflow(input: NamespaceWorkflowInput): Promise<NamespaceState> {
  const run = new NamespaceRun(input);
  const { st, main, reporter } = run;
  setHandlers(run);
  run.showDetails();

  try {
    await main.run(() => migrate(run));
    st.status = 'succeeded';
    st.endedAt = now();
    run.enter('succeeded');
    await reporter.finish();
    return st;
  } catch (err) {
    if (err instanceof wf.ContinueAsNew) throw err;
    const cancelled = wf.isCancellation(err) && !run.abortedBy;
    const reason = run.abortedBy
      ? `aborted by the operator after PVC ${run.abortedBy.pvc} failed`
      : cancelled
        ? 'the migration was cancelled'
        : `failed in phase ${st.phase}: ${failureMessage(err)}`;
    wf.log.warn('rolling back namespace', { namespace: st.source, reason });
    await wf.CancellationScope.nonCancellable(() => rollback(run, reason));
    st.status = 'rolled-back';
    st.endedAt = now();
    run.enter('rolled-back');
    await reporter.finish();
    if (cancelled) throw err;
    const failedSteps = st.rollback!.steps.filter((s) => !s.ok);
    throw wf.ApplicationFailure.create({
      type: WorkflowFailureType.RolledBack,
      nonRetryable: true,
      message:
        `namespace ${st.source} rolled back: ${reason}` +
        (failedSteps.length > 0 ? `; rollback incomplete: ${failedSteps.map((s) => `${s.step}: ${s.message}`).join('; ')}` : ''),
      details: [st],
    });
  }
}

/**
 * The migration proper, its phases in order: prepare, stage passes, quiesce, final sync, then (committed)
 * unquiesce and cleanup. Runs in the main scope: abort and cancellation stop it. The phases stay in this
 * one function on purpose: each await of a helper's promise adds a microtask turn, and a turn more or
 * less can reorder the parent report's signal against the next command when both resume in one activation.
 */
async function migrate(run: NamespaceRun): Promise<void> {
  const { migrationId, plan, namespace, discovery, acts, ctx, st, pvcInfo } = run;
  if (!st.prepared) {
    run.enter('prepare');
    st.touched = true;
    let address: EndpointAddress;
    if (wf.patched('setup-concurrent')) {
      // The destination namespace and PVCs, and the endpoint (createEndpoint ensures the namespace
      // itself), at the same time. Both settle before anything is thrown, so the PVCs
      // prepareDestination reports are recorded (rollback deletes only those); a failed
      // prepareDestination cancels the endpoint's wait.
      const endpointScope = new wf.CancellationScope();
      const [prepared, endpoint] = await Promise.allSettled([
        acts.prepareDestination({ ...ctx, discovery }).then(
          (created) => {
            st.createdNamespace = created.createdNamespace;
            st.createdPVCs = created.createdPVCs;
          },
          (err: unknown) => {
            endpointScope.cancel();
            throw err;
          },
        ),
        endpointScope.run(() => acts.createEndpoint(ctx)),
      ]);
      if (prepared.status === 'rejected') throw prepared.reason;
      if (endpoint.status === 'rejected') throw endpoint.reason;
      address = takeEndpoint(run, endpoint.value);
    } else {
      const created = await acts.prepareDestination({ ...ctx, discovery });
      st.createdNamespace = created.createdNamespace;
      st.createdPVCs = created.createdPVCs;
      address = takeEndpoint(run, await acts.createEndpoint(ctx));
    }
    await acts.createServer({ ...ctx, discovery, address });
    await probeWithFallback(run, discovery, address);
    st.prepared = true;
  }

  await stagePasses(run);

  const checkWriters = plan.quiesce && wf.patched('q-writers');
  const migrated = () => st.pvcs.filter((p) => p.status !== 'skipped').map((p) => p.name);
  if (plan.quiesce) {
    if (checkWriters) {
      // Workloads created since discovery (a long warm migration) are quiesced too. Still in the
      // stage phase: the applications are not touched yet (downtime starts with quiesce).
      const again = await acts.discoverNamespace(ctx);
      // A PVC the selection matches now but the migration did not discover (a StatefulSet scaled up
      // during a warm migration) would be quiesced but never copied: stop before touching anything.
      const added = again.pvcs.map((p) => p.name).filter((n) => !pvcInfo.has(n));
      if (added.length > 0) throw newPVCsFailure(run, added);
      run.quiesceTargets = mergeWorkloads(discovery.workloads, again.workloads);
      st.workloads = run.quiesceTargets.length;
      const unmanaged = (again.unmanagedPods ?? []).filter((u) => u.pvcs.some((c) => pvcInfo.has(c)));
      if (unmanaged.length > 0) st.unmanagedPods = unmanaged;
      else delete st.unmanagedPods;
      run.reporter.touch();
      if (unmanaged.length > 0 && plan.unmanagedPods !== 'delete') throw writersFailure(run, 'before quiesce', unmanaged);
    }
    // Application hooks before the applications stop (e.g. a checkpoint); a failure leaves them running.
    if (hasHooks(run, 'preQuiesce')) await runHooks(run, 'preQuiesce');
    run.enter('quiesce');
    st.downtime = { startedAt: now() };
    if (run.quiesceTargets.length > 0) {
      // In a cancelled scope the call below schedules nothing: then the source was not touched.
      st.quiesceStarted = !wf.CancellationScope.current().consideredCancelled;
      st.quiesced = await acts.quiesce({ migrationId, plan, workloads: run.quiesceTargets });
      await acts.waitForQuiesced({ migrationId, plan, workloads: run.quiesceTargets });
    }
    if (checkWriters) {
      const before = await acts.checkSourceWriters({ ...ctx, pvcs: migrated(), deleteUnmanaged: plan.unmanagedPods === 'delete', retentionGuard: true });
      if (before.deleted.length > 0) st.warnings.push(`deleted pods Ferry cannot quiesce before the final sync (unmanagedPods: delete): ${before.deleted.join(', ')}`);
      if (before.pods.length > 0) {
        st.unmanagedPods = before.pods;
        throw writersFailure(run, 'after quiesce, before the final sync', before.pods);
      }
      delete st.unmanagedPods; // deleted ones are in the warnings
    }
    if (hasHooks(run, 'postQuiesce')) await runHooks(run, 'postQuiesce');
  }
  run.enter('final-sync');
  run.keepAgentsInFinal = wf.patched('agents-released-together');
  await syncAll(run, true);
  if (checkWriters) {
    const after = await acts.checkSourceWriters({ ...ctx, pvcs: migrated(), deleteUnmanaged: false });
    if (after.pods.length > 0) {
      st.unmanagedPods = after.pods;
      throw writersFailure(run, 'the final sync is not trusted: right after it', after.pods);
    }
  }
  st.finalSynced = true;
  if (st.downtime) {
    st.downtime.endedAt = now();
    st.downtime.seconds = secondsBetween(st.downtime.startedAt, st.downtime.endedAt);
  }

  // Plan keepPVCNames (absent: nothing scheduled): the original names onto the new volumes, before the
  // applications come back. Both volumes are Retain while it happens: a failure loses no data.
  if (plan.keepPVCNames) {
    run.enter('rebind');
    const pvcs = migrated().flatMap((name) => {
      const info = run.pvcInfo.get(name);
      return info ? [{ name, temporary: info.destinationName }] : [];
    });
    st.rebound = await acts.rebindPVCs({ ...ctx, pvcs });
    for (const r of st.rebound) {
      if (r.oldVolume) st.warnings.push(`PVC ${r.pvc} now uses volume ${r.newVolume}; its old volume ${r.oldVolume} is kept (Released, reclaim policy Retain): delete it when satisfied (kubectl delete pv ${r.oldVolume})`);
      if (r.deletedPods?.length) st.warnings.push(`PVC ${r.pvc}: deleted the finished pods ${r.deletedPods.join(', ')} that still named its old claim (Kubernetes keeps a claim while any pod object names it)`);
    }
    run.reporter.touch();
  }

  // Committed: from here on, failures are warnings, not a rollback.
  if (hasHooks(run, 'postCutover')) await runHooks(run, 'postCutover');
  if (st.quiesced.length > 0 && !plan.keepSourceQuiesced) {
    run.enter('unquiesce');
    // The warm agents the final syncs kept, all at once, before the applications come back to their
    // PVCs (the rebind deletes them itself; without unquiesce, cleanup does). A failure is a warning.
    if (run.keepAgentsInFinal) {
      try {
        await acts.releaseAgents(ctx);
      } catch (err) {
        if (wf.isCancellation(err)) throw err;
        st.warnings.push(`could not delete the transfer agents after the final sync (cleanup deletes them): ${failureMessage(err)}`);
      }
    }
    try {
      await acts.unquiesce({ migrationId, plan, records: st.quiesced });
      st.unquiesced = true;
    } catch (err) {
      if (wf.isCancellation(err)) throw err;
      st.unquiesceFailed = failureMessage(err);
      st.warnings.push(`the data is migrated, but restoring the source workloads failed: ${failureMessage(err)}; they are still scaled down`);
    }
  }
  run.enter('cleanup');
  try {
    st.cleanup = await acts.cleanup({ migrationId, plan, namespace, ...(st.downtime?.seconds !== undefined ? { downtimeSeconds: st.downtime.seconds } : {}) });
    if (st.cleanup.remaining > 0) st.warnings.push(`cleanup left ${st.cleanup.remaining} transfer object(s) behind`);
  } catch (err) {
    if (wf.isCancellation(err)) throw err;
    st.warnings.push(`the data is migrated, but cleanup of the transfer objects failed: ${failureMessage(err)}`);
  }
  // Plan verifyDestination (absent: nothing scheduled, histories unchanged): after cleanup, so that the
  // transfer server no longer holds the volumes. A report, not a rollback: the copy is committed.
  if (plan.verifyDestination) await checkDestination(run, migrated());
}

/** The post-cutover check of the destination pods; a failure or a not-Ready pod is a warning. */
async function checkDestination(run: NamespaceRun, pvcs: readonly string[]): Promise<void> {
  const { st, acts, ctx, plan } = run;
  run.enter('verify-destination');
  const claims = pvcs.flatMap((name) => {
    const info = run.pvcInfo.get(name);
    // keepPVCNames: the rebind put the original names on the new volumes (the temporary claims are gone)
    return info ? [{ name: plan.keepPVCNames ? info.name : info.destinationName, expected: info.usedBy.some((w) => RUNNING_WORKLOAD_KINDS.includes(w.kind)) }] : [];
  });
  try {
    const check = await acts.checkDestination({ ...ctx, claims });
    st.destinationCheck = { ...check, pvcs: check.pvcs.slice(0, MAX_DESTINATION_CHECK_PVCS).map((p) => ({ ...p, pods: p.pods.slice(0, 5) })) };
    if (!check.ok) st.warnings.push(`verifyDestination: the destination pods of the migrated PVCs in ${st.destination} are not Ready: ${check.message ?? 'no reason given'}`);
  } catch (err) {
    if (wf.isCancellation(err)) throw err;
    st.warnings.push(`verifyDestination: the check of the destination pods failed: ${failureMessage(err)}`);
  }
  run.reporter.touch();
}

/** Keeps what createEndpoint returned: the address (exactly its fields, as before) and, from newer
 * workers, the endpoint type chosen and why. */
function takeEndpoint(run: NamespaceRun, created: CreatedEndpoint): EndpointAddress {
  const { chosen, ...address } = created;
  run.st.address = { host: address.host, port: address.port, ...(address.sni !== undefined ? { sni: address.sni } : {}) };
  if (chosen) run.st.endpoint = chosen;
  // no touch(): the next one reports it (a report here would be a command older histories lack)
  return run.st.address;
}

/**
 * The connectivity probe; with endpoint auto, a failed probe makes the namespace try the next endpoint
 * type (createEndpoint with the failed types excluded, then createServer for the new address, whose
 * certificate must name it) until one passes or none is left (patch `endpoint-auto-fallback`: older
 * histories failed at the first probe failure). A warning says which type failed and why.
 * @throws the probe's failure when the plan names its type, or no type is left.
 */
async function probeWithFallback(run: NamespaceRun, discovery: NamespaceDiscovery, first: EndpointAddress): Promise<void> {
  const { st, acts, ctx, plan } = run;
  const tried: string[] = [];
  let address = first;
  for (;;) {
    try {
      await acts.probeConnectivity({ ...ctx, address });
      return;
    } catch (err) {
      if (wf.isCancellation(err) || plan.endpoint.type !== 'auto' || !st.endpoint || !wf.patched('endpoint-auto-fallback')) throw err;
      tried.push(st.endpoint.type);
      st.warnings.push(`endpoint auto: ${st.endpoint.type} failed the connectivity probe (${failureMessage(err)}); trying the next endpoint type`);
      run.reporter.touch();
      // createEndpoint fails (FerryConfig) when no type is left: that ends the namespace
      address = takeEndpoint(run, await acts.createEndpoint({ ...ctx, exclude: tried }));
      await acts.createServer({ ...ctx, discovery, address });
    }
  }
}
