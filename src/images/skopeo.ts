/**
 * A thin, typed runner of skopeo (containers/skopeo; the Debian 1.9 binary at /usr/bin/skopeo):
 * copy, manifest digest, tag listing, with the registry settings of a plan.
 *
 * Credentials reach skopeo only as file paths (`--authfile`-style options pointing at the plan's
 * containers-auth.json / docker config.json); they are never on a command line (visible in `ps`) or
 * in a log. TLS verification stays on unless the registry says `insecureSkipTLSVerify`; a `caFile`
 * is handed over as a certificate directory (skopeo's `--cert-dir` reads every `*.crt` in it:
 * containers-certs.d(5)).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RegistryConfig } from '../plan/schema';
import { FerryError, type FerryErrorCategory } from '../core/errors';

/** Default skopeo binary. */
export const SKOPEO_BINARY = 'skopeo';

/** A registry address split into the reference prefix and its transport security. */
export interface RegistryLocation {
  /** `host[:port][/path]`, the prefix of every image reference in this registry. */
  base: string;
  /** Whether to verify TLS (false: insecureSkipTLSVerify, which also allows plain http). */
  tlsVerify: boolean;
}

/** Pure: the location of a plan registry ("https://host:5000/path/" → base "host:5000/path"). */
export function registryLocation(reg: Pick<RegistryConfig, 'url' | 'insecureSkipTLSVerify'>): RegistryLocation {
  const base = reg.url.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  return { base, tlsVerify: !reg.insecureSkipTLSVerify };
}

/** Which side of a copy a registry is on (selects `--src-*` / `--dest-*` options). */
export type Side = 'src' | 'dest' | 'single';

/** Pure: skopeo options for one registry. `certDir` is the directory holding the CA (see `prepareCertDir`). */
export function registryArgs(reg: Pick<RegistryConfig, 'authFile' | 'insecureSkipTLSVerify'>, side: Side, certDir?: string): string[] {
  const p = side === 'single' ? '' : `${side}-`;
  const args: string[] = [];
  if (reg.authFile) args.push(`--${p}authfile=${reg.authFile}`);
  if (reg.insecureSkipTLSVerify) args.push(`--${p}tls-verify=false`);
  else if (certDir) args.push(`--${p}cert-dir=${certDir}`);
  return args;
}

/** Pure: classifies a skopeo failure by its stderr. */
export function classifySkopeoError(stderr: string): { category: FerryErrorCategory | 'missing'; hint: string } {
  // TLS first: its messages mention "authority", and ports can contain "401"/"403".
  if (/x509|certificate signed by unknown|tls: /i.test(stderr)) {
    return { category: 'config', hint: 'TLS verification failed: set caFile to the CA that signs the registry certificate (insecureSkipTLSVerify only if you accept the risk)' };
  }
  if (/http: server gave HTTP response to HTTPS client/i.test(stderr)) {
    return { category: 'config', hint: 'the registry speaks plain HTTP: use an https registry (or http:// with insecureSkipTLSVerify)' };
  }
  if (/manifest unknown|name unknown|repository name not known|NAME_UNKNOWN|MANIFEST_UNKNOWN|not found: manifest|status code from registry 404\b/i.test(stderr)) {
    return { category: 'missing', hint: 'the image or tag does not exist in the source registry' };
  }
  if (/unauthorized|authentication required|access denied|requested access to the resource is denied|\b(401|403)\b \(|status code from registry (401|403)\b|invalid username\/password/i.test(stderr)) {
    return { category: 'auth', hint: 'the registry refused the credentials: check authFile (it needs pull rights on the source and push rights on the destination)' };
  }
  return { category: 'transient', hint: 'registry or network error; retrying' };
}

/** Thrown when skopeo fails; `category` 'missing' means the source image does not exist. */
export class SkopeoError extends FerryError {
  readonly missing: boolean;
  constructor(operation: string, stderr: string) {
    const c = classifySkopeoError(stderr);
    const detail = stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 600);
    super(c.category === 'missing' ? 'fatal' : c.category, `skopeo ${operation} failed: ${c.hint} (${detail})`);
    this.name = 'SkopeoError';
    this.missing = c.category === 'missing';
  }
}

/** Options of `Skopeo`. */
export interface SkopeoOptions {
  binary?: string;
  /** Seconds one skopeo call may take (default 3600). */
  timeoutSeconds?: number;
  /** skopeo's own retries of registry calls (default 3). */
  retryTimes?: number;
  signal?: AbortSignal;
}

