/**
 * Human-readable rendering of migration state for the terminal (the JSON output is the state itself).
 */
import { formatBytes, formatDuration } from '../core/format';
import { migrationTotals, type MigrationState, type NamespaceState, type PVCState } from '../core/state';
import type { LiveProgress, MigrationRow, MigrationView } from './operations';

/** formatBytes ("1.5 GiB") and formatDuration ("4m05s") live in core: the workflows' UI texts use them too. */
export { formatBytes, formatDuration };

/**
 * The status a PVC shows: its own, except that a sync still marked running in a namespace that has
 * ended was stopped by the rollback (states recorded before the `cancelled` status existed).
 */
export function pvcDisplayStatus(p: PVCState, namespaceEnded: boolean): string {
  return namespaceEnded && p.status === 'syncing' ? 'cancelled' : p.status;
}

/**
 * Whether the source workloads of `ns` stayed scaled down after its final sync because restoring
 * them failed (`unquiesceFailed`, or its warning in states recorded before that field existed).
 */
export function sourceNotRestored(ns: NamespaceState): boolean {
  return ns.unquiesceFailed !== undefined || (ns.finalSynced && !ns.unquiesced && ns.warnings.some((w) => w.includes('restoring the source workloads failed')));
}

/** Shell commands that put the quiesced workloads of `ns` back (and show their recorded prior state). */
export function restoreCommands(ns: NamespaceState): string[] {
  return ns.quiesced
    .filter((r) => r.changed)
    .map((r) => {
      const w = r.workload;
      const target = `${w.kind.toLowerCase()}/${w.name}`;
      if (r.replicas !== undefined) return `kubectl -n ${w.namespace} scale ${target} --replicas=${r.replicas}`;
      return `kubectl -n ${w.namespace} get ${target} -o jsonpath='{.metadata.annotations.ferry\\.dev/pre-quiesce}'   # restore these fields`;
    });
}

/** The loud lines for namespaces whose source was not restored after the final sync (empty if none);
 * `id`: the migration's, for the `ferry cleanup` hint. */
export function sourceNotRestoredLines(namespaces: readonly NamespaceState[], id?: string): string[] {
  const lines: string[] = [];
  for (const ns of namespaces.filter(sourceNotRestored)) {
    lines.push(`!!! SOURCE NOT RESTORED: namespace ${ns.source} is migrated, but its source applications are still scaled down` + (ns.unquiesceFailed ? ` (${ns.unquiesceFailed})` : ''));
    const cmds = restoreCommands(ns);
    if (cmds.length > 0) lines.push('!!! restore them in the source cluster:', ...cmds.map((c) => `      ${c}`));
    if (id !== undefined) lines.push(`!!! or: ferry cleanup ${id}   (restores them from their ferry.dev/pre-quiesce annotations)`);
  }
  return lines;
}

/** One line for a PVC: status, syncs, bytes, live progress, last error. `ended`: its namespace has ended. */
export function pvcLine(p: PVCState, live?: LiveProgress, ended = false): string {
  const parts = [p.name.padEnd(24), pvcDisplayStatus(p, ended).toUpperCase().padEnd(8), `syncs ${p.syncs}`.padEnd(9), `${formatBytes(p.bytesSent)} sent`];
  if (p.running) {
    const pr = live?.progress;
    const pct = pr?.percent ?? (pr?.totalBytes ? Math.round((100 * pr.bytes) / pr.totalBytes) : undefined);
    parts.push(
      `[${p.running.final ? 'final' : 'stage'} sync: ${pct !== undefined ? `${pct}% ` : ''}${formatBytes(pr?.bytes)}` +
        `${pr?.rate !== undefined ? ` at ${formatBytes(pr.rate)}/s` : ''}${pr?.eta !== undefined ? `, ETA ${formatDuration(pr.eta)}` : ''}` +
        `${live && live.attempt > 1 ? `, attempt ${live.attempt}${live.lastFailure ? ` after: ${live.lastFailure}` : ''}` : ''}]`,
    );
  }
  // A stage pass that left files behind (rsync exit 23) is not a done pass: say so, with its reason.
  if (p.status === 'synced' && p.lastSync && !p.lastSync.final && p.lastSync.outcome === 'partial' && p.lastSync.exitCode !== 24) {
    parts[1] = 'PARTIAL '.padEnd(8);
    parts.push(`— last stage pass partial: ${p.lastSync.message}`);
  }
  const lastError = p.errors[p.errors.length - 1];
  if (p.status === 'failed' && lastError) parts.push(`— ${lastError.message}${lastError.type ? ` (${lastError.type})` : ''}`);
  return parts.join('  ');
}

