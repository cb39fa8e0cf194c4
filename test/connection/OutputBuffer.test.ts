/**
 * The connection's output block: the bytes handed to the socket are exactly the requests, in
 * order, across block boundaries, with large values as their own chunks, and a tick of megabytes
 * costs a few block moves, not one per line.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as net from "node:net"
import { OutputBuffer } from "../../src/connection/OutputBuffer.js"
import { lineParts, withBytes } from "../../src/protocol/Request.js"

/** A socket that records its writes (corked writes as one). */
const recorder = () => {
  const writes: Array<Buffer> = []
  let corked: Array<Buffer> | undefined
  const socket = {
    write: (chunk: Uint8Array) => {
      const copy = Buffer.from(chunk)
      if (corked !== undefined) corked.push(copy)
      else writes.push(copy)
      return true
    },
    cork: () => {
      corked = []
    },
    uncork: () => {
      writes.push(Buffer.concat(corked!))
      corked = undefined
    },
  } as unknown as net.Socket
  return { socket, writes }
}

describe("OutputBuffer", () => {
  it("writes lines with their opaque tokens, values with their ends, one write per tick", () => {
    const out = new OutputBuffer()
    const { socket, writes } = recorder()
    out.text("version\r\n")
    out.lineText("mg ", "a", " v", 0)
    out.lineText("ms ", "ü-ключ", " 3 T0", 9_007_199_254_740_991)
    out.value(Buffer.from("abc"))
    out.writeTo(socket)
    out.writeTo(socket) // nothing new: no write
    out.lineText("md ", "k", "", 10)
    out.writeTo(socket)
    expect(writes.map((w) => w.toString("utf8"))).toEqual([
      "version\r\nmg a v O0\r\nms ü-ключ 3 T0 O9007199254740991\r\nabc\r\n",
      "md k O10\r\n",
    ])
  })

  it("writes every opaque token's digits, on both sides of 2^31", () => {
    const out = new OutputBuffer()
    const { socket, writes } = recorder()
    const tokens = [1, 9, 10, 99, 100, 65_535, 999_999_999, 1_000_000_000, 2_147_483_647, 2_147_483_648, 4_294_967_296, 123_456_789_012_345]
    for (const token of tokens) out.lineText("mn", "", "", token)
    out.writeTo(socket)
    expect(writes[0]!.toString("latin1")).toEqual(tokens.map((t) => `mn O${t}\r\n`).join(""))
  })

  it("a line from its prepared bytes is the same line", () => {
    const out = new OutputBuffer()
    const { socket, writes } = recorder()
    const parts = lineParts({ command: "mg", key: "Zm9v", flags: { b: true, f: true, v: true } })
    out.line(parts, 12)
    out.line(withBytes(parts), 345)
    out.line(withBytes(lineParts({ command: "ms", key: "ключ", flags: { T: 5 }, value: Buffer.from("xy") })), 6)
    out.value(Buffer.from("xy"))
    out.writeTo(socket)
    expect(writes.map((w) => w.toString("utf8"))).toEqual(["mg Zm9v b f v O12\r\nmg Zm9v b f v O345\r\nms ключ 2 T5 O6\r\nxy\r\n"])
  })

  it("keeps order across blocks and large values, which go out uncopied", () => {
    const out = new OutputBuffer()
    const { socket, writes } = recorder()
    const big = Buffer.alloc(200_000, 0x61)
    let expected = ""
    for (let i = 0; i < 5_000; i++) {
      out.lineText("mg ", `key-${i}`, " b f v", i)
      expected += `mg key-${i} b f v O${i}\r\n`
      if (i % 1_000 === 0) {
        out.value(big)
        expected += big.toString("latin1") + "\r\n"
      }
    }
    out.writeTo(socket)
    expect(writes).toHaveLength(1)
    expect(writes[0]!.toString("latin1")).toBe(expected)
  })

  // Growing the block by what one line needs made this quadratic (it hung the 25,000-key getMulti test).
  it("a tick of 500,000 lines is written whole", () => {
    const out = new OutputBuffer()
    const { socket, writes } = recorder()
    let bytes = 0
    for (let i = 0; i < 500_000; i++) {
      out.lineText("mg ", "Zm9vYmFyYmF6cXV4cXV1eA==", " b f v q", i)
      bytes += `mg Zm9vYmFyYmF6cXV4cXV1eA== b f v q O${i}\r\n`.length
    }
    out.writeTo(socket)
    expect(writes).toHaveLength(1)
    expect(writes[0]!.length).toBe(bytes)
    expect(writes[0]!.subarray(-42).toString("latin1")).toBe("mg Zm9vYmFyYmF6cXV4cXV1eA== b f v q O499999\r\n".slice(-42))
  })

  it("drops what was not written when cleared", () => {
    const out = new OutputBuffer()
    const { socket, writes } = recorder()
    out.lineText("mg ", "a", "", 1)
    out.clear()
    out.writeTo(socket)
    expect(writes).toEqual([])
  })
})
