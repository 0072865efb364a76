import { RSYNC_EXIT_MEANINGS, classifyRsyncExit, type RsyncOutcome } from '../../src/statetransfer/transfer/rsync/exit-codes';
import { parseRsyncOutput } from '../../src/statetransfer/transfer/rsync/parser';
import { captureNames, loadCapture } from '../fixtures/rsync/helpers';

describe('classifyRsyncExit by code', () => {
  test.each<[number, RsyncOutcome]>([
    [0, 'success'],
    [1, 'fatal'],
    [2, 'fatal'],
    [3, 'fatal'],
    [4, 'fatal'],
    [5, 'retryable'],
    [6, 'fatal'],
    [10, 'retryable'],
    [11, 'fatal'],
    [12, 'retryable'],
    [13, 'fatal'],
    [14, 'fatal'],
    [15, 'fatal'],
    [16, 'retryable'],
    [19, 'retryable'],
    [20, 'retryable'],
    [21, 'fatal'],
    [22, 'fatal'],
    [23, 'partial'],
    [24, 'partial'],
    [25, 'fatal'],
    [30, 'retryable'],
    [35, 'retryable'],
  ])('code %d → %s', (code, outcome) => {
    const c = classifyRsyncExit(code);
    expect(c.code).toBe(code);
    expect(c.outcome).toBe(outcome);
    expect(c.meaning).toBe(RSYNC_EXIT_MEANINGS[code]);
    expect(c.explanation.length).toBeGreaterThan(20);
    expect(c.failedFiles).toEqual([]);
  });

  test('meanings are the rsync(1) EXIT VALUES texts', () => {
    expect(RSYNC_EXIT_MEANINGS[23]).toBe('Partial transfer due to error');
    expect(RSYNC_EXIT_MEANINGS[24]).toBe('Partial transfer due to vanished source files');
    expect(RSYNC_EXIT_MEANINGS[35]).toBe('Timeout waiting for daemon connection');
    expect(RSYNC_EXIT_MEANINGS[5]).toBe('Error starting client-server protocol');
  });

  test.each([[7], [99], [255], [-1]])('unknown code %d is fatal and named', (code) => {
    const c = classifyRsyncExit(code);
    expect(c.outcome).toBe('fatal');
    expect(c.meaning).toBe(`Unknown exit code ${code}`);
    expect(c.explanation).toContain(String(code));
  });

  test('container exit 137 is explained as SIGKILL', () => {
    expect(classifyRsyncExit(137).explanation).toMatch(/signal 9.*SIGKILL/);
  });

  test('vanished files: partial, not a failure of a stage', () => {
    const c = classifyRsyncExit(24, { failedFiles: [{ path: '/a', reason: 'vanished' }] });
    expect(c.outcome).toBe('partial');
    expect(c.explanation).toMatch(/stage sync .* not a failure/);
    expect(c.failedFiles).toEqual([{ path: '/a', reason: 'vanished' }]);
  });
});

