import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYMLINK_LIST_NAME, symlinkRepairScript } from '../../src/statetransfer/transfer/rsync/symlinks';

/** Runs the real repair script as rsyncd's post-xfer exec would, on a list of [path, target] pairs. */
function repair(moduleDir: string, entries: [string, string][], exitStatus = '0') {
  const list = entries.map(([p, t]) => [p, t, "1700000000", ""].join("\u0000")).join('');
  writeFileSync(join(moduleDir, SYMLINK_LIST_NAME), list);
  return spawnSync('bash', ['-c', symlinkRepairScript()], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, RSYNC_MODULE_PATH: moduleDir, RSYNC_MODULE_NAME: 'data', RSYNC_EXIT_STATUS: exitStatus },
  });
}

describe('symlink repair (post-xfer exec of the unprivileged daemon)', () => {
  let base: string;
  let mod: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'ferry-symlinks-'));
    mod = join(base, 'module');
    mkdirSync(join(mod, 'links'), { recursive: true });
    mkdirSync(join(base, 'outside'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('re-creates sanitized links with their original targets and mtimes, then removes the list', () => {
    symlinkSync('etc/hostname', join(mod, 'links', 'abs'));
    symlinkSync('outside', join(mod, 'links', 'up'));
    const r = repair(mod, [['links/abs', '/etc/hostname'], ['links/up', '../../outside']]);
    expect(r.status).toBe(0);
    expect(readlinkSync(join(mod, 'links', 'abs'))).toBe('/etc/hostname');
    expect(readlinkSync(join(mod, 'links', 'up'))).toBe('../../outside');
    expect(Math.floor(lstatSync(join(mod, 'links', 'abs')).mtimeMs / 1000)).toBe(1700000000);
    expect(existsSync(join(mod, SYMLINK_LIST_NAME))).toBe(false);
    expect(r.stderr).toContain('repaired 2 symlink(s), refused 0');
  });

  it('refuses entries that would write outside the module or replace non-links', () => {
    writeFileSync(join(mod, 'regular'), 'keep me');
    symlinkSync(join(base, 'outside'), join(mod, 'escape-dir')); // a directory link leading out
    symlinkSync('x', join(base, 'outside', 'victim'));
    const r = repair(mod, [
      ['../outside/victim', '/pwned'],
      ['/etc/passwd', '/pwned'],
      ['links/./x', '/pwned'],
      ['escape-dir/victim', '/pwned'],
      ['regular', '/pwned'],
      ['missing/dir/link', '/pwned'],
    ]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('repaired 0 symlink(s), refused 6');
    expect(readlinkSync(join(base, 'outside', 'victim'))).toBe('x');
    expect(readFileSync(join(mod, 'regular'), 'utf8')).toBe('keep me');
  });

  it('does nothing after a failed transfer', () => {
    symlinkSync('etc/hostname', join(mod, 'links', 'abs'));
    repair(mod, [['links/abs', '/etc/hostname']], '23');
    expect(readlinkSync(join(mod, 'links', 'abs'))).toBe('etc/hostname');
  });
});
