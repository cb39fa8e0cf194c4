import { describe, expect, it } from "@effect/vitest"
import { makeKeyEncoder, validatePlainKey } from "../../src/client/Keys.js"
import { xxhash64 } from "../../src/client/xxhash64.js"

describe("xxhash64", () => {
  it("matches the reference vectors (short and ≥ 32-byte inputs)", () => {
    const h = (s: string) => xxhash64(Buffer.from(s)).toString(16).padStart(16, "0")
    expect(h("")).toBe("ef46db3751d8e999")
    expect(h("a")).toBe("d24ec4f1a98c6e5b")
    expect(h("abc")).toBe("44bc2cf5ad770999")
    expect(h("Nobody inspects the spammish repetition")).toBe("fbcea83c8a378bf1")
  })
})

describe("key encoders", () => {
  it("binary keys: 128-bit digest in base64, stable, and distinct per key", () => {
    const enc = makeKeyEncoder({ binary: true, hash: "sha256-128" })
    const a = enc.encode("user:1")
    expect(a).toMatch(/^[A-Za-z0-9+/]{22}==$/)
    expect(enc.encode("user:1")).toBe(a)
    expect(enc.encode("user:2")).not.toBe(a)
    expect(typeof enc.encode("x".repeat(10_000))).toBe("string")
    expect(enc.encode("")).toMatchObject({ _tag: "MalformedKey" })
  })

  it("xxhash64 keys: the 8 digest bytes big-endian in base64 (kinescope/mc's wire key)", () => {
    const enc = makeKeyEncoder({ binary: true, hash: "xxhash64" })
    expect(enc.encode("abc")).toBe(Buffer.from("44bc2cf5ad770999", "hex").toString("base64"))
  })

  it("plain keys follow memcached's rules", () => {
    expect(validatePlainKey("ok:key")).toBeUndefined()
    expect(validatePlainKey("k".repeat(250))).toBeUndefined()
    expect(validatePlainKey("k".repeat(251))?.reason).toMatch(/250 bytes/)
    expect(validatePlainKey("ж".repeat(126))?.reason).toMatch(/250 bytes/)
    expect(validatePlainKey("a b")?.reason).toMatch(/whitespace/)
    expect(validatePlainKey("a\u007f")?.reason).toMatch(/control/)
    expect(validatePlainKey("")?.reason).toMatch(/empty/)
    expect(makeKeyEncoder({ binary: false, hash: "sha256-128" }).encode("a b")).toMatchObject({ _tag: "MalformedKey" })
  })
})
