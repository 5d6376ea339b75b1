/**
 * Writing a whole chunk to a sink whose `write` may be partial.
 *
 * @module
 */

/**
 * Where streamed bytes go: a `Deno.FsFile` (whose `write` may be partial and returns the count)
 * or a `WritableStreamDefaultWriter<Uint8Array>` (whose `write` takes the whole chunk).
 */
export interface ByteSink {
  write(chunk: Uint8Array): Promise<number | void>;
}

/** Writes all of `bytes`, looping over partial writes. */
export async function writeAll(sink: ByteSink, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    const n = await sink.write(bytes.subarray(off));
    // A stream writer takes the whole chunk and returns nothing.
    off += typeof n === "number" ? n : bytes.length - off;
  }
}
