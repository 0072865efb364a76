/**
 * Where Ferry's Temporal lives. With TEMPORAL_ADDRESS set, that server is used as is. Otherwise Ferry
 * embeds one: the official `temporal` CLI's dev server (SQLite file in the state directory, Web UI on
 * port + 1000), started on first use and shared by every Ferry process of the machine — `ferry worker`
 * and `ferry migrate` in two terminals talk to the same server. A lock file serialises the
 * "is one running? else start one" step; a pid file records the server a Ferry process started.
 *
 * The dev server is a process of its own: detached in its own session and process group, output to
 * the log file, so that it outlives the Ferry process that started it (a worker killed or stopped
 * does not cut off a second worker or a `ferry migrate` that reuse it; Ctrl-C in the starter's
 * terminal does not reach it). It runs until `ferry server stop` (stopDevServer).
 *
 * State directory layout (default ~/.ferry, or $FERRY_STATE_DIR):
 *   temporal.db    SQLite persistence of the dev server (workflow histories survive restarts)
 *   temporal.log   the dev server's stdout/stderr
 *   temporal.pid   JSON {pid, host, port, uiPort, namespace, startedAt} of the server a Ferry process started
 *   temporal.lock  held (O_EXCL, holder pid inside) while a process checks for / starts a server
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Connection } from '@temporalio/client';
import { INDEXED_VALUE_TYPES, SEARCH_ATTRIBUTES, searchAttributeCliArgs } from '../workflows/search-attributes';

export { SEARCH_ATTRIBUTES, searchAttributeCliArgs } from '../workflows/search-attributes';

/** The temporal CLI version Ferry installs and tests with (hack/install-temporal.sh). */
export const TEMPORAL_CLI_VERSION = '1.5.1';
/** Default gRPC port of the embedded dev server; its Web UI listens on this + 1000. */
export const DEFAULT_TEMPORAL_PORT = 7233;

/** Options of resolveTemporal. Every field is optional. */
export interface ResolveTemporalOptions {
  /** Environment to read TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_UI_URL, FERRY_STATE_DIR,
   * FERRY_TEMPORAL_PORT, FERRY_TEMPORAL_BIN, PATH, XDG_CACHE_HOME, HOME from. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** State directory (database, log, pid and lock files). Default: $FERRY_STATE_DIR, else ~/.ferry. */
  stateDir?: string;
  /** gRPC port of the dev server. Default: $FERRY_TEMPORAL_PORT, else 7233. */
  port?: number;
  /** Address the dev server binds and Ferry connects to. Default: 127.0.0.1. */
  host?: string;
  /** Start the dev server without its Web UI. Default: false (UI on port + 1000). */
  headless?: boolean;
  /** Path of the temporal binary; default: findTemporalBinary(env). */
  binary?: string;
  /** How long to wait for a dev server to answer (and for another process's start-up lock), in
   * milliseconds. Default: 60000. */
  startTimeoutMs?: number;
  /** Receives one-line progress messages ("starting Temporal dev server ..."). Default: ignored. */
  log?: (message: string) => void;
}

/** A Temporal server ready for clients and workers. */
export interface TemporalHandle {
  /** gRPC address, "host:port". */
  address: string;
  /** Temporal namespace to use. */
  namespace: string;
  /** Web UI URL, when known. */
  uiUrl?: string;
  /** external: TEMPORAL_ADDRESS; reused: a running dev server answered; started: this process started it. */
  origin: 'external' | 'reused' | 'started';
  /** Process id of the dev server, when known. */
  pid?: number;
  /** Stops the dev server if, and only if, this process started it (SIGTERM, then SIGKILL after 10 s).
   * Idempotent; a no-op for external and reused servers. Ferry's commands do not call it: the server
   * outlives them (see stopDevServer for `ferry server stop`); tests and library users may. */
  stop(): Promise<void>;
}

