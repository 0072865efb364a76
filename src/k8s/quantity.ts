/**
 * Kubernetes resource quantities (the `resources.requests.storage` of a PVC) as byte counts.
 *
 * Grammar (k8s.io/apimachinery/pkg/api/resource, "Quantity"): a decimal number, optionally signed,
 * followed by a binary suffix (Ki Mi Gi Ti Pi Ei: powers of 1024), a decimal suffix (k M G T P E:
 * powers of 1000; also `m` = 1/1000), a decimal exponent (`e3`, `E6`) or nothing. Kubernetes spells
 * kilo `k`; `K` is accepted here as well because operators write it.
 */
import { FerryError } from '../core/errors';

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { m: 1e-3, '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
const QUANTITY_RE = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|m|k|K|M|G|T|P|E)?$/;

/** Thrown for a string that is not a Kubernetes quantity. */
export class QuantityError extends FerryError {
  constructor(quantity: string) {
    super('config', `${JSON.stringify(quantity)} is not a Kubernetes quantity (e.g. "10Gi", "500M", "1073741824")`);
    this.name = 'QuantityError';
  }
}

/**
 * The number of bytes of a quantity, rounded up to a whole byte ("1.5Ki" = 1536, "1m" = 1).
 * @throws QuantityError for anything else, including negative values and empty strings.
 */
export function parseQuantity(quantity: string): number {
  const q = typeof quantity === 'string' ? quantity.trim() : '';
  const m = QUANTITY_RE.exec(q);
  if (!m) throw new QuantityError(String(quantity));
  const value = Number(m[1]);
  const suffix = m[2] ?? '';
  let factor: number;
  if (suffix in BINARY) factor = BINARY[suffix]!;
  else if (/^[eE]/.test(suffix)) factor = 10 ** Number(suffix.slice(1));
  else factor = DECIMAL[suffix]!;
  const bytes = value * factor;
  if (!Number.isFinite(bytes) || bytes < 0) throw new QuantityError(String(quantity));
  // Guard against float noise such as 1.1 * 1e9 = 1100000000.0000002.
  const rounded = Math.round(bytes);
  return Math.abs(bytes - rounded) < 1e-6 * Math.max(1, bytes) ? rounded : Math.ceil(bytes);
}

/**
 * A compact quantity string for a byte count: the largest binary suffix that divides it exactly
 * (10737418240 → "10Gi"), else the plain number.
 */
export function formatBytesQuantity(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`not a byte count: ${bytes}`);
  for (const [suffix, factor] of Object.entries(BINARY).reverse()) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${suffix}`;
  }
  return String(bytes);
}
