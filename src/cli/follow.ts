/**
 * Following a running migration: one progress bar per PVC (bytes, rate, ETA) on a terminal, one line
 * per change otherwise. Polls getMigration() once a second; the migration itself runs in the worker,
 * so interrupting the follower changes nothing.
 */
import { MultiBar, type SingleBar } from 'cli-progress';
import type { PVCState } from '../workflows/state';
import { getMigration, type LiveProgress, type MigrationView, type TemporalSession } from './operations';
import { formatBytes, formatDuration } from './render';

export interface FollowOptions {
  /** Where bars and lines go (stderr, so that stdout keeps only the result). */
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Draw bars (a terminal) or print one line per change. */
  bars: boolean;
  /** Poll period, ms. Default 1000. */
  intervalMs?: number;
  /** Stops following (Ctrl-C); follow() then rejects with the signal's reason. */
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    // The listener goes when the timer fires: one poll a second must not pile up listeners.
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** What one PVC shows: bytes done of total, and a status text. */
function pvcFigures(p: PVCState, live: LiveProgress | undefined): { value: number; total: number; status: string } {
  const total = live?.progress?.totalBytes ?? p.capacityBytes;
  if (p.running) {
    const pr = live?.progress;
    const extra = [
      pr?.rate !== undefined ? `${formatBytes(pr.rate)}/s` : undefined,
      pr?.eta !== undefined ? `ETA ${formatDuration(pr.eta)}` : undefined,
      live && live.attempt > 1 ? `attempt ${live.attempt}` : undefined,
    ].filter(Boolean);
    return { value: pr?.bytes ?? 0, total, status: `${p.running.final ? 'final' : 'stage'} sync ${p.running.pass}${extra.length ? ` ${extra.join(' ')}` : ''}` };
  }
  const finished = p.status === 'done' || p.status === 'synced';
  return { value: finished ? total : 0, total, status: p.status === 'failed' ? `FAILED: ${p.errors[p.errors.length - 1]?.message ?? ''}` : p.status };
}

/**
 * Follows migration `id` until its workflow closes; returns the final view.
 * @throws the signal's reason when aborted
 */
export async function follow(session: TemporalSession, id: string, opts: FollowOptions): Promise<MigrationView> {
  const out = opts.stream;
  const multibar = opts.bars
    ? new MultiBar(
        {
          stream: out,
          format: '{label} |{bar}| {percentage}% {bytes} {status}',
          barsize: 24,
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
          autopadding: true,
        },
        { format: '', barCompleteChar: '█', barIncompleteChar: '░' },
      )
    : undefined;
  const bars = new Map<string, SingleBar>();
  const said = new Map<string, string>();
  /** Prints `text` for `key` unless it was the last thing printed for that key. */
  const say = (key: string, text: string) => {
    if (said.get(key) === text) return;
    said.set(key, text);
    if (multibar) multibar.log(`${text}\n`);
    else out.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);
  };

  try {
    for (;;) {
      const view = await getMigration(session, id);
      const st = view.state;
      say('migration', `migration ${id}: ${st ? `${st.status}, phase ${st.phase}` : `${view.workflowStatus.toLowerCase()}, phase ${view.searchAttributes.phase ?? '?'}`}`);
      for (const w of view.warnings) say(`warning:${w}`, `WARNING: ${w}`);
      for (const [source, ns] of Object.entries(view.namespaces)) {
        say(`ns:${source}`, `${source}: ${ns.phase}${ns.stagePassesDone ? ` (${ns.stagePassesDone} stage pass${ns.stagePassesDone === 1 ? '' : 'es'} done)` : ''}`);
        if (ns.phase === 'ready-for-cutover' && !ns.cutoverRequested) say(`cutover:${source}`, `${source}: ready for cutover: ferry cutover ${id} --namespace ${source}`);
        // Issue 8 item 4: cutover held back by a partial stage pass; the operator must act.
        if (ns.cutoverBlocked && !ns.cutoverForcedAt) say(`held:${source}:${ns.cutoverBlocked.reason}`, `${source}: CUTOVER HELD BACK: ${ns.cutoverBlocked.reason}`);
        for (const p of ns.pvcs) {
          const key = `${source}/${p.name}`;
          const live = p.running ? view.live[p.running.workflowId] : undefined;
          const f = pvcFigures(p, live);
          if (p.status === 'failed') {
            say(`failed:${key}:${p.errors.length}`, `${key} FAILED: ${p.errors[p.errors.length - 1]?.message ?? ''}\n  decide: ferry retry ${id} --namespace ${source} --pvc ${p.name} | ferry skip ... | ferry abort ...`);
          }
          if (multibar) {
            let bar = bars.get(key);
            const payload = { label: key, bytes: `${formatBytes(f.value)}/${formatBytes(f.total)}`, status: f.status };
            if (!bar) {
              bar = multibar.create(Math.max(f.total, 1), f.value, payload);
              bars.set(key, bar);
            }
            bar.setTotal(Math.max(f.total, 1));
            bar.update(f.value, payload);
          } else {
            say(`pvc:${key}`, `${key}: ${f.status}${p.running ? '' : ` (${formatBytes(p.bytesSent)} sent)`}`);
          }
        }
      }
      if (view.workflowStatus !== 'RUNNING') return view;
      await sleep(opts.intervalMs ?? 1000, opts.signal);
    }
  } finally {
    multibar?.stop();
  }
}
