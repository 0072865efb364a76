/**
 * Post-copy verification: the manifest of the tree in a PVC, computed in a pod on each side and
 * compared entry by entry (plan `verify: manifest`, `ferry verify ID`). Pure: the pod, the script,
 * the parser and the comparison; migration/verify.ts runs them.
 *
 * An entry: path, type (find's %y: f d l p s b c), permission bits, uid, gid, size (not for
 * directories, whose size depends on the file system's history), link target, sparse (allocated
 * bytes < size; a difference only when a sparse source file is dense at the destination: rsync
 * --sparse makes holes of a dense file's zero runs), mtime (whole seconds, rsync -t keeps them; not for directories, which the final
 * sync's deletions may touch, nor symlinks), hard-link group (the first path of the inode's links, in
 * byte order), content sha256 (regular files, when asked). lost+found and Ferry's partial directory
 * are skipped. Not yet: xattrs and ACLs (the transfer image has no getfattr/getfacl; the entry's
 * fields are `-`).
 *
 * Transport: the script writes the manifest into the pod and prints one summary line (entries and
 * the manifest's sha256); identical digests mean identical trees, and only then is nothing more read.
 * Otherwise the manifest is read with `cat` through exec (not the log: kubelets rotate container
 * logs at 10 MiB by default). Records are NUL-delimited so that any file name survives.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { buildVolumeReaderPod, type VolumeReaderPodOptions } from './pods/reader';
import { BLOCK_DEVICE_FILE } from './types';

/** Where the manifest is written inside the manifest pod. */
export const MANIFEST_FILE = '/tmp/ferry-manifest';
/** Where the PVC is mounted (read-only) in the manifest pod. */
export const MANIFEST_MOUNT = '/data';
/** The summary line's prefix. */
export const MANIFEST_SUMMARY_PREFIX = 'ferry-manifest:';

/** What a manifest records besides the tree's shape. */
export interface ManifestOptions {
  /** Content sha256 of every regular file (reads every byte). */
  hashes: boolean;
}

/**
 * The manifest pod's script. Output file: one record per entry, `path NUL link NUL fields \n` with
 * fields `type mode uid gid size allocated mtime inode xattrs acl` (tab-separated); then, with hashes,
 * `hash NUL path NUL` records after a line `--hashes--`. Prints `ferry-manifest: entries=N sha256=H`
 * and then waits (up to 1 h) for Ferry to read the file and delete the pod.
 */
export function manifestScript(o: ManifestOptions, where: { dir?: string; file?: string; wait?: boolean } = {}): string {
  const prune = "\\( -path ./lost+found -o -name '.ferry-partial*' \\) -prune -o";
  return [
    'set -euo pipefail',
    `cd ${where.dir ?? MANIFEST_MOUNT}`,
    `out=${where.file ?? MANIFEST_FILE}`,
    // the listing Ferry parses: path NUL link NUL fields NL (inode last: it names hard-link groups)
    `find . -mindepth 1 ${prune} -printf '%p\\0%l\\0%y\\t%m\\t%U\\t%G\\t%s\\t%b\\t%T@\\t%i\\t-\\t-\\n' > "$out"`,
    ...(o.hashes ? [`printf -- '--hashes--\\n' >> "$out"`, `find . -mindepth 1 ${prune} -type f -print0 | xargs -0 -r sha256sum -z | sed -z 's/  /\\x00/' >> "$out"`] : []),
    // the digest: one NUL-terminated record per entry, sorted, without what differs between two
    // volumes holding the same tree (inode numbers; a directory's size, blocks and mtime; a symlink's
    // mode and mtime); blocks stay
    // (sparseness), so trees on different file systems may differ here and are then compared in full
    `{ find . -mindepth 1 ${prune} -type d -printf 'd\\t%m\\t%U\\t%G\\t%p\\0'; find . -mindepth 1 ${prune} -type l -printf 'l\\t%U\\t%G\\t%n\\t%l\\t%p\\0';`,
    `  find . -mindepth 1 ${prune} ! -type d ! -type l -printf '%y\\t%m\\t%U\\t%G\\t%s\\t%b\\t%Ts\\t%n\\t%p\\0';`,
    ...(o.hashes ? [`  find . -mindepth 1 ${prune} -type f -print0 | xargs -0 -r sha256sum -z;`] : []),
    `} | LC_ALL=C sort -z > "$out.canonical"`,
    `n=$(find . -mindepth 1 ${prune} -printf x | wc -c)`,
    `d=$(sha256sum < "$out.canonical" | cut -c1-64)`,
    `echo "${MANIFEST_SUMMARY_PREFIX} entries=$n sha256=$d"`,
    ...(where.wait === false ? [] : ['sleep 3600 & wait']),
  ].join('\n');
}

