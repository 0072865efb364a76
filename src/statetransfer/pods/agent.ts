/**
 * The warm transfer agent: one long-lived source pod per PVC that runs every sync of that PVC (stage
 * passes and the final sync) instead of a new client pod per sync.
 *
 * The agent pod is the client pod (pods.ts `buildClientPod`) with two changes:
 * - the transfer container runs an idle loop; each sync is started in it with `exec` (pods/exec), as
 *   a detached process group (setsid) whose output goes to the container's log (/proc/1/fd/1, so that
 *   kubelet keeps, rotates and serves it like any container log);
 * - the transport client (stunnel) is an ordinary container that runs for the pod's lifetime, with a
 *   startup probe on its local port: the pod is Ready when the tunnel can be used (no periodic probe).
 *
 * One sync lives in `SYNC_DIR/<id>` (FERRY_RUN_DIR is a pod-level emptyDir, so it survives a restart of
 * the container): `sync.sh` (the transfer client script of lifecycle.ts, whose termination report is
 * written to `result.tmp`, then renamed `result` when the sync has ended), and `pid` (its process
 * group). Starting a sync whose directory exists attaches to it instead (a retried activity, a new
 * worker after a crash), so a PVC never has two writers; starting one stops any other sync of the
 * agent first. A finished sync whose result was read is set aside as `.done-<id>`, so that another
 * attempt attached to it still reads that result instead of finding it gone. The log carries
 * `ferry-agent: sync <id> begins` / `… ended (exit N)` around the sync's own output, so a reader
 * takes the lines after the last begin marker of its sync.
 *
 * Pure: this module only builds pod specs and bash scripts; migration/agent.ts runs them.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { FERRY_RUN_DIR } from '../types';
import { serverScript, shQuote, transferClientScript } from './lifecycle';
import { buildClientPod, loopbackProbe, type ClientPodOptions } from './pods';

/** Directory of the agent's syncs. */
export const SYNC_DIR = `${FERRY_RUN_DIR}/syncs`;
/** Annotation on the agent pod: a hash of everything the pod was built from (spec, Secret and
 * ConfigMap data, endpoint address). A different hash means the agent is stale and is replaced. */
export const AGENT_SPEC_ANNOTATION = 'ferry.dev/agent-spec';
/** Annotation marking a client pod as a warm agent (value 'true'). */
export const AGENT_ANNOTATION = 'ferry.dev/agent';
/** Prefix of the state line the wait script prints. */
export const AGENT_STATE_MARKER = 'ferry-agent-state=';

/** The idle loop of the transfer container: wakes only to reap children; exits 0 on TERM at once. */
export const AGENT_IDLE_SCRIPT = `mkdir -p ${SYNC_DIR}\ntrap 'exit 0' TERM INT\nwhile :; do sleep 3600 & wait $!; done`;

/** Options of `buildAgentPod`: the client pod's, without the per-sync lifecycle. */
export type AgentPodOptions = Omit<ClientPodOptions, 'lifecycle' | 'transportWaitSeconds'>;

/**
 * Builds the warm agent pod of one source PVC (see module docstring): restartPolicy Always, the
 * transfer container idle, the transport (if any) a long-running container with a startup probe on
 * `transportPort` (no periodic probe). The PVC is mounted read-only, the pod pinned to `nodeName` when given (RWO), and the
 * security context is the client pod's (restricted by default).
 * @throws Error as buildClientPod does.
 */
export function buildAgentPod(opts: AgentPodOptions): V1Pod {
  const pod = buildClientPod({ ...opts, lifecycle: 'native-sidecar' });
  const spec = pod.spec!;
  spec.restartPolicy = 'Always';
  const transfer = spec.containers[0]!;
  transfer.command = ['/bin/bash', '-c', AGENT_IDLE_SCRIPT];
  // Its output is the syncs' output: kubelet's log, read by the poller; no termination message.
  delete transfer.terminationMessagePath;
  delete transfer.terminationMessagePolicy;
  const transport = opts.transport.processes[0];
  const sidecar = spec.initContainers?.[0];
  if (transport && sidecar) {
    delete sidecar.restartPolicy;
    sidecar.command = ['/bin/bash', '-c', serverScript(transport.command, transport.prepare)];
    // A startup probe only: the container is Ready once the tunnel listens, and no probe runs after
    // that. A periodic exec probe costs a runc exec each period per agent — 50 agents probed every
    // 2 s kept a 2-core lab node busy and made every sync 15–25 s instead of ~1 s (measured).
    // A dead stunnel ends the container, which restarts (restartPolicy Always) and is probed again.
    sidecar.startupProbe = loopbackProbe(opts.transportPort!, 1, 120);
    delete sidecar.readinessProbe;
    spec.containers.push(sidecar);
    delete spec.initContainers;
  }
  pod.metadata!.annotations = { ...pod.metadata!.annotations, [AGENT_ANNOTATION]: 'true' };
  return pod;
}

