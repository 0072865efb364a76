/**
 * "Did you mean" for plan problems: edit distance between words, and the keys the plan schema knows
 * at a path (read from the zod schema itself, so a new field needs no list here).
 */
import type { z } from 'zod';
import { migrationPlanSchema } from './schema';

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
export function knownKeysAt(path: readonly PropertyKey[]): string[] {
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
