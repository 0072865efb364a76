/**
 * The migration plan: what to move (namespaces, their PVCs, internal images), from where to where, and
 * how (endpoint, transport, transfer engine, security mode, stage/cutover policy).
 *
 * One zod 4 schema is the single source of truth: `MigrationPlanInput` is what a user writes (YAML,
 * JSON, flags; most fields optional), `MigrationPlan` is what the rest of Ferry consumes (every default
 * filled in, every namespace with its destination name and PVC selection resolved).
 *
 * The schema is pure (no environment, no file system): the parsed plan is workflow input and must be
 * deterministic. Reading files, resolving relative paths and friendly error messages live in ./load.ts.
 */
import { stageScheduleProblem } from './schedule';
import { z } from 'zod';
import { extraArgProblem } from '../statetransfer/transfer/rsync/options';
import { describeEndpointTypes, ENDPOINT_TYPE_TRAITS, ENDPOINT_TYPES, endpointTypesAccepting, TRANSFER_TYPES, TRANSPORT_TYPES, type EndpointType } from '../statetransfer/types';

/** The transfer image used when the plan names none. */
export const DEFAULT_TRANSFER_IMAGE = 'ferry/transfer:latest';

/** Kubernetes PVC access modes. */
export const ACCESS_MODES = ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'] as const;
/** Ways to expose the destination's transfer server to the source cluster; 'auto' lets Ferry choose. */
export const PLAN_ENDPOINT_TYPES = ['auto', ...ENDPOINT_TYPES] as readonly ['auto', ...EndpointType[]];
/** Security modes of the transfer pods. */
export const SECURITY_MODES = ['restricted', 'preserve-ownership'] as const;
/** Cutover policies. */
export const CUTOVER_MODES = ['auto', 'manual'] as const;
/** What to do with pods that mount a source PVC and that Ferry cannot quiesce. */
export const UNMANAGED_POD_POLICIES = ['fail', 'delete'] as const;
/** How the source side runs its syncs (migration/agent.ts): warm agents, or a client pod per sync. */
export const SOURCE_AGENT_MODES = ['warm', 'per-sync'] as const;
/** How stage syncs read the source (statetransfer/snapshot.ts): the live PVC, or a point-in-time copy. */
export const SOURCE_COPY_METHODS = ['direct', 'snapshot', 'clone'] as const;
/** Where the internal images to migrate are listed. */
export const IMAGE_MODES = ['imagestreams', 'registry'] as const;

/** Namespaces Ferry refuses to migrate from or into (cluster infrastructure). */
export const SYSTEM_NAMESPACE_PATTERN = /^(kube-.*|openshift|openshift-.*)$/;

/** Largest PVC-concurrency value accepted; MTC's default of 5 is Ferry's default. */
export const MAX_CONCURRENCY = 20;
/** Largest number of stage passes accepted in 'auto' cutover mode. */
export const MAX_STAGE_PASSES = 100;
/** Most namespaces one plan may migrate (bounds the migration workflow's state and history). */
export const MAX_NAMESPACES = 100;
/** Most PVC names one selection may list. */
export const MAX_PVC_NAMES = 1000;

// ---------------------------------------------------------------------------------------------
// Name validators. Each returns a problem description (without the "got …" part) or undefined.

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** Renders a user value for an error message: strings quoted, long strings shortened. */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** Why `s` is not a DNS label (RFC 1123: ≤ 63 lowercase letters, digits, '-', alphanumeric ends). */
export function dnsLabelProblem(s: string): string | undefined {
  if (!DNS_LABEL.test(s)) return "must be a DNS label (lowercase letters, digits, '-')";
  if (s.length > 63) return `must be a DNS label of at most 63 characters (has ${s.length})`;
  return undefined;
}

/** Why `s` is not a DNS subdomain (RFC 1123: ≤ 253 characters, dot-separated DNS labels). */
export function dnsSubdomainProblem(s: string): string | undefined {
  if (!DNS_SUBDOMAIN.test(s)) return "must be a DNS subdomain (lowercase letters, digits, '-', '.')";
  if (s.length > 253) return `must be a DNS subdomain of at most 253 characters (has ${s.length})`;
  if (s.split('.').some((l) => l.length > 63)) return 'must be a DNS subdomain whose parts have at most 63 characters';
  return undefined;
}

/** Why `key` is not a Kubernetes label key (`[prefix/]name`, prefix a DNS subdomain, name ≤ 63). */
function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && dnsSubdomainProblem(prefix)) return `label key prefix ${showValue(prefix)} is not a DNS subdomain`;
  if (!LABEL_NAME.test(name) || name.length > 63) return `${showValue(key)} is not a valid label key`;
  return undefined;
}

function labelValueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (!LABEL_NAME.test(value) || value.length > 63) return `${showValue(value)} is not a valid label value`;
  return undefined;
}

/**
 * Why `selector` is not a Kubernetes label selector in the string form accepted by `kubectl -l` and the
 * API's `labelSelector` parameter: comma-separated requirements `key`, `!key`, `key=value`,
 * `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key>N`, `key<N`.
 * Returns undefined when valid.
 */
export function labelSelectorProblem(selector: string): string | undefined {
  if (selector.trim() === '') return 'must not be empty (use pvcs: { all: true } to select every PVC)';
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0) return 'has an unbalanced ")"';
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0) return 'has an unbalanced "("';
  parts.push(cur);
  for (const raw of parts) {
    const req = raw.trim();
    if (req === '') return 'has an empty requirement (stray ",")';
    let m: RegExpMatchArray | null;
    if ((m = req.match(/^!\s*(\S+)$/)) || (m = req.match(/^([^\s=!<>(),]+)$/))) {
      const p = labelKeyProblem(m[1]!);
      if (p) return p;
    } else if ((m = req.match(/^([^\s=!<>(),]+)\s*(==|=|!=)\s*([^\s=!<>(),]*)$/))) {
      const p = labelKeyProblem(m[1]!) ?? labelValueProblem(m[3]!);
      if (p) return p;
    } else if ((m = req.match(/^([^\s=!<>(),]+)\s*(<|>)\s*(\S+)$/))) {
      const p = labelKeyProblem(m[1]!);
      if (p) return p;
      if (!/^-?\d+$/.test(m[3]!)) return `${showValue(req)}: "<" and ">" need an integer value`;
    } else if ((m = req.match(/^([^\s=!<>(),]+)\s+(in|notin)\s*\(([^()]*)\)$/))) {
      const p = labelKeyProblem(m[1]!);
      if (p) return p;
      const values = m[3]!.split(',').map((v) => v.trim());
      for (const v of values) {
        const vp = labelValueProblem(v);
        if (vp) return vp;
      }
    } else {
      return `${showValue(req)} is not a label selector requirement (key, !key, key=value, key!=value, key in (a,b), key notin (a,b))`;
    }
  }
  return undefined;
}

