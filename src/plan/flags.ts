/**
 * The plan from CLI flags: the `ferry migrate` flags mapped onto plan fields (on top of a plan file's
 * content, when one is given), validated like a plan file.
 */
import { homedir } from 'node:os';
import * as nodePath from 'node:path';
import { formatPath, PlanValidationError, validatePlan } from './load';
import { type Problem } from '../core/errors';
import { showValue, type MigrationPlan, type MigrationPlanInput } from './schema';
/**
 * CLI flags for the simple case (no plan file, or overrides on top of one). List-valued flags accept
 * a comma-separated string or repeated values. Numbers may be given as decimal strings.
 */
export interface PlanFlags {
  /** --name: migration name. */
  name?: string;
  /** --kubeconfig: kubeconfig for both clusters (overridden per side by the two below). */
  kubeconfig?: string;
  /** --source-kubeconfig */
  sourceKubeconfig?: string;
  /** --destination-kubeconfig */
  destinationKubeconfig?: string;
  /** --source-context */
  sourceContext?: string;
  /** --destination-context */
  destinationContext?: string;
  /** --namespaces: "a,b:renamed" (source[:destination], comma-separated). */
  namespaces?: string | string[];
  /** --pvcs: PVC names, comma-separated, or "all". Replaces the selection of every namespace. */
  pvcs?: string | string[];
  /** --pvc-selector: label selector for PVCs. Replaces the selection of every namespace. */
  pvcSelector?: string;
  /** --storage-class-mapping: "src=dst,src2=dst2". */
  storageClassMapping?: string | string[];
  /** --access-mode-mapping: "ReadWriteOnce=ReadWriteMany". */
  accessModeMapping?: string | string[];
  /** --default-storage-class */
  defaultStorageClass?: string;
  /** --endpoint: endpoint type. */
  endpoint?: string;
  /** --hostname: Route/Ingress host name. */
  hostname?: string;
  /** --ingress-class */
  ingressClassName?: string;
  /** --node-port */
  nodePort?: number | string;
  /** --transfer: rsync | rclone. */
  transfer?: string;
  /** --transport: stunnel | null. */
  transport?: string;
  /** --allow-insecure */
  allowInsecure?: boolean;
  /** --security: restricted | preserve-ownership. */
  security?: string;
  /** --chown UID:GID */
  chown?: string;
  /** --verify: checksum comparison. */
  verify?: boolean;
  /** --bwlimit: KiB/s. */
  bandwidthLimitKiBps?: number | string;
  /** --exclude: patterns, repeated or comma-separated. */
  excludes?: string | string[];
  /** --concurrency */
  concurrency?: number | string;
  /** --stage-passes */
  stagePasses?: number | string;
  /** --cutover: auto | manual. */
  cutover?: string;
  /** --stage-interval: seconds. */
  stageIntervalSeconds?: number | string;
  /** --quiesce / --no-quiesce */
  quiesce?: boolean;
  /** --keep-source-quiesced */
  keepSourceQuiesced?: boolean;
  /** --delete-destination-pvcs-on-rollback */
  deleteDestinationPVCsOnRollback?: boolean;
  /** --transfer-image */
  transferImage?: string;
}

/** Which flag sets a plan field, to name it in error messages. */
const FLAG_OF: Record<string, string> = {
  name: '--name',
  'source.kubeconfig': '--source-kubeconfig',
  'destination.kubeconfig': '--destination-kubeconfig',
  'source.context': '--source-context',
  'destination.context': '--destination-context',
  namespaces: '--namespaces',
  pvcs: '--pvcs/--pvc-selector',
  storageClassMapping: '--storage-class-mapping',
  accessModeMapping: '--access-mode-mapping',
  defaultStorageClass: '--default-storage-class',
  'endpoint.type': '--endpoint',
  'endpoint.hostname': '--hostname',
  'endpoint.ingressClassName': '--ingress-class',
  'endpoint.nodePort': '--node-port',
  transfer: '--transfer',
  transport: '--transport',
  allowInsecure: '--allow-insecure',
  'security.mode': '--security',
  'security.chown': '--chown',
  'rsync.verify': '--verify',
  'rsync.bandwidthLimitKiBps': '--bwlimit',
  'rsync.excludes': '--exclude',
  concurrency: '--concurrency',
  stagePasses: '--stage-passes',
  cutover: '--cutover',
  stageIntervalSeconds: '--stage-interval',
  quiesce: '--quiesce',
  keepSourceQuiesced: '--keep-source-quiesced',
  deleteDestinationPVCsOnRollback: '--delete-destination-pvcs-on-rollback',
  transferImage: '--transfer-image',
};

const listOf = (v: string | string[] | undefined): string[] =>
  v === undefined ? [] : (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');

/** Decimal strings become numbers; anything else is passed on for the schema to reject with its value. */
const numberOf = (v: number | string | undefined): unknown => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v);

/**
 * Builds and validates a plan from CLI flags, optionally on top of a base plan (a plan file's content
 * or a parsed plan): flags override the base's fields; `--namespaces` replaces the namespace list;
 * `--pvcs`/`--pvc-selector` replace the PVC selection of every namespace. Relative kubeconfig paths
 * from flags are made absolute against the current directory.
 * @throws PlanValidationError listing flag syntax problems (path = flag name) and every invalid field
 */
