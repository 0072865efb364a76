/**
 * The `ferry` command line (commander): migrate, status, list, retry / skip / abort, cutover, cancel,
 * rollback, worker, server start|stop|status. Every command prints human text, or JSON with `--output json`; exit codes are in
 * ./exit-codes.ts.
 *
 * Without TEMPORAL_ADDRESS every command uses the embedded dev server (shared with `ferry worker`).
 */
import { Command, CommanderError, Option } from 'commander';
import { loadPlanFile, PlanValidationError } from '../plan/load';
import { planFromFlags, type PlanFlags } from '../plan/flags';
import type { MigrationPlan } from '../plan/schema';
import { cleanupMigrationById, renderCleanup, renderSweep, storedPlan, sweep, type ClustersFor } from './cleanup';
import { CliError, EXIT, EXIT_CODES_HELP } from './exit-codes';
import { follow } from './follow';
import { checkPlanKubeconfigs } from './local-checks';
import {
  cancel,
  cutover,
  decide,
  getMigration,
  listMigrations,
  migrationIdFor,
  openSession,
  rollback,
  startMigration,
  workerPolling,
  type MigrationView,
  type TemporalSession,
} from './operations';
import { renderList, renderView, sourceNotRestored, sourceNotRestoredLines } from './render';
import { devServerStatus, resolveTemporal, stopDevServer } from '../temporal/devserver';

/** Where the CLI reads and writes. */
export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
  /** Aborted on Ctrl-C (default: SIGINT of this process). */
  interrupt?: AbortSignal;
  /** The clusters of a plan for `ferry cleanup` (default: Kubernetes clients from the plan's kubeconfig and contexts). */
  clustersFor?: ClustersFor;
  /** Kubernetes clients of a plan's clusters for `ferry verify` and `ferry plan` (tests); default: from its kubeconfigs. */
  kubeClientsFor?: import('./verify').KubeClientsFor;
}

type Output = 'human' | 'json';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];
const outputOption = () => new Option('-o, --output <format>', 'output format').choices(['human', 'json']).default('human');

/** Commander's option values of `migrate` → planFromFlags' flags (only the ones given). */
function planFlagsOf(o: Record<string, unknown>): PlanFlags {
  const flags: Record<string, unknown> = {
    name: o.name,
    kubeconfig: o.kubeconfig,
    sourceKubeconfig: o.sourceKubeconfig,
    destinationKubeconfig: o.destinationKubeconfig,
    sourceContext: o.sourceContext,
    destinationContext: o.destinationContext,
    namespaces: o.namespaces,
    pvcs: o.pvcs,
    pvcSelector: o.pvcSelector,
    storageClassMapping: o.storageClassMapping,
    accessModeMapping: o.accessModeMapping,
    defaultStorageClass: o.defaultStorageClass,
    endpoint: o.endpoint,
    hostname: o.hostname,
    ingressClassName: o.ingressClass,
    nodePort: o.nodePort,
    transfer: o.transfer,
    transport: o.transport,
    allowInsecure: o.allowInsecure,
    security: o.security,
    chown: o.chown,
    verify: o.verify,
    bandwidthLimitKiBps: o.bwlimit,
    excludes: o.exclude,
    concurrency: o.concurrency,
    stagePasses: o.stagePasses,
    cutover: o.cutover,
    stageIntervalSeconds: o.stageInterval,
    quiesce: o.quiesce,
    keepSourceQuiesced: o.keepSourceQuiesced,
    deleteDestinationPVCsOnRollback: o.deleteDestinationPvcsOnRollback,
    transferImage: o.transferImage,
  };
  return Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as PlanFlags;
}

/** The plan from -f and/or flags, validated. @throws PlanValidationError */
export function planOf(file: string | undefined, flags: PlanFlags): MigrationPlan {
  const base = file !== undefined ? loadPlanFile(file) : undefined;
  if (base && Object.keys(flags).length === 0) return base;
  return planFromFlags(flags, base);
}

/**
 * Exit code of a migration that ended (or stopped being followed): SOURCE_NOT_RESTORED (5) when a
 * namespace was migrated but its source applications were left scaled down by a failed unquiesce.
 */