/** Options of `buildManifestPod`: a reader pod's (pods/reader.ts) without what the manifest sets. */
export type ManifestPodOptions = ManifestOptions & Omit<VolumeReaderPodOptions, 'container' | 'script' | 'mountPath' | 'deadlineSeconds'>;

/** Where a block PVC's device node is in the manifest pod. */
export const MANIFEST_DEVICE = `${MANIFEST_MOUNT}/${BLOCK_DEVICE_FILE}`;

/** The manifest pod: the transfer image, the PVC read-only, restricted unless `root` (pods/reader.ts);
 * a `block` PVC gets blockManifestScript over its device node. Pure. */
export function buildManifestPod(o: ManifestPodOptions): V1Pod {
  const script = o.block ? blockManifestScript(MANIFEST_DEVICE) : manifestScript(o);
  return buildVolumeReaderPod({ ...o, container: 'manifest', script, mountPath: MANIFEST_MOUNT, deadlineSeconds: 3 * 3600 });
}

/** Parses the summary line of a manifest pod's log; undefined before it is printed. */
export function parseManifestSummary(log: string): { entries: number; sha256: string } | undefined {
  const m = new RegExp(`${MANIFEST_SUMMARY_PREFIX} entries=(\\d+) sha256=([0-9a-f]{64})`).exec(log);
  return m ? { entries: Number(m[1]), sha256: m[2]! } : undefined;
}

/** One entry of a manifest. */
export interface ManifestEntry {
  path: string;
  type: string;
  mode: string;
  uid: string;
  gid: string;
  /** Bytes; undefined for directories. */
  size?: number;
  link: string;
  sparse: boolean;
  /** Whole seconds; undefined for directories and symlinks. */
  mtime?: number;
  /** First path of the entry's hard links (byte order), undefined for a single link. */
  linkGroup?: string;
  sha256?: string;
  xattrs: string;
  acl: string;
}

