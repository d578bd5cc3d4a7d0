// Regenerates the error table of protocol/API.md from the catalogue in protocol/errors.ts
// (the one source of truth). `node scripts/api-errors.mjs` rewrites the table in place;
// test/docs.test.ts fails when the two disagree.
import { readFileSync, writeFileSync } from 'node:fs';

const START = '<!-- error-table:start -->';
const END = '<!-- error-table:end -->';

export function errorTable(errors) {
  const rows = Object.entries(errors).map(([code, e]) =>
    `| \`${code}\` | ${e.status} | ${e.retryable ? 'yes' : 'no'} | ${e.message} |`);
  return ['| code | HTTP status | retryable | meaning |', '| --- | --- | --- | --- |', ...rows]
    .join('\n');
}

export function withTable(doc, table) {
  const a = doc.indexOf(START);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error('protocol/API.md has no error-table markers');
  return `${doc.slice(0, a + START.length)}\n${table}\n${doc.slice(b)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { ERRORS } = await import('../dist/protocol/errors.js');
  const file = new URL('../protocol/API.md', import.meta.url);
  writeFileSync(file, withTable(readFileSync(file, 'utf8'), errorTable(ERRORS)));
  console.log('protocol/API.md error table updated');
}
