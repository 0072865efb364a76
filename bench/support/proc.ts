/**
 * CPU accounting of long-lived processes from /proc, for the benchmarks: a daemon's CPU seconds
 * include those of the per-connection children it has reaped (cutime, cstime), so the difference
 * across a run is what the run cost it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';

const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

/** CPU seconds (user + system) of process `pid`, itself and its reaped children. */
export function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // Fields after "comm)": state is [0]; utime, stime, cutime, cstime are fields 14..17 of stat(5).
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICK;
}

/** Waits until `pid` has no live children (the daemon reaped its per-connection child). */
export async function childrenReaped(pid: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const kids = readdirSync(`/proc/${pid}/task`).map((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim()).join('');
    if (kids === '') return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `argv` in `ns` under /usr/bin/time, its stdout into `outFile`; resolves with wall seconds and
 * the client's CPU seconds. */
export function timedWithCpu(ns: string, argv: string[], timeFile: string, outFile: string): Promise<{ wall: number; cpu: number }> {
  return new Promise((resolve, reject) => {
    const out = openSync(outFile, 'w');
    const p = spawn('ip', ['netns', 'exec', ns, '/usr/bin/time', '-f', '%e %U %S', '-o', timeFile, ...argv], { stdio: ['ignore', out, 'pipe'] });
    closeSync(out);
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${argv.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      const [e, u, s] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
      resolve({ wall: e!, cpu: u! + s! });
    });
  });
}
