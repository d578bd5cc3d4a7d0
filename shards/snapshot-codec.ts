// Whole-shard snapshot: deterministic bytes (same state, same bytes) framed by a magic and a
// sha256 trailer, and a decoder that rebuilds every index. Never does I/O; never accepts bytes
// it cannot fully check (it throws a SnapshotError naming what is wrong instead).

import { createHash } from 'node:crypto';
import type { ShardState, TenantBook } from './ledger-book.js';
import { SnapshotError } from './snapshot-bytes.js';
import { decodePayload } from './snapshot-reader.js';
import {
  DIGEST_BYTES, SNAPSHOT_MAGIC, SnapshotWriter, type BookColumns,
} from './snapshot-writer.js';

export { SnapshotError } from './snapshot-bytes.js';
export { SnapshotWriter } from './snapshot-writer.js';

/*
 * Layout version 3, "LSS3" (version 2 was msgpack; its per-record arrays made decoding a
 * large shard mostly garbage collection). Little-endian; column formats (strings, dict,
 * rising, values, list) are described in snapshot-columns.ts; WIDE (-1) means "the value is
 * in a list below".
 *
 *   magic "LSS3" | payload | sha256(magic ‖ payload)
 *   payload   shard u32, epoch u32, sequence f64, time f64, tenant count u32, tenants
 *   tenant    id str, accounts u32 (n), transfers u32 (m), the byte lengths of its two
 *             sections f64, f64, then the sections (tenants by id; empty ones left out)
 *     accounts: ids strings, currency dict, metadata dict, allowNegative u8×n,
 *     createdAt rising, sequence rising, postedDebits, postedCredits, pendingDebits,
 *     pendingCredits values each, wide list of [index u32, the four totals i64]
 *     (an account with any total past 2^53 - 1: WIDE in all four columns)
 *     transfers: ids strings, amount values, time rising, sequence rising, from values,
 *     to values, status u8×m,
 *     wide amounts list of [index u32, amount i64],
 *     settled list of [index u32, settleSequence f64, settleTime f64, posted f64]
 *       (post-pending and voids; posted is 0 for a void, WIDE for a wide posted amount),
 *     wide posted list of [index u32, posted i64] (settled with posted WIDE),
 *     extras list of [index u32, from str, to str, currency str, description str?,
 *       paymentTypeId str?, pending u8, timeoutSeconds f64 (-1: none), rejectCode str?]
 *   str       u32 byte length (0xffffffff: null) + UTF-8
 * Varints make a plain transfer about 15 bytes plus its id, so loading and checksumming a
 * large shard's snapshot costs a third of fixed-width columns. Derived, so they cannot
 * disagree: account histories, holds, the timeout heap, the posted amount of a posted
 * transfer (its amount) and the zero posted/settle columns of the rest.
 */

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('snapshot: column bytes are written little-endian; this host is not');
}

/** The snapshot of the whole shard now, in one go (see SnapshotWriter for steps). */
export function encodeSnapshot(state: ShardState): Uint8Array {
  const writer = new SnapshotWriter(state);
  writer.step(() => false);
  return writer.result();
}

/** sha256 hex of the snapshot bytes: equal digests mean equal states. */
export function stateDigest(state: ShardState): string {
  return createHash('sha256').update(encodeSnapshot(state)).digest('hex');
}

function unframe(bytes: Uint8Array, trailer: Trailer): Buffer {
  if (!(bytes instanceof Uint8Array)) throw new SnapshotError('input is not bytes');
  const magic = SNAPSHOT_MAGIC.length;
  if (bytes.length < magic + DIGEST_BYTES + 1) throw new SnapshotError('too short');
  for (let i = 0; i < magic; i++) {
    if (bytes[i] !== SNAPSHOT_MAGIC[i]) {
      throw new SnapshotError('bad magic (not a v3 shard snapshot)');
    }
  }
  const end = bytes.length - DIGEST_BYTES;
  if (trailer === 'verify') {
    const digest = createHash('sha256').update(bytes.subarray(0, end)).digest();
    for (let i = 0; i < DIGEST_BYTES; i++) {
      if (digest[i] !== bytes[end + i]) throw new SnapshotError('checksum mismatch (corrupt)');
    }
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset + magic, end - magic);
}

/**
 * 'verify' checks the sha256 trailer. 'store-verified' is for bytes a SnapshotStore returned:
 * its contract is to return only bytes it checked against a sha256 taken when they were saved
 * (the bytes this codec wrote, trailer included), so a second pass finds nothing new and costs
 * about 0.1 s per 140 MiB of a recovery. Everything else is checked either way.
 */
export type Trailer = 'verify' | 'store-verified';

/**
 * The state in a snapshot. `columns` (a Snapshotter's) receives each book's unchanging
 * columns by reference to `bytes`, which must then not change (see decodePayload).
 */
export function decodeSnapshot(bytes: Uint8Array, trailer: Trailer = 'verify',
  columns?: WeakMap<TenantBook, BookColumns>): ShardState {
  return decodePayload(unframe(bytes, trailer), columns);
}