describe('classifyRsyncExit with output evidence', () => {
  test.each([[11], [12], [23], [10], [30]])('ENOSPC overrides code %d: fatal, grow the PVC', (code) => {
    const c = classifyRsyncExit(code, { lines: ['rsync: [receiver] write failed on "/x": No space left on device (28)'] });
    expect(c.outcome).toBe('fatal');
    expect(c.explanation).toMatch(/too small.*[Gg]row/);
  });

  test('quota exceeded and read-only file system are fatal', () => {
    expect(classifyRsyncExit(23, { errnoCounts: { 122: 1 } }).outcome).toBe('fatal');
    expect(classifyRsyncExit(23, { failedFiles: [{ path: '/a', reason: 'Disk quota exceeded', errno: 122 }] }).explanation).toMatch(/too small/);
    const ro = classifyRsyncExit(23, { lines: ['rsync: [receiver] mkstemp "/a" failed: Read-only file system (30)'] });
    expect(ro).toMatchObject({ outcome: 'fatal', explanation: expect.stringMatching(/read-only/) });
  });

  test('success stays success', () => {
    expect(classifyRsyncExit(0, { errnoCounts: { 28: 1 } }).outcome).toBe('success');
  });

  test.each<[string, RsyncOutcome, RegExp]>([
    ['auth failed on module data', 'fatal', /[Cc]redentials mismatch/],
    ["Unknown module 'x'", 'fatal', /no such module/],
    ['access denied to data from UNDETERMINED (127.0.0.1)', 'fatal', /refused the module/],
    ['chroot failed', 'fatal', /capabilities/],
    ['setgroups failed', 'fatal', /capabilities/],
    ['max connections (1) reached -- try again later', 'retryable', /still connected/],
    ['something new', 'retryable', /refused the session/],
  ])('code 5 with @ERROR: %s', (text, outcome, re) => {
    for (const ev of [{ daemonError: text }, { lines: [`@ERROR: ${text}`] }]) {
      const c = classifyRsyncExit(5, ev);
      expect(c.outcome).toBe(outcome);
      expect(c.explanation).toMatch(re);
    }
  });

  test('code 23 hints at permissions and skipped deletions', () => {
    const c = classifyRsyncExit(23, {
      failedFiles: [{ path: '/a', reason: 'Permission denied', errno: 13 }],
      deletionsSkipped: true,
    });
    expect(c.outcome).toBe('partial');
    expect(c.explanation).toMatch(/preserve-ownership/);
    expect(c.explanation).toMatch(/skipped all deletions/);
  });

  test('code 23 with only the volume root attributes failing is a success', () => {
    const rootOnly = [{ path: '.', reason: 'Operation not permitted', errno: 1, role: 'generator', operation: 'failed to set permissions on' }];
    expect(classifyRsyncExit(23, { failedFiles: rootOnly, messages: [] }).outcome).toBe('success');
    // Anything else makes it partial again.
    expect(classifyRsyncExit(23, { failedFiles: [...rootOnly, { path: '/b', reason: 'Permission denied', errno: 13 }] }).outcome).toBe('partial');
    expect(classifyRsyncExit(23, { failedFiles: rootOnly, failedFilesOmitted: 1 }).outcome).toBe('partial');
    expect(classifyRsyncExit(23, { failedFiles: rootOnly, messages: ['rsync: [sender] readlink_stat("/x") failed'] }).outcome).toBe('partial');
    expect(classifyRsyncExit(23, { failedFiles: [{ ...rootOnly[0]!, path: 'sub' }] }).outcome).toBe('partial');
  });

  test('a failed symlink repair is fatal and says what happened (issue 8 item 7)', () => {
    const lines = ['sent 1,234 bytes  received 56 bytes', 'ferry: symlink repair failed on the destination: could not re-create 2 symlink(s) in /data'];
    const c = classifyRsyncExit(11, { lines });
    expect(c.outcome).toBe('fatal');
    expect(c.explanation).toMatch(/files were copied, but re-creating the symlinks .* failed on the destination \(ferry: symlink repair failed/);
    // Without the marker, 11 keeps its usual meaning.
    expect(classifyRsyncExit(11, { lines: lines.slice(0, 1) }).explanation).toMatch(/could not be read or written/);
  });

  test('password file and write-only module explanations for code 1', () => {
    expect(classifyRsyncExit(1, { lines: ['ERROR: password file must not be other-accessible'] }).explanation).toMatch(/0400/);
    expect(classifyRsyncExit(1, { lines: ['ERROR: module is write only'] }).explanation).toMatch(/write-only/);
  });
});

describe('classifyRsyncExit on the real captures', () => {
  const expected: Record<string, { outcome: RsyncOutcome; explanation?: RegExp; failed?: number }> = {
    normal: { outcome: 'success' },
    resync: { outcome: 'success' },
    'final-delete': { outcome: 'success' },
    human: { outcome: 'success' },
    incremental: { outcome: 'success' },
    vanished: { outcome: 'partial', explanation: /vanished/, failed: 10 },
    'auth-failed': { outcome: 'fatal', explanation: /[Cc]redentials mismatch/ },
    'unknown-module': { outcome: 'fatal', explanation: /no such module/ },
    refused: { outcome: 'retryable', explanation: /Connection refused/ },
    'no-greeting': { outcome: 'retryable' },
    'disk-full': { outcome: 'fatal', explanation: /too small/ },
    'nonroot-unreadable': { outcome: 'partial', explanation: /preserve-ownership/, failed: 2 },
    'nonroot-rootdir': { outcome: 'success', explanation: /volume root/ },
    'max-connections': { outcome: 'retryable', explanation: /still connected/ },
    sigterm: { outcome: 'retryable' },
    timeout: { outcome: 'retryable' },
    'chroot-failed': { outcome: 'fatal', explanation: /capabilities/ },
  };

  test('every capture has an expectation', () => {
    expect(captureNames().sort()).toEqual(Object.keys(expected).sort());
  });

  test.each(Object.entries(expected))('%s', (name, want) => {
    const cap = loadCapture(name);
    const parsed = parseRsyncOutput(cap.out);
    const c = classifyRsyncExit(cap.exit, parsed);
    expect(c.outcome).toBe(want.outcome);
    if (want.explanation) expect(c.explanation).toMatch(want.explanation);
    if (want.failed !== undefined) expect(c.failedFiles).toHaveLength(want.failed);
    // The exit code printed by rsync itself agrees with the process exit code.
    if (parsed.errorReport) expect(parsed.errorReport.code).toBe(cap.exit);
    // Raw lines alone lead to the same outcome as the parsed result.
    expect(classifyRsyncExit(cap.exit, { lines: cap.out.split(/[\r\n]+/) }).outcome).toBe(
      name === 'nonroot-rootdir' ? 'partial' : want.outcome,
    );
  });
});
