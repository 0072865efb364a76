/**
 * Reading migration plans: from a YAML/JSON file, from an already-parsed object, or from CLI flags.
 * Every entry point validates against ./schema.ts and reports ALL problems at once through one
 * PlanValidationError whose message lists every invalid field as `path: message` lines.
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import * as nodePath from 'node:path';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { z } from 'zod';
import {
  migrationPlanSchema,
  showValue,
  type ClusterRef,
  type MigrationPlan,
  type MigrationPlanInput,
  type RegistryConfig,
} from './schema';

/** One problem of a plan. */
export interface PlanIssue {
  /** Where: `namespaces[1].destination`, `storageClassMapping["fast"]`, `(plan)` for the whole document,
   * `(file)` for reading/syntax problems, or a flag name (`--namespaces`) for flag syntax problems. */
  path: string;
  /** What is wrong, e.g. `must be a DNS label (lowercase letters, digits, '-'), got "Bad_Name"`. */
  message: string;
  /** 1-based line in the plan file, when known. */
  line?: number;
}

/**
 * Thrown by every plan entry point when the plan cannot be used. `issues` holds every problem found;
 * the message is a header naming the plan's origin followed by one `  path: message` line per issue.
 */
export class PlanValidationError extends Error {
  override readonly name = 'PlanValidationError';
  /**
   * @param origin where the plan came from (file path, "command-line flags", "plan object")
   * @param issues every problem found (at least one)
   */
  constructor(
    readonly origin: string,
    readonly issues: PlanIssue[],
  ) {
    super(
      `invalid migration plan (${origin}): ${issues.length} problem${issues.length === 1 ? '' : 's'}\n` +
        issues.map((i) => `  ${i.path}: ${i.message}${i.line !== undefined ? ` (line ${i.line})` : ''}`).join('\n'),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// "Did you mean" support.

/** Levenshtein edit distance between two strings (insertions, deletions, substitutions cost 1). */
export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The candidate closest to `word` when it is close enough to be a likely typo: equal ignoring case, at
 * most max(1, ⌊length/3⌋) edits away, or (for words of 4+ characters) a prefix of the candidate or the
 * candidate a prefix of it. Returns undefined when nothing is close.
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === word.toLowerCase() ? 0 : levenshtein(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.floor(word.length / 3))) return best;
  // A shortened or over-long key: "bandwidthLimit" for "bandwidthLimitKiBps".
  const lower = word.toLowerCase();
  return word.length >= 4 ? candidates.find((c) => c.toLowerCase().startsWith(lower) || (c.length >= 4 && lower.startsWith(c.toLowerCase()))) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Schema walking (to list the keys an object accepts) and issue formatting.

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  options?: z.ZodType[];
  keyType?: z.ZodType;
  valueType?: z.ZodType;
  entries?: Record<string, string>;
}
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The concrete schemas (objects, arrays, records, enums...) a possibly wrapped schema stands for. */
function concrete(s: z.ZodType, depth = 0): z.ZodType[] {
  if (depth > 20) return [];
  const d = defOf(s);
  if (d.innerType) return concrete(d.innerType, depth + 1);
  if (d.type === 'pipe' && d.in && d.out) {
    return defOf(d.in).type === 'transform' ? concrete(d.out, depth + 1) : concrete(d.in, depth + 1);
  }
  if (d.type === 'union' && d.options) return d.options.flatMap((o) => concrete(o, depth + 1));
  return [s];
}

/** The schemas that validate the value at `path` of the plan. */
function schemasAt(path: readonly PropertyKey[]): z.ZodType[] {
  let current: z.ZodType[] = concrete(migrationPlanSchema);
  for (const seg of path) {
    current = current.flatMap((s) => {
      const d = defOf(s);
      if (d.type === 'object' && d.shape && typeof seg === 'string' && seg in d.shape) return concrete(d.shape[seg]!);
      if (d.type === 'array' && d.element && typeof seg === 'number') return concrete(d.element);
      if (d.type === 'record' && d.valueType) return concrete(d.valueType);
      return [];
    });
  }
  return current;
}

/** Keys accepted by the object (or enum-keyed record) at `path`. */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
  const keys = new Set<string>();
  for (const s of schemasAt(path)) {
    const d = defOf(s);
    if (d.type === 'object' && d.shape) Object.keys(d.shape).forEach((k) => keys.add(k));
    if (d.type === 'record' && d.keyType) {
      for (const k of concrete(d.keyType)) Object.keys(defOf(k).entries ?? {}).forEach((e) => keys.add(e));
    }
  }
  return [...keys];
}

