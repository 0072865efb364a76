/**
 * Migration plan: schema (defaults, every refinement), error aggregation and wording, did-you-mean,
 * YAML/JSON files, CLI flags.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadPlanFile, parsePlan, PlanValidationError } from '../../src/plan/load';
import { type Problem } from '../../src/core/errors';
import { resolveKubeconfigPaths } from '../../src/k8s/kubeconfig';
import { didYouMean, levenshtein } from '../../src/plan/suggest';
import { planFromFlags } from '../../src/plan/flags';
import { DEFAULT_TRANSFER_IMAGE, labelSelectorProblem, type MigrationPlan, type MigrationPlanInput } from '../../src/plan/schema';
import type { EndpointType, SecurityMode, TransferType, TransportType } from '../../src/statetransfer/types';
import { DENIED_EXTRA_ARGS, rsyncClientArgs, validateRsyncOptions, type RsyncOptions } from '../../src/statetransfer/transfer/rsync/options';
import { transferFor } from '../../src/migration/compose';

// Compile-time: the plan's enums are the state-transfer library's types.
const _transfer: TransferType = 'rsync' as MigrationPlan['transfer'];
const _transfer2: MigrationPlan['transfer'] = 'rsync' as TransferType;
const _transport: TransportType = 'null' as MigrationPlan['transport'];
const _transport2: MigrationPlan['transport'] = 'null' as TransportType;
const _mode: SecurityMode = 'restricted' as MigrationPlan['security']['mode'];
const _mode2: MigrationPlan['security']['mode'] = 'restricted' as SecurityMode;
const _endpoint: MigrationPlan['endpoint']['type'] = 'Route' as EndpointType;
void [_transfer, _transfer2, _transport, _transport2, _mode, _mode2, _endpoint];

const MINIMAL = {
  source: { context: 'ferry-src' },
  destination: { context: 'ferry-dst' },
  namespaces: ['demo'],
} satisfies MigrationPlanInput;

/** Parses `plan` expecting failure; returns the issues. */
function issuesOf(plan: unknown): readonly Problem[] {
  try {
    parsePlan(plan);
  } catch (e) {
    expect(e).toBeInstanceOf(PlanValidationError);
    return (e as PlanValidationError).problems;
  }
  throw new Error('plan was accepted');
}

/** Parses MINIMAL + `extra` expecting failure; returns "path: message" lines. */
function problems(extra: Record<string, unknown>): string[] {
  return issuesOf({ ...MINIMAL, ...extra }).map((i) => `${i.path}: ${i.message}`);
}

const ok = (extra: Record<string, unknown>): MigrationPlan => parsePlan({ ...MINIMAL, ...extra });

describe('defaults', () => {
  test('a minimal plan gets every default', () => {
    expect(parsePlan(MINIMAL)).toEqual({
      source: { context: 'ferry-src' },
      destination: { context: 'ferry-dst' },
      namespaces: [{ source: 'demo', destination: 'demo', pvcs: { all: true } }],
      pvcs: { all: true },
      storageClassMapping: {},
      accessModeMapping: {},
      endpoint: { type: 'auto' },
      transfer: 'rsync',
      transport: 'stunnel',
      allowInsecure: false,
      security: { mode: 'restricted' },
      rsync: { verify: false, excludes: [] },
      concurrency: 5,
      stagePasses: 1,
      cutover: 'auto',
      sourceCopyMethod: 'direct',
      groupSnapshot: false,
      hooks: [],
      stageIntervalSeconds: 60,
      quiesce: true,
      keepSourceQuiesced: false,
      deleteDestinationPVCsOnRollback: false,
      images: { enabled: false, mode: 'imagestreams' },
      transferImage: DEFAULT_TRANSFER_IMAGE,
      timeouts: { endpointReadySeconds: 600, serverReadySeconds: 600, podStartSeconds: 600 },
    });
    expect(DEFAULT_TRANSFER_IMAGE).toBe('ferry/transfer:latest');
  });

  test('namespace shorthands and PVC selection: global default, per-namespace override', () => {
    const plan = ok({
      namespaces: ['a', 'b:b2', { source: 'c' }, { source: 'd', destination: 'd2', pvcs: { names: ['data', 'logs'] } }],
      pvcs: { labelSelector: 'app=db' },
    });
    expect(plan.namespaces).toEqual([
      { source: 'a', destination: 'a', pvcs: { labelSelector: 'app=db' } },
      { source: 'b', destination: 'b2', pvcs: { labelSelector: 'app=db' } },
      { source: 'c', destination: 'c', pvcs: { labelSelector: 'app=db' } },
      { source: 'd', destination: 'd2', pvcs: { names: ['data', 'logs'] } },
    ]);
  });

  test('a parsed plan is valid input and parses to itself', () => {
    const plan = loadPlanFile(resolve(__dirname, '../../examples/plan.yaml'));
    expect(parsePlan(JSON.parse(JSON.stringify(plan)))).toEqual(plan);
  });
});

