import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = join(__dirname, '..', '..');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/(?:from|import|require\()\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);
}

/**
 * The layers of src/, lowest first: a module may import only modules of a LOWER layer (or its own
 * folder), so no import cycle between folders can exist. The activity contract (activities/contract.ts)
 * is a layer of its own: the workflows import it, and the activities that implement it sit above the
 * workflows (one of them describes namespace workflows through Temporal, temporal/).
 */
const LAYERS = ['core', 'statetransfer', 'k8s', 'plan', 'images', 'migration', 'metrics', 'contract', 'workflows', 'temporal', 'activities', 'worker', 'cli', 'client'];

/** The layer of a source file: its top folder under src/, or its own name for src/worker.ts and
 * src/client.ts, and `contract` for activities/contract.ts. */
function layerOf(file: string): string {
  const rel = relative(join(root, 'src'), file);
  if (rel === join('activities', 'contract.ts')) return 'contract';
  const [top] = rel.split('/');
  return top!.replace(/\.ts$/, '');
}

/** Relative imports of `file` resolved to files (with .ts or /index.ts). */
function localImports(file: string): string[] {
  return imports(file)
    .filter((i) => i.startsWith('.'))
    .map((i) => {
      const base = resolve(dirname(file), i);
      for (const c of [`${base}.ts`, join(base, 'index.ts')]) {
        try {
          if (statSync(c).isFile()) return c;
        } catch {
          /* next candidate */
        }
      }
      return base;
    });
}

describe('layering', () => {
  it('ranks every folder of src/ (a new folder must be given its layer here)', () => {
    const tops = new Set(tsFiles(join(root, 'src')).map(layerOf));
    expect([...tops].filter((t) => !LAYERS.includes(t))).toEqual([]);
  });

  it('imports only downward: core <- statetransfer <- k8s <- plan <- images <- migration <- metrics <- contract <- workflows <- temporal <- activities <- worker <- cli', () => {
    const offenders = tsFiles(join(root, 'src')).flatMap((f) => {
      const from = layerOf(f);
      return localImports(f)
        .filter((t) => {
          const to = layerOf(t);
          return to !== from && LAYERS.indexOf(to) > LAYERS.indexOf(from);
        })
        .map((t) => `${relative(root, f)} (${from}) imports ${relative(root, t)} (${layerOf(t)})`);
    });
    expect(offenders).toEqual([]);
  });

  it('keeps the workflows on core, plan and the activity contract only', () => {
    const offenders = tsFiles(join(root, 'src/workflows')).flatMap((f) =>
      localImports(f)
        .filter((t) => !['core', 'plan', 'contract', 'workflows'].includes(layerOf(t)))
        .map((t) => `${relative(root, f)} imports ${relative(root, t)}`),
    );
    expect(offenders).toEqual([]);
  });

  it('keeps Temporal out of the libraries (core, statetransfer, k8s, migration, images, plan, metrics)', () => {
    const offenders = ['src/statetransfer', 'src/core', 'src/k8s', 'src/migration', 'src/images', 'src/plan', 'src/metrics']
      .flatMap((d) => tsFiles(join(root, d)))
      .flatMap((f) => imports(f).filter((i) => i.startsWith('@temporalio/')).map((i) => `${relative(root, f)} imports ${i}`));
    expect(offenders).toEqual([]);
  });

  it('keeps workflows free of I/O: only @temporalio/workflow, types, and pure modules', () => {
    const allowed = [/^@temporalio\/workflow$/, /^@temporalio\/common$/, /^\.\.?\//];
    const forbiddenLocal = [/k8s\//, /migration\//, /activities\/index/, /temporal\//, /plan\/load/, /statetransfer\//];
    const offenders = tsFiles(join(root, 'src/workflows')).flatMap((f) =>
      imports(f)
        .filter((i) => !allowed.some((a) => a.test(i)) || forbiddenLocal.some((x) => x.test(i)))
        .filter((i) => !(i.includes('activities/contract') || i.includes('plan/schema')))
        .map((i) => `${relative(root, f)} imports ${i}`),
    );
    expect(offenders).toEqual([]);
  });
});
