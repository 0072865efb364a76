/**
 * Names and labels of every object Ferry creates.
 *
 * Names are derived from the migration id and, for per-PVC objects, the PVC name. They are always
 * valid DNS labels (RFC 1123: at most 63 characters of [a-z0-9-], starting and ending with an
 * alphanumeric), so they fit Pods, Services, Secrets and ConfigMaps alike. Every name carries a
 * hash of the migration id, so two migrations in one namespace never collide; long or non-label PVC
 * names are shortened and suffixed with a hash of the full PVC name, so two PVCs never collide either.
 * (crane-lib's fixed names such as `rsync-server` collide when two transfers share a namespace.)
 */
import { createHash } from 'node:crypto';

/** Maximum length of a DNS label and of a label value (Kubernetes API conventions). */
export const DNS_LABEL_MAX = 63;

/** Label keys Ferry puts on every object it creates. */
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  component: 'app.kubernetes.io/component',
  migration: 'ferry.dev/migration',
  pvc: 'ferry.dev/pvc',
  role: 'ferry.dev/role',
} as const;

/** Annotation keys Ferry writes. */
export const ANNOTATIONS = {
  migrationId: 'ferry.dev/migration-id',
  pvc: 'ferry.dev/pvc-name',
} as const;

const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE_RE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Lowercase hex SHA-256 of `s`, cut to `length` characters. */
export function shortHash(s: string, length = 10): string {
  return createHash('sha256').update(s, 'utf8').digest('hex').slice(0, length);
}

/** True when `s` is a valid RFC 1123 DNS label (at most 63 characters). */
export function isDNSLabel(s: string): boolean {
  return s.length > 0 && s.length <= DNS_LABEL_MAX && DNS_LABEL_RE.test(s);
}

/** True when `s` is a valid Kubernetes label value (at most 63 characters; may be empty). */
export function isLabelValue(s: string): boolean {
  return s.length <= DNS_LABEL_MAX && LABEL_VALUE_RE.test(s);
}

/** The 10-hex-character key of a migration id, used in every object name and the migration label. */
export function migrationKey(migrationId: string): string {
  if (!migrationId) throw new Error('migration id must not be empty');
  return shortHash(migrationId, 10);
}

/** Lowercases and replaces every character outside [a-z0-9-] by '-', trimming '-' at both ends. */
function sanitize(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/**
 * The name of one object of a migration: `ferry-<migrationKey>-<role>[-<pvc>]`.
 *
 * `role` is a short fixed word chosen by Ferry (`server`, `client`, `rsyncd`, …). When the PVC part
 * does not fit or had to be changed to fit the DNS-label alphabet, it is cut and followed by a
 * 6-character hash of the original PVC name. The result is always a valid DNS label.
 *
 * @throws Error when `role` itself is not a short DNS label (a programming error).
 */
export function objectName(migrationId: string, role: string, pvc?: string): string {
  if (!isDNSLabel(role) || role.length > 20) throw new Error(`invalid object role ${JSON.stringify(role)}`);
  const base = `ferry-${migrationKey(migrationId)}-${role}`;
  if (pvc === undefined) return base;
  const clean = sanitize(pvc);
  const full = `${base}-${clean}`;
  if (clean === pvc && clean.length > 0 && full.length <= DNS_LABEL_MAX) return full;
  const suffix = shortHash(pvc, 6);
  const room = DNS_LABEL_MAX - base.length - 1 - suffix.length - 1;
  const cut = clean.slice(0, Math.max(0, room)).replace(/-+$/g, '');
  return cut ? `${base}-${cut}-${suffix}` : `${base}-${suffix}`;
}

/** A Kubernetes label value for an arbitrary string: the string itself when valid, else a hash. */
export function labelValue(s: string): string {
  return isLabelValue(s) && s.length > 0 ? s : `h-${shortHash(s, 16)}`;
}

/** Labels that select every object of one migration (for listing and cleanup). */
export function migrationSelector(migrationId: string): Record<string, string> {
  return { [LABELS.managedBy]: 'ferry', [LABELS.migration]: migrationKey(migrationId) };
}

/** `migrationSelector` as a label-selector string (`k=v,k=v`). */
export function migrationSelectorString(migrationId: string): string {
  return Object.entries(migrationSelector(migrationId))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** Labels of one object: the migration selector plus the role and, for per-PVC objects, the PVC. */
export function objectLabels(migrationId: string, role: string, pvc?: string): Record<string, string> {
  const labels: Record<string, string> = { ...migrationSelector(migrationId), [LABELS.role]: role };
  if (pvc !== undefined) labels[LABELS.pvc] = labelValue(pvc);
  return labels;
}
