// msgpackr codec for outcomes crossing worker threads or pods (one message per batch; see
// envelope-codec.ts for the commands, reply-codec.ts for compact answers). Trusted peers
// only: never use it on client bytes (frames.ts does).

import { Packr, Unpackr } from 'msgpackr';
import type { Outcome } from './types.js';

// Records (msgpackr's inline key lists) make a batch of same-shaped outcomes about 3x
// smaller and 2-3x faster than plain maps. No shared structures: each message carries its
// own definitions, so any Unpackr on any thread decodes it with no state to keep in step.
// bigint stays bigint: msgpackr writes it as int64 and reads int64 back as bigint.
const packr = new Packr({ useRecords: true });
const unpackr = new Unpackr({ useRecords: true, int64AsType: 'bigint' });

/**
 * The Packr reuses one buffer and returns views into it; transferring such a view's
 * ArrayBuffer would detach the Packr's buffer. Copying into a new Uint8Array hands back
 * bytes with their own exactly-sized ArrayBuffer, safe for postMessage's transfer list.
 * (Not .slice(): pack returns a Buffer, whose slice() is a view, not a copy.)
 */
function packOwned(value: unknown): Uint8Array<ArrayBuffer> {
  return new Uint8Array(packr.pack(value));
}

function unpackArray(bytes: Uint8Array, what: string): unknown[] {
  const value: unknown = unpackr.unpack(bytes);
  if (!Array.isArray(value)) {
    // Only our own encoder writes these bytes: anything else is a bug, not bad input.
    throw new TypeError(`thread-codec: ${what} message is not an array`);
  }
  return value;
}

export function encodeOutcomes(outcomes: readonly Outcome[]): Uint8Array<ArrayBuffer> {
  return packOwned(outcomes);
}

/** Trusts its input: the bytes come from encodeOutcomes in this process. */
export function decodeOutcomes(bytes: Uint8Array): Outcome[] {
  return unpackArray(bytes, 'outcome') as Outcome[];
}