/** Contents of the pid file. */
interface PidFile {
  pid: number;
  host: string;
  port: number;
  uiPort?: number;
  namespace: string;
  startedAt: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Whether a process with this pid exists (and is not ours to reap). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The directory install-temporal.sh installs into: ${XDG_CACHE_HOME:-$HOME/.cache}/ferry/bin. */
export function temporalCacheBinDir(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.HOME ?? homedir();
  return join(env.XDG_CACHE_HOME || join(home, '.cache'), 'ferry', 'bin');
}

/**
 * Finds the temporal CLI: $FERRY_TEMPORAL_BIN, else `temporal` on $PATH, else the install cache
 * (${XDG_CACHE_HOME:-~/.cache}/ferry/bin/temporal, and ~/.cache/ferry/bin/temporal).
 * @returns the absolute path, or undefined when none is found
 * @throws Error when FERRY_TEMPORAL_BIN is set but is not an executable file
 */
export function findTemporalBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const explicit = env.FERRY_TEMPORAL_BIN;
  if (explicit) {
    if (!isExecutable(explicit)) throw new Error(`FERRY_TEMPORAL_BIN=${explicit} is not an executable file`);
    return explicit;
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && isExecutable(join(dir, 'temporal'))) return join(dir, 'temporal');
  }
  const home = env.HOME ?? homedir();
  for (const dir of [temporalCacheBinDir(env), join(home, '.cache', 'ferry', 'bin')]) {
    if (isExecutable(join(dir, 'temporal'))) return join(dir, 'temporal');
  }
  return undefined;
}

/**
 * The argv (after the binary) that starts the dev server:
 * `server start-dev --db-filename <stateDir>/temporal.db --ip <host> --port <port> [--ui-port <port+1000> |
 *  --headless] --log-level warn [--namespace <ns>] --search-attribute NAME=Type...`.
 */
export function devServerArgs(opts: { stateDir: string; host: string; port: number; headless: boolean; namespace: string }): string[] {
  const args = ['server', 'start-dev', '--db-filename', join(opts.stateDir, 'temporal.db'), '--ip', opts.host, '--port', String(opts.port)];
  if (opts.headless) args.push('--headless');
  else args.push('--ui-port', String(opts.port + 1000));
  args.push('--log-level', 'warn');
  if (opts.namespace !== 'default') args.push('--namespace', opts.namespace);
  for (const sa of searchAttributeCliArgs()) args.push('--search-attribute', sa);
  return args;
}

/** Whether a Temporal frontend answers at `address` within `timeoutMs`. Never throws. */
export async function temporalAnswers(address: string, timeoutMs = 1500): Promise<boolean> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: timeoutMs });
    await connection.withDeadline(Date.now() + timeoutMs, () => connection!.workflowService.getSystemInfo({}));
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

/**
 * Registers those of SEARCH_ATTRIBUTES that `namespace` lacks (a database created by an older Ferry).
 * @throws Error when an attribute exists with another type, or the server refuses the call
 */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  const res = await connection.operatorService.listSearchAttributes({ namespace });
  const existing: Record<string, number> = { ...(res.systemAttributes ?? {}), ...(res.customAttributes ?? {}) };
  const missing: Record<string, number> = {};
  for (const key of Object.values(SEARCH_ATTRIBUTES)) {
    const want = INDEXED_VALUE_TYPES[key.type];
    const have = existing[key.name];
    if (have === undefined) missing[key.name] = want;
    else if (have !== want) {
      throw new Error(`search attribute ${key.name} exists in namespace ${namespace} with type ${have}, Ferry needs ${key.type} (${want})`);
    }
  }
  if (Object.keys(missing).length > 0) {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
  }
}

async function ensureSearchAttributesAt(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 5000 });
  try {
    await ensureSearchAttributes(connection, namespace);
  } finally {
    await connection.close();
  }
}

function readPidFile(file: string): PidFile | undefined {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as PidFile;
    return typeof v.pid === 'number' && typeof v.port === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `pid` runs a temporal dev server (Linux /proc check; true when /proc is unavailable). */
function isDevServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('start-dev');
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT' || !existsSync('/proc/self');
  }
}