/** Renders an issue path: `namespaces[1].destination`, `storageClassMapping["gp2-csi"]`, `(plan)` for the root. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][\w$]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out === '' ? '(plan)' : out;
}

const TYPE_NAMES: Record<string, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping (object)',
  array: 'a list',
  record: 'a mapping (object)',
};

function describeInput(v: unknown): string {
  if (typeof v === 'string') return `the string ${showValue(v)}`;
  if (v === null) return 'an empty value (null)';
  return showValue(v);
}

type RawIssue = z.core.$ZodRawIssue;

/** Per-parse zod error map: friendly messages for the built-in checks (custom checks carry their own). */
function errorMap(iss: RawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'is required';
      return `expected ${TYPE_NAMES[iss.expected] ?? iss.expected}, got ${describeInput(iss.input)}`;
    case 'invalid_value': {
      const values = iss.values as readonly unknown[];
      const strings = values.filter((v): v is string => typeof v === 'string');
      const hint = typeof iss.input === 'string' ? didYouMean(iss.input, strings) : undefined;
      const expected = values.length === 1 ? showValue(values[0]) : `one of ${values.map((v) => showValue(v)).join(', ')}`;
      return `must be ${expected}, got ${describeInput(iss.input)}${hint ? ` (did you mean ${showValue(hint)}?)` : ''}`;
    }
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'array') return `must have at least ${min} item${min === 1 ? '' : 's'}`;
      if (iss.origin === 'string') return min === 1 ? 'must not be empty' : `must have at least ${min} characters`;
      return `must be at least ${min}, got ${showValue(iss.input)}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'array') return `must have at most ${max} items`;
      if (iss.origin === 'string') return `must have at most ${max} characters`;
      return `must be at most ${max}, got ${showValue(iss.input)}`;
    }
    case 'invalid_format':
      return `has an invalid format, got ${showValue(iss.input)}`;
    case 'invalid_union':
      return `has an unsupported form, got ${describeInput(iss.input)}`;
    case 'unrecognized_keys':
      return 'unknown key';
    default:
      return undefined;
  }
}

/** Turns zod issues into PlanIssues: one per unknown key (with a hint), nested record-key issues inlined. */
function toPlanIssues(issues: readonly z.core.$ZodIssue[]): { path: PropertyKey[]; message: string }[] {
  const out: { path: PropertyKey[]; message: string }[] = [];
  for (const iss of issues) {
    if (iss.code === 'unrecognized_keys') {
      const known = knownKeysAt(iss.path);
      for (const key of iss.keys) {
        const hint = didYouMean(key, known);
        out.push({
          path: [...iss.path, key],
          message: hint
            ? `unknown key (did you mean ${showValue(hint)}?)`
            : `unknown key${known.length > 0 ? ` (known keys: ${known.join(', ')})` : ''}`,
        });
      }
    } else if (iss.code === 'invalid_key') {
      out.push({ path: [...iss.path], message: `invalid key: ${iss.issues.map((i) => i.message).join('; ')}` });
    } else if (iss.code === 'invalid_union' && iss.errors.length > 0) {
      const expected = iss.errors.flatMap((branch) =>
        branch.filter((b) => b.code === 'invalid_type' && b.path.length === 0).map((b) => (b.code === 'invalid_type' ? b.expected : '')),
      );
      if (expected.length === iss.errors.length) {
        const got = (iss as { input?: unknown }).input;
        out.push({
          path: [...iss.path],
          message: `expected ${expected.map((e) => TYPE_NAMES[e] ?? e).join(' or ')}${got !== undefined ? `, got ${describeInput(got)}` : ''}`,
        });
      } else out.push({ path: [...iss.path], message: iss.message });
    } else {
      out.push({ path: [...iss.path], message: iss.message });
    }
  }
  return out;
}

function validate(obj: unknown): { plan?: MigrationPlan; issues: { path: PropertyKey[]; message: string }[] } {
  const r = migrationPlanSchema.safeParse(obj, { error: errorMap, reportInput: true });
  if (r.success) return { plan: r.data, issues: [] };
  return { issues: toPlanIssues(r.error.issues) };
}

// ---------------------------------------------------------------------------------------------
// Entry points.

/**
 * Validates an already-parsed plan object (e.g. from JSON or a workflow input) and fills in defaults.
 * Paths in the plan are kept as they are.
 * @param obj the plan as a plain object (MigrationPlanInput shape; a parsed MigrationPlan is valid too)
 * @param origin how to name the plan in the error message (default "plan object")
 * @throws PlanValidationError listing every problem
 */
export function parsePlan(obj: unknown, origin = 'plan object'): MigrationPlan {
  const { plan, issues } = validate(obj);
  if (!plan) throw new PlanValidationError(origin, issues.map((i) => ({ path: formatPath(i.path), message: i.message })));
  return plan;
}

/** Expands a leading `~/` to `home` and makes a relative path absolute against `baseDir`. */
function absolutePath(p: string, baseDir: string, home: string): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return nodePath.join(home, p.slice(2));
  return nodePath.resolve(baseDir, p);
}

/**
 * Returns a copy of `plan` whose file paths (kubeconfigs, registry authFile/caFile) are absolute:
 * `~/` is expanded to `home` and relative paths are resolved against `baseDir`.
 * @param baseDir directory relative paths are relative to (the plan file's directory, or the cwd)
 * @param home the home directory used for `~` (default: the current user's)
 */
export function resolvePlanPaths(plan: MigrationPlan, baseDir: string, home: string = homedir()): MigrationPlan {
  const cluster = (c: ClusterRef): ClusterRef => (c.kubeconfig === undefined ? { ...c } : { ...c, kubeconfig: absolutePath(c.kubeconfig, baseDir, home) });
  const registry = (r: RegistryConfig | undefined): RegistryConfig | undefined =>
    r && {
      ...r,
      ...(r.authFile !== undefined ? { authFile: absolutePath(r.authFile, baseDir, home) } : {}),
      ...(r.caFile !== undefined ? { caFile: absolutePath(r.caFile, baseDir, home) } : {}),
    };
  const images = { ...plan.images };
  const src = registry(plan.images.sourceRegistry);
  const dst = registry(plan.images.destinationRegistry);
  if (src) images.sourceRegistry = src;
  if (dst) images.destinationRegistry = dst;
  return { ...plan, source: cluster(plan.source), destination: cluster(plan.destination), images };
}

/**
 * The kubeconfig files to load for a cluster, in kubectl's order: the plan's `kubeconfig` when set,
 * else every entry of $KUBECONFIG (path-delimiter separated, to be merged like kubectl does), else
 * `~/.kube/config`. Paths are returned absolute (`~/` expanded, relative ones against the cwd).
 * Does not check that the files exist.
 */
export function resolveKubeconfigPaths(ref: ClusterRef, env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string[] {
  const cwd = process.cwd();
  if (ref.kubeconfig !== undefined) return [absolutePath(ref.kubeconfig, cwd, home)];
  const fromEnv = (env.KUBECONFIG ?? '').split(nodePath.delimiter).filter((p) => p !== '');
  if (fromEnv.length > 0) return fromEnv.map((p) => absolutePath(p, cwd, home));
  return [nodePath.join(home, '.kube', 'config')];
}

/** Maps a character offset of `text` to a 1-based line number. */
function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** The 1-based line of the node at `path` in `doc`, or of its nearest existing ancestor. */
function lineOf(doc: Document | undefined, counter: LineCounter | undefined, path: readonly PropertyKey[]): number | undefined {
  if (!doc || !counter) return undefined;
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
    if (node && Array.isArray(node.range)) return counter.linePos(node.range[0]).line;
  }
  return undefined;
}

/** Largest plan file accepted, in bytes (1 MiB): the plan is part of the migration workflow's input. */
export const MAX_PLAN_BYTES = 1024 * 1024;

class PlanTooLargeError extends Error {
  constructor(readonly size: number) {
    super(`plan of ${size} bytes`);
  }
}

/**
 * Reads, validates and defaults a plan file. The format is decided by content: a document starting
 * with `{` is JSON, anything else YAML 1.2 (one document; duplicate keys are errors). Relative file
 * paths in the plan (kubeconfig, registry authFile/caFile) are made absolute against the plan file's
 * directory, and `~/` is expanded.
 * @param file path of the plan file
 * @throws PlanValidationError when the file cannot be read or parsed, or is larger than MAX_PLAN_BYTES
 *   (path `(file)`), or the plan is
 *   invalid (one issue per invalid field, with its line number)
 */
export function loadPlanFile(file: string): MigrationPlan {
  let text: string;
  try {
    const size = statSync(file).size;
    if (size > MAX_PLAN_BYTES) throw new PlanTooLargeError(size);
    text = readFileSync(file, 'utf8');
    if (Buffer.byteLength(text) > MAX_PLAN_BYTES) throw new PlanTooLargeError(Buffer.byteLength(text));
  } catch (e) {
    if (e instanceof PlanTooLargeError) {
      throw new PlanValidationError(file, [
        {
          path: '(file)',
          message: `the plan file has ${e.size} bytes; a plan may have at most ${MAX_PLAN_BYTES} bytes (1 MiB): it is copied into the migration's workflow history. Select PVCs with labelSelector or all: true instead of long lists, or split the migration`,
        },
      ]);
    }
    throw new PlanValidationError(file, [{ path: '(file)', message: `cannot read the plan file: ${(e as Error).message}` }]);
  }
  const counter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: counter, prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [];
  const doc = list.length === 1 ? list[0] : undefined;
  let obj: unknown;
  if (text.trimStart().startsWith('{')) {
    try {
      obj = JSON.parse(text);
    } catch (e) {
      const msg = (e as Error).message;
      // Node reports a position for some errors only; the YAML parser (JSON is YAML) locates the rest.
      const pos = /position (\d+)/.exec(msg);
      const line = pos ? lineAt(text, Number(pos[1])) : doc?.errors[0]?.linePos?.[0].line;
      throw new PlanValidationError(file, [{ path: '(file)', message: `invalid JSON: ${msg}`, ...(line !== undefined ? { line } : {}) }]);
    }
  } else {
    if (list.length === 0 || text.trim() === '') {
      throw new PlanValidationError(file, [{ path: '(file)', message: 'the plan file is empty' }]);
    }
    if (list.length > 1) {
      throw new PlanValidationError(file, [{ path: '(file)', message: `holds ${list.length} YAML documents; a plan is one document` }]);
    }
    if (doc!.errors.length > 0) {
      throw new PlanValidationError(
        file,
        doc!.errors.map((err) => ({
          path: '(file)',
          message: `invalid YAML: ${err.message.split('\n')[0]}`,
          ...(err.linePos ? { line: err.linePos[0].line } : {}),
        })),
      );
    }
    obj = doc!.toJS({ maxAliasCount: 100 });
  }
  const { plan, issues } = validate(obj);
  if (!plan) {
    const yamlDoc = doc && doc.errors.length === 0 ? doc : undefined;
    throw new PlanValidationError(
      file,
      issues.map((i) => {
        const line = lineOf(yamlDoc, counter, i.path);
        return { path: formatPath(i.path), message: i.message, ...(line !== undefined ? { line } : {}) };
      }),
    );
  }
  return resolvePlanPaths(plan, nodePath.dirname(nodePath.resolve(file)));
}

// ---------------------------------------------------------------------------------------------
// Flags.

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
  const issues: PlanIssue[] = [];
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

  const result = validate(b);
  for (const i of result.issues) {
    const path = formatPath(i.path);
    const flag = FLAG_OF[i.path.slice(0, 2).join('.')] ?? FLAG_OF[String(i.path[0])];
    issues.push({ path, message: flag ? `${i.message} (flag ${flag})` : i.message });
  }
  if (issues.length > 0 || !result.plan) throw new PlanValidationError('command-line flags', issues);
  return result.plan;
}
