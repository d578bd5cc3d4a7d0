import { describe, expect, test } from 'vitest';
import { parseAuditArgs, parseIsoTime, parseShardList, UsageError } from './options.js';

describe('ledger audit options', () => {
  test('parses shard lists with ranges, sorted and deduplicated', () => {
    expect(parseShardList('9-12,0,5,10')).toEqual([0, 5, 9, 10, 11, 12]);
    expect(() => parseShardList('3-1')).toThrow(UsageError);
    expect(() => parseShardList('a')).toThrow(/--shards/);
  });

  test('parses ISO times as UTC unless an offset is given', () => {
    expect(parseIsoTime('from', '2024-01-01')).toBe(Date.UTC(2024, 0, 1));
    expect(parseIsoTime('from', '2024-01-01T01:00:00')).toBe(Date.UTC(2024, 0, 1, 1));
    expect(parseIsoTime('from', '2024-01-01T01:00:00+01:00')).toBe(Date.UTC(2024, 0, 1));
    expect(() => parseIsoTime('from', 'yesterday')).toThrow(/--from/);
  });

  test('a full command line', () => {
    const o = parseAuditArgs(['--pg', 'postgres://a/x,postgres://b/y', '--shards', '0-2',
      '--tenants', 'acme', '--as-of-sequence', '10', '--statement', 'acme:al:ice',
      '--from', '2024-01-01', '--to', '2024-02-01', '--format', 'json', '--workers', '3'], 8);
    expect(o.source).toEqual({ kind: 'pg', urls: ['postgres://a/x', 'postgres://b/y'] });
    expect(o.shards).toEqual([0, 1, 2]);
    expect(o.statement).toEqual({ tenant: 'acme', accountId: 'al:ice',
      fromMs: Date.UTC(2024, 0, 1), toMs: Date.UTC(2024, 1, 1) });
    expect(o.workers).toBe(3);
    expect(o.asOfSequence).toBe(10);
  });

  test('refuses contradictions with a message naming the options', () => {
    const bad: [string[], RegExp][] = [
      [[], /exactly one of --data-dir/],
      [['--data-dir', 'd', '--as-of-sequence', '1', '--as-of-time', '2024-01-01'], /at most one/],
      [['--data-dir', 'd', '--compare-url', 'http://x'], /go together/],
      [['--data-dir', 'd', '--compare-url', 'http://x', '--token', 't'], /--tenants/],
      [['--data-dir', 'd', '--from', '2024-01-01'], /needs --statement/],
      [['--data-dir', 'd', '--workers', '0'], /--workers/],
      [['--data-dir', 'd', '--bogus'], /bogus/],
      [['--pg', 'mysql://x'], /postgres:\/\//],
      [['--pg', 'postgres://x', '--compare-snapshot'], /--snapshot-dir/],
    ];
    for (const [argv, message] of bad) expect(() => parseAuditArgs(argv, 2)).toThrow(message);
  });
});