/** Seconds an exec in the agent (a sync, the connectivity probe) waits for the agent's tunnel to
 * listen: the agent is used once its containers run, before its startup probe has passed. */
export const AGENT_TUNNEL_WAIT_SECONDS = 30;

/** Options of `agentSyncScript`. */
export interface AgentSyncScriptOptions {
  /** The transfer client's argv, prepare and finish lines (the engine's client process). */
  argv: string[];
  prepare?: string;
  finish?: string;
  /** Exit codes besides 0 after which `finish` runs (ProcessSpec.finishAfter). */
  finishAfter?: readonly number[];
  /** Local port of the transport client to wait for (absent with the null transport). */
  transportPort?: number;
}

/** The directory of sync `id`. */
export function syncDir(id: string): string {
  return `${SYNC_DIR}/${id}`;
}

/**
 * A sync id: stable across the retries of one sync (so a retry attaches), different for each pass
 * and kind. Only [a-z0-9-] (it is a directory name and a shell word).
 */
export function agentSyncId(pass: number, final: boolean): string {
  return `p${Math.max(0, Math.trunc(pass))}-${final ? 'final' : 'stage'}`;
}

function assertId(id: string): void {
  if (!/^[a-z0-9-]{1,40}$/.test(id)) throw new Error(`invalid agent sync id ${JSON.stringify(id)}`);
}

/** The script of one sync (sync.sh): lifecycle.ts's transfer client script, report in result.tmp. */
export function agentSyncScript(id: string, o: AgentSyncScriptOptions): string {
  assertId(id);
  return transferClientScript(o.argv, {
    ...(o.transportPort !== undefined ? { waitPort: o.transportPort, waitSeconds: AGENT_TUNNEL_WAIT_SECONDS } : {}),
    ...(o.prepare ? { prepare: o.prepare } : {}),
    ...(o.finish ? { finish: o.finish } : {}),
    ...(o.finishAfter ? { finishAfter: o.finishAfter } : {}),
    signalDone: false,
    terminationPath: `${syncDir(id)}/result.tmp`,
  });
}

/** Runs a sync in the background: markers around it, result.tmp renamed to result at the end. */
const SYNC_WRAPPER = [
  'd=$1 id=$2',
  'echo "ferry-agent: sync $id begins"',
  '/bin/bash "$d/sync.sh"; rc=$?',
  `[ -s "$d/result.tmp" ] || printf 'ferry-exit-code=%d\\n' "$rc" > "$d/result.tmp"`,
  'mv -f "$d/result.tmp" "$d/result"',
  'echo "ferry-agent: sync $id ended (exit $rc)"',
].join('\n');

/** Bash: `alive DIR` succeeds while the sync of DIR runs (its pid's command line names DIR: a pid
 * reused after a container restart does not count). Builtins only (read, mapfile, [[ ]]): the wait
 * loop calls it 5 times a second in every waiting exec, and a fork per call (cat, grep, $(…)) made 20
 * waiting final syncs cost the node 0.46 CPU cores (measured); bash ≥ 4.4 for `mapfile -d`. */
const ALIVE_FN = [
  'alive() {',
  '  local p= a x',
  '  { IFS= read -r p || [ -n "$p" ]; } 2>/dev/null < "$1/pid" || return 1',
  '  [ -n "$p" ] || return 1',
  "  { mapfile -d '' a; } 2>/dev/null < \"/proc/$p/cmdline\" || return 1",
  '  for x in "${a[@]}"; do [[ $x == *"$1"* ]] && return 0; done',
  '  return 1',
  '}',
].join('\n');

/** Bash: `busy DIR` succeeds while the sync of DIR runs or any process of its process group is left
 * (rsync may outlive the wrapper by a moment after a TERM, or ignore it). */
const BUSY_FN = 'busy() { local p; alive "$1" && return 0; p=$(cat "$1/pid" 2>/dev/null) || return 1; [ -n "$p" ] && kill -0 -- "-$p" 2>/dev/null; }';

/** Bash: stops every running sync of the agent except DIR $1 (TERM to the process group, then KILL
 * after 10 s) and returns once none of their processes is left. */
