// What the gateway sees of the ledger: submit a tenant's command, get one outcome back.
// Implemented by the actor host (worker threads) and routed per shard. No I/O contract here.

import type { Command, Outcome } from '../protocol/types.js';

/** Called exactly once per submitted command, after the writes before it are durable. */
export type Reply = (outcome: Outcome) => void;

export interface LedgerPort {
  /** Queue a command for its tenant's shard; batched per worker per event-loop turn. */
  submit(tenant: string, cmd: Command, reply: Reply): void;
  /** True when every shard this pod owns is recovered and accepting commands. */
  isReady(): boolean;
  /** Stop taking commands, answer everything queued, flush, stop the workers. */
  close(): Promise<void>;
}
