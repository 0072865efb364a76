/**
 * An in-memory stand-in for KubeClient (src/k8s/client.ts) for unit tests of the kube library's I/O
 * functions: objects by kind/namespace/name, JSON merge patches (RFC 7386) with resourceVersion
 * bumps, deletes, every API served, every permission granted. It records every call in `calls`, and
 * `onPatch` may veto or rewrite a patch (to play an admission webhook or an API refusal). Watches
 * (`watch`) get ADDED/MODIFIED/DELETED events of `put`, `patch` and `delete` (asynchronously, as
 * from a real API server; selectors are ignored); `watchRefusal` makes new watches fail and
 * `breakWatches` ends the running ones. It does not run controllers: what a controller would do, a
 * test does by hand.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeClient, KindRef, ListOptions, ObjectRef, WatchEventType, WatchHandle, WatchOptions } from '../../src/k8s/client';

interface FakeWatch {
  kind: string;
  namespace: string | undefined;
  /** The name of `fieldSelector: metadata.name=<name>`, as the API server selects by it. */
  name?: string;
  onEvent: (type: WatchEventType, o: KubernetesObject) => void;
  onDone: (err?: unknown) => void;
}

/** RFC 7386 JSON merge patch. */
export function mergePatch<T>(target: T, patch: unknown): T {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch as T;
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out as T;
}

const key = (kind: string | undefined, namespace: string | undefined, name: string | undefined) => `${kind}/${namespace ?? ''}/${name}`;

export class FakeKube {
  readonly contextName = 'fake';
  readonly objects = new Map<string, KubernetesObject>();
  readonly calls: string[] = [];
  /** Called before a patch is applied: throw to refuse it, or return the object to store instead. */
  onPatch?: (current: KubernetesObject, patch: Record<string, unknown>, patched: KubernetesObject) => KubernetesObject | void;
  private rv = 100;
  /** The watches in progress. */
  readonly watches = new Set<FakeWatch>();
  /** When set, `watch` rejects with it (a 403, a network error) instead of starting. */
  watchRefusal?: unknown;

  constructor(objects: KubernetesObject[] = []) {
    for (const o of objects) this.put(o);
  }

  put(o: KubernetesObject): void {
    const copy = JSON.parse(JSON.stringify(o)) as KubernetesObject;
    copy.metadata = { ...copy.metadata, resourceVersion: String(++this.rv) };
    const k = key(o.kind, o.metadata?.namespace, o.metadata?.name);
    const existed = this.objects.has(k);
    this.objects.set(k, copy);
    this.emit(existed ? 'MODIFIED' : 'ADDED', copy);
  }

  /** Delivers an event to the matching watches, on a later tick. */
  private emit(type: WatchEventType, o: KubernetesObject): void {
    const copy = JSON.parse(JSON.stringify(o)) as KubernetesObject;
    for (const w of this.watches) {
      if (w.kind === o.kind && (w.namespace === undefined || w.namespace === o.metadata?.namespace) && (w.name === undefined || w.name === o.metadata?.name)) setImmediate(() => this.watches.has(w) && w.onEvent(type, copy));
    }
  }

  /** KubeClient.watch: starts at once (no initial ADDED events) unless `watchRefusal` is set. Selects
   * by `fieldSelector: metadata.name=<name>` as the API server does (other selectors: not at all). */
  async watch(kind: KindRef, namespace: string | undefined, options: WatchOptions, onEvent: FakeWatch['onEvent'], onDone: FakeWatch['onDone']): Promise<WatchHandle> {
    this.calls.push(`watch ${kind.kind} ${namespace ?? ''}`);
    if (this.watchRefusal !== undefined) throw this.watchRefusal;
    const name = /^metadata\.name=(.*)$/.exec(options.fieldSelector ?? '')?.[1];
    const w: FakeWatch = { kind: kind.kind, namespace, ...(name !== undefined ? { name } : {}), onEvent, onDone };
    this.watches.add(w);
    return {
      stop: () => {
        if (this.watches.delete(w)) onDone();
      },
    };
  }