const STOP_OTHERS_FN = [
  BUSY_FN,
  'stop_others() {',
  `  local p o n=0; for p in ${SYNC_DIR}/*/pid; do`,
  '    [ -e "$p" ] || continue; o=${p%/pid}; [ "$o" = "$1" ] && continue',
  '    if busy "$o"; then kill -TERM -- "-$(cat "$p")" 2>/dev/null; echo "ferry-agent: stopping sync ${o##*/}"; n=1; fi',
  '  done',
  '  [ $n = 1 ] || return 0',
  '  local t=0; while (( t < 50 )); do n=0; for p in ' + SYNC_DIR + '/*/pid; do [ -e "$p" ] || continue; o=${p%/pid}; [ "$o" = "$1" ] && continue; busy "$o" && n=1; done; [ $n = 0 ] && return 0; sleep 0.2; t=$((t+1)); done',
  '  for p in ' + SYNC_DIR + '/*/pid; do [ -e "$p" ] || continue; o=${p%/pid}; [ "$o" = "$1" ] && continue; busy "$o" && kill -KILL -- "-$(cat "$p")" 2>/dev/null; done; sleep 0.2; return 0',
  '}',
].join('\n');

/** Where a forgotten (finished and read) sync's directory is kept until the next start of the same
 * sync, so that a second attempt attached to it still reads its result. */
function doneDir(id: string): string {
  return `${SYNC_DIR}/.done-${id}`;
}

/** Options of `agentStartCommand` and `agentWaitCommand`. */
export interface AgentWaitOptions {
  /** Seconds to wait for the sync to end before answering `running` (0: answer at once). */
  waitSeconds: number;
}

/**
 * The bash lines that wait up to `limit` seconds for sync `id` to end and print its state (see
 * agentWaitCommand). A `done` sync is set aside in the same step (its directory becomes `.done-<id>`,
 * where the wait of another attempt attached to it still finds the result; the next start of the same
 * sync, or any start an hour later, removes it): reading a result costs no further exec. Needs ALIVE_FN.
 */
function waitLines(id: string, limit: number): string[] {
  return [
    `d=${syncDir(id)} f=${doneDir(id)}`,
    // A sync set aside by another attempt (it read the result first) is done: its result is in $f.
    // `state` sets s (no $(…) subshell); `nap` sleeps 0.2 s in a read with a timeout on a pipe
    // nobody writes to (no sleep process): the loop forks nothing (see ALIVE_FN).
    'state() { if [ -e "$d/result" ]; then s=done; elif alive "$d"; then s=running; elif [ -e "$d/result" ]; then s=done; elif [ ! -e "$d" ] && [ -e "$f/result" ]; then s=forgotten; else s=gone; fi; }',
    'exec {nap_fd}<> <(:)',
    'nap() { read -r -t "$1" -u "$nap_fd" _ || :; }',
    `end=$((SECONDS + ${Math.max(0, Math.floor(limit))}))`,
    'while state; [ "$s" = running ] && (( SECONDS < end )); do nap 0.2; done',
    // "gone" is confirmed a second later while the directory is there: a directory made a moment ago
    // has no pid yet, and a sync started a moment ago may be between fork and exec, where its
    // /proc/<pid>/cmdline is still its parent's or, in the middle of an execve, empty (seen on the lab:
    // the first check of a start exec, microseconds after the fork, found 9 of 100 syncs "gone").
    'if [ "$s" = gone ] && [ -d "$d" ]; then nap 1; state; fi',
    'if [ "$s" = forgotten ]; then echo "' + AGENT_STATE_MARKER + 'done"; cat "$f/result"; exit 0; fi',
    `echo "${AGENT_STATE_MARKER}$s"`,
    'if [ "$s" = done ]; then cat "$d/result"; rm -rf "$f" && mv -f "$d" "$f"; elif [ "$s" = gone ]; then rm -rf "$d"; fi',
    'exit 0',
  ];
}

/**
 * The exec command that starts sync `id` with `script` (agentSyncScript), or attaches to it when its
 * directory exists, and then (with `wait`) waits for it as agentWaitCommand does, in the same exec: a
 * short sync, e.g. a final sync of a small delta, is started, awaited and read with ONE exec, each of
 * which costs the node and the API servers a runc exec and a streamed connection (~40-130 ms CPU on
 * the lab, measured). Prints `ferry-agent: started <id> at <epoch seconds with microseconds>`
 * (`parseStartedAt`) or `ferry-agent: attached <id> since <epoch seconds>` (`parseAttachedSince`),
 * both by the node's clock, then with `wait` the state block. Exit 0 unless the directory cannot be
 * made.
 */
