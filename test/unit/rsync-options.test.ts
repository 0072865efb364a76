import { mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync, linkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  DENIED_EXTRA_ARGS,
  RSYNC_INFO_FLAGS,
  RsyncOptionsError,
  rsyncClientArgs,
  validateRsyncOptions,
  type RsyncOptionsInput,
} from '../../src/statetransfer/transfer/rsync/options';
import { haveRsync, run, tempDir } from '../fixtures/rsync/helpers';

function problemsOf(input: unknown, ctx?: { root?: boolean }): { path: string; message: string }[] {
  try {
    validateRsyncOptions(input as RsyncOptionsInput, ctx);
  } catch (e) {
    expect(e).toBeInstanceOf(RsyncOptionsError);
    return [...(e as RsyncOptionsError).problems];
  }
  throw new Error('expected validation to fail');
}

describe('validateRsyncOptions', () => {
  test('defaults are complete and frozen', () => {
    const o = validateRsyncOptions({});
    expect(o).toEqual({
      archive: true,
      deleteMode: 'final',
      hardLinks: true,
      partial: true,
      partialDir: '.ferry-partial',
      sparse: true,
      checksum: false,
      bwLimitKiBps: undefined,
      excludes: ['/lost+found'],
      acls: false,
      xattrs: false,
      selinuxXattrs: false,
      chown: undefined,
      usermap: undefined,
      groupmap: undefined,
      compress: false,
      timeoutSeconds: 600,
      incrementalRecursion: false,
      extraArgs: [],
    });
    expect(Object.isFrozen(o)).toBe(true);
    expect(Object.isFrozen(o.excludes)).toBe(true);
    expect(Object.isFrozen(o.extraArgs)).toBe(true);
    expect(() => {
      (o as { checksum: boolean }).checksum = true;
    }).toThrow(TypeError);
  });

  test('input arrays are copied, not aliased', () => {
    const excludes = ['/a'];
    const o = validateRsyncOptions({ excludes });
    excludes.push('/b');
    expect(o.excludes).toEqual(['/a']);
  });

  test('delete maps to a mode', () => {
    expect(validateRsyncOptions({ delete: true }).deleteMode).toBe('always');
    expect(validateRsyncOptions({ delete: false }).deleteMode).toBe('never');
    expect(validateRsyncOptions({ delete: 'final' }).deleteMode).toBe('final');
  });

  test('reports every invalid field at once', () => {
    const problems = problemsOf({
      archive: 'yes',
      delete: 'sometimes',
      partialDir: '../escape',
      bwLimitKiBps: 0,
      timeoutSeconds: 0,
      excludes: ['ok', 'bad\nline', ''],
      chown: 'root:wheel',
      usermap: '0-99',
      extraArgs: ['--rsh=ssh', '-v', '--checksum'],
      bwlimit: 10,
    });
    const fields = problems.map((p) => p.path).sort();
    expect(fields).toEqual(
      [
        'archive',
        'bwLimitKiBps',
        'bwlimit',
        'chown', // user is not numeric
        'chown', // group is not numeric
        'chown', // combined with usermap
        'delete',
        'excludes[1]',
        'excludes[2]',
        'extraArgs[0]',
        'extraArgs[1]',
        'extraArgs[2]',
        'partialDir',
        'timeoutSeconds',
        'usermap',
      ].sort(),
    );
    for (const p of problems) expect(p.message.length).toBeGreaterThan(5);
    const err = (() => {
      try {
        validateRsyncOptions({ bwLimitKiBps: -1, timeoutSeconds: 1.5 });
      } catch (e) {
        return e as RsyncOptionsError;
      }
      return undefined;
    })();
    expect(err?.message).toMatch(/^invalid rsync options: 2 problems\n  bwLimitKiBps: .*\n  timeoutSeconds: /);
    expect(Object.isFrozen(err?.problems)).toBe(true);
  });

  test.each([
    ['archive', { archive: 1 }],
    ['hardLinks', { hardLinks: 'true' }],
    ['partial', { partial: null }],
    ['sparse', { sparse: 0 }],
    ['checksum', { checksum: 'no' }],
    ['acls', { acls: {} }],
    ['xattrs', { xattrs: [] }],
    ['compress', { compress: 'zstd' }],
    ['incrementalRecursion', { incrementalRecursion: 1 }],
  ])('boolean field %s rejects non-booleans', (field, input) => {
    expect(problemsOf(input)).toEqual([{ path: field, message: expect.stringMatching(/true or false/) }]);
  });

  test.each([
    ['/abs', /relative/],
    ['a/../b', /'\.\.'/],
    ['./a', /'\.\.'/],
    ['a//b', /empty path/],
    ['', /non-empty/],
    ['sp ace', /only contain/],
    ['x'.repeat(256), /255/],
  ])('partialDir %j is refused', (partialDir, re) => {
    const [p] = problemsOf({ partialDir });
    expect(p).toEqual({ path: 'partialDir', message: expect.stringMatching(re) });
  });

  test.each([[0], [-5], [1.5], [Number.NaN], ['100']])('bwLimitKiBps %p is refused', (bwLimitKiBps) => {
    expect(problemsOf({ bwLimitKiBps })[0]?.path).toBe('bwLimitKiBps');
  });

  test.each([[0], [-1], [86_401], [2.5], ['600']])('timeoutSeconds %p is refused', (timeoutSeconds) => {
    expect(problemsOf({ timeoutSeconds })[0]?.path).toBe('timeoutSeconds');
  });

  test('excludes: each pattern validated, list type checked', () => {
    expect(problemsOf({ excludes: 'x' })).toEqual([{ path: 'excludes', message: expect.any(String) }]);
    const ps = problemsOf({ excludes: ['ok', 'a\rb', 'c\0d', '   ', 7, 'y'.repeat(4097)] });
    expect(ps.map((p) => p.path)).toEqual(['excludes[1]', 'excludes[2]', 'excludes[3]', 'excludes[4]', 'excludes[5]']);
    expect(validateRsyncOptions({ excludes: [] }).excludes).toEqual([]);
  });

  test('chown accepts numeric ids only', () => {
    for (const ok of ['1000:1000', '0:0', '1000', ':2000', '4294967294:1']) {
      expect(validateRsyncOptions({ chown: ok }).chown).toBe(ok);
    }
    for (const bad of ['', ':', 'root:root', '1000:wheel', 'a:b:c', '4294967295', '01:1', '-1:0']) {
      expect(problemsOf({ chown: bad }).every((p) => p.path === 'chown')).toBe(true);
    }
    expect(problemsOf({ chown: 'root:1' })[0]?.message).toMatch(/numeric/);
  });

  test('usermap/groupmap follow rsync FROM:TO syntax with numeric ids', () => {
    for (const ok of ['0-99:5', '*:1000', '1000:2000,*:65534', '5:5']) {
      expect(validateRsyncOptions({ usermap: ok, groupmap: ok }).usermap).toBe(ok);
    }
    for (const bad of ['', '0-99', 'wayne:admin', '1:name', '99-0:1', '1:2,', 'a:b:c', '1:2:3']) {
      const ps = problemsOf({ groupmap: bad });
      expect(ps.length).toBeGreaterThan(0);
      expect(ps.every((p) => p.path === 'groupmap')).toBe(true);
    }
    expect(problemsOf({ usermap: 'wayne:1' })[0]?.message).toMatch(/--numeric-ids/);
  });

  test('chown cannot be combined with usermap/groupmap', () => {
    expect(problemsOf({ chown: '1:1', usermap: '*:1' })).toEqual([{ path: 'chown', message: expect.stringMatching(/cannot be combined/) }]);
  });

  test('ownership options need root when the context says non-root', () => {
    const ps = problemsOf({ chown: '1:1' }, { root: false });
    expect(ps).toEqual([{ path: 'chown', message: expect.stringMatching(/root/) }]);
    expect(problemsOf({ usermap: '*:1', groupmap: '*:1' }, { root: false }).map((p) => p.path)).toEqual(['usermap', 'groupmap']);
    expect(validateRsyncOptions({ chown: '1:1' }, { root: true }).chown).toBe('1:1');
  });

  test('extraArgs: allow pattern and denylist', () => {
    const ok = ['--one-file-system', '--human-readable', '--max-delete=100', '--modify-window=2', '--no-perms', '--chmod=D2775,F664'];
    expect(validateRsyncOptions({ extraArgs: ok }).extraArgs).toEqual(ok);
    const bad = ['-v', '--x', '--Upper', '--a b', '--exclude=*.tmp', '--opt="q"', '--opt=$(id)', '--opt=a;b', 'plain', '--', '--a=b c'];
    const ps = problemsOf({ extraArgs: bad });
    expect(ps.map((p) => p.path)).toEqual(
      bad.map((_, i) => `extraArgs[${i}]`).filter((_, i) => i !== 1),
    );
    // '--x' passes the pattern (rsync rejects unknown options itself); '*' is outside the value alphabet;
    // '--exclude' is also denied by name.
    expect(problemsOf({ extraArgs: ['--exclude=/x'] })[0]?.message).toMatch(/use rsync\.excludes/);
    expect(problemsOf({ extraArgs: 'x' })).toEqual([{ path: 'extraArgs', message: expect.any(String) }]);
  });

  test('acls and xattrs need root; the xattr filter keeps system.* and security.selinux out (issue 8 item 5)', () => {
    const o = validateRsyncOptions({ acls: true, xattrs: true });
    expect(rsyncClientArgs(o, { final: false, root: true })).toEqual(
      expect.arrayContaining(['--acls', '--xattrs', '--filter=-x system.*', '--filter=-x security.selinux']),
    );
    expect(() => rsyncClientArgs(o, { final: false, root: false })).toThrow(/acls: needs the preserve-ownership[\s\S]*xattrs: needs the preserve-ownership/);
    expect(problemsOf({ acls: true, xattrs: true }, { root: false }).map((p) => p.path)).toEqual(['acls', 'xattrs']);
    expect(problemsOf({ selinuxXattrs: true }).map((p) => p.path)).toEqual(['selinuxXattrs']);
  });

  test.each(Object.keys(DENIED_EXTRA_ARGS))('extraArgs denies %s', (name) => {
    for (const a of [name, `${name}=x`]) {
      const [p] = problemsOf({ extraArgs: [a] });
      expect(p).toEqual({ path: 'extraArgs[0]', message: expect.stringContaining(`${name} is not allowed`) });
    }
  });

  test('non-object input', () => {
    expect(() => validateRsyncOptions(null as unknown as RsyncOptionsInput)).toThrow(RsyncOptionsError);
    expect(() => validateRsyncOptions([] as unknown as RsyncOptionsInput)).toThrow(RsyncOptionsError);
  });
});

