/**
 * What the Temporal UI shows of Ferry's workflows (issue 12 §2): the one-line static summaries of the
 * migration, namespace and PVC sync workflows and of every activity, and the markdown "current
 * details" the migration and namespace workflows keep up to date (phase, PVCs, bytes, rate, projected
 * downtime, and what the workflow waits for — with the exact `ferry` command to send).
 *
 * Pure and workflow-safe: text from the plan and the state only, no clock (times come from the state).
 * Summaries and details are user metadata: they add no command to a workflow's history, so changing
 * these texts never breaks the replay of a running migration.
 */
import type { FerryActivities, NamespaceContext, TransferRequest } from '../activities/contract';
import { formatBytes, formatDuration } from '../core/format';
import { projectedFinalSyncSeconds, type MigrationState, type NamespaceEntry, type NamespaceState, type PVCState } from '../core/state';
import type { NamespaceDiscovery } from '../core/types';
import type { ClusterRef, MigrationPlan, NamespaceMapping } from '../plan/schema';
import { hookCluster } from '../plan/hooks';
import { finalSyncConcurrency } from './concurrency';

/** How a cluster of the plan is named in the texts: its kubeconfig context, else the kubeconfig file's name. */
export function clusterName(ref: ClusterRef): string {
  if (ref.context) return ref.context;
  if (ref.kubeconfig) return ref.kubeconfig.split('/').pop() || ref.kubeconfig;
  return 'current context';
}

/** "shop" or "shop → shop-new". */
function mapping(ns: { source: string; destination: string }): string {
  return ns.source === ns.destination ? ns.source : `${ns.source} → ${ns.destination}`;
}

/** At most `max` names, then "+N more". */
function someOf(names: readonly string[], max = 4): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} +${names.length - max} more`;
}

/** The migration workflow's static summary (one line): id, namespaces, clusters. */
export function migrationSummary(migrationId: string, plan: MigrationPlan): string {
  return `Ferry migration ${migrationId}: ${someOf(plan.namespaces.map(mapping))} (${clusterName(plan.source)} → ${clusterName(plan.destination)})`;
}

/** The migration workflow's static details (markdown): what the plan asks, and how to follow it. */
export function migrationStaticDetails(migrationId: string, plan: MigrationPlan): string {
  return [
    `**Ferry migration \`${migrationId}\`**${plan.name && plan.name !== migrationId ? ` (plan ${plan.name})` : ''}`,
    '',
    `- Clusters: ${clusterName(plan.source)} → ${clusterName(plan.destination)}`,
    `- Namespaces: ${plan.namespaces.map(mapping).join(', ')}`,
    `- Cutover: ${plan.cutover}${plan.cutoverWhen ? ` or on evidence (a projected final sync under ${plan.cutoverWhen.projectedDowntimeBelowSeconds} s, within ${plan.cutoverWhen.maxStagePasses} stage passes)` : ''}, after at least ${plan.stagePasses} stage pass${plan.stagePasses === 1 ? '' : 'es'}; ${plan.quiesce ? 'applications quiesced for the final sync' : 'no quiesce'}`,
    `- Follow it: \`ferry status ${migrationId} --follow\``,
  ].join('\n');
}

/** A namespace workflow's static summary (one line). */
export function namespaceSummary(migrationId: string, ns: NamespaceMapping, pvcs: number): string {
  return `Namespace ${mapping(ns)} of migration ${migrationId} (${pvcs} PVC${pvcs === 1 ? '' : 's'})`;
}

/** A namespace workflow's static details (markdown): clusters, and the PVCs discovery found. */
export function namespaceStaticDetails(migrationId: string, plan: MigrationPlan, ns: NamespaceMapping, discovery: NamespaceDiscovery): string {
  return [
    `**Namespace ${mapping(ns)}** of Ferry migration \`${migrationId}\``,
    '',
    `- Clusters: ${clusterName(plan.source)}/${ns.source} → ${clusterName(plan.destination)}/${ns.destination}`,
    `- PVCs: ${discovery.pvcs.map((p) => `${p.name} (${formatBytes(p.capacityBytes)})`).join(', ') || 'none'}`,
    `- Workloads quiesced at cutover: ${plan.quiesce ? discovery.workloads.length : 'none (quiesce off)'}`,
    `- Operator commands: \`ferry cutover ${migrationId} --namespace ${ns.source}\` (manual cutover) · \`ferry retry|skip|abort ${migrationId} --pvc PVC --namespace ${ns.source}\` (a failed PVC)`,
  ].join('\n');
}

