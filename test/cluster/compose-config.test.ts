/**
 * docker-compose.yml through the real `docker compose config` (Docker Compose v5.6.0, built from the Go
 * module proxy by hack/compose/build.sh: the docker CLI here has no compose plugin): the file is valid
 * Compose, interpolates, runs $FERRY_WORKERS worker replicas, mounts the dynamic config cluster.sh uses,
 * and its Temporal image tags are the versions hack/temporal/build.sh builds and the cluster test runs.
 *
 * Skipped with a message when Compose cannot be built (no Go) unless FERRY_REQUIRE_TEMPORAL=1 (CI).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const required = process.env.FERRY_REQUIRE_TEMPORAL === '1';

/** The docker-compose binary (built or cached by hack/compose/build.sh), or why there is none. */
function composeBinary(): { path?: string; why?: string } {
  const r = spawnSync('bash', [join(ROOT, 'hack', 'compose', 'build.sh')], { encoding: 'utf8', timeout: 15 * 60_000 });
  return r.status === 0 ? { path: r.stdout.trim() } : { why: `hack/compose/build.sh failed (exit ${r.status ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` };
}

const compose = composeBinary();
if (compose.why && !required) console.warn(`SKIPPED test/cluster/compose-config.test.ts: ${compose.why}; set FERRY_REQUIRE_TEMPORAL=1 to fail instead`);
const describeCompose = compose.why && !required ? describe.skip : describe;

interface Config {
  services: Record<string, { image?: string; deploy?: { replicas?: number }; volumes?: { type: string; source: string; target: string; read_only?: boolean }[]; environment?: Record<string, string> }>;
}

/** `docker compose config --format json` of the repository's docker-compose.yml, under `env`. */
function config(env: NodeJS.ProcessEnv = {}): Config {
  if (compose.why) throw new Error(`FERRY_REQUIRE_TEMPORAL=1 but ${compose.why}`);
  // Run as the docker CLI plugin when the docker CLI exists (`docker compose config`), else on its own.
  const viaDocker = spawnSync('docker', ['--version']).status === 0;
  const [cmd, args] = viaDocker ? ['docker', ['compose', 'config', '--format', 'json']] : [compose.path!, ['config', '--format', 'json']];
  const pluginDir = join(compose.path!, '..');
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...(viaDocker ? { DOCKER_CONFIG: pluginDir } : {}), FERRY_KUBECONFIG: '/dev/null', ...env },
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as Config;
}

/** The version the wrapper module of hack/temporal/build.sh pins for `module`. */
function pinned(module: string): string {
  const mod = readFileSync(join(ROOT, 'hack', 'temporal', 'build', 'go.mod'), 'utf8');
  const m = new RegExp(`^\\s*${module.replace(/\./g, '\\.')} v(\\S+)`, 'm').exec(mod);
  if (!m) throw new Error(`${module} is not required by hack/temporal/build/go.mod`);
  return m[1]!;
}

describeCompose('docker-compose.yml through `docker compose config`', () => {
  test('valid Compose; Temporal image tags are the versions built from the module proxy', () => {
    const s = config().services;
    expect(Object.keys(s).sort()).toEqual(['ferry-worker', 'postgresql', 'temporal', 'temporal-schema', 'temporal-setup', 'temporal-ui']);
    const server = pinned('go.temporal.io/server');
    expect(server).toBe('1.29.1');
    expect(s.temporal!.image).toBe(`temporalio/server:${server}`);
    expect(s['temporal-schema']!.image).toBe(`temporalio/admin-tools:${server}`);
    expect(s['temporal-setup']!.image).toBe(`temporalio/admin-tools:${server}`);
    expect(s['temporal-ui']!.image).toBe(`temporalio/ui:${pinned('github.com/temporalio/ui-server/v2')}`);
    // The server reads the dynamic config cluster.sh uses.
    expect(s.temporal!.volumes).toEqual([
      expect.objectContaining({ type: 'bind', source: join(ROOT, 'hack', 'temporal', 'dynamicconfig.yaml'), target: s.temporal!.environment!.DYNAMIC_CONFIG_FILE_PATH, read_only: true }),
    ]);
  });

  test('N workers: $FERRY_WORKERS replicas of the worker, 2 by default', () => {
    expect(config().services['ferry-worker']!.deploy?.replicas).toBe(2);
    expect(config({ FERRY_WORKERS: '3' }).services['ferry-worker']!.deploy?.replicas).toBe(3);
  });

  test("metrics on: the worker serves Ferry's metrics on 9464 and the Temporal SDK's on 9465 (README Metrics)", () => {
    const w = config().services['ferry-worker']! as Config['services'][string] & { expose?: string[] };
    expect(w.environment).toMatchObject({ FERRY_METRICS_PORT: '9464', FERRY_SDK_METRICS_PORT: '9465' });
    expect(w.expose).toEqual(['9464', '9465']);
  });
});