/**
 * The skopeo operations Ferry uses. Create one per copy job and `close()` it (removes the temporary
 * certificate directories).
 */
export class Skopeo {
  private readonly binary: string;
  private readonly timeoutMs: number;
  private readonly retryTimes: number;
  private readonly signal?: AbortSignal;
  private readonly workDir: string;
  private readonly certDirs = new Map<string, string>();

  /** Creates the runner and its temporary directory (for CA certificate directories and digest files). */
  constructor(options: SkopeoOptions = {}) {
    this.binary = options.binary ?? SKOPEO_BINARY;
    this.timeoutMs = (options.timeoutSeconds ?? 3600) * 1000;
    this.retryTimes = options.retryTimes ?? 3;
    if (options.signal) this.signal = options.signal;
    this.workDir = mkdtempSync(join(tmpdir(), 'ferry-skopeo-'));
  }

  /** Removes the temporary files. */
  close(): void {
    rmSync(this.workDir, { recursive: true, force: true });
  }

  /** A certificate directory with `caFile` as ca.crt (one per distinct file). */
  private certDir(caFile: string | undefined): string | undefined {
    if (!caFile) return undefined;
    let dir = this.certDirs.get(caFile);
    if (!dir) {
      dir = join(this.workDir, `certs-${this.certDirs.size}`);
      mkdirSync(dir, { recursive: true });
      copyFileSync(caFile, join(dir, 'ca.crt'));
      this.certDirs.set(caFile, dir);
    }
    return dir;
  }

  private args(reg: RegistryConfig, side: Side): string[] {
    return registryArgs(reg, side, reg.insecureSkipTLSVerify ? undefined : this.certDir(reg.caFile));
  }

  private run(args: string[], operation: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      execFile(
        this.binary,
        args,
        { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: this.timeoutMs, ...(this.signal ? { signal: this.signal } : {}) },
        (err, stdout, stderr) => {
          if (!err) return resolve(stdout);
          const text = `${stderr.toString('utf8')}${(err as { code?: string }).code === 'ENOENT' ? `skopeo binary ${this.binary} not found on the worker` : ''}`;
          if ((err as { code?: string }).code === 'ENOENT') return reject(new FerryError('config', `skopeo ${operation}: ${this.binary} is not installed on the worker (install skopeo)`));
          reject(new SkopeoError(operation, text || err.message));
        },
      );
    });
  }

  /**
   * The manifest digest of an image (`sha256:…` of the raw manifest or manifest list), or undefined
   * when it does not exist.
   */
  async digest(image: string, reg: RegistryConfig): Promise<string | undefined> {
    try {
      const raw = await this.run(['inspect', '--raw', `--retry-times=${this.retryTimes}`, ...this.args(reg, 'single'), `docker://${image}`], `inspect ${image}`);
      return `sha256:${createHash('sha256').update(raw).digest('hex')}`;
    } catch (err) {
      if (err instanceof SkopeoError && err.missing) return undefined;
      throw err;
    }
  }

  /** Tags of a repository (`host/path/repo`). @throws SkopeoError (missing when the repository does not exist). */
  async listTags(repository: string, reg: RegistryConfig): Promise<string[]> {
    const out = await this.run(['list-tags', `--retry-times=${this.retryTimes}`, ...this.args(reg, 'single'), `docker://${repository}`], `list-tags ${repository}`);
    const parsed = JSON.parse(out.toString('utf8')) as { Tags?: string[] };
    return parsed.Tags ?? [];
  }

  /**
   * Copies an image with every platform of a manifest list (`--all`) and identical digests
   * (`--preserve-digests`); returns the digest written at the destination.
   */
  async copy(source: string, destination: string, srcReg: RegistryConfig, dstReg: RegistryConfig): Promise<string> {
    const digestFile = join(this.workDir, `digest-${createHash('sha256').update(destination).digest('hex').slice(0, 12)}`);
    await this.run(
      [
        'copy',
        '--all',
        '--preserve-digests',
        `--retry-times=${this.retryTimes}`,
        `--digestfile=${digestFile}`,
        ...this.args(srcReg, 'src'),
        ...this.args(dstReg, 'dest'),
        `docker://${source}`,
        `docker://${destination}`,
      ],
      `copy ${source} → ${destination}`,
    );
    return readFileSync(digestFile, 'utf8').trim();
  }
}
