// IdTable against a plain Map: random adds, lookups and newest-first removals must agree, and
// iteration must follow insertion order whatever the hashes are.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdTable, StringIndex } from './id-table.js';

describe('IdTable', () => {
  it('agrees with a Map under adds, lookups and rollbacks', () => {
    const op = fc.oneof(
      fc.record({ add: fc.string({ maxLength: 4 }) }),
      fc.record({ undo: fc.nat(5) }),
      fc.record({ get: fc.string({ maxLength: 4 }) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const table = new IdTable<{ id: string }>();
      const model = new Map<string, { id: string }>();
      for (const o of ops) {
        if ('add' in o) {
          if (model.has(o.add)) continue;
          const record = { id: o.add };
          table.add(record);
          model.set(o.add, record);
        } else if ('undo' in o) {
          for (let i = 0; i < o.undo && table.list.length > 0; i++) {
            const newest = table.list[table.list.length - 1];
            if (newest === undefined) break;
            table.removeNewest(newest);
            model.delete(newest.id);
          }
        } else {
          expect(table.get(o.get)).toBe(model.get(o.get));
        }
      }
      expect(table.list).toEqual([...model.values()]);
      for (const [id, record] of model) expect(table.get(id)).toBe(record);
    }), { numRuns: 300 });
  });

  it('loads its ids from bytes, then adopts their records in order', () => {
    const table = new IdTable<{ id: string }>();
    const records = ['a1', 'b22', 'c'].map((id) => ({ id }));
    expect(table.loadIds(Buffer.from('a1b22c'), [2, 3, 1], 3)).toBe(true);
    for (const r of records) table.adopt(r);
    expect(() => table.adopt({ id: 'd' })).toThrow(/no loaded id/);
    expect([table.get('b22'), table.has('c'), table.has('d'), table.size])
      .toEqual([records[1], true, false, 3]);
    expect([...table.keys()]).toEqual(['a1', 'b22', 'c']);
    expect([...table.values()]).toEqual(records);
    table.add({ id: 'd' });
    expect(table.get('d')?.id).toBe('d');
    expect(new IdTable().loadIds(Buffer.from('aa'), [1, 1], 2)).toBe(false);
    expect(() => table.loadIds(Buffer.from('x'), [1], 1)).toThrow(/empty table/);
  });

  it('refuses to remove anything but the newest record', () => {
    const table = new IdTable<{ id: string }>();
    const first = { id: 'a' };
    table.add(first);
    table.add({ id: 'b' });
    expect(() => table.removeNewest(first)).toThrow(/not the newest/);
  });
});