// Registry URL: [http(s)://]host[:port][/path]
const REGISTRY_URL = /^(?:(https?):\/\/)?([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?(\/[a-z0-9._\-/]*)?$/;

// Image reference after the distribution/reference grammar: [domain[:port]/]path[:tag][@digest].
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9A-Fa-f:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const IMAGE_REFERENCE = new RegExp(
  `^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::[\\w][\\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`,
);


// ---------------------------------------------------------------------------------------------
// Schema building blocks.

/** A string that must be a DNS label; the message quotes the offending value. */
const dnsLabel = () =>
  z.string().superRefine((s, ctx) => {
    const p = dnsLabelProblem(s);
    if (p) ctx.addIssue({ code: 'custom', message: `${p}, got ${showValue(s)}`, input: s });
  });

/** A string that must be a DNS subdomain (object names such as PVCs and StorageClasses, host names). */
const dnsSubdomain = () =>
  z.string().superRefine((s, ctx) => {
    const p = dnsSubdomainProblem(s);
    if (p) ctx.addIssue({ code: 'custom', message: `${p}, got ${showValue(s)}`, input: s });
  });

const nonEmpty = () => z.string().min(1);
/** An integer. Not `.int()`: zod's int check aborts the parse, which would hide cross-field errors. */
const integer = () =>
  z.number().superRefine((n, ctx) => {
    if (!Number.isInteger(n)) ctx.addIssue({ code: 'custom', message: `expected an integer, got ${n}`, input: n });
  });
const seconds = (max: number) => integer().min(1).max(max);
const posixId = () => integer().min(0).max(2147483647);

/** When a hook runs (MTC's and Stork's hook points; migration/hooks.ts). */
export const HOOK_PHASES = ['preStage', 'postStage', 'preQuiesce', 'postQuiesce', 'postCutover'] as const;
export type HookPhase = (typeof HOOK_PHASES)[number];
/** Most hooks a plan may have. */
export const MAX_HOOKS = 20;

/** The word of a background hook's command where it holds until the group snapshot is cut (plan hooks[].background). */
export const FERRY_WAIT = '${FERRY_WAIT}';

/** Most retries of a job hook's pod (Job spec.backoffLimit). */
export const MAX_HOOK_JOB_BACKOFF = 10;

/**
 * A job hook's pod template: a Kubernetes PodTemplateSpec (metadata and spec), checked here only for
 * what Ferry relies on (at least one container with a name and an image); the API server validates the
 * rest when the Job is created, and Pod Security admission judges its pod.
 */
export const hookJobTemplateSchema = z.looseObject({
  metadata: z
    .looseObject({
      labels: z.record(z.string(), z.string()).optional(),
      annotations: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
  spec: z.looseObject({
    containers: z.array(z.looseObject({ name: dnsLabel(), image: z.string().min(1) })).min(1),
    restartPolicy: z.enum(['Never', 'OnFailure']).optional(),
  }),
});

/**
 * An application hook at one phase of each namespace's migration, in the source or destination
 * namespace: either `exec`, a command run in the pods a label selector picks (its exit code decides:
 * non-zero, no matching running pod or the timeout fail it), or `job`, a pod template run to
 * completion by a Kubernetes Job within the timeout (MTC's hook model). `onError` says what a failure
 * does.
 */
export const hookSchema = z
  .strictObject({
    name: dnsLabel().describe('Names the hook in the status and logs.'),
    phase: z
      .enum(HOOK_PHASES)
      .describe(
        'preStage / postStage: around each stage pass. preQuiesce: before the applications are scaled down (e.g. a checkpoint). ' +
          'postQuiesce: after they stopped, before the final sync. postCutover: after the final sync (failures are warnings: the copy is committed).',
      ),
    cluster: z.enum(['source', 'destination']).optional().describe('Where the pods are (default: destination for postCutover, else source).'),
    exec: z
      .strictObject({
        selector: z.string().describe('Label selector of the pods to run the command in (each running pod that matches), e.g. "app=db".'),
        container: dnsLabel().optional().describe("The container (default: the pod's first)."),
        command: z.array(z.string().min(1)).min(1).max(64).describe('The command and its arguments (no shell unless you call one, e.g. ["sh", "-c", "..."]).'),
      })
      .superRefine((e, ctx) => {
        const p = labelSelectorProblem(e.selector);
        if (p) ctx.addIssue({ code: 'custom', path: ['selector'], message: p });
      })
      .optional()
      .describe('Run a command in the running pods a selector picks (one of exec and job).'),
    job: z
      .strictObject({
        template: hookJobTemplateSchema.describe('The pod template (PodTemplateSpec: metadata, spec) the Job runs; restartPolicy Never unless it says OnFailure.'),
        backoffLimit: integer().min(0).max(MAX_HOOK_JOB_BACKOFF).default(0).describe('Retries of a failed pod (Job spec.backoffLimit; default 0: Ferry cannot know whether the command may run twice).'),
      })
      .optional()
      .describe('Run a pod template to completion as a Kubernetes Job in the namespace (one of exec and job); its deadline is timeoutSeconds.'),
    background: z
      .boolean()
      .optional()
      .describe(
        'exec at preStage with groupSnapshot: run the command in the background and hold it at ${FERRY_WAIT} (a word of the command that Ferry replaces ' +
          'with a wait) until the pass\'s VolumeGroupSnapshot is cut, then let it go on (Stork\'s background rules), e.g. a database session that holds ' +
          '"FLUSH TABLES WITH READ LOCK" over the snapshot. The pods need sh, sleep and a writable /dev/shm.',
      ),
    timeoutSeconds: integer().min(1).max(3600).default(300).describe('Limit for the command in each pod (exec), or for the whole Job (job: its activeDeadlineSeconds), seconds.'),
    onError: z
      .enum(['fail', 'continue'])
      .default('fail')
      .describe('fail (default): a failed hook rolls the namespace back (before the final sync; the source applications are restored). continue: recorded as a warning.'),
  })
  .superRefine((h, ctx) => {
    if ((h.exec === undefined) === (h.job === undefined)) ctx.addIssue({ code: 'custom', path: [], message: 'needs exactly one of exec (a command in running pods) and job (a pod template run to completion)' });
    if (h.background) {
      if (!h.exec) ctx.addIssue({ code: 'custom', path: ['background'], message: 'is for exec hooks' });
      else if (!h.exec.command.some((a) => a.includes(FERRY_WAIT))) ctx.addIssue({ code: 'custom', path: ['exec', 'command'], message: `a background hook's command must contain ${FERRY_WAIT}, where it holds until the snapshot is cut` });
      if (h.phase !== 'preStage') ctx.addIssue({ code: 'custom', path: ['phase'], message: 'a background hook holds over the stage pass\'s group snapshot: it must be preStage' });
    }
  });
export type HookSpec = z.infer<typeof hookSchema>;

/** Which PVCs of a namespace to migrate: exactly one of `all`, `names`, `labelSelector`. */
export const pvcSelectionSchema = z
  .strictObject({
    all: z.literal(true).optional().describe('Every PVC of the namespace.'),
    names: z
      .array(dnsSubdomain())
      .min(1)
      .max(MAX_PVC_NAMES, { error: `lists more than ${MAX_PVC_NAMES} PVCs: select them with labelSelector or all: true instead` })
      .optional()
      .describe('These PVCs, by name.'),
    labelSelector: z.string().optional().describe('PVCs matching this label selector, e.g. "app=db,tier!=cache".'),
  })
  .superRefine((sel, ctx) => {
    const set = (['all', 'names', 'labelSelector'] as const).filter((k) => sel[k] !== undefined);
    if (set.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          set.length === 0
            ? 'must set exactly one of all: true, names: [...], labelSelector: "..."'
            : `must set exactly one of all, names, labelSelector (got ${set.join(' and ')})`,
      });
    }
    if (sel.names) {
      const seen = new Set<string>();
      sel.names.forEach((n, i) => {
        if (seen.has(n)) ctx.addIssue({ code: 'custom', path: ['names', i], message: `PVC ${showValue(n)} is listed twice` });
        seen.add(n);
      });
    }
    if (sel.labelSelector !== undefined) {
      const p = labelSelectorProblem(sel.labelSelector);
      if (p) ctx.addIssue({ code: 'custom', path: ['labelSelector'], message: p });
    }
  })
  .transform((sel): PVCSelection => {
    if (sel.names) return { names: sel.names };
    if (sel.labelSelector !== undefined) return { labelSelector: sel.labelSelector };
    return { all: true };
  })
  .describe('Which PVCs to migrate: { all: true } | { names: [...] } | { labelSelector: "..." }.');

/** Which PVCs of a namespace to migrate (parsed form). */
export type PVCSelection = { all: true } | { names: string[] } | { labelSelector: string };

/** A cluster as seen through a kubeconfig. */
export const clusterRefSchema = z
  .strictObject({
    kubeconfig: nonEmpty()
      .optional()
      .describe('Path of the kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config (resolved by the worker).'),
    context: nonEmpty().optional().describe("Context in the kubeconfig. Default: the kubeconfig's current-context."),
  })
  .describe('A cluster: kubeconfig file and context.');

/** One namespace to migrate, optionally renamed. Accepts "name" or "source:destination" as shorthand. */
export const namespaceMappingSchema = z
  .union([
    z.string().describe('"name" or "source:destination".'),
    z.strictObject({
      source: dnsLabel().describe('Namespace in the source cluster.'),
      destination: dnsLabel().optional().describe('Namespace in the destination cluster. Default: same as source.'),
      pvcs: pvcSelectionSchema.optional().describe('PVC selection for this namespace. Default: the plan-wide pvcs.'),
      sourceCopyMethod: z.enum(SOURCE_COPY_METHODS).optional().describe("What this namespace's stage syncs read (direct, snapshot, clone). Default: the plan-wide sourceCopyMethod."),
    }),
  ])
  .transform((v, ctx) => {
    if (typeof v !== 'string') return { source: v.source, destination: v.destination ?? v.source, pvcs: v.pvcs, ...(v.sourceCopyMethod !== undefined ? { sourceCopyMethod: v.sourceCopyMethod } : {}) };
    const parts = v.split(':');
    if (parts.length > 2) {
      ctx.addIssue({ code: 'custom', message: `must be "name" or "source:destination", got ${showValue(v)}` });
      return z.NEVER;
    }
    const [source, destination = source] = parts as [string, string?];
    let ok = true;
    const names = parts.length === 2 ? ([['source', source], ['destination', destination]] as const) : ([['source', source]] as const);
    for (const [what, name] of names) {
      const p = dnsLabelProblem(name);
      if (p) {
        ok = false;
        ctx.addIssue({ code: 'custom', message: `${what} namespace ${p}, got ${showValue(name)}` });
      }
    }
    return ok ? { source, destination, pvcs: undefined as PVCSelection | undefined } : z.NEVER;
  });

const accessMode = z.enum(ACCESS_MODES);

/** How the destination's transfer server is exposed to the source cluster. */
export const endpointSchema = z
  .strictObject({
    type: z
      .enum(PLAN_ENDPOINT_TYPES)
      .default('auto')
      .describe('auto: Route on OpenShift, else LoadBalancer when the cluster provisions one, else NodePort.'),
    hostname: dnsSubdomain()
      .optional()
      .describe('Host name of the Route, Ingress or TLSRoute (required for Ingress and TLSRoute; OpenShift generates one for Route).'),
    ingressClassName: dnsSubdomain().optional().describe('IngressClass of the Ingress (needs TLS passthrough).'),
    nodePort: integer()
      .min(1)
      .max(65535)
      .optional()
      .describe("Fixed NodePort; must lie in the cluster's service-node-port-range (default 30000-32767)."),
    gateway: z
      .strictObject({
        name: dnsSubdomain().describe('Name of the Gateway (gateway.networking.k8s.io/v1).'),
        namespace: dnsLabel().optional().describe('Its namespace; default: the destination namespace.'),
        sectionName: dnsSubdomain().optional().describe('The listener (protocol TLS, tls.mode Passthrough); default: the first such listener.'),
      })
      .optional()
      .describe('TLSRoute: the existing Gateway the route attaches to; it must allow routes from the destination namespace.'),
  })
  .superRefine((e, ctx) => {
    // What each type requires and accepts: ENDPOINT_TYPE_TRAITS (statetransfer/types.ts).
    const traits = e.type === 'auto' ? undefined : ENDPOINT_TYPE_TRAITS[e.type];
    for (const field of Object.keys(traits?.required ?? {}) as (keyof typeof e)[]) {
      if (e[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: `is required when type is ${e.type}` });
    }
    for (const field of ['hostname', 'ingressClassName', 'nodePort', 'gateway'] as const) {
      const types = endpointTypesAccepting(field);
      if (e[field] !== undefined && e.type !== 'auto' && !(types as string[]).includes(e.type)) {
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: `is only used with endpoint ${describeEndpointTypes(types)}, not ${e.type}`,
        });
      }
    }
  })
  .describe('How the destination transfer server is exposed to the source cluster.');

