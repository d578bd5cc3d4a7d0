// The deterministic shard state machine: decides each command of a batch in order, answers it
// and emits the journal entries that record the decision. Never reads the wall clock, never
// draws random numbers, never awaits or does I/O; business rejections are returned, not thrown.

import type { ErrorCode } from '../protocol/errors.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import {
  MAX_BATCH,
  type CreateAccountCmd,
  type EntryKind,
  type Envelope,
  type Outcome,
  type PostCmd,
  type TransferBatchCmd,
  type TransferCmd,
  type VoidCmd,
} from '../protocol/types.js';
import {
  MAX_MINOR,
  Status,
  bookFor,
  createTransfer,
  mustAccount,
  openAccount,
  recordRejection,
  sameBody,
  settlePending,
  undoTransfer,
  type Account,
  type ShardState,
  type StatusCode,
  type TransferRecord,
} from './ledger-book.js';
import {
  accountView,
  failure,
  getAccount,
  getTransaction,
  listEntries,
  transactionView,
} from './ledger-views.js';

export { ShardState, createShardState } from './ledger-book.js';
export { applyEntry } from './entry-replay.js';

/** Longest hold a pending transfer may ask for (ten years); keeps expiresAt a safe integer. */
export const MAX_TIMEOUT_SECONDS = 10 * 366 * 24 * 3600;
export const NO_TRANSFER_DETAIL = '{"description":null,"paymentTypeId":null,"timeoutSeconds":null}';
export const VOID_CLIENT_DETAIL = '{"reason":"client"}';
export const VOID_TIMEOUT_DETAIL = '{"reason":"timeout"}';

/**
 * Apply a batch in order: push exactly one Outcome per envelope into `results`, and the new
 * journal entries into `entries`. The batch time is max(state.time, now); state.time keeps it
 * only when the batch wrote an entry, so replaying the journal rebuilds the clock exactly.
 */
export function applyBatch(
  state: ShardState,
  envelopes: readonly Envelope[],
  now: number,
  results: Outcome[],
  entries: JournalEntry[],
): void {
  if (!Number.isSafeInteger(now)) throw new Error(`applyBatch: now ${now} is not integer ms`);
  const timeBefore = state.time;
  const entriesBefore = entries.length;
  if (now > state.time) state.time = now;
  expireHolds(state, entries);
  for (let i = 0; i < envelopes.length; i++) {
    const envelope = envelopes[i];
    if (envelope === undefined) throw new Error('applyBatch: hole in the envelope array');
    results.push(applyCommand(state, envelope, entries));
  }
  if (entries.length === entriesBefore) state.time = timeBefore;
}

function applyCommand(state: ShardState, envelope: Envelope, entries: JournalEntry[]): Outcome {
  const { tenant, cmd } = envelope;
  switch (cmd.op) {
    case 'transfer':
      return transfer(state, tenant, cmd, entries, null);
    case 'transferBatch':
      return transferBatch(state, tenant, cmd, entries);
    case 'createAccount':
      return createAccount(state, tenant, cmd, entries);
    case 'post':
      return post(state, tenant, cmd, entries);
    case 'void':
      return voidTransfer(state, tenant, cmd, entries);
    case 'getAccount':
      return getAccount(state, tenant, cmd);
    case 'getTransaction':
      return getTransaction(state, tenant, cmd);
    case 'listEntries':
      return listEntries(state, tenant, cmd);
    default:
      return failure('unknown_op');
  }
}

function emit(
  state: ShardState,
  entries: JournalEntry[],
  kind: EntryKind,
  tenant: string,
  id: string,
  debitAccountId: string,
  creditAccountId: string,
  amountMinor: bigint,
  currencyCode: string,
  detail: string,
): JournalEntry {
  state.sequence += 1;
  const entry: JournalEntry = {
    shard: state.shard,
    sequence: state.sequence,
    epoch: state.epoch,
    kind,
    tenant,
    id,
    debitAccountId,
    creditAccountId,
    amountMinor,
    currencyCode,
    time: state.time,
    detail,
  };
  entries.push(entry);
  return entry;
}

/** Void every hold whose expiry has come, in (expiresAt, tenant, id) order. */
function expireHolds(state: ShardState, entries: JournalEntry[]): void {
  const heap = state.timeouts;
  // Each pass removes the top item, so the loop is bounded by the heap's size.
  for (let budget = heap.size; budget > 0; budget--) {
    const top = heap.peek();
    if (top === undefined || top.expiresAt === null || top.expiresAt > state.time) return;
    const book = bookFor(state, top.tenant);
    const from = mustAccount(book, top.fromAccountId);
    const to = mustAccount(book, top.toAccountId);
    const entry = emit(state, entries, 'void', top.tenant, top.id, from.id, to.id,
      top.amountMinor, top.currencyCode, VOID_TIMEOUT_DETAIL);
    settlePending(state, book, top, entry, Status.voidedTimeout, from, to);
  }
}

