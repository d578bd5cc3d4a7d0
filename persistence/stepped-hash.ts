// SHA-256 of a large buffer one step per event-loop turn, so hashing a snapshot of hundreds of
// MiB on a shard's worker thread never holds it longer than one step. No other I/O.

import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { HASH_BYTES } from '../protocol/journal-entry.js';
import type { Snapshot } from '../protocol/storage.js';

/** Bytes hashed per turn: about half a millisecond of SHA-256. */
const STEP_BYTES = 1024 * 1024;

export async function sha256InSteps(data: Uint8Array): Promise<Buffer> {
  const hash = createHash('sha256');
  for (let from = 0; from < data.length; from += STEP_BYTES) {
    if (from > 0) await nextTurn();
    hash.update(data.subarray(from, Math.min(data.length, from + STEP_BYTES)));
  }
  return hash.digest();
}

/** sha256 of a snapshot's state: the one its writer gave, else hashed here in steps. */
export async function stateSha256(s: Snapshot): Promise<Uint8Array> {
  if (s.sha256 === undefined) return sha256InSteps(s.state);
  if (s.sha256.length !== HASH_BYTES) throw new RangeError('snapshot sha256: 32 bytes');
  return s.sha256;
}
