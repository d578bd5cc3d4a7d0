// Forwards commands for shards owned by other pods: per target pod per event-loop turn ONE
// internal POST of a msgpack batch over pooled keep-alive connections. Never retries a batch
// on its own: a failure answers 'shard_unavailable' (retryable; ids make the retry safe).

import http from 'node:http';
import { errorRecord, type ErrorCode } from '../../protocol/errors.js';
import { encodeEnvelopes } from '../../protocol/envelope-codec.js';
import { decodeOutcomes } from '../../protocol/thread-codec.js';
import type { Command, Envelope, Outcome } from '../../protocol/types.js';
import type { Reply } from '../../shards/ledger-port.js';

export const INTERNAL_COMMANDS_PATH = '/internal/v1/commands';
export const HOPS_HEADER = 'x-ledger-hops';
/** a forwarded command is forwarded again at most once (a stale directory at the sender) */
export const HOPS_MAX = 2;

const BATCH_ITEMS_MAX = 8192;
const INFLIGHT_PER_TARGET_MAX = 8;
const QUEUED_PER_TARGET_MAX = 100_000;
const REQUEST_TIMEOUT_MS = 15_000;
const REPLY_BYTES_MAX = 256 * 1024 * 1024;

interface Item {
  env: Envelope;
  reply: Reply;
}

class Target {
  /** items by hop count of the batch they will ride in */
  queue: Item[] = [];
  hops = 1;
  inflight = 0;
  constructor(readonly address: string) {}
}

export interface ForwarderOptions {
  token: string;
  onForwarded?: (items: number) => void;
  onFailure?: (address: string, err: Error) => void;
}

export class Forwarder {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  /** per address and hop count: `${hops} ${address}` */
  private readonly targets = new Map<string, Target>();
  private scheduled = false;
  private closed = false;

  constructor(private readonly opts: ForwarderOptions) {}

  /** Queues one command for the pod at `address`; `hops` counts this forwarding too. */
  send(address: string, hops: number, tenant: string, cmd: Command, reply: Reply): void {
    if (this.closed) return reply(failure('shutting_down'));
    const key = `${hops} ${address}`;
    let target = this.targets.get(key);
    if (target === undefined) {
      target = new Target(address);
      target.hops = hops;
      this.targets.set(key, target);
    }
    if (target.queue.length >= QUEUED_PER_TARGET_MAX) return reply(failure('overloaded'));
    target.queue.push({ env: { tenant, cmd }, reply });
    this.schedule();
  }

  close(): void {
    this.closed = true;
    this.agent.destroy();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    for (const target of this.targets.values()) {
      while (target.queue.length > 0 && target.inflight < INFLIGHT_PER_TARGET_MAX) {
        const items = target.queue.splice(0, BATCH_ITEMS_MAX);
        target.inflight++;
        this.post(target, items).then(
          (outcomes) => this.settle(target, items, outcomes),
          (err: unknown) => this.settle(target, items, asError(err)),
        );
      }
    }
  }

  private settle(target: Target, items: Item[], result: Outcome[] | Error): void {
    target.inflight--;
    if (result instanceof Error) {
      this.opts.onFailure?.(target.address, result);
      const outcome = failure('shard_unavailable', `forwarding failed: ${result.message}`);
      for (const item of items) item.reply(outcome);
    } else {
      this.opts.onForwarded?.(items.length);
      for (let i = 0; i < items.length; i++) (items[i] as Item).reply(result[i] as Outcome);
    }
    if (target.queue.length > 0) this.schedule();
  }

  private post(target: Target, items: Item[]): Promise<Outcome[]> {
    const body = encodeEnvelopes(items.map((i) => i.env));
    const url = new URL(INTERNAL_COMMANDS_PATH, target.address);
    return new Promise((resolve, reject) => {
      const req = http.request(url, {
        method: 'POST',
        agent: this.agent,
        timeout: REQUEST_TIMEOUT_MS,
        headers: {
          authorization: `Bearer ${this.opts.token}`,
          'content-type': 'application/msgpack',
          'content-length': String(body.byteLength),
          [HOPS_HEADER]: String(target.hops),
        },
      });
      req.on('timeout', () => req.destroy(new Error('internal request timed out')));
      req.on('error', reject);
      req.on('response', (res) => {
        readAll(res).then((bytes) => {
          if (res.statusCode !== 200) {
            return reject(new Error(`${target.address} answered ${res.statusCode}`));
          }
          const outcomes = decodeOutcomes(bytes);
          if (outcomes.length !== items.length) {
            return reject(new Error(`${outcomes.length} outcomes for ${items.length} commands`));
          }
          resolve(outcomes);
        }, reject);
      });
      req.end(body);
    });
  }
}

function readAll(res: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > REPLY_BYTES_MAX) res.destroy(new Error('internal reply too large'));
      else chunks.push(chunk);
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('internal reply aborted')));
  });
}

function failure(code: ErrorCode, message?: string): Outcome {
  return { ok: false, error: errorRecord(code, message) };
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