describe('rsyncClientArgs', () => {
  const defaults = validateRsyncOptions({});

  test('root stage sync', () => {
    expect(rsyncClientArgs(defaults, { final: false, root: true })).toEqual([
      '--recursive', '--links', '--perms', '--times', '--owner', '--group', '--devices', '--specials', '--numeric-ids',
      '--hard-links', '--partial', '--partial-dir=.ferry-partial', '--sparse', '--timeout=600', '--no-inc-recursive',
      '--exclude=/lost+found', RSYNC_INFO_FLAGS,
    ]);
  });

  test('root final sync deletes during the transfer', () => {
    const a = rsyncClientArgs(defaults, { final: true, root: true });
    expect(a).toContain('--delete-during');
    expect(a.filter((x) => x.startsWith('--delete'))).toEqual(['--delete-during']);
  });

  test('non-root: no owner/group/devices, omit dir times, specials kept', () => {
    const a = rsyncClientArgs(defaults, { final: false, root: false });
    for (const f of ['--owner', '--group', '--devices', '--numeric-ids']) expect(a).not.toContain(f);
    expect(a.slice(0, 6)).toEqual(['--recursive', '--links', '--perms', '--times', '--specials', '--omit-dir-times']);
    expect(a).not.toContain('--delete-during');
    expect(rsyncClientArgs(defaults, { final: true, root: false })).toContain('--delete-during');
  });

  test('delete modes', () => {
    const always = validateRsyncOptions({ delete: true });
    const never = validateRsyncOptions({ delete: false });
    expect(rsyncClientArgs(always, { final: false, root: true })).toContain('--delete-during');
    expect(rsyncClientArgs(never, { final: true, root: true }).some((a) => a.startsWith('--delete'))).toBe(false);
  });

  test('every option maps to its flag; no human-readable, no compression by default', () => {
    const o = validateRsyncOptions({
      archive: true, hardLinks: false, partial: true, partialDir: 'p/q', sparse: false, checksum: true,
      bwLimitKiBps: 2048, excludes: ['/a', '*.tmp'], acls: true, xattrs: true, compress: true,
      timeoutSeconds: 30, incrementalRecursion: true, usermap: '0-99:5', groupmap: '*:7', extraArgs: ['--one-file-system'],
    });
    const a = rsyncClientArgs(o, { final: false, root: true });
    expect(a).toEqual(expect.arrayContaining([
      '--partial', '--partial-dir=p/q', '--checksum', '--acls', '--xattrs', '--compress', '--bwlimit=2048',
      '--timeout=30', '--exclude=/a', '--exclude=*.tmp', '--usermap=0-99:5', '--groupmap=*:7',
    ]));
    expect(a).not.toContain('--hard-links');
    expect(a).not.toContain('--sparse');
    expect(a).not.toContain('--no-inc-recursive');
    expect(a[a.length - 1]).toBe('--one-file-system');
    expect(a).not.toContain('--human-readable');
    expect(rsyncClientArgs(defaults, { final: true, root: true })).not.toContain('--compress');
  });

  test('archive false keeps only recursion and links; partial false drops the partial dir', () => {
    const a = rsyncClientArgs(validateRsyncOptions({ archive: false, partial: false }), { final: false, root: true });
    expect(a.slice(0, 3)).toEqual(['--recursive', '--links', '--hard-links']);
    expect(a.some((x) => x.startsWith('--partial'))).toBe(false);
    expect(a).not.toContain('--perms');
  });

  test('ownership mapping refused at build time for non-root', () => {
    const o = validateRsyncOptions({ chown: '1000:1000' });
    expect(rsyncClientArgs(o, { final: false, root: true })).toContain('--chown=1000:1000');
    expect(() => rsyncClientArgs(o, { final: false, root: false })).toThrow(RsyncOptionsError);
    try {
      rsyncClientArgs(validateRsyncOptions({ usermap: '*:1', groupmap: '*:2' }), { final: true, root: false });
    } catch (e) {
      expect((e as RsyncOptionsError).problems.map((p) => p.path)).toEqual(['usermap', 'groupmap']);
    }
    expect.assertions(3);
  });
});

