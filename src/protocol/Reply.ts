/**
 * Meta protocol replies and their incremental parser.
 *
 * The parser is fed socket chunks as they come; a reply may be split at any byte, and one chunk may
 * hold many replies. Value blocks are never decoded as text: they are handed out as `subarray`s of
 * the chunk they arrived in (zero-copy), or of one concatenation when they span chunks.
 */
import { CorruptResponse } from "../Errors.js"

export type ReplyCode =
  | "HD" // success, no value
  | "VA" // value follows
  | "EN" // miss (mg)
  | "NS" // not stored
  | "EX" // exists: CAS mismatch
  | "NF" // not found
  | "MN" // end of a no-op batch
  | "ME" // meta debug line
  | "ERROR"
  | "CLIENT_ERROR"
  | "SERVER_ERROR"
  | "VERSION"
  | "STORED" // the answer to the authentication `set` (memcached -Y); no meta request gets it

/** One bit per reply code, for sets of the codes that may answer a request. */
export const replyBit: { readonly [C in ReplyCode]: number } = {
  HD: 1,
  VA: 2,
  EN: 4,
  NS: 8,
  EX: 16,
  NF: 32,
  MN: 64,
  ME: 128,
  ERROR: 256,
  CLIENT_ERROR: 512,
  SERVER_ERROR: 1024,
  VERSION: 2048,
  STORED: 4096,
}

export class Reply {
  /** error text (CLIENT_ERROR/SERVER_ERROR), the debug line (ME) or the version (VERSION) */
  message: string | undefined = undefined
  value: Uint8Array | undefined = undefined
  cas: bigint | undefined = undefined
  clientFlags: number | undefined = undefined
  hit: boolean | undefined = undefined
  lastAccess: number | undefined = undefined
  ttl: number | undefined = undefined
  size: number | undefined = undefined
  key: string | undefined = undefined
  /** the returned key is base64 (the `b` flag came back) */
  base64 = false
  /**
   * The opaque token. This client sends decimal numbers (` O<n>`), and a token of up to 15 digits
   * is read as a number (no string per reply); any other token stays text, which matches no
   * request of this client.
   */
  opaque: number | string | undefined = undefined
  /** W: this client won the recache token */
  won = false
  /** X: the item is stale */
  stale = false
  /** Z: a win token was already handed out */
  winSent = false
  constructor(readonly code: ReplyCode) {}
}

// Header lines are short (a 250-byte key in base64 and a handful of flags); anything longer
// without a line end is garbage, and waiting for more of it would hang.
const MAX_LINE = 8192
// Decimal tokens read as numbers (sizes, TTLs, opaque tokens) have at most this many digits: all of
// them are exact in a double. The parser (bytes) and `opaqueValue` (text) apply the same rule.
const MAX_NUMBER_DIGITS = 15
// memcached's largest item is 1 GiB (-I 1024m).
const MAX_VALUE = 1024 * 1024 * 1024

const CR = 13
const LF = 10
const SP = 32

const ascii = (buf: Uint8Array, from: number, to: number): string => {
  let s = ""
  for (let i = from; i < to; i++) s += String.fromCharCode(buf[i]!)
  return s
}

/** Parses a decimal token; -1 when it is not one. Allows a leading '-' (ttl -1). */
const parseIntToken = (buf: Uint8Array, from: number, to: number): number => {
  let i = from
  let sign = 1
  if (buf[i] === 45 /* - */) {
    sign = -1
    i++
  }
  if (i >= to || to - i > MAX_NUMBER_DIGITS) return Number.NaN
  let n = 0
  for (; i < to; i++) {
    const d = buf[i]! - 48
    if (d < 0 || d > 9) return Number.NaN
    n = n * 10 + d
  }
  return sign * n
}

const isDigits = (buf: Uint8Array, from: number, to: number): boolean => {
  if (from >= to || to - from > 20) return false
  for (let i = from; i < to; i++) {
    const d = buf[i]! - 48
    if (d < 0 || d > 9) return false
  }
  return true
}

/**
 * Internal: fed Node `Buffer`s by the connection. Stripped from the published declarations, which
 * must not need `@types/node`.
 * @internal
 */
export class ReplyParser {
  // Bytes of an unfinished header line, or the chunks of an unfinished value block.
  private pending: Array<Buffer> = []
  private pendingBytes = 0
  // The VA reply whose value block is being awaited, and the block's size.
  private valueReply: Reply | undefined = undefined
  private valueSize = 0
  // Bytes of a discarded value block still to come (see `discardValue`).
  private skip = 0
  private failed: CorruptResponse | undefined = undefined

  constructor(private readonly onReply: (reply: Reply) => void) {}

  /** Bytes of an unfinished value block held in memory. */
  get bufferedValueBytes(): number {
    return this.valueReply === undefined ? 0 : this.pendingBytes
  }

