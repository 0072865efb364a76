/**
 * The Temporal UI as the operator's screen (issue 12 §2), in a real browser: Debian's chromium,
 * headless, driven by playwright-core, against the Web UI of a real Temporal dev server (the temporal
 * CLI of `npm run setup`), with the simulated clusters of the workflow tests behind the activities.
 *
 * A migration of two namespaces with manual cutover is started the way `ferry migrate` starts it
 * (startMigration: static summary and details, FerryMigration search attribute); one PVC's sync fails
 * for lack of space, so the migration waits for two operator answers: a decision on that PVC and the
 * cutover of the other namespace. The test types `FerryMigration="<id>"` into the UI's query box,
 * checks the list (the migration and its namespace workflows, with their summaries), opens the
 * migration and finds its current details — the waiting-for lines with the exact `ferry` commands —
 * then opens the namespace waiting for cutover. Screenshots go to $TMPDIR/ferry-ui-screenshots, or
 * with FERRY_UI_SCREENSHOTS=docs/ui to the README's (docs/ui/*.png).
 *
 * Skipped with a message when chromium or the temporal CLI is missing, unless FERRY_REQUIRE_TEMPORAL=1
 * (CI), which makes it fail instead.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, type Worker } from '@temporalio/worker';
import { chromium, type Browser, type Page } from 'playwright-core';
import { FailureType } from '../../src/core/types';
import { startMigration, type TemporalSession } from '../../src/cli/operations';
import { findTemporalBinary } from '../../src/temporal/devserver';
import { createWorker } from '../../src/worker';
import { migrationStateQuery, namespaceStateQuery, namespaceWorkflowId } from '../../src/workflows/definitions';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
import { FakeCluster, type SourceSpec } from '../workflows/support/fake-cluster';
import { TEST_TUNING, testPlan, unique, waitFor, workflowBundle } from '../workflows/support/env';

const CHROMIUM = process.env.FERRY_CHROMIUM || '/usr/bin/chromium';
/** Where the screenshots go: a temporary directory, or docs/ui to refresh the README's (FERRY_UI_SCREENSHOTS=docs/ui). */
const SHOTS = resolve(process.env.FERRY_UI_SCREENSHOTS || join(tmpdir(), 'ferry-ui-screenshots'));
const required = process.env.FERRY_REQUIRE_TEMPORAL === '1';

function missingPiece(): string | undefined {
  if (!existsSync(CHROMIUM)) return `chromium not found at ${CHROMIUM} (apt-get install chromium, or run hack/setup.sh; FERRY_CHROMIUM overrides the path)`;
  if (!findTemporalBinary()) return 'the temporal CLI is not installed (npm run setup)';
  return undefined;
}
const missing = missingPiece();
if (missing && !required) console.warn(`SKIPPED test/ui/temporal-ui.test.ts: ${missing}; set FERRY_REQUIRE_TEMPORAL=1 to fail instead`);
const describeUI = missing && !required ? describe.skip : describe;

jest.setTimeout(120_000);

