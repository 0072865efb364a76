/**
 * Test data trees and their manifests: what the data-plane tests transfer and how they compare the
 * source and destination (content hashes, modes, owners, link targets, hard-link groups, sparseness).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, chmodSync, lchownSync, closeSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeSync, writeFileSync, ftruncateSync, utimesSync } from 'node:fs';
import { join } from 'node:path';

/** One entry of a manifest. */
export interface ManifestEntry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  /** Index of the hard-link group (files with nlink > 1), comparable across trees. */
  linkGroup?: string;
  /** Allocated bytes less than half the size: a sparse file. */
  sparse?: boolean;
  mtimeMs?: number;
}

/** Options of `buildTree`. */
export interface TreeOptions {
  smallFiles: number;
  largeFileBytes: number;
  sparseFileBytes: number;
  /** Give files several owners (needs root; for preserve-ownership tests). */
  mixedOwners: boolean;
  /** Owner of everything when not mixed (default: unchanged). */
  owner?: { uid: number; gid: number };
}

function fileHash(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * Builds a tree exercising what a faithful copy must keep: thousands of small files in nested
 * directories, one large random file, a sparse file, hard links, symlinks (relative, absolute,
 * dangling), unicode and spaces in names, empty directories and mixed modes.
 */
export function buildTree(root: string, o: TreeOptions): void {
  mkdirSync(root, { recursive: true });
  const perDir = 500;
  for (let i = 0; i < o.smallFiles; i++) {
    const dir = join(root, 'small', `d${Math.floor(i / perDir)}`);
    if (i % perDir === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}.txt`), `file ${i}\n${randomBytes(64 + (i % 900)).toString('base64')}\n`);
  }
  // A large random file, written in 8 MiB chunks.
  const big = openSync(join(root, 'large.bin'), 'w');
  const chunk = 8 * 1024 * 1024;
  for (let written = 0; written < o.largeFileBytes; written += chunk) writeSync(big, randomBytes(Math.min(chunk, o.largeFileBytes - written)));
  closeSync(big);
  // A sparse file: mostly a hole, with data at the start, middle and end.
  const sp = openSync(join(root, 'sparse.img'), 'w');
  ftruncateSync(sp, o.sparseFileBytes);
  for (const at of [0, Math.floor(o.sparseFileBytes / 2), o.sparseFileBytes - 4096]) writeSync(sp, randomBytes(4096), 0, 4096, at);
  closeSync(sp);
  // Hard links: a group of three names and a pair across directories.
  mkdirSync(join(root, 'links'));
  writeFileSync(join(root, 'links', 'original'), 'hard-linked content\n');
  linkSync(join(root, 'links', 'original'), join(root, 'links', 'second'));
  linkSync(join(root, 'links', 'original'), join(root, 'small', 'third-name'));
  // Symlinks.
  symlinkSync('original', join(root, 'links', 'relative'));
  symlinkSync('/etc/hostname', join(root, 'links', 'absolute'));
  symlinkSync('does/not/exist', join(root, 'links', 'dangling'));
  symlinkSync('../small', join(root, 'links', 'dir-link'));
  // Unicode and spaces.
  mkdirSync(join(root, 'naïve dir with spaces'));
  writeFileSync(join(root, 'naïve dir with spaces', 'Ünïcødé файл 文件 🚢.txt'), 'unicode\n');
  writeFileSync(join(root, ' leading and trailing space '), 'spaces\n');
  writeFileSync(join(root, 'new\nline'), 'a newline in a name\n');
  // Empty directories.
  mkdirSync(join(root, 'empty', 'nested', 'deeper'), { recursive: true });
  // Mixed modes.
  mkdirSync(join(root, 'modes'));
  const modes: [string, number][] = [['private', 0o600], ['exec', 0o755], ['readonly', 0o444], ['group', 0o640], ['setgid-dir', 0o2775]];
  for (const [name, mode] of modes) {
    const p = join(root, 'modes', name);
    if (name.endsWith('-dir')) mkdirSync(p);
    else writeFileSync(p, `${name}\n`);
    chmodSync(p, mode);
  }
  utimesSync(join(root, 'modes', 'readonly'), new Date('2001-02-03T04:05:06Z'), new Date('2001-02-03T04:05:06Z'));
  if (o.mixedOwners) {
    const owners: [string, number, number][] = [['modes/private', 999, 999], ['modes/exec', 1000, 1000], ['modes/group', 0, 4242], ['links/original', 123, 456]];
    for (const [p, u, g] of owners) chownSync(join(root, p), u, g);
    lchownSync(join(root, 'links', 'relative'), 77, 77);
  }
  if (o.owner) chownTree(root, o.owner.uid, o.owner.gid);
}

/** chown -Rh root to uid:gid. */
export function chownTree(root: string, uid: number, gid: number): void {
  const walk = (p: string) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    chownSync(p, uid, gid);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  walk(root);
}

/** Manifest of a tree: relative path → entry. `ignore` paths (relative) are skipped. */
export function manifest(root: string, opts: { owners: boolean; ignore?: string[] } = { owners: true }): Map<string, ManifestEntry> {
  const out = new Map<string, ManifestEntry>();
  const inodeGroups = new Map<number, string>();
  const ignore = new Set(opts.ignore ?? []);
  const walk = (rel: string) => {
    const abs = rel ? join(root, rel) : root;
    const st = lstatSync(abs);
    const e: ManifestEntry = { type: 'other', mode: st.mode & 0o7777, uid: opts.owners ? st.uid : -1, gid: opts.owners ? st.gid : -1 };
    if (st.isSymbolicLink()) {
      e.type = 'symlink';
      e.target = readlinkSync(abs);
      e.mode = 0; // symlink modes are not meaningful on Linux
    } else if (st.isDirectory()) {
      e.type = 'dir';
    } else if (st.isFile()) {
      e.type = 'file';
      e.size = st.size;
      e.sha256 = fileHash(abs);
      e.sparse = st.size > 65536 && st.blocks * 512 < st.size / 2;
      e.mtimeMs = Math.floor(st.mtimeMs / 1000) * 1000;
      if (st.nlink > 1) {
        if (!inodeGroups.has(st.ino)) inodeGroups.set(st.ino, rel);
        e.linkGroup = inodeGroups.get(st.ino);
      }
    }
    if (rel) out.set(rel, e);
    if (e.type === 'dir') for (const name of readdirSync(abs).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (!ignore.has(r)) walk(r);
    }
  };
  walk('');
  return out;
}

/** Differences between two manifests, as readable lines (empty when identical). */
export function diffManifests(a: Map<string, ManifestEntry>, b: Map<string, ManifestEntry>): string[] {
  const diffs: string[] = [];
  for (const [p, ea] of a) {
    const eb = b.get(p);
    if (!eb) {
      diffs.push(`missing at destination: ${JSON.stringify(p)}`);
      continue;
    }
    for (const k of Object.keys({ ...ea, ...eb }) as (keyof ManifestEntry)[]) {
      if (ea[k] !== eb[k]) diffs.push(`${JSON.stringify(p)}: ${k} ${JSON.stringify(ea[k])} != ${JSON.stringify(eb[k])}`);
    }
  }
  for (const p of b.keys()) if (!a.has(p)) diffs.push(`extra at destination: ${JSON.stringify(p)}`);
  return diffs;
}
