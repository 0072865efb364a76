import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYMLINK_LIST_NAME, symlinkRepairScript } from '../../src/statetransfer/transfer/rsync/symlinks';

/** Runs the real repair script as the repair module's pre-xfer exec would (`bash script DATA LINKS`),
 * on a list of [path, target] pairs uploaded to the links directory. */
function repair(moduleDir: string, linksDir: string, entries: [string, string][] | undefined) {
  if (entries) writeFileSync(join(linksDir, SYMLINK_LIST_NAME), entries.map(([p, t]) => [p, t, '1700000000', ''].join('\u0000')).join(''));
  return spawnSync('bash', ['-c', symlinkRepairScript(), 'repair-symlinks.sh', moduleDir, linksDir], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, RSYNC_MODULE_NAME: 'data_ferry-repair' },
  });
}

describe('symlink repair (post-xfer exec of the unprivileged daemon)', () => {
  let base: string;
  let mod: string;
  let links: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'ferry-symlinks-'));
    mod = join(base, 'module');
    links = join(base, 'ferry-links');
    mkdirSync(links);
    mkdirSync(join(mod, 'links'), { recursive: true });
    mkdirSync(join(base, 'outside'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('re-creates sanitized links with their original targets and mtimes, then removes the list', () => {
    symlinkSync('etc/hostname', join(mod, 'links', 'abs'));
    symlinkSync('outside', join(mod, 'links', 'up'));
    // A user file named like the old list, at the volume root, is data: never read, never removed.
    writeFileSync(join(mod, '.ferry-symlinks'), 'user data\n');
    const r = repair(mod, links, [['links/abs', '/etc/hostname'], ['links/up', '../../outside']]);
    expect(r.status).toBe(0);
    expect(readlinkSync(join(mod, 'links', 'abs'))).toBe('/etc/hostname');
    expect(readlinkSync(join(mod, 'links', 'up'))).toBe('../../outside');
    expect(Math.floor(lstatSync(join(mod, 'links', 'abs')).mtimeMs / 1000)).toBe(1700000000);
    expect(existsSync(join(links, SYMLINK_LIST_NAME))).toBe(false);
    expect(readFileSync(join(mod, '.ferry-symlinks'), 'utf8')).toBe('user data\n');
    expect(r.stderr).toContain('repaired 2 symlink(s), skipped 0, refused 0, failed 0');
  });

  it('refuses entries that would write outside the module or replace non-links', () => {
    writeFileSync(join(mod, 'regular'), 'keep me');
    symlinkSync(join(base, 'outside'), join(mod, 'escape-dir')); // a directory link leading out
    symlinkSync('x', join(base, 'outside', 'victim'));
    const r = repair(mod, links, [
      ['../outside/victim', '/pwned'],
      ['/etc/passwd', '/pwned'],
      ['links/./x', '/pwned'],
      ['escape-dir/victim', '/pwned'],
      ['regular', '/pwned'],
      ['missing/dir/link', '/pwned'],
    ]);
    expect(r.status).toBe(0);
    // Unsafe paths are refused; a path that is not a symlink at the destination is skipped.
    expect(r.stderr).toContain('repaired 0 symlink(s), skipped 2, refused 4, failed 0');
    expect(readlinkSync(join(base, 'outside', 'victim'))).toBe('x');
    expect(readFileSync(join(mod, 'regular'), 'utf8')).toBe('keep me');
  });

  it('fails, with the reason on stdout for the client, when no list was uploaded', () => {
    symlinkSync('etc/hostname', join(mod, 'links', 'abs'));
    const r = repair(mod, links, undefined);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/no symlink list was uploaded/);
    expect(readlinkSync(join(mod, 'links', 'abs'))).toBe('etc/hostname');
  });
});
