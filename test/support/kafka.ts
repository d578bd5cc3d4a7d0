// Test helper: a Kafka-protocol broker from librdkafka's mock cluster (Debian's kcat), installed
// when missing; pause/resume to simulate an outage. Stops only the process it started.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { Kafka, logLevel, type Consumer, type KafkaMessage } from 'kafkajs';

/*
 * `kcat -X test.mock.num.brokers=3 -b x:1 -P -t <topic>` starts a 3-broker mock cluster inside
 * kcat and logs (notice level, stderr) "Mock cluster enabled: original bootstrap.servers ...
 * replaced with 127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3". Producer mode (-P) with a stdin that
 * we never write keeps it idle: a consumer (-C, as in DESIGN.md) would fetch and print every
 * event we produce and compete for the CPU. `-d mock` would log every request; we parse the
 * notice instead, and keep draining stderr so a full pipe can never stall the broker.
 * When this process dies, kcat's stdin closes and kcat exits: no broker outlives its test.
 *
 * Mock facts the tests rely on: topics are auto-created with 4 partitions (replication 3);
 * non-idempotent producers with acks=-1 and gzip work; partitions keep only their newest
 * messages (a few MB), so tests produce modest volumes and consume from the beginning.
 */

export interface MockKafka {
  brokers: string[];
  topic: string;
  /** SIGSTOP: the broker stops answering (connections stay open, requests hang) */
  pause(): void;
  /** SIGCONT */
  resume(): void;
  stop(): Promise<void>;
}

function ensureKcat(): void {
  try {
    execFileSync('kcat', ['-V'], { stdio: 'pipe' });
    return;
  } catch {
    // not installed: install below
  }
  const install = (): void => {
    execFileSync('apt-get', ['install', '-y', 'kcat'], { stdio: 'pipe' });
  };
  try {
    install();
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'pipe' });
    install();
  }
}

function waitForBootstrap(proc: ChildProcess): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(
      () => reject(new Error(`kcat mock: no bootstrap in 10 s: ${log}`)), 10_000);
    proc.once('exit', (code) => reject(new Error(`kcat exited (${code}): ${log}`)));
    proc.stderr?.on('data', (d: Buffer) => {
      if (log.length < 64 * 1024) log += d.toString();
      const m = /replaced with (\S+)|bootstrap\.servers=(\S+)/.exec(log);
      const list = m?.[1] ?? m?.[2];
      if (list !== undefined) {
        clearTimeout(timer);
        resolve(list.split(','));
      }
    });
  });
}

/** Starts a fresh 3-broker mock cluster (empty, on new ports). */
export async function startMockKafka(topic = 'ledger.events'): Promise<MockKafka> {
  ensureKcat();
  const proc = spawn('kcat', ['-X', 'test.mock.num.brokers=3', '-b', 'x:1', '-P', '-t', topic], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const brokers = await waitForBootstrap(proc);
  const pid = proc.pid;
  if (pid === undefined) throw new Error('kcat: no pid');
  let stopped = false;
  return {
    brokers,
    topic,
    pause: () => process.kill(pid, 'SIGSTOP'),
    resume: () => process.kill(pid, 'SIGCONT'),
    async stop() {
      if (stopped) return;
      stopped = true;
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      process.kill(pid, 'SIGCONT');
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** One consumed message with the fields the checks need. */
export interface Consumed {
  partition: number;
  offset: string;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
}

function headersOf(m: KafkaMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    if (v !== undefined) out[k] = Array.isArray(v) ? String(v[0]) : String(v);
  }
  return out;
}

/** A consumer group reading `topic` from the beginning into `sink`, until stop(). */
export async function consumeAll(
  brokers: string[],
  topic: string,
  sink: (m: Consumed) => void,
): Promise<{ stop(): Promise<void> }> {
  const kafka = new Kafka({ brokers, clientId: 'test-consumer', logLevel: logLevel.NOTHING });
  const consumer: Consumer = kafka.consumer({
    groupId: `test-${Math.random().toString(36).slice(2)}`,
    maxWaitTimeInMs: 100,
    retry: { retries: 30, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        sink({
          partition: batch.partition, offset: m.offset, key: m.key?.toString() ?? '',
          value: m.value ?? Buffer.alloc(0), headers: headersOf(m),
        });
      }
    },
  });
  return { stop: () => consumer.disconnect() };
}