export function agentStartCommand(id: string, script: string, wait?: AgentWaitOptions): string[] {
  assertId(id);
  const body = [
    'set -u',
    ALIVE_FN,
    STOP_OTHERS_FN,
    `d=${syncDir(id)}`,
    `mkdir -p ${SYNC_DIR}`,
    'if mkdir "$d" 2>/dev/null; then',
    'date +%s > "$d/started"',
    // A new run of this sync: the result of an earlier one is no answer to it; forgotten syncs of an
    // hour ago have no attempt waiting for them any more.
    `rm -rf ${doneDir(id)}; find ${SYNC_DIR} -mindepth 1 -maxdepth 1 -name '.done-*' -mmin +60 -exec rm -rf {} + 2>/dev/null`,
    'stop_others "$d"',
    'printf \'%s\\n\' "$1" > "$d/sync.sh"',
    `setsid /bin/bash -c ${shQuote(SYNC_WRAPPER)} ferry-agent-sync "$d" ${id} > /proc/1/fd/1 2>&1 < /dev/null &`,
    'echo $! > "$d/pid"',
    // When the sync began, by the node's clock (bash ≥ 5 EPOCHREALTIME, a builtin; empty before): `parseStartedAt`.
    `echo "ferry-agent: started ${id} at \${EPOCHREALTIME:-}"`,
    'else',
    `echo "ferry-agent: attached ${id} since $(cat "$d/started" 2>/dev/null || echo 0)"`,
    'fi',
    ...(wait ? waitLines(id, wait.waitSeconds) : ['exit 0']),
  ].join('\n');
  return ['/bin/bash', '-c', body, 'ferry-agent', script];
}

/**
 * The exec command that waits up to `waitSeconds` for sync `id` to end and prints its state:
 * `ferry-agent-state=done` followed by the result (lifecycle.ts termination report; also of a sync
 * that another attempt already read and set aside), `=running` (still running at the limit), or
 * `=gone` (no result and no process: never started, or killed with its container; the directory is
 * removed so that the next attempt starts afresh). A done sync is set aside as it is read (waitLines).
 */
export function agentWaitCommand(id: string, waitSeconds: number): string[] {
  assertId(id);
  return ['/bin/bash', '-c', ['set -u', ALIVE_FN, ...waitLines(id, waitSeconds)].join('\n')];
}

/** The exec command that stops every sync of the agent (TERM, KILL after 10 s), returning once none of
 * their processes is left, and removes the directories of sync `id`. */
export function agentStopCommand(id: string): string[] {
  assertId(id);
  return ['/bin/bash', '-c', ['set -u', ALIVE_FN, STOP_OTHERS_FN, `stop_others ${SYNC_DIR}/.none`, `rm -rf ${syncDir(id)} ${doneDir(id)}`, 'echo "ferry-agent: stopped"'].join('\n')];
}

/** What the wait command reported. */
export type AgentSyncState = { state: 'done'; result: string } | { state: 'running' } | { state: 'gone' };

/**
 * Parses the wait command's output.
 * @throws Error when the output has no state line (the command did not run as written).
 */
export function parseAgentState(stdout: string): AgentSyncState {
  const i = stdout.indexOf(AGENT_STATE_MARKER);
  if (i < 0) throw new Error(`the agent's wait command printed no state: ${stdout.slice(0, 200)}`);
  const rest = stdout.slice(i + AGENT_STATE_MARKER.length);
  const nl = rest.indexOf('\n');
  const state = (nl < 0 ? rest : rest.slice(0, nl)).trim();
  if (state === 'done') return { state, result: nl < 0 ? '' : rest.slice(nl + 1) };
  if (state === 'running' || state === 'gone') return { state };
  throw new Error(`the agent's wait command printed an unknown state ${JSON.stringify(state)}`);
}

/**
 * The lines of sync `id` in a log tail: those after its last begin marker (all of them when the
 * marker fell out of the tail: the sync printed more than the tail holds), without its end marker.
 */
export function syncLines(log: string, id: string): string[] {
  const lines = log.split(/[\r\n]+/).filter((l) => l.length > 0);
  const begin = `ferry-agent: sync ${id} begins`;
  let start = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i] === begin) {
      start = i;
      break;
    }
  }
  return lines.slice(start + 1).filter((l) => !l.startsWith(`ferry-agent: sync ${id} ended`));
}

/**
 * Pure: when a sync the start command began started, in epoch milliseconds by the node's clock (the
 * `started <id> at <seconds>` line of agentStartCommand), or undefined (attached, or a bash without
 * EPOCHREALTIME).
 */
export function parseStartedAt(stdout: string): number | undefined {
  const m = /ferry-agent: started \S+ at (\d+(?:[.,]\d+)?)/.exec(stdout);
  return m ? Math.round(Number(m[1]!.replace(',', '.')) * 1000) : undefined;
}

/** The start time (epoch milliseconds) an attach reported (`agentStartCommand`), if any. */
export function parseAttachedSince(stdout: string): number | undefined {
  const m = /ferry-agent: attached \S+ since (\d+)/.exec(stdout);
  const t = m ? Number(m[1]) * 1000 : 0;
  return t > 0 ? t : undefined;
}