describe('full plan', () => {
  test('every field set', () => {
    const input: MigrationPlanInput = {
      name: 'shop-move',
      source: { kubeconfig: '/k/src', context: 'a' },
      destination: { kubeconfig: '/k/dst', context: 'b' },
      namespaces: [{ source: 'shop', destination: 'shop-new' }],
      pvcs: { names: ['db'] },
      storageClassMapping: { gp2: 'gp3-csi', 'fast.ssd': 'premium' },
      accessModeMapping: { ReadWriteOnce: 'ReadWriteMany', ReadWriteOncePod: 'ReadWriteOnce' },
      defaultStorageClass: 'standard',
      endpoint: { type: 'Ingress', hostname: 'ferry.apps.example.com', ingressClassName: 'nginx' },
      transfer: 'rsync',
      transport: 'stunnel',
      allowInsecure: false,
      security: { mode: 'preserve-ownership', chown: '1000:2000' },
      rsync: { verify: true, bandwidthLimitKiBps: 10240, excludes: ['*.tmp', 'cache/'] },
      concurrency: 20,
      stagePasses: 3,
      cutover: 'manual',
      cutoverWhen: { projectedDowntimeBelowSeconds: 20, maxStagePasses: 5 },
      hooks: [{ name: 'flush', phase: 'preQuiesce', cluster: 'source', exec: { selector: 'app=db', container: 'db', command: ['sh', '-c', 'sync'] }, timeoutSeconds: 60, onError: 'continue' }],
      sourceCopyMethod: 'snapshot',
      volumeSnapshotClass: 'csi-hostpath-snapclass',
      groupSnapshot: true,
      volumeGroupSnapshotClass: 'csi-hostpath-groupsnapclass',
      stageIntervalSeconds: 300,
      quiesce: true,
      keepSourceQuiesced: true,
      deleteDestinationPVCsOnRollback: true,
      images: {
        enabled: true,
        mode: 'registry',
        sourceRegistry: { url: 'https://registry.src:5000', authFile: '/a.json', caFile: '/ca.crt' },
        destinationRegistry: { url: 'http://registry.dst:5000/mirror', insecureSkipTLSVerify: true },
        repositories: ['shop/web'],
      },
      transferImage: 'registry.lab:5000/ferry/transfer:1.0@sha256:' + 'a'.repeat(64),
      timeouts: { endpointReadySeconds: 60, serverReadySeconds: 120, podStartSeconds: 300, transferSeconds: 3600 },
    };
    const plan = parsePlan(input);
    expect(plan.namespaces).toEqual([{ source: 'shop', destination: 'shop-new', pvcs: { names: ['db'] } }]);
    expect(plan.images.sourceRegistry).toEqual({ url: 'https://registry.src:5000', authFile: '/a.json', caFile: '/ca.crt', insecureSkipTLSVerify: false });
    expect(plan.security).toEqual({ mode: 'preserve-ownership', chown: '1000:2000' });
    expect(plan.timeouts.transferSeconds).toBe(3600);
    expect(plan.cutover).toBe('manual');
    const { namespaces: _n, images: _i, ...rest } = plan;
    const { namespaces: _n2, images: _i2, ...restIn } = input;
    expect(rest).toEqual(restIn);
  });

  test('examples/plan.yaml is valid', () => {
    const plan = loadPlanFile(resolve(__dirname, '../../examples/plan.yaml'));
    expect(plan.source).toEqual({ kubeconfig: '/var/lib/ferry-lab/kubeconfig', context: 'ferry-src' });
    expect(plan.destination).toEqual({ kubeconfig: '/var/lib/ferry-lab/kubeconfig', context: 'ferry-dst' });
    expect(plan.namespaces.map((n) => `${n.source}:${n.destination}`)).toEqual(['demo:demo', 'shop:shop-migrated', 'analytics:analytics']);
  });
});

