/**
 * Parallel rsync streams within one volume: the design measured by `bench/dataplane.ts --scenarios
 * streams` (issue 9 §2). Pure functions, no I/O, so that they can move into src/ if the feature is
 * built:
 *
 * 1. list the top-level entries of the source volume with their sizes (`du -s -B1 --apparent-size`);
 * 2. `partitionEntries` deals them into N groups balanced by bytes;
 * 3. `rootPassArgs`: one cheap rsync over the root without recursion deletes, once, the top-level
 *    entries that vanished from the source (no stream owns them any more);
 * 4. stream i runs Ferry's usual client flags plus `streamFilterArgs(group i)`: its own entries
 *    included, every other top-level entry excluded. Its --delete works inside its entries only:
 *    rsync protects excluded receiver files from deletion unless --delete-excluded is given.
 *
 * Fidelity costs: a hard link between files of two groups is not kept (--hard-links works within one
 * rsync process; the receiver gets two copies), and one top-level entry cannot be split, so a volume
 * whose bytes sit in one directory gains nothing from N > 1.
 */

/** A top-level entry of the source volume and its size in bytes (apparent size of its whole tree). */
export interface TopEntry {
  name: string;
  bytes: number;
}

/** One stream's share: its entries and their total bytes. */
export interface StreamGroup {
  entries: string[];
  bytes: number;
}

/**
 * Deals `entries` into at most `n` groups balanced by bytes: greedy, largest entry first, each into
 * the group with the fewest bytes so far (ties: the lower index; equal sizes: by name, so the result
 * does not depend on listing order). Empty groups are dropped, so fewer than `n` groups come back
 * when there are fewer entries than streams. Within a group the entries keep that dealing order.
 *
 * @throws RangeError when `n` is not a whole number ≥ 1.
 */
export function partitionEntries(entries: readonly TopEntry[], n: number): StreamGroup[] {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`streams must be a whole number ≥ 1, got ${n}`);
  const groups: StreamGroup[] = Array.from({ length: n }, () => ({ entries: [], bytes: 0 }));
  const sorted = [...entries].sort((a, b) => b.bytes - a.bytes || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of sorted) {
    let best = groups[0]!;
    for (const g of groups) if (g.bytes < best.bytes) best = g;
    best.entries.push(e.name);
    best.bytes += e.bytes;
  }
  return groups.filter((g) => g.entries.length > 0);
}

/**
 * An rsync filter pattern that matches exactly the top-level name `name` (anchored with a leading
 * '/'). rsync(1) "PATTERN MATCHING RULES": a backslash escapes a wildcard only when the pattern holds
 * one of `*?[`, so such names get `\`, `*`, `?` and `[` escaped and other names stay literal.
 *
 * @throws Error on a name rsync's filter rules cannot carry (empty, '/', newline, CR, NUL).
 */
export function anchoredPattern(name: string): string {
  if (name === '' || /[/\n\r\0]/.test(name)) throw new Error(`cannot filter on top-level name ${JSON.stringify(name)}`);
  return `/${/[*?[]/.test(name) ? name.replace(/[\\*?[]/g, (c) => `\\${c}`) : name}`;
}

/** The filter arguments of one stream: include each of its top-level entries, exclude every other. */
export function streamFilterArgs(entries: readonly string[]): string[] {
  return [...entries.map((e) => `--filter=+ ${anchoredPattern(e)}`), '--filter=- /*'];
}

/**
 * The root pass's flags from Ferry's client flags `flags`: `--recursive` (and `--no-inc-recursive`)
 * replaced by `--dirs`, plus `--existing --ignore-existing` so that it creates and updates nothing
 * (rsync(1) --existing: combined with --ignore-existing only deletions happen). With the --delete-*
 * flag of a final sync it deletes the top-level entries (whole trees) that the source no longer has;
 * entries that exist on both sides are left to their stream.
 */
export function rootPassArgs(flags: readonly string[]): string[] {
  return [...flags.filter((f) => f !== '--recursive' && f !== '--no-inc-recursive'), '--dirs', '--existing', '--ignore-existing'];
}
