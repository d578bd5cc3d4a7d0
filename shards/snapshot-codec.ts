// Whole-shard snapshot: deterministic msgpackr bytes (same state, same bytes) framed by a magic
// and a sha256 trailer, and a decoder that rebuilds every index. Never does I/O; never accepts
// bytes it cannot fully check (it throws an Error naming what is wrong instead).

import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { isErrorCode, type ErrorCode } from '../protocol/errors.js';
import { ENTRY_KINDS } from '../protocol/journal-entry.js';
import type { EntryKind } from '../protocol/types.js';
import {
  Account,
  ShardState,
  Status,
  TenantBook,
  TransferRecord,
  isStatusCode,
  type HistoryRow,
} from './ledger-book.js';
import { compareTimeouts } from './timeout-heap.js';

/** "LSS1": ledger shard snapshot, layout version 1. */
const MAGIC = new Uint8Array([0x4c, 0x53, 0x53, 0x31]);
const DIGEST_BYTES = 32;
// Records/structured clone off: plain msgpack arrays, so the bytes depend on the values only.
const packr = new Packr({ useRecords: false, structuredClone: false, moreTypes: false });

/*
 * Payload layout (msgpack arrays, bigint as int64):
 *   [shard, epoch, sequence, time, tenants]
 *   tenant   [id, accounts, transfers, effects]      (sorted by id, empty tenants left out)
 *   account  [id, currency, allowNegative, metadata, postedDebits, postedCredits,
 *             pendingDebits, pendingCredits, createdAt, sequence]        (creation order)
 *   transfer [id, from, to, amount, currency, description, paymentTypeId, pending,
 *             timeoutSeconds, status, rejectCode, createdAt, sequence, postedAmount]
 *   effect   [sequence, kind, id, debitAccountId, creditAccountId, amount, time]
 * Histories, the timeout heap and expiresAt are derived, so they cannot disagree with the rest.
 */

function encodeTenant(book: TenantBook): unknown[] {
  const accounts: unknown[] = [];
  for (const a of book.accounts.values()) {
    accounts.push([a.id, a.currencyCode, a.allowNegative, a.metadata, a.postedDebits,
      a.postedCredits, a.pendingDebits, a.pendingCredits, a.createdAt, a.sequence]);
  }
  const transfers: unknown[] = [];
  for (const t of book.transfers.list) {
    transfers.push([t.id, t.fromAccountId, t.toAccountId, t.amountMinor, t.currencyCode,
      t.description, t.paymentTypeId, t.pending, t.timeoutSeconds, t.status, t.rejectCode,
      t.createdAt, t.sequence, t.postedAmountMinor]);
  }
  const effects: unknown[] = [];
  for (const e of book.effects) {
    effects.push([e.sequence, e.kind, e.id, e.debitAccountId, e.creditAccountId,
      e.amountMinor, e.time]);
  }
  return [book.tenant, accounts, transfers, effects];
}

export function encodeSnapshot(state: ShardState): Uint8Array {
  const tenants: unknown[] = [];
  for (const id of [...state.tenants.keys()].sort()) {
    const book = state.tenants.get(id);
    if (book !== undefined && !book.isEmpty()) tenants.push(encodeTenant(book));
  }
  const payload = packr.pack([state.shard, state.epoch, state.sequence, state.time, tenants]);
  const bytes = new Uint8Array(MAGIC.length + payload.length + DIGEST_BYTES);
  bytes.set(MAGIC, 0);
  bytes.set(payload, MAGIC.length);
  const digest = createHash('sha256').update(bytes.subarray(0, MAGIC.length + payload.length));
  bytes.set(digest.digest(), MAGIC.length + payload.length);
  return bytes;
}

/** sha256 hex of the snapshot bytes: equal digests mean equal states. */
export function stateDigest(state: ShardState): string {
  return createHash('sha256').update(encodeSnapshot(state)).digest('hex');
}

class SnapshotError extends Error {
  constructor(why: string) {
    super(`snapshot: ${why}`);
    this.name = 'SnapshotError';
  }
}

function list(value: unknown, what: string, length?: number): unknown[] {
  if (!Array.isArray(value)) throw new SnapshotError(`${what} is not an array`);
  if (length !== undefined && value.length !== length) {
    throw new SnapshotError(`${what} has ${value.length} fields, expected ${length}`);
  }
  return value;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new SnapshotError(`${what} is not a string`);
  return value;
}

function textOrNull(value: unknown, what: string): string | null {
  return value === null ? null : text(value, what);
}