function namespaceLines(id: string, ns: NamespaceState, view: MigrationView | undefined): string[] {
  const lines: string[] = [];
  const dest = ns.destination !== ns.source ? ` → ${ns.destination}` : '';
  const passes = ns.stagePassesDone > 0 ? `, ${ns.stagePassesDone} stage pass${ns.stagePassesDone === 1 ? '' : 'es'}` : '';
  const ended = ns.status !== 'running';
  const restoredByRollback = ns.rollback?.steps.some((s) => s.step === 'unquiesce' && s.ok) === true;
  let downtime = '';
  if (ns.downtime) {
    const figure = ns.downtime.seconds !== undefined ? `, downtime ${formatDuration(ns.downtime.seconds)}` : '';
    if (!ended) downtime = figure || ', applications down';
    else if (sourceNotRestored(ns)) downtime = `${figure}, applications STILL DOWN`;
    else if (restoredByRollback) downtime = `${figure}, applications restored at ${ns.downtime.endedAt ?? ns.rollback?.endedAt ?? '?'}`;
    else if (ns.rollback && (ns.quiesced.length > 0 || ns.quiesceStarted) && !ns.unquiesced) downtime = `${figure}, applications STILL DOWN (restoring them failed)`;
    else downtime = figure;
  }
  lines.push(`  ${ns.source}${dest}: ${ns.phase}${passes}${downtime}`);
  for (const p of ns.pvcs) {
    lines.push(`    ${pvcLine(p, p.running ? view?.live[p.running.workflowId] : undefined, ended)}`);
    // A decision is awaited only while the namespace runs.
    if (p.status === 'failed' && !ended) {
      lines.push(`      decide: ferry retry ${id} --namespace ${ns.source} --pvc ${p.name}  |  ferry skip …  |  ferry abort …`);
    }
  }
  // The evidence for cutover: the last stage pass's delta and the final sync it projects.
  const last = ns.stageHistory?.[ns.stageHistory.length - 1];
  if (last && !ns.downtime) {
    const projection = last.projectedFinalSyncSeconds !== undefined ? `; projected downtime ≈ ${formatDuration(last.projectedFinalSyncSeconds)} of final sync + quiesce` : '';
    lines.push(`    last stage pass ${last.pass}: ${formatBytes(last.bytesSent)}, ${last.filesTransferred} file(s) in ${formatDuration(last.seconds)}${projection}`);
  }
  if (ns.cutoverEvidence) lines.push(`    cutover on evidence: ${ns.cutoverEvidence.reason}`);
  // Each hook once, as it last ran (stage hooks run every pass).
  const hooks = new Map((ns.hooks ?? []).map((h) => [`${h.phase}/${h.name}`, h]));
  for (const h of hooks.values()) lines.push(`    hook ${h.name} (${h.phase}, ${h.cluster} ${h.namespace}): ${h.ok ? `ok in ${h.pods.length} pod(s)` : `FAILED: ${h.message ?? ''}`}`);
  const dc = ns.destinationCheck;
  if (dc) {
    lines.push(`    destination check (${dc.namespace}): ${dc.ok ? 'ok' : 'NOT READY'}${dc.message ? `: ${dc.message}` : ''} (${formatDuration(dc.seconds)})`);
    for (const p of dc.pvcs.filter((c) => c.expected || c.pods.length > 0)) {
      lines.push(`      ${p.pvc}: ${p.pods.length ? p.pods.map((x) => `${x.name} ${x.state}`).join(', ') : 'no pod mounts it'}${p.expected ? '' : ' (not expected)'}`);
    }
  }
  if (ns.cutoverBlocked && !ns.cutoverForcedAt) lines.push(`    CUTOVER HELD BACK: ${ns.cutoverBlocked.reason}`);
  if (ns.nextStageAt) lines.push(`    next stage pass at ${ns.nextStageAt} (stageSchedule)`);
  if (ns.endpoint) lines.push(`    endpoint: ${ns.endpoint.type}${ns.address ? ` at ${ns.address.host}:${ns.address.port}` : ''} — ${ns.endpoint.reason}`);
  else if (ns.phase === 'ready-for-cutover' && !ns.cutoverRequested) lines.push(`    ready for cutover: ferry cutover ${id} --namespace ${ns.source}`);
  if (ns.unmanagedPods?.length) {
    lines.push(`    pods Ferry cannot quiesce mount source PVCs (plan unmanagedPods decides: fail or delete):`);
    for (const u of ns.unmanagedPods) lines.push(`      ${u.name}: mounts ${u.pvcs.join(', ')}${u.owner ? `; controlled by ${u.owner}` : '; no controller'}`);
  }
  for (const w of ns.warnings) lines.push(`    WARNING: ${w}`);
  if (ns.rollback) {
    lines.push(`    rolled back: ${ns.rollback.reason}`);
    for (const s of ns.rollback.steps) lines.push(`      ${s.ok ? 'ok    ' : 'FAILED'} ${s.step}${s.message ? `: ${s.message}` : ''}`);
  }
  return lines;
}

