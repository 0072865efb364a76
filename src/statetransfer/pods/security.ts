/**
 * Security contexts of the transfer pods.
 *
 * - `restricted` (default): passes the Kubernetes "restricted" Pod Security Standard
 *   (https://kubernetes.io/docs/concepts/security/pod-security-standards/): runAsNonRoot, no privilege
 *   escalation, all capabilities dropped, seccomp RuntimeDefault; plus a read-only root filesystem.
 *   rsync then cannot set owners, groups, devices or specials (the rsync layer drops those flags).
 * - `preserve-ownership`: runs as root so rsync can keep every file's owner and group (or repair them
 *   with --chown/--usermap), with only the capabilities that needs; never privileged, never with
 *   privilege escalation. The pods then need a namespace that admits the "baseline" level at least
 *   (every capability in PRESERVE_OWNERSHIP_CAPABILITIES is in baseline's allowed list;
 *   DAC_READ_SEARCH is not, so the sender relies on DAC_OVERRIDE, which also grants read/search).
 */
import type { V1PodSecurityContext, V1SecurityContext } from '@kubernetes/client-node';
import type { SecurityMode } from '../types';
import type { WorkloadIdentity } from '../../core/types';

/** Capabilities rsync needs as root (capabilities(7)): read and write any file (DAC_OVERRIDE), set
 * owner and group (CHOWN), modes and times of files it does not own (FOWNER, FSETID), device nodes
 * (MKNOD), and for the daemon with `use chroot = yes` (which keeps symlinks exactly, see
 * rsyncd-conf.ts): SYS_CHROOT and SETGID (it drops supplementary groups). SETUID was measured as
 * not needed. All are in the "baseline" Pod Security Standard's allowed list. */
export const PRESERVE_OWNERSHIP_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'MKNOD', 'SETGID', 'SYS_CHROOT'] as const;

/** UID the transfer image runs as when nothing else is known (the image's numeric USER). */
export const DEFAULT_NON_ROOT_UID = 65532;

/**
 * The pod-level security context.
 * - restricted: runAsNonRoot, the identity's runAsUser/runAsGroup (else the image's numeric USER), its
 *   fsGroup and supplementalGroups (so the client can read what the workload can), and
 *   fsGroupChangePolicy OnRootMismatch so an fsGroup that already matches does not walk the volume.
 * - preserve-ownership: UID 0, no fsGroup (it would rewrite the group of every file on mount).
 */
export function podSecurityContext(mode: SecurityMode, identity: WorkloadIdentity = {}): V1PodSecurityContext {
  const base: V1PodSecurityContext = { seccompProfile: { type: 'RuntimeDefault' } };
  if (identity.seLinuxOptions) base.seLinuxOptions = { ...identity.seLinuxOptions };
  if (mode === 'preserve-ownership') {
    return { ...base, runAsUser: 0, runAsGroup: 0, runAsNonRoot: false };
  }
  if (identity.runAsUser === 0) throw new Error('restricted mode cannot run as UID 0: use security mode preserve-ownership');
  const ctx: V1PodSecurityContext = { ...base, runAsNonRoot: true, runAsUser: identity.runAsUser ?? DEFAULT_NON_ROOT_UID };
  if (identity.runAsGroup !== undefined) ctx.runAsGroup = identity.runAsGroup;
  if (identity.fsGroup !== undefined) {
    ctx.fsGroup = identity.fsGroup;
    ctx.fsGroupChangePolicy = 'OnRootMismatch';
  }
  if (identity.supplementalGroups?.length) ctx.supplementalGroups = [...identity.supplementalGroups];
  return ctx;
}

/**
 * The container-level security context. `needsRootCapabilities` is true for the transfer engine in
 * preserve-ownership mode; the transport never gets capabilities.
 */
export function containerSecurityContext(mode: SecurityMode, needsRootCapabilities: boolean): V1SecurityContext {
  const ctx: V1SecurityContext = {
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
  };
  if (mode === 'preserve-ownership' && needsRootCapabilities) {
    ctx.capabilities = { drop: ['ALL'], add: [...PRESERVE_OWNERSHIP_CAPABILITIES] };
  }
  if (mode === 'restricted') ctx.runAsNonRoot = true;
  return ctx;
}
