// What the gateways need of the ledger, and the count of commands they have in flight so a
// shutdown can stop taking new ones and wait for the rest. Holds no request data.

import type { HostedShard } from '../../shards/actor-host.js';
import type { LedgerPort } from '../../shards/ledger-port.js';
import type { ClusterAdmin } from '../cluster/cluster-admin.js';

/** The actor host as the gateway sees it; the extras are optional so a stub can serve. */
export interface LedgerHost extends LedgerPort {
  queueDepth?(): number;
  journalLag?(): number;
  shards?(): Promise<HostedShard[]>;
  /** multi-pod mode: the directory's view, moves and rebalancing for the admin API */
  cluster?: ClusterAdmin;
}

export class Traffic {
  inflight = 0;
  shuttingDown = false;
  private waiters: Array<() => void> = [];

  begin(): void {
    this.inflight++;
  }

  end(): void {
    this.inflight--;
    if (this.inflight === 0 && this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves true when nothing is in flight, false if `timeoutMs` passes first. */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.inflight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
