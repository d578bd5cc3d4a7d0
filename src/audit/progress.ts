// Audit progress on stderr: a redrawn bar with rate and ETA on a terminal, a plain line every
// few seconds otherwise. Reads counters the shard audits publish; never touches the audit.

export interface ProgressStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

const TTY_INTERVAL_MS = 200;
const PLAIN_INTERVAL_MS = 5000;
const BAR_WIDTH = 24;

function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/**
 * counters: [entries, units] per shard slot, written by the audits (other threads included).
 * totalUnits: the expected units per slot (bytes of segment files, or rows), for the ETA.
 */
export class Progress {
  private timer: NodeJS.Timeout | null = null;
  private readonly started = performance.now();
  private readonly counters: Float64Array;
  private shardsDone = 0;

  constructor(
    private readonly stream: ProgressStream,
    private readonly progress: SharedArrayBuffer,
    private readonly totalUnits: readonly number[],
  ) {
    this.counters = new Float64Array(progress);
  }

  start(): void {
    const tty = this.stream.isTTY === true;
    this.timer = setInterval(() => this.draw(false), tty ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS);
    this.timer.unref();
  }

  shardDone(): void {
    this.shardsDone++;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.draw(true);
  }

  private draw(final: boolean): void {
    let entries = 0;
    let units = 0;
    let total = 0;
    for (let i = 0; i < this.totalUnits.length; i++) {
      entries += this.counters[2 * i] ?? 0;
      units += this.counters[2 * i + 1] ?? 0;
      total += this.totalUnits[i] ?? 0;
    }
    const seconds = (performance.now() - this.started) / 1000;
    const rate = seconds > 0 ? entries / seconds : 0;
    const fraction = final ? 1 : total > 0 ? Math.min(1, units / total) : 0;
    const eta = fraction > 0 ? (seconds / fraction) * (1 - fraction) : Number.NaN;
    const shards = `${this.shardsDone}/${this.totalUnits.length} shards`;
    const text = `${(fraction * 100).toFixed(1)}% ${int(entries)} entries ${int(rate)}/s ` +
      `${shards} ${final ? `in ${duration(seconds)}` : `ETA ${duration(eta)}`}`;
    if (this.stream.isTTY === true) {
      const filled = Math.round(fraction * BAR_WIDTH);
      const bar = '#'.repeat(filled) + '-'.repeat(BAR_WIDTH - filled);
      this.stream.write(`\r\x1b[2Kaudit [${bar}] ${text}${final ? '\n' : ''}`);
    } else {
      this.stream.write(`audit: ${text}\n`);
    }
  }
}