/** Security settings of the transfer pods. */
export const securitySchema = z
  .strictObject({
    mode: z
      .enum(SECURITY_MODES)
      .default('restricted')
      .describe(
        'restricted: non-root pods that pass the "restricted" Pod Security Standard; file ownership is not kept. ' +
          'preserve-ownership: root pods that keep owner, group and permissions of every file.',
      ),
    runAsUser: posixId().optional().describe('UID of the transfer processes (restricted mode; not 0).'),
    runAsGroup: posixId().optional().describe('GID of the transfer processes (restricted mode).'),
    fsGroup: posixId().optional().describe('fsGroup of the transfer pods (restricted mode).'),
    chown: z
      .string()
      .regex(/^\d+:\d+$/, { error: (iss) => `must be "UID:GID" with numeric ids, got ${showValue(iss.input)}` })
      .optional()
      .describe('After the final sync, set the owner of every destination file to UID:GID (preserve-ownership mode).'),
  })
  .superRefine((s, ctx) => {
    if (s.mode === 'restricted') {
      if (s.runAsUser === 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['runAsUser'],
          message: 'must not be 0 in restricted mode (use mode: preserve-ownership to run as root)',
        });
      }
      if (s.chown !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['chown'],
          message: 'needs mode: preserve-ownership (a non-root transfer cannot change file owners)',
        });
      }
    } else {
      for (const f of ['runAsUser', 'runAsGroup'] as const) {
        if (s[f] !== undefined) {
          ctx.addIssue({ code: 'custom', path: [f], message: 'is only used in restricted mode; preserve-ownership runs as root' });
        }
      }
      if (s.fsGroup !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['fsGroup'],
          message: 'is not allowed in preserve-ownership mode: the kubelet would change the group of every file on mount',
        });
      }
    }
  })
  .describe('Security settings of the transfer pods.');

