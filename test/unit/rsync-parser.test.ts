import {
  RsyncOutputParser,
  parseProgress2Line,
  parseRsyncNumber,
  parseRsyncOutput,
  type RsyncParseResult,
} from '../../src/statetransfer/transfer/rsync/parser';
import { captureNames, loadCapture } from '../fixtures/rsync/helpers';

function parsed(name: string, opts = {}): RsyncParseResult {
  return parseRsyncOutput(loadCapture(name).out, opts);
}

// A tiny deterministic PRNG so failures can be reproduced.
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('parseRsyncNumber', () => {
  test.each([
    ['0', 0],
    ['123', 123],
    ['123,456,789', 123456789],
    ['1.234.567', 1234567],
    ['1.23M', 1230000],
    ['52.43M', 52430000],
    ['1,5K', 1500],
    ['2G', 2e9],
    ['1.00T', 1e12],
  ])('%s → %d', (text, n) => {
    expect(parseRsyncNumber(text)).toBe(n);
  });
  test('base 1024 for -hh', () => {
    expect(parseRsyncNumber('50.00M', { humanBase: 1024 })).toBe(52428800);
  });
  test.each([[''], ['abc'], ['12,34'], ['1.2.3M'], ['1e5'], ['-1']])('%j is not a number', (t) => {
    expect(parseRsyncNumber(t)).toBeUndefined();
  });
});

