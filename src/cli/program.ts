/**
 * The `ferry` command line (commander): migrate, status, list, retry / skip / abort, cutover, cancel,
 * rollback, worker. Every command prints human text, or JSON with `--output json`; exit codes are in
 * ./exit-codes.ts.
 *
 * Without TEMPORAL_ADDRESS every command uses the embedded dev server (shared with `ferry worker`).
 */
import { Command, CommanderError, Option } from 'commander';
import { loadPlanFile, planFromFlags, PlanValidationError, type PlanFlags } from '../plan/load';
import type { MigrationPlan } from '../plan/schema';
import { CliError, EXIT, EXIT_CODES_HELP } from './exit-codes';
import { follow } from './follow';
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
import { renderList, renderView } from './render';

/** Where the CLI reads and writes. */
export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
  /** Aborted on Ctrl-C (default: SIGINT of this process). */
  interrupt?: AbortSignal;
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

/** Exit code of a migration that ended (or stopped being followed). */
function exitOf(view: MigrationView): number {
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
      view = await follow(session, id, { stream: io.stderr, bars: output === 'human' && io.stderr.isTTY === true, signal });
    } catch (e) {
      if (signal.aborted) {
        err(`\nStopped following. Migration ${id} goes on in the worker: \`ferry status ${id} --follow\` to follow it again, \`ferry cancel ${id}\` to roll it back.`);
        setExit(EXIT.INTERRUPTED);
        return;
      }
      throw e;
    }
    if (output === 'json') json(view.state ?? view);
    else out(renderView(view));
    setExit(exitOf(view));
  };

  const program = new Command('ferry')
    .description('Ferry migrates the persistent state of Kubernetes namespaces (PVC data, internal images) between clusters, on Temporal workflows.')
    .showHelpAfterError()
    .addHelpText('after', `\n${EXIT_CODES_HELP}\n\nEnvironment: TEMPORAL_ADDRESS (default: the embedded dev server, state in ~/.ferry), TEMPORAL_NAMESPACE, FERRY_TASK_QUEUE (default "ferry").`)
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride();

  program
    .command('migrate')
    .description('start a migration and follow it (progress per PVC) until it ends; Ctrl-C stops following, not the migration')
    .option('-f, --file <plan>', 'migration plan (YAML or JSON); flags below override its fields')
    .option('--id <id>', 'migration id (default: the plan name, else ferry-<date>-<time>)')
    .option('--detach', 'start the migration and return')
    .addOption(outputOption())
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
    .option('--transfer-image <image>', 'image of the transfer pods')
    .action(async (o: Record<string, unknown>) => {
      const output = o.output as Output;
      const plan = planOf(o.file as string | undefined, planFlagsOf(o));
      const id = migrationIdFor(plan, o.id as string | undefined);
      await withSession(async (session) => {
        if (!(await workerPolling(session))) {
          err(`WARNING: no worker polls task queue "${session.taskQueue}": the migration waits until one runs (\`ferry worker\`).`);
        }
        const handle = await startMigration(session, plan, id);
        const ui = session.uiUrl ? `${session.uiUrl}/namespaces/${session.namespace}/workflows/${encodeURIComponent(id)}` : undefined;
        if (o.detach) {
          if (output === 'json') json({ id, workflowId: handle.workflowId, runId: handle.firstExecutionRunId, ...(ui ? { ui } : {}) });
          else out(`Started migration ${id}.${ui ? ` Web UI: ${ui}` : ''}\nFollow it: ferry status ${id} --follow`);
          setExit(EXIT.OK);
          return;
        }
        err(`Started migration ${id}.${ui ? ` Web UI: ${ui}` : ''}`);
        await followAndReport(session, id, output);
      });
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
        setExit(EXIT.OK);
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
        await cancel(session, id);
        if (o.output === 'json') json({ id, cancelRequested: true });
        else out(`Cancellation of ${id} requested: running namespaces roll back. Follow: ferry status ${id} --follow`);
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
        ? new CliError(e.message, EXIT.INVALID_INPUT, { issues: e.issues })
        : e instanceof CliError
          ? e
          : new CliError(e instanceof Error ? e.message : String(e), EXIT.MIGRATION_FAILED);
    if (jsonOutput) io.stdout.write(`${JSON.stringify({ error: error.message, exitCode: error.exitCode, ...(error.details ? { details: error.details } : {}) }, null, 2)}\n`);
    io.stderr.write(`ferry: ${error.message}\n`);
    return error.exitCode;
  }
}
