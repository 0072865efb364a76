/**
 * LocalPod: runs the containers of a generated V1Pod as real processes on this machine, the way a
 * kubelet would, so that the data-plane tests execute exactly the commands, config files, certificates
 * and secrets the library generates — nothing rewritten by the test.
 *
 * STAND-IN NOTICE: this is a test-only stand-in for kubelet + a container runtime, used where the
 * data plane is tested without a cluster. Per container it:
 * - enters the pod's network namespace (one per pod, see netns.ts; containers of a pod share it);
 * - makes a private mount namespace whose root is an overlay over the host's / (the "image" is the
 *   host's own rsync/stunnel/rclone/bash), with fresh /proc, a minimal /dev and /tmp;
 * - materializes the pod's volumes (ConfigMap and Secret keys as files with defaultMode, emptyDirs
 *   shared by the pod's containers, PVCs as host directories) and bind-mounts them at the containers'
 *   exact mountPaths, read-only where the spec says so; binds /dev/termination-log to a file;
 * - applies the security context with setpriv(1): runAsUser/runAsGroup, supplementalGroups and
 *   fsGroup, the capability bounding set (drop ALL + add), no_new_privs, and a read-only root;
 * - honours native sidecars (init containers with restartPolicy Always and a startup probe).
 * What it does not do: image pulls, cgroups/resources, seccomp, SELinux, probes other than exec.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { KubernetesObject, V1ConfigMap, V1Container, V1Pod, V1Secret } from '@kubernetes/client-node';

/** Result of one container. */
export interface ContainerResult {
  name: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  terminationMessage: string;
  logs: string;
}

/** Options of a LocalPod. */
export interface LocalPodOptions {
  pod: V1Pod;
  /** ConfigMaps and Secrets the pod's volumes refer to (the library's objects). */
  objects: KubernetesObject[];
  /** claimName → host directory. */
  pvcs: Record<string, string>;
  /** Network namespace of the pod. */
  netns: string;
  /** Scratch directory for this pod (volumes, overlays, termination messages). */
  workDir: string;
  /** Cap on kept log bytes per container (default 4 MiB; the tail is kept). */
  maxLogBytes?: number;
}

const LOG_CAP = 4 * 1024 * 1024;

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A pod whose containers run as local processes. */
export class LocalPod {
  private readonly procs = new Map<string, ChildProcess>();
  private readonly logs = new Map<string, string>();
  private readonly exits = new Map<string, Promise<ContainerResult>>();
  private readonly volumeDirs = new Map<string, { dir: string; readOnly: boolean }>();

  constructor(private readonly o: LocalPodOptions) {
    mkdirSync(o.workDir, { recursive: true });
    this.materializeVolumes();
  }

  private get spec() {
    const s = this.o.pod.spec;
    if (!s) throw new Error('pod has no spec');
    return s;
  }

  private materializeVolumes(): void {
    const fsGroup = this.spec.securityContext?.fsGroup;
    for (const v of this.spec.volumes ?? []) {
      const dir = join(this.o.workDir, 'volumes', v.name);
      if (v.persistentVolumeClaim) {
        const host = this.o.pvcs[v.persistentVolumeClaim.claimName];
        if (!host) throw new Error(`no host directory for PVC ${v.persistentVolumeClaim.claimName}`);
        this.volumeDirs.set(v.name, { dir: host, readOnly: !!v.persistentVolumeClaim.readOnly });
        continue;
      }
      mkdirSync(dir, { recursive: true });
      if (v.emptyDir) {
        chmodSync(dir, 0o777); // kubelet makes emptyDirs world-writable
        this.volumeDirs.set(v.name, { dir, readOnly: false });
        continue;
      }
      let files: Record<string, string>;
      let mode: number;
      if (v.configMap) {
        const cm = this.find<V1ConfigMap>('ConfigMap', v.configMap.name!);
        files = { ...(cm.data ?? {}) };
        mode = v.configMap.defaultMode ?? 0o644;
      } else if (v.secret) {
        const s = this.find<V1Secret>('Secret', v.secret.secretName!);
        files = {};
        for (const [k, b64] of Object.entries(s.data ?? {})) files[k] = Buffer.from(b64, 'base64').toString('utf8');
        mode = v.secret.defaultMode ?? 0o644;
      } else {
        throw new Error(`LocalPod does not support volume ${v.name}: ${JSON.stringify(v)}`);
      }
      for (const [k, content] of Object.entries(files)) {
        const f = join(dir, k);
        writeFileSync(f, content);
        // kubelet: with an fsGroup, projected files get that group and the group read bit.
        if (fsGroup !== undefined) {
          chownSync(f, 0, fsGroup);
          chmodSync(f, mode | 0o040);
        } else {
          chmodSync(f, mode);
        }
      }
      this.volumeDirs.set(v.name, { dir, readOnly: true });
    }
  }