function createAccount(
  state: ShardState,
  tenant: string,
  cmd: CreateAccountCmd,
  entries: JournalEntry[],
): Outcome {
  const book = bookFor(state, tenant);
  const existing = book.accounts.get(cmd.id);
  if (existing !== undefined) {
    const same = existing.currencyCode === cmd.currencyCode &&
      existing.allowNegative === cmd.allowNegative && existing.metadata === cmd.metadata;
    if (!same) return failure('account_exists');
    return { ok: true, created: false, value: accountView(existing) };
  }
  const detail = `{"allowNegative":${cmd.allowNegative},"metadata":${cmd.metadata}}`;
  const entry = emit(state, entries, 'account-open', tenant, cmd.id, '', cmd.id, 0n,
    cmd.currencyCode, detail);
  const account = openAccount(book, entry, cmd.allowNegative, cmd.metadata);
  return { ok: true, created: true, value: accountView(account) };
}

/** Input the edge should have refused; answered (never recorded) rather than trusted. */
function malformedTransfer(cmd: TransferCmd): ErrorCode | null {
  if (cmd.amountMinor <= 0n || cmd.amountMinor > MAX_MINOR) return 'invalid_amount';
  const timeout = cmd.timeoutSeconds;
  if (timeout !== null && !(Number.isSafeInteger(timeout) && timeout >= 0 &&
    timeout <= MAX_TIMEOUT_SECONDS)) {
    return 'invalid_request';
  }
  return null;
}

/** Business rules in precedence order (same_account is checked by the caller). */
function refusal(cmd: TransferCmd, from: Account | undefined, to: Account | undefined) {
  if (from === undefined || to === undefined) return 'account_not_found';
  const currency = cmd.currencyCode;
  if (currency !== from.currencyCode || currency !== to.currencyCode) return 'currency_mismatch';
  const amount = cmd.amountMinor;
  // Posted plus pending must fit on each side, so posting a hold can never overflow later.
  if (from.postedDebits + from.pendingDebits + amount > MAX_MINOR) return 'balance_overflow';
  if (to.postedCredits + to.pendingCredits + amount > MAX_MINOR) return 'balance_overflow';
  if (!from.allowNegative &&
    from.postedCredits - from.postedDebits - from.pendingDebits < amount) {
    return 'insufficient_funds';
  }
  return null;
}

function transferDetail(cmd: TransferCmd): string {
  if (cmd.description === null && cmd.paymentTypeId === null && cmd.timeoutSeconds === null) {
    return NO_TRANSFER_DETAIL;
  }
  const { description, paymentTypeId, timeoutSeconds } = cmd;
  return JSON.stringify({ description, paymentTypeId, timeoutSeconds });
}

function rejectDetail(code: ErrorCode, cmd: TransferCmd): string {
  const { description, paymentTypeId, pending, timeoutSeconds } = cmd;
  return JSON.stringify({ code, description, paymentTypeId, pending, timeoutSeconds });
}

/**
 * One transfer. `created` (atomic batches only) collects the records this call added, so the
 * batch can roll them back. Replays answer first; then rules; a rejection is recorded.
 */
function transfer(
  state: ShardState,
  tenant: string,
  cmd: TransferCmd,
  entries: JournalEntry[],
  created: TransferRecord[] | null,
): Outcome {
  const malformed = malformedTransfer(cmd);
  if (malformed !== null) return failure(malformed);
  const book = bookFor(state, tenant);
  const existing = book.transfers.get(cmd.id);
  if (existing !== undefined) return replay(existing, cmd);
  const from = book.accounts.get(cmd.fromAccountId);
  const to = book.accounts.get(cmd.toAccountId);
  const code = cmd.fromAccountId === cmd.toAccountId ? 'same_account' : refusal(cmd, from, to);
  let record: TransferRecord;
  if (code !== null || from === undefined || to === undefined) {
    const rejected = code ?? 'account_not_found';
    const entry = emit(state, entries, 'reject', tenant, cmd.id, cmd.fromAccountId,
      cmd.toAccountId, cmd.amountMinor, cmd.currencyCode, rejectDetail(rejected, cmd));
    record = recordRejection(book, entry, cmd, rejected);
    if (created !== null) created.push(record);
    return failure(rejected);
  }
  const entry = emit(state, entries, cmd.pending ? 'pending' : 'post', tenant, cmd.id,
    from.id, to.id, cmd.amountMinor, cmd.currencyCode, transferDetail(cmd));
  record = createTransfer(state, book, entry, cmd, from, to);
  if (created !== null) created.push(record);
  return { ok: true, created: true, value: transactionView(record, true) };
}

