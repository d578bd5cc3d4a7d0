// Indexed binary min-heap of pending transfers ordered by (expiresAt, tenant, id), so the
// shard voids expired holds in one deterministic order without scanning every transfer.
// Pure data structure: it never reads the clock and never decides what expiry means.

/** What the heap needs from an item: its order key and a slot for its own position. */
export interface TimeoutItem {
  readonly tenant: string;
  readonly id: string;
  expiresAt: number | null;
  /** position inside the heap array, -1 when not in the heap */
  heapIndex: number;
}

/** Total order: the (tenant, id) pair is unique in a shard, so no two items tie. */
export function compareTimeouts(a: TimeoutItem, b: TimeoutItem): number {
  const ea = a.expiresAt ?? 0;
  const eb = b.expiresAt ?? 0;
  if (ea !== eb) return ea < eb ? -1 : 1;
  if (a.tenant !== b.tenant) return a.tenant < b.tenant ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return 0;
}

export class TimeoutHeap<T extends TimeoutItem> {
  readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    if (item.heapIndex !== -1 || item.expiresAt === null) {
      throw new Error(`timeout heap: ${item.tenant}/${item.id} is already queued or has no expiry`);
    }
    item.heapIndex = this.items.length;
    this.items.push(item);
    this.siftUp(item.heapIndex);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  remove(item: T): void {
    const index = item.heapIndex;
    if (this.items[index] !== item) {
      throw new Error(`timeout heap: ${item.tenant}/${item.id} is not at its recorded index`);
    }
    const last = this.items.pop();
    item.heapIndex = -1;
    if (last === undefined || last === item) return;
    this.items[index] = last;
    last.heapIndex = index;
    this.siftDown(index);
    this.siftUp(last.heapIndex);
  }

  /** Heap property and index bookkeeping; throws on the first violation (verify only). */
  verify(): void {
    for (let i = 0; i < this.items.length; i++) {
      const item = this.at(i);
      if (item.heapIndex !== i) throw new Error(`timeout heap: ${item.id} has a stale index`);
      if (i > 0 && compareTimeouts(this.at((i - 1) >> 1), item) > 0) {
        throw new Error(`timeout heap: order violated at ${item.tenant}/${item.id}`);
      }
    }
  }

  private at(index: number): T {
    const item = this.items[index];
    if (item === undefined) throw new Error(`timeout heap: index ${index} out of range`);
    return item;
  }

  private siftUp(start: number): void {
    let index = start;
    const item = this.at(index);
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = this.at(parentIndex);
      if (compareTimeouts(parent, item) <= 0) break;
      this.place(parent, index);
      index = parentIndex;
    }
    this.place(item, index);
  }

  private siftDown(start: number): void {
    let index = start;
    const item = this.at(index);
    const length = this.items.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      let child = left;
      if (right < length && compareTimeouts(this.at(right), this.at(left)) < 0) child = right;
      const smaller = this.at(child);
      if (compareTimeouts(item, smaller) <= 0) break;
      this.place(smaller, index);
      index = child;
    }
    this.place(item, index);
  }

  private place(item: T, index: number): void {
    this.items[index] = item;
    item.heapIndex = index;
  }
}
