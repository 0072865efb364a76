/**
 * Where a cluster's kubeconfig is: kubectl's rules (the explicit file, else every entry of $KUBECONFIG,
 * else ~/.kube/config), shared by plan loading (paths made absolute) and the Kubernetes client.
 */
import { homedir } from 'node:os';
import * as nodePath from 'node:path';

/** Expands a leading `~/` to `home` and makes a relative path absolute against `baseDir`. */
export function absolutePath(p: string, baseDir: string, home: string): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return nodePath.join(home, p.slice(2));
  return nodePath.resolve(baseDir, p);
}

/**
 * The kubeconfig files to load for a cluster, in kubectl's order: the plan's `kubeconfig` when set,
 * else every entry of $KUBECONFIG (path-delimiter separated, to be merged like kubectl does), else
 * `~/.kube/config`. Paths are returned absolute (`~/` expanded, relative ones against the cwd).
 * Does not check that the files exist.
 */
export function resolveKubeconfigPaths(ref: { kubeconfig?: string | undefined; context?: string | undefined }, env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string[] {
  const cwd = process.cwd();
  if (ref.kubeconfig !== undefined) return [absolutePath(ref.kubeconfig, cwd, home)];
  const fromEnv = (env.KUBECONFIG ?? '').split(nodePath.delimiter).filter((p) => p !== '');
  if (fromEnv.length > 0) return fromEnv.map((p) => absolutePath(p, cwd, home));
  return [nodePath.join(home, '.kube', 'config')];
}

