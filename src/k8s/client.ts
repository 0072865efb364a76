/**
 * Kubernetes access for Ferry: kubeconfig loading with operator-friendly errors, and `KubeClient`, a
 * small wrapper over @kubernetes/client-node 1.x (KubernetesObjectApi for any kind including CRDs,
 * CoreV1Api for logs and version, AuthorizationV1Api for SelfSubjectAccessReviews).
 *
 * Conventions of every method:
 * - objects are addressed by `{apiVersion, kind, namespace?, name}`;
 * - a missing object is `undefined` (get) or `false` (delete), never an exception;
 * - API errors are rethrown unchanged (an ApiException with `code`), so `isTransient` / `statusCode`
 *   can classify them; the only errors this module creates are ConflictError, WaitTimeoutError,
 *   AbortedError, KubeConfigError and ApiRequestTimeoutError;
 * - every API request (headers and body) ends within API_REQUEST_TIMEOUT_SECONDS: a request hung on
 *   a black-holed connection fails as a transient error (the activity's retry policy takes over)
 *   instead of waiting forever while the activity's keep-alive heartbeats go on.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https';
import fetch, { type RequestInit } from 'node-fetch';
import type { Agent } from 'node:http';
import { Writable } from 'node:stream';
import type {
  AuthorizationV1Api,
  Configuration,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObject,
  KubernetesObjectApi,
  Observable,
  RequestContext,
  ResponseContext,
  V1Status,
  VersionApi,
  VersionInfo,
} from '@kubernetes/client-node';
import { k8s } from './k8s';
import { resolveKubeconfigPaths } from './kubeconfig';
import { ANNOTATIONS, LABELS } from '../statetransfer/names';
import { AbortedError, ConflictError, FerryError, WaitTimeoutError, errorMessage } from '../core/errors';

/**
 * Seconds one Kubernetes API request may take, response body included. Ferry's only long-running
 * requests are watches (`KubeClient.watch`, bounded on their own: see there); there is no log follow
 * (progress.ts reads log tails), and a healthy API server answers a 500-item list page within
 * seconds; 45 s leaves room for a loaded one.
 */
export const API_REQUEST_TIMEOUT_SECONDS = 45;

/**
 * Thrown when an API request got no complete answer within its timeout (API_REQUEST_TIMEOUT_SECONDS):
 * the connection is black-holed or the API server hangs. `code` ETIMEDOUT makes it transient
 * (`isTransient`), like a network error: not a FerryError, so waits treat it as "not yet".
 */
export class ApiRequestTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(message: string) {
    super(message);
    this.name = 'ApiRequestTimeoutError';
  }
}

/**
 * The HTTP layer of every API client of a KubeClient: node-fetch (client-node's own library) with each
 * request bounded in time. On timeout the request is aborted (its socket closed; other requests on
 * the pooled agent are not touched, see PooledAgentAuthentication) and fails with
 * ApiRequestTimeoutError. The body is read within the same bound. An empty body without a
 * Content-Type (the log of a pod not yet scheduled) is passed on as text/plain, so that it reads as ''.
 */
class TimedHttpLibrary {
  constructor(
    private readonly timeoutMs: number,
    private readonly contextName: string,
  ) {}

  send(request: RequestContext): Observable<ResponseContext> {
    return new k8s.Observable(this.timed(request));
  }

  private async timed(request: RequestContext): Promise<ResponseContext> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.timeoutMs);
    try {
      const response = await fetch(request.getUrl(), {
        method: request.getHttpMethod().toString(),
        body: request.getBody() as string | Buffer | undefined,
        headers: request.getHeaders(),
        agent: request.getAgent() as Agent | undefined,
        signal: abort.signal as NonNullable<RequestInit['signal']>,
      });
      const body = await response.buffer();
      const headers: Record<string, string> = {};
      response.headers.forEach((value, name) => (headers[name] = value));
      // An empty body may come without a Content-Type: the log of a pod not yet scheduled is a 204
      // without one (apiserver's LocationStreamer has no location, hence no content; seen on the
      // lab's v1.32 API server). client-node's ObjectSerializer.parse throws on a missing
      // Content-Type ("Cannot parse content. No Content-Type defined."); an empty body is empty text.
      if (body.length === 0 && headers['content-type'] === undefined) headers['content-type'] = 'text/plain';
      return new k8s.ResponseContext(response.status, headers, { text: async () => body.toString('utf8'), binary: async () => body });
    } catch (err) {
      if (!abort.signal.aborted) throw err;
      const url = request.getUrl().replace(/\?.*$/, '');
      throw new ApiRequestTimeoutError(`the Kubernetes API of context ${this.contextName} did not answer ${request.getHttpMethod()} ${url} within ${this.timeoutMs / 1000} s (connection lost or API server hung); retrying`);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The kubeconfig's authentication with one keep-alive HTTPS agent per set of TLS settings, instead of
 * the new agent client-node makes for every request (KubeConfig.applySecurityAuthentication): with
 * that, every request opened a TLS connection and parsed the client key and certificates again
 * (tls.createSecureContext) — 16% of a worker's CPU during a 50-PVC migration on the lab, measured with
 * --cpu-prof (setKey, setCerts, addCACerts, the handshake). Headers (tokens, which an exec plugin may
 * renew) are still applied for every request; a change of the TLS settings (rotated client
 * certificates) gets a new agent. Proxy agents (cluster.proxyUrl) and plain HTTP are left as
 * client-node makes them.
 */
class PooledAgentAuthentication {
  constructor(private readonly kubeConfig: KubeConfig) {}

  getName(): string {
    return this.kubeConfig.getName();
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.kubeConfig.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    if (!(fresh instanceof HttpsAgent) || fresh.constructor !== HttpsAgent) return;
    const o = (fresh as HttpsAgent & { options: HttpsAgentOptions }).options;
    const tls = { ca: o.ca, cert: o.cert, key: o.key, pfx: o.pfx, passphrase: o.passphrase, rejectUnauthorized: o.rejectUnauthorized, servername: o.servername };
    const id = createHash('sha256').update(JSON.stringify(tls, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v))).digest('hex');
    let agent = POOLED_AGENTS.get(id);
    if (!agent) {
      agent = new HttpsAgent({ ...tls, keepAlive: true, maxSockets: MAX_API_SOCKETS, timeout: API_SOCKET_IDLE_MS });
      POOLED_AGENTS.set(id, agent);
    }
    context.setAgent(agent);
  }
}

