// Codec benchmark: us per transfer for the batch crossing to a worker (envelope-codec), its
// answer crossing back (reply-codec) and the WebSocket reply to a transferBatch (batch-frame),
// each against plain msgpackr doing the same job in the same run; and for the gateway reading
// a transferBatch frame (decodeFrame + validate) against msgpackr's decode alone. Asserts
// nothing.

import { Packr } from 'msgpackr';
import { encodeBatchReply } from '../protocol/batch-frame.js';
import { decodeEnvelopes, encodeEnvelopes } from '../protocol/envelope-codec.js';
import { decodeFrame, replyValue } from '../protocol/frames.js';
import { toCommand } from '../protocol/validate.js';
import { decodeReplies, encodeReplies, transferView } from '../protocol/reply-codec.js';
import { decodeOutcomes, encodeOutcomes } from '../protocol/thread-codec.js';
import type { Envelope, Outcome, TransferCmd } from '../protocol/types.js';
import { median, printTable, writeResult } from './report.js';

const ITEMS = 8190;

function batch(): { envelopes: Envelope[]; outcomes: Outcome[] } {
  const transactions: TransferCmd[] = Array.from({ length: ITEMS }, (_, i) => ({
    op: 'transfer', id: `p-3-${i}`, fromAccountId: `a${i % 100}`,
    toAccountId: `a${(i + 7) % 100}`, amountMinor: 1n, currencyCode: 'USD', description: null,
    paymentTypeId: null, pending: false, timeoutSeconds: null,
  }));
  const results: Outcome[] = transactions.map((cmd, i) => ({ ok: true, created: true,
    value: transferView(cmd, 1_700_000_000_000, 1000 + i) }));
  return {
    envelopes: [{ tenant: 't1', cmd: { op: 'transferBatch', atomic: false, transactions } }],
    outcomes: [{ ok: true, created: true, value: { results } }],
  };
}

/** us per transfer of `fn` (one call handles ITEMS), best of a second's worth of calls. */
function usPerItem(fn: () => unknown, seconds: number): number {
  for (let w = 0; w < 5; w++) fn();
  const samples: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline) {
    const t0 = performance.now();
    fn();
    samples.push(((performance.now() - t0) * 1000) / ITEMS);
  }
  return median(samples);
}

export async function benchCodecs(opts: { runs: number; seconds: number }): Promise<void> {
  const { envelopes, outcomes } = batch();
  const packr = new Packr({ useRecords: true });
  const plain = new Packr({ useRecords: false });
  // what a client sends: amounts as strings, no optional fields
  const frame = plain.pack({ rid: 1, op: 'transferBatch', atomic: false,
    transactions: Array.from({ length: ITEMS }, (_, i) => ({ id: `p-3-${i}`,
      fromAccountId: `a${i % 100}`, toAccountId: `a${(i + 7) % 100}`, amountMinor: '1',
      currencyCode: 'USD' })) });
  const cases: Array<{ name: string; baseline: () => unknown; ours: () => unknown }> = [
    { name: 'commands to a worker (encode + decode)',
      baseline: () => packr.unpack(packr.pack(envelopes)),
      ours: () => decodeEnvelopes(encodeEnvelopes(envelopes)) },
    { name: 'answers from a worker (encode + decode)',
      baseline: () => decodeOutcomes(encodeOutcomes(outcomes)),
      ours: () => decodeReplies(encodeReplies(envelopes, outcomes), envelopes) },
    { name: 'WebSocket transferBatch frame (decode + validate)',
      baseline: () => plain.unpack(frame),
      ours: () => {
        const decoded = decodeFrame(frame, 1 << 24);
        if (!decoded.ok || !toCommand(decoded.op, decoded.input).ok) throw new Error('invalid');
      } },
    { name: 'WebSocket transferBatch reply (encode)',
      baseline: () => plain.pack(replyValue(1, outcomes[0] as Outcome)),
      ours: () => encodeBatchReply(1, outcomes[0] as Outcome) },
  ];
  const runs = cases.map(() => ({ baseline: [] as number[], ours: [] as number[] }));
  for (let r = 0; r < opts.runs; r++) {
    cases.forEach((c, i) => {
      runs[i]?.baseline.push(usPerItem(c.baseline, opts.seconds / 2));
      runs[i]?.ours.push(usPerItem(c.ours, opts.seconds / 2));
    });
  }
  const rows = cases.map((c, i) => {
    const base = median(runs[i]?.baseline ?? []);
    const ours = median(runs[i]?.ours ?? []);
    return { codec: c.name, 'msgpackr us/transfer (baseline)': base.toFixed(3),
      'ours us/transfer': ours.toFixed(3), 'ratio to baseline': (ours / base).toFixed(3) };
  });
  printTable(`codecs: ${opts.runs} runs, batches of ${ITEMS} transfers, medians`, rows);
  writeResult('codecs', { options: opts, runs, rows });
}