/** Runs `fn` holding the state directory's start-up lock (waits for another holder up to timeoutMs). */
async function withLock<T>(lockFile: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(lockFile, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let content: string;
      let ageMs: number;
      try {
        content = readFileSync(lockFile, 'utf8').trim();
        ageMs = Date.now() - statSync(lockFile).mtimeMs;
      } catch {
        continue; // released between open and read
      }
      const holder = /^\d+$/.test(content) ? Number(content) : undefined;
      // Stale when its holder died, or when it holds no pid for 5 s (its creator died before writing it).
      const stale = holder !== undefined ? !alive(holder) : ageMs > 5000;
      if (stale) {
        try {
          if (readFileSync(lockFile, 'utf8').trim() === content) unlinkSync(lockFile);
        } catch {
          /* someone else removed it */
        }
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${lockFile}: process ${holder ?? '?'} is starting the Temporal dev server`);
      }
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    try {
      if (readFileSync(lockFile, 'utf8').trim() === String(process.pid)) unlinkSync(lockFile);
    } catch {
      /* already gone */
    }
  }
}

function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Finds or starts the Temporal server Ferry uses.
 *
 * - TEMPORAL_ADDRESS set: returns it (namespace $TEMPORAL_NAMESPACE or "default", UI $TEMPORAL_UI_URL),
 *   without connecting.
 * - Else, under the state directory's lock: when a server answers on host:port it is reused (its missing
 *   Ferry search attributes are added); otherwise `temporal server start-dev` (see devServerArgs) is
 *   started in its own process group with output to <stateDir>/temporal.log, its pid recorded in
 *   <stateDir>/temporal.pid, and awaited until its gRPC frontend answers.
 *
 * A server this process started keeps running when the process exits (stop it with stop() or
 * stopDevServer).
 * @throws Error `temporal CLI not found: run \`npm run setup\` or set TEMPORAL_ADDRESS` when no binary
 *   is found; an Error quoting the server log when it exits or does not answer within startTimeoutMs;
 *   an Error when a dev server recorded in the pid file runs but does not answer
 */
export async function resolveTemporal(opts: ResolveTemporalOptions = {}): Promise<TemporalHandle> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => undefined);
  const namespace = env.TEMPORAL_NAMESPACE || 'default';
  if (env.TEMPORAL_ADDRESS) {
    return {
      address: env.TEMPORAL_ADDRESS,
      namespace,
      ...(env.TEMPORAL_UI_URL ? { uiUrl: env.TEMPORAL_UI_URL } : {}),
      origin: 'external',
      stop: async () => undefined,
    };
  }

  const stateDir = opts.stateDir ?? env.FERRY_STATE_DIR ?? join(env.HOME ?? homedir(), '.ferry');
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (env.FERRY_TEMPORAL_PORT ? Number(env.FERRY_TEMPORAL_PORT) : DEFAULT_TEMPORAL_PORT);
  if (!Number.isInteger(port) || port < 1 || port > 64535) throw new Error(`invalid Temporal port ${port} (1..64535; the UI uses port + 1000)`);
  const headless = opts.headless ?? false;
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  const address = `${host}:${port}`;
  const pidFile = join(stateDir, 'temporal.pid');
  const logFile = join(stateDir, 'temporal.log');
  mkdirSync(stateDir, { recursive: true });

  return withLock(join(stateDir, 'temporal.lock'), timeoutMs, async () => {
    const recorded = readPidFile(pidFile);
    const recordedHere = recorded && recorded.port === port && recorded.host === host ? recorded : undefined;
    const reuse = async (): Promise<TemporalHandle> => {
      await ensureSearchAttributesAt(address, namespace);
      const uiPort = recordedHere ? recordedHere.uiPort : undefined;
      log(`using the Temporal dev server at ${address}`);
      return {
        address,
        namespace,
        ...(uiPort !== undefined ? { uiUrl: `http://${host}:${uiPort}` } : {}),
        origin: 'reused',
        ...(recordedHere ? { pid: recordedHere.pid } : {}),
        stop: async () => undefined,
      };
    };

    if (await temporalAnswers(address)) return reuse();
    if (recordedHere && alive(recordedHere.pid) && isDevServer(recordedHere.pid)) {
      // Started by a process that died while waiting for it: give it the rest of the time to answer.
      log(`waiting for the Temporal dev server (pid ${recordedHere.pid}) at ${address}`);
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (await temporalAnswers(address)) return reuse();
        await sleep(500);
      }
      throw new Error(
        `the Temporal dev server pid ${recordedHere.pid} (${pidFile}) runs but does not answer at ${address}; ` +
          `stop it (kill ${recordedHere.pid}) and retry. Log ${logFile}:\n${logTail(logFile)}`,
      );
    }

    const binary = opts.binary ?? findTemporalBinary(env);
    if (!binary) throw new Error('temporal CLI not found: run `npm run setup` or set TEMPORAL_ADDRESS');
    try {
      if (statSync(logFile).size > 20 * 1024 * 1024) renameSync(logFile, `${logFile}.1`);
    } catch {
      /* no log yet */
    }
    const args = devServerArgs({ stateDir, host, port, headless, namespace });
    log(`starting the Temporal dev server: ${binary} ${args.join(' ')}`);
    const out = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      writeFileSync(out, `--- ${new Date().toISOString()} ferry pid ${process.pid}: ${binary} ${args.join(' ')}\n`);
      child = spawn(binary, args, { stdio: ['ignore', out, out], detached: true, env: { ...env } });
    } finally {
      closeSync(out);
    }
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    let failure: Error | undefined;
    void spawnError.then((e) => (failure = e));
    child.unref();
    const pid = child.pid;
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    const uiPort = headless ? undefined : port + 1000;

    let stopped = false;
    const stop = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      if (!exited() && pid !== undefined) {
        child.kill('SIGTERM');
        for (let i = 0; i < 100 && !exited(); i++) await sleep(100);
        if (!exited()) {
          child.kill('SIGKILL');
          for (let i = 0; i < 50 && !exited(); i++) await sleep(100);
        }
      }
      const rec = readPidFile(pidFile);
      if (rec && rec.pid === pid) {
        try {
          unlinkSync(pidFile);
        } catch {
          /* gone */
        }
      }
    };

    if (pid === undefined) {
      const e = await Promise.race([spawnError, sleep(1000).then(() => undefined)]);
      throw new Error(`cannot start ${binary}: ${e?.message ?? 'no pid'}`);
    }
    const record: PidFile = { pid, host, port, ...(uiPort !== undefined ? { uiPort } : {}), namespace, startedAt: new Date().toISOString() };
    writeFileSync(pidFile, JSON.stringify(record) + '\n');

    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (failure) {
        await stop();
        throw new Error(`cannot start ${binary}: ${failure.message}`);
      }
      if (exited()) {
        await stop();
        throw new Error(
          `the Temporal dev server exited (${child.exitCode !== null ? `code ${child.exitCode}` : child.signalCode}) before answering at ${address}. ` +
            `Log ${logFile}:\n${logTail(logFile)}`,
        );
      }
      if (await temporalAnswers(address)) break;
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`the Temporal dev server did not answer at ${address} within ${timeoutMs} ms. Log ${logFile}:\n${logTail(logFile)}`);
      }
      await sleep(250);
    }
    try {
      await ensureSearchAttributesAt(address, namespace);
    } catch (e) {
      await stop();
      throw e;
    }
    log(`Temporal dev server pid ${pid} at ${address}${uiPort !== undefined ? `, UI http://${host}:${uiPort}` : ''}`);
    return {
      address,
      namespace,
      ...(uiPort !== undefined ? { uiUrl: `http://${host}:${uiPort}` } : {}),
      origin: 'started',
      pid,
      stop,
    };
  });
}