/**
 * The keep-alive agents of the process, by TLS settings (CA, client certificate and key, server name):
 * shared by every KubeClient of the same cluster and identity, also across activities (each builds
 * its clients anew from the kubeconfig). Node unrefs idle keep-alive sockets: they never hold the
 * process open.
 */
const POOLED_AGENTS = new Map<string, HttpsAgent>();
/** Connections to one API server (per identity) the process keeps at most (requests beyond wait for one). */
const MAX_API_SOCKETS = 64;
/** An idle pooled connection is closed after this long, milliseconds (API servers close theirs later). */
const API_SOCKET_IDLE_MS = 30_000;

/** Which kubeconfig and context to use (a plan's `source` / `destination`). */
export interface KubeConfigOptions {
  /** Path of the kubeconfig file. Default: $KUBECONFIG (merged like kubectl), else ~/.kube/config. */
  kubeconfig?: string;
  /** Context name. Default: the kubeconfig's current-context. */
  context?: string;
}

/** Thrown when a kubeconfig cannot be loaded or the requested context does not exist. Category `preflight`. */
export class KubeConfigError extends FerryError {
  constructor(message: string) {
    super('preflight', message);
    this.name = 'KubeConfigError';
  }
}

/**
 * Loads a kubeconfig the way kubectl does (explicit file, else every $KUBECONFIG entry merged, else
 * ~/.kube/config) and selects the context.
 *
 * @throws KubeConfigError when a file is missing or unreadable, when the context does not exist
 *   (the message lists the available contexts), or when no context is selected at all.
 */
export function loadKubeConfig(options: KubeConfigOptions = {}, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const files = resolveKubeconfigPaths({ kubeconfig: options.kubeconfig, context: options.context }, env);
  const origin = options.kubeconfig !== undefined ? 'the plan' : env.KUBECONFIG ? '$KUBECONFIG' : 'the default location';
  const present = files.filter((f) => existsSync(f));
  if (present.length === 0) {
    throw new KubeConfigError(`kubeconfig ${files.join(', ')} (from ${origin}) does not exist: set source/destination.kubeconfig in the plan or $KUBECONFIG`);
  }
  const kc = new k8s.KubeConfig();
  for (const [i, file] of present.entries()) {
    try {
      if (i === 0) kc.loadFromFile(file);
      else {
        // kubectl's merge: the first file that defines a name wins (client-node's mergeConfig throws).
        const more = new k8s.KubeConfig();
        more.loadFromFile(file);
        for (const c of more.getClusters()) if (!kc.getCluster(c.name)) kc.addCluster(c);
        for (const u of more.getUsers()) if (!kc.getUser(u.name)) kc.addUser(u);
        for (const c of more.getContexts()) if (!kc.getContextObject(c.name)) kc.addContext(c);
        if (!kc.getCurrentContext() && more.getCurrentContext()) kc.setCurrentContext(more.getCurrentContext());
      }
    } catch (err) {
      throw new KubeConfigError(`cannot load kubeconfig ${file}: ${errorMessage(err)}`);
    }
  }
  const contexts = kc.getContexts().map((c) => c.name);
  const available = contexts.length ? `available contexts: ${contexts.join(', ')}` : 'it defines no context';
  if (options.context !== undefined) {
    if (!contexts.includes(options.context)) {
      throw new KubeConfigError(`context ${JSON.stringify(options.context)} not found in kubeconfig ${present.join(', ')}; ${available}`);
    }
    kc.setCurrentContext(options.context);
  } else if (!kc.getCurrentContext() || !contexts.includes(kc.getCurrentContext())) {
    throw new KubeConfigError(`kubeconfig ${present.join(', ')} has no current-context: set context in the plan; ${available}`);
  }
  if (!kc.getCurrentCluster()) {
    throw new KubeConfigError(`context ${JSON.stringify(kc.getCurrentContext())} of kubeconfig ${present.join(', ')} names a cluster that is not defined`);
  }
  return kc;
}