/** Options of the file copy (named after rsync; verify, bandwidth limit and excludes apply to rclone too). */
export const rsyncOptionsSchema = z
  .strictObject({
    verify: z
      .boolean()
      .default(false)
      .describe('Compare file checksums instead of size and modification time (rsync --checksum; rclone --checksum, which its final sync always uses).'),
    bandwidthLimitKiBps: integer()
      .min(1)
      .optional()
      .describe('Bandwidth limit per PVC transfer in KiB/s (rsync --bwlimit, rclone --bwlimit). Default: none.'),
    excludes: z
      .array(
        z
          .string()
          .min(1)
          .regex(/^[^\n\r]*$/, { error: 'must be a single line' }),
      )
      .default([])
      .describe('Exclude patterns, rsync --exclude syntax; lost+found is always excluded.'),
    acls: z
      .boolean()
      .optional()
      .describe('Keep POSIX ACLs (rsync --acls). Default: true in preserve-ownership mode; restricted mode cannot keep them. rsync only.'),
    xattrs: z
      .boolean()
      .optional()
      .describe(
        'Keep extended attributes (user.*; not system.*, not security.selinux, and not trusted.*, which needs CAP_SYS_ADMIN) (rsync --xattrs). Default: true in preserve-ownership mode; restricted mode cannot keep them. rsync only.',
      ),
    selinuxXattrs: z
      .boolean()
      .optional()
      .describe('With xattrs: copy the security.selinux label too (default: the destination keeps its own labels).'),
    extraArgs: z
      .array(z.string())
      .optional()
      .describe(
        'Extra rsync long options, e.g. ["--max-size=10G", "--numeric-ids"]. rsync only. Options Ferry sets itself or that have a field here (--acls, --checksum, --bwlimit, --exclude, --delete…) are refused with the reason.',
      ),
  })
  .superRefine((o, ctx) => {
    o.extraArgs?.forEach((arg, i) => {
      // The library's list and check (src/statetransfer/transfer/rsync/options.ts): one list.
      const problem = extraArgProblem(arg);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['extraArgs', i], message: problem });
    });
    if (o.selinuxXattrs && o.xattrs === false) {
      ctx.addIssue({ code: 'custom', path: ['selinuxXattrs'], message: 'needs xattrs (the SELinux label is an extended attribute)' });
    }
  })
  .describe('File copy options.');

/** A container image registry. */
export const registrySchema = z
  .strictObject({
    url: z
      .string()
      .regex(REGISTRY_URL, {
        error: (iss) => `must be a registry address like "registry.example.com:5000" or "https://host/path", got ${showValue(iss.input)}`,
      })
      .describe('Registry address: host[:port][/path], optionally with https:// (or http:// with insecureSkipTLSVerify).'),
    authFile: nonEmpty()
      .optional()
      .describe('Credentials file in containers-auth.json / docker config.json format (skopeo --authfile).'),
    caFile: nonEmpty().optional().describe('PEM file of the CA(s) that sign the registry certificate.'),
    aliases: z
      .array(z.string().regex(/^[A-Za-z0-9.-]+(:\d+)?$/, { error: (iss) => `must be a registry host[:port], got ${showValue(iss.input)}` }))
      .optional()
      .describe('Other host[:port] names of this registry in image references (e.g. its in-cluster Service name): registry mode finds the images pods use by them.'),
    insecureSkipTLSVerify: z
      .boolean()
      .default(false)
      .describe('Do not verify the registry TLS certificate (and allow plain http://). Unsafe.'),
  })
  .superRefine((r, ctx) => {
    if (r.url.startsWith('http://') && !r.insecureSkipTLSVerify) {
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        message: 'is plain HTTP, which sends credentials and images unencrypted: use https:// or set insecureSkipTLSVerify: true',
      });
    }
    if (r.insecureSkipTLSVerify && r.caFile !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['caFile'], message: 'is pointless with insecureSkipTLSVerify: true; remove one of them' });
    }
  });

