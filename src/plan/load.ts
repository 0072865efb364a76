/**
 * Reading migration plans: from a YAML/JSON file or an already-parsed object (CLI flags: ./flags.ts).
 * Every entry point validates against ./schema.ts and reports ALL problems at once through one
 * PlanValidationError whose message lists every invalid field as `path: message` lines.
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import * as nodePath from 'node:path';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { z } from 'zod';
import { ProblemListError, type Problem } from '../core/errors';
import { absolutePath } from '../k8s/kubeconfig';
import { didYouMean, knownKeysAt } from './suggest';
import {
  migrationPlanSchema,
  showValue,
  type ClusterRef,
  type MigrationPlan,
  type RegistryConfig,
} from './schema';

/**
 * Thrown by every plan entry point when the plan cannot be used. `problems` holds every problem found
 * (path: `namespaces[1].destination`, `storageClassMapping["fast"]`, `(plan)` for the whole document,
 * `(file)` for reading/syntax problems, or a flag name such as `--namespaces`); the message is a header
 * naming the plan's origin followed by one `  path: message` line per problem.
 */
export class PlanValidationError extends ProblemListError {
  /**
   * @param origin where the plan came from (file path, "command-line flags", "plan object")
   * @param problems every problem found (at least one)
   */
  constructor(
    readonly origin: string,
    problems: Problem[],
  ) {
    super(`migration plan (${origin})`, problems);
    this.name = 'PlanValidationError';
  }
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
      if (iss.input === null && strings.includes('null')) {
        // `transport: null` unquoted is YAML's null (no value), not the string "null".
        return `is empty (YAML reads an unquoted null as no value): write "null" in quotes for the ${showValue('null')} choice, or one of ${values.filter((v) => v !== 'null').map((v) => showValue(v)).join(', ')}`;
      }
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

export function validatePlan(obj: unknown): { plan?: MigrationPlan; issues: { path: PropertyKey[]; message: string }[] } {
  const r = migrationPlanSchema.safeParse(expandCutoverShorthand(obj), { error: errorMap, reportInput: true });
  if (r.success) return { plan: r.data, issues: [] };
  return { issues: toPlanIssues(r.error.issues) };
}

/**
 * The cutover-on-evidence shorthand `cutover: { when: projected-downtime-below, seconds: N,
 * maxStagePasses: M }` as the plan's fields: `cutover: manual` and `cutoverWhen:
 * { projectedDowntimeBelowSeconds: N, maxStagePasses: M }`. Any other `cutover` is left to the schema
 * (an object of another shape: its error names the accepted forms).
 */
function expandCutoverShorthand(obj: unknown): unknown {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return obj;
  const plan = obj as Record<string, unknown>;
  const c = plan.cutover;
  if (!c || typeof c !== 'object' || Array.isArray(c)) return obj;
  const { when, seconds, maxStagePasses, ...rest } = c as Record<string, unknown>;
  if (when !== 'projected-downtime-below' || Object.keys(rest).length > 0 || plan.cutoverWhen !== undefined) return obj;
  return { ...plan, cutover: 'manual', cutoverWhen: { projectedDowntimeBelowSeconds: seconds, ...(maxStagePasses !== undefined ? { maxStagePasses } : {}) } };
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
  const { plan, issues } = validatePlan(obj);
  if (!plan) throw new PlanValidationError(origin, issues.map((i) => ({ path: formatPath(i.path), message: i.message })));
  return plan;
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

/** Largest plan file loadPlanFile reads, in bytes (1 MiB): real plans are a few KiB. */
export const MAX_PLAN_FILE_BYTES = 1024 * 1024;
/** yaml's maxAliasCount for plans: bounds how far aliases may expand (a "billion laughs" document). */
export const MAX_YAML_ALIAS_COUNT = 100;

/**
 * Reads, validates and defaults a plan file. The format is decided by content: a document starting
 * with `{` is JSON, anything else YAML 1.2 (one document; duplicate keys are errors). Relative file
 * paths in the plan (kubeconfig, registry authFile/caFile) are made absolute against the plan file's
 * directory, and `~/` is expanded.
 * @param file path of the plan file
 * The file may be at most MAX_PLAN_FILE_BYTES (1 MiB); JSON is parsed once (the YAML parser only
 * runs to locate an error's line); YAML aliases may expand at most MAX_YAML_ALIAS_COUNT-fold.
 * @throws PlanValidationError when the file cannot be read, is larger than 1 MiB, or cannot be parsed
 *   (path `(file)`; an alias bomb included), or the plan is invalid (one issue per invalid field,
 *   with its line number)
 */
export function loadPlanFile(file: string): MigrationPlan {
  let text: string;
  try {
    // Checked before reading: a plan is a few KiB, and a huge file would be read and parsed whole.
    const size = statSync(file).size;
    if (size > MAX_PLAN_FILE_BYTES) {
      throw new PlanValidationError(file, [
        {
          path: '(file)',
          message: `the plan file is ${size} bytes (${(size / 1048576).toFixed(1)} MiB); a plan may be at most ${MAX_PLAN_FILE_BYTES} bytes (1 MiB): list namespaces and PVCs by selector instead of one by one`,
        },
      ]);
    }
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof PlanValidationError) throw e;
    throw new PlanValidationError(file, [{ path: '(file)', message: `cannot read the plan file: ${(e as Error).message}` }]);
  }
  const counter = new LineCounter();
  /** The YAML view of the text (JSON is YAML), for line numbers; parsed at most once. */
  let parsed: Document[] | undefined;
  const yamlDocs = (): Document[] => {
    if (!parsed) {
      const docs = parseAllDocuments(text, { lineCounter: counter, prettyErrors: true, uniqueKeys: true });
      parsed = Array.isArray(docs) ? docs : [];
    }
    return parsed;
  };
  const singleDoc = () => (yamlDocs().length === 1 ? yamlDocs()[0] : undefined);
  let obj: unknown;
  if (text.trimStart().startsWith('{')) {
    try {
      obj = JSON.parse(text);
    } catch (e) {
      const msg = (e as Error).message;
      // Node reports a position for some errors only; the YAML parser (JSON is YAML) locates the rest.
      const pos = /position (\d+)/.exec(msg);
      const line = pos ? lineAt(text, Number(pos[1])) : singleDoc()?.errors[0]?.linePos?.[0].line;
      throw new PlanValidationError(file, [{ path: '(file)', message: `invalid JSON: ${msg}`, ...(line !== undefined ? { line } : {}) }]);
    }
  } else {
    const list = yamlDocs();
    if (list.length === 0 || text.trim() === '') {
      throw new PlanValidationError(file, [{ path: '(file)', message: 'the plan file is empty' }]);
    }
    if (list.length > 1) {
      throw new PlanValidationError(file, [{ path: '(file)', message: `holds ${list.length} YAML documents; a plan is one document` }]);
    }
    const doc = list[0]!;
    if (doc.errors.length > 0) {
      throw new PlanValidationError(
        file,
        doc.errors.map((err) => ({
          path: '(file)',
          message: `invalid YAML: ${err.message.split('\n')[0]}`,
          ...(err.linePos ? { line: err.linePos[0].line } : {}),
        })),
      );
    }
    try {
      obj = doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
    } catch (e) {
      // yaml throws a ReferenceError ("Excessive alias count indicates a resource exhaustion attack")
      // when aliases would expand beyond maxAliasCount: a "billion laughs" document.
      throw new PlanValidationError(file, [
        {
          path: '(file)',
          message: `invalid YAML: its aliases (*name) expand to too many nodes (${(e as Error).message}); a plan needs few aliases: write the repeated values out`,
        },
      ]);
    }
  }
  const { plan, issues } = validatePlan(obj);
  if (!plan) {
    const doc = singleDoc();
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

