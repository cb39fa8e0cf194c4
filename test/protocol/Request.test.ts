import { describe, expect, it } from "@effect/vitest"
import { encode, encodeHeader } from "../../src/protocol/Request.js"

const text = (b: Buffer) => b.toString("latin1")

describe("encode", () => {
  it("mg writes flags in a fixed order", () => {
    expect(encodeHeader({ command: "mg", key: "foo", flags: {} })).toBe("mg foo\r\n")
    expect(encodeHeader({ command: "mg", key: "Zm9v", flags: { v: true, f: true, b: true } })).toBe("mg Zm9v b f v\r\n")
    expect(
      encodeHeader({
        command: "mg",
        key: "k",
        flags: { b: true, c: true, f: true, h: true, k: true, l: true, q: true, s: true, t: true, u: true, v: true, N: 30, R: 10, T: 60, O: "7" },
      }),
    ).toBe("mg k b c f h k l q s t u v N30 R10 T60 O7\r\n")
  })

  it("ms carries the data length and the value block", () => {
    const value = Buffer.from("a\r\nb")
    expect(text(encode({ command: "ms", key: "k", value, flags: { F: 5, T: 10 } }))).toBe("ms k 4 F5 T10\r\na\r\nb\r\n")
    expect(text(encode({ command: "ms", key: "k", value: new Uint8Array(0), flags: {} }))).toBe("ms k 0\r\n\r\n")
    expect(
      text(encode({ command: "ms", key: "k", value: Buffer.from("x"), flags: { b: true, c: true, k: true, q: true, I: true, C: 12345678901234567890n, M: "E", N: 5, O: "z" } })),
    ).toBe("ms k 1 b c k q I C12345678901234567890 ME N5 Oz\r\nx\r\n")
  })

  it("md and ma", () => {
    expect(encodeHeader({ command: "md", key: "k", flags: { b: true, I: true, T: 30 } })).toBe("md k b I T30\r\n")
    expect(encodeHeader({ command: "md", key: "k", flags: { C: 9n, q: true, k: true, O: "1" } })).toBe("md k k q C9 O1\r\n")
    expect(
      encodeHeader({ command: "ma", key: "n", flags: { v: true, D: 18446744073709551615n, M: "D", N: 0, J: 7n, T: 3, c: true, t: true } }),
    ).toBe("ma n c t v D18446744073709551615 J7 MD N0 T3\r\n")
    expect(encodeHeader({ command: "mn" })).toBe("mn\r\n")
  })
})
