/**
 * Post-copy verification's manifest (src/statetransfer/manifest.ts): the real script run by bash on
 * real trees (hard links, symlinks, sparse files, odd names), parsed and compared; a planted
 * difference of each kind is found.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOCK_CHUNK_BYTES, blockManifestScript, blockRangeHashCommand, compareBlockManifests, compareManifests, MANIFEST_FILE, manifestScript, parseBlockManifest, parseBlockManifestBytes, parseManifest, parseManifestSummary } from '../../src/statetransfer/manifest';
import { createHash } from 'node:crypto';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ferry-manifest-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tree(name: string): string {
  const d = join(work, name);
  mkdirSync(join(d, 'sub/deep'), { recursive: true });
  mkdirSync(join(d, 'lost+found'));
  writeFileSync(join(d, 'lost+found/ignored'), 'x');
  writeFileSync(join(d, 'a.txt'), 'hello\n');
  writeFileSync(join(d, 'sub/deep/b.bin'), Buffer.alloc(10000, 7));
  linkSync(join(d, 'a.txt'), join(d, 'sub/a-link'));
  symlinkSync('../a.txt', join(d, 'sub/sym'));
  writeFileSync(join(d, 'tab\tand\nnewline name'), 'odd');
  writeFileSync(join(d, 'sparse'), '');
  truncateSync(join(d, 'sparse'), 8 * 1024 * 1024);
  for (const f of ['a.txt', 'sub/deep/b.bin', 'tab\tand\nnewline name', 'sparse']) utimesSync(join(d, f), 1_700_000_000, 1_700_000_000);
  return d;
}

function manifest(dir: string, hashes = true) {
  const file = join(work, `${dir.split('/').pop()}.manifest`);
  const r = spawnSync('bash', ['-c', manifestScript({ hashes }, { dir, file, wait: false })], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  return { summary: parseManifestSummary(r.stdout)!, entries: parseManifest(readFileSync(file, 'utf8')) };
}

describe('manifest', () => {
  it('records every entry with its type, links, sparseness and content hash; lost+found is skipped', () => {
    const { summary, entries } = manifest(tree('one'));
    const by = new Map(entries.map((e) => [e.path, e]));
    expect([...by.keys()]).toEqual(['a.txt', 'sparse', 'sub', 'sub/a-link', 'sub/deep', 'sub/deep/b.bin', 'sub/sym', 'tab\tand\nnewline name']);
    expect(summary.entries).toBe(8);
    expect(by.get('a.txt')).toMatchObject({ type: 'f', size: 6, linkGroup: 'a.txt', mtime: 1_700_000_000, sha256: '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03' });
    expect(by.get('sub/a-link')).toMatchObject({ linkGroup: 'a.txt' });
    expect(by.get('sub/sym')).toMatchObject({ type: 'l', link: '../a.txt' });
    expect(by.get('sparse')).toMatchObject({ sparse: true, size: 8 * 1024 * 1024 });
    expect(by.get('sub/deep/b.bin')).toMatchObject({ sparse: false });
    expect(by.get('sub/deep/b.bin')!.linkGroup).toBeUndefined();
    expect(by.get('sub')!.size).toBeUndefined();
  });

  it('identical trees have the same digest and no differences', () => {
    const a = manifest(tree('two-a'));
    const b = manifest(tree('two-b'));
    expect(compareManifests(a.entries, b.entries, { owners: true, metadata: true })).toEqual([]);
    expect(a.summary.sha256).toBe(b.summary.sha256);
  });

  it('finds a planted difference of each kind', () => {
    const src = tree('three-src');
    const dst = tree('three-dst');
    writeFileSync(join(dst, 'sub/deep/b.bin'), Buffer.alloc(10000, 8)); // same size, other content
    utimesSync(join(dst, 'sub/deep/b.bin'), 1_700_000_000, 1_700_000_000);
    chmodSync(join(dst, 'sub/deep/b.bin'), 0o600);
    rmSync(join(dst, 'sub/a-link')); // a copy instead of a hard link
    writeFileSync(join(dst, 'sub/a-link'), 'hello\n');
    utimesSync(join(dst, 'sub/a-link'), 1_700_000_000, 1_700_000_000);
    rmSync(join(dst, 'sub/sym'));
    symlinkSync('elsewhere', join(dst, 'sub/sym'));
    writeFileSync(join(dst, 'extra'), '');
    rmSync(join(dst, 'tab\tand\nnewline name'));
    writeFileSync(join(dst, 'sparse'), Buffer.alloc(8 * 1024 * 1024));
    utimesSync(join(dst, 'sparse'), 1_700_000_000, 1_700_000_000);
    const a = manifest(src);
    const b = manifest(dst);
    expect(a.summary.sha256).not.toBe(b.summary.sha256);
    const diffs = compareManifests(a.entries, b.entries, { owners: false, metadata: false });
    expect(diffs.map((d) => `${d.kind} ${d.path}`)).toEqual([
      'hardlink a.txt',
      'extra extra',
      'sparse sparse',
      'hardlink sub/a-link',
      'mode sub/deep/b.bin',
      'content sub/deep/b.bin',
      'link sub/sym',
      'missing tab\tand\nnewline name',
    ]);
    expect(diffs.find((d) => d.kind === 'mode')!.detail).toBe('644 -> 600');
  });

  it('a file that became sparse is not a difference (rsync --sparse makes holes of zero runs); one that lost its holes is', () => {
    const src = tree('five-src');
    const dst = tree('five-dst');
    // the source's sparse file written densely at the destination: the same bytes, all allocated
    writeFileSync(join(dst, 'sparse'), Buffer.alloc(8 * 1024 * 1024));
    utimesSync(join(dst, 'sparse'), 1_700_000_000, 1_700_000_000);
    const a = manifest(src);
    const b = manifest(dst);
    expect(compareManifests(a.entries, b.entries, { owners: false, metadata: false }).map((d) => `${d.kind} ${d.path} ${d.detail}`)).toEqual(['sparse sparse true -> false']);
    // the other way round (a dense source, a sparse copy): equal bytes, fewer blocks, no difference
    expect(compareManifests(b.entries, a.entries, { owners: false, metadata: false })).toEqual([]);
  });

  it('without hashes, content is not compared but sizes are', () => {
    const src = tree('four-src');
    const dst = tree('four-dst');
    writeFileSync(join(dst, 'a.txt'), 'hello, world\n');
    utimesSync(join(dst, 'a.txt'), 1_700_000_000, 1_700_000_000);
    const diffs = compareManifests(manifest(src, false).entries, manifest(dst, false).entries, { owners: false, metadata: false });
    expect(diffs.map((d) => d.kind)).toContain('size');
    expect(diffs.map((d) => d.kind)).not.toContain('content');
  });
});

describe('block volume manifests', () => {
  const C = BLOCK_CHUNK_BYTES;
  const h = (c: string) => c.repeat(64);

  test('parses the chunk list and the summary bytes', () => {
    expect(parseBlockManifest(`0 ${h('a')}\n1 ${h('b')}\n`)).toEqual([h('a'), h('b')]);
    expect(parseBlockManifestBytes(`ferry-manifest: entries=2 sha256=${h('c')} bytes=134217728\n`)).toBe(134217728);
    expect(parseBlockManifestBytes(`ferry-manifest: entries=2 sha256=${h('c')}\n`)).toBeUndefined();
  });

  test('compares over the source bytes: equal, a differing chunk with its byte range, a smaller destination', () => {
    const src = { bytes: 2 * C, chunks: [h('a'), h('b')] };
    expect(compareBlockManifests(src, { bytes: 2 * C, chunks: [h('a'), h('b')] })).toEqual([]);
    // a larger destination device: its extra chunk is not the source's
    expect(compareBlockManifests(src, { bytes: 3 * C, chunks: [h('a'), h('b'), h('z')] })).toEqual([]);
    expect(compareBlockManifests(src, { bytes: 2 * C, chunks: [h('a'), h('x')] })).toEqual([{ kind: 'content', path: `device@${C}+${C}` }]);
    expect(compareBlockManifests(src, { bytes: C, chunks: [h('a')] })).toEqual([{ kind: 'size', path: 'device', detail: `${2 * C} -> ${C}` }]);
  });

  test("a partial last source chunk against a larger destination is judged by the caller's hash of the same bytes", () => {
    const src = { bytes: C + 4096, chunks: [h('a'), h('t')] };
    const dst = { bytes: 2 * C, chunks: [h('a'), h('w')] };
    expect(compareBlockManifests(src, dst, { source: h('t'), destination: h('t') })).toEqual([]);
    expect(compareBlockManifests(src, dst, { source: h('t'), destination: h('u') })).toEqual([{ kind: 'content', path: `device@${C}+4096` }]);
    expect(compareBlockManifests(src, dst)).toHaveLength(1);
  });

  test('the script hashes a device in 64 MiB chunks (run on a loop device as root)', () => {
    if (process.getuid?.() !== 0 || spawnSync('losetup', ['--version']).status !== 0) return void expect(blockManifestScript('/x')).toMatch(/blockdev --getsize64/);
    const dir = mkdtempSync(join(tmpdir(), 'ferry-blk-'));
    const img = join(dir, 'img');
    const bytes = C + 8192;
    writeFileSync(img, Buffer.alloc(bytes, 7));
    const loop = spawnSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).stdout.trim();
    try {
      const script = blockManifestScript(loop).replace(MANIFEST_FILE, join(dir, 'manifest')).replace('sleep 3600 & wait', '');
      const r = spawnSync('/bin/bash', ['-c', script], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(parseBlockManifestBytes(r.stdout)).toBe(bytes);
      const chunks = parseBlockManifest(readFileSync(join(dir, 'manifest'), 'utf8'));
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      expect(chunks).toEqual([sha(Buffer.alloc(C, 7)), sha(Buffer.alloc(8192, 7))]);
      const range = spawnSync(blockRangeHashCommand(loop, C, 4096)[0]!, blockRangeHashCommand(loop, C, 4096).slice(1), { encoding: 'utf8' });
      expect(range.stdout.trim()).toBe(sha(Buffer.alloc(4096, 7)));
    } finally {
      spawnSync('losetup', ['-d', loop]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