export function planFromFlags(flags: PlanFlags, base: MigrationPlanInput | MigrationPlan | Record<string, unknown> = {}): MigrationPlan {
  const issues: Problem[] = [];
  const b = structuredClone(base) as Record<string, unknown>;
  const sub = (key: string): Record<string, unknown> => {
    const cur = b[key];
    const obj = cur !== null && typeof cur === 'object' && !Array.isArray(cur) ? (cur as Record<string, unknown>) : {};
    b[key] = obj;
    return obj;
  };
  const set = (obj: Record<string, unknown>, key: string, v: unknown) => {
    if (v !== undefined) obj[key] = v;
  };

  set(b, 'name', flags.name);
  for (const side of ['source', 'destination'] as const) {
    const kubeconfig = side === 'source' ? (flags.sourceKubeconfig ?? flags.kubeconfig) : (flags.destinationKubeconfig ?? flags.kubeconfig);
    const context = side === 'source' ? flags.sourceContext : flags.destinationContext;
    if (kubeconfig !== undefined || context !== undefined || b[side] === undefined) {
      const c = sub(side);
      set(c, 'kubeconfig', kubeconfig !== undefined ? nodePath.resolve(kubeconfig.replace(/^~(?=\/|$)/, homedir())) : undefined);
      set(c, 'context', context);
    }
  }
  if (flags.namespaces !== undefined) {
    b.namespaces = listOf(flags.namespaces).map((entry) => {
      const [source, destination, ...rest] = entry.split(':');
      if (rest.length > 0) issues.push({ path: '--namespaces', message: `${showValue(entry)} must be "name" or "source:destination"` });
      return destination === undefined ? { source } : { source, destination };
    });
  }
  if (flags.pvcs !== undefined && flags.pvcSelector !== undefined) {
    issues.push({ path: '--pvcs', message: 'cannot be combined with --pvc-selector' });
  }
  const pvcNames = listOf(flags.pvcs);
  const selection =
    flags.pvcSelector !== undefined
      ? { labelSelector: flags.pvcSelector }
      : flags.pvcs !== undefined
        ? pvcNames.length === 1 && pvcNames[0] === 'all'
          ? { all: true }
          : { names: pvcNames }
        : undefined;
  if (selection) {
    b.pvcs = selection;
    if (Array.isArray(b.namespaces)) {
      b.namespaces = (b.namespaces as unknown[]).map((ns) => {
        if (ns === null || typeof ns !== 'object') return ns;
        const { pvcs: _dropped, ...rest } = ns as Record<string, unknown>;
        return rest;
      });
    }
  }
  for (const [flag, key, value] of [
    ['--storage-class-mapping', 'storageClassMapping', flags.storageClassMapping],
    ['--access-mode-mapping', 'accessModeMapping', flags.accessModeMapping],
  ] as const) {
    if (value === undefined) continue;
    const mapping = sub(key);
    for (const pair of listOf(value)) {
      const m = /^([^=]+)=([^=]+)$/.exec(pair);
      if (!m) issues.push({ path: flag, message: `${showValue(pair)} must be "source=destination"` });
      else mapping[m[1]!.trim()] = m[2]!.trim();
    }
  }
  set(b, 'defaultStorageClass', flags.defaultStorageClass);
  if (flags.endpoint !== undefined || flags.hostname !== undefined || flags.ingressClassName !== undefined || flags.nodePort !== undefined) {
    const e = sub('endpoint');
    set(e, 'type', flags.endpoint);
    set(e, 'hostname', flags.hostname);
    set(e, 'ingressClassName', flags.ingressClassName);
    set(e, 'nodePort', numberOf(flags.nodePort));
  }
  set(b, 'transfer', flags.transfer);
  set(b, 'transport', flags.transport);
  set(b, 'allowInsecure', flags.allowInsecure);
  if (flags.security !== undefined || flags.chown !== undefined) {
    const s = sub('security');
    set(s, 'mode', flags.security);
    set(s, 'chown', flags.chown);
  }
  if (flags.verify !== undefined || flags.bandwidthLimitKiBps !== undefined || flags.excludes !== undefined) {
    const r = sub('rsync');
    set(r, 'verify', flags.verify);
    set(r, 'bandwidthLimitKiBps', numberOf(flags.bandwidthLimitKiBps));
    if (flags.excludes !== undefined) r.excludes = listOf(flags.excludes);
  }
  set(b, 'concurrency', numberOf(flags.concurrency));
  set(b, 'stagePasses', numberOf(flags.stagePasses));
  set(b, 'cutover', flags.cutover);
  set(b, 'stageIntervalSeconds', numberOf(flags.stageIntervalSeconds));
  set(b, 'quiesce', flags.quiesce);
  set(b, 'keepSourceQuiesced', flags.keepSourceQuiesced);
  set(b, 'deleteDestinationPVCsOnRollback', flags.deleteDestinationPVCsOnRollback);
  set(b, 'transferImage', flags.transferImage);

  const result = validatePlan(b);
  for (const i of result.issues) {
    const path = formatPath(i.path);
    const flag = FLAG_OF[i.path.slice(0, 2).join('.')] ?? FLAG_OF[String(i.path[0])];
    issues.push({ path, message: flag ? `${i.message} (flag ${flag})` : i.message });
  }
  if (issues.length > 0 || !result.plan) throw new PlanValidationError('command-line flags', issues);
  return result.plan;
}