/** A PVC sync workflow's static summary (one line): PVC, pass, stage or final. */
export function pvcSyncSummary(migrationId: string, namespace: string, pvc: string, pass: number, final: boolean): string {
  return `PVC ${namespace}/${pvc}: ${final ? 'final sync' : 'stage sync'} (pass ${pass}) of migration ${migrationId}`;
}

/**
 * An activity's summary (one line): what it does, to which PVC or namespace, in which cluster.
 * `input` is the activity's argument (its shape per activity: ../activities/contract.ts).
 */
export function activitySummary(name: keyof FerryActivities, input: unknown): string {
  const i = (input ?? {}) as Partial<NamespaceContext> & Record<string, unknown>;
  const plan = i.plan;
  const src = plan ? clusterName(plan.source) : 'source';
  const dst = plan ? clusterName(plan.destination) : 'destination';
  const ns = i.namespace;
  const n = (key: string) => (Array.isArray(i[key]) ? (i[key] as unknown[]).length : 0);
  switch (name) {
    case 'discoverNamespace':
      return `discover PVCs and workloads of namespace ${ns?.source} in ${src}`;
    case 'preflight':
      return `preflight: ${n('discoveries')} namespace(s), ${src} → ${dst}; nothing changed yet`;
    case 'prepareDestination':
      return `destination namespace ${ns?.destination} and its PVCs in ${dst}`;
    case 'createEndpoint':
      return `endpoint (${plan?.endpoint.type ?? 'auto'}) for namespace ${ns?.destination} in ${dst}`;
    case 'createServer':
      return `transfer server in ${dst}/${ns?.destination}`;
    case 'probeConnectivity':
      return `connectivity probe ${src}/${ns?.source} → ${dst}/${ns?.destination}`;
    case 'runTransfer': {
      const r = i as Partial<TransferRequest>;
      return `${r.final ? 'final' : 'stage'} sync (pass ${r.pass}) of PVC ${ns?.source}/${r.pvc?.name} in ${src} → ${ns?.destination}/${r.pvc?.destinationName} in ${dst}`;
    }
    case 'rebindPVCs':
      return `bind ${n('pvcs')} PVC(s) of ${ns?.source} in ${src} to their new volumes under their own names (keepPVCNames)`;
    case 'prepareHeldGroupSnapshot':
      return `group snapshot of ${n('pvcs')} PVC(s) of ${ns?.source} in ${src} (stage pass ${String(i.pass)}), background hook(s) ${((i.hooks as string[] | undefined) ?? []).join(', ')} held over the cut`;
    case 'prepareGroupSnapshot':
      return `group snapshot of ${n('pvcs')} PVC(s) of ${ns?.source} in ${src} (stage pass ${String(i.pass)})`;
    case 'releaseGroupSnapshot':
      return `delete the group snapshot of ${ns?.source} in ${src}`;
    case 'runHook': {
      const hook = (plan?.hooks ?? []).find((h) => h.name === i.hook);
      const inDestination = hook ? hookCluster(hook) === 'destination' : false;
      const what = hook?.exec
        ? ` (${hook.phase}): ${hook.exec.command.join(' ').slice(0, 80)} in pods ${hook.exec.selector} of`
        : hook?.job
          ? ` (${hook.phase}): a Job of ${hook.job.template.spec.containers.map((c) => c.image).join(', ').slice(0, 80)} in`
          : ' in';
      return `hook ${String(i.hook)}${what} ${inDestination ? `${dst}/${ns?.destination}` : `${src}/${ns?.source}`}`;
    }
    case 'quiesce':
      return `quiesce ${n('workloads')} workload(s) in ${src}`;
    case 'waitForQuiesced':
      return `wait until ${n('workloads')} quiesced workload(s) stopped in ${src}`;
    case 'checkSourceWriters':
      return `check writers of ${n('pvcs')} PVC(s) of ${ns?.source} in ${src}`;
    case 'releaseAgents':
      return `delete the transfer agents of ${ns?.source} in ${src}`;
    case 'unquiesce':
      return `restore ${n('records') || n('workloads')} workload(s) in ${src}`;
    case 'cleanup':
      return `clean up transfer objects${ns ? ` of ${mapping(ns)}` : ''} in ${src} and ${dst}`;
    case 'deleteDestinationPVCs':
      return `rollback: delete ${n('pvcs')} PVC(s) Ferry created in ${dst}/${ns?.destination}`;
    case 'copyImages':
      return `copy images of namespace ${ns?.source}: ${src} registry → ${dst} registry`;
    case 'describeNamespaceWorkflows':
      return `check ${n('workflowIds')} namespace workflow(s) in Temporal`;
  }
  return String(name);
}

