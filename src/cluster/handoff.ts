// The hand-off lifecycle of one shard as this pod sees it, as a table of legal transitions
// that throws on any other. Holds the commands waiting out a transition; never routes them.

import type { Command } from '../../protocol/types.js';
import type { Reply } from '../../shards/ledger-port.js';

/*
 *   absent ──claim won──▶ acquiring ──recovered──▶ serving ──move──▶ handing-off
 *     ▲                      │                       │                  │  │
 *     └──────claim lost / recovery failed────────────┘ (lost: fenced,  │  │
 *     ▲                                                 worker died)    │  │
 *     └──────────────── target took it / lost it ───────────────────────┘  │
 *                          serving ◀── target failed, we reclaimed ─────────┘
 *
 * While 'acquiring' or 'handing-off' new commands for the shard are HELD (bounded), not
 * refused: they are submitted locally once serving, or forwarded to the new owner.
 */
export const HANDOFF_STATES = ['absent', 'acquiring', 'serving', 'handing-off'] as const;
export type HandoffState = (typeof HANDOFF_STATES)[number];

const LEGAL: Readonly<Record<HandoffState, readonly HandoffState[]>> = {
  absent: ['acquiring'],
  acquiring: ['serving', 'absent'],
  serving: ['handing-off', 'absent'],
  'handing-off': ['absent', 'serving'],
};

export class IllegalTransitionError extends Error {
  readonly code = 'illegal_transition';
  constructor(shard: number, from: HandoffState, to: HandoffState) {
    super(`shard ${shard}: no transition from ${from} to ${to}`);
    this.name = 'IllegalTransitionError';
  }
}

export interface HeldCommand {
  tenant: string;
  cmd: Command;
  reply: Reply;
  hops: number;
}

/** Held commands per shard before new ones are refused (retryable) instead of queued. */
export const HELD_MAX = 20_000;

export class ShardHandoff {
  state: HandoffState = 'absent';
  /** the epoch this pod holds while acquiring, serving or handing off */
  epoch = 0;
  held: HeldCommand[] = [];

  constructor(readonly shard: number) {}

  to(next: HandoffState): void {
    if (!LEGAL[this.state].includes(next)) {
      throw new IllegalTransitionError(this.shard, this.state, next);
    }
    this.state = next;
  }

  /** Holds a command; false when the bound is reached (the caller refuses it). */
  hold(item: HeldCommand): boolean {
    if (this.held.length >= HELD_MAX) return false;
    this.held.push(item);
    return true;
  }

  takeHeld(): HeldCommand[] {
    const held = this.held;
    this.held = [];
    return held;
  }
}