describe('parseProgress2Line', () => {
  test('the brief example', () => {
    expect(parseProgress2Line('    123,456,789  45%   12.34MB/s    0:01:23 (xfr#12, to-chk=100/2000)')).toEqual({
      bytes: 123456789,
      percent: 45,
      rateBytesPerSecond: Math.round(12.34 * 1024 * 1024),
      elapsedSeconds: 83,
      filesTransferred: 12,
      filesToCheck: 100,
      filesTotal: 2000,
      incremental: false,
    });
  });
  test('an in-flight line has an ETA, no file counts', () => {
    expect(parseProgress2Line('     21,430,272  40%   19.43MB/s    0:00:01  ')).toEqual({
      bytes: 21430272,
      percent: 40,
      rateBytesPerSecond: Math.round(19.43 * 1048576),
      etaSeconds: 1,
    });
  });
  test('ir-chk, human-readable, unknown ETA, large hours', () => {
    expect(parseProgress2Line('         52.43M  92%  480.51MB/s    0:00:00 (xfr#2, ir-chk=1099/1202)')).toMatchObject({
      bytes: 52430000,
      incremental: true,
      filesToCheck: 1099,
      filesTotal: 1202,
    });
    const p = parseProgress2Line('  1,000   1%    0.00kB/s  ??:??:??');
    expect(p).toEqual({ bytes: 1000, percent: 1, rateBytesPerSecond: 0 });
    expect(parseProgress2Line('  5   1%    1.00kB/s  1234:05:06')?.etaSeconds).toBe(1234 * 3600 + 5 * 60 + 6);
    expect(parseProgress2Line('  5   1%    1.50GB/s  0:00:01')?.rateBytesPerSecond).toBe(Math.round(1.5 * 1024 ** 3));
  });
  test.each([
    [''],
    ['building file list ... '],
    [' 100 files...'],
    ['Number of files: 10'],
    ['  12  101%  1.00kB/s  0:00:00'],
    ['  12  10%  1.00kB/s'],
    ['deleting 12  10%  1.00kB/s  0:00:00'],
  ])('%j is not progress', (line) => {
    expect(parseProgress2Line(line)).toBeUndefined();
  });

  test('property: random values formatted as rsync does, every -h level, parse back', () => {
    const rnd = prng(20240531);
    const int = (max: number): number => Math.floor(rnd() * max);
    const commas = (n: number): string => n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    const units: [string, number][] = [['kB', 1024], ['MB', 1024 ** 2], ['GB', 1024 ** 3]];
    for (let i = 0; i < 2000; i++) {
      const bytes = int(2 ** 50);
      const percent = int(101);
      const [unit, mult] = units[int(3)]!;
      const rate = int(100_000) / 100;
      const h = int(500);
      const mm = int(60);
      const ss = int(60);
      const clock = `${h}:${String(mm).padStart(2, '0')}:${String(ss).padStart(2, '0')}`;
      const level = int(3); // 0 plain, 1 commas, 2 human (1000)
      let bytesText: string;
      let expectedBytes: number;
      if (level === 0) {
        bytesText = String(bytes);
        expectedBytes = bytes;
      } else if (level === 1) {
        bytesText = commas(bytes);
        expectedBytes = bytes;
      } else {
        const pow = bytes >= 1e15 ? 5 : bytes >= 1e12 ? 4 : bytes >= 1e9 ? 3 : bytes >= 1e6 ? 2 : bytes >= 1e3 ? 1 : 0;
        const scaled = bytes / 1000 ** pow;
        bytesText = pow === 0 ? String(bytes) : `${scaled.toFixed(2)}${' KMGTP'[pow]}`;
        expectedBytes = pow === 0 ? bytes : Math.round(Number(scaled.toFixed(2)) * 1000 ** pow);
      }
      const withFiles = rnd() < 0.5;
      const total = int(10_000_000) + 1;
      const toChk = int(total);
      const xfr = int(total);
      const kind = rnd() < 0.5 ? 'to' : 'ir';
      const tail = withFiles ? ` (xfr#${xfr}, ${kind}-chk=${toChk}/${total})` : '  ';
      const line = `${bytesText.padStart(15)} ${String(percent).padStart(3)}% ${rate.toFixed(2).padStart(7)}${unit}/s ${clock.padStart(11)}${tail}`;
      const p = parseProgress2Line(line);
      expect(p).toBeDefined();
      expect(p!.bytes).toBe(expectedBytes);
      expect(p!.percent).toBe(percent);
      expect(p!.rateBytesPerSecond).toBe(Math.round(Number(rate.toFixed(2)) * mult));
      const seconds = h * 3600 + mm * 60 + ss;
      if (withFiles) {
        expect(p).toMatchObject({ elapsedSeconds: seconds, filesTransferred: xfr, filesToCheck: toChk, filesTotal: total, incremental: kind === 'ir' });
        expect(p!.etaSeconds).toBeUndefined();
      } else {
        expect(p!.etaSeconds).toBe(seconds);
        expect(p!.filesTotal).toBeUndefined();
      }
    }
  });
});

