/**
 * `ferry plan -f plan.yaml` (and `ferry migrate --dry-run`): the dry run of a migration
 * (migration/dry-run.ts) from the CLI, with the plan's kubeconfigs; no Temporal needed. Exit 0 when
 * preflight found nothing (the migration would start), 2 when it found problems, which are listed.
 */
import type { DryRunReport, NamespaceDryRun, PlannedObject } from '../migration/dry-run';
import { formatBytes, formatDuration } from '../core/format';

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

function objectsLine(side: string, objects: readonly PlannedObject[]): string[] {
  if (!objects.length) return [];
  return [`  objects Ferry would create in the ${side} (${objects.length}):`, ...objects.map((o) => `    ${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name}${o.note ? ` — ${o.note}` : ''}`)];
}

function renderNamespace(ns: NamespaceDryRun): string[] {
  const lines = [`Namespace ${ns.source} -> ${ns.destination}${ns.destinationExists ? ' (the destination namespace exists)' : ' (the destination namespace will be created)'}`];
  if (ns.endpoint) lines.push(`  endpoint: ${ns.endpoint.type} — ${ns.endpoint.reason}`);
  if (ns.quiesce.length) lines.push(`  quiesce scales down: ${ns.quiesce.join(', ')}`);
  if (ns.unmanagedPods.length) lines.push(`  pods Ferry cannot stop: ${ns.unmanagedPods.join('; ')}`);
  if (ns.pvcs.length) {
    const rows = [['PVC', 'capacity', 'StorageClass', 'modes', 'data', 'files', 'read rate', 'first copy']];
    for (const p of ns.pvcs) {
      const u = p.usage;
      rows.push([
        p.name === p.destinationName ? p.name : `${p.name} -> ${p.destinationName}`,
        formatBytes(p.capacityBytes),
        `${p.storageClass ?? '(none)'} -> ${p.destinationStorageClass ?? '(default)'}`,
        p.accessModes.join(',') === p.destinationAccessModes.join(',') ? p.accessModes.join(',') : `${p.accessModes.join(',')} -> ${p.destinationAccessModes.join(',')}`,
        u ? formatBytes(u.bytes) : '-',
        u ? String(u.files) : '-',
        p.readBytesPerSecond !== undefined ? `${formatBytes(p.readBytesPerSecond)}/s` : '-',
        p.projectedSeconds !== undefined ? formatDuration(p.projectedSeconds) : '-',
      ]);
    }
    lines.push(...table(rows).map((l) => `  ${l}`));
    for (const p of ns.pvcs) {
      const u = p.usage;
      if (p.notMeasured) lines.push(`  ${p.name}: not measured: ${p.notMeasured}`);
      else if (u && u.unreadable > 0) lines.push(`  ${p.name}: ${u.unreadable} entries were not readable by the usage pod (restricted mode reads as the workload's identity): its figures are low, and the copy would miss them; consider security.mode preserve-ownership`);
      if (u && u.allocatedBytes < u.bytes / 2 && u.bytes > 64 * 1024 * 1024) lines.push(`  ${p.name}: sparse data: ${formatBytes(u.bytes)} apparent, ${formatBytes(u.allocatedBytes)} allocated (rsync -S keeps the holes)`);
      if (p.nodeName) lines.push(`  ${p.name}: ReadWriteOnce and in use: read on node ${p.nodeName}`);
    }
  }
  if (ns.images) {
    const n = ns.images.found.length;
    const what = ns.images.mode === 'imagestreams' ? `image tag${n === 1 ? '' : 's'}` : `repositor${n === 1 ? 'y' : 'ies'}`;
    lines.push(`  images (${ns.images.mode}): ${n} ${what}${ns.images.fromPlan ? ' listed in the plan' : ' found'}${ns.images.found.length ? `: ${ns.images.found.join(', ')}` : ''}`);
    for (const s of ns.images.skipped) lines.push(`    skipped ${s.source}: ${s.reason}`);
  }
  lines.push(...objectsLine('destination', ns.objects.destination), ...objectsLine('source', ns.objects.source));
  for (const n of ns.notes) lines.push(`  note: ${n}`);
  if (ns.projectedSeconds !== undefined) lines.push(`  projected first copy: ${formatDuration(ns.projectedSeconds)}`);
  return lines;
}

/** The human rendering of a dry run. */
export function renderDryRun(r: DryRunReport): string {
  const lines = [`Dry run of migration ${r.migrationId}: nothing was changed (only read-only usage pods ran, and are gone)`, ''];
  if (r.problems.length === 0) lines.push('Preflight: no problem found: the migration would start.');
  else {
    lines.push(`Preflight: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}: the migration would refuse to start until they are fixed:`);
    for (const p of r.problems) lines.push(`  - ${p.subject}: ${p.message}`);
  }
  for (const ns of r.namespaces) lines.push('', ...renderNamespace(ns));
  lines.push('', `Total: ${r.totals.pvcs} PVCs${r.totals.measured ? `, ${formatBytes(r.totals.bytes)} in ${r.totals.files} files (${r.totals.measured} measured)` : ''}.`);
  if (r.projectedSeconds !== undefined) {
    lines.push(
      `Projected first copy: ${formatDuration(r.projectedSeconds)} (namespaces at once, each namespace's PVCs \`concurrency\` at a time at the source's measured read rate; ` +
        'the network and the destination\'s writes come on top, and stage syncs after it send only what changed).',
    );
  }
  return lines.join('\n');
}
