// Shared benchmark reporting: the machine, medians over runs, a human table and a JSON file
// under .bench-results/. Measures nothing itself and asserts nothing.

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  const hi = sorted[mid] as number;
  return sorted.length % 2 ? hi : ((sorted[mid - 1] as number) + hi) / 2;
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function machine(): Record<string, string | number> {
  const cpus = os.cpus();
  return {
    node: process.version,
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    date: new Date().toISOString(),
  };
}

export function printTable(title: string, rows: Array<Record<string, string | number>>): void {
  process.stdout.write(`\n${title}\n`);
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0] as object);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const fmt = (vals: string[]): string =>
    vals.map((v, i) => v.padStart(widths[i] as number)).join('  ');
  process.stdout.write(fmt(cols) + '\n');
  for (const r of rows) process.stdout.write(fmt(cols.map((c) => String(r[c]))) + '\n');
}

export function writeResult(name: string, result: unknown): string {
  mkdirSync('.bench-results', { recursive: true });
  const file = `.bench-results/${name}-${Date.now()}.json`;
  writeFileSync(file, JSON.stringify({ machine: machine(), ...(result as object) }, null, 2));
  process.stdout.write(`\nwrote ${file}\n`);
  return file;
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}
