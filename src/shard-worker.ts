// Entry file of a shard worker thread (loaded by piscina): wires the real storage into the
// actor worker. Holds no ledger logic; configuration arrives as workerData from the host.

import { workerData } from 'node:worker_threads';
import { ActorWorker, type WorkerConfig, type WorkerTask } from '../shards/actor-worker.js';
import { openStorage, type StorageConfig } from './storage.js';

const data = workerData as { config: WorkerConfig; storage: StorageConfig };
const worker = new ActorWorker(data.config, openStorage(data.storage));

export default worker.start().then(() => (task: WorkerTask) => worker.handle(task));