describe('refinements', () => {
  test('namespace names must be DNS labels; the message quotes the value', () => {
    expect(problems({ namespaces: ['ok', { source: 'shop', destination: 'Bad_Name' }] })).toEqual([
      `namespaces[1].destination: must be a DNS label (lowercase letters, digits, '-'), got "Bad_Name"`,
    ]);
    expect(problems({ namespaces: ['a'.repeat(64)] })).toEqual([
      'namespaces[0]: source namespace must be a DNS label of at most 63 characters (has 64), got "' + 'a'.repeat(64) + '"',
    ]);
    expect(problems({ namespaces: ['a:B'] })).toEqual([`namespaces[0]: destination namespace must be a DNS label (lowercase letters, digits, '-'), got "B"`]);
    expect(problems({ namespaces: ['a:b:c'] })).toEqual(['namespaces[0]: must be "name" or "source:destination", got "a:b:c"']);
    expect(problems({ namespaces: [] })).toEqual(['namespaces: must have at least 1 item']);
    expect(problems({ namespaces: [7] })).toEqual(['namespaces[0]: expected a string or a mapping (object), got 7']);
  });

  test('no namespace twice, no two sources to one destination, no system namespaces', () => {
    expect(problems({ namespaces: ['a', 'b:a', 'a:c'] })).toEqual([
      'namespaces[1].destination: "a" is also the destination of namespaces[0] ("a")',
      'namespaces[2].source: "a" is listed twice (also namespaces[0])',
    ]);
    expect(problems({ namespaces: ['kube-system', 'app:openshift-config'] })).toEqual([
      'namespaces[0].source: "kube-system" is a system namespace and cannot be migrated',
      'namespaces[0].destination: "kube-system" is a system namespace and cannot be migrated',
      'namespaces[1].destination: "openshift-config" is a system namespace and cannot be migrated',
    ]);
  });

  test('same cluster on both sides needs renamed namespaces', () => {
    const same = { source: { context: 'x' }, destination: { context: 'x' } };
    expect(problems({ ...same, namespaces: ['a', 'b:c'] })).toEqual([
      'namespaces[0].destination: source and destination are the same cluster (same kubeconfig and context), so "a" would be migrated onto a source namespace: rename it, or set keepPVCNames: true to move its PVCs to another StorageClass in place',
    ]);
    expect(problems({ ...same, namespaces: ['a:b', 'b:c'] })).toHaveLength(1);
    expect(ok({ ...same, namespaces: ['a:a2', 'b:b2'] }).namespaces).toHaveLength(2);
    expect(ok({ source: { context: 'x' }, destination: { context: 'y' }, namespaces: ['a'] }).namespaces).toHaveLength(1);
  });

  test('PVC selection: exactly one form, unique names, valid label selector', () => {
    expect(problems({ pvcs: {} })).toEqual(['pvcs: must set exactly one of all: true, names: [...], labelSelector: "..."']);
    expect(problems({ pvcs: { all: true, names: ['x'] } })).toEqual(['pvcs: must set exactly one of all, names, labelSelector (got all and names)']);
    expect(problems({ pvcs: { all: false } })).toEqual(['pvcs.all: must be true, got false']);
    expect(problems({ pvcs: { names: ['db', 'db'] } })).toEqual(['pvcs.names[1]: PVC "db" is listed twice']);
    expect(problems({ pvcs: { names: ['Data'] } })).toEqual([`pvcs.names[0]: must be a DNS subdomain (lowercase letters, digits, '-', '.'), got "Data"`]);
    expect(problems({ namespaces: [{ source: 'a', pvcs: { labelSelector: 'app in (a,b' } }] })).toEqual([
      'namespaces[0].pvcs.labelSelector: has an unbalanced "("',
    ]);
    expect(ok({ pvcs: { labelSelector: 'app=db, tier!=cache,env in (prod, stage),!legacy,example.com/team' } }).pvcs).toEqual({
      labelSelector: 'app=db, tier!=cache,env in (prod, stage),!legacy,example.com/team',
    });
  });

  test.each([
    ['app=db', undefined],
    ['app==db,tier', undefined],
    ['x notin (a, b), !y', undefined],
    ['size>3', undefined],
    ['', 'must not be empty (use pvcs: { all: true } to select every PVC)'],
    ['app=db,', 'has an empty requirement (stray ",")'],
    ['app=d b', '"app=d b" is not a label selector requirement (key, !key, key=value, key!=value, key in (a,b), key notin (a,b))'],
    ['-bad=x', '"-bad" is not a valid label key'],
    ['app=-x', '"-x" is not a valid label value'],
    ['Bad.Prefix/app=x', 'label key prefix "Bad.Prefix" is not a DNS subdomain'],
    ['size>big', '"size>big": "<" and ">" need an integer value'],
    ['a)', 'has an unbalanced ")"'],
  ])('label selector %j', (selector, problem) => {
    expect(labelSelectorProblem(selector)).toBe(problem);
  });

  test('StorageClass and access mode mappings', () => {
    expect(problems({ storageClassMapping: { Fast: 'ok', slow: 'Bad' } })).toEqual([
      `storageClassMapping.Fast: invalid key: must be a DNS subdomain (lowercase letters, digits, '-', '.'), got "Fast"`,
      `storageClassMapping.slow: must be a DNS subdomain (lowercase letters, digits, '-', '.'), got "Bad"`,
    ]);
    expect(problems({ accessModeMapping: { ReadWriteOnce: 'RWX', ReadWritOnce: 'ReadWriteMany' } })).toEqual([
      'accessModeMapping.ReadWriteOnce: must be one of "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod", got the string "RWX"',
      'accessModeMapping.ReadWritOnce: unknown key (did you mean "ReadWriteOnce"?)',
    ]);
    expect(problems({ defaultStorageClass: '' })[0]).toMatch(/^defaultStorageClass: must be a DNS subdomain/);
  });

  test('endpoint: Ingress needs hostname; options only with their types', () => {
    expect(problems({ endpoint: { type: 'Ingress' } })).toEqual(['endpoint.hostname: is required when type is Ingress']);
    expect(problems({ endpoint: { type: 'LoadBalancer', hostname: 'a.example.com', nodePort: 30000, ingressClassName: 'nginx' } })).toEqual([
      'endpoint.hostname: is only used with endpoint types Route, Ingress and TLSRoute, not LoadBalancer',
      'endpoint.ingressClassName: is only used with endpoint type Ingress, not LoadBalancer',
      'endpoint.nodePort: is only used with endpoint type NodePort, not LoadBalancer',
    ]);
    expect(problems({ endpoint: { type: 'NodePort', nodePort: 70000 } })).toEqual(['endpoint.nodePort: must be at most 65535, got 70000']);
    expect(problems({ endpoint: { type: 'loadbalancer' } })).toEqual([
      'endpoint.type: must be one of "auto", "LoadBalancer", "NodePort", "ClusterIP", "Route", "Ingress", "TLSRoute", got the string "loadbalancer" (did you mean "LoadBalancer"?)',
    ]);
    expect(ok({ endpoint: { type: 'Route' } }).endpoint).toEqual({ type: 'Route' });
    expect(ok({ endpoint: { nodePort: 31000, hostname: 'x.example.com' } }).endpoint).toEqual({ type: 'auto', nodePort: 31000, hostname: 'x.example.com' });
  });

  test('rsync over the null transport is plaintext: refused unless allowInsecure', () => {
    expect(problems({ transport: 'null' })).toEqual([
      'transport: null with rsync sends the data unencrypted and unauthenticated: use transport: stunnel, transfer: rclone, or set allowInsecure: true',
    ]);
    expect(ok({ transport: 'null', allowInsecure: true }).transport).toBe('null');
    expect(ok({ transfer: 'rclone', transport: 'null' }).transfer).toBe('rclone');
    expect(problems({ transfer: 'rclone', rsync: { extraArgs: ['--max-size=1G'] } })).toEqual([
      'rsync.extraArgs: is rsync-only and cannot be used with transfer: rclone',
    ]);
  });

  test('security modes', () => {
    expect(problems({ security: { runAsUser: 0 } })).toEqual([
      'security.runAsUser: must not be 0 in restricted mode (use mode: preserve-ownership to run as root)',
    ]);
    expect(problems({ security: { chown: '1:1' } })).toEqual([
      'security.chown: needs mode: preserve-ownership (a non-root transfer cannot change file owners)',
    ]);
    expect(problems({ security: { mode: 'preserve-ownership', chown: 'app:app' } })).toEqual([
      'security.chown: must be "UID:GID" with numeric ids, got "app:app"',
    ]);
    expect(problems({ security: { mode: 'preserve-ownership', runAsUser: 1000, fsGroup: 1000 } })).toEqual([
      'security.runAsUser: is only used in restricted mode; preserve-ownership runs as root',
      'security.fsGroup: is not allowed in preserve-ownership mode: the kubelet would change the group of every file on mount',
    ]);
    expect(problems({ security: { runAsUser: -1 } })).toEqual(['security.runAsUser: must be at least 0, got -1']);
    expect(ok({ security: { runAsUser: 1000, runAsGroup: 0, fsGroup: 1000 } }).security).toEqual({
      mode: 'restricted',
      runAsUser: 1000,
      runAsGroup: 0,
      fsGroup: 1000,
    });
  });

  test('rsync options', () => {
    expect(problems({ rsync: { extraArgs: ['--delete-after', '--rsh=ssh', '-e', 'x y', '--sparse'], bandwidthLimitKiBps: 0, excludes: [''] } })).toEqual([
      'rsync.bandwidthLimitKiBps: must be at least 1, got 0',
      'rsync.excludes[0]: must not be empty',
      'rsync.extraArgs[0]: --delete-after is not allowed: use the delete option',
      'rsync.extraArgs[1]: --rsh is not allowed: runs a remote shell program; Ferry connects to its own rsync daemon',
      'rsync.extraArgs[2]: "-e" must be one long option such as --name or --name=value (value of letters, digits and _ . , : / + = -)',
      'rsync.extraArgs[3]: "x y" must be one long option such as --name or --name=value (value of letters, digits and _ . , : / + = -)',
      'rsync.extraArgs[4]: --sparse is not allowed: Ferry always passes it',
    ]);
    expect(ok({ rsync: { extraArgs: ['--max-size=10G', '--numeric-ids'] } }).rsync.extraArgs).toEqual(['--max-size=10G', '--numeric-ids']);
  });

  test('rsync extraArgs: the plan refuses exactly what the library refuses (one list, issue 8 item 5)', () => {
    // Every denied option, and each with a value: refused by the plan with the library's reason.
    for (const [name, reason] of Object.entries(DENIED_EXTRA_ARGS)) {
      expect(problems({ rsync: { extraArgs: [name] } })).toEqual([`rsync.extraArgs[0]: ${name} is not allowed: ${reason}`]);
    }
    // What the plan accepts, the library accepts too (it was refused at preflight before).
    const accepted = ok({ rsync: { extraArgs: ['--max-size=10G', '--numeric-ids', '--one-file-system'] } }).rsync.extraArgs!;
    expect(validateRsyncOptions({ extraArgs: accepted }).extraArgs).toEqual(accepted);
    expect(() => transferFor(ok({ rsync: { extraArgs: accepted } }))).not.toThrow();
    // The report's case: --acls/--xattrs point to fields the plan now has.
    expect(problems({ rsync: { extraArgs: ['--acls', '--xattrs'] } })).toEqual([
      'rsync.extraArgs[0]: --acls is not allowed: use rsync.acls (on by default in preserve-ownership mode)',
      'rsync.extraArgs[1]: --xattrs is not allowed: use rsync.xattrs (on by default in preserve-ownership mode)',
    ]);
  });

  test('rsync acls and xattrs: on by default in preserve-ownership, refused in restricted mode (issue 8 item 5)', () => {
    // The options of the plan's rsync Transfer (RsyncTransfer exposes them as `options`).
    const argv = (plan: MigrationPlan, _root: boolean) => (transferFor(plan) as unknown as { options: RsyncOptions }).options;
    const po = ok({ security: { mode: 'preserve-ownership' } });
    const poArgs = rsyncClientArgs(argv(po, true), { final: false, root: true });
    expect(poArgs).toEqual(expect.arrayContaining(['--acls', '--xattrs', '--filter=-x system.*', '--filter=-x security.selinux']));
    const off = ok({ security: { mode: 'preserve-ownership' }, rsync: { acls: false, xattrs: false } });
    expect(rsyncClientArgs(argv(off, true), { final: false, root: true }).filter((a) => /acls|xattrs|-x /.test(a))).toEqual([]);
    const selinux = ok({ security: { mode: 'preserve-ownership' }, rsync: { selinuxXattrs: true } });
    expect(rsyncClientArgs(argv(selinux, true), { final: false, root: true })).not.toContain('--filter=-x security.selinux');
    // Restricted mode: none by default, and asking for them is a plan error that says why.
    expect(rsyncClientArgs(argv(ok({}), false), { final: false, root: false }).filter((a) => /acls|xattrs/.test(a))).toEqual([]);
    expect(problems({ rsync: { acls: true, xattrs: true } })).toEqual([
      "rsync.acls: needs security mode preserve-ownership: restricted mode re-owns every file to the transfer's uid and cannot read other users' files, so it cannot keep ACLs or extended attributes",
      "rsync.xattrs: needs security mode preserve-ownership: restricted mode re-owns every file to the transfer's uid and cannot read other users' files, so it cannot keep ACLs or extended attributes",
    ]);
    expect(problems({ transfer: 'rclone', security: { mode: 'preserve-ownership' }, rsync: { acls: true } })).toEqual([
      'rsync.acls: is rsync-only: transfer rclone cannot keep ACLs or extended attributes',
      'security.mode: preserve-ownership cannot be honoured by transfer: rclone, which keeps no owners, groups, permission bits, hard links, sparseness, ACLs or xattrs: use transfer: rsync to keep them, or security.mode: restricted to accept losing them',
    ]);
    expect(problems({ security: { mode: 'preserve-ownership' }, rsync: { xattrs: false, selinuxXattrs: true } })).toEqual([
      'rsync.selinuxXattrs: needs xattrs (the SELinux label is an extended attribute)',
    ]);
  });

  test('numeric ranges', () => {
    expect(problems({ concurrency: 0, stagePasses: -1, stageIntervalSeconds: 1.5 })).toEqual([
      'concurrency: must be at least 1, got 0',
      'stagePasses: must be at least 0, got -1',
      'stageIntervalSeconds: expected an integer, got 1.5',
    ]);
    expect(problems({ concurrency: 21 })).toEqual(['concurrency: must be at most 20, got 21']);
    expect(problems({ concurrency: '5' })).toEqual(['concurrency: expected a number, got the string "5"']);
    expect(problems({ timeouts: { endpointReadySeconds: 0, transferSeconds: 1.5 } })).toEqual([
      'timeouts.endpointReadySeconds: must be at least 1, got 0',
      'timeouts.transferSeconds: expected an integer, got 1.5',
    ]);
    expect(ok({ stagePasses: 0, concurrency: 1 }).stagePasses).toBe(0);
  });

  test('keepSourceQuiesced needs quiesce', () => {
    expect(problems({ quiesce: false, keepSourceQuiesced: true })).toEqual(['keepSourceQuiesced: needs quiesce: true (nothing is quiesced otherwise)']);
    expect(ok({ quiesce: false }).quiesce).toBe(false);
  });

  test('images: registries required when enabled; registry mode may discover its repositories; aliases; TLS', () => {
    expect(problems({ images: { enabled: true, mode: 'registry' } })).toEqual([
      'images.sourceRegistry: is required when images.enabled is true',
      'images.destinationRegistry: is required when images.enabled is true',
    ]);
    expect(ok({ images: { enabled: true, mode: 'registry', sourceRegistry: { url: 'https://r:5000', aliases: ['image-registry.svc:5000'] }, destinationRegistry: { url: 'r2' } } }).images.sourceRegistry?.aliases).toEqual(['image-registry.svc:5000']);
    expect(problems({ images: { sourceRegistry: { url: 'r', aliases: ['https://x/y'] } } })).toEqual(['images.sourceRegistry.aliases[0]: must be a registry host[:port], got "https://x/y"']);
    expect(problems({ images: { enabled: true, sourceRegistry: { url: 'http://r:5000' }, destinationRegistry: { url: 'r2', insecureSkipTLSVerify: true, caFile: '/ca' } } })).toEqual([
      'images.sourceRegistry.url: is plain HTTP, which sends credentials and images unencrypted: use https:// or set insecureSkipTLSVerify: true',
      'images.destinationRegistry.caFile: is pointless with insecureSkipTLSVerify: true; remove one of them',
    ]);
    expect(problems({ images: { sourceRegistry: { url: 'ftp://x' } } })).toEqual([
      'images.sourceRegistry.url: must be a registry address like "registry.example.com:5000" or "https://host/path", got "ftp://x"',
    ]);
    expect(ok({ images: { enabled: true, sourceRegistry: { url: 'a:5000' }, destinationRegistry: { url: '[::1]:5000' } } }).images.mode).toBe('imagestreams');
    expect(ok({ images: { sourceRegistry: { url: 'x' } } }).images.enabled).toBe(false);
  });

  test('transfer image reference', () => {
    expect(problems({ transferImage: 'ferry/Transfer:latest' })).toEqual([
      'transferImage: must be an image reference like "registry:5000/ferry/transfer:1.0", got "ferry/Transfer:latest"',
    ]);
    for (const ref of ['rsync', 'localhost:5000/a/b', 'ferry/transfer@sha256:' + '0'.repeat(64), 'docker.io/library/alpine:3.20']) {
      expect(ok({ transferImage: ref }).transferImage).toBe(ref);
    }
  });

  test('name is a DNS label', () => {
    expect(problems({ name: 'My Migration' })).toEqual([`name: must be a DNS label (lowercase letters, digits, '-'), got "My Migration"`]);
  });
});