function integer(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || typeof value !== 'number' || value < 0) {
    throw new SnapshotError(`${what} is not a non-negative integer`);
  }
  return value;
}

function integerOrNull(value: unknown, what: string): number | null {
  return value === null ? null : integer(value, what);
}

function minor(value: unknown, what: string): bigint {
  if (typeof value !== 'bigint' || value < 0n) {
    throw new SnapshotError(`${what} is not minor units`);
  }
  return value;
}

function flag(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw new SnapshotError(`${what} is not a boolean`);
  return value;
}

function unframe(bytes: Uint8Array): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new SnapshotError('input is not bytes');
  if (bytes.length < MAGIC.length + DIGEST_BYTES + 1) throw new SnapshotError('too short');
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw new SnapshotError('bad magic (not a v1 shard snapshot)');
  }
  const end = bytes.length - DIGEST_BYTES;
  const digest = createHash('sha256').update(bytes.subarray(0, end)).digest();
  for (let i = 0; i < DIGEST_BYTES; i++) {
    if (digest[i] !== bytes[end + i]) throw new SnapshotError('checksum mismatch (corrupt)');
  }
  return bytes.subarray(MAGIC.length, end);
}

export function decodeSnapshot(bytes: Uint8Array): ShardState {
  const payload = unframe(bytes);
  let root: unknown;
  try {
    root = packr.unpack(payload);
  } catch (err) {
    throw new SnapshotError(`payload is not msgpack (${String(err)})`);
  }
  const [shard, epoch, sequence, time, tenants] = list(root, 'root', 5);
  const state = new ShardState(integer(shard, 'shard'), integer(epoch, 'epoch'));
  state.sequence = integer(sequence, 'sequence');
  state.time = integer(time, 'time');
  let previous = '';
  for (const [index, tenant] of list(tenants, 'tenants').entries()) {
    const book = decodeTenant(state, tenant, `tenants[${index}]`);
    if (index > 0 && book.tenant <= previous) throw new SnapshotError('tenants out of order');
    previous = book.tenant;
  }
  rebuildTimeouts(state);
  return state;
}

function decodeTenant(state: ShardState, value: unknown, what: string): TenantBook {
  const [id, accounts, transfers, effects] = list(value, what, 4);
  const book = new TenantBook(text(id, `${what}.id`));
  state.tenants.set(book.tenant, book);
  let last = 0;
  for (const [i, account] of list(accounts, `${what}.accounts`).entries()) {
    last = decodeAccount(state, book, account, `${what}.accounts[${i}]`, last);
  }
  last = 0;
  for (const [i, transfer] of list(transfers, `${what}.transfers`).entries()) {
    last = decodeTransfer(state, book, transfer, `${what}.transfers[${i}]`, last);
  }
  for (const [i, effect] of list(effects, `${what}.effects`).entries()) {
    decodeEffect(state, book, effect, `${what}.effects[${i}]`);
  }
  return book;
}

function checkSequence(state: ShardState, sequence: number, previous: number, what: string) {
  if (sequence <= previous || sequence > state.sequence) {
    throw new SnapshotError(`${what}.sequence ${sequence} out of order`);
  }
}

function decodeAccount(
  state: ShardState,
  book: TenantBook,
  value: unknown,
  what: string,
  last: number,
): number {
  const f = list(value, what, 10);
  const account = new Account(text(f[0], `${what}.id`), text(f[1], `${what}.currency`),
    flag(f[2], `${what}.allowNegative`), text(f[3], `${what}.metadata`),
    integer(f[8], `${what}.createdAt`), integer(f[9], `${what}.sequence`));
  account.postedDebits = minor(f[4], `${what}.postedDebits`);
  account.postedCredits = minor(f[5], `${what}.postedCredits`);
  account.pendingDebits = minor(f[6], `${what}.pendingDebits`);
  account.pendingCredits = minor(f[7], `${what}.pendingCredits`);
  checkSequence(state, account.sequence, last, what);
  if (book.accounts.has(account.id)) throw new SnapshotError(`${what} repeats an id`);
  book.accounts.set(account.id, account);
  return account.sequence;
}