  /** Forgets everything buffered (the connection closed). */
  clear(): void {
    this.pending = []
    this.pendingBytes = 0
    this.valueReply = undefined
    this.skip = 0
  }

  /**
   * Drops the unfinished value block: what has arrived is released, the rest is skipped as it
   * arrives, and the reply is delivered with an empty value. For a reply nobody waits for, so
   * that a huge value does not sit in memory for no one.
   */
  discardValue(): void {
    if (this.valueReply === undefined || this.pendingBytes >= this.valueSize) return
    this.skip = this.valueSize - this.pendingBytes
    this.valueSize = 0
    this.pending = []
    this.pendingBytes = 0
  }

  /**
   * Feeds one chunk. Complete replies are delivered to `onReply` in order. Returns a
   * `CorruptResponse` when the stream is not meta protocol; the parser then stays failed.
   */
  push(chunk: Buffer): CorruptResponse | undefined {
    if (this.failed !== undefined) return this.failed
    if (this.skip > 0) {
      if (chunk.length <= this.skip) {
        this.skip -= chunk.length
        return undefined
      }
      chunk = chunk.subarray(this.skip)
      this.skip = 0
    }
    if (this.pendingBytes > 0) {
      // Only the unfinished value block or header line is joined; the rest of the chunk is parsed
      // where it lies (joining the whole chunk copied up to 64 KiB per read).
      let head: number
      if (this.valueReply !== undefined) {
        head = this.valueSize + 2 - this.pendingBytes
      } else {
        const lf = chunk.indexOf(LF)
        if (lf === -1) {
          head = chunk.length
          if (this.pendingBytes + head > MAX_LINE) return this.fail(new CorruptResponse({ reason: "reply line too long" }))
        } else {
          head = lf + 1
        }
      }
      if (head > chunk.length) {
        this.pending.push(chunk)
        this.pendingBytes += chunk.length
        return undefined
      }
      this.pending.push(chunk.subarray(0, head))
      const joined = Buffer.concat(this.pending, this.pendingBytes + head)
      this.pending = []
      this.pendingBytes = 0
      const err = this.parse(joined)
      if (err !== undefined) return this.fail(err)
      chunk = chunk.subarray(head)
    }
    const err = this.parse(chunk)
    return err === undefined ? undefined : this.fail(err)
  }

  private fail(err: CorruptResponse): CorruptResponse {
    this.failed = err
    return err
  }

  private stash(buf: Buffer, from: number): void {
    if (from < buf.length) {
      this.pending.push(buf.subarray(from))
      this.pendingBytes = buf.length - from
    }
  }

  private parse(buf: Buffer): CorruptResponse | undefined {
    let pos = 0
    const len = buf.length
    while (pos < len) {
      if (this.valueReply !== undefined) {
        const end = pos + this.valueSize
        if (end + 2 > len) {
          this.stash(buf, pos)
          return undefined
        }
        if (buf[end] !== CR || buf[end + 1] !== LF) return new CorruptResponse({ reason: "value block not followed by \\r\\n" })
        const reply = this.valueReply
        reply.value = buf.subarray(pos, end)
        this.valueReply = undefined
        pos = end + 2
        this.onReply(reply)
        continue
      }
      const lf = buf.indexOf(LF, pos)
      if (lf === -1) {
        if (len - pos > MAX_LINE) return new CorruptResponse({ reason: "reply line too long" })
        this.stash(buf, pos)
        return undefined
      }
      if (lf === pos || buf[lf - 1] !== CR) return new CorruptResponse({ reason: "reply line not terminated by \\r\\n" })
      const result = this.parseLine(buf, pos, lf - 1)
      if (result instanceof CorruptResponse) return result
      pos = lf + 1
      if (result.code === "VA") {
        this.valueReply = result
        continue
      }
      this.onReply(result)
    }
    return undefined
  }