describe('RsyncOutputParser on real captures', () => {
  test('all fixtures are present', () => {
    expect(captureNames()).toEqual(
      expect.arrayContaining([
        'auth-failed', 'chroot-failed', 'disk-full', 'final-delete', 'human', 'incremental', 'max-connections',
        'no-greeting', 'nonroot-rootdir', 'nonroot-unreadable', 'normal', 'refused', 'resync', 'sigterm',
        'timeout', 'unknown-module', 'vanished',
      ]),
    );
  });

  test('normal transfer: stats, progress and file counts agree', () => {
    const r = parsed('normal');
    const s = r.stats!;
    // capture.sh builds 2,000 small files + big.bin + hardlink.dat + sparse.img, 20 dirs + root, 1 symlink;
    // lost+found is excluded.
    expect(s.files).toEqual({ total: 2025, reg: 2003, dir: 21, link: 1 });
    expect(s.createdFiles).toEqual({ total: 2024, reg: 2003, dir: 20, link: 1 });
    expect(s.deletedFiles).toEqual({ total: 0 });
    // The hard link is not sent again.
    expect(s.regularFilesTransferred).toBe(2002);
    expect(s.totalFileSizeBytes).toBeGreaterThan(50 * 1024 * 1024 + 8 * 1024 * 1024);
    expect(s.literalDataBytes! + s.matchedDataBytes!).toBe(s.totalTransferredFileSizeBytes);
    expect(s.sentBytes).toBe(s.totalBytesSent);
    expect(s.receivedBytes).toBe(s.totalBytesReceived);
    expect(s.totalSizeBytes).toBe(s.totalFileSizeBytes);
    expect(s.rateBytesPerSecond).toBeGreaterThan(0);
    expect(s.speedup).toBeGreaterThan(0.5);
    expect(s.fileListGenerationSeconds).toBeGreaterThanOrEqual(0);
    const p = r.progress!;
    expect(p.bytes).toBe(s.totalTransferredFileSizeBytes);
    expect(p.filesTotal).toBe(s.files!.total);
    expect(p.filesToCheck).toBe(0);
    expect(p.filesTransferred).toBe(s.regularFilesTransferred);
    expect(p.incremental).toBe(false);
    expect(r.filesScanned).toBe(2025);
    expect(r.failedFiles).toEqual([]);
    expect(r.messages).toEqual([]);
    expect(r.errorReport).toBeUndefined();
  });

  test('re-sync without changes', () => {
    const r = parsed('resync');
    expect(r.stats).toMatchObject({ regularFilesTransferred: 0, literalDataBytes: 0, totalTransferredFileSizeBytes: 0 });
    expect(r.stats!.files).toEqual(parsed('normal').stats!.files);
    expect(r.progress).toMatchObject({ bytes: 0, filesTransferred: 0, filesToCheck: 0, filesTotal: 2025 });
  });

  test('final sync: deletions counted, delta transfer used', () => {
    const r = parsed('final-delete');
    expect(r.deletedCount).toBe(10);
    expect(r.stats!.deletedFiles).toEqual({ total: 10, reg: 10 });
    expect(r.stats!.regularFilesTransferred).toBe(1);
    expect(r.stats!.matchedDataBytes).toBeGreaterThan(0);
    expect(r.stats!.files!.total).toBe(2015);
  });

  test('human-readable output parses to the same sizes within rounding', () => {
    const exact = parsed('final-delete').stats!;
    const human = parsed('human').stats!;
    expect(human.files).toEqual(exact.files);
    expect(Math.abs(human.totalFileSizeBytes! - exact.totalFileSizeBytes!) / exact.totalFileSizeBytes!).toBeLessThan(0.001);
    expect(Math.abs(human.totalSizeBytes! - exact.totalSizeBytes!) / exact.totalSizeBytes!).toBeLessThan(0.001);
    expect(human.sentBytes).toBeGreaterThan(exact.totalFileSizeBytes! * 0.99);
    const hp = parsed('human').progress!;
    expect(hp.filesTotal).toBe(2015);
    expect(Math.abs(hp.bytes - human.totalTransferredFileSizeBytes!)).toBeLessThan(10_000);
  });

  test('incremental recursion: totals grow while the transfer runs', () => {
    const text = loadCapture('incremental').out;
    const totals = text
      .split(/[\r\n]/)
      .map((l) => parseProgress2Line(l))
      .filter((p) => p?.filesTotal !== undefined)
      .map((p) => p!);
    expect(totals.length).toBeGreaterThan(100);
    // "ir-chk" while directories are still being scanned, "to-chk" once the list is complete.
    expect(totals[0]!.incremental).toBe(true);
    expect(totals[totals.length - 1]!.incremental).toBe(false);
    const firstFinal = totals.findIndex((p) => !p.incremental);
    expect(totals.slice(firstFinal).every((p) => !p.incremental)).toBe(true);
    expect(totals[0]!.filesTotal!).toBeLessThan(totals[totals.length - 1]!.filesTotal!);
    const r = parsed('incremental');
    expect(r.progress!.filesTotal).toBe(r.stats!.files!.total);
    expect(r.filesScanned).toBeUndefined();
  });

  test('vanished files (exit 24)', () => {
    const r = parsed('vanished');
    expect(r.vanishedCount).toBe(10);
    expect(r.failedFiles.map((f) => f.path)).toEqual(
      Array.from({ length: 10 }, (_, i) => `/tmp/ferry-rsync-capture/srcv/z/f0${i}`),
    );
    expect(r.failedFiles.every((f) => f.reason === 'vanished')).toBe(true);
    expect(r.errorReport).toEqual({ code: 24, message: 'some files vanished before they could be transferred', role: 'sender', version: '3.5.0' });
    expect(r.stats!.files!.total).toBe(53);
  });

  test('unreadable source files (non-root, exit 23)', () => {
    const r = parsed('nonroot-unreadable');
    expect(r.failedFiles).toEqual([
      { path: '/tmp/ferry-rsync-capture/nr-src/private', reason: 'Permission denied', errno: 13, role: 'sender', operation: 'opendir' },
      { path: '/tmp/ferry-rsync-capture/nr-src/secret.key', reason: 'Permission denied', errno: 13, role: 'sender', operation: 'send_files failed to open' },
    ]);
    expect(r.errnoCounts).toEqual({ 13: 2 });
    expect(r.errorReport?.code).toBe(23);
    expect(r.stats?.files).toEqual({ total: 14, reg: 11, dir: 2, special: 1 });
  });

  test('destination volume root not changeable (non-root)', () => {
    const r = parsed('nonroot-rootdir');
    expect(r.failedFiles).toEqual([
      { path: '.', reason: 'Operation not permitted', errno: 1, role: 'generator', operation: 'failed to set permissions on' },
    ]);
  });

  test('disk full', () => {
    const r = parsed('disk-full');
    expect(r.errnoCounts[28]).toBe(1);
    expect(r.failedFiles).toContainEqual({ path: '/big.bin', reason: 'No space left on device', errno: 28, role: 'receiver', operation: 'write failed on' });
    expect(r.errorReport?.code).toBe(11);
    expect(r.stats).toBeUndefined();
  });

  test.each([
    ['auth-failed', 'auth failed on module data'],
    ['unknown-module', "Unknown module 'nosuchpvc'"],
    ['max-connections', 'max connections (1) reached -- try again later'],
    ['chroot-failed', 'chroot failed'],
  ])('daemon refusal %s', (name, text) => {
    const r = parsed(name);
    expect(r.daemonError).toBe(text);
    expect(r.errorReport).toMatchObject({ code: 5, message: 'error starting client-server protocol' });
    expect(r.progress).toBeUndefined();
  });

  test('connection errors', () => {
    const refused = parsed('refused');
    expect(refused.errnoCounts).toEqual({ 111: 1 });
    expect(refused.messages[0]).toMatch(/Connection refused \(111\)/);
    expect(refused.errorReport?.code).toBe(10);
    const reset = parsed('no-greeting');
    expect(reset.errnoCounts).toEqual({ 104: 1 });
    expect(reset.errorReport?.code).toBe(12);
  });

  test('signal: the error follows the last progress text on the same line', () => {
    const r = parsed('sigterm');
    expect(r.errorReport).toMatchObject({ code: 20, message: 'received SIGINT, SIGTERM, or SIGHUP' });
    expect(r.progress?.bytes).toBeGreaterThan(0);
    expect(r.progress?.etaSeconds).toBeDefined();
  });

  test('timeout', () => {
    const r = parsed('timeout');
    expect(r.errorReport?.code).toBe(30);
    expect(r.messages.some((m) => /io timeout after \d+ seconds/.test(m))).toBe(true);
  });

  test('any chunking gives the same result as one feed', () => {
    for (const name of ['normal', 'vanished', 'nonroot-unreadable', 'sigterm', 'disk-full']) {
      const text = loadCapture(name).out;
      const whole = parseRsyncOutput(text);
      const rnd = prng(name.length * 7919);
      for (let round = 0; round < 3; round++) {
        const p = new RsyncOutputParser();
        let i = 0;
        while (i < text.length) {
          const n = 1 + Math.floor(rnd() * (round === 0 ? 3 : 4000));
          p.feed(text.slice(i, i + n));
          i += n;
        }
        p.end();
        expect(p.result()).toEqual(whole);
      }
    }
  });
});