  /** Ends every watch in progress, with `err` (a failure) or without (a close by the server). */
  breakWatches(err?: unknown): void {
    for (const w of [...this.watches]) {
      this.watches.delete(w);
      w.onDone(err);
    }
  }

  find(kind: string, namespace: string | undefined, name: string): KubernetesObject | undefined {
    return this.objects.get(key(kind, namespace, name));
  }

  /** This object as the KubeClient type the library takes. */
  client(): KubeClient {
    return this as unknown as KubeClient;
  }

  async version(): Promise<{ major: string; minor: string; gitVersion: string }> {
    return { major: '1', minor: '32', gitVersion: 'v1.32.0' };
  }

  async hasApi(): Promise<boolean> {
    return true;
  }

  async canI(): Promise<{ allowed: boolean }> {
    return { allowed: true };
  }

  async get<T extends KubernetesObject = KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    this.calls.push(`get ${ref.kind} ${ref.name}`);
    const o = this.find(ref.kind, ref.namespace, ref.name);
    return o ? (JSON.parse(JSON.stringify(o)) as T) : undefined;
  }

  async list<T extends KubernetesObject = KubernetesObject>(kind: KindRef, namespace?: string, _options: ListOptions = {}): Promise<T[]> {
    return [...this.objects.values()].filter((o) => o.kind === kind.kind && (namespace === undefined || o.metadata?.namespace === namespace)).map((o) => JSON.parse(JSON.stringify(o)) as T);
  }

  /** KubeClient.createOrAdopt, simplified: an existing object of that name is adopted whoever owns it. */
  async createOrAdopt<T extends KubernetesObject>(obj: T): Promise<{ object: T; created: boolean }> {
    this.calls.push(`createOrAdopt ${obj.kind} ${obj.metadata?.name}`);
    const existing = this.find(obj.kind!, obj.metadata?.namespace, obj.metadata!.name!);
    if (existing) return { object: JSON.parse(JSON.stringify(existing)) as T, created: false };
    this.put(obj);
    return { object: this.find(obj.kind!, obj.metadata?.namespace, obj.metadata!.name!) as T, created: true };
  }

  async patch<T extends KubernetesObject = KubernetesObject>(ref: ObjectRef, patch: Record<string, unknown>): Promise<T> {
    this.calls.push(`patch ${ref.kind} ${ref.name} ${JSON.stringify({ ...patch, metadata: { ...(patch.metadata as object), resourceVersion: undefined } })}`);
    const cur = this.find(ref.kind, ref.namespace, ref.name);
    if (!cur) throw Object.assign(new Error('not found'), { code: 404 });
    const wanted = (patch.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
    if (wanted !== undefined && wanted !== cur.metadata?.resourceVersion) throw Object.assign(new Error('conflict'), { code: 409 });
    const { resourceVersion: _rv, ...meta } = (patch.metadata ?? {}) as Record<string, unknown>;
    let next = mergePatch(cur, { ...patch, metadata: meta }) as KubernetesObject;
    next = this.onPatch?.(cur, patch, next) ?? next;
    this.put(next);
    return this.find(ref.kind, ref.namespace, ref.name) as T;
  }

  async delete(ref: ObjectRef | KubernetesObject, _grace?: number, uid?: string): Promise<boolean> {
    const r = 'metadata' in ref ? { kind: ref.kind!, namespace: ref.metadata?.namespace, name: ref.metadata?.name! } : (ref as ObjectRef);
    this.calls.push(`delete ${r.kind} ${r.name}`);
    const cur = this.find(r.kind, r.namespace, r.name);
    if (!cur || (uid && cur.metadata?.uid !== uid)) return false;
    this.objects.delete(key(r.kind, r.namespace, r.name));
    this.emit('DELETED', cur);
    return true;
  }
}