describe('StringIndex', () => {
  it('agrees with an array of ids under adds, lookups and rollbacks, across growth', () => {
    const op = fc.oneof(
      { weight: 6, arbitrary: fc.record({ add: fc.string({ maxLength: 6, unit: 'binary' }) }) },
      { weight: 1, arbitrary: fc.record({ undo: fc.nat(4) }) },
      { weight: 3, arbitrary: fc.record({ get: fc.string({ maxLength: 6, unit: 'binary' }) }) },
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 600 }), (ops) => {
      const index = new StringIndex();
      const model: string[] = [];
      for (const o of ops) {
        if ('add' in o) {
          if (model.includes(o.add)) continue;
          expect(index.find(o.add)).toBe(-1);
          expect(index.add(o.add)).toBe(model.length);
          model.push(o.add);
        } else if ('undo' in o) {
          for (let i = 0; i < o.undo && model.length > 0; i++) {
            index.removeLast();
            model.pop();
          }
        } else {
          expect(index.find(o.get)).toBe(model.indexOf(o.get));
        }
      }
      expect(index.size).toBe(model.length);
      model.forEach((id, i) => {
        expect(index.find(id)).toBe(i);
        expect(index.keyAt(i)).toBe(id);
      });
    }), { numRuns: 200 });
  });

  it('keeps every id exact when the first one wider than a byte arrives', () => {
    const index = new StringIndex();
    const ids = ['a1', 'caf\u00e9', 'x', '\u20ac5', 'b2', '\u00ff', 'z\uD83D\uDE00'];
    ids.forEach((id, i) => expect(index.add(id)).toBe(i));
    ids.forEach((id, i) => {
      expect(index.find(id)).toBe(i);
      expect(index.keyAt(i)).toBe(id);
    });
    expect(index.find('\u00e9')).toBe(-1);
    expect(index.find('\u20ac')).toBe(-1);
    index.removeLast();
    expect(index.find('z\uD83D\uDE00')).toBe(-1);
    expect(index.find('\u20ac5')).toBe(3);
  });

  it('copies ASCII ids as their bytes and refuses the others', () => {
    const index = new StringIndex();
    for (const id of ['t-1', 'caf\u00e9', '', '\u20ac']) index.add(id);
    const out = new Uint8Array(8);
    expect([index.writeAscii(0, out, 2), Buffer.from(out.subarray(2, 5)).toString()])
      .toEqual([3, 't-1']);
    expect(index.writeAscii(1, out, 0)).toBe(-1);
    expect(index.writeAscii(2, out, 0)).toBe(0);
    expect(index.writeAscii(3, out, 0)).toBe(-1);
    expect([0, 1, 2, 3].map((i) => index.lengthAt(i))).toEqual([3, 4, 0, 1]);
  });

  it('keeps long ids exactly (lone surrogates included)', () => {
    const index = new StringIndex();
    const long = 'x'.repeat(10_000) + '\uD800' + 'é';
    index.add('a');
    index.add(long);
    expect(index.keyAt(1)).toBe(long);
    expect(index.find(long)).toBe(1);
    expect(index.find(long.slice(0, -1))).toBe(-1);
  });
});

describe('StringIndex.loadAscii', () => {
  const load = (ids: string[]): StringIndex | null => {
    const index = new StringIndex();
    const bytes = Buffer.from(ids.join(''), 'latin1');
    return index.loadAscii(bytes, ids.map((id) => id.length), ids.length) ? index : null;
  };

  it('builds what adding the ids one by one builds, and keeps working after', () => {
    const ascii = fc.string({ maxLength: 12, unit: fc.integer({ min: 0, max: 0x7f })
      .map((c) => String.fromCharCode(c)) });
    fc.assert(fc.property(fc.uniqueArray(ascii, { maxLength: 200 }), fc.array(ascii,
      { maxLength: 20 }), (ids, more) => {
      const loaded = load(ids);
      expect(loaded).not.toBeNull();
      const index = loaded as StringIndex;
      expect(index.size).toBe(ids.length);
      ids.forEach((id, i) => {
        expect(index.find(id)).toBe(i);
        expect(index.keyAt(i)).toBe(id);
      });
      const all = [...ids];
      for (const id of more) {
        if (index.find(id) !== -1) continue;
        expect(index.add(id)).toBe(all.length);
        all.push(id);
      }
      all.forEach((id, i) => expect(index.find(id)).toBe(i));
      const last = all.pop();
      if (last !== undefined) {
        index.removeLast();
        expect(index.find(last)).toBe(-1);
        all.forEach((id, i) => expect(index.find(id)).toBe(i));
      }
    }));
  });

  it('refuses a repeated id, a non-ASCII byte and lengths past the bytes', () => {
    expect(load(['a', 'bc', 'a'])).toBeNull();
    expect(load(['', ''])).toBeNull();
    expect(new StringIndex().loadAscii(Uint8Array.from([0x61, 0xc3, 0xa9]), [1, 2], 2))
      .toBe(false);
    expect(new StringIndex().loadAscii(Uint8Array.from([0x61]), [1, 5], 2)).toBe(false);
    const wider = load(['a', 'b']) as StringIndex;
    expect(wider.add('\u0100')).toBe(2);
    expect([wider.find('a'), wider.find('b'), wider.find('\u0100')]).toEqual([0, 1, 2]);
    expect(wider.keyAt(2)).toBe('\u0100');
    const used = new StringIndex();
    used.add('x');
    expect(() => used.loadAscii(Uint8Array.from([0x61]), [1], 1)).toThrow();
  });
});
