import { RsyncdConfError, moduleNameProblem, renderRsyncdConf, renderRsyncdSecrets, type RsyncdConfParams } from '../../src/statetransfer/transfer/rsync/rsyncd-conf';
import { generatePassword } from '../../src/statetransfer/password';

const base: RsyncdConfParams = {
  modules: [
    { name: 'data', path: '/mnt/data' },
    { name: 'db-0', path: '/mnt/db-0' },
  ],
  bindAddress: '127.0.0.1',
  port: 2222,
  authUser: 'ferry',
  secretsFile: '/etc/ferry/rsyncd-secrets/rsyncd.secrets',
  root: true,
  runDir: '/run/ferry/rsyncd',
};

/** Parses rsyncd.conf into { global, modules } maps (rsyncd.conf(5) syntax: [name], key = value). */
function parseConf(text: string): { global: Record<string, string>; modules: Record<string, Record<string, string>> } {
  const global: Record<string, string> = {};
  const modules: Record<string, Record<string, string>> = {};
  let current = global;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const sec = /^\[(.*)\]$/.exec(line);
    if (sec) {
      modules[sec[1]!] = {};
      current = modules[sec[1]!]!;
      continue;
    }
    const kv = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new Error(`bad line ${line}`);
    if (kv[1]! in current) throw new Error(`duplicate key ${kv[1]}`);
    current[kv[1]!] = kv[2]!;
  }
  return { global, modules };
}