/** The full status of a migration. */
export function renderView(view: MigrationView): string {
  const st = view.state;
  const lines: string[] = [];
  if (!st) {
    lines.push(`Migration ${view.id}: ${view.workflowStatus.toLowerCase()}, phase ${view.searchAttributes.phase ?? 'unknown'}`);
    if (view.searchAttributes.namespaces) lines.push(`  namespaces: ${view.searchAttributes.namespaces.join(', ')}`);
  } else {
    lines.push(...headerLines(st, view.namespaces));
    for (const e of st.namespaces) {
      const ns = view.namespaces[e.source];
      if (ns) lines.push(...namespaceLines(view.id, ns, view));
      else lines.push(`  ${e.source}: ${e.phase} (${e.status})${e.error ? `: ${e.error}` : ''}`);
      if (e.images.status !== 'disabled') {
        const r = e.images.report;
        lines.push(`    images: ${e.images.status}${r ? ` (${r.copied.length} copied, ${r.skipped.length} skipped)` : ''}${e.images.error ? `: ${e.images.error}` : ''}`);
      }
    }
    if (st.problems.length > 0) {
      lines.push('  Preflight problems (nothing was changed):');
      for (const p of st.problems) lines.push(`    ${p.subject}: ${p.message}`);
    }
  }
  lines.push(...sourceNotRestoredLines(Object.values(view.namespaces), view.id));
  if (view.failure && !st?.error) lines.push(`  failure: ${view.failure}`);
  for (const w of view.warnings) lines.push(`  WARNING: ${w}`);
  return lines.join('\n');
}

/** Status line and totals; running namespaces count with their live state. */
function headerLines(st: MigrationState, live: Record<string, NamespaceState>): string[] {
  const t = migrationTotals(st.namespaces, live);
  const lines = [`Migration ${st.migrationId}: ${st.status}${st.status === 'running' ? `, phase ${st.phase}` : ''}`];
  const duration = st.endedAt ? `, took ${formatDuration((Date.parse(st.endedAt) - Date.parse(st.startedAt)) / 1000)}` : '';
  lines.push(`  started ${st.startedAt}${duration}`);
  lines.push(
    `  PVCs: ${t.pvcsDone}/${t.pvcs} done, ${t.pvcsSkipped} skipped, ${t.pvcsFailed} failed; ${formatBytes(t.bytesSent)} sent` +
      (t.downtimeSeconds !== undefined ? `; downtime ${formatDuration(t.downtimeSeconds)}` : ''),
  );
  if (st.error) lines.push(`  ${st.error}`);
  return lines;
}

/** The `ferry list` table. */
export function renderList(rows: MigrationRow[]): string {
  if (rows.length === 0) return 'No migrations.';
  const table = [['ID', 'STATUS', 'PHASE', 'NAMESPACES', 'FAILED PVCS', 'STARTED']].concat(
    rows.map((r) => [r.id, r.status.toLowerCase(), r.phase ?? '-', (r.namespaces ?? []).join(',') || '-', String(r.failedPVCs ?? 0), r.startTime]),
  );
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