/** Where the embedded dev server's files are: $FERRY_STATE_DIR, else ~/.ferry. */
export function stateDirOf(env: NodeJS.ProcessEnv = process.env): string {
  return env.FERRY_STATE_DIR ?? join(env.HOME ?? homedir(), '.ferry');
}

/** What `ferry server status` reports about the embedded dev server. */
export interface DevServerStatus {
  /** The state directory (database, log, pid and lock files). */
  stateDir: string;
  /** gRPC address Ferry uses ("host:port"). */
  address: string;
  /** A Temporal frontend answers at `address`. */
  answers: boolean;
  /** The dev server recorded in the pid file, when its process runs. */
  pid?: number;
  /** Web UI URL of the recorded server. */
  uiUrl?: string;
  /** When the recorded server was started (ISO 8601). */
  startedAt?: string;
  /** The dev server's log file. */
  logFile: string;
}

/** Host, port and files of the embedded dev server for these options (see ResolveTemporalOptions). */
function devServerPlace(opts: Pick<ResolveTemporalOptions, 'env' | 'stateDir' | 'port' | 'host'>) {
  const env = opts.env ?? process.env;
  const stateDir = opts.stateDir ?? stateDirOf(env);
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (env.FERRY_TEMPORAL_PORT ? Number(env.FERRY_TEMPORAL_PORT) : DEFAULT_TEMPORAL_PORT);
  return { stateDir, host, port, address: `${host}:${port}`, pidFile: join(stateDir, 'temporal.pid'), logFile: join(stateDir, 'temporal.log'), lockFile: join(stateDir, 'temporal.lock') };
}