// The real binary must accept every flag combination Ferry emits, and the copy must be faithful.
describe('rsync binary accepts the emitted flags', () => {
  if (!haveRsync()) {
    test('rsync is installed', () => {
      throw new Error('rsync binary not found: these tests need the real rsync');
    });
    return;
  }
  const base = tempDir();
  const src = join(base, 'src');
  beforeAll(() => {
    mkdirSync(join(src, 'dir/sub'), { recursive: true });
    mkdirSync(join(src, 'lost+found'));
    writeFileSync(join(src, 'lost+found/junk'), 'x');
    writeFileSync(join(src, 'dir/sub/a.txt'), 'hello');
    writeFileSync(join(src, 'zero.img'), Buffer.alloc(1 << 20));
    linkSync(join(src, 'dir/sub/a.txt'), join(src, 'hard.txt'));
    symlinkSync('/etc/hostname', join(src, 'abs-link'));
    symlinkSync('dir/sub/a.txt', join(src, 'rel-link'));
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  const variants: [string, RsyncOptionsInput, boolean][] = [
    ['defaults', {}, true],
    ['everything on', {
      checksum: true, acls: true, xattrs: true, compress: true, bwLimitKiBps: 100_000, timeoutSeconds: 30,
      excludes: ['/lost+found', '*.tmp'], incrementalRecursion: true, extraArgs: ['--one-file-system', '--human-readable'],
    }, true],
    ['ownership mapping', { usermap: '0-99:0,*:0', groupmap: '*:0' }, true],
    ['chown', { chown: '0:0' }, true],
    ['minimal', { archive: false, hardLinks: false, partial: false, sparse: false, delete: true, excludes: [] }, true],
    ['non-root defaults', {}, false],
    ['selinux labels too', { acls: true, xattrs: true, selinuxXattrs: true }, true],
    ['non-root everything', { checksum: true, compress: true, bwLimitKiBps: 100_000, delete: false }, false],
  ];

  for (const [name, input, root] of variants) {
    for (const final of [false, true]) {
      test(`${name}, ${root ? 'root' : 'non-root'}, ${final ? 'final' : 'stage'}`, async () => {
        const dst = join(base, `dst-${name.replace(/\W+/g, '_')}-${root}-${final}`);
        mkdirSync(dst);
        writeFileSync(join(dst, 'extraneous'), 'old');
        const args = rsyncClientArgs(validateRsyncOptions(input), { final, root });
        const r = await run(['rsync', ...args, `${src}/`, `${dst}/`]);
        expect({ code: r.code, output: r.code === 0 ? '' : r.output }).toEqual({ code: 0, output: '' });
        expect(readFileSync(join(dst, 'dir/sub/a.txt'), 'utf8')).toBe('hello');
        expect(readlinkSync(join(dst, 'rel-link'))).toBe('dir/sub/a.txt');
        const lostFound = (() => { try { statSync(join(dst, 'lost+found')); return true; } catch { return false; } })();
        expect(lostFound).toBe((input.excludes ?? ['/lost+found']).length === 0);
        const extraneousLeft = (() => { try { statSync(join(dst, 'extraneous')); return true; } catch { return false; } })();
        const deletes = input.delete === true || (input.delete !== false && final);
        expect(extraneousLeft).toBe(!deletes);
        if (input.hardLinks !== false) {
          expect(statSync(join(dst, 'hard.txt')).ino).toBe(statSync(join(dst, 'dir/sub/a.txt')).ino);
        }
        if (input.sparse !== false) {
          expect(statSync(join(dst, 'zero.img')).blocks).toBeLessThan(64);
        }
      });
    }
  }
});
