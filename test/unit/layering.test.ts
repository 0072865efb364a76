import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

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

describe('layering', () => {
  it('keeps Temporal out of the libraries (statetransfer, kube, images, plan)', () => {
    const offenders = ['src/statetransfer', 'src/core', 'src/k8s', 'src/migration', 'src/images', 'src/plan']
      .flatMap((d) => tsFiles(join(root, d)))
      .flatMap((f) => imports(f).filter((i) => i.startsWith('@temporalio/')).map((i) => `${relative(root, f)} imports ${i}`));
    expect(offenders).toEqual([]);
  });

  it('keeps workflows free of I/O: only @temporalio/workflow, types, and pure modules', () => {
    const allowed = [/^@temporalio\/workflow$/, /^@temporalio\/common$/, /^\.\.?\//];
    const forbiddenLocal = [/kube\//, /activities\/index/, /temporal\/devserver/, /plan\/load/, /statetransfer\//];
    const offenders = tsFiles(join(root, 'src/workflows')).flatMap((f) =>
      imports(f)
        .filter((i) => !allowed.some((a) => a.test(i)) || forbiddenLocal.some((x) => x.test(i)))
        .filter((i) => !(i.includes('activities/contract') || i.includes('plan/schema') || i.includes('temporal/search-attributes')))
        .map((i) => `${relative(root, f)} imports ${i}`),
    );
    expect(offenders).toEqual([]);
  });
});