/** Migration of internal images (OpenShift ImageStreams or plain registry repositories). */
export const imagesSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Migrate internal images too.'),
    mode: z
      .enum(IMAGE_MODES)
      .default('imagestreams')
      .describe('imagestreams: every tag of the namespaces\' ImageStreams that points at the internal registry; registry: the listed repositories, else those the pod templates use.'),
    sourceRegistry: registrySchema.optional().describe('Where images are read (the source internal registry, exposed).'),
    destinationRegistry: registrySchema.optional().describe('Where images are written.'),
    repositories: z
      .array(nonEmpty())
      .optional()
      .describe('registry mode: repositories to copy ("namespace/name"), instead of those found in the pod templates; imagestreams mode: only these ImageStreams.'),
  })
  .superRefine((im, ctx) => {
    if (!im.enabled) return;
    for (const f of ['sourceRegistry', 'destinationRegistry'] as const) {
      if (im[f] === undefined) ctx.addIssue({ code: 'custom', path: [f], message: 'is required when images.enabled is true' });
    }
  })
  .describe('Internal image migration.');

/** Time limits, in seconds. */
export const timeoutsSchema = z
  .strictObject({
    endpointReadySeconds: seconds(86400)
      .default(600)
      .describe('How long to wait for the endpoint (load balancer address, Route admission...).'),
    serverReadySeconds: seconds(86400).default(600).describe('How long to wait for the transfer server pod to be ready.'),
    podStartSeconds: seconds(86400)
      .default(600)
      .describe('How long a transfer client or probe pod may stay unstarted (unschedulable, ContainerCreating, waiting for its transport) before the sync fails with the reason (as MTC: 10 minutes).'),
    transferSeconds: seconds(30 * 86400)
      .optional()
      .describe('Limit for one PVC sync. Default: none (liveness is checked through progress heartbeats).'),
    verifyDestinationSeconds: seconds(86400)
      .optional()
      .describe('verifyDestination: how long to wait for the destination pods of the migrated PVCs to be Ready (default 600).'),
  })
  .describe('Time limits, in seconds.');

/** `when` predicate of a plan-level check: run it (even if other fields are invalid, so that every
 * problem is reported at once) unless the plan is not an object or one of `keys` is itself invalid. */
const RELEVANT_TOP_KEYS = (...keys: string[]) => (payload: { value: unknown; issues: readonly { path?: readonly PropertyKey[] }[] }) =>
  payload.value !== null &&
  typeof payload.value === 'object' &&
  !Array.isArray(payload.value) &&
  !payload.issues.some((i) => i.path !== undefined && i.path.length > 0 && keys.includes(String(i.path[0])));