function decodeTransfer(
  state: ShardState,
  book: TenantBook,
  value: unknown,
  what: string,
  last: number,
): number {
  const f = list(value, what, 14);
  const status = f[9];
  if (!isStatusCode(status)) throw new SnapshotError(`${what}.status is unknown`);
  const code = f[10];
  const rejectCode: ErrorCode | null = code === null ? null : isErrorCode(code) ? code : null;
  if ((status === Status.rejected) !== (rejectCode !== null)) {
    throw new SnapshotError(`${what}.rejectCode does not fit its status`);
  }
  const body = {
    fromAccountId: text(f[1], `${what}.from`),
    toAccountId: text(f[2], `${what}.to`),
    amountMinor: minor(f[3], `${what}.amount`),
    currencyCode: text(f[4], `${what}.currency`),
    description: textOrNull(f[5], `${what}.description`),
    paymentTypeId: textOrNull(f[6], `${what}.paymentTypeId`),
    pending: flag(f[7], `${what}.pending`),
    timeoutSeconds: integerOrNull(f[8], `${what}.timeoutSeconds`),
  };
  const record = new TransferRecord(book.tenant, text(f[0], `${what}.id`), body, status,
    rejectCode, integer(f[11], `${what}.createdAt`), integer(f[12], `${what}.sequence`));
  record.postedAmountMinor = minor(f[13], `${what}.postedAmount`);
  if (record.expiresAt !== null && !Number.isSafeInteger(record.expiresAt)) {
    throw new SnapshotError(`${what}.timeoutSeconds is out of range`);
  }
  const known = book.accounts.has(body.fromAccountId) && book.accounts.has(body.toAccountId);
  if (status !== Status.rejected && !known) throw new SnapshotError(`${what} lost an account`);
  checkSequence(state, record.sequence, last, what);
  if (book.transfers.get(record.id) !== undefined) throw new SnapshotError(`${what} repeats an id`);
  book.transfers.add(record);
  return record.sequence;
}

/** Effects are shared by the accounts they touch, exactly like live journal rows. */
class EffectRow implements HistoryRow {
  constructor(
    readonly sequence: number,
    readonly kind: EntryKind,
    readonly id: string,
    readonly debitAccountId: string,
    readonly creditAccountId: string,
    readonly amountMinor: bigint,
    readonly time: number,
  ) {}
}

function decodeEffect(state: ShardState, book: TenantBook, value: unknown, what: string) {
  const f = list(value, what, 7);
  const kind = f[1];
  if (typeof kind !== 'string' || !ENTRY_KINDS.some((k) => k === kind) || kind === 'reject') {
    throw new SnapshotError(`${what}.kind is not an effect kind`);
  }
  const decoded = new EffectRow(integer(f[0], `${what}.sequence`), kind as EntryKind,
    text(f[2], `${what}.id`), text(f[3], `${what}.debit`), text(f[4], `${what}.credit`),
    minor(f[5], `${what}.amount`), integer(f[6], `${what}.time`));
  const row = creationRow(book, decoded, what);
  const last = book.effects[book.effects.length - 1];
  checkSequence(state, row.sequence, last === undefined ? 0 : last.sequence, what);
  if (row.time > state.time) throw new SnapshotError(`${what}.time is after the state time`);
  const credit = book.accounts.get(row.creditAccountId);
  const debit = kind === 'account-open' ? null : book.accounts.get(row.debitAccountId);
  if (credit === undefined || debit === undefined) {
    throw new SnapshotError(`${what} names an unknown account`);
  }
  book.effects.push(row);
  if (debit !== null) debit.history.push(row);
  credit.history.push(row);
}

/** Live, a transfer record is the row of its own post/pending effect; keep that sharing. */
function creationRow(book: TenantBook, row: EffectRow, what: string): HistoryRow {
  if (row.kind !== 'post' && row.kind !== 'pending') return row;
  const record = book.transfers.get(row.id);
  const same = record !== undefined && record.status !== Status.rejected &&
    record.sequence === row.sequence && record.kind === row.kind &&
    record.debitAccountId === row.debitAccountId &&
    record.creditAccountId === row.creditAccountId &&
    record.amountMinor === row.amountMinor && record.time === row.time;
  if (!same || record === undefined) throw new SnapshotError(`${what} does not match its transfer`);
  return record;
}

/** A sorted array is a valid min-heap, so pushing in order never sifts. */
function rebuildTimeouts(state: ShardState): void {
  const queued: TransferRecord[] = [];
  for (const book of state.tenants.values()) {
    for (const record of book.transfers.list) {
      if (record.status === Status.pending && record.expiresAt !== null) queued.push(record);
    }
  }
  queued.sort(compareTimeouts);
  for (const record of queued) state.timeouts.push(record);
}
