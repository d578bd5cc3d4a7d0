import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JournalEntry } from './journal-entry.js';
import {
  accountsOf,
  decodeLedgerEvents,
  eventJson,
  eventMessagesOf,
  eventObject,
  type LedgerEvent,
} from './ledger-events.js';

const post: JournalEntry = {
  shard: 3, sequence: 1042, epoch: 2, kind: 'post', tenant: 'acme', id: 'tx-1',
  debitAccountId: 'alice', creditAccountId: 'bob', amountMinor: 1250n, currencyCode: 'EUR',
  time: Date.UTC(2025, 0, 2, 3, 4, 5, 6),
  detail: '{"description":"rent","paymentTypeId":null,"timeoutSeconds":null}',
};

/** Entries of `tenants` interleaved in one shard's sequence, from 1. */
function interleaved(n: number, tenants: string[]): JournalEntry[] {
  return Array.from({ length: n }, (_, i) => ({ ...post, sequence: i + 1, id: `tx-${i + 1}`,
    tenant: tenants[i % tenants.length] ?? 'acme' }));
}

function eventsOf(value: Buffer, format: 'json' | 'msgpack' = 'json'): LedgerEvent[] {
  const d = decodeLedgerEvents(value, format);
  if (!d.ok) throw new Error(d.error);
  return d.envelope.events;
}