describe('RsyncOutputParser mechanics', () => {
  test('\\r, \\n and \\r\\n separators; partial lines wait for their end', () => {
    const p = new RsyncOutputParser();
    p.feed('   1,000  10%    1.00kB/s    0:00:09\r   2,0');
    expect(p.latestProgress()?.bytes).toBe(1000);
    p.feed('00  20%    1.00kB/s    0:00:08\r\n');
    expect(p.latestProgress()?.bytes).toBe(2000);
    p.feed('   3,000  30%    1.00kB/s    0:00:07');
    expect(p.latestProgress()?.bytes).toBe(2000);
    p.end();
    expect(p.latestProgress()?.bytes).toBe(3000);
  });

  test('failed files are capped and counted; messages capped', () => {
    const p = new RsyncOutputParser({ maxFailedFiles: 5, maxMessages: 2 });
    for (let i = 0; i < 12; i++) p.feed(`rsync: [sender] send_files failed to open "/d/f${i}": Permission denied (13)\n`);
    for (let i = 0; i < 4; i++) p.feed(`rsync: [sender] some problem ${i}\n`);
    const r = p.result();
    expect(r.failedFiles).toHaveLength(5);
    expect(r.failedFiles[4]!.path).toBe('/d/f4');
    expect(r.failedFilesOmitted).toBe(7);
    expect(r.errnoCounts[13]).toBe(12);
    expect(r.messages).toEqual(['rsync: [sender] some problem 0', 'rsync: [sender] some problem 1']);
    expect(r.messagesOmitted).toBe(2);
  });

  test('vanished files are all counted beyond the cap', () => {
    const p = new RsyncOutputParser({ maxFailedFiles: 1 });
    p.feed('file has vanished: "/a"\nfile has vanished: "/b"\nrsync: [sender] file has vanished: "/c"\n');
    expect(p.result()).toMatchObject({ vanishedCount: 3, failedFilesOmitted: 2, failedFiles: [{ path: '/a', reason: 'vanished' }] });
  });

  test('a line without separators is cut, memory stays bounded', () => {
    const p = new RsyncOutputParser({ maxLineLength: 100 });
    const huge = `rsync: [receiver] write failed on "/${'x'.repeat(1_000_000)}": No space left on device (28)`;
    p.feed(huge);
    p.feed('\n');
    p.feed('   7  70%    1.00kB/s    0:00:01\n');
    const r = p.result();
    expect(r.messages[0]!.length).toBeLessThanOrEqual(100);
    expect(r.progress?.bytes).toBe(7);
  });

  test('result() is a snapshot', () => {
    const p = new RsyncOutputParser();
    p.feed('rsync: [sender] send_files failed to open "/x": Permission denied (13)\n');
    const r = p.result();
    r.failedFiles.push({ path: 'y', reason: 'z' });
    r.errnoCounts[13] = 99;
    expect(p.result().failedFiles).toHaveLength(1);
    expect(p.result().errnoCounts[13]).toBe(1);
  });

  test('IO error skipping deletions, scan counter, skipped specials', () => {
    const r = parseRsyncOutput(
      'building file list ... \n 0 files...\r 100 files...\r 1,200 files...\r1234 files to consider\n' +
        'skipping non-regular file "fifo"\nIO error encountered -- skipping file deletion\n',
    );
    expect(r.filesScanned).toBe(1234);
    expect(r.skippedCount).toBe(1);
    expect(r.deletionsSkipped).toBe(true);
  });
});