export function exitOf(view: MigrationView): number {
  if (view.state?.status === 'succeeded' && Object.values(view.namespaces).some(sourceNotRestored)) return EXIT.SOURCE_NOT_RESTORED;
  if (view.state) return view.state.status === 'succeeded' ? EXIT.OK : view.state.status === 'running' ? EXIT.OK : EXIT.MIGRATION_FAILED;
  return view.workflowStatus === 'COMPLETED' || view.workflowStatus === 'RUNNING' ? EXIT.OK : EXIT.MIGRATION_FAILED;
}

/** Builds the program; actions report their exit code through `setExit`. */
export function buildProgram(io: CliIO, setExit: (code: number) => void): Command {
  const out = (s: string) => io.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
  const err = (s: string) => io.stderr.write(s.endsWith('\n') ? s : `${s}\n`);
  const json = (v: unknown) => out(JSON.stringify(v, null, 2));

  /** Runs `fn` with a Temporal session, closing it afterwards. */
  const withSession = async <T>(fn: (s: TemporalSession) => Promise<T>): Promise<T> => {
    const session = await openSession(io.env, (m) => err(m));
    try {
      return await fn(session);
    } finally {
      await session.close();
    }
  };

  /** Follows a migration until it ends or Ctrl-C; prints the outcome and sets the exit code. */
  const followAndReport = async (session: TemporalSession, id: string, output: Output): Promise<void> => {
    const signal = io.interrupt ?? interruptSignal();
    let view: MigrationView;
    try {
      const outageSeconds = Number(io.env.FERRY_FOLLOW_OUTAGE_SECONDS);
      view = await follow(session, id, {
        stream: io.stderr,
        bars: output === 'human' && io.stderr.isTTY === true,
        signal,
        ...(io.env.FERRY_FOLLOW_OUTAGE_SECONDS && Number.isFinite(outageSeconds) && outageSeconds >= 0 ? { outageLimitMs: outageSeconds * 1000 } : {}),
      });
    } catch (e) {
      if (signal.aborted) {
        err(`\nStopped following. Migration ${id} goes on in the worker: \`ferry status ${id} --follow\` to follow it again, \`ferry cancel ${id}\` to roll it back.`);
        setExit(EXIT.INTERRUPTED);
        return;
      }
      throw e;
    }
    if (output === 'json') {
      json(view.state ?? view);
      for (const line of sourceNotRestoredLines(Object.values(view.namespaces), id)) err(line);
    } else out(renderView(view));
    setExit(exitOf(view));
  };

  /** `ferry plan` / `migrate --dry-run`: the dry run with the plan's kubeconfigs; exit 2 on preflight problems. */
  const dryRun = async (plan: MigrationPlan, id: string, output: Output, options: import('../migration/dry-run').DryRunOptions): Promise<void> => {
    const [{ dryRunMigration }, { renderDryRun }, { KubeClient }] = await Promise.all([import('../migration/dry-run'), import('./plan'), import('../k8s/client')]);
    const cluster = (side: 'source' | 'destination'): import('../migration/preflight').PreflightCluster => {
      try {
        if (io.kubeClientsFor) return { client: io.kubeClientsFor(plan)[side] };
        return { client: KubeClient.fromOptions({ kubeconfig: plan[side].kubeconfig, context: plan[side].context }, io.env) };
      } catch (e) {
        return { error: e instanceof Error ? e.message : String(e) };
      }
    };
    const report = await dryRunMigration(plan, id, { source: cluster('source'), destination: cluster('destination') }, options);
    if (output === 'json') json(report);
    else out(renderDryRun(report));
    setExit(report.problems.length ? EXIT.INVALID_INPUT : EXIT.OK);
  };

  /** The plan flags of `migrate` and `plan` (they override the plan file's fields). */
  const withPlanFlags = (c: Command): Command =>
    c
      .option('--name <name>', 'plan name')
      .option('--kubeconfig <path>', 'kubeconfig of both clusters')
      .option('--source-kubeconfig <path>', 'kubeconfig of the source cluster')
      .option('--destination-kubeconfig <path>', 'kubeconfig of the destination cluster')
      .option('--source-context <context>', 'kubeconfig context of the source cluster')
      .option('--destination-context <context>', 'kubeconfig context of the destination cluster')
      .option('--namespaces <list>', 'namespaces: a,b:renamed (repeatable)', collect)
      .option('--pvcs <list>', 'PVC names, or "all" (repeatable)', collect)
      .option('--pvc-selector <selector>', 'PVC label selector')
      .option('--storage-class-mapping <src=dst>', 'StorageClass mapping (repeatable)', collect)
      .option('--access-mode-mapping <src=dst>', 'access mode mapping (repeatable)', collect)
      .option('--default-storage-class <class>', 'StorageClass of PVCs whose class is not mapped')
      .option('--endpoint <type>', 'auto, LoadBalancer, NodePort, ClusterIP, Route or Ingress')
      .option('--hostname <host>', 'Route/Ingress host name')
      .option('--ingress-class <class>', 'IngressClass (TLS passthrough)')
      .option('--node-port <port>', 'fixed NodePort')
      .option('--transfer <engine>', 'rsync or rclone')
      .option('--transport <transport>', 'stunnel or null')
      .option('--allow-insecure', 'allow rsync without a tunnel')
      .option('--security <mode>', 'restricted or preserve-ownership')
      .option('--chown <uid:gid>', 'owner of the destination files (preserve-ownership)')
      .option('--verify', 'compare checksums')
      .option('--bwlimit <KiBps>', 'bandwidth limit per PVC, KiB/s')
      .option('--exclude <pattern>', 'exclude pattern (repeatable)', collect)
      .option('--concurrency <n>', 'PVCs transferred at once per namespace')
      .option('--stage-passes <n>', 'stage syncs before cutover')
      .option('--cutover <mode>', 'auto or manual')
      .option('--stage-interval <seconds>', 'pause between stage syncs')
      .option('--quiesce', 'scale the source applications down before the final sync (default)')
      .option('--no-quiesce', 'do not scale the source applications down')
      .option('--keep-source-quiesced', 'leave the source applications down after success')
      .option('--delete-destination-pvcs-on-rollback', 'delete the destination PVCs Ferry created on rollback')
      .option('--transfer-image <image>', 'image of the transfer pods');

  const program = new Command('ferry')
    .description('Ferry migrates the persistent state of Kubernetes namespaces (PVC data, internal images) between clusters, on Temporal workflows.')
    .showHelpAfterError()
    .addHelpText('after', `\n${EXIT_CODES_HELP}\n\nEnvironment: TEMPORAL_ADDRESS (default: the embedded dev server, state in ~/.ferry), TEMPORAL_NAMESPACE, FERRY_TASK_QUEUE (default "ferry"), FERRY_FOLLOW_OUTAGE_SECONDS (how long --follow waits out a Temporal outage, default 1800).`)
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride();

  withPlanFlags(
    program
      .command('migrate')
      .description('start a migration and follow it (progress per PVC) until it ends; Ctrl-C stops following, not the migration. Idempotent: when a migration with the same id and plan runs, it attaches to it instead of starting a second one')
      .option('-f, --file <plan>', 'migration plan (YAML or JSON); flags below override its fields')
      .option('--id <id>', 'migration id (default: the plan name, else ferry-<date>-<time>)')
      .option('--detach', 'start the migration and return')
      .addOption(outputOption()),
  )
    .option('--dry-run', 'do not start it: show what it would do (as `ferry plan`)')
    .option('--skip-kubeconfig-check', "do not check the plan's kubeconfigs and contexts on this machine (the worker runs elsewhere with its own)")
    .action(async (o: Record<string, unknown>) => {
      const output = o.output as Output;
      const plan = planOf(o.file as string | undefined, planFlagsOf(o));
      const id = migrationIdFor(plan, o.id as string | undefined);
      // Everything that can be checked here is checked before Temporal is contacted (exit 2).
      if (!o.skipKubeconfigCheck) await checkPlanKubeconfigs(plan, (o.file as string | undefined) ?? 'command-line flags', io.env);
      if (o.dryRun) return dryRun(plan, id, output, {});
      await withSession(async (session) => {
        if (!(await workerPolling(session))) {
          err(`WARNING: no worker polls task queue "${session.taskQueue}": the migration waits until one runs (\`ferry worker\`).`);
        }
        const handle = await startMigration(session, plan, id);
        const ui = session.uiUrl ? `${session.uiUrl}/namespaces/${session.namespace}/workflows/${encodeURIComponent(id)}` : undefined;
        // A retried call finds the migration it (or a concurrent call) started: it attaches, exit 0.
        const what = handle.attached
          ? `Migration ${id} is already running with this plan${handle.startedAt ? ` (started ${handle.startedAt.toISOString()})` : ''}: attached to it, no second migration started.`
          : `Started migration ${id}.`;
        if (o.detach) {
          if (output === 'json') json({ id, workflowId: handle.workflowId, runId: handle.firstExecutionRunId, attached: handle.attached, ...(ui ? { ui } : {}) });
          else out(`${what}${ui ? ` Web UI: ${ui}` : ''}\nFollow it: ferry status ${id} --follow`);
          setExit(EXIT.OK);
          return;
        }
        err(`${what}${ui ? ` Web UI: ${ui}` : ''}`);
        await followAndReport(session, id, output);
      });
    });

  withPlanFlags(
    program
      .command('plan')
      .description(
        'dry run: validate the plan, run preflight, and show per namespace and PVC what the migration would do: bytes and files (measured by a short ' +
          'read-only pod per PVC), the endpoint it would choose and why, the objects it would create in each cluster, the images it would copy, and a ' +
          'projected duration of the first copy. Touches nothing but the read-only pods; needs no Temporal. Exit 0: it would start; 2: preflight problems',
      )
      .option('-f, --file <plan>', 'migration plan (YAML or JSON); flags below override its fields')
      .option('--id <id>', 'migration id the objects are named after (default: the plan name, as migrate)')
      .option('--no-measure', 'do not start the read-only pods: discovery, preflight and objects only')
      .option('--sample-mib <MiB>', 'content each read-only pod reads to measure the read rate', '256')
      .addOption(outputOption()),
  ).action(async (o: Record<string, unknown>) => {
    const plan = planOf(o.file as string | undefined, planFlagsOf(o));
    const id = migrationIdFor(plan, o.id as string | undefined);
    await checkPlanKubeconfigs(plan, (o.file as string | undefined) ?? 'command-line flags', io.env);
    const mib = Number(o.sampleMib);
    if (!Number.isInteger(mib) || mib < 0 || mib > 65536) throw new CliError(`--sample-mib must be a whole number of MiB from 0 to 65536, not ${String(o.sampleMib)}`, EXIT.INVALID_INPUT);
    await dryRun(plan, id, o.output as Output, { measure: o.measure !== false, sampleBytes: mib * 1024 * 1024 });
  });

  program
    .command('status')
    .description('show a migration: phases, namespaces, PVCs (live bytes, rate, ETA), decisions awaited')
    .argument('<id>', 'migration id')
    .option('--follow', 'follow it until it ends (exit code as migrate)')
    .addOption(outputOption())
    .action(async (id: string, o: { follow?: boolean; output: Output }) => {
      await withSession(async (session) => {
        if (o.follow) return followAndReport(session, id, o.output);
        const view = await getMigration(session, id);
        if (o.output === 'json') json(view);
        else out(renderView(view));
        setExit(exitOf(view) === EXIT.SOURCE_NOT_RESTORED ? EXIT.SOURCE_NOT_RESTORED : EXIT.OK);
      });
    });

  program
    .command('list')
    .description('list migrations, newest first')
    .option('--phase <phase>', 'only migrations in this phase (e.g. awaiting-decision, ready-for-cutover, succeeded)')
    .option('--limit <n>', 'at most this many', '100')
    .addOption(outputOption())
    .action(async (o: { phase?: string; limit: string; output: Output }) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new CliError(`--limit must be a positive integer, got ${JSON.stringify(o.limit)}`, EXIT.INVALID_INPUT);
      await withSession(async (session) => {
        const rows = await listMigrations(session, { ...(o.phase !== undefined ? { phase: o.phase } : {}), limit });
        if (o.output === 'json') json(rows);
        else out(renderList(rows));
        setExit(EXIT.OK);
      });
    });

  for (const [action, description] of [
    ['retry', 'sync a failed PVC again'],
    ['skip', 'leave a failed PVC out of the rest of the migration'],
    ['abort', 'roll the namespace of a failed PVC back'],
  ] as const) {
    program
      .command(action)
      .description(description)
      .argument('<id>', 'migration id')
      .requiredOption('--pvc <pvc>', 'the failed PVC (source name)')
      .option('--namespace <ns>', 'its source namespace (default: the namespace where it waits)')
      .addOption(outputOption())
      .action(async (id: string, o: { pvc: string; namespace?: string; output: Output }) => {
        await withSession(async (session) => {
          const r = await decide(session, id, { pvc: o.pvc, action, ...(o.namespace !== undefined ? { namespace: o.namespace } : {}) });
          if (o.output === 'json') json(r);
          else out(`${action} of PVC ${r.namespace}/${r.pvc} accepted.`);
          setExit(EXIT.OK);
        });
      });
  }

  program
    .command('cutover')
    .description('manual cutover: after the running stage pass, quiesce and run the final sync')
    .argument('<id>', 'migration id')
    .option('--namespace <ns>', 'only this source namespace (default: every running namespace)')
    .option('--force', 'cut over although the last stage pass of a PVC was partial (its final sync then fails unless the cause was fixed)')
    .addOption(outputOption())
    .action(async (id: string, o: { namespace?: string; force?: boolean; output: Output }) => {
      await withSession(async (session) => {
        const results = await cutover(session, id, o.namespace, { force: o.force === true });
        if (o.output === 'json') json(results);
        else for (const r of results) out(`cutover of ${r.namespace} requested (${r.stagePassesDone} stage pass(es) done, ${r.minimumStagePasses} required).`);
        setExit(EXIT.OK);
      });
    });

  program
    .command('cancel')
    .description('cancel a migration: every namespace still running rolls back')
    .argument('<id>', 'migration id')
    .addOption(outputOption())
    .action(async (id: string, o: { output: Output }) => {
      await withSession(async (session) => {
        const cancelled = await cancel(session, id);
        if (o.output === 'json') json({ id, cancelRequested: true, workflows: cancelled });
        else if (cancelled.length === 1 && cancelled[0] === id) out(`Cancellation of ${id} requested: running namespaces roll back. Follow: ferry status ${id} --follow`);
        else out(`Migration ${id} had ended; cancellation requested for its namespace workflows still running: ${cancelled.join(', ')} (they roll back and clean up).`);
        setExit(EXIT.OK);
      });
    });

  program
    .command('rollback')
    .description('abort a migration: every namespace still running rolls back (the migration ends failed)')
    .argument('<id>', 'migration id')
    .option('--reason <text>', 'why (kept in the summary)')
    .addOption(outputOption())
    .action(async (id: string, o: { reason?: string; output: Output }) => {
      await withSession(async (session) => {
        const r = await rollback(session, id, o.reason);
        if (o.output === 'json') json({ id, ...r });
        else out(`Rollback of ${id} started for: ${r.namespaces.join(', ') || 'no running namespace'}. Follow: ferry status ${id} --follow`);
        setExit(EXIT.OK);
      });
    });

  const server = program
    .command('server')
    .description('the embedded Temporal dev server (without TEMPORAL_ADDRESS): a process of its own, shared by every ferry command and worker, state in ~/.ferry');
  /** TEMPORAL_ADDRESS means an external server that Ferry does not manage. */
  const refuseExternal = (what: string) => {
    if (io.env.TEMPORAL_ADDRESS) throw new CliError(`TEMPORAL_ADDRESS=${io.env.TEMPORAL_ADDRESS} is set: Ferry uses that server and does not ${what} it`, EXIT.INVALID_INPUT);
  };
  server
    .command('start')
    .description('start the dev server unless one runs (ferry worker and ferry migrate also do); it runs until `ferry server stop`')
    .addOption(outputOption())
    .action(async (o: { output: Output }) => {
      refuseExternal('start');
      let h;
      try {
        h = await resolveTemporal({ env: io.env, log: (m) => err(m) });
      } catch (e) {
        throw new CliError(`cannot start the Temporal dev server: ${(e as Error).message}`, EXIT.TEMPORAL_UNREACHABLE);
      }
      const st = await devServerStatus({ env: io.env });
      if (o.output === 'json') json({ ...st, origin: h.origin });
      else out(`Temporal dev server ${h.origin === 'started' ? 'started' : 'already running'}: ${h.address}${st.pid ? `, pid ${st.pid}` : ''}${h.uiUrl ? `, Web UI ${h.uiUrl}` : ''}, log ${st.logFile}`);
      setExit(EXIT.OK);
    });
  server
    .command('stop')
    .description('stop the dev server (running migrations pause and resume at the next start: their state is in its database)')
    .addOption(outputOption())
    .action(async (o: { output: Output }) => {
      refuseExternal('stop');
      let pid: number | undefined;
      try {
        pid = await stopDevServer({ env: io.env });
      } catch (e) {
        throw new CliError((e as Error).message, EXIT.INVALID_INPUT);
      }
      if (o.output === 'json') json({ stopped: pid !== undefined, ...(pid !== undefined ? { pid } : {}) });
      else out(pid !== undefined ? `Temporal dev server (pid ${pid}) stopped.` : 'No Temporal dev server of Ferry runs.');
      setExit(EXIT.OK);
    });
  server
    .command('status')
    .description('whether the dev server runs and answers (exit 0), or not (exit 4)')
    .addOption(outputOption())
    .action(async (o: { output: Output }) => {
      if (io.env.TEMPORAL_ADDRESS) {
        const { temporalAnswers } = await import('../temporal/devserver');
        const answers = await temporalAnswers(io.env.TEMPORAL_ADDRESS);
        if (o.output === 'json') json({ address: io.env.TEMPORAL_ADDRESS, external: true, answers });
        else out(`TEMPORAL_ADDRESS=${io.env.TEMPORAL_ADDRESS} (not managed by Ferry): ${answers ? 'answers' : 'does not answer'}`);
        setExit(answers ? EXIT.OK : EXIT.TEMPORAL_UNREACHABLE);
        return;
      }
      const st = await devServerStatus({ env: io.env });
      if (o.output === 'json') json(st);
      else if (st.answers) out(`Temporal dev server at ${st.address}: running${st.pid ? `, pid ${st.pid} since ${st.startedAt}` : ' (not started by Ferry: no pid file)'}${st.uiUrl ? `, Web UI ${st.uiUrl}` : ''}, state ${st.stateDir}`);
      else out(`Temporal dev server at ${st.address}: ${st.pid ? `pid ${st.pid} runs but does not answer (log ${st.logFile})` : 'not running'}. \`ferry server start\` (or \`ferry worker\`) starts it.`);
      setExit(st.answers ? EXIT.OK : EXIT.TEMPORAL_UNREACHABLE);
    });

  program
    .command('cleanup')
    .description(
      'clean up after a migration whose workflow cannot (terminated, timed out): restore the source workloads it left quiesced and delete its transfer objects in both clusters; refuses while it runs',
    )
    .argument('[id]', 'migration id')
    .option('-f, --file <plan>', "the migration's plan (default: the plan stored in its workflow); with --sweep: the clusters to sweep")
    .option('--sweep', 'find the transfer objects of every migration no longer running in the clusters of -f, and clean them up')
    .option('--dry-run', 'only check and list; change nothing')
    .addOption(outputOption())
    .action(async (id: string | undefined, o: { file?: string; sweep?: boolean; dryRun?: boolean; output: Output }) => {
      if ((id === undefined) === (o.sweep !== true)) throw new CliError('give either a migration id or --sweep (with -f plan)', EXIT.INVALID_INPUT);
      if (o.sweep && o.file === undefined) throw new CliError('--sweep needs -f plan: the plan names the two clusters to sweep', EXIT.INVALID_INPUT);
      const plan = o.file !== undefined ? loadPlanFile(o.file) : undefined;
      let clustersFor = io.clustersFor;
      if (!clustersFor) {
        // Loaded here: the Kubernetes client is not needed by the other commands.
        const [{ KubeClient }, { kubeMigrationClusters }] = await Promise.all([import('../k8s/client'), import('../migration/leftovers')]);
        clustersFor = (p) =>
          kubeMigrationClusters(
            KubeClient.fromOptions({ kubeconfig: p.source.kubeconfig, context: p.source.context }, io.env),
            KubeClient.fromOptions({ kubeconfig: p.destination.kubeconfig, context: p.destination.context }, io.env),
          );
      }
      const forPlan: ClustersFor = clustersFor;
      await withSession(async (session) => {
        if (o.sweep) {
          const entries = await sweep(session, plan!, { clustersFor: forPlan, ...(o.dryRun ? { dryRun: true } : {}) });
          if (o.output === 'json') json(entries);
          else out(renderSweep(entries));
          setExit(entries.some((e) => e.action === 'failed') ? EXIT.MIGRATION_FAILED : EXIT.OK);
          return;
        }
        const outcome = await cleanupMigrationById(session, id!, { clustersFor: forPlan, ...(plan ? { plan } : {}), ...(o.dryRun ? { dryRun: true } : {}) });
        if (o.output === 'json') json(outcome);
        else out(renderCleanup(outcome));
        setExit(EXIT.OK);
      });
    });

  program
    .command('verify')
    .description("compare every PVC a migration cut over with its source: a manifest of each tree (types, modes, sizes, links, hard links, sparseness, mtimes; owners in preserve-ownership mode), read by a pod on each side; exit 1 on a difference")
    .argument('<id>', 'migration id')
    .option('-f, --file <plan>', "the migration's plan (default: the plan stored in its workflow)")
    .option('--hashes', 'compare the content of every file too (sha256; reads every byte on both sides)')
    .addOption(outputOption())
    .action(async (id: string, o: { file?: string; hashes?: boolean; output: Output }) => {
      const { verifyMigration, renderVerify } = await import('./verify');
      const { KubeClient } = await import('../k8s/client');
      const clientsFor =
        io.kubeClientsFor ??
        ((p: MigrationPlan) => ({
          source: KubeClient.fromOptions({ kubeconfig: p.source.kubeconfig, context: p.source.context }, io.env),
          destination: KubeClient.fromOptions({ kubeconfig: p.destination.kubeconfig, context: p.destination.context }, io.env),
        }));
      const plan = o.file !== undefined ? loadPlanFile(o.file) : await withSession((session) => storedPlan(session, id));
      const outcome = await verifyMigration(id, plan, clientsFor(plan), { hashes: o.hashes === true });
      if (o.output === 'json') json(outcome);
      else out(renderVerify(outcome));
      setExit(outcome.identical ? EXIT.OK : EXIT.MIGRATION_FAILED);
    });

  program
    .command('worker')
    .description('run a worker in this process (same as node dist/worker.js); SIGINT/SIGTERM stop it gracefully')
    .action(async () => {
      const { main } = await import('../worker');
      setExit(await main([], io.env));
    });

  return program;
}

/** An AbortSignal aborted by the next SIGINT. */
function interruptSignal(): AbortSignal {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort(new Error('interrupted')));
  return ac.signal;
}

/** Runs the CLI; returns the exit code. */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  let code: number = EXIT.OK;
  const program = buildProgram(io, (c) => (code = c));
  const jsonOutput = argv.some((a, i) => a === '--output=json' || a === '-ojson' || ((a === '--output' || a === '-o') && argv[i + 1] === 'json'));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? EXIT.OK : EXIT.INVALID_INPUT;
    }
    const error =
      e instanceof PlanValidationError
        ? new CliError(e.message, EXIT.INVALID_INPUT, { problems: e.problems })
        : e instanceof CliError
          ? e
          : new CliError(e instanceof Error ? e.message : String(e), EXIT.MIGRATION_FAILED);
    if (jsonOutput) io.stdout.write(`${JSON.stringify({ error: error.message, exitCode: error.exitCode, ...(error.details ? { details: error.details } : {}) }, null, 2)}\n`);
    io.stderr.write(`ferry: ${error.message}\n`);
    return error.exitCode;
  }
}