/** A free TCP port on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const SOURCE: SourceSpec = {
  shop: {
    pvcs: [
      { name: 'data', bytes: 1_500_000 },
      { name: 'logs', bytes: 300_000 },
    ],
    workloads: [{ name: 'web', replicas: 2 }],
  },
  blog: { pvcs: [{ name: 'content', bytes: 700_000 }], workloads: [{ name: 'wordpress', replicas: 1 }] },
};

describeUI('the Temporal UI shows what a migration is doing', () => {
  let env: TestWorkflowEnvironment;
  let uiUrl: string;
  let worker: Worker;
  let running: Promise<void>;
  let browser: Browser;
  let page: Page;
  const migrationId = unique('ui-mig');

  beforeAll(async () => {
    if (missing) throw new Error(`FERRY_REQUIRE_TEMPORAL=1 but ${missing}`);
    try {
      Runtime.install({ logger: new DefaultLogger('ERROR') });
    } catch {
      // Already installed.
    }
    const uiPort = await freePort();
    [env] = await Promise.all([
      TestWorkflowEnvironment.createLocal({
        server: {
          executable: { type: 'existing-path', path: findTemporalBinary()! },
          searchAttributes: Object.values(SEARCH_ATTRIBUTES),
          ui: true,
          uiPort,
          log: { format: 'pretty', level: 'error' },
        },
      }),
      workflowBundle(),
    ]);
    uiUrl = `http://127.0.0.1:${uiPort}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    mkdirSync(SHOTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    if (worker) {
      worker.shutdown();
      await running.catch(() => undefined);
    }
    await env?.teardown();
  });

  test('filter by FerryMigration, open the running migration, read its current details', async () => {
    const fake = new FakeCluster({ source: SOURCE, transferMs: 200 });
    // blog/content's first sync fails for lack of space (not retried): it waits for a decision.
    fake.failTransfer({ namespace: 'blog', pvc: 'content', times: 1, type: FailureType.NoSpace, message: 'No space left on device (destination PVC content, 1 Gi)' });
    const taskQueue = unique('ui-tq');
    worker = await createWorker({ connection: env.nativeConnection, taskQueue, activities: fake.activities(), workflowBundle: await workflowBundle() });
    running = worker.run();
    const session: TemporalSession = { client: env.client, address: env.address, namespace: 'default', taskQueue, close: async () => undefined };
    const plan = testPlan({ namespaces: ['shop', 'blog:blog-new'], cutover: 'manual', stagePasses: 1, stageIntervalSeconds: 3600 });
    const handle = await startMigration(session, plan, migrationId, TEST_TUNING);

    // The state the UI must show: shop ready for cutover, blog/content awaiting a decision.
    await waitFor(
      'shop ready for cutover and blog/content awaiting a decision',
      async () => {
        const st = await handle.query(migrationStateQuery);
        const shop = st.namespaces.find((n) => n.source === 'shop');
        const blog = st.namespaces.find((n) => n.source === 'blog');
        return shop?.phase === 'ready-for-cutover' && blog?.awaitingDecision.includes('content') && shop.pvcsSynced === 2;
      },
      60_000,
    );
    const cutoverCommand = `ferry cutover ${migrationId} --namespace shop`;
    const retryCommand = `ferry retry ${migrationId} --pvc content --namespace blog`;
    expect((await env.client.workflow.getHandle(namespaceWorkflowId(migrationId, 'shop')).query(namespaceStateQuery)).phase).toBe('ready-for-cutover');
    // Another migration on the same server, which the filter must leave out (its preflight fails: no such namespace).
    const decoyId = unique('ui-decoy');
    const decoy = await startMigration(session, testPlan({ namespaces: ['nowhere'] }), decoyId, TEST_TUNING);
    await decoy.result().catch(() => undefined);

    // 1. The list, filtered with the query box.
    await page.goto(`${uiUrl}/namespaces/default/workflows`, { waitUntil: 'networkidle' });
    const box = await queryBox(page);
    await box.fill(`FerryMigration="${migrationId}"`);
    await box.press('Enter');
    await page.waitForURL(/query=/, { timeout: 15_000 });
    // The rows' workflow ids (their selection checkboxes are labelled "Select Workflow <id>", with '/' as &#x2F;).
    const listed = async () =>
      (await page.locator('input[aria-label^="Select Workflow "]').evaluateAll((els) => els.map((e) => e.getAttribute('aria-label')!.slice('Select Workflow '.length))))
        .map((id) => id.replace(/&#x2F;/g, '/'))
        .sort();
    // The migration, its namespace workflows and its PVC syncs (children carry FerryMigration too): 3 + 3 syncs so far.
    const ids = await waitFor('the filtered list', async () => {
      const l = await listed();
      return l.length >= 6 && !l.includes(decoyId) ? l : undefined;
    }, 30_000);
    expect(ids.every((id) => id === migrationId || id.startsWith(`${migrationId}/`))).toBe(true);
    expect(ids).toEqual(expect.arrayContaining([migrationId, `${migrationId}/ns/shop`, `${migrationId}/ns/blog`, `${migrationId}/ns/blog/pvc/content/1`]));
    await page.screenshot({ path: join(SHOTS, 'workflow-list.png') });

    // 2. The migration: its summary, static details and current details.
    await page.getByRole('link', { name: migrationId, exact: true }).first().click();
    await page.waitForURL((u) => decodeURIComponent(u.pathname).includes(`/workflows/${migrationId}/`), { timeout: 15_000 });
    // The workflow page's "User Metadata" tab shows the summary, the static details and the current details.
    await page.getByText('User Metadata', { exact: true }).first().click();
    await showing(page, 'the migration current details', cutoverCommand);
    const migrationText = await pageText(page);
    expect(migrationText).toContain(`Ferry migration ${migrationId}: shop, blog → blog-new (src → dst)`);
    expect(migrationText).toContain(cutoverCommand);
    expect(migrationText).toContain(retryCommand);
    expect(migrationText).toMatch(/awaiting-decision/);
    await page.screenshot({ path: join(SHOTS, 'migration-details.png'), fullPage: true });

    // 3. The namespace waiting for cutover.
    await page.goto(`${uiUrl}/namespaces/default/workflows/${encodeURIComponent(namespaceWorkflowId(migrationId, 'shop'))}`, { waitUntil: 'domcontentloaded' });
    await page.getByText('User Metadata', { exact: true }).first().click();
    await showing(page, 'the namespace current details', 'Waiting for the operator to cut over');
    const nsText = await pageText(page);
    expect(nsText).toContain(`Namespace shop of migration ${migrationId} (2 PVCs)`);
    expect(nsText).toContain(cutoverCommand);
    expect(nsText).toContain('PVCs synced: 2 of 2');
    expect(nsText).toContain('PVCs: data (1.43 MiB), logs (293 KiB)'); // its static details
    expect(nsText).toContain(`PVC shop/data: stage sync (pass 1) of migration ${migrationId}`); // its children's summaries
    expect(nsText).toContain('transfer server in dst/shop'); // its activities' summaries
    expect(nsText).toMatch(/Projected downtime/);
    await page.screenshot({ path: join(SHOTS, 'namespace-details.png'), fullPage: true });

    await handle.cancel();
  });
});

/** The text the page shows, its frames included (the UI renders markdown in sandboxed iframes). */
async function pageText(page: Page): Promise<string> {
  const texts = await Promise.all(page.frames().map((f) => f.locator('body').innerText().catch(() => '')));
  return texts.join('\n');
}

