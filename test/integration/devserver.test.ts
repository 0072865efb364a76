/**
 * The embedded Temporal dev server, for real: start, search attributes, reuse, start-up lock,
 * persistence across restarts, stop, failures.
 *
 * Needs the temporal CLI (npm run setup). Without it these tests are skipped with a message, unless
 * FERRY_REQUIRE_TEMPORAL=1 (CI), which makes them fail.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import {
  findTemporalBinary,
  resolveTemporal,
  SEARCH_ATTRIBUTES,
  temporalAnswers,
  type ResolveTemporalOptions,
  type TemporalHandle,
} from '../../src/temporal/devserver';
import { INDEXED_VALUE_TYPES } from '../../src/workflows/search-attributes';

const binary = findTemporalBinary();
const required = process.env.FERRY_REQUIRE_TEMPORAL === '1';
if (!binary && !required) {
  console.warn('SKIPPED test/integration/devserver.test.ts: temporal CLI not found (run `npm run setup`); set FERRY_REQUIRE_TEMPORAL=1 to fail instead');
}
const describeServer = binary || required ? describe : describe.skip;

/** An environment without TEMPORAL_ADDRESS, so the embedded server is used even where CI sets one. */
function embeddedEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TEMPORAL_ADDRESS;
  delete env.TEMPORAL_NAMESPACE;
  delete env.FERRY_TEMPORAL_PORT;
  return env;
}

/** Listens on 127.0.0.1:port (0 = any); accepted connections are dropped at once. */
function listen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const s = createServer((socket) => socket.destroy());
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}
const close = (s: Server) => new Promise<void>((resolve) => s.close(() => resolve()));

/** A free port p with p + 1000 (the Web UI) free too. */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const s = await listen(0);
    const port = (s!.address() as { port: number }).port;
    await close(s!);
    if (port > 64535) continue;
    const ui = await listen(port + 1000);
    if (ui) {
      await close(ui);
      return port;
    }
  }
  throw new Error('no free port pair');
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