describe('errors', () => {
  test('every problem is reported at once, type errors included, with one path: message line each', () => {
    let error: PlanValidationError | undefined;
    try {
      parsePlan({
        source: { context: 'a', kubeconfg: '/x' },
        destination: 'b',
        namespaces: ['ok', { source: 'Bad_Name' }],
        concurrency: 'many',
        transport: 'null',
        quiesce: false,
        keepSourceQuiesced: true,
        stagePasses: 0.5,
        endpoint: { type: 'Ingress' },
        securty: {},
      });
    } catch (e) {
      error = e as PlanValidationError;
    }
    expect(error).toBeInstanceOf(PlanValidationError);
    expect(error!.problems.map((i) => i.path)).toEqual([
      'source.kubeconfg',
      'destination',
      'namespaces[1].source',
      'endpoint.hostname',
      'concurrency',
      'stagePasses',
      'securty',
      'transport',
      'keepSourceQuiesced',
    ]);
    const lines = error!.message.split('\n');
    expect(lines[0]).toBe('invalid migration plan (plan object): 9 problems');
    expect(lines.slice(1)).toEqual(error!.problems.map((i) => `  ${i.path}: ${i.message}`));
    expect(error!.message).toContain(`  namespaces[1].source: must be a DNS label (lowercase letters, digits, '-'), got "Bad_Name"`);
    expect(error!.message).toContain('  destination: expected a mapping (object), got the string "b"');
    expect(error!.message).toContain('  securty: unknown key (did you mean "security"?)');
  });

  test('root and required fields', () => {
    expect(issuesOf(null)).toEqual([{ path: '(plan)', message: 'expected a mapping (object), got an empty value (null)' }]);
    expect(issuesOf({})).toEqual([
      { path: 'source', message: 'is required' },
      { path: 'destination', message: 'is required' },
      { path: 'namespaces', message: 'is required' },
    ]);
  });

  test('did you mean: unknown keys at every level; known keys listed when nothing is close', () => {
    expect(problems({ rsync: { bandwidthLimit: 5 } })).toEqual(['rsync.bandwidthLimit: unknown key (did you mean "bandwidthLimitKiBps"?)']);
    const lines = problems({ concurency: 3, timeouts: { endpointReadySecs: 5 }, images: { sourceRegistry: { URL: 'x' } }, security: { zzz: 1 } });
    expect(lines).toEqual(
      expect.arrayContaining([
        'concurency: unknown key (did you mean "concurrency"?)',
        'timeouts.endpointReadySecs: unknown key (did you mean "endpointReadySeconds"?)',
        'images.sourceRegistry.URL: unknown key (did you mean "url"?)',
        'images.sourceRegistry.url: is required',
        'security.zzz: unknown key (known keys: mode, runAsUser, runAsGroup, fsGroup, chown)',
      ]),
    );
    expect(lines).toHaveLength(5);
    expect(problems({ namespaces: [{ source: 'a', destinaton: 'b' }] })).toEqual(['namespaces[0].destinaton: unknown key (did you mean "destination"?)']);
    expect(problems({ cutover: 'Manual' })).toEqual(['cutover: must be one of "auto", "manual", got the string "Manual" (did you mean "manual"?)']);
  });

  test('levenshtein and didYouMean', () => {
    expect(levenshtein('kitten', 'sitting')).toBe(3);
    expect(levenshtein('', 'abc')).toBe(3);
    expect(levenshtein('same', 'same')).toBe(0);
    expect(didYouMean('concurency', ['concurrency', 'cutover'])).toBe('concurrency');
    expect(didYouMean('QUIESCE', ['quiesce'])).toBe('quiesce');
    expect(didYouMean('xyz', ['concurrency', 'cutover'])).toBeUndefined();
    expect(didYouMean('ab', ['cd'])).toBeUndefined();
  });
});