describe('renderRsyncdConf', () => {
  test('root: chroot, uid/gid 0, numeric ids, symlinks not munged, one module per PVC', () => {
    const { global, modules } = parseConf(renderRsyncdConf(base));
    expect(global).toEqual({
      port: '2222',
      address: '127.0.0.1',
      'pid file': '/run/ferry/rsyncd/rsyncd.pid',
      'log file': '/dev/stdout',
      'reverse lookup': 'no',
      'use chroot': 'yes',
      uid: '0',
      gid: '0',
      'numeric ids': 'yes',
      'munge symlinks': 'no',
    });
    expect(Object.keys(modules)).toEqual(['data', 'db-0']);
    expect(modules['data']).toEqual({
      path: '/mnt/data',
      'read only': 'no',
      'write only': 'yes',
      list: 'no',
      'hosts allow': '127.0.0.1 ::1',
      'hosts deny': '*',
      'auth users': 'ferry',
      'secrets file': '/etc/ferry/rsyncd-secrets/rsyncd.secrets',
      'strict modes': 'yes',
      'max connections': '1',
      'lock file': '/run/ferry/rsyncd/module-0.lock',
      timeout: '600',
    });
    expect(modules['db-0']!['lock file']).toBe('/run/ferry/rsyncd/module-1.lock');
    expect(modules['db-0']!.path).toBe('/mnt/db-0');
  });

  test('non-root: no chroot, no uid/gid', () => {
    const { global } = parseConf(renderRsyncdConf({ ...base, root: false, timeoutSeconds: 30, runDir: '/tmp/r/' }));
    expect(global['use chroot']).toBe('no');
    expect(global).not.toHaveProperty('uid');
    expect(global).not.toHaveProperty('gid');
    expect(global['munge symlinks']).toBe('no');
    expect(global['pid file']).toBe('/tmp/r/rsyncd.pid');
    expect(parseConf(renderRsyncdConf({ ...base, root: false, timeoutSeconds: 30 })).modules['data']!.timeout).toBe('30');
  });

  test('non-root symlink repair: its own modules outside the data, the repair as pre-xfer exec (issue 8 item 7)', () => {
    const { modules } = parseConf(renderRsyncdConf({ ...base, root: false, symlinkRepair: { script: '/etc/ferry/rsyncd/repair-symlinks.sh', linksRoot: '/tmp/ferry-links' } }));
    expect(Object.keys(modules)).toEqual(['data', 'data_ferry-links', 'data_ferry-repair', 'db-0', 'db-0_ferry-links', 'db-0_ferry-repair']);
    // The data modules run nothing after a transfer: no list is ever looked for in the user's tree.
    expect(modules['data']).not.toHaveProperty('post-xfer exec');
    expect(modules['db-0_ferry-links']).toMatchObject({ path: '/tmp/ferry-links/1', 'write only': 'yes', 'read only': 'no', 'auth users': 'ferry', 'max connections': '1', 'lock file': '/run/ferry/rsyncd/module-1-links.lock' });
    expect(modules['db-0_ferry-repair']).toMatchObject({
      path: '/tmp/ferry-links/1',
      'read only': 'yes',
      'auth users': 'ferry',
      'pre-xfer exec': '/bin/bash /etc/ferry/rsyncd/repair-symlinks.sh /mnt/db-0 /tmp/ferry-links/1',
      'lock file': '/run/ferry/rsyncd/module-1-repair.lock',
    });
    // '_' is not allowed in PVC names, so these names cannot be a data module's.
    expect(moduleNameProblem('data_ferry-links')).toBeUndefined();
  });

  test('IPv6 loopback and another 127/8 address', () => {
    expect(parseConf(renderRsyncdConf({ ...base, bindAddress: '::1' })).global.address).toBe('::1');
    const c = parseConf(renderRsyncdConf({ ...base, bindAddress: '127.0.0.2' }));
    expect(c.modules['data']!['hosts allow']).toBe('127.0.0.2 127.0.0.1 ::1');
  });

  test.each<[string, Partial<RsyncdConfParams>, RegExp]>([
    ['no modules', { modules: [] }, /at least one module/],
    ['non-loopback bind', { bindAddress: '0.0.0.0' }, /loopback/],
    ['pod IP bind', { bindAddress: '10.0.0.5' }, /loopback/],
    ['port 0', { port: 0 }, /port/],
    ['port 70000', { port: 70000 }, /port/],
    ['bad user', { authUser: 'a:b' }, /authUser/],
    ['relative secrets', { secretsFile: 'secrets' }, /absolute/],
    ['secrets with newline', { secretsFile: '/a\nb' }, /single-line/],
    ['run dir with ..', { runDir: '/run/../etc' }, /'\.\.'/],
    ['run dir with %', { runDir: '/run/%USER%' }, /%/],
    ['module with ]', { modules: [{ name: 'a]b', path: '/x' }] }, /'\]'/],
    ['module with [', { modules: [{ name: 'a[b', path: '/x' }] }, /'\['/],
    ['module with /', { modules: [{ name: 'a/b', path: '/x' }] }, /'\/'/],
    ['module with newline', { modules: [{ name: 'a\nb', path: '/x' }] }, /control/],
    ['module with trailing space', { modules: [{ name: 'ab ', path: '/x' }] }, /whitespace/],
    ['module global', { modules: [{ name: 'Global', path: '/x' }] }, /reserved/],
    ['module comment', { modules: [{ name: '#x', path: '/x' }] }, /'#'/],
    ['empty module name', { modules: [{ name: '', path: '/x' }] }, /empty/],
    ['duplicate modules', { modules: [{ name: 'a', path: '/x' }, { name: 'A', path: '/y' }] }, /duplicate/],
    ['relative module path', { modules: [{ name: 'a', path: 'x' }] }, /absolute/],
    ['chroot divider in path', { modules: [{ name: 'a', path: '/x/./y' }] }, /chroot/],
    ['negative timeout', { timeoutSeconds: -1 }, /timeoutSeconds/],
  ])('refuses %s', (_name, patch, re) => {
    expect(() => renderRsyncdConf({ ...base, ...patch })).toThrow(RsyncdConfError);
    expect(() => renderRsyncdConf({ ...base, ...patch })).toThrow(re);
  });

  test('moduleNameProblem accepts PVC names', () => {
    for (const n of ['data', 'data-postgres-0', 'a.b.c', 'x'.repeat(253)]) expect(moduleNameProblem(n)).toBeUndefined();
    expect(moduleNameProblem('x'.repeat(254))).toMatch(/253/);
  });
});

describe('secrets and passwords', () => {
  test('renderRsyncdSecrets', () => {
    expect(renderRsyncdSecrets('ferry', 'pw-1')).toBe('ferry:pw-1\n');
    expect(() => renderRsyncdSecrets('ferry', '')).toThrow(RsyncdConfError);
    expect(() => renderRsyncdSecrets('ferry', 'a\nb')).toThrow(/newline/);
    expect(() => renderRsyncdSecrets('fe:rry', 'x')).toThrow(/user/);
  });

  test('generatePassword: 256 bits, base64url, unique', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const p = generatePassword();
      expect(p).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(p, 'base64url')).toHaveLength(32);
      seen.add(p);
    }
    expect(seen.size).toBe(200);
    // Characters are spread over the alphabet (a clock-seeded or constant generator would not be).
    const chars = new Set([...seen].join(''));
    expect(chars.size).toBeGreaterThan(60);
  });
});
