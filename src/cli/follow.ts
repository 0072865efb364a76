/**
 * Following a running migration: one progress bar per PVC (bytes, rate, ETA) on a terminal, one line
 * per change otherwise. Polls getMigration() once a second; the migration itself runs in the worker,
 * so interrupting the follower changes nothing, and a Temporal outage is waited out.
 */
import { MultiBar, type SingleBar } from 'cli-progress';
import { isGrpcServiceError } from '@temporalio/client';
import type { PVCState } from '../core/state';
import { CliError, EXIT } from './exit-codes';
import { getMigration, type LiveProgress, type MigrationView, type TemporalSession } from './operations';
import { formatBytes, formatDuration } from './render';

/** How long follow() keeps trying through a Temporal outage by default: 30 minutes. */
export const DEFAULT_OUTAGE_LIMIT_MS = 30 * 60 * 1000;
/** Longest pause between two attempts to reach Temporal during an outage, ms. */
const MAX_OUTAGE_BACKOFF_MS = 15_000;

export interface FollowOptions {
  /** Where bars and lines go (stderr, so that stdout keeps only the result). */
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Draw bars (a terminal) or print one line per change. */
  bars: boolean;
  /** Poll period, ms. Default 1000. */
  intervalMs?: number;
  /** Stops following (Ctrl-C); follow() then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** How long to keep trying while Temporal cannot be reached, ms (default DEFAULT_OUTAGE_LIMIT_MS). */
  outageLimitMs?: number;
}

/** Whether `err` says Temporal cannot be reached (gRPC UNAVAILABLE / DEADLINE_EXCEEDED, or exit 4). */
export function isTemporalOutage(err: unknown): boolean {
  if (err instanceof CliError) return err.exitCode === EXIT.TEMPORAL_UNREACHABLE;
  const grpc = isGrpcServiceError(err) ? err : isGrpcServiceError((err as Error | undefined)?.cause) ? (err as Error).cause : undefined;
  return grpc !== undefined && ((grpc as { code?: number }).code === 14 || (grpc as { code?: number }).code === 4);
}

/** `p`, or the signal's reason as soon as it aborts (the call itself is left to finish). */
function orAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
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
 *
 * Through a Temporal outage (server stopped or restarting, network cut) it keeps trying with
 * backoff (1 s doubling up to 15 s), says so in one line — the migration itself goes on in the
 * worker, whose state Temporal keeps — and goes on following when Temporal answers again.
 * @throws the signal's reason when aborted; CliError (exit 4) when Temporal stayed unreachable for
 *   `outageLimitMs`, saying how to follow the migration again (no raw gRPC text)
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

  /** When the current outage started (undefined: Temporal answers). */
  let outageSince: Date | undefined;
  let backoffMs = 1000;
  const outageLimitMs = opts.outageLimitMs ?? DEFAULT_OUTAGE_LIMIT_MS;
  const clock = (d: Date) => d.toISOString().slice(11, 19);
  const note = (text: string) => (multibar ? multibar.log(`${text}\n`) : out.write(`${clock(new Date())} ${text}\n`));

  try {
    for (;;) {
      const attemptStarted = new Date();
      let view: MigrationView;
      try {
        view = await orAbort(getMigration(session, id), opts.signal);
      } catch (e) {
        if (opts.signal?.aborted || !isTemporalOutage(e)) throw e;
        if (!outageSince) {
          outageSince = attemptStarted;
          backoffMs = 1000;
          note(`Temporal at ${session.address} unreachable since ${clock(outageSince)} UTC; the migration goes on in the worker; still trying… (Ctrl-C, then \`ferry status ${id} --follow\`)`);
        }
        if (Date.now() - outageSince.getTime() >= outageLimitMs) {
          throw new CliError(
            `Temporal at ${session.address} unreachable since ${outageSince.toISOString()} (${formatDuration((Date.now() - outageSince.getTime()) / 1000)}): stopped following. ` +
              `Migration ${id} goes on in the worker once Temporal is back (\`ferry server status\` for the embedded server); follow it again with \`ferry status ${id} --follow\`.`,
            EXIT.TEMPORAL_UNREACHABLE,
          );
        }
        await sleep(backoffMs, opts.signal);
        backoffMs = Math.min(backoffMs * 2, MAX_OUTAGE_BACKOFF_MS);
        continue;
      }
      if (outageSince) {
        note(`Temporal at ${session.address} answers again (unreachable for ${formatDuration((Date.now() - outageSince.getTime()) / 1000)}); following migration ${id}`);
        outageSince = undefined;
      }
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
          if (p.status === 'failed' && ns.status === 'running') {
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
