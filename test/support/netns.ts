/**
 * Two network namespaces joined by a veth pair: the "source" and "destination" hosts of the
 * data-plane tests. Each has its own loopback, so both pods can use 127.0.0.1:2222 as they would in
 * Kubernetes, and traffic between them crosses a real network boundary. Needs root (ip(8)).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** A pair of joined network namespaces. */
export interface NetnsPair {
  source: string;
  destination: string;
  sourceIP: string;
  destinationIP: string;
  /** Deletes both namespaces (and with them the veth pair). */
  destroy(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Creates the pair, with addresses 10.241.<n>.1 (destination) and .2 (source) on a /30. */
export function createNetnsPair(prefix = 'ferryt'): NetnsPair {
  const id = randomBytes(3).toString('hex');
  const n = randomBytes(1)[0]! % 250;
  const source = `${prefix}-${id}-s`;
  const destination = `${prefix}-${id}-d`;
  const vs = `fv${id}s`;
  const vd = `fv${id}d`;
  const destinationIP = `10.241.${n}.1`;
  const sourceIP = `10.241.${n}.2`;
  ip('netns', 'add', source);
  ip('netns', 'add', destination);
  try {
    ip('link', 'add', vs, 'type', 'veth', 'peer', 'name', vd);
    ip('link', 'set', vs, 'netns', source);
    ip('link', 'set', vd, 'netns', destination);
    ip('-n', source, 'addr', 'add', `${sourceIP}/30`, 'dev', vs);
    ip('-n', destination, 'addr', 'add', `${destinationIP}/30`, 'dev', vd);
    for (const [ns, dev] of [[source, vs], [destination, vd]] as const) {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', dev, 'up');
    }
  } catch (e) {
    ip('netns', 'del', source);
    ip('netns', 'del', destination);
    throw e;
  }
  return {
    source,
    destination,
    sourceIP,
    destinationIP,
    destroy() {
      for (const ns of [source, destination]) {
        try {
          ip('netns', 'del', ns);
        } catch {
          /* already gone */
        }
      }
    },
  };
}
