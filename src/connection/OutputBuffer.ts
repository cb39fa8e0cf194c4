/**
 * A connection's output for one tick, as bytes.
 *
 * Request lines are copied in as they are sent, character by character (ASCII; anything else
 * through UTF-8), with the opaque token written as digits: no string is built per request, and the
 * socket gets one buffer per tick. Bytes handed to the socket are never written again: the next
 * tick continues after them in the same block, and a full block is replaced, never reused. Large
 * value blocks are not copied: they go out as chunks of one corked write.
 */
import type * as net from "node:net"
import type { LineParts } from "../protocol/Request.js"

const BLOCK_BYTES = 64 * 1024
// Smaller value blocks are copied next to their request line; larger ones are written as they are.
const COPY_VALUES_BELOW = 16 * 1024
const CR = 13
const LF = 10
const EMPTY = Buffer.alloc(0)

export class OutputBuffer {
  private block: Buffer = EMPTY
  // This tick's bytes are block[start..end); what the socket has is before `start`.
  private start = 0
  private end = 0
  // Earlier parts of this tick's output, when a large value block was queued.
  private chunks: Array<Uint8Array> = []

  /** Text as it is (a fixed command such as `version\r\n`). */
  text(s: string): void {
    this.ensure(s.length * 3)
    this.put(s)
  }

  /** `<head><key>[ <size>]<tail> O<opaque>\r\n`, from the line's bytes when it has them. */
  line(line: LineParts, opaque: number): void {
    const bytes = line.bytes
    if (bytes === undefined) return this.lineText(line.head, line.key, line.tail, opaque, false, line.size)
    this.ensure(bytes.byteLength + 20)
    this.block.set(bytes, this.end)
    this.end += bytes.byteLength
    this.lineEnd(opaque)
  }

  /**
   * `<head><key>[ <size>]<tail> O<opaque>\r\n`; `ascii`: the key is known to be ASCII (base64);
   * `size`: the value's, for `ms`.
   */
  lineText(head: string, key: string, tail: string, opaque: number, ascii = false, size?: number): void {
    this.ensure((head.length + key.length + tail.length) * 3 + 40)
    this.put(head)
    if (ascii) this.putAscii(key)
    else this.put(key)
    if (size !== undefined) {
      this.block[this.end++] = 32 // " "
      this.putInt(size)
    }
    this.put(tail)
    this.block[this.end++] = 32 // " "
    this.block[this.end++] = 79 // "O"
    this.lineEnd(opaque)
  }

  private lineEnd(opaque: number): void {
    this.putInt(opaque)
    const block = this.block
    block[this.end++] = CR
    block[this.end++] = LF
  }

  /** A value block and its `\r\n`. */
  value(value: Uint8Array): void {
    if (value.byteLength < COPY_VALUES_BELOW) {
      this.ensure(value.byteLength + 2)
      this.block.set(value, this.end)
      this.end += value.byteLength
    } else {
      this.cut()
      this.chunks.push(value)
      this.ensure(2)
    }
    this.block[this.end++] = CR
    this.block[this.end++] = LF
  }

  /** Hands this tick's bytes to the socket: one write, or one corked write of its chunks. */
  writeTo(socket: net.Socket): void {
    if (this.chunks.length === 0) {
      if (this.end > this.start) socket.write(this.block.subarray(this.start, this.end))
    } else {
      this.cut()
      socket.cork()
      for (const chunk of this.chunks) socket.write(chunk)
      socket.uncork()
      this.chunks = []
    }
    this.start = this.end
  }

  /** Drops what was not written, and the block (the connection closed). */
  clear(): void {
    this.chunks = []
    this.block = EMPTY
    this.start = 0
    this.end = 0
  }

  private cut(): void {
    if (this.end > this.start) {
      this.chunks.push(this.block.subarray(this.start, this.end))
      this.start = this.end
    }
  }

  /**
   * Room for `bytes` more: a new block when this one is full, with this tick's bytes moved over.
   * It at least doubles what this tick needs, so a tick that writes megabytes (a getMulti of
   * 100,000 keys) moves its bytes a few times, not once per line.
   */
  private ensure(bytes: number): void {
    if (this.end + bytes <= this.block.length) return
    const pending = this.end - this.start
    const next = Buffer.allocUnsafe(Math.max(BLOCK_BYTES, 2 * (pending + bytes)))
    this.block.copy(next, 0, this.start, this.end)
    this.block = next
    this.start = 0
    this.end = pending
  }

  /** Copies a string in; room for 3 bytes per UTF-16 unit was ensured. */
  private put(s: string): void {
    const block = this.block
    let at = this.end
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) {
        this.end += block.write(s, this.end, "utf8")
        return
      }
      block[at++] = c
    }
    this.end = at
  }

  private putAscii(s: string): void {
    const block = this.block
    let at = this.end
    for (let i = 0; i < s.length; i++) block[at++] = s.charCodeAt(i)
    this.end = at
  }

  /** A non-negative integer as decimal digits. */
  private putInt(n: number): void {
    // Below 2^31 (every value size, and opaque tokens for the first two billion requests of a
    // connection) the digits come from int32 division: 16 ns a token against 45 with Math.floor.
    if (n > 0x7fffffff) return this.putLargeInt(n)
    let digits = 1
    for (let m = n; m >= 10; m = (m / 10) | 0) digits++
    let at = this.end + digits
    this.end = at
    const block = this.block
    do {
      const q = (n / 10) | 0
      block[--at] = 48 + n - q * 10
      n = q
    } while (n > 0)
  }

  private putLargeInt(n: number): void {
    let digits = 1
    for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++
    let at = this.end + digits
    this.end = at
    const block = this.block
    do {
      block[--at] = 48 + (n % 10)
      n = Math.floor(n / 10)
    } while (n > 0)
  }
}