describe('plan files', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-plan-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const loadIssues = (p: string): readonly Problem[] => {
    try {
      loadPlanFile(p);
    } catch (e) {
      expect(e).toBeInstanceOf(PlanValidationError);
      return (e as PlanValidationError).problems;
    }
    throw new Error('plan file was accepted');
  };

  test('YAML: parsed, defaulted, relative paths resolved against the file directory', () => {
    const p = write(
      'plan.yaml',
      ['source: {kubeconfig: ./src.kubeconfig, context: a}', 'destination:', '  kubeconfig: ~/dst.kubeconfig', 'namespaces: [app, "db:db2"]', 'images:', '  sourceRegistry: {url: r1, authFile: auth.json}', ''].join('\n'),
    );
    const plan = loadPlanFile(p);
    expect(plan.source.kubeconfig).toBe(join(dir, 'src.kubeconfig'));
    expect(plan.destination.kubeconfig).toBe(join(require('node:os').homedir(), 'dst.kubeconfig'));
    expect(plan.images.sourceRegistry?.authFile).toBe(join(dir, 'auth.json'));
    expect(plan.namespaces.map((n) => n.destination)).toEqual(['app', 'db2']);
  });

  test('JSON: detected by content, whatever the extension', () => {
    const p = write('plan.txt', JSON.stringify({ ...MINIMAL, concurrency: 2 }, null, '\t'));
    expect(loadPlanFile(p).concurrency).toBe(2);
  });

  test('validation issues carry the line number', () => {
    const p = write('plan.yaml', ['source: {context: a}', 'destination: {context: b}', 'namespaces:', '  - ok', '  - source: shop', '    destination: Bad_Name', 'concurrency: 99', 'quiesse: true', ''].join('\n'));
    const issues = loadIssues(p);
    expect(issues).toEqual([
      { path: 'namespaces[1].destination', message: `must be a DNS label (lowercase letters, digits, '-'), got "Bad_Name"`, line: 6 },
      { path: 'concurrency', message: 'must be at most 20, got 99', line: 7 },
      { path: 'quiesse', message: 'unknown key (did you mean "quiesce"?)', line: 8 },
    ]);
    let message = '';
    try {
      loadPlanFile(p);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message.split('\n')[0]).toBe(`invalid migration plan (${p}): 3 problems`);
    expect(message).toContain(`  namespaces[1].destination: must be a DNS label (lowercase letters, digits, '-'), got "Bad_Name" (line 6)`);
  });

  test('JSON issues carry line numbers too', () => {
    const p = write('plan.json', '{\n  "source": {},\n  "destination": {"context": "b"},\n  "namespaces": ["UPPER"]\n}\n');
    expect(loadIssues(p)).toEqual([
      { path: 'namespaces[0]', message: `source namespace must be a DNS label (lowercase letters, digits, '-'), got "UPPER"`, line: 4 },
    ]);
  });

  test('syntax errors, duplicate keys, several documents, empty file, missing file', () => {
    const yamlErr = loadIssues(write('bad.yaml', 'source: {context: a}\nnamespaces: [a\n'));
    expect(yamlErr[0]!.path).toBe('(file)');
    expect(yamlErr[0]!.message).toMatch(/^invalid YAML: /);
    expect(yamlErr[0]!.line).toBeGreaterThanOrEqual(2);
    const dup = loadIssues(write('dup.yaml', 'source: {}\nsource: {}\n'));
    expect(dup[0]).toMatchObject({ path: '(file)', line: 2 });
    expect(dup[0]!.message).toMatch(/unique/i);
    expect(loadIssues(write('two.yaml', 'a: 1\n---\nb: 2\n'))).toEqual([{ path: '(file)', message: 'holds 2 YAML documents; a plan is one document' }]);
    expect(loadIssues(write('empty.yaml', '# nothing\n'))).toEqual([{ path: '(file)', message: 'the plan file is empty' }]);
    const json = loadIssues(write('bad.json', '{\n  "source": {},\n  "x": 1,\n}'));
    expect(json[0]!.message).toMatch(/^invalid JSON: /);
    expect(json[0]!.line).toBe(4); // the "}" after the trailing comma
    const missing = loadIssues(join(dir, 'nope.yaml'));
    expect(missing[0]!.message).toMatch(/^cannot read the plan file: ENOENT/);
  });
});

