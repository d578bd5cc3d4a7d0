// Keeps the README true: runs every example between the readme-examples markers, in order,
// with bash against a real pod, and compares each answer with the JSON printed after it
// (only times may differ). The WebSocket example needs the build: `npm test` builds first.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startPod, type Pod } from './api-support.js';

interface Example {
  script: string;
  expected: unknown;
}

function examples(): Example[] {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('<!-- readme-examples:start -->');
  const end = readme.indexOf('<!-- readme-examples:end -->');
  if (start < 0 || end < start) throw new Error('README has no readme-examples section');
  const section = readme.slice(start, end);
  const blocks = [...section.matchAll(/```(bash|json)\n([\s\S]*?)```/g)];
  const out: Example[] = [];
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i];
    const next = blocks[i + 1];
    if (b?.[1] !== 'bash') continue;
    if (next?.[1] !== 'json') throw new Error(`README example without an answer:\n${b[2]}`);
    out.push({ script: b[2] ?? '', expected: JSON.parse(next[2] ?? '') });
    i++;
  }
  return out;
}

/** Times differ from run to run; everything else must match exactly. */
function withoutTimes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutTimes);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = k === 'createdAt' || k === 'expiresAt' ? '<time>' : withoutTimes(v);
    }
    return out;
  }
  return value;
}

let pod: Pod;
let token = '';

beforeAll(async () => {
  pod = await startPod();
  const created = await pod.server.tenants.createTenant('readme');
  if (!created.ok) throw new Error(created.error.code);
  token = created.token;
});

afterAll(async () => {
  await pod.stop();
});

describe('README examples', () => {
  const all = examples();

  test('there are examples to check', () => {
    expect(all.length).toBeGreaterThan(8);
    expect(existsSync(new URL('../dist/protocol/client.js', import.meta.url))).toBe(true);
  });

  all.forEach((ex, i) => {
    test(`example ${i + 1} answers as documented: ${ex.script.split('\n')[0]}`, async () => {
      // async: the pod serves from this very process, a sync exec would block it
      const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', ex.script], {
        cwd: new URL('..', import.meta.url),
        env: { ...process.env, LEDGER: pod.url, TOKEN: token },
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(withoutTimes(JSON.parse(stdout))).toEqual(withoutTimes(ex.expected));
    });
  });
});