/** Pure: the entries of a manifest file (see manifestScript), sorted by path (byte order). */
export function parseManifest(text: string): ManifestEntry[] {
  const [list, hashes] = splitOnce(text, '--hashes--\n');
  const entries: (ManifestEntry & { inode: string })[] = [];
  let i = 0;
  while (i < list.length) {
    const a = list.indexOf('\0', i);
    const b = a < 0 ? -1 : list.indexOf('\0', a + 1);
    const c = b < 0 ? -1 : list.indexOf('\n', b + 1);
    if (c < 0) break;
    const path = list.slice(i, a).replace(/^\.\//, '');
    const link = list.slice(a + 1, b);
    const [type = '?', mode = '', uid = '', gid = '', size = '0', blocks = '0', mtime = '0', inode = '', xattrs = '-', acl = '-'] = list.slice(b + 1, c).split('\t');
    const bytes = Number(size);
    entries.push({
      path,
      type,
      mode,
      uid,
      gid,
      ...(type !== 'd' ? { size: bytes } : {}),
      link,
      sparse: type === 'f' && Number(blocks) * 512 < bytes,
      ...(type !== 'd' && type !== 'l' ? { mtime: Math.floor(Number(mtime)) } : {}),
      xattrs,
      acl,
      inode,
    });
    i = c + 1;
  }
  const sums = new Map<string, string>();
  if (hashes) {
    const parts = hashes.split('\0');
    for (let k = 0; k + 1 < parts.length; k += 2) sums.set(parts[k + 1]!.replace(/^\.\//, ''), parts[k]!);
  }
  entries.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  const firstOfInode = new Map<string, string>();
  const linksOfInode = new Map<string, number>();
  for (const e of entries) {
    if (e.type === 'd') continue;
    if (!firstOfInode.has(e.inode)) firstOfInode.set(e.inode, e.path);
    linksOfInode.set(e.inode, (linksOfInode.get(e.inode) ?? 0) + 1);
  }
  return entries.map(({ inode, ...e }) => ({
    ...e,
    ...(e.type !== 'd' && (linksOfInode.get(inode) ?? 0) > 1 ? { linkGroup: firstOfInode.get(inode)! } : {}),
    ...(sums.has(e.path) ? { sha256: sums.get(e.path)! } : {}),
  }));
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + sep.length)];
}

/** The kinds of difference verification reports. */
export type DifferenceKind = 'missing' | 'extra' | 'type' | 'mode' | 'owner' | 'size' | 'content' | 'link' | 'hardlink' | 'sparse' | 'mtime' | 'xattrs' | 'acl';

/** One difference between the source and the destination tree. */
export interface ManifestDifference {
  kind: DifferenceKind;
  path: string;
  /** "source value -> destination value", when both sides have the entry. */
  detail?: string;
}

/** What to compare besides the tree's shape and sizes. */
export interface CompareOptions {
  /** Owners are compared (preserve-ownership mode; restricted mode re-owns files). */
  owners: boolean;
  /** ACLs and xattrs are compared (preserve-ownership mode with acls/xattrs kept). */
  metadata: boolean;
}

/** Pure: the differences between two manifests, in path order. */
export function compareManifests(source: readonly ManifestEntry[], destination: readonly ManifestEntry[], o: CompareOptions): ManifestDifference[] {
  const dst = new Map(destination.map((e) => [e.path, e]));
  const out: ManifestDifference[] = [];
  const seen = new Set<string>();
  for (const s of source) {
    seen.add(s.path);
    const d = dst.get(s.path);
    if (!d) {
      out.push({ kind: 'missing', path: s.path });
      continue;
    }
    const diff = (kind: DifferenceKind, a: unknown, b: unknown) => {
      if (a !== b) out.push({ kind, path: s.path, detail: `${String(a ?? '-')} -> ${String(b ?? '-')}` });
    };
    if (s.type !== d.type) {
      diff('type', s.type, d.type);
      continue;
    }
    diff('mode', s.mode, d.mode);
    if (o.owners) diff('owner', `${s.uid}:${s.gid}`, `${d.uid}:${d.gid}`);
    if (s.type !== 'l') diff('size', s.size, d.size); // a symlink's size is its target's length: see link
    if (s.sha256 !== undefined && d.sha256 !== undefined) diff('content', s.sha256, d.sha256);
    diff('link', s.link, d.link);
    diff('hardlink', s.linkGroup, d.linkGroup);
    // rsync --sparse turns runs of zeros into holes, so a dense source file may arrive sparse (the
    // same bytes, fewer blocks: not a difference); a sparse source file must stay sparse
    if (s.sparse && !d.sparse) diff('sparse', s.sparse, d.sparse);
    diff('mtime', s.mtime, d.mtime);
    if (o.metadata) {
      diff('xattrs', s.xattrs, d.xattrs);
      diff('acl', s.acl, d.acl);
    }
  }
  for (const d of destination) if (!seen.has(d.path)) out.push({ kind: 'extra', path: d.path });
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

/** Bytes of one chunk of a block volume's manifest (blockManifestScript): 64 MiB. */
export const BLOCK_CHUNK_BYTES = 64 * 1024 * 1024;

/**
 * The manifest pod's script for a block volume (its device node at `device`): the device's size and
 * the sha256 of each BLOCK_CHUNK_BYTES chunk, one line `<index> <sha256>` per chunk in MANIFEST_FILE;
 * prints `ferry-manifest: entries=<chunks> sha256=<digest of the list> bytes=<size>` and waits (1 h)
 * for Ferry to read the file and run `blockRangeHashCommand` if it needs to. The size comes from
 * BLKGETSIZE64 (blockdev(8)); a device node's stat size is 0.
 */
export function blockManifestScript(device: string): string {
  const mib = BLOCK_CHUNK_BYTES / (1024 * 1024);
  return [
    'set -euo pipefail',
    `dev=${device}`,
    `out=${MANIFEST_FILE}`,
    'size=$(blockdev --getsize64 "$dev")',
    `n=$(( (size + ${BLOCK_CHUNK_BYTES} - 1) / ${BLOCK_CHUNK_BYTES} ))`,
    ': > "$out"',
    'i=0',
    `while [ "$i" -lt "$n" ]; do printf '%s %s\\n' "$i" "$(dd if="$dev" bs=1M skip=$((i * ${mib})) count=${mib} status=none | sha256sum | cut -c1-64)" >> "$out"; i=$((i + 1)); done`,
    `echo "${MANIFEST_SUMMARY_PREFIX} entries=$n sha256=$(sha256sum < "$out" | cut -c1-64) bytes=$size"`,
    'sleep 3600 & wait',
  ].join('\n');
}

/** The command that prints the sha256 of `length` bytes of `device` from byte `offset` (a partial
 * last chunk, compared over the source's length when the destination device is larger). */
export function blockRangeHashCommand(device: string, offset: number, length: number): string[] {
  return ['/bin/bash', '-c', `dd if=${device} iflag=skip_bytes,count_bytes skip=${offset} count=${length} bs=1M status=none | sha256sum | cut -c1-64`];
}

/** Parses a block manifest (blockManifestScript): the chunk hashes in index order. */
export function parseBlockManifest(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+) ([0-9a-f]{64})$/.exec(line.trim());
    if (m) out[Number(m[1])] = m[2]!;
  }
  return out;
}

