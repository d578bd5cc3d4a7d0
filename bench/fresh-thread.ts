// Runs a bench module in a worker thread of its own and resolves with the first message it
// posts: a fresh heap, as a restarted shard worker or a pod taking a shard over has.

import { Worker } from 'node:worker_threads';

export function inFreshThread<T>(module: URL, task: unknown, what: string): Promise<T> {
  const worker = new Worker(module, { workerData: task,
    resourceLimits: { maxOldGenerationSizeMb: 16_384 } });
  return new Promise((resolve, reject) => {
    worker.once('message', (result: T) => resolve(result));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`${what} exited with ${code}`)));
  });
}
