import { describe, expect, test } from 'vitest';
import { Progress } from './progress.js';

describe('audit progress', () => {
  test('plain lines when stderr is not a terminal', () => {
    let text = '';
    const sab = new SharedArrayBuffer(2 * 2 * 8);
    const counters = new Float64Array(sab);
    const p = new Progress({ write: (s) => ((text += s), true) }, sab, [100, 100]);
    counters[0] = 500;
    counters[1] = 100;
    p.shardDone();
    p.stop();
    expect(text).toMatch(/^audit: 100\.0% 500 entries [\d,]+\/s 1\/2 shards in 00:00\n$/);
  });

  test('a redrawn bar with an ETA on a terminal', async () => {
    let text = '';
    const sab = new SharedArrayBuffer(2 * 8);
    const counters = new Float64Array(sab);
    const p = new Progress({ write: (s) => ((text += s), true), isTTY: true }, sab, [200]);
    p.start();
    counters[0] = 10;
    counters[1] = 50;
    await new Promise((r) => setTimeout(r, 450));
    p.stop();
    expect(text).toMatch(/\r\x1b\[2Kaudit \[#{6}-{18}\] 25\.0% 10 entries .* ETA \d\d:\d\d/);
    expect(text.endsWith('\n')).toBe(true);
  });
});