describe('flags', () => {
  test('the simple case', () => {
    const plan = planFromFlags({
      sourceContext: 'ferry-src',
      destinationContext: 'ferry-dst',
      kubeconfig: '/var/lib/ferry-lab/kubeconfig',
      namespaces: 'a,b:renamed',
      concurrency: '3',
      storageClassMapping: ['gp2=gp3', 'slow=fast'],
      accessModeMapping: 'ReadWriteOnce=ReadWriteMany',
      endpoint: 'NodePort',
      nodePort: '30500',
      quiesce: false,
      excludes: '*.tmp,cache/',
      verify: true,
    });
    expect(plan.source).toEqual({ kubeconfig: '/var/lib/ferry-lab/kubeconfig', context: 'ferry-src' });
    expect(plan.destination).toEqual({ kubeconfig: '/var/lib/ferry-lab/kubeconfig', context: 'ferry-dst' });
    expect(plan.namespaces).toEqual([
      { source: 'a', destination: 'a', pvcs: { all: true } },
      { source: 'b', destination: 'renamed', pvcs: { all: true } },
    ]);
    expect(plan.concurrency).toBe(3);
    expect(plan.storageClassMapping).toEqual({ gp2: 'gp3', slow: 'fast' });
    expect(plan.accessModeMapping).toEqual({ ReadWriteOnce: 'ReadWriteMany' });
    expect(plan.endpoint).toEqual({ type: 'NodePort', nodePort: 30500 });
    expect(plan.quiesce).toBe(false);
    expect(plan.rsync).toEqual({ verify: true, excludes: ['*.tmp', 'cache/'] });
  });

  test('relative kubeconfig flags are made absolute against the cwd; PVC flags', () => {
    const plan = planFromFlags({ sourceKubeconfig: 'kc', destinationContext: 'd', namespaces: ['a'], pvcs: 'data,logs' });
    expect(plan.source.kubeconfig).toBe(resolve('kc'));
    expect(plan.destination).toEqual({ context: 'd' });
    expect(plan.namespaces[0]!.pvcs).toEqual({ names: ['data', 'logs'] });
    expect(planFromFlags({ destinationContext: 'd', namespaces: 'a', pvcs: 'all' }).pvcs).toEqual({ all: true });
    expect(planFromFlags({ destinationContext: 'd', namespaces: 'a', pvcSelector: 'app=db' }).pvcs).toEqual({ labelSelector: 'app=db' });
  });

  test('flags override a base plan; --pvcs replaces every namespace selection', () => {
    const base = parsePlan({ ...MINIMAL, namespaces: [{ source: 'a', pvcs: { names: ['x'] } }, 'b'], concurrency: 2 });
    const plan = planFromFlags({ concurrency: 7, pvcs: 'data' }, base);
    expect(plan.concurrency).toBe(7);
    expect(plan.source).toEqual(base.source);
    expect(plan.namespaces.map((n) => n.pvcs)).toEqual([{ names: ['data'] }, { names: ['data'] }]);
    expect(base.namespaces[0]!.pvcs).toEqual({ names: ['x'] }); // base untouched
    expect(planFromFlags({ transfer: 'rclone' }, base).namespaces[0]!.pvcs).toEqual({ names: ['x'] });
  });

  test('flag syntax problems and schema problems are reported together, naming the flag', () => {
    let error: PlanValidationError | undefined;
    try {
      planFromFlags({ sourceContext: 'a', namespaces: 'a,b:C,d:e:f', concurrency: 'lots', storageClassMapping: 'gp2', pvcs: 'x', pvcSelector: 'y=z', cutover: 'later' });
    } catch (e) {
      error = e as PlanValidationError;
    }
    expect(error).toBeInstanceOf(PlanValidationError);
    expect(error!.origin).toBe('command-line flags');
    expect(error!.problems.map((i) => `${i.path}: ${i.message}`)).toEqual([
      '--namespaces: "d:e:f" must be "name" or "source:destination"',
      '--pvcs: cannot be combined with --pvc-selector',
      '--storage-class-mapping: "gp2" must be "source=destination"',
      `namespaces[1].destination: must be a DNS label (lowercase letters, digits, '-'), got "C" (flag --namespaces)`,
      'concurrency: expected a number, got the string "lots" (flag --concurrency)',
      'cutover: must be one of "auto", "manual", got the string "later" (flag --cutover)',
    ]);
  });

  test('namespaces are required', () => {
    expect(() => planFromFlags({ sourceContext: 'a', destinationContext: 'b' })).toThrow('namespaces: is required (flag --namespaces)');
  });
});