  private parseLine(buf: Buffer, from: number, to: number): Reply | CorruptResponse {
    const c0 = buf[from]
    const c1 = buf[from + 1]
    let code: ReplyCode | undefined
    let p = from + 2
    if (c0 === 72 /* H */ && c1 === 68 /* D */) code = "HD"
    else if (c0 === 86 /* V */ && c1 === 65 /* A */) code = "VA"
    else if (c0 === 69 /* E */ && c1 === 78 /* N */) code = "EN"
    else if (c0 === 78 /* N */ && c1 === 83 /* S */) code = "NS"
    else if (c0 === 69 /* E */ && c1 === 88 /* X */) code = "EX"
    else if (c0 === 78 /* N */ && c1 === 70 /* F */) code = "NF"
    else if (c0 === 77 /* M */ && c1 === 78 /* N */) code = "MN"
    else if (c0 === 77 /* M */ && c1 === 69 /* E */) code = "ME"
    else return this.parseTextLine(buf, from, to)
    if (p < to && buf[p] !== SP) return this.parseTextLine(buf, from, to)
    const reply = new Reply(code)
    if (code === "ME") {
      reply.message = buf.toString("utf8", Math.min(p + 1, to), to)
      return reply
    }
    if (code === "MN") {
      return p === to ? reply : new CorruptResponse({ reason: "unexpected tokens after MN" })
    }
    if (code === "VA") {
      p++
      let q = p
      while (q < to && buf[q] !== SP) q++
      const size = parseIntToken(buf, p, q)
      if (!(size >= 0) || size > MAX_VALUE) return new CorruptResponse({ reason: "bad VA size" })
      this.valueSize = size
      p = q
    }
    // Flags: single letters, each optionally followed by a token, separated by single spaces.
    while (p < to) {
      if (buf[p] !== SP) return new CorruptResponse({ reason: "malformed flags" })
      p++
      const start = p
      while (p < to && buf[p] !== SP) p++
      if (p === start) return new CorruptResponse({ reason: "empty flag" })
      const err = this.applyFlag(reply, buf, start, p)
      if (err !== undefined) return err
    }
    return reply
  }

  private applyFlag(reply: Reply, buf: Buffer, start: number, end: number): CorruptResponse | undefined {
    const flag = buf[start]!
    const t = start + 1
    switch (flag) {
      case 99 /* c */:
        if (!isDigits(buf, t, end)) return new CorruptResponse({ reason: "bad cas token" })
        reply.cas = BigInt(ascii(buf, t, end))
        return undefined
      case 102 /* f */: {
        const n = parseIntToken(buf, t, end)
        if (!(n >= 0) || n > 0xffffffff) return new CorruptResponse({ reason: "bad client flags" })
        reply.clientFlags = n
        return undefined
      }
      case 104 /* h */:
        if (end !== t + 1 || (buf[t] !== 48 && buf[t] !== 49)) return new CorruptResponse({ reason: "bad hit flag" })
        reply.hit = buf[t] === 49
        return undefined
      case 108 /* l */:
      case 116 /* t */:
      case 115 /* s */: {
        const n = parseIntToken(buf, t, end)
        if (Number.isNaN(n) || n < -1) return new CorruptResponse({ reason: "bad numeric flag" })
        if (flag === 108) reply.lastAccess = n
        else if (flag === 116) reply.ttl = n
        else reply.size = n
        return undefined
      }
      case 107 /* k */:
        reply.key = buf.toString("utf8", t, end)
        return undefined
      case 79 /* O */:
        reply.opaque = end - t <= MAX_NUMBER_DIGITS && isDigits(buf, t, end) ? parseIntToken(buf, t, end) : ascii(buf, t, end)
        return undefined
      case 98 /* b */:
        reply.base64 = true
        return undefined
      case 87 /* W */:
        reply.won = true
        return undefined
      case 88 /* X */:
        reply.stale = true
        return undefined
      case 90 /* Z */:
        reply.winSent = true
        return undefined
      default:
        // Flags this client did not ask for (newer servers): tolerated, if they look like flags.
        if ((flag >= 65 && flag <= 90) || (flag >= 97 && flag <= 122)) return undefined
        return new CorruptResponse({ reason: "invalid flag byte" })
    }
  }

  private parseTextLine(buf: Buffer, from: number, to: number): Reply | CorruptResponse {
    const line = buf.toString("latin1", from, to)
    // memcached sends "ERROR <text>" when it refuses a connection ("Too many open connections").
    if (line === "ERROR" || line.startsWith("ERROR ")) return withMessage(new Reply("ERROR"), line)
    if (line === "CLIENT_ERROR" || line.startsWith("CLIENT_ERROR ")) return withMessage(new Reply("CLIENT_ERROR"), line.slice(13))
    if (line === "SERVER_ERROR" || line.startsWith("SERVER_ERROR ")) return withMessage(new Reply("SERVER_ERROR"), line.slice(13))
    if (line.startsWith("VERSION ")) return withMessage(new Reply("VERSION"), line.slice(8))
    if (line === "STORED") return new Reply("STORED")
    return new CorruptResponse({ reason: `unknown reply ${JSON.stringify(line.slice(0, 40))}` })
  }
}

/** An opaque token given as text (the in-memory engine), read as the parser reads one. */
const NUMERIC_OPAQUE = new RegExp(`^[0-9]{1,${MAX_NUMBER_DIGITS}}$`)
export const opaqueValue = (token: string): number | string => (NUMERIC_OPAQUE.test(token) ? Number(token) : token)

const withMessage = (reply: Reply, message: string): Reply => {
  reply.message = message
  return reply
}