/** An object's address. `namespace` is omitted for cluster-scoped kinds. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** A kind to list or delete, e.g. `{apiVersion: 'v1', kind: 'Pod'}`. */
export interface KindRef {
  apiVersion: string;
  kind: string;
}

/** Options of `KubeClient.list`. */
export interface ListOptions {
  /** Label selector string (`a=b,c!=d`). */
  labelSelector?: string;
  /** Field selector string (`status.phase=Running`). */
  fieldSelector?: string;
}

/** Options of `KubeClient.watch`. */
export interface WatchOptions extends ListOptions {
  /**
   * Start after this resourceVersion (no event for what happened before). Omitted: the API server
   * first sends a synthetic ADDED event for every existing object, then the changes.
   */
  resourceVersion?: string;
  /**
   * Seconds after which the API server ends the watch (`timeoutSeconds` of the watch request;
   * default 300). Ferry also stops it itself WATCH_GRACE_SECONDS later, should the server not (a
   * black-holed connection): `onDone` is then called without an error.
   */
  timeoutSeconds?: number;
}

/** The type of a watch event (Kubernetes API concepts, "Efficient detection of changes"). */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** A running watch: `stop()` ends it (idempotent; `onDone` is then called once, without error). */
export interface WatchHandle {
  stop(): void;
}

/** Seconds Ferry waits past a watch's server-side `timeoutSeconds` before it stops the watch itself. */
export const WATCH_GRACE_SECONDS = 15;

/** The verbs and resource of one SelfSubjectAccessReview. */
export interface AccessCheck {
  verb: string;
  /** API group ('' for the core group). */
  group: string;
  /** Plural resource name, e.g. 'persistentvolumeclaims'. */
  resource: string;
  subresource?: string;
  /** Omitted for cluster-scoped resources or cluster-wide checks. */
  namespace?: string;
}

/** Result of `createOrAdopt`. */
export interface CreateOrAdoptResult<T extends KubernetesObject> {
  /** The live object (as created, or as found). */
  object: T;
  /** true when this call created it, false when an existing object of this migration was adopted. */
  created: boolean;
}

/** The HTTP status code of an API error, undefined for anything else. */
export function statusCode(err: unknown): number | undefined {
  if (err instanceof k8s.ApiException) return err.code;
  const code = (err as { code?: unknown; statusCode?: unknown } | null)?.statusCode ?? (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * The server's explanation of an API error (the Status `message`), else the error's own message.
 * Kubernetes returns a v1 Status JSON body for every error (API conventions, "Response Status Kind").
 */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof k8s.ApiException) {
    const body = err.body as unknown;
    let status: Partial<V1Status> | undefined;
    if (typeof body === 'string') {
      try {
        status = JSON.parse(body) as Partial<V1Status>;
      } catch {
        status = undefined;
      }
    } else if (body && typeof body === 'object') status = body as Partial<V1Status>;
    if (status?.message) return `${status.message} (HTTP ${err.code})`;
    return `HTTP ${err.code}${typeof body === 'string' && body.length < 300 ? `: ${body}` : ''}`;
  }
  return errorMessage(err);
}

/**
 * The API server's message when Pod Security admission rejected an object (HTTP 403 whose Status
 * message says `violates PodSecurity "<level>:<version>": …`, kubernetes/pod-security-admission), else
 * undefined. Such a 403 is about the namespace's pod-security.kubernetes.io/enforce label, not about
 * Ferry's credentials or RBAC.
 */
export function podSecurityRejection(err: unknown): string | undefined {
  if (statusCode(err) !== 403) return undefined;
  const message = apiErrorMessage(err);
  return /violates PodSecurity/i.test(message) ? message : undefined;
}

const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/**
 * Whether retrying the call later may succeed.
 * - transient: network failures (ECONNREFUSED, ECONNRESET, ETIMEDOUT, DNS EAI_AGAIN …, also when
 *   wrapped as node-fetch FetchError "reason: connect ECONNREFUSED"), request timeouts/aborts,
 *   HTTP 408, 429 (throttled) and every 5xx; FerryErrors of category `transient`;
 * - not transient: 400, 401, 403, 404, 405, 409, 410, 422 and any other error.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof FerryError) return err.category === 'transient';
  const code = statusCode(err);
  if (code !== undefined) return code === 408 || code === 429 || (code >= 500 && code <= 599);
  const e = err as { code?: unknown; errno?: unknown; type?: unknown; name?: unknown; message?: unknown; cause?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  for (const c of [e.code, e.errno]) if (typeof c === 'string' && TRANSIENT_NETWORK_CODES.has(c)) return true;
  if (e.name === 'AbortError' || e.type === 'request-timeout' || e.type === 'body-timeout') return true;
  if (typeof e.message === 'string' && /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|socket hang up)\b/.test(e.message)) return true;
  if (e.cause && e.cause !== err) return isTransient(e.cause);
  return false;
}

/** Options of `waitFor`. */
export interface WaitOptions {
  /** Give up after this many seconds (throws WaitTimeoutError). Omitted: wait until aborted. */
  timeoutSeconds?: number;
  /** Seconds between two checks (default 2). */
  intervalSeconds?: number;
  /** Called after every unsuccessful check with the elapsed seconds (heartbeat here). */
  onTick?: (elapsedSeconds: number) => void;
  /** Aborts the wait (throws AbortedError). */
  signal?: AbortSignal;
  /** What is awaited, for the timeout message ("server pod ns/name to be ready"). */
  description?: string;
  /** Extra text for the timeout message, computed at timeout (e.g. the last observed reason). */
  explain?: () => string | undefined;
  /** Rung (by a watch, say) to run the next check now instead of at the end of the interval. */
  wakeup?: Wakeup;
}