describe('kubeconfig resolution', () => {
  test('plan path, then $KUBECONFIG entries, then ~/.kube/config', () => {
    expect(resolveKubeconfigPaths({ kubeconfig: '/a/kc' }, {}, '/home/u')).toEqual(['/a/kc']);
    expect(resolveKubeconfigPaths({ kubeconfig: '~/kc' }, {}, '/home/u')).toEqual(['/home/u/kc']);
    expect(resolveKubeconfigPaths({}, { KUBECONFIG: '/x:/y::' }, '/home/u')).toEqual(['/x', '/y']);
    expect(resolveKubeconfigPaths({ context: 'c' }, {}, '/home/u')).toEqual(['/home/u/.kube/config']);
  });
});

describe('plan loading is bounded and checked locally before Temporal (issue 8 item 18)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-plan18-'));
  });
  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const loadError = (p: string): PlanValidationError => {
    try {
      loadPlanFile(p);
    } catch (e) {
      expect(e).toBeInstanceOf(PlanValidationError);
      return e as PlanValidationError;
    }
    throw new Error('plan was accepted');
  };
  const VALID = 'source: { context: ferry-src }\ndestination: { context: ferry-dst }\nnamespaces: [demo]\n';
  /** Nine levels of ten aliases each: 10^9 nodes when expanded ("billion laughs"). */
  const BOMB =
    VALID +
    'x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n' +
    Array.from({ length: 8 }, (_, i) => `x${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(', ')}]\n`).join('');

  /** Runs `ferry <args>` in this process; Temporal is an address where nothing answers. */
  async function ferry(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stderr: string }> {
    const { runCli } = await import('../../src/cli/program');
    const { Writable } = await import('node:stream');
    let stderr = '';
    const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
    const err = new Writable({
      write: (c, _e, cb) => {
        stderr += String(c);
        cb();
      },
    });
    const code = await runCli(args, { stdout: sink(), stderr: err, env: { PATH: process.env.PATH, HOME: dir, TEMPORAL_ADDRESS: '127.0.0.1:1', ...env } });
    return { code, stderr };
  }
  /** A kubeconfig with the contexts ferry-src and ferry-dst. */
  const kubeconfig = () =>
    write(
      'kubeconfig',
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{ name: c, cluster: { server: "https://127.0.0.1:1" } }]',
        'users: [{ name: u, user: { token: t } }]',
        'contexts: [{ name: ferry-src, context: { cluster: c, user: u } }, { name: ferry-dst, context: { cluster: c, user: u } }]',
        'current-context: ferry-src',
        '',
      ].join('\n'),
    );

  test('a YAML alias bomb is a plan error naming the file, not a crash', () => {
    const p = write('bomb.yaml', BOMB);
    const e = loadError(p);
    expect(e.origin).toBe(p);
    expect(e.problems).toEqual([expect.objectContaining({ path: '(file)', message: expect.stringMatching(/aliases .* expand to too many nodes/) })]);
  });

  test('ferry migrate on an alias bomb exits 2 with the file name', async () => {
    const p = write('bomb.yaml', BOMB);
    const r = await ferry(['migrate', '-f', p]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(p);
  });

  test('a plan file larger than 1 MiB is refused before it is parsed, with the limit', () => {
    const p = write('big.yaml', VALID + `# ${'x'.repeat(1024 * 1024)}\n`);
    const e = loadError(p);
    expect(e.problems).toEqual([expect.objectContaining({ path: '(file)', message: expect.stringContaining('at most 1048576 bytes (1 MiB)') })]);
    // A plan just under the limit loads.
    const q = write('under.yaml', VALID + `# ${'x'.repeat(1000 * 1000)}\n`);
    expect(loadPlanFile(q).namespaces).toHaveLength(1);
  });

  test('a JSON plan is parsed once (no YAML parse of a valid JSON plan)', () => {
    const yaml = jest.requireActual<typeof import('yaml')>('yaml');
    const spy = jest.spyOn(yaml, 'parseAllDocuments');
    const p = write('plan.json', JSON.stringify({ source: { context: 'ferry-src' }, destination: { context: 'ferry-dst' }, namespaces: ['demo'] }));
    expect(loadPlanFile(p).namespaces[0]!.source).toBe('demo');
    expect(spy).not.toHaveBeenCalled();
    // Errors still carry their line (the YAML parser locates them, on the error path only).
    const bad = write('bad.json', '{\n  "source": { "context": "ferry-src" },\n  "destination": { "context": "ferry-dst" },\n  "namespaces": ["demo"],\n  "concurrency": 0\n}\n');
    expect(loadError(bad).problems).toEqual([expect.objectContaining({ path: 'concurrency', line: 5 })]);
  });

  test('`transport: null` unquoted is refused with a message that says to quote it', () => {
    const p = write('null.yaml', VALID + 'transfer: rclone\ntransport: null\n');
    const e = loadError(p);
    expect(e.problems).toEqual([expect.objectContaining({ path: 'transport', line: 5, message: expect.stringContaining('write "null" in quotes') })]);
    const q = write('quoted.yaml', VALID + 'transfer: rclone\ntransport: "null"\n');
    expect(loadPlanFile(q).transport).toBe('null');
  });

  test('ferry migrate refuses a missing context or an unreadable kubeconfig with exit 2, before contacting Temporal', async () => {
    const kc = kubeconfig();
    const missingContext = write('ctx.yaml', `source: { kubeconfig: ${kc}, context: ferry-src }\ndestination: { kubeconfig: ${kc}, context: nope }\nnamespaces: [demo]\n`);
    let r = await ferry(['migrate', '-f', missingContext]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(missingContext);
    expect(r.stderr).toMatch(/destination\.context: context "nope" not found .*available contexts: ferry-src, ferry-dst/);

    const missingFile = write('nofile.yaml', `source: { kubeconfig: ${join(dir, 'absent')}, context: a }\ndestination: { kubeconfig: ${kc}, context: ferry-dst }\nnamespaces: [demo]\n`);
    r = await ferry(['migrate', '-f', missingFile]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/source\.kubeconfig: kubeconfig .*absent .* does not exist/);

    const garbage = write('garbage-kubeconfig', 'clusters: [unterminated\n');
    const unreadable = write('unreadable.yaml', `source: { kubeconfig: ${garbage} }\ndestination: { kubeconfig: ${kc}, context: ferry-dst }\nnamespaces: [demo]\n`);
    r = await ferry(['migrate', '-f', unreadable]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/source\.kubeconfig: cannot load kubeconfig .*garbage-kubeconfig/);

    // A plan whose kubeconfigs check out goes on to Temporal (nothing answers at 127.0.0.1:1: exit 4).
    const good = write('good.yaml', `source: { kubeconfig: ${kc}, context: ferry-src }\ndestination: { kubeconfig: ${kc}, context: ferry-dst }\nnamespaces: [demo]\n`);
    r = await ferry(['migrate', '-f', good]);
    expect(r.code).toBe(4);
  });
});

