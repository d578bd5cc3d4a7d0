// The deterministic shard state machine: decides each command of a batch in order, answers it
// and emits the journal entries that record the decision. Never reads the wall clock, never
// draws random numbers, never awaits or does I/O; business rejections are returned, not thrown.

import type { ErrorCode } from '../protocol/errors.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import {
  MAX_BATCH,
  type Command,
  type CreateAccountCmd,
  type EntryKind,
  type Envelope,
  type Outcome,
  type PostCmd,
  type TransferBatchCmd,
  type TransferCmd,
  type VoidCmd,
} from '../protocol/types.js';
import { parseAmount } from '../protocol/money.js';
import { narrowShortOfFunds } from './account.js';
import {
  MAX_MINOR,
  NO_TRANSFER_DETAIL,
  Status,
  VOID_CLIENT_DETAIL,
  VOID_TIMEOUT_DETAIL,
  bookFor,
  createTransfer,
  openAccount,
  recordRejection,
  sameBody,
  settlePending,
  undoTransfer,
  type Account,
  type ShardState,
  type StatusCode,
  type TenantBook,
} from './ledger-book.js';
import {
  accountView,
  createdView,
  failure,
  getAccount,
  getTransaction,
  listEntries,
  transactionView,
} from './ledger-views.js';
import { WIDE, narrow } from './transfer-columns.js';

export {
  NO_TRANSFER_DETAIL,
  ShardState,
  VOID_CLIENT_DETAIL,
  VOID_TIMEOUT_DETAIL,
  createShardState,
} from './ledger-book.js';
export { applyEntry } from './entry-replay.js';

/** Longest hold a pending transfer may ask for (ten years); keeps expiresAt a safe integer. */
export const MAX_TIMEOUT_SECONDS = 10 * 366 * 24 * 3600;

/**
 * The most journal entries applying `cmd` can append: one, or one per transaction of a
 * transferBatch (an accepted or a rejected item writes one entry each). A batch may also void
 * holds that expired meanwhile, one entry each: those are not counted here.
 */
export function maxEntriesOf(cmd: Command): number {
  return cmd.op === 'transferBatch' ? cmd.transactions.length : 1;
}

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
    settle(state, top.book, top.index, entries, Status.voidedTimeout, null);
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
  // The common case, without bigint work: a safe-integer amount between accounts whose totals
  // are safe integers cannot overflow either side, so only funds need checking.
  const n = narrow(amount);
  if (n !== WIDE && !from.wide && !to.wide) {
    return narrowShortOfFunds(from, n) ? 'insufficient_funds' : null;
  }
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
  created: number[] | null,
): Outcome {
  const malformed = malformedTransfer(cmd);
  if (malformed !== null) return failure(malformed);
  const book = bookFor(state, tenant);
  const existing = book.transfers.ids.find(cmd.id);
  if (existing !== -1) return replay(book, existing, cmd);
  const from = book.accounts.get(cmd.fromAccountId);
  const to = book.accounts.get(cmd.toAccountId);
  const code = cmd.fromAccountId === cmd.toAccountId ? 'same_account' : refusal(cmd, from, to);
  if (code !== null || from === undefined || to === undefined) {
    const rejected = code ?? 'account_not_found';
    const entry = emit(state, entries, 'reject', tenant, cmd.id, cmd.fromAccountId,
      cmd.toAccountId, cmd.amountMinor, cmd.currencyCode, rejectDetail(rejected, cmd));
    const index = recordRejection(book, entry, cmd, rejected);
    if (created !== null) created.push(index);
    return failure(rejected);
  }
  const entry = emit(state, entries, cmd.pending ? 'pending' : 'post', tenant, cmd.id,
    from.id, to.id, cmd.amountMinor, cmd.currencyCode, transferDetail(cmd));
  const index = createTransfer(state, book, entry, cmd.pending, cmd, from, to);
  if (created !== null) created.push(index);
  return { ok: true, created: true, value: createdView(cmd, entry) };
}

/** Same id again: the original answer for the same body, `conflict` for another one. */
function replay(book: TenantBook, i: number, cmd: TransferCmd): Outcome {
  if (!sameBody(book, i, cmd)) return failure('conflict');
  const rejectCode = book.transfers.extras.get(i)?.rejectCode ?? null;
  if (rejectCode !== null) return failure(rejectCode);
  return { ok: true, created: false, value: transactionView(book, i, true) };
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
  const created: number[] | null = cmd.atomic ? [] : null;
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
    const index = created[i];
    if (index !== undefined) undoTransfer(state, book, index);
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
  const i = book === undefined ? -1 : book.transfers.ids.find(cmd.id);
  if (book === undefined || i === -1) return failure('transaction_not_found');
  const t = book.transfers;
  const status = t.statusOf(i);
  const requested = postAmount(book, i, cmd);
  if (typeof requested === 'string') return failure(requested);
  if (status === Status.postedPending && (requested === null || requested === t.postedOf(i))) {
    return { ok: true, created: false, value: transactionView(book, i, false) };
  }
  const refused = POST_REFUSALS[status];
  if (refused !== null) return failure(refused);
  const held = t.amountOf(i);
  const amount = requested ?? held;
  if (amount <= 0n) return failure('invalid_amount');
  if (amount > held) return failure('amount_exceeds_pending');
  settle(state, book, i, entries, Status.postedPending, amount);
  return { ok: true, created: true, value: transactionView(book, i, false) };
}

/** The amount a post asks for, in the transaction's own currency (null: all of it). */
function postAmount(book: TenantBook, i: number, cmd: PostCmd): bigint | null | ErrorCode {
  const needsCurrency = (cmd.currencyCode ?? null) !== null || (cmd.amountDecimal ?? null) !== null;
  if (!needsCurrency) return cmd.amountMinor;
  const currency = book.transfers.extras.get(i)?.currencyCode
    ?? book.account(book.transfers.from[i] ?? -1).currencyCode;
  if ((cmd.currencyCode ?? currency) !== currency) return 'currency_mismatch';
  const decimal = cmd.amountDecimal ?? null;
  return decimal === null ? cmd.amountMinor : parseAmount(decimal, currency);
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
  const i = book === undefined ? -1 : book.transfers.ids.find(cmd.id);
  if (book === undefined || i === -1) return failure('transaction_not_found');
  const refused = VOID_REFUSALS[book.transfers.statusOf(i)];
  if (refused === 'ok') return { ok: true, created: false, value: transactionView(book, i, false) };
  if (refused !== null) return failure(refused);
  settle(state, book, i, entries, Status.voidedClient, null);
  return { ok: true, created: true, value: transactionView(book, i, false) };
}

/** Emit the post-pending (posting `posted`) or void entry of hold `i` and apply it. */
function settle(
  state: ShardState,
  book: TenantBook,
  i: number,
  entries: JournalEntry[],
  to: StatusCode,
  posted: bigint | null,
): void {
  const t = book.transfers;
  const from = book.account(t.from[i] ?? WIDE);
  const credit = book.account(t.to[i] ?? WIDE);
  const currency = t.extras.get(i)?.currencyCode ?? from.currencyCode;
  const id = t.ids.keyAt(i);
  const entry = posted !== null
    ? emit(state, entries, 'post-pending', book.tenant, id, from.id, credit.id, posted,
      currency, '')
    : emit(state, entries, 'void', book.tenant, id, from.id, credit.id, t.amountOf(i), currency,
      to === Status.voidedTimeout ? VOID_TIMEOUT_DETAIL : VOID_CLIENT_DETAIL);
  settlePending(state, book, i, entry, to, from, credit);
}
