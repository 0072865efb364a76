/**
 * Ferry's metrics registry (src/metrics): the recording calls move the right series, labels stay in a
 * bounded set (no file name ever becomes a label), and the HTTP endpoint serves them. Also the
 * worker's choice of metrics ports (off unless configured).
 */
import { FerryMetrics, observeDowntime, parseListenAddress, startMetricsServer, type SyncLabels } from '../../src/metrics';
import { metricsAddresses } from '../../src/worker';
import { FailureType, type TransferResult } from '../../src/core/types';
import { parseSamples, scrape, sumOf } from '../support/prometheus';

const sync = (over: Partial<SyncLabels> = {}): SyncLabels => ({ migration: 'm1', namespace: 'shop', pvc: 'data', final: false, pass: 1, ...over });
const result = (over: Partial<TransferResult> = {}): TransferResult => ({ exitCode: 0, outcome: 'success', message: 'ok', durationSeconds: 3, bytesSent: 1000, filesTransferred: 7, ...over });
const samples = async (m: FerryMetrics) => parseSamples(await m.text());

describe('FerryMetrics', () => {
  it('a finished sync adds its TransferResult bytes and files, counts its result, its stage pass and its pass number', async () => {
    const m = new FerryMetrics();
    m.syncEnded(sync(), { result: 'success', value: result({ bytesSent: 1000, filesTransferred: 7 }) });
    m.syncEnded(sync({ pass: 2 }), { result: 'success', value: result({ bytesSent: 234, filesTransferred: 1, outcome: 'partial' }) });
    m.syncEnded(sync({ pvc: 'logs', final: true, pass: 3 }), { result: 'success', value: result({ bytesSent: 50, filesTransferred: 2 }) });
    const s = await samples(m);
    expect(sumOf(s, 'ferry_transfer_bytes_total', { migration: 'm1', namespace: 'shop', pvc: 'data' })).toBe(1234);
    expect(sumOf(s, 'ferry_transfer_bytes_total', { pvc: 'logs' })).toBe(50);
    expect(sumOf(s, 'ferry_transfer_files_total', { pvc: 'data' })).toBe(8);
    expect(sumOf(s, 'ferry_syncs_total', { sync: 'stage', result: 'success' })).toBe(1);
    expect(sumOf(s, 'ferry_syncs_total', { sync: 'stage', result: 'partial' })).toBe(1);
    expect(sumOf(s, 'ferry_syncs_total', { sync: 'final', result: 'success' })).toBe(1);
    expect(sumOf(s, 'ferry_stage_passes_total', { migration: 'm1', namespace: 'shop' })).toBe(2);
    expect(sumOf(s, 'ferry_sync_pass', { pvc: 'data' })).toBe(2);
    expect(sumOf(s, 'ferry_sync_pass', { pvc: 'logs' })).toBe(3);
  });

  it('failed and cancelled syncs are counted by failure type and move no bytes; unknown types count as "other"', async () => {
    const m = new FerryMetrics();
    m.syncEnded(sync(), { result: 'failed', failureType: FailureType.NoSpace });
    m.syncEnded(sync(), { result: 'failed', failureType: FailureType.NoSpace });
    m.syncEnded(sync(), { result: 'failed', failureType: 'SomethingElse' });
    m.syncEnded(sync({ final: true }), { result: 'cancelled' });
    const s = await samples(m);
    expect(sumOf(s, 'ferry_syncs_total', { result: 'failed', failure_type: 'FerryNoSpace' })).toBe(2);
    expect(sumOf(s, 'ferry_syncs_total', { result: 'failed', failure_type: 'other' })).toBe(1);
    expect(sumOf(s, 'ferry_syncs_total', { sync: 'final', result: 'cancelled', failure_type: '' })).toBe(1);
    expect(sumOf(s, 'ferry_transfer_bytes_total')).toBe(0);
    expect(s.some((x) => x.labels.failure_type === 'SomethingElse')).toBe(false);
  });

  it('the rate and progress gauges follow the running sync and go when it ends', async () => {
    const m = new FerryMetrics();
    m.syncProgress(sync(), undefined); // before the first progress line: nothing
    expect(sumOf(await samples(m), 'ferry_transfer_rate_bytes_per_second')).toBe(0);
    m.syncProgress(sync(), { bytes: 4096, rate: 2_000_000 });
    m.syncProgress(sync({ pvc: 'logs' }), { bytes: 10, rate: 500 });
    let s = await samples(m);
    expect(sumOf(s, 'ferry_transfer_rate_bytes_per_second', { pvc: 'data' })).toBe(2_000_000);
    expect(sumOf(s, 'ferry_transfer_rate_bytes_per_second', { namespace: 'shop' })).toBe(2_000_500); // per namespace: sum
    expect(sumOf(s, 'ferry_transfer_progress_bytes', { pvc: 'data' })).toBe(4096);
    m.syncEnded(sync(), { result: 'success', value: result() });
    s = await samples(m);
    expect(s.filter((x) => x.name === 'ferry_transfer_rate_bytes_per_second').map((x) => x.labels.pvc)).toEqual(['logs']);
    expect(s.filter((x) => x.name === 'ferry_transfer_progress_bytes').map((x) => x.labels.pvc)).toEqual(['logs']);
  });

  it('labels come from a bounded set, and no file name (failed files, messages) becomes a label value', async () => {
    const m = new FerryMetrics();
    const files = ['secret/customer-0001.csv', 'tmp/x.lock'];
    m.syncEnded(sync(), { result: 'success', value: result({ outcome: 'partial', failedFiles: files, message: `failed: ${files.join(', ')}` }) });
    m.syncProgress(sync(), { bytes: 1, rate: 1 });
    m.activityEnded('runTransfer', { migration: 'm1', namespace: 'shop' }, { result: 'failed', failureType: FailureType.Partial });
    m.activityEnded('preflight', { migration: 'm1' }, { result: 'success', value: [] });
    m.imagesCopied({ migration: 'm1', namespace: 'shop' }, { copied: [{ source: 'a/b:1', destination: 'c/b:1', digest: 'sha256:0' }], skipped: [{ source: 'docker.io/x', reason: 'external' }] });
    m.observeDowntime({ migration: 'm1', namespace: 'shop' }, 12);
    await m.timeQuiesce('m1', 'scale', async () => undefined);
    m.clientPodActive({ migration: 'm1', namespace: 'shop' }, 'agent');
    const allowed = new Set(['migration', 'namespace', 'pvc', 'result', 'failure_type', 'activity', 'sync', 'step', 'kind', 'le']);
    const ferry = (await samples(m)).filter((x) => x.name.startsWith('ferry_'));
    expect(new Set(ferry.map((x) => x.name.replace(/_(bucket|sum|count)$/, ''))).size).toBe(12); // every metric has a sample
    expect([...new Set(ferry.flatMap((x) => Object.keys(x.labels)))].filter((k) => !allowed.has(k))).toEqual([]);
    const text = await m.text();
    for (const f of files) expect(text).not.toContain(f);
  });

  it('counts every activity end by result and failure type', async () => {
    const m = new FerryMetrics();
    m.activityEnded('createServer', { migration: 'm1', namespace: 'shop' }, { result: 'failed', failureType: FailureType.Auth });
    m.activityEnded('createServer', { migration: 'm1', namespace: 'shop' }, { result: 'success', value: undefined });
    m.activityEnded('quiesce', { migration: 'm1' }, { result: 'cancelled' });
    const s = await samples(m);
    expect(sumOf(s, 'ferry_activity_results_total', { activity: 'createServer', result: 'failed', failure_type: 'FerryAuth' })).toBe(1);
    expect(sumOf(s, 'ferry_activity_results_total', { activity: 'createServer', result: 'success' })).toBe(1);
    expect(sumOf(s, 'ferry_activity_results_total', { activity: 'quiesce', namespace: '', result: 'cancelled' })).toBe(1);
  });

  it('quiesce durations are recorded for steps that succeed only', async () => {
    const m = new FerryMetrics();
    await m.timeQuiesce('m1', 'wait', () => new Promise((r) => setTimeout(r, 120)));
    await expect(m.timeQuiesce('m1', 'scale', () => Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    const s = await samples(m);
    expect(sumOf(s, 'ferry_quiesce_duration_seconds_count', { step: 'wait' })).toBe(1);
    expect(sumOf(s, 'ferry_quiesce_duration_seconds_sum', { step: 'wait' })).toBeGreaterThanOrEqual(0.1);
    expect(sumOf(s, 'ferry_quiesce_duration_seconds_count', { step: 'scale' })).toBe(0);
  });

  it('the downtime histogram takes observeDowntime and refuses negative or non-numeric seconds', async () => {
    const m = new FerryMetrics();
    observeDowntime({ migration: 'm1', namespace: 'shop' }, 42, m);
    observeDowntime({ migration: 'm1', namespace: 'shop' }, 3, m);
    expect(() => observeDowntime({ migration: 'm1', namespace: 'shop' }, -1, m)).toThrow(RangeError);
    expect(() => observeDowntime({ migration: 'm1', namespace: 'shop' }, NaN, m)).toThrow(RangeError);
    const s = await samples(m);
    expect(sumOf(s, 'ferry_downtime_seconds_count', { migration: 'm1', namespace: 'shop' })).toBe(2);
    expect(sumOf(s, 'ferry_downtime_seconds_sum', { namespace: 'shop' })).toBe(45);
    expect(sumOf(s, 'ferry_downtime_seconds_bucket', { namespace: 'shop', le: '5' })).toBe(1);
    expect(sumOf(s, 'ferry_downtime_seconds_bucket', { namespace: 'shop', le: '60' })).toBe(2);
  });

  it('active client pods go up while a sync is followed and down once (an end called twice counts once)', async () => {
    const m = new FerryMetrics();
    const a = m.clientPodActive({ migration: 'm1', namespace: 'shop' }, 'agent');
    const b = m.clientPodActive({ migration: 'm1', namespace: 'shop' }, 'pod');
    m.clientPodActive({ migration: 'm1', namespace: 'shop' }, 'agent');
    expect(sumOf(await samples(m), 'ferry_active_client_pods', { kind: 'agent' })).toBe(2);
    a();
    a();
    b();
    const s = await samples(m);
    expect(sumOf(s, 'ferry_active_client_pods', { kind: 'agent' })).toBe(1);
    expect(sumOf(s, 'ferry_active_client_pods', { kind: 'pod' })).toBe(0);
  });

  it('image copies count copied and skipped images', async () => {
    const m = new FerryMetrics();
    m.imagesCopied({ migration: 'm1', namespace: 'shop' }, { copied: [{ source: 'a', destination: 'b', digest: 'd' }, { source: 'c', destination: 'd', digest: 'e' }], skipped: [] });
    const s = await samples(m);
    expect(sumOf(s, 'ferry_image_copies_total', { result: 'copied' })).toBe(2);
    expect(sumOf(s, 'ferry_image_copies_total', { result: 'skipped' })).toBe(0);
  });
});

describe('the metrics endpoint', () => {
  it('serves the registry at /metrics in the text format with the process metrics; other paths are 404', async () => {
    const m = new FerryMetrics();
    const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, m);
    try {
      m.syncEnded(sync(), { result: 'success', value: result({ bytesSent: 777 }) });
      const r = await scrape(server.url);
      expect(r.status).toBe(200);
      expect(r.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(sumOf(r.samples, 'ferry_transfer_bytes_total', { migration: 'm1', pvc: 'data' })).toBe(777);
      expect(r.text).toMatch(/^# HELP ferry_transfer_bytes_total /m);
      expect(r.samples.some((x) => x.name === 'process_cpu_user_seconds_total')).toBe(true);
      m.syncEnded(sync(), { result: 'success', value: result({ bytesSent: 23 }) });
      expect(sumOf((await scrape(server.url)).samples, 'ferry_transfer_bytes_total')).toBe(800); // live
      expect((await scrape(server.url.replace('/metrics', '/'))).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it('a port already taken fails the start with EADDRINUSE', async () => {
    const first = await startMetricsServer({ host: '127.0.0.1', port: 0 }, new FerryMetrics());
    try {
      await expect(startMetricsServer({ host: '127.0.0.1', port: first.address.port }, new FerryMetrics())).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await first.close();
    }
  });
});

describe('metrics configuration', () => {
  it('parses a port or host:port; empty is off; anything else is refused with the expected form', () => {
    expect(parseListenAddress('9464', 'X')).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(parseListenAddress(' 127.0.0.1:9465 ', 'X')).toEqual({ host: '127.0.0.1', port: 9465 });
    expect(parseListenAddress('', 'X')).toBeUndefined();
    expect(parseListenAddress(undefined, 'X')).toBeUndefined();
    expect(() => parseListenAddress('70000', 'FERRY_METRICS_PORT')).toThrow(/FERRY_METRICS_PORT must be a port/);
    expect(() => parseListenAddress('localhost', 'X')).toThrow(/host:port/);
  });

  it('the worker serves no metrics unless configured (so `ferry worker` has none by default); flags override the environment', () => {
    expect(metricsAddresses([], {})).toEqual({});
    expect(metricsAddresses([], { FERRY_METRICS_PORT: '9464', FERRY_SDK_METRICS_PORT: '9465' })).toEqual({ ferry: { host: '0.0.0.0', port: 9464 }, sdk: { host: '0.0.0.0', port: 9465 } });
    expect(metricsAddresses(['--metrics', '127.0.0.1:9500'], { FERRY_METRICS_PORT: '9464' })).toEqual({ ferry: { host: '127.0.0.1', port: 9500 } });
    expect(() => metricsAddresses([], { FERRY_METRICS_PORT: '9464', FERRY_SDK_METRICS_PORT: '9464' })).toThrow(/two ports/);
  });
});