describe('transfer: rclone refuses what it cannot keep', () => {
  test('preserve-ownership (owners, modes, hard links, holes, ACLs, xattrs) is refused with the alternatives', () => {
    expect(problems({ transfer: 'rclone', security: { mode: 'preserve-ownership' } })).toEqual([
      'security.mode: preserve-ownership cannot be honoured by transfer: rclone, which keeps no owners, groups, permission bits, hard links, sparseness, ACLs or xattrs: use transfer: rsync to keep them, or security.mode: restricted to accept losing them',
    ]);
    expect(ok({ transfer: 'rclone', security: { mode: 'restricted' } }).transfer).toBe('rclone');
    expect(ok({ transfer: 'rsync', security: { mode: 'preserve-ownership' } }).security.mode).toBe('preserve-ownership');
  });

  test('its own SSH encryption cannot pass a Route or Ingress; stunnel can', () => {
    expect(problems({ transfer: 'rclone', transport: 'null', endpoint: { type: 'Route' } })).toEqual([
      "endpoint.type: Route routes TLS by SNI and cannot carry rclone's own SSH encryption (transport: null): use transport: stunnel, or endpoint type LoadBalancer or NodePort",
    ]);
    expect(ok({ transfer: 'rclone', transport: 'stunnel', endpoint: { type: 'Route' } }).transfer).toBe('rclone');
    expect(ok({ transfer: 'rclone', transport: 'null', endpoint: { type: 'NodePort' } }).transport).toBe('null');
  });
});

describe('cutover on evidence (issue 11 item 3)', () => {
  test('the shorthand cutover: { when: projected-downtime-below, seconds, maxStagePasses } becomes cutover manual + cutoverWhen', () => {
    const plan = ok({ cutover: { when: 'projected-downtime-below', seconds: 30, maxStagePasses: 8 }, stagePasses: 2 });
    expect(plan.cutover).toBe('manual');
    expect(plan.cutoverWhen).toEqual({ projectedDowntimeBelowSeconds: 30, maxStagePasses: 8 });
    expect(ok({ cutover: { when: 'projected-downtime-below', seconds: 30 } }).cutoverWhen).toEqual({ projectedDowntimeBelowSeconds: 30, maxStagePasses: 10 });
    // the parsed plan parses again to itself (the workflow's input)
    expect(ok(plan as never)).toEqual(plan);
  });

  test('refused: with cutover auto, fewer passes than stagePasses, a bad threshold, an unknown form', () => {
    expect(problems({ cutover: 'auto', cutoverWhen: { projectedDowntimeBelowSeconds: 30 } })).toEqual(['cutoverWhen: needs cutover: manual (the operator decides when the projection is not reached)']);
    expect(problems({ cutover: { when: 'projected-downtime-below', seconds: 30, maxStagePasses: 2 }, stagePasses: 3 })).toEqual(['cutoverWhen.maxStagePasses: must be at least stagePasses (3)']);
    expect(problems({ cutover: { when: 'projected-downtime-below', seconds: 0 } }).join('\n')).toMatch(/^cutoverWhen\.projectedDowntimeBelowSeconds: /);
    expect(problems({ cutover: { when: 'tomorrow', seconds: 30 } }).join('\n')).toMatch(/^cutover: /);
  });
});

describe('wrong shapes are plan errors, not crashes', () => {
  test.each([
    ['hooks', { hooks: 'flush' }, /^hooks: /],
    ['namespaces', { namespaces: 'x' }, /^namespaces: /],
    ['cutoverWhen', { cutover: 'manual', cutoverWhen: 'soon' }, /^cutoverWhen: /],
    ['cutover', { cutover: 7 }, /^cutover: /],
  ])('%s of the wrong type', (_name, fields, message) => {
    expect(problems(fields as never).join('\n')).toMatch(message);
  });
});
