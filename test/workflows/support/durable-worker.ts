/**
 * A real worker process for the durability test: Ferry's worker (src/worker.ts runWorker) with the
 * real workflows and the file-backed simulated clusters, so that the test can SIGKILL it and start
 * another one on the same state.
 *
 *   tsx test/workflows/support/durable-worker.ts <config.json>
 *
 * config.json: { address, taskQueue, dir, bundlePath, source, transferMs, quiesceWaitMs }.
 */
import { readFileSync } from 'node:fs';
import { NativeConnection } from '@temporalio/worker';
import { deploymentFromEnv } from '../../../src/temporal/versioning';
import { createLogger, runWorker } from '../../../src/worker';
import { FakeCluster, type SourceSpec } from './fake-cluster';

interface Config {
  address: string;
  taskQueue: string;
  dir: string;
  bundlePath: string;
  source: SourceSpec;
  transferMs: number;
  quiesceWaitMs: number;
}

async function main(): Promise<void> {
  const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Config;
  const fake = new FakeCluster({ source: config.source, dir: config.dir, transferMs: config.transferMs, heartbeatMs: 100, quiesceWaitMs: config.quiesceWaitMs });
  // A versioned worker when the test gives it a build (test/cluster/versioning.test.ts), read from the
  // environment as `ferry worker` reads it; else unversioned.
  const deployment = process.env.FERRY_BUILD_ID ? deploymentFromEnv(process.env, 'test', { embedded: false, taskQueue: config.taskQueue }) : undefined;
  const connection = await NativeConnection.connect({ address: config.address });
  await runWorker({
    connection,
    taskQueue: config.taskQueue,
    activities: fake.activities(),
    logger: createLogger(),
    workflowBundle: { codePath: config.bundlePath },
    // The next worker picks a dead worker's workflow tasks up after 1 s instead of 10 s.
    workerOptions: { stickyQueueScheduleToStartTimeout: '1s', shutdownGraceTime: '1s' },
    ...(deployment ? { deployment } : {}),
  });
  await connection.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`durable-worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