  private find<T extends KubernetesObject>(kind: string, name: string): T {
    const o = this.o.objects.find((x) => x.kind === kind && x.metadata?.name === name);
    if (!o) throw new Error(`pod refers to ${kind} ${name}, which the library did not produce`);
    return o as T;
  }

  /** The bash script that sets up one container's mount namespace and execs its command. */
  private containerScript(c: V1Container): { script: string; termFile: string } {
    const base = join(this.o.workDir, 'containers', c.name);
    mkdirSync(base, { recursive: true });
    const termFile = join(base, 'termination-log');
    writeFileSync(termFile, '');
    chmodSync(termFile, 0o666);
    const m = join(base, 'root');
    const t = join(base, 'layers');
    mkdirSync(m, { recursive: true });
    mkdirSync(t, { recursive: true });
    const lines = [
      'set -eu',
      `mount -t tmpfs tmpfs ${q(t)}`,
      `mkdir -p ${q(t)}/u ${q(t)}/w`,
      `mount -t overlay overlay -o lowerdir=/,upperdir=${q(t)}/u,workdir=${q(t)}/w ${q(m)}`,
      `mount -t proc proc ${q(m)}/proc`,
      `mount -t tmpfs -o mode=755 tmpfs ${q(m)}/dev`,
      `for n in null zero full random urandom tty; do touch ${q(m)}/dev/$n; mount --bind /dev/$n ${q(m)}/dev/$n; done`,
      `ln -s /proc/self/fd ${q(m)}/dev/fd; ln -s /proc/self/fd/0 ${q(m)}/dev/stdin; ln -s /proc/self/fd/1 ${q(m)}/dev/stdout; ln -s /proc/self/fd/2 ${q(m)}/dev/stderr`,
      `mount -t tmpfs -o mode=1777 tmpfs ${q(m)}/tmp`,
    ];
    const tp = c.terminationMessagePath ?? '/dev/termination-log';
    lines.push(`touch ${q(m + tp)}`, `mount --bind ${q(termFile)} ${q(m + tp)}`);
    for (const vm of c.volumeMounts ?? []) {
      const v = this.volumeDirs.get(vm.name);
      if (!v) throw new Error(`container ${c.name} mounts unknown volume ${vm.name}`);
      const target = q(m + vm.mountPath);
      lines.push(`mkdir -p ${target}`, `mount --bind ${q(v.dir)} ${target}`);
      if (vm.readOnly || v.readOnly) lines.push(`mount -o remount,bind,ro ${target}`);
    }
    const sc = { ...(this.spec.securityContext ?? {}), ...(c.securityContext ?? {}) } as Record<string, unknown>;
    const psc = this.spec.securityContext ?? {};
    if (c.securityContext?.readOnlyRootFilesystem) lines.push(`mount -o remount,ro ${q(m)}`);
    const uid = (c.securityContext?.runAsUser ?? psc.runAsUser ?? 0) as number;
    const gid = (c.securityContext?.runAsGroup ?? psc.runAsGroup ?? (uid === 0 ? 0 : uid)) as number;
    if ((sc.runAsNonRoot as boolean | undefined) && uid === 0) throw new Error(`container ${c.name}: runAsNonRoot with UID 0`);
    const groups = [...(psc.supplementalGroups ?? []), ...(psc.fsGroup !== undefined ? [psc.fsGroup] : [])];
    const add = (c.securityContext?.capabilities?.add ?? []).map((x) => `+${x.toLowerCase()}`);
    const dropAll = (c.securityContext?.capabilities?.drop ?? []).includes('ALL');
    const bounding = dropAll ? ['-all', ...add].join(',') : undefined;
    const setpriv = ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, groups.length ? `--groups=${groups.join(',')}` : '--clear-groups'];
    if (bounding) setpriv.push(`--bounding-set=${bounding}`, `--inh-caps=${bounding}`);
    if (c.securityContext?.allowPrivilegeEscalation === false) setpriv.push('--no-new-privs');
    const env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/tmp'];
    for (const e of c.env ?? []) {
      if (e.valueFrom) throw new Error(`LocalPod does not support env valueFrom (${e.name})`);
      env.push(`${e.name}=${e.value ?? ''}`);
    }
    const argv = [...(c.command ?? []), ...(c.args ?? [])];
    if (!argv.length) throw new Error(`container ${c.name} has no command`);
    lines.push(`cd ${q(m)}`, `exec chroot ${q(m)} ${[...setpriv, '--', 'env', '-i', ...env, ...argv].map(q).join(' ')}`);
    return { script: lines.join('\n'), termFile };
  }

  private startContainer(c: V1Container): Promise<ContainerResult> {
    const { script, termFile } = this.containerScript(c);
    const p = spawn('ip', ['netns', 'exec', this.o.netns, 'unshare', '--mount', '--propagation', 'private', '--', 'bash', '-c', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.procs.set(c.name, p);
    this.logs.set(c.name, '');
    const cap = this.o.maxLogBytes ?? LOG_CAP;
    const onData = (d: Buffer) => {
      let s = this.logs.get(c.name)! + d.toString('utf8');
      if (s.length > cap) s = s.slice(s.length - cap);
      this.logs.set(c.name, s);
    };
    p.stdout!.on('data', onData);
    p.stderr!.on('data', onData);
    const done = new Promise<ContainerResult>((resolve) => {
      p.on('close', (code, signal) => {
        resolve({ name: c.name, exitCode: code, signal, terminationMessage: existsSync(termFile) ? readFileSync(termFile, 'utf8') : '', logs: this.logs.get(c.name)! });
      });
    });
    this.exits.set(c.name, done);
    return done;
  }

  /** Runs an exec probe of container `c` in the pod's network namespace until it succeeds. */
  private async probe(c: V1Container, timeoutMs: number): Promise<void> {
    const probe = c.startupProbe ?? c.readinessProbe;
    const cmd = probe?.exec?.command;
    if (!cmd) return;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        execFileSync('ip', ['netns', 'exec', this.o.netns, ...cmd], { stdio: 'ignore' });
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`probe of container ${c.name} did not succeed within ${timeoutMs} ms:\n${this.logs.get(c.name) ?? ''}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** Starts the pod: native sidecars first (waiting for their startup probes), then the containers. */
  async start(): Promise<void> {
    for (const c of this.spec.initContainers ?? []) {
      if (c.restartPolicy !== 'Always') throw new Error('LocalPod supports only sidecar init containers');
      void this.startContainer(c);
      await this.probe(c, 30_000);
    }
    for (const c of this.spec.containers) void this.startContainer(c);
  }

  /** Waits until every container has a readiness/startup probe passing (server pods). */
  async ready(timeoutMs = 30_000): Promise<void> {
    for (const c of this.spec.containers) await this.probe(c, timeoutMs);
  }

  /** Waits for the regular containers to exit (client pods), then stops sidecars like kubelet does. */
  async completion(timeoutMs = 600_000): Promise<Record<string, ContainerResult>> {
    const main = this.spec.containers.map((c) => this.exits.get(c.name)!);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`pod ${this.o.pod.metadata?.name} did not complete in ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all(main), timeout]);
    } finally {
      clearTimeout(timer);
    }
    await this.stop();
    const out: Record<string, ContainerResult> = {};
    for (const [name, p] of this.exits) out[name] = await p;
    return out;
  }

  /** Current log of a container. */
  log(name: string): string {
    return this.logs.get(name) ?? '';
  }

  /** Stops every container still running (SIGTERM, then SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const running = [...this.procs.entries()].filter(([, p]) => p.exitCode === null && p.signalCode === null);
    for (const [, p] of running) p.kill('SIGTERM');
    await Promise.all(
      running.map(
        ([name]) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              this.procs.get(name)?.kill('SIGKILL');
            }, 5000);
            void this.exits.get(name)!.then(() => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
  }
}

/** Removes a LocalPod work dir (mounts are gone with their namespaces). */
export function removeWorkDir(dir: string): void {
  run('rm', ['-rf', '--one-file-system', dir]);
}
