/**
 * A versioned Ferry worker process for test/cluster/versioning.test.ts: Ferry's runWorker with the
 * deployment taken from the environment exactly as `ferry worker` takes it (FERRY_BUILD_ID,
 * FERRY_SET_CURRENT, FERRY_DEPLOYMENT_NAME: src/temporal/versioning.ts deploymentFromEnv), the real
 * workflows (a pre-built bundle) and the file-backed simulated clusters of the workflow tests.
 *
 *   tsx test/cluster/support/versioned-worker.ts <config.json>
 *
 * config.json: { address, taskQueue, dir, bundlePath, source, transferMs, quiesceWaitMs }.
 */
import { readFileSync } from 'node:fs';
import { NativeConnection } from '@temporalio/worker';
import { deploymentFromEnv } from '../../../src/temporal/versioning';
import { createLogger, runWorker } from '../../../src/worker';
import { FakeCluster, type SourceSpec } from '../../workflows/support/fake-cluster';

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
  const deployment = deploymentFromEnv(process.env, 'test', { embedded: false, taskQueue: config.taskQueue });
  const connection = await NativeConnection.connect({ address: config.address });
  await runWorker({
    connection,
    taskQueue: config.taskQueue,
    activities: fake.activities(),
    logger: createLogger(),
    workflowBundle: { codePath: config.bundlePath },
    workerOptions: { shutdownGraceTime: '1s' },
    ...(deployment ? { deployment } : {}),
  });
  await connection.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`versioned-worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