/** The migration plan (input and parsed form). */
export const migrationPlanSchema = z
  .strictObject({
    name: dnsLabel().optional().describe('Name of the migration, used in the workflow id. Default: derived by the client.'),
    source: clusterRefSchema.describe('The cluster the data comes from.'),
    destination: clusterRefSchema.describe('The cluster the data goes to.'),
    namespaces: z
      .array(namespaceMappingSchema)
      .min(1)
      .max(MAX_NAMESPACES, { error: `more than ${MAX_NAMESPACES} namespaces in one plan: split the migration into several plans` })
      .describe('Namespaces to migrate: "name", "source:destination" or { source, destination?, pvcs? }.'),
    pvcs: pvcSelectionSchema.prefault({ all: true }).describe('Default PVC selection of every namespace.'),
    storageClassMapping: z
      .record(dnsSubdomain(), dnsSubdomain())
      .default({})
      .describe('Source StorageClass → destination StorageClass.'),
    accessModeMapping: z
      .partialRecord(accessMode, accessMode)
      .default({})
      .describe('Source access mode → destination access mode, e.g. { ReadWriteOnce: ReadWriteMany }.'),
    defaultStorageClass: dnsSubdomain()
      .optional()
      .describe("StorageClass for PVCs whose class is not mapped. Default: keep the name, else the destination's default class."),
    endpoint: endpointSchema.prefault({}),
    transfer: z
      .enum(TRANSFER_TYPES)
      .default('rsync')
      .describe(
        'Transfer engine. rsync keeps everything (owners and ACLs/xattrs in preserve-ownership mode). rclone (over SFTP) keeps file ' +
          'contents, file modification times (to the second), symlinks and empty directories only; it cannot keep owners, groups, ' +
          'permission bits, hard links, sparseness, ACLs, extended attributes, directory times or special files, so it is refused ' +
          'with security.mode preserve-ownership; its final sync always compares checksums.',
      ),
    transport: z
      .enum(TRANSPORT_TYPES)
      .default('stunnel')
      .describe('stunnel: mutual TLS tunnel. null: no tunnel (rclone encrypts itself with SSH, not through a Route/Ingress; rsync would be plaintext).'),
    allowInsecure: z.boolean().default(false).describe('Accept rsync with the null transport (unencrypted, unauthenticated stream).'),
    security: securitySchema.prefault({}),
    rsync: rsyncOptionsSchema.prefault({}),
    concurrency: integer().min(1).max(MAX_CONCURRENCY).default(5).describe('PVCs transferred at the same time.'),
    finalConcurrency: integer()
      .min(1)
      .max(MAX_CONCURRENCY)
      .optional()
      .describe(
        'PVCs synced at the same time in the final sync, while the applications are down. Default: 20 with warm agents ' +
          '(after the stage passes each final sync is only the delta, and starting one is an exec, so they all run at once), `concurrency` with per-sync pods.',
      ),
    maxConcurrentSyncs: integer()
      .min(1)
      .max(1000)
      .optional()
      .describe(
        'Syncs the whole plan runs at once at most (default 50), shared equally by its namespaces (at least 1 each): each namespace ' +
          'syncs at most min(concurrency, its share) PVCs at once, and as many in the final sync. Bounds the client pods and the load on both clusters.',
      ),
    maxSyncsPerNode: integer()
      .min(1)
      .max(1000)
      .optional()
      .describe(
        'Syncs of PVCs in use on one source node at once at most (stage and final), unset: no per-node limit. A ReadWriteOnce PVC in use ' +
          'is read on the node of the pod that mounts it, so its agent or client pod runs there; this keeps many PVCs of one node from ' +
          'reading that node\'s disks and network at once. Shared equally by the namespaces (at least 1 each); PVCs mounted by no pod are not counted.',
      ),
    maxAgents: integer()
      .min(1)
      .max(1000)
      .optional()
      .describe(
        'Warm agents the plan keeps at most (default 50), shared equally by its namespaces (at least 1 each): each is a pod, and a node runs ' +
          'at most its maxPods (110 by default). A PVC beyond its namespace\'s share syncs with a client pod per sync. An agent is deleted as ' +
          'soon as its PVC\'s final sync succeeded.',
      ),
    agents: z
      .enum(SOURCE_AGENT_MODES)
      .optional()
      .describe(
        'How the source side syncs. warm (default): one long-lived agent pod per PVC, made at its first sync and kept until cleanup, ' +
          'runs every sync through exec (needs the pods/exec permission in the source namespaces); a sync costs the rsync delta, not a pod start. ' +
          'per-sync: a new client pod for every sync (no exec permission needed; ~5 s of pod start per sync).',
      ),
    sourceCopyMethod: z
      .enum(SOURCE_COPY_METHODS)
      .default('direct')
      .describe(
        'What stage syncs read. direct (default): the live source PVC. snapshot: a CSI VolumeSnapshot of it taken right before each stage sync and a PVC restored from it ' +
          '(a point-in-time copy, crash-consistent; the client is not pinned to the writer\'s node). clone: a CSI clone of the PVC. ' +
          'Both are deleted after each sync; the final sync (after quiesce) reads the source PVC itself.',
      ),
    volumeSnapshotClass: dnsSubdomain()
      .optional()
      .describe('sourceCopyMethod snapshot: the VolumeSnapshotClass (default: the class its CSI driver marks default).'),
    groupSnapshot: z
      .boolean()
      .default(false)
      .describe(
        'sourceCopyMethod snapshot: before each stage pass, snap all selected PVCs of a namespace together with one VolumeGroupSnapshot ' +
          '(crash-consistent across volumes, e.g. a database and its WAL on two PVCs); each PVC is restored from its member snapshot. Needs the VolumeGroupSnapshot API (groupsnapshot.storage.k8s.io/v1) and a CSI driver with the GroupController. Ferry labels the source PVCs ferry.dev/snapshot-group while the migration runs.',
      ),
    volumeGroupSnapshotClass: dnsSubdomain().optional().describe('groupSnapshot: the VolumeGroupSnapshotClass (default: the class its CSI driver marks default).'),
    stagePasses: integer()
      .min(0)
      .max(MAX_STAGE_PASSES)
      .default(1)
      .describe('Syncs while the applications keep running, before quiesce and the final sync (manual cutover: the minimum).'),
    cutover: z
      .enum(CUTOVER_MODES)
      .default('auto')
      .describe('auto: cut over after the stage passes. manual: keep syncing until the operator signals cutover (warm migration).'),
    cutoverWhen: z
      .object({
        projectedDowntimeBelowSeconds: integer().min(1).max(86400).describe('Cut over once the final sync projected from the last stage pass takes less than this, seconds (quiesce not included).'),
        maxStagePasses: integer().min(1).max(MAX_STAGE_PASSES).default(10).describe('After this many stage passes without such a projection, stop waiting for one: the operator decides (`ferry cutover`); stage passes go on.'),
      })
      .strict()
      .optional()
      .describe(
        'Cutover on evidence (with cutover: manual): after each stage pass (at least stagePasses), cut over on its own once the projected final sync is short enough; ' +
          'else, after maxStagePasses, wait for the operator. Shorthand: cutover: { when: projected-downtime-below, seconds: N, maxStagePasses: M }.',
      ),
    stageIntervalSeconds: integer().min(0).max(86400).default(60).describe('Pause between two stage syncs, in seconds (unless stageSchedule).'),
    stageSchedule: z
      .string()
      .superRefine((expr, ctx) => {
        const p = stageScheduleProblem(expr);
        if (p) ctx.addIssue({ code: 'custom', message: p });
      })
      .optional()
      .describe(
        'Cron expression (5 fields, UTC) naming when each stage pass after the first starts, instead of stageIntervalSeconds: e.g. "0 */6 * * *" for a warm ' +
          'migration that lasts days. With cutover: auto the final sync follows the last of stagePasses at its scheduled time; with manual, passes go on at ' +
          'these times until `ferry cutover`.',
      ),
    hooks: z
      .array(hookSchema)
      .max(MAX_HOOKS)
      .default([])
      .describe('Application hooks (exec in the pods a selector picks, or a job run to completion) at preStage, postStage, preQuiesce, postQuiesce or postCutover, run in every namespace, in list order.'),
    quiesce: z.boolean().default(true).describe('Scale the source applications down before the final sync.'),
    keepSourceQuiesced: z
      .boolean()
      .default(false)
      .describe(
        'Leave the source applications down after a successful migration (they are always restored on rollback). ' +
          'Their ferry.dev/pre-quiesce annotation stays, naming this migration id: a later migration ignores it.',
      ),
    unmanagedPods: z
      .enum(UNMANAGED_POD_POLICIES)
      .optional()
      .describe(
        'Pods mounting a source PVC that Ferry cannot quiesce (bare pods, pods of controllers it does not know, e.g. operators): ' +
          'fail (default): preflight refuses them, and a migration that finds one before or after the final sync rolls back; ' +
          'delete: Ferry deletes them after quiesce, before the final sync (a controller that recreates them still fails the migration).',
      ),
    acceptRevisionChange: z
      .boolean()
      .optional()
      .describe(
        'Accept that workloads in the middle of a rollout (StatefulSet currentRevision ≠ updateRevision, e.g. a partition; ' +
          'OnDelete StatefulSets/DaemonSets whose pods lag their template) come back on their new revision after quiesce. ' +
          'Default false: preflight refuses them.',
      ),
    acceptOperatorRetentionPolicy: z
      .boolean()
      .optional()
      .describe(
        'Accept quiescing a StatefulSet whose persistentVolumeClaimRetentionPolicy deletes PVCs (whenScaled or whenDeleted: Delete) while a controller ' +
          'Ferry does not manage (an operator\'s custom resource) owns it: that controller may set Delete back after Ferry set Retain and scaled it to 0. ' +
          'Default false: preflight refuses them. Either way Ferry re-checks the policy until the final sync and rolls back if it deletes PVCs again.',
      ),
    deleteDestinationPVCsOnRollback: z
      .boolean()
      .default(false)
      .describe('On rollback, delete the destination PVCs Ferry created (and their data). Default: keep them.'),
    overwriteCutoverPVCs: z
      .boolean()
      .optional()
      .describe(
        'Write into destination PVCs that a finished migration already cut over (annotation ferry.dev/cutover-by). Default: refused at preflight, since the migrated application may have written to them since.',
      ),
    images: imagesSchema.prefault({}),
    transferImage: z
      .string()
      .regex(IMAGE_REFERENCE, { error: (iss) => `must be an image reference like "registry:5000/ferry/transfer:1.0", got ${showValue(iss.input)}` })
      .default(DEFAULT_TRANSFER_IMAGE)
      .describe('Image of the transfer pods (rsync, rclone, stunnel).'),
    timeouts: timeoutsSchema.prefault({}),
    keepPVCNames: z
      .boolean()
      .optional()
      .describe(
        'Same-cluster move (StorageClass migration, pvmigrate\'s approach): source and destination are one cluster and each namespace maps to itself; ' +
          'each PVC is copied into a temporary PVC of the destination StorageClass (storageClassMapping / defaultStorageClass, size, access modes), and after ' +
          'the final sync a PVC of the original name is bound to the new volume (both volumes set to Retain while it happens; the old one is kept, ' +
          'Released, for you to delete). The applications come back on the new volumes.',
      ),
    verifyDestination: z
      .boolean()
      .optional()
      .describe(
        'After the final sync and cleanup, wait until the destination pods that mount the migrated PVCs are Ready (timeouts.verifyDestinationSeconds) and report it ' +
          '(MTC\'s verify). The workloads are yours to bring (GitOps, or a postCutover job hook). A PVC a running workload mounted at the source is expected to be ' +
          'mounted again. A failed check is a warning in the summary, not a rollback: the copy is committed.',
      ),
  })
  .superRefine(
    (plan, ctx) => {
      const seenSource = new Map<string, number>();
      const seenDestination = new Map<string, number>();
      plan.namespaces.forEach((ns, i) => {
        for (const [what, name] of [['source', ns.source], ['destination', ns.destination]] as const) {
          if (SYSTEM_NAMESPACE_PATTERN.test(name)) {
            ctx.addIssue({ code: 'custom', path: ['namespaces', i, what], message: `${showValue(name)} is a system namespace and cannot be migrated` });
          }
        }
        const s = seenSource.get(ns.source);
        if (s !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['namespaces', i, 'source'], message: `${showValue(ns.source)} is listed twice (also namespaces[${s}])` });
        } else seenSource.set(ns.source, i);
        const d = seenDestination.get(ns.destination);
        if (d !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['namespaces', i, 'destination'],
            message: `${showValue(ns.destination)} is also the destination of namespaces[${d}] (${showValue(plan.namespaces[d]!.source)})`,
          });
        } else seenDestination.set(ns.destination, i);
      });
    },
    { when: RELEVANT_TOP_KEYS('namespaces') },
  )
  .superRefine(
    (plan, ctx) => {
      const same = (plan.source.kubeconfig ?? '') === (plan.destination.kubeconfig ?? '') && (plan.source.context ?? '') === (plan.destination.context ?? '');
      if (plan.keepPVCNames) {
        // a move in place: same cluster, same namespace, the PVCs end with their own names
        if (!same) ctx.addIssue({ code: 'custom', path: ['keepPVCNames'], message: 'moves PVCs to another StorageClass inside one cluster: source and destination must be the same cluster (same kubeconfig and context)' });
        plan.namespaces.forEach((ns, i) => {
          if (ns.destination !== ns.source) ctx.addIssue({ code: 'custom', path: ['namespaces', i, 'destination'], message: `with keepPVCNames the PVCs stay in their namespace: map ${showValue(ns.source)} to itself` });
        });
        return;
      }
      if (!same) return;
      const sources = new Set(plan.namespaces.map((n) => n.source));
      plan.namespaces.forEach((ns, i) => {
        if (sources.has(ns.destination)) {
          ctx.addIssue({
            code: 'custom',
            path: ['namespaces', i, 'destination'],
            message: `source and destination are the same cluster (same kubeconfig and context), so ${showValue(ns.destination)} would be migrated onto a source namespace: rename it, or set keepPVCNames: true to move its PVCs to another StorageClass in place`,
          });
        }
      });
    },
    { when: RELEVANT_TOP_KEYS('namespaces', 'source', 'destination', 'keepPVCNames') },
  )
  .superRefine(
    (plan, ctx) => {
      if (plan.transfer === 'rsync' && plan.transport === 'null' && !plan.allowInsecure) {
        ctx.addIssue({
          code: 'custom',
          path: ['transport'],
          message: 'null with rsync sends the data unencrypted and unauthenticated: use transport: stunnel, transfer: rclone, or set allowInsecure: true',
        });
      }
      if (plan.transfer !== 'rsync' && plan.rsync.extraArgs !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['rsync', 'extraArgs'], message: `is rsync-only and cannot be used with transfer: ${plan.transfer}` });
      }
      for (const f of ['acls', 'xattrs', 'selinuxXattrs'] as const) {
        if (plan.rsync[f] !== true) continue;
        if (plan.transfer !== 'rsync') {
          ctx.addIssue({ code: 'custom', path: ['rsync', f], message: `is rsync-only: transfer ${plan.transfer} cannot keep ACLs or extended attributes` });
        } else if (plan.security.mode !== 'preserve-ownership') {
          ctx.addIssue({
            code: 'custom',
            path: ['rsync', f],
            message: `needs security mode preserve-ownership: restricted mode re-owns every file to the transfer's uid and cannot read other users' files, so it cannot keep ACLs or extended attributes`,
          });
        }
      }
    },
    { when: RELEVANT_TOP_KEYS('transfer', 'transport', 'allowInsecure', 'rsync', 'security') },
  )
  .superRefine(
    (plan, ctx) => {
      // What transfer: rclone cannot keep or carry (src/statetransfer/transfer/rclone/index.ts).
      const hookNames = new Set<string>();
      // Refinements run on input whose fields may have failed their own checks: guard the shapes.
      (Array.isArray(plan.hooks) ? plan.hooks : []).forEach((h, i) => {
        if (hookNames.has(h.name)) ctx.addIssue({ code: 'custom', path: ['hooks', i, 'name'], message: `hook ${showValue(h.name)} is defined twice` });
        hookNames.add(h.name);
        if ((h.phase === 'preQuiesce' || h.phase === 'postQuiesce') && !plan.quiesce) {
          ctx.addIssue({ code: 'custom', path: ['hooks', i, 'phase'], message: `${h.phase} needs quiesce: true (nothing is quiesced)` });
        }
      });
      (Array.isArray(plan.hooks) ? plan.hooks : []).forEach((h, i) => {
        if (h.background && plan.groupSnapshot !== true) ctx.addIssue({ code: 'custom', path: ['hooks', i, 'background'], message: 'needs groupSnapshot: true (the hook holds until the namespace\'s group snapshot is cut)' });
      });
      if (plan.cutoverWhen && plan.cutover !== 'manual') {
        ctx.addIssue({ code: 'custom', path: ['cutoverWhen'], message: 'needs cutover: manual (the operator decides when the projection is not reached)' });
      }
      if (plan.cutoverWhen && plan.cutoverWhen.maxStagePasses < plan.stagePasses) {
        ctx.addIssue({ code: 'custom', path: ['cutoverWhen', 'maxStagePasses'], message: `must be at least stagePasses (${plan.stagePasses})` });
      }
      const snapshotting = (Array.isArray(plan.namespaces) ? plan.namespaces : []).some((n) => sourceCopyMethodOf(plan, n) === 'snapshot');
      if (plan.groupSnapshot && !snapshotting) {
        ctx.addIssue({ code: 'custom', path: ['groupSnapshot'], message: `needs sourceCopyMethod: snapshot, not ${plan.sourceCopyMethod}` });
      }
      if (plan.volumeGroupSnapshotClass !== undefined && !plan.groupSnapshot) {
        ctx.addIssue({ code: 'custom', path: ['volumeGroupSnapshotClass'], message: 'is used only with groupSnapshot: true' });
      }
      if (plan.volumeSnapshotClass !== undefined && !snapshotting) {
        ctx.addIssue({ code: 'custom', path: ['volumeSnapshotClass'], message: `is used only with sourceCopyMethod: snapshot, not ${plan.sourceCopyMethod}` });
      }
      if (plan.transfer === 'rclone' && plan.security.mode === 'preserve-ownership') {
        ctx.addIssue({
          code: 'custom',
          path: ['security', 'mode'],
          message:
            'preserve-ownership cannot be honoured by transfer: rclone, which keeps no owners, groups, permission bits, hard links, sparseness, ACLs or xattrs: use transfer: rsync to keep them, or security.mode: restricted to accept losing them',
        });
      }
      if (plan.transfer === 'rclone' && plan.transport === 'null' && plan.endpoint.type !== 'auto' && ENDPOINT_TYPE_TRAITS[plan.endpoint.type].frontend) {
        ctx.addIssue({
          code: 'custom',
          path: ['endpoint', 'type'],
          message: `${plan.endpoint.type} routes TLS by SNI and cannot carry rclone's own SSH encryption (transport: null): use transport: stunnel, or endpoint type LoadBalancer or NodePort`,
        });
      }
    },
    { when: RELEVANT_TOP_KEYS('transfer', 'transport', 'security', 'endpoint') },
  )
  .superRefine(
    (plan, ctx) => {
      if (plan.keepSourceQuiesced && !plan.quiesce) {
        ctx.addIssue({ code: 'custom', path: ['keepSourceQuiesced'], message: 'needs quiesce: true (nothing is quiesced otherwise)' });
      }
    },
    { when: RELEVANT_TOP_KEYS('keepSourceQuiesced', 'quiesce') },
  )
  .transform((plan) => ({
    ...plan,
    namespaces: plan.namespaces.map((ns) => ({ source: ns.source, destination: ns.destination, pvcs: ns.pvcs ?? plan.pvcs, ...(ns.sourceCopyMethod !== undefined ? { sourceCopyMethod: ns.sourceCopyMethod } : {}) })),
  }))
  .describe('A Ferry migration plan.');