/** "14:03:07 UTC" from an ISO time (the workflow's clock). */
function clock(iso: string): string {
  return `${iso.slice(11, 19)} UTC`;
}

/** The commands that answer a failed PVC. */
function decisionCommands(migrationId: string, namespace: string, pvc: string): string {
  const args = `${migrationId} --pvc ${pvc} --namespace ${namespace}`;
  return `\`ferry retry ${args}\` · \`ferry skip ${args}\` · \`ferry abort ${args}\``;
}

/** Bytes per second over the latest syncs of `pvcs` (sum of bytes / sum of their durations). */
function syncRate(pvcs: readonly PVCState[]): number | undefined {
  let bytes = 0;
  let seconds = 0;
  for (const p of pvcs) {
    if (!p.lastSync || p.lastSync.durationSeconds <= 0) continue;
    bytes += p.lastSync.bytesSent;
    seconds += p.lastSync.durationSeconds;
  }
  return seconds > 0 ? bytes / seconds : undefined;
}


/**
 * What a namespace workflow waits for, in words, with the `ferry` command that ends the wait (empty
 * when it waits for nothing but its own work).
 */
export function namespaceWaitingFor(st: NamespaceState, plan: Pick<MigrationPlan, 'cutover' | 'cutoverWhen'>): string[] {
  if (st.status !== 'running') return [];
  const out: string[] = [];
  for (const p of st.pvcs.filter((x) => x.status === 'failed')) {
    const e = p.errors[p.errors.length - 1];
    out.push(
      `**Decision needed**: the ${e?.final ? 'final' : 'stage'} sync of PVC \`${p.name}\` failed${e ? ` (pass ${e.pass}${e.type ? `, ${e.type}` : ''}): ${e.message}` : ''}. ` +
        `Send one of ${decisionCommands(st.migrationId, st.source, p.name)}`,
    );
  }
  if (st.cutoverBlocked) out.push(`**Cutover held back**: ${st.cutoverBlocked.reason}`);
  else if (plan.cutover === 'manual' && plan.cutoverWhen && !st.cutoverRequested && !st.cutoverEvidence) {
    out.push(
      `**Cutting over on evidence**: once a stage pass projects a final sync under ${plan.cutoverWhen.projectedDowntimeBelowSeconds} s ` +
        `(at most ${plan.cutoverWhen.maxStagePasses} stage passes, then the operator decides); now anyway: \`ferry cutover ${st.migrationId} --namespace ${st.source}\``,
    );
  } else if (plan.cutover === 'manual' && !st.cutoverRequested && st.phase === 'ready-for-cutover') {
    out.push(`**Waiting for the operator to cut over** (stage passes go on meanwhile): \`ferry cutover ${st.migrationId} --namespace ${st.source}\``);
  }
  if (st.nextStageAt) out.push(`Next stage pass (stageSchedule): ${st.nextStageAt}`);
  if (st.phase === 'quiesce') out.push(`Waiting for the ${st.workloads} source workload(s) to stop (the downtime has begun)`);
  return out;
}

/**
 * The namespace workflow's current details (markdown): phase, PVCs, bytes, rate, downtime, waits.
 * @param at the workflow's time of this update (ISO 8601), shown as "Updated hh:mm:ss UTC"
 */