/** Same id again: the original answer for the same body, `conflict` for another one. */
function replay(record: TransferRecord, cmd: TransferCmd): Outcome {
  if (!sameBody(record, cmd)) return failure('conflict');
  if (record.rejectCode !== null) return failure(record.rejectCode);
  return { ok: true, created: false, value: transactionView(record, true) };
}

function transferBatch(
  state: ShardState,
  tenant: string,
  cmd: TransferBatchCmd,
  entries: JournalEntry[],
): Outcome {
  const items = cmd.transactions;
  if (items.length > MAX_BATCH) return failure('batch_too_large');
  const sequenceBefore = state.sequence;
  const entriesBefore = entries.length;
  const created: TransferRecord[] | null = cmd.atomic ? [] : null;
  const results: Outcome[] = [];
  let applied = false;
  let failed = false;
  for (const item of items) {
    const outcome = transfer(state, tenant, item, entries, created);
    results.push(outcome);
    if (!outcome.ok) failed = true;
    else if (outcome.created) applied = true;
  }
  if (created === null || !failed) {
    return { ok: true, created: applied, value: { results } };
  }
  // Atomic and something failed: undo newest first, forget the entries and their sequences.
  const book = bookFor(state, tenant);
  for (let i = created.length - 1; i >= 0; i--) {
    const record = created[i];
    if (record !== undefined) undoTransfer(state, book, record);
  }
  state.sequence = sequenceBefore;
  entries.length = entriesBefore;
  for (let i = 0; i < results.length; i++) {
    if (results[i]?.ok === true) results[i] = failure('batch_failed');
  }
  return { ok: true, created: false, value: { results } };
}

/** Business answer to posting a transfer in each status (null: the post may go ahead). */
const POST_REFUSALS: Readonly<Record<StatusCode, ErrorCode | null>> = {
  [Status.posted]: 'transaction_not_pending',
  [Status.pending]: null,
  [Status.postedPending]: 'transaction_not_pending',
  [Status.voidedClient]: 'transaction_not_pending',
  [Status.voidedTimeout]: 'pending_expired',
  [Status.rejected]: 'transaction_not_found',
};

function post(state: ShardState, tenant: string, cmd: PostCmd, entries: JournalEntry[]): Outcome {
  const book = state.tenants.get(tenant);
  const record = book?.transfers.get(cmd.id);
  if (book === undefined || record === undefined) return failure('transaction_not_found');
  const requested = cmd.amountMinor;
  if (record.status === Status.postedPending &&
    (requested === null || requested === record.postedAmountMinor)) {
    return { ok: true, created: false, value: transactionView(record, false) };
  }
  const refused = POST_REFUSALS[record.status];
  if (refused !== null) return failure(refused);
  const amount = requested ?? record.amountMinor;
  if (amount <= 0n) return failure('invalid_amount');
  if (amount > record.amountMinor) return failure('amount_exceeds_pending');
  const from = mustAccount(book, record.fromAccountId);
  const to = mustAccount(book, record.toAccountId);
  const entry = emit(state, entries, 'post-pending', tenant, record.id, from.id, to.id, amount,
    record.currencyCode, '');
  settlePending(state, book, record, entry, Status.postedPending, from, to);
  return { ok: true, created: true, value: transactionView(record, false) };
}

/** Business answer to voiding a transfer in each status (null: void it; 'ok': already). */
const VOID_REFUSALS: Readonly<Record<StatusCode, ErrorCode | 'ok' | null>> = {
  [Status.posted]: 'transaction_not_pending',
  [Status.pending]: null,
  [Status.postedPending]: 'transaction_not_pending',
  [Status.voidedClient]: 'ok',
  [Status.voidedTimeout]: 'ok',
  [Status.rejected]: 'transaction_not_found',
};

function voidTransfer(
  state: ShardState,
  tenant: string,
  cmd: VoidCmd,
  entries: JournalEntry[],
): Outcome {
  const book = state.tenants.get(tenant);
  const record = book?.transfers.get(cmd.id);
  if (book === undefined || record === undefined) return failure('transaction_not_found');
  const refused = VOID_REFUSALS[record.status];
  if (refused === 'ok') return { ok: true, created: false, value: transactionView(record, false) };
  if (refused !== null) return failure(refused);
  const from = mustAccount(book, record.fromAccountId);
  const to = mustAccount(book, record.toAccountId);
  const entry = emit(state, entries, 'void', tenant, record.id, from.id, to.id,
    record.amountMinor, record.currencyCode, VOID_CLIENT_DETAIL);
  settlePending(state, book, record, entry, Status.voidedClient, from, to);
  return { ok: true, created: true, value: transactionView(record, false) };
}