/** A parsed, defaulted migration plan: what workflows and activities consume. */
export type MigrationPlan = z.output<typeof migrationPlanSchema>;
/** A migration plan as written by a user (YAML/JSON/flags): defaults and shorthands allowed. */
export type MigrationPlanInput = z.input<typeof migrationPlanSchema>;
/** One namespace of a parsed plan. */
export type NamespaceMapping = MigrationPlan['namespaces'][number];

/** What one namespace's stage syncs read: its own `sourceCopyMethod`, else the plan's. */
export function sourceCopyMethodOf(plan: Pick<MigrationPlan, 'sourceCopyMethod'>, mapping: { sourceCopyMethod?: (typeof SOURCE_COPY_METHODS)[number] | undefined }): (typeof SOURCE_COPY_METHODS)[number] {
  return mapping.sourceCopyMethod ?? plan.sourceCopyMethod;
}
/** A cluster reference (kubeconfig path and context). */
export type ClusterRef = MigrationPlan['source'];
/** A registry of the image migration. */
export type RegistryConfig = z.output<typeof registrySchema>;
/** A Kubernetes access mode. */
export type AccessMode = (typeof ACCESS_MODES)[number];
/** A plan's endpoint type, including 'auto'. */
export type PlanEndpointType = (typeof PLAN_ENDPOINT_TYPES)[number];