/**
 * A doorbell for `waitFor`: `ring()` ends the wait's current pause at once, so the next check runs
 * now; a ring while no pause runs (during a check) makes the next pause end at once, so no ring is
 * lost. Rings between two pauses count once.
 */
export class Wakeup {
  private rung = false;
  private waiter: (() => void) | undefined;

  /** Wakes the pause in progress, or the next one. */
  ring(): void {
    this.rung = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  /**
   * Sleeps `ms` milliseconds, less when rung (at once when rung since the last pause).
   * @throws AbortedError when `signal` aborts.
   */
  async pause(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw new AbortedError();
    if (!this.rung) {
      await new Promise<void>((resolve, reject) => {
        const finish = (err?: Error) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if (this.waiter === wake) this.waiter = undefined;
          if (err) reject(err);
          else resolve();
        };
        const wake = () => finish();
        const onAbort = () => finish(new AbortedError());
        const timer = setTimeout(wake, ms);
        this.waiter = wake;
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    this.rung = false;
  }
}

/** Sleeps `ms` milliseconds; rejects with AbortedError when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Polls `fn` until it returns something other than undefined/false/null and returns that value.
 * Checks run every `intervalSeconds`, at once when `wakeup` rings, and a last time at the timeout
 * (the pause before it is shortened). Only genuinely transient errors of the API or the network thrown by `fn` (`isTransient`, not
 * FerryErrors) count as "not yet"; a FerryError thrown by `fn` is Ferry's own verdict ("pod
 * disappeared", "cannot be scheduled", …) and propagates at once with its own category, as does
 * any other error.
 * @throws WaitTimeoutError after `timeoutSeconds`, saying what was awaited (`description`), the last
 *   observed state (`explain`) and the last transient API error if the last check failed;
 *   AbortedError when `signal` aborts.
 */
export async function waitFor<T>(fn: () => Promise<T | undefined | false | null>, options: WaitOptions = {}): Promise<T> {
  const start = Date.now();
  const interval = (options.intervalSeconds ?? 2) * 1000;
  let lastTransient: unknown;
  for (;;) {
    if (options.signal?.aborted) throw new AbortedError();
    try {
      const v = await fn();
      if (v !== undefined && v !== false && v !== null) return v;
      lastTransient = undefined;
    } catch (err) {
      if (err instanceof FerryError || !isTransient(err)) throw err;
      lastTransient = err;
    }
    const elapsed = (Date.now() - start) / 1000;
    if (options.timeoutSeconds !== undefined && elapsed >= options.timeoutSeconds) {
      const extra = [options.explain?.(), lastTransient ? `last check failed: ${apiErrorMessage(lastTransient)}` : undefined].filter(Boolean).join('; ');
      throw new WaitTimeoutError(`timed out after ${Math.round(elapsed)} s waiting for ${options.description ?? 'a condition'}${extra ? `: ${extra}` : ''}`);
    }
    options.onTick?.(elapsed);
    const pause = options.timeoutSeconds === undefined ? interval : Math.max(0, Math.min(interval, options.timeoutSeconds * 1000 - (Date.now() - start)));
    await (options.wakeup ? options.wakeup.pause(pause, options.signal) : sleep(pause, options.signal));
  }
}

/** Options of `keepWatching`. */
export interface KeepWatchingOptions extends WatchOptions {
  /** Milliseconds before watching again after a failure (and between attempts while they fail). */
  retryMs: number;
  /** `started` resolves at the latest this many milliseconds after the call. */
  startBoundMs: number;
  /**
   * Events may have been missed, check again: called for every failure (of an attempt or of a
   * running watch, with the error) and for every watch that starts, once `started` resolved (the
   * interval before it was not watched). Not called before `started` resolved: the caller's first
   * check comes after it.
   */
  onGap: (err?: unknown) => void;
}

/**
 * Keeps a watch of `kind` in `namespace` (KubeClient.watch) running until `stop()`: `onEvent` gets
 * every event; a watch the server closes is opened again after 1 s (at most `retryMs`), one that
 * fails or cannot start after `retryMs`, each time with `onGap`. `started` resolves once the first
 * attempt ended (watch running or failed), at most `startBoundMs` later: check the state after it,
 * and every change after that check reaches `onEvent` or `onGap`.
 */
export function keepWatching<T extends KubernetesObject = KubernetesObject>(
  client: KubeClient,
  kind: KindRef,
  namespace: string | undefined,
  options: KeepWatchingOptions,
  onEvent: (type: WatchEventType, object: T) => void,
): { started: Promise<void>; stop(): void } {
  const { retryMs, startBoundMs, onGap, ...watchOptions } = options;
  let stopped = false;
  let ready = false;
  let handle: WatchHandle | undefined;
  let retry: NodeJS.Timeout | undefined;
  const gap = (err?: unknown) => {
    if (ready && !stopped) onGap(err);
  };
  const again = (ms: number) => {
    retry = setTimeout(() => void open(), ms);
  };
  const open = async (): Promise<void> => {
    if (stopped) return;
    let closed = false;
    try {
      const h = await client.watch<T>(kind, namespace, watchOptions, (type, o) => !stopped && onEvent(type, o), (err) => {
        closed = true;
        handle = undefined;
        if (stopped) return;
        if (err) gap(err);
        again(err ? retryMs : Math.min(1000, retryMs));
      });
      if (stopped) return h.stop();
      if (!closed) handle = h;
      gap();
    } catch (err) {
      gap(err);
      if (!stopped) again(retryMs);
    }
  };
  let bound: NodeJS.Timeout | undefined;
  const started = Promise.race([open(), new Promise<void>((resolve) => (bound = setTimeout(resolve, startBoundMs)))]).then(() => {
    clearTimeout(bound);
    ready = true;
  });
  return {
    started,
    stop: () => {
      stopped = true;
      clearTimeout(bound);
      clearTimeout(retry);
      handle?.stop();
      handle = undefined;
    },
  };
}

/**
 * Rings `wakeup` whenever the object `namespace/name` of `kind` changes, and on every gap of the
 * watch (keepWatching, selected by name): a waiter that pauses with `wakeup` between its checks (waitFor's
 * `wakeup`, Wakeup.pause) sees a pod become Ready the moment the kubelet reports it, not at the end of
 * its interval. Await `started` before the first check (a change after it is not missed) and `stop()`
 * after the last one. A client without `watch` (a test double) gets a handle that does nothing: the
 * waiter then polls at its interval.
 */
export function ringOnChange(client: KubeClient, kind: KindRef, namespace: string | undefined, name: string, wakeup: Wakeup, retryMs = 2000): { started: Promise<void>; stop(): void } {
  if (typeof (client as Partial<KubeClient>).watch !== 'function') return { started: Promise.resolve(), stop: () => undefined };
  return keepWatching(client, kind, namespace, { fieldSelector: `metadata.name=${name}`, retryMs, startBoundMs: 2000, onGap: () => wakeup.ring() }, () => wakeup.ring());
}

/** The migration label value of an object, if any. */
function migrationLabel(o: KubernetesObject | undefined): string | undefined {
  return o?.metadata?.labels?.[LABELS.migration];
}

/** "Kind namespace/name" for messages. */
export function describeRef(r: ObjectRef | KubernetesObject): string {
  const ref: { kind?: string; namespace?: string; name?: string } =
    'metadata' in r ? { kind: r.kind, namespace: r.metadata?.namespace, name: r.metadata?.name } : (r as ObjectRef);
  return `${ref.kind ?? '?'} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name ?? '?'}`;
}

/** Turns an ObjectRef into the header KubernetesObjectApi wants. */
function header(r: ObjectRef): { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } {
  return { apiVersion: r.apiVersion, kind: r.kind, metadata: { name: r.name, ...(r.namespace ? { namespace: r.namespace } : {}) } };
}

/** KubernetesObjectApi.makeApiClient's object: the default namespace from the kubeconfig context. */
class ObjectApi extends k8s.KubernetesObjectApi {
  constructor(configuration: Configuration, kubeConfig: KubeConfig) {
    super(configuration);
    this.setDefaultNamespace(kubeConfig);
  }

  /** The collection path of `kind` (in `namespace`), e.g. /api/v1/namespaces/shop/pods (discovery, cached). */
  collectionPath(kind: KindRef, namespace: string | undefined): Promise<string> {
    return this.specUriPath({ apiVersion: kind.apiVersion, kind: kind.kind, metadata: namespace ? { namespace } : {} }, 'list');
  }
}

/**
 * One cluster, as seen through one kubeconfig context.
 */
export class KubeClient {
  /** The loaded kubeconfig. */
  readonly kubeConfig: KubeConfig;
  /** Generic API for any kind (including CRDs such as Route, ImageStream, DeploymentConfig). */
  readonly objects: KubernetesObjectApi;
  private readonly objectApi: ObjectApi;
  readonly core: CoreV1Api;
  readonly authorization: AuthorizationV1Api;
  /** Context name, used in messages ("context ferry-dst"). */
  readonly contextName: string;
  private readonly versionApi: VersionApi;
  private readonly customObjects: CustomObjectsApi;
  private readonly apiPresence = new Map<string, Promise<Set<string> | undefined>>();

  /**
   * Wraps a loaded kubeconfig (its current context is the cluster). See also `fromOptions`.
   * `requestTimeoutSeconds`: the bound of every API request (default API_REQUEST_TIMEOUT_SECONDS).
   * @throws Error when the current context has no cluster (loadKubeConfig checks it first).
   */
  constructor(kubeConfig: KubeConfig, options: { requestTimeoutSeconds?: number } = {}) {
    this.kubeConfig = kubeConfig;
    this.contextName = kubeConfig.getCurrentContext();
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('No active cluster!');
    // What KubeConfig.makeApiClient does, with the time-bounded HTTP layer.
    const configuration: Configuration = k8s.createConfiguration({
      baseServer: new k8s.ServerConfiguration(cluster.server, {}),
      authMethods: { default: new PooledAgentAuthentication(kubeConfig) as unknown as KubeConfig },
      httpApi: new TimedHttpLibrary((options.requestTimeoutSeconds ?? API_REQUEST_TIMEOUT_SECONDS) * 1000, this.contextName),
    });
    this.objectApi = new ObjectApi(configuration, kubeConfig);
    this.objects = this.objectApi;
    this.core = new k8s.CoreV1Api(configuration);
    this.authorization = new k8s.AuthorizationV1Api(configuration);
    this.versionApi = new k8s.VersionApi(configuration);
    this.customObjects = new k8s.CustomObjectsApi(configuration);
  }

  /** Builds a client from a plan's cluster reference. @throws KubeConfigError (see loadKubeConfig). */
  static fromOptions(options: KubeConfigOptions = {}, env: NodeJS.ProcessEnv = process.env): KubeClient {
    return new KubeClient(loadKubeConfig(options, env));
  }

  /** The API server's version (GET /version): the reachability check. */
  async version(): Promise<VersionInfo> {
    return this.versionApi.getCode();
  }

  /**
   * Whether the cluster serves `kind` in `apiVersion` (discovery: GET /apis/<group>/<version>).
   * Cached per client. Without `kind`, whether the group/version exists at all.
   */
  async hasApi(apiVersion: string, kind?: string): Promise<boolean> {
    let p = this.apiPresence.get(apiVersion);
    if (!p) {
      const [group, version] = apiVersion.includes('/') ? apiVersion.split('/', 2) : ['', apiVersion];
      const request = group ? this.customObjects.getAPIResources({ group: group!, version: version! }) : this.core.getAPIResources();
      p = request.then(
        (list) => new Set((list.resources ?? []).filter((r) => !r.name.includes('/')).map((r) => r.kind)),
        (err) => {
          if (statusCode(err) === 404) return undefined;
          this.apiPresence.delete(apiVersion);
          throw err;
        },
      );
      this.apiPresence.set(apiVersion, p);
    }
    const kinds = await p;
    return kinds !== undefined && (kind === undefined || kinds.has(kind));
  }

  /** Reads an object; undefined when it does not exist (404). */
  async get<T extends KubernetesObject = KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return (await this.objects.read(header(ref) as never)) as T;
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  }

  /**
   * Lists objects of a kind (in `namespace`, or cluster-wide when omitted), following `continue`
   * tokens, 500 items per page. Items get `apiVersion`/`kind` filled in (list items lack them).
   */
  async list<T extends KubernetesObject = KubernetesObject>(kind: KindRef, namespace?: string, options: ListOptions = {}): Promise<T[]> {
    const out: T[] = [];
    let token: string | undefined;
    do {
      const page = await this.objects.list<T>(kind.apiVersion, kind.kind, namespace, undefined, undefined, undefined, options.fieldSelector, options.labelSelector, 500, token);
      for (const item of page.items ?? []) {
        item.apiVersion ??= kind.apiVersion;
        item.kind ??= kind.kind;
        out.push(item);
      }
      token = page.metadata?._continue || undefined;
    } while (token);
    return out;
  }

  /**
   * Watches objects of a kind (in `namespace`, or cluster-wide when omitted) matching the selectors
   * of `options`: `onEvent` gets each event's type and object (`apiVersion`/`kind` filled in), in
   * the API server's order. Resolves once the API server accepted the watch (HTTP 200: every change
   * after that moment is delivered), with a handle to stop it. Once it resolved, `onDone` is called
   * exactly once when the watch ends: without an error when stopped or closed by the server (its `timeoutSeconds`, a
   * restart), with the error when it failed, and with an Error carrying the Status `code` when the
   * server sent an ERROR event (410 Gone: `resourceVersion` too old; list again and watch anew).
   * The caller decides whether and when to watch again. Uses client-node's Watch (its own HTTP
   * request, outside API_REQUEST_TIMEOUT_SECONDS: the response headers are bounded by 30 s, the
   * stream by `timeoutSeconds` plus WATCH_GRACE_SECONDS).
   * @throws (and `onDone` is never called) when the kind is not served (discovery) or the watch
   *   request fails: network errors as is, an HTTP error with its `statusCode` (403 when the
   *   identity may list but not watch).
   */
  async watch<T extends KubernetesObject = KubernetesObject>(
    kind: KindRef,
    namespace: string | undefined,
    options: WatchOptions,
    onEvent: (type: WatchEventType, object: T) => void,
    onDone: (err?: unknown) => void,
  ): Promise<WatchHandle> {
    const path = await this.objectApi.collectionPath(kind, namespace);
    const timeoutSeconds = options.timeoutSeconds ?? 300;
    let finished = false;
    let started = false;
    let failure: unknown;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      onDone(err ?? undefined);
    };
    let controller: AbortController | undefined;
    const stop = () => {
      finish();
      controller?.abort();
    };
    controller = await new k8s.Watch(this.kubeConfig).watch(
      path,
      {
        timeoutSeconds,
        ...(options.labelSelector ? { labelSelector: options.labelSelector } : {}),
        ...(options.fieldSelector ? { fieldSelector: options.fieldSelector } : {}),
        ...(options.resourceVersion ? { resourceVersion: options.resourceVersion } : {}),
      },
      (type: string, object: T) => {
        if (finished) return;
        if (type === 'ERROR') {
          const status = object as unknown as Partial<V1Status>;
          finish(Object.assign(new Error(`watch of ${kind.kind} in ${namespace ?? 'all namespaces'} (context ${this.contextName}) failed: ${status.message ?? 'ERROR event'}`), { code: status.code }));
          controller?.abort();
          return;
        }
        object.apiVersion ??= kind.apiVersion;
        object.kind ??= kind.kind;
        onEvent(type as WatchEventType, object);
      },
      (err: unknown) => {
        if (started) finish(err);
        else {
          failure = err ?? new Error(`watch of ${kind.kind} in ${namespace ?? 'all namespaces'} (context ${this.contextName}) closed at once`);
          finished = true;
        }
      },
    );
    started = true;
    if (failure !== undefined) throw failure;
    if (!finished) timer = setTimeout(stop, (timeoutSeconds + WATCH_GRACE_SECONDS) * 1000);
    return { stop };
  }

  /**
   * Creates `obj`; when it already exists (409), reads it and adopts it if it carries the same
   * `ferry.dev/migration` label value as `obj` (a retry of the same migration), else refuses.
   * Never modifies an existing object.
   *
   * @throws ConflictError when the existing object is not this migration's (the message names its
   *   owner label, or says it has none); API errors otherwise.
   */
  async createOrAdopt<T extends KubernetesObject>(obj: T): Promise<CreateOrAdoptResult<T>> {
    const wanted = migrationLabel(obj);
    try {
      return { object: (await this.objects.create(obj)) as T, created: true };
    } catch (err) {
      if (statusCode(err) !== 409) throw err;
    }
    const ref = refOf(obj);
    const existing = await this.get<T>(ref);
    if (!existing) {
      // Deleted between the 409 and the read (e.g. a terminating object): try once more.
      return { object: (await this.objects.create(obj)) as T, created: true };
    }
    const have = migrationLabel(existing);
    if (wanted !== undefined && have === wanted) {
      if (existing.metadata?.deletionTimestamp) {
        throw new FerryError('transient', `${describeRef(ref)} of this migration is being deleted; retry once it is gone`);
      }
      return { object: existing, created: false };
    }
    const owner = have !== undefined
      ? `it belongs to another Ferry migration (${LABELS.migration}=${have}${existing.metadata?.annotations?.[ANNOTATIONS.migrationId] ? `, id ${existing.metadata.annotations[ANNOTATIONS.migrationId]}` : ''})`
      : 'it was not created by Ferry';
    throw new ConflictError(`${describeRef(ref)} already exists in context ${this.contextName} and ${owner}; Ferry never overwrites it: delete or rename it, or choose another destination`);
  }

  /** Applies a JSON merge patch (RFC 7386) to an object and returns the result. */
  async patch<T extends KubernetesObject = KubernetesObject>(ref: ObjectRef, patch: Record<string, unknown>): Promise<T> {
    const body = { ...patch, ...header(ref) } as KubernetesObject;
    const meta = (patch.metadata ?? {}) as Record<string, unknown>;
    body.metadata = { ...meta, ...header(ref).metadata };
    return (await this.objects.patch(body, undefined, undefined, 'ferry', undefined, k8s.PatchStrategy.MergePatch)) as T;
  }

  /**
   * Deletes an object (propagationPolicy Background, so dependents go too). Returns false when it did
   * not exist (404 is not an error) or, with `uid`, when the object of that name is another one (the
   * uid precondition failed with 409: a replacement is never deleted by mistake).
   */
  async delete(ref: ObjectRef | KubernetesObject, gracePeriodSeconds?: number, uid?: string): Promise<boolean> {
    const r = 'metadata' in ref ? refOf(ref) : (ref as ObjectRef);
    const body = uid ? { preconditions: { uid } } : undefined;
    try {
      await this.objects.delete(header(r) as KubernetesObject, undefined, undefined, gracePeriodSeconds, undefined, 'Background', body);
      return true;
    } catch (err) {
      if (statusCode(err) === 404 || (uid && statusCode(err) === 409)) return false;
      throw err;
    }
  }

  /**
   * Deletes every object of each of `kinds` in `namespace` matching `selector`; kinds whose API the
   * cluster does not serve are skipped. Returns how many objects were deleted.
   */
  async deleteBySelector(kinds: KindRef[], namespace: string, selector: string): Promise<number> {
    let n = 0;
    for (const kind of kinds) {
      if (!(await this.hasApi(kind.apiVersion, kind.kind))) continue;
      for (const o of await this.list(kind, namespace, { labelSelector: selector })) {
        if (await this.delete(o)) n++;
      }
    }
    return n;
  }

  /**
   * Runs `command` in a container of a running pod (the pods/exec subresource, over a WebSocket) and
   * returns its exit code and output (each stream capped at `maxOutputBytes`, default 1 MiB; the rest
   * is dropped). No stdin, no TTY. The exit code comes from the Status the API server sends at the
   * end (`Success` → 0; `Failure` with reason `NonZeroExitCode` carries it in details.causes, as
   * kubectl reads it).
   * @throws FerryError (transient) when the call exceeds `timeoutSeconds` (default 60 s) or the
   *   connection ends without a Status; AbortedError when `signal` aborts; the API's error (e.g. 403
   *   without the pods/exec permission, 404 for a missing pod or container) otherwise.
   */
  async exec(
    namespace: string,
    pod: string,
    container: string,
    command: string[],
    options: { timeoutSeconds?: number; signal?: AbortSignal; maxOutputBytes?: number } = {},
  ): Promise<ExecResult> {
    const max = options.maxOutputBytes ?? 1024 * 1024;
    const collect = () => {
      const chunks: Buffer[] = [];
      let size = 0;
      const stream = new Writable({
        write(chunk: Buffer, _enc, done) {
          if (size < max) {
            const part = chunk.subarray(0, max - size);
            chunks.push(part);
            size += part.length;
          }
          done();
        },
      });
      return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
    };
    const out = collect();
    const err = collect();
    if (options.signal?.aborted) throw new AbortedError();
    const timeoutMs = (options.timeoutSeconds ?? 60) * 1000;
    return new Promise<ExecResult>((resolve, reject) => {
      let status: V1Status | undefined;
      let socket: { close(): void; terminate?(): void } | undefined;
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const stop = () => {
        try {
          socket?.close();
        } catch {
          /* already closed */
        }
      };
      const onAbort = () => {
        stop();
        finish(() => reject(new AbortedError()));
      };
      const timer = setTimeout(() => {
        stop();
        finish(() => reject(new FerryError('transient', `exec in pod ${namespace}/${pod} (container ${container}) did not end within ${timeoutMs / 1000} s (context ${this.contextName})`)));
      }, timeoutMs);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      new k8s.Exec(this.kubeConfig)
        .exec(namespace, pod, container, command, out.stream, err.stream, null, false, (s) => {
          status = s;
        })
        .then((ws) => {
          socket = ws;
          if (settled) stop();
          ws.on('close', () => {
            finish(() => {
              if (!status) {
                reject(new FerryError('transient', `exec in pod ${namespace}/${pod} (container ${container}) ended without an exit status: the connection to the API server or the kubelet broke (context ${this.contextName})`));
                return;
              }
              resolve({ exitCode: execExitCode(status), stdout: out.text(), stderr: err.text() });
            });
          });
        })
        .catch((e: unknown) => finish(() => reject(e)));
    });
  }

  /**
   * Asks the API server whether the current identity may do `check` (SelfSubjectAccessReview).
   * Returns `allowed` and the authorizer's reason when denied.
   */
  async canI(check: AccessCheck): Promise<{ allowed: boolean; reason?: string }> {
    const review = await this.authorization.createSelfSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: {
          resourceAttributes: {
            verb: check.verb,
            group: check.group,
            resource: check.resource,
            ...(check.subresource ? { subresource: check.subresource } : {}),
            ...(check.namespace ? { namespace: check.namespace } : {}),
          },
        },
      },
    });
    return { allowed: review.status?.allowed === true, reason: review.status?.reason || review.status?.evaluationError || undefined };
  }
}

/** What `KubeClient.exec` returns. */
export interface ExecResult {
  /** The command's exit code (0 on success). */
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * The exit code in the Status an exec ends with: 0 for `Success`; for `Failure` with reason
 * `NonZeroExitCode`, the cause of reason `ExitCode` (k8s.io/apimachinery remotecommand
 * errorDecoderV4); any other failure (e.g. the container is not running) → -1 with the message.
 */
export function execExitCode(status: V1Status): number {
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  const code = cause?.message !== undefined ? Number.parseInt(cause.message, 10) : Number.NaN;
  return Number.isNaN(code) ? -1 : code;
}

/** The ObjectRef of a full object. @throws Error when it has no kind, apiVersion or name. */
export function refOf(o: KubernetesObject): ObjectRef {
  if (!o.kind || !o.apiVersion || !o.metadata?.name) throw new Error(`object without apiVersion/kind/name: ${JSON.stringify(o).slice(0, 200)}`);
  return { apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) };
}

/** A label-selector string from a `key: value` map (`k=v,k2=v2`). */
export function selectorString(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