/** Parses the device size from a block manifest pod's summary line, bytes. */
export function parseBlockManifestBytes(log: string): number | undefined {
  const m = new RegExp(`${MANIFEST_SUMMARY_PREFIX} entries=\\d+ sha256=[0-9a-f]{64} bytes=(\\d+)`).exec(log);
  return m ? Number(m[1]) : undefined;
}

/**
 * Pure: the differences between a source and a destination block volume, over the source's bytes (a
 * larger destination device is fine: its extra bytes are not the source's). A destination smaller than
 * the source is one `size` difference; each differing chunk is a `content` difference whose path is
 * `device@<offset>+<length>` (bytes). `lastChunk` overrides the comparison of a partial last source
 * chunk that the destination holds whole (the caller hashed the destination over the source's length).
 */
export function compareBlockManifests(
  source: { bytes: number; chunks: readonly string[] },
  destination: { bytes: number; chunks: readonly string[] },
  lastChunk?: { source: string; destination: string },
): ManifestDifference[] {
  if (destination.bytes < source.bytes) return [{ kind: 'size', path: 'device', detail: `${source.bytes} -> ${destination.bytes}` }];
  const out: ManifestDifference[] = [];
  const n = Math.ceil(source.bytes / BLOCK_CHUNK_BYTES);
  for (let i = 0; i < n; i++) {
    const offset = i * BLOCK_CHUNK_BYTES;
    const length = Math.min(BLOCK_CHUNK_BYTES, source.bytes - offset);
    const partial = length < BLOCK_CHUNK_BYTES && destination.bytes > source.bytes;
    const same = partial && lastChunk ? lastChunk.source === lastChunk.destination : source.chunks[i] === destination.chunks[i];
    if (!same) out.push({ kind: 'content', path: `device@${offset}+${length}` });
  }
  return out;
}