export function namespaceDetails(st: NamespaceState, plan: MigrationPlan, at: string): string {
  const pvcs = st.pvcs;
  const active = pvcs.filter((p) => p.status !== 'skipped');
  const count = (s: PVCState['status']) => pvcs.filter((p) => p.status === s).length;
  const finalPhase = st.phase === 'final-sync' || st.phase === 'unquiesce' || st.phase === 'cleanup' || st.phase === 'succeeded';
  const lines: string[] = [
    `**Namespace ${mapping(st)}** · phase **${st.phase}**${st.status !== 'running' ? ` (${st.status})` : ''} · migration \`${st.migrationId}\``,
    '',
    finalPhase
      ? `- PVCs final-synced: ${count('done')} of ${active.length}`
      : `- PVCs synced: ${count('synced') + count('done')} of ${active.length} · stage passes done: ${st.stagePassesDone} (plan: at least ${plan.stagePasses})`,
  ];
  const extra = [count('failed') && `${count('failed')} failed`, count('skipped') && `${count('skipped')} skipped`].filter(Boolean);
  if (extra.length > 0) lines[lines.length - 1] += ` · ${extra.join(', ')}`;
  const syncing = pvcs.filter((p) => p.running);
  if (syncing.length > 0) lines.push(`- Syncing now: ${someOf(syncing.map((p) => `${p.name} (pass ${p.running!.pass}${p.running!.final ? ', final' : ''})`), 6)}`);
  const bytes = pvcs.reduce((n, p) => n + p.bytesSent, 0);
  const rate = syncRate(pvcs);
  lines.push(`- Sent: ${formatBytes(bytes)}${rate !== undefined ? ` · rate of the latest syncs: ${formatBytes(Math.round(rate))}/s per PVC` : ''}`);
  if (st.downtime?.seconds !== undefined) lines.push(`- Downtime: ${formatDuration(st.downtime.seconds)}`);
  else if (st.downtime) lines.push(`- Downtime: since ${clock(st.downtime.startedAt)}`);
  else if (plan.quiesce && st.status === 'running') {
    const projected = projectedFinalSyncSeconds(pvcs, finalSyncConcurrency(plan));
    if (projected !== undefined) lines.push(`- Projected downtime: ≈ ${formatDuration(projected)} of final sync (estimated from the last stage pass) + quiesce of ${st.workloads} workload(s)`);
  }
  if (st.rollback) lines.push(`- Rolling back: ${st.rollback.reason}`);
  const waits = namespaceWaitingFor(st, plan);
  if (waits.length > 0) lines.push('', ...waits.map((w) => `- ${w}`));
  else if (st.status === 'running' && st.phase !== 'rollback') lines.push('', 'Waiting for nothing from the operator.');
  lines.push('', `_Updated ${clock(at)}_`);
  return lines.join('\n');
}

/**
 * The migration workflow's current details (markdown): phase, namespaces, PVCs, bytes, waits.
 * @param at the workflow's time of this update (ISO 8601), shown as "Updated hh:mm:ss UTC"
 */
export function migrationDetails(st: MigrationState, at: string): string {
  const id = st.migrationId;
  const nsPVCs = (e: NamespaceEntry) => e.result?.pvcs.length ?? e.pvcs;
  const synced = (e: NamespaceEntry) => (e.result ? e.result.pvcs.filter((p) => p.status === 'done').length : (e.pvcsSynced ?? 0));
  const sent = (e: NamespaceEntry) => (e.result ? e.result.pvcs.reduce((n, p) => n + p.bytesSent, 0) : (e.bytesSent ?? 0));
  const total = st.namespaces.reduce((n, e) => n + nsPVCs(e), 0);
  const lines: string[] = [
    `**Migration \`${id}\`** · phase **${st.phase}**${st.status !== 'running' ? ` (${st.status})` : ''}`,
    '',
    `- PVCs synced: ${st.namespaces.reduce((n, e) => n + synced(e), 0)} of ${total} · sent: ${formatBytes(st.namespaces.reduce((n, e) => n + sent(e), 0))}` +
      (st.totals.downtimeSeconds !== undefined ? ` · downtime: ${formatDuration(st.totals.downtimeSeconds)}` : ''),
  ];
  for (const e of st.namespaces) {
    lines.push(
      `- ${mapping(e)}: ${e.phase}${e.status !== 'running' ? ` (${e.status})` : ''} · PVCs synced ${synced(e)} of ${nsPVCs(e)} · ${formatBytes(sent(e))} · stage passes ${e.stagePassesDone}` +
        (e.images.status !== 'disabled' ? ` · images ${e.images.status}` : '') +
        (e.error ? ` · ${e.error}` : ''),
    );
  }
  if (st.status === 'running') {
    const waits: string[] = [];
    for (const e of st.namespaces) {
      for (const pvc of e.awaitingDecision) waits.push(`**Decision needed** for PVC \`${e.source}/${pvc}\`: ${decisionCommands(id, e.source, pvc)}`);
      if (e.status === 'running' && e.phase === 'ready-for-cutover') waits.push(`**Waiting for the operator to cut over** ${e.source}: \`ferry cutover ${id} --namespace ${e.source}\``);
    }
    if (st.rollbackRequested) waits.push(`Rollback requested at ${clock(st.rollbackRequested.at)}${st.rollbackRequested.reason ? ` (${st.rollbackRequested.reason})` : ''}`);
    else waits.push(`Every PVC: \`ferry status ${id}\``, `Abort everything: \`ferry rollback ${id}\``);
    lines.push('', ...waits.map((w) => `- ${w}`));
  } else if (st.error) lines.push('', st.error);
  lines.push('', `_Updated ${clock(at)}_`);
  return lines.join('\n');
}
