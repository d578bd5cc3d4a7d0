// Growth of the reusable encode buffers (journal codec, binary COPY): doubling, copying only
// the bytes in use. Pure; allocates only when the buffer must grow.

/** `buf` itself when `need` bytes fit, else a doubled buffer holding its first `used` bytes. */
export function grownBuffer(buf: Buffer, used: number, need: number): Buffer {
  if (need <= buf.length) return buf;
  let size = Math.max(1, buf.length) * 2;
  while (size < need) size *= 2;
  const next = Buffer.allocUnsafe(size);
  buf.copy(next, 0, 0, used);
  return next;
}