test('a missing temporal CLI gives the setup hint', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-nobin-'));
  try {
    const env: NodeJS.ProcessEnv = { PATH: join(dir, 'empty'), HOME: dir, XDG_CACHE_HOME: join(dir, 'cache') };
    expect(findTemporalBinary(env)).toBeUndefined();
    await expect(resolveTemporal({ env, stateDir: dir, port: await freePortPair(), startTimeoutMs: 5000 })).rejects.toThrow(
      'temporal CLI not found: run `npm run setup` or set TEMPORAL_ADDRESS',
    );
    expect(() => findTemporalBinary({ ...env, FERRY_TEMPORAL_BIN: join(dir, 'nope') })).toThrow(`FERRY_TEMPORAL_BIN=${join(dir, 'nope')} is not an executable file`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TEMPORAL_ADDRESS is used as is', async () => {
  const h = await resolveTemporal({ env: { TEMPORAL_ADDRESS: 'temporal.example:7233', TEMPORAL_NAMESPACE: 'ferry' } });
  expect(h).toMatchObject({ address: 'temporal.example:7233', namespace: 'ferry', origin: 'external' });
  expect(h.uiUrl).toBeUndefined();
  await h.stop();
});

describeServer('embedded Temporal dev server', () => {
  const handles: TemporalHandle[] = [];
  const dirs: string[] = [];
  const stateDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'ferry-temporal-'));
    dirs.push(d);
    return d;
  };
  const start = async (opts: ResolveTemporalOptions) => {
    const h = await resolveTemporal({ env: embeddedEnv(), ...opts });
    handles.push(h);
    return h;
  };
  afterAll(async () => {
    for (const h of handles) await h.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('the temporal CLI is installed', () => {
    expect(binary).toBeDefined();
  });

  test('starts, registers the search attributes, is reused, persists, and stops', async () => {
    const dir = stateDir();
    const port = await freePortPair();
    const h = await start({ stateDir: dir, port });
    expect(h).toMatchObject({ address: `127.0.0.1:${port}`, namespace: 'default', origin: 'started', uiUrl: `http://127.0.0.1:${port + 1000}` });
    const pid = h.pid!;
    expect(processGone(pid)).toBe(false);
    expect(JSON.parse(readFileSync(join(dir, 'temporal.pid'), 'utf8'))).toMatchObject({ pid, port, host: '127.0.0.1', uiPort: port + 1000 });
    expect(existsSync(join(dir, 'temporal.db'))).toBe(true);
    expect(existsSync(join(dir, 'temporal.lock'))).toBe(false);

    const connection = await Connection.connect({ address: h.address });
    try {
      const res = await connection.operatorService.listSearchAttributes({ namespace: h.namespace });
      for (const key of Object.values(SEARCH_ATTRIBUTES)) {
        expect([key.name, res.customAttributes[key.name]]).toEqual([key.name, INDEXED_VALUE_TYPES[key.type]]);
      }
      // A workflow started now (no worker needed) must survive a restart: the database is a file.
      const client = new Client({ connection, namespace: h.namespace });
      await client.workflow.start('ferryProbe', { taskQueue: 'ferry-devserver-test', workflowId: 'persisted-probe', args: [] });
    } finally {
      await connection.close();
    }

    // Another Ferry process (same state dir and port) shares the server; its stop() leaves it running.
    const again = await start({ stateDir: dir, port });
    expect(again).toMatchObject({ address: h.address, origin: 'reused', pid, uiUrl: h.uiUrl });
    await again.stop();
    expect(await temporalAnswers(h.address)).toBe(true);

    await h.stop();
    expect(processGone(pid)).toBe(true);
    expect(existsSync(join(dir, 'temporal.pid'))).toBe(false);
    expect(await temporalAnswers(h.address)).toBe(false);
    await h.stop(); // idempotent

    const restarted = await start({ stateDir: dir, port, headless: true });
    expect(restarted.origin).toBe('started');
    expect(restarted.uiUrl).toBeUndefined();
    const c2 = await Connection.connect({ address: restarted.address });
    try {
      const client = new Client({ connection: c2, namespace: restarted.namespace });
      const desc = await client.workflow.getHandle('persisted-probe').describe();
      expect(desc.type).toBe('ferryProbe');
      await client.workflow.getHandle('persisted-probe').terminate('test done');
    } finally {
      await c2.close();
    }
    await restarted.stop();
    expect(processGone(restarted.pid!)).toBe(true);
  });

  test('two processes starting at once share one server (start-up lock)', async () => {
    const dir = stateDir();
    const port = await freePortPair();
    const [a, b] = await Promise.all([start({ stateDir: dir, port, headless: true }), start({ stateDir: dir, port, headless: true })]);
    expect([a.origin, b.origin].sort()).toEqual(['reused', 'started']);
    expect(a.pid).toBe(b.pid);
    const starter = a.origin === 'started' ? a : b;
    await starter.stop();
    expect(processGone(starter.pid!)).toBe(true);
  });

  test('a stale lock is taken over; a port taken by something else: the server exits and the error quotes its log', async () => {
    const dir = stateDir();
    const port = await freePortPair();
    const blocker = (await listen(port))!;
    // A lock left behind by a process that died: taken over, not waited for.
    const dead = spawnSync('true');
    writeFileSync(join(dir, 'temporal.lock'), String(dead.pid));
    expect(processGone(dead.pid)).toBe(true);
    try {
      const err = await resolveTemporal({ env: embeddedEnv(), stateDir: dir, port, startTimeoutMs: 30000 }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(err!.message).toMatch(new RegExp(`exited \\(code \\d+\\) before answering at 127\\.0\\.0\\.1:${port}`));
      expect(err!.message).toContain(String(port)); // the log tail names the port it could not use
      expect(existsSync(join(dir, 'temporal.pid'))).toBe(false);
      expect(existsSync(join(dir, 'temporal.lock'))).toBe(false);
    } finally {
      await close(blocker);
    }
  });
});