/** Waits until the page shows `text`; on failure, saves a screenshot and reports what the page shows. */
async function showing(page: Page, what: string, text: string): Promise<void> {
  try {
    await waitFor(what, async () => (await pageText(page)).includes(text), 30_000);
  } catch (e) {
    await page.screenshot({ path: join(SHOTS, 'debug-failure.png'), fullPage: true });
    throw new Error(`${(e as Error).message} (${JSON.stringify(text)} not on ${page.url()}; screenshot ${join(SHOTS, 'debug-failure.png')}). The page shows:\n${(await pageText(page)).slice(0, 3000)}`);
  }
}

/** The workflow list's query box (the UI's filter input in its raw-query form). */
async function queryBox(page: Page) {
  const toggle = page.getByTestId('toggle-manual-query');
  if ((await toggle.count()) > 0) await toggle.first().click();
  const candidates = [
    page.locator('#workflow-advanced-search'),
    page.getByPlaceholder(/query|filter|search/i),
    page.locator('input[type="search"]'),
  ];
  for (const c of candidates) {
    if ((await c.count()) > 0 && (await c.first().isVisible())) return c.first();
  }
  const controls = await page.locator('input, textarea, button').evaluateAll((els) =>
    els.map((e) => `${e.tagName} id=${e.id} name=${e.getAttribute('name')} placeholder=${e.getAttribute('placeholder')} aria=${e.getAttribute('aria-label')} testid=${e.getAttribute('data-testid')} text=${(e.textContent ?? '').trim().slice(0, 40)}`),
  );
  await page.screenshot({ path: join(SHOTS, 'debug-no-query-box.png') });
  throw new Error(`no query box found on ${page.url()}; controls:\n${controls.join('\n')}`);
}
