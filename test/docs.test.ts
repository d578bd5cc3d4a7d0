// Docs and code come from the same table: the error table in protocol/API.md must be exactly
// what the catalogue in protocol/errors.ts generates.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { ERRORS } from '../protocol/errors.js';
// @ts-expect-error plain ESM script without types
import { errorTable, withTable } from '../scripts/api-errors.mjs';

describe('protocol/API.md', () => {
  test('lists every error code of the catalogue, in order, with status and retryable', () => {
    const doc = readFileSync(new URL('../protocol/API.md', import.meta.url), 'utf8');
    const regenerated = (withTable as (d: string, t: string) => string)(
      doc, (errorTable as (e: typeof ERRORS) => string)(ERRORS));
    expect(doc).toBe(regenerated);
    for (const code of Object.keys(ERRORS)) expect(doc).toContain(`| \`${code}\` |`);
  });
});
