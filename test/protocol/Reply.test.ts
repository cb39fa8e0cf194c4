import { describe, expect, it } from "@effect/vitest"
import { type Reply, ReplyParser } from "../../src/protocol/Reply.js"

/** Parses `chunks` in order and returns the replies in a comparable form, or the error. */
const parse = (chunks: ReadonlyArray<Buffer>) => {
  const out: Array<Record<string, unknown>> = []
  const parser = new ReplyParser((r: Reply) => out.push({ ...r, value: r.value === undefined ? undefined : Buffer.from(r.value).toString("latin1") }))
  for (const c of chunks) {
    const err = parser.push(c)
    if (err !== undefined) return { error: err._tag, replies: out }
  }
  return { replies: out }
}

const STREAM = Buffer.from(
  [
    "VERSION 1.6.18\r\n",
    "HD\r\n",
    "VA 5 f7 c123456789012345 t-1 h1 l3 s5 W X Z Ozz kZm9v b\r\nhe\r\nl\r\n",
    "VA 0\r\n\r\n",
    "EN Oab kfoo\r\n",
    "NS\r\nEX\r\nNF\r\n",
    "VA 2 t30\r\n42\r\n",
    "ME foo exp=-1 la=2 cas=3 fetch=no cls=1 size=63\r\n",
    "CLIENT_ERROR bad command line format\r\n",
    "SERVER_ERROR object too large for cache\r\n",
    "ERROR\r\n",
    "MN\r\n",
  ].join(""),
  "latin1",
)

describe("ReplyParser", () => {
  const whole = parse([STREAM])

  it("parses every reply kind with its flags", () => {
    expect(whole.error).toBeUndefined()
    const codes = whole.replies.map((r) => r.code)
    expect(codes).toEqual(["VERSION", "HD", "VA", "VA", "EN", "NS", "EX", "NF", "VA", "ME", "CLIENT_ERROR", "SERVER_ERROR", "ERROR", "MN"])
    expect(whole.replies[2]).toMatchObject({
      value: "he\r\nl",
      clientFlags: 7,
      cas: 123456789012345n,
      ttl: -1,
      hit: true,
      lastAccess: 3,
      size: 5,
      won: true,
      stale: true,
      winSent: true,
      opaque: "zz",
      key: "Zm9v",
      base64: true,
    })
    expect(whole.replies[3]).toMatchObject({ value: "" })
    expect(whole.replies[4]).toMatchObject({ opaque: "ab", key: "foo" })
    expect(whole.replies[10]).toMatchObject({ message: "bad command line format" })
    expect(whole.replies[11]).toMatchObject({ message: "object too large for cache" })
    expect(whole.replies[0]).toMatchObject({ message: "1.6.18" })
  })

  it("reads a decimal opaque token of up to 15 digits as a number, any other token as text", () => {
    const got = parse([Buffer.from("HD O7\r\nEN O123456789012345\r\nHD O1234567890123456\r\nHD O12a\r\nHD O\r\n", "latin1")])
    expect(got.error).toBeUndefined()
    expect(got.replies.map((r) => r.opaque)).toEqual([7, 123456789012345, "1234567890123456", "12a", ""])
  })

  it("gives the same replies when the stream is split at any byte", () => {
    for (let i = 1; i < STREAM.length; i++) {
      expect(parse([STREAM.subarray(0, i), STREAM.subarray(i)])).toEqual(whole)
    }
  })

  it("gives the same replies when split at every byte pair and byte by byte", () => {
    for (let i = 1; i < STREAM.length; i += 3) {
      for (let j = i + 1; j < STREAM.length; j += 5) {
        expect(parse([STREAM.subarray(0, i), STREAM.subarray(i, j), STREAM.subarray(j)])).toEqual(whole)
      }
    }
    const bytes = Array.from({ length: STREAM.length }, (_, i) => STREAM.subarray(i, i + 1))
    expect(parse(bytes)).toEqual(whole)
  })

  it("hands out values without copying when they arrive in one chunk", () => {
    const chunk = Buffer.from("VA 3\r\nabc\r\n")
    let value: Uint8Array | undefined
    new ReplyParser((r) => (value = r.value)).push(chunk)
    expect(value!.buffer).toBe(chunk.buffer)
  })

  it("reassembles a large value spread over many chunks", () => {
    const big = Buffer.alloc(1_000_000, 7)
    const stream = Buffer.concat([Buffer.from(`VA ${big.length}\r\n`), big, Buffer.from("\r\nHD\r\n")])
    const chunks: Array<Buffer> = []
    for (let i = 0; i < stream.length; i += 65536) chunks.push(stream.subarray(i, i + 65536))
    const out: Array<Reply> = []
    const parser = new ReplyParser((r) => out.push(r))
    for (const c of chunks) expect(parser.push(c)).toBeUndefined()
    expect(out.map((r) => r.code)).toEqual(["VA", "HD"])
    expect(Buffer.compare(Buffer.from(out[0]!.value!), big)).toBe(0)
  })

  it("gives a typed CorruptResponse for garbage, never a throw", () => {
    for (const bad of [
      "XX\r\n",
      "HD\n",
      "VA abc\r\n",
      "VA 3\r\nabcde\r\n",
      "VA -1\r\n",
      "HD c12x\r\n",
      "HD h7\r\n",
      "HD  f1\r\n",
      "HDX\r\n",
      "END\r\n",
      "MN extra\r\n",
      "\r\n",
      "HD \u0001\r\n",
    ]) {
      const result = parse([Buffer.from(bad, "latin1")])
      expect(result.error, bad).toBe("CorruptResponse")
    }
  })

  it("does not wait forever for a line that never ends", () => {
    const result = parse([Buffer.alloc(10_000, 65)])
    expect(result.error).toBe("CorruptResponse")
  })

  it("stays failed after corruption", () => {
    const parser = new ReplyParser(() => {})
    expect(parser.push(Buffer.from("nope\r\n"))?._tag).toBe("CorruptResponse")
    expect(parser.push(Buffer.from("HD\r\n"))?._tag).toBe("CorruptResponse")
  })
})