/**
 * The embedded dev server's state: whether something answers at its address, and the server
 * recorded in the pid file when its process still runs. Never throws for a missing state directory.
 */
export async function devServerStatus(opts: Pick<ResolveTemporalOptions, 'env' | 'stateDir' | 'port' | 'host'> = {}): Promise<DevServerStatus> {
  const place = devServerPlace(opts);
  const rec = readPidFile(place.pidFile);
  const recorded = rec && rec.port === place.port && rec.host === place.host && alive(rec.pid) && isDevServer(rec.pid) ? rec : undefined;
  return {
    stateDir: place.stateDir,
    address: place.address,
    answers: await temporalAnswers(place.address),
    ...(recorded ? { pid: recorded.pid, startedAt: recorded.startedAt, ...(recorded.uiPort !== undefined ? { uiUrl: `http://${recorded.host}:${recorded.uiPort}` } : {}) } : {}),
    logFile: place.logFile,
  };
}

/**
 * Stops the embedded dev server recorded in the state directory's pid file (`ferry server stop`):
 * SIGTERM to its process group, SIGKILL after `graceMs`; removes the pid file. Holds the start-up
 * lock meanwhile, so that no Ferry process reuses the server while it stops. Migrations are not
 * lost: their histories are in the database, and the next start resumes them.
 * @returns the pid stopped, or undefined when no recorded dev server runs
 * @throws Error when a server answers at the address but was not started by Ferry (no pid file):
 *   the message says how to find and stop it
 */
export async function stopDevServer(opts: Pick<ResolveTemporalOptions, 'env' | 'stateDir' | 'port' | 'host'> & { graceMs?: number } = {}): Promise<number | undefined> {
  const place = devServerPlace(opts);
  if (!existsSync(place.stateDir)) return undefined;
  return withLock(place.lockFile, 60_000, async () => {
    const rec = readPidFile(place.pidFile);
    const recorded = rec && rec.port === place.port && rec.host === place.host && alive(rec.pid) && isDevServer(rec.pid) ? rec : undefined;
    if (!recorded) {
      if (rec && !alive(rec.pid)) {
        try {
          unlinkSync(place.pidFile);
        } catch {
          /* gone */
        }
      }
      if (await temporalAnswers(place.address)) {
        throw new Error(
          `a Temporal server answers at ${place.address} but Ferry did not start it (no running dev server in ${place.pidFile}); ` +
            `stop it where it was started (e.g. \`ss -ltnp 'sport = :${place.port}'\` shows its process)`,
        );
      }
      return undefined;
    }
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-recorded.pid, sig); // its process group (spawned detached)
      } catch {
        try {
          process.kill(recorded.pid, sig);
        } catch {
          /* already gone */
        }
      }
    };
    signal('SIGTERM');
    const deadline = Date.now() + (opts.graceMs ?? 10_000);
    while (alive(recorded.pid) && Date.now() < deadline) await sleep(100);
    if (alive(recorded.pid)) {
      signal('SIGKILL');
      for (let i = 0; i < 50 && alive(recorded.pid); i++) await sleep(100);
    }
    try {
      unlinkSync(place.pidFile);
    } catch {
      /* gone */
    }
    return recorded.pid;
  });
}
