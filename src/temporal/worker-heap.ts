/**
 * The V8 heap flags the worker process runs with: `--max-semi-space-size=2` (MiB per semi-space of the
 * young generation; Node's default lets it grow to 16 MiB, two of them resident) and
 * `--max-old-space-size=512` (MiB). A smaller old-generation limit also makes V8 grow the heap by a
 * smaller factor after each full collection (V8's heap controller interpolates the growing factor
 * between 2 and 4 over limits of 128 MiB–1 GiB; at Node's default limit, 4 GiB here, it is 4), so the
 * worker collects its garbage before it piles up.
 *
 * Measured with bench:migration, 200 PVCs in one namespace on the lab (2026-12-05): the worker's live
 * heap after a full collection stays near 64 MiB (main thread) + 24 MiB (workflow thread) all along,
 * yet its RSS peaked at 393–398 MiB with Node's defaults (old space grew to 157 MiB of mostly
 * garbage, new space 32 MiB) and at 272 MiB with these flags (old space ≤ 73 MiB, new space 4 MiB),
 * total time and final sync no slower. Temporal's workflow cache was not the cause: with
 * maxCachedWorkflows 40 the RSS peak was 398 MiB.
 *
 * They are command-line flags, so they apply where Ferry starts the worker: the `ferry` command's
 * shebang (src/client.ts, `env -S`), the worker image's ENTRYPOINT (Containerfile), `npm run worker`,
 * the demo (hack/demo.sh) and the test and bench harness (hack/e2e/lib.ts startWorkerProcess). Command-line flags win over NODE_OPTIONS; to run
 * with others, start node yourself: `node --max-old-space-size=2048 dist/client.js worker`.
 */
export const WORKER_NODE_FLAGS: readonly string[] = Object.freeze(['--max-semi-space-size=2', '--max-old-space-size=512']);