describe('ledger events v1', () => {
  it('gives a plain transfer journaled without detail the documented detail object', () => {
    const nulls = { description: null, paymentTypeId: null, timeoutSeconds: null };
    for (const kind of ['post', 'pending'] as const) {
      const plain = { ...post, kind, detail: '' };
      expect(eventObject(plain).detail).toEqual(nulls);
      expect(JSON.parse(eventJson(plain))).toEqual(JSON.parse(JSON.stringify(eventObject(plain))));
    }
    expect(eventObject({ ...post, kind: 'post-pending', detail: '' }).detail).toBeNull();
  });

  it('packs one event per entry into an envelope keyed by its tenant', () => {
    const [m, ...rest] = eventMessagesOf([post], 'json');
    expect(rest).toEqual([]);
    expect(m?.key).toBe('acme');
    expect(m?.headers).toEqual({ tenant: 'acme', shard: '3', 'first-sequence': '1042',
      'last-sequence': '1042' });
    expect(JSON.parse(m?.value.toString() ?? '')).toEqual({
      type: 'ledger.events', version: 1, tenant: 'acme', shard: 3, events: [{
        type: 'transaction.posted', eventId: '3:1042', tenant: 'acme', shard: 3,
        sequence: 1042, time: '2025-01-02T03:04:05.006Z', transactionId: 'tx-1',
        debitAccountId: 'alice', creditAccountId: 'bob', amountMinor: '1250',
        currencyCode: 'EUR',
        detail: { description: 'rent', paymentTypeId: null, timeoutSeconds: null } }],
    });
  });

  it('keeps each tenant in sequence order and bounds envelopes by events and bytes', () => {
    const entries = interleaved(300, ['a', 'b', 'c']);
    const messages = eventMessagesOf(entries, 'json', { maxEvents: 16, maxBytes: 64 * 1024 });
    for (const tenant of ['a', 'b', 'c']) {
      const mine = messages.filter((m) => m.key === tenant);
      const sequences = mine.flatMap((m) => eventsOf(m.value).map((e) => e.sequence));
      expect(sequences).toEqual(entries.filter((e) => e.tenant === tenant).map((e) => e.sequence));
      for (const m of mine) {
        const events = eventsOf(m.value);
        expect(events.length).toBeLessThanOrEqual(16);
        expect(m.events).toBe(events.length);
        expect(m.headers['first-sequence']).toBe(String(events[0]?.sequence));
        expect(m.headers['last-sequence']).toBe(String(events.at(-1)?.sequence));
      }
    }
    const small = eventMessagesOf(entries, 'json', { maxEvents: 64, maxBytes: 2_000 });
    for (const m of small) expect(m.value.length).toBeLessThanOrEqual(2_000);
    // An event bigger than maxBytes still travels, alone.
    const huge = { ...post, detail: JSON.stringify({ description: 'x'.repeat(5_000) }) };
    expect(eventMessagesOf([huge, huge], 'json', { maxEvents: 64, maxBytes: 2_000 })
      .map((m) => m.events)).toEqual([1, 1]);
  });

  it('maps every kind to its type and accounts', () => {
    const open = { ...post, kind: 'account-open' as const, id: 'carol', debitAccountId: '',
      creditAccountId: 'carol', amountMinor: 0n, detail: '{"allowNegative":false,"metadata":{}}' };
    const [created] = eventsOf(eventMessagesOf([open], 'json')[0]?.value ?? Buffer.alloc(0));
    expect(created).toMatchObject({ type: 'account.created', eventId: '3:1042',
      transactionId: null, debitAccountId: null, creditAccountId: 'carol', amountMinor: '0' });
    expect(accountsOf(created as LedgerEvent)).toEqual(['carol']);
    expect(accountsOf({ debitAccountId: 'x', creditAccountId: 'x' })).toEqual(['x']);
    expect(accountsOf({ debitAccountId: 'x', creditAccountId: 'y' })).toEqual(['x', 'y']);
    const kinds = ['pending', 'post-pending', 'void', 'reject'] as const;
    const entries = kinds.map((kind, i) => ({ ...post, kind, sequence: i + 1, detail: '' }));
    const events = eventsOf(eventMessagesOf(entries, 'json')[0]?.value ?? Buffer.alloc(0));
    expect(events.map((e) => e.type)).toEqual([
      'transaction.pending', 'transaction.posted_pending', 'transaction.voided',
      'transaction.rejected',
    ]);
  });

  it('encodes the same envelope as msgpack', () => {
    const entries = interleaved(5, ['acme']);
    const json = eventMessagesOf(entries, 'json');
    const msgpack = eventMessagesOf(entries, 'msgpack');
    expect(msgpack.map((m) => [m.key, m.headers, m.events]))
      .toEqual(json.map((m) => [m.key, m.headers, m.events]));
    expect(eventsOf(msgpack[0]?.value ?? Buffer.alloc(0), 'msgpack'))
      .toEqual(eventsOf(json[0]?.value ?? Buffer.alloc(0)));
  });

  it('encodes an event to the same bytes whatever envelope carries it', () => {
    const entries = interleaved(10, ['acme']);
    expect(eventJson(post)).toBe(JSON.stringify(eventObject(post)));
    const whole = eventsOf(eventMessagesOf(entries, 'json')[0]?.value ?? Buffer.alloc(0));
    const tail = eventsOf(eventMessagesOf(entries.slice(4), 'json')[0]?.value ?? Buffer.alloc(0));
    const bytes = (events: LedgerEvent[]) => events.map((e) => JSON.stringify(e));
    expect(bytes(tail)).toEqual(bytes(whole.slice(4)));
  });

  it('never lets a non-JSON detail produce an unparsable event', () => {
    const [m] = eventMessagesOf([{ ...post, detail: '{"oops' }], 'json');
    expect(eventsOf(m?.value ?? Buffer.alloc(0))[0]?.detail).toEqual({ raw: '{"oops' });
  });

  it('rejects envelopes that break their own rules', () => {
    const good = JSON.parse(eventMessagesOf(interleaved(2, ['acme']), 'json')[0]?.value
      .toString() ?? '') as Record<string, unknown> & { events: Array<Record<string, unknown>> };
    const bad = (change: (env: typeof good) => void): string => {
      const env = structuredClone(good);
      change(env);
      const d = decodeLedgerEvents(Buffer.from(JSON.stringify(env)), 'json');
      return d.ok ? 'accepted' : d.error;
    };
    expect(bad(() => undefined)).toBe('accepted');
    expect(bad((e) => (e.version = 2))).toBe('unsupported version 2');
    expect(bad((e) => (e.events = []))).toBe('events must be a non-empty array');
    expect(bad((e) => e.events.reverse())).toMatch(/sequence 1 after 2/);
    expect(bad((e) => ((e.events[1] as Record<string, unknown>).tenant = 'other')))
      .toMatch(/not of the envelope/);
    expect(bad((e) => ((e.events[0] as Record<string, unknown>).eventId = '3:9')))
      .toMatch(/eventId/);
    expect(bad((e) => ((e.events[0] as Record<string, unknown>).amountMinor = 1.5)))
      .toMatch(/amountMinor/);
  });

  it('rejects every truncation and arbitrary bytes without throwing', () => {
    const value = eventMessagesOf(interleaved(3, ['acme']), 'json')[0]?.value ?? Buffer.alloc(0);
    for (let n = 0; n < value.length; n++) {
      expect(decodeLedgerEvents(value.subarray(0, n), 'json').ok).toBe(false);
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const buf = Buffer.from(bytes);
      expect(decodeLedgerEvents(buf, 'json').ok).toBe(false);
      expect(() => decodeLedgerEvents(buf, 'msgpack')).not.toThrow();
    }));
  });
});
