import { describe, expect, it } from "@effect/vitest"
import { MemoryEngine } from "../../src/memory/MemoryEngine.js"
import type { ArithmeticFlags, DeleteFlags, GetFlags, SetFlags } from "../../src/protocol/Request.js"
import type { Reply } from "../../src/protocol/Reply.js"

// A whole second, so that `T0 + n * 1000` are second boundaries.
const T0 = 1_700_000_000_000
const at = (seconds: number): number => T0 + seconds * 1000

const text = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString("latin1")
const b64 = (s: string): string => Buffer.from(s, "latin1").toString("base64")

/** The reply's set fields, for toMatchObject / toEqual. */
const view = (r: Reply | undefined) => {
  if (r === undefined) return undefined
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(r)) {
    if (v === undefined || v === false) continue
    out[k] = k === "value" ? text(v as Uint8Array) : v
  }
  return out
}

class Harness {
  readonly engine: MemoryEngine
  now = T0
  constructor(maxItemSize?: number) {
    this.engine = new MemoryEngine(maxItemSize === undefined ? undefined : { maxItemSize })
  }
  mg(key: string, flags: GetFlags = {}) {
    return view(this.engine.execute({ command: "mg", key, flags }, this.now))
  }
  ms(key: string, value: string | Uint8Array, flags: SetFlags = {}) {
    const bytes = typeof value === "string" ? Buffer.from(value, "latin1") : value
    return view(this.engine.execute({ command: "ms", key, flags, value: bytes }, this.now))
  }
  md(key: string, flags: DeleteFlags = {}) {
    return view(this.engine.execute({ command: "md", key, flags }, this.now))
  }
  ma(key: string, flags: ArithmeticFlags = {}) {
    return view(this.engine.execute({ command: "ma", key, flags }, this.now))
  }
  cas(key: string): bigint {
    return this.engine.execute({ command: "mg", key, flags: { c: true, u: true } }, this.now)!.cas!
  }
}

describe("MemoryEngine", () => {
  describe("mn and housekeeping", () => {
    it("mn answers MN", () => {
      const h = new Harness()
      expect(view(h.engine.execute({ command: "mn" }, T0))).toEqual({ code: "MN" })
    })

    it("size counts live items and flushAll empties the store", () => {
      const h = new Harness()
      h.ms("a", "1")
      h.ms("b", "2", { T: 10 })
      expect(h.engine.size(at(0))).toBe(2)
      expect(h.engine.size(at(10))).toBe(1)
      h.engine.flushAll()
      expect(h.engine.size(at(0))).toBe(0)
      expect(h.mg("a")).toEqual({ code: "EN" })
    })
  })

  describe("mg", () => {
    it("miss is EN, echoing O and k", () => {
      const h = new Harness()
      expect(h.mg("nokey", { v: true, k: true, O: "123" })).toEqual({ code: "EN", key: "nokey", opaque: 123 })
    })

    it("q suppresses EN but not hits (HD included)", () => {
      const h = new Harness()
      expect(h.mg("k", { q: true, v: true, O: "x" })).toBeUndefined()
      h.ms("k", "v")
      expect(h.mg("k", { q: true })).toEqual({ code: "HD" })
      expect(h.mg("k", { q: true, v: true })).toEqual({ code: "VA", value: "v" })
    })

    it("without v a hit is HD; v returns the value; s its size; f the client flags; c the CAS", () => {
      const h = new Harness()
      const set = h.ms("k", "hello", { F: 42, c: true })
      expect(h.mg("k")).toEqual({ code: "HD" })
      expect(h.mg("k", { v: true, s: true, f: true, c: true })).toEqual({
        code: "VA",
        value: "hello",
        size: 5,
        clientFlags: 42,
        cas: set!["cas"],
      })
    })

    it("t is the remaining TTL, -1 without expiry; T touches", () => {
      const h = new Harness()
      h.ms("k", "v", { T: 100 })
      h.now = at(40)
      expect(h.mg("k", { t: true })).toEqual({ code: "HD", ttl: 60 })
      h.ms("n", "v")
      expect(h.mg("n", { t: true })).toEqual({ code: "HD", ttl: -1 })
      // t is written before T: it reports the TTL from before the touch.
      expect(h.mg("k", { t: true, T: 10 })).toEqual({ code: "HD", ttl: 60 })
      expect(h.mg("k", { t: true })).toEqual({ code: "HD", ttl: 10 })
      h.now = at(50)
      expect(h.mg("k")).toEqual({ code: "EN" })
    })

    it("h and l report the state before this access; u leaves it alone", () => {
      const h = new Harness()
      h.ms("k", "v")
      h.now = at(2)
      expect(h.mg("k", { h: true, l: true, u: true })).toEqual({ code: "HD", lastAccess: 2 })
      // First fetch: reported unfetched, then marked fetched (memcached does not move l yet).
      expect(h.mg("k", { h: true, l: true })).toEqual({ code: "HD", lastAccess: 2 })
      h.now = at(3)
      expect(h.mg("k", { h: true, l: true })).toEqual({ code: "HD", hit: true, lastAccess: 3 })
      expect(h.mg("k", { h: true, l: true })).toEqual({ code: "HD", hit: true, lastAccess: 0 })
      h.now = at(5)
      expect(h.mg("k", { h: true, l: true, u: true })).toEqual({ code: "HD", hit: true, lastAccess: 2 })
      expect(h.mg("k", { h: true, l: true, u: true })).toEqual({ code: "HD", hit: true, lastAccess: 2 })
    })

    it("a plain fetch (no h/l) also marks the item fetched", () => {
      const h = new Harness()
      h.ms("k", "v")
      h.mg("k", { v: true })
      expect(h.mg("k", { h: true })).toEqual({ code: "HD", hit: true })
      h.ms("u", "v")
      h.mg("u", { v: true, u: true })
      expect(h.mg("u", { h: true })).toEqual({ code: "HD" })
    })

    it("N vivifies on miss: a 0-byte item, W for the creator, Z for later readers", () => {
      const h = new Harness()
      const first = h.mg("k", { v: true, c: true, h: true, s: true, t: true, N: 30, O: "op" })
      // t is written before N, so the new item still shows no TTL.
      expect(first).toMatchObject({ code: "VA", value: "", size: 0, ttl: -1, won: true, opaque: "op" })
      expect(first).not.toHaveProperty("hit")
      expect(first).not.toHaveProperty("winSent")
      const second = h.mg("k", { v: true, c: true, h: true, t: true, N: 30 })
      expect(second).toEqual({ code: "VA", value: "", cas: first!["cas"], hit: true, ttl: 30, winSent: true })
      h.now = at(30)
      expect(h.mg("k", { v: true })).toEqual({ code: "EN" })
    })

    it("R: wins when the TTL is below the threshold, once; Z afterwards", () => {
      const h = new Harness()
      h.ms("k", "v", { T: 100 })
      expect(h.mg("k", { R: 30 })).toEqual({ code: "HD" })
      h.now = at(75)
      expect(h.mg("k", { R: 30, t: true })).toEqual({ code: "HD", ttl: 25, won: true })
      expect(h.mg("k", { R: 30 })).toEqual({ code: "HD", winSent: true })
      expect(h.mg("k")).toEqual({ code: "HD", winSent: true })
      // A new value clears the token.
      h.ms("k", "v2", { T: 10 })
      expect(h.mg("k", { R: 30 })).toEqual({ code: "HD", won: true })
    })

    it("R never wins for items without expiry, nor with R0 or a negative R", () => {
      const h = new Harness()
      h.ms("k", "v")
      expect(h.mg("k", { R: 1000 })).toEqual({ code: "HD" })
      h.ms("t", "v", { T: 5 })
      expect(h.mg("t", { R: 0 })).toEqual({ code: "HD" })
      expect(h.mg("t", { R: -1 })).toEqual({ code: "HD" })
    })

    it("an over-long opaque fails after earlier flags took effect", () => {
      const h = new Harness()
      const long = "x".repeat(32)
      expect(h.mg("k", { N: 30, O: long })).toEqual({ code: "CLIENT_ERROR", message: "opaque token too long" })
      // Vivified with its TTL, but no token was recorded.
      expect(h.mg("k", { t: true })).toEqual({ code: "HD", ttl: 30 })
      expect(h.mg("k", { O: "x".repeat(31) })).toEqual({ code: "HD", opaque: "x".repeat(31) })
      expect(h.mg("miss", { O: long, q: true })).toEqual({ code: "CLIENT_ERROR", message: "opaque token too long" })
    })

    it("bad number tokens are CLIENT_ERRORs", () => {
      const h = new Harness()
      expect(h.mg("k", { N: 1.5 })).toEqual({ code: "CLIENT_ERROR", message: "bad token in command line format" })
      expect(h.mg("k", { T: Number.NaN })).toEqual({ code: "CLIENT_ERROR", message: "bad token in command line format" })
      expect(h.mg("x".repeat(251))).toEqual({ code: "CLIENT_ERROR", message: "bad command line format" })
    })
  })

  describe("stale items and win tokens", () => {
    it("md I T30: stale, first reader wins, the others see Z; a new set clears it", () => {
      const h = new Harness()
      h.ms("k", "v1", { T: 100 })
      const before = h.cas("k")
      expect(h.md("k", { I: true, T: 30, q: true })).toBeUndefined()
      // Any read of a stale item takes the token, u or not: the first one here wins.
      const first = h.mg("k", { v: true, t: true, c: true, u: true })
      expect(first).toEqual({ code: "VA", value: "v1", ttl: 30, cas: first!["cas"], stale: true, won: true })
      // md I bumped the CAS.
      expect(first!["cas"]).toBeGreaterThan(before)
      expect(h.mg("k", { v: true })).toEqual({ code: "VA", value: "v1", stale: true, winSent: true })
      expect(h.mg("k", { v: true })).toEqual({ code: "VA", value: "v1", stale: true, winSent: true })
      h.ms("k", "v2")
      expect(h.mg("k", { v: true, t: true })).toEqual({ code: "VA", value: "v2", ttl: -1 })
    })

    it("md I clears a token already handed out, so the next reader wins again", () => {
      const h = new Harness()
      h.ms("k", "v")
      h.md("k", { I: true })
      expect(h.mg("k")).toEqual({ code: "HD", stale: true, won: true })
      h.md("k", { I: true })
      expect(h.mg("k")).toEqual({ code: "HD", stale: true, won: true })
      expect(h.mg("k")).toEqual({ code: "HD", stale: true, winSent: true })
      // Without T the TTL stays.
      expect(h.mg("k", { t: true })).toMatchObject({ ttl: -1 })
    })

    it("ms I with an older CAS stores the value, still stale, keeping TTL and token", () => {
      const h = new Harness()
      h.ms("k", "v1")
      const old = h.cas("k")
      h.md("k", { I: true, T: 30 })
      expect(h.mg("k")).toEqual({ code: "HD", stale: true, won: true })
      const stored = h.ms("k", "v2", { I: true, C: old, c: true })
      expect(stored).toMatchObject({ code: "HD" })
      expect(stored!["cas"]).toBeGreaterThan(old)
      expect(h.mg("k", { v: true, t: true })).toEqual({ code: "VA", value: "v2", ttl: 30, stale: true, winSent: true })
      // A CAS newer than the item's is a mismatch even with I.
      expect(h.ms("k", "v3", { I: true, C: 999999n })).toEqual({ code: "EX" })
      // With the current CAS it is an ordinary store: fresh, not stale.
      expect(h.ms("k", "v4", { I: true, C: h.cas("k") })).toEqual({ code: "HD" })
      expect(h.mg("k", { v: true })).toEqual({ code: "VA", value: "v4" })
    })

    it("I without C is a plain set", () => {
      const h = new Harness()
      h.ms("k", "v1")
      h.md("k", { I: true })
      h.ms("k", "v2", { I: true })
      expect(h.mg("k", { v: true })).toEqual({ code: "VA", value: "v2" })
    })
  })

  describe("ms", () => {
    it("set, c returns the new CAS, counted globally", () => {
      const h = new Harness()
      const a = h.ms("a", "1", { c: true })
      const b = h.ms("b", "2", { c: true })
      expect(a).toEqual({ code: "HD", cas: 1n })
      expect(b).toEqual({ code: "HD", cas: 2n })
      expect(h.ms("a", "3", { c: true })).toEqual({ code: "HD", cas: 3n })
    })

    it("q suppresses only HD", () => {
      const h = new Harness()
      expect(h.ms("k", "v", { q: true })).toBeUndefined()
      expect(h.ms("k", "v", { q: true, M: "E" })).toEqual({ code: "NS" })
      expect(h.ms("k", "v", { q: true, C: 12345n })).toEqual({ code: "EX" })
      expect(h.ms("miss", "v", { q: true, C: 1n })).toEqual({ code: "NF" })
    })

    it("O and k are echoed; c is 0 when nothing was stored", () => {
      const h = new Harness()
      expect(h.ms("k", "v", { M: "R", O: "9", k: true, c: true })).toEqual({ code: "NS", opaque: 9, key: "k", cas: 0n })
    })

    it("modes: add, replace, append, prepend", () => {
      const h = new Harness()
      expect(h.ms("k", "b", { M: "R" })).toEqual({ code: "NS" })
      expect(h.ms("k", "b", { M: "A" })).toEqual({ code: "NS" })
      expect(h.ms("k", "b", { M: "P" })).toEqual({ code: "NS" })
      expect(h.ms("k", "b", { M: "E" })).toEqual({ code: "HD" })
      expect(h.ms("k", "x", { M: "E" })).toEqual({ code: "NS" })
      expect(h.ms("k", "c", { M: "A" })).toEqual({ code: "HD" })
      expect(h.ms("k", "a", { M: "P" })).toEqual({ code: "HD" })
      expect(h.mg("k", { v: true })).toEqual({ code: "VA", value: "abc" })
      expect(h.ms("k", "r", { M: "R" })).toEqual({ code: "HD" })
      expect(h.mg("k", { v: true })).toEqual({ code: "VA", value: "r" })
    })

    it("append and prepend keep the original flags and TTL", () => {
      const h = new Harness()
      h.ms("k", "mid", { F: 9, T: 100 })
      h.ms("k", ">", { M: "A", F: 1, T: 5 })
      h.ms("k", "<", { M: "P", F: 2 })
      expect(h.mg("k", { v: true, f: true, t: true })).toEqual({ code: "VA", value: "<mid>", clientFlags: 9, ttl: 100 })
    })

    it("N on append/prepend creates a missing key with N's TTL (memcached ≥ 1.6.20; 1.6.18 answers NS)", () => {
      const h = new Harness()
      expect(h.ms("k", "v", { M: "A" })).toEqual({ code: "NS" })
      // The request's item is stored as is: its flags, N's TTL (not T's), and no CAS to compare.
      expect(h.ms("k", "v", { M: "A", N: 30, T: 5, F: 7, C: 99n, k: true })).toEqual({ code: "HD", key: "k" })
      expect(h.mg("k", { v: true, t: true, f: true })).toEqual({ code: "VA", value: "v", ttl: 30, clientFlags: 7 })
      // An existing item is appended to as without N: it keeps its flags and TTL.
      expect(h.ms("k", "w", { M: "A", N: 100, F: 1 })).toEqual({ code: "HD" })
      expect(h.ms("k", "<", { M: "P", N: 100 })).toEqual({ code: "HD" })
      expect(h.mg("k", { v: true, t: true, f: true })).toEqual({ code: "VA", value: "<vw", ttl: 30, clientFlags: 7 })
      expect(h.ms("k", "x", { M: "A", N: 100, C: 99n })).toEqual({ code: "EX" })
      expect(h.ms("p", "v", { M: "P", N: 0 })).toEqual({ code: "HD" })
      expect(h.mg("p", { v: true, t: true })).toEqual({ code: "VA", value: "v", ttl: -1 })
      // Other modes ignore N.
      expect(h.ms("r", "v", { M: "R", N: 30 })).toEqual({ code: "NS" })
      expect(h.ms("s", "v", { N: 30 })).toEqual({ code: "HD" })
      expect(h.mg("s", { t: true })).toEqual({ code: "HD", ttl: -1 })
    })

    it("C: EX on mismatch, NF on a missing item, C0 never matches; add ignores C", () => {
      const h = new Harness()
      expect(h.ms("k", "v", { C: 5n })).toEqual({ code: "NF" })
      expect(h.ms("k", "v", { M: "R", C: 5n })).toEqual({ code: "NF" })
      expect(h.ms("k", "v", { M: "A", C: 5n })).toEqual({ code: "NS" })
      expect(h.ms("k", "v", { M: "E", C: 5n })).toEqual({ code: "HD" })
      const cas = h.cas("k")
      expect(h.ms("k", "w", { C: cas + 1n })).toEqual({ code: "EX" })
      expect(h.ms("k", "w", { C: 0n })).toEqual({ code: "EX" })
      expect(h.ms("k", "w", { M: "A", C: cas + 1n })).toEqual({ code: "EX" })
      expect(h.ms("k", "w", { C: cas })).toEqual({ code: "HD" })
      expect(h.ms("k", "x", { M: "A", C: h.cas("k") })).toEqual({ code: "HD" })
      expect(h.ms("k", "y", { M: "R", C: h.cas("k") })).toEqual({ code: "HD" })
      expect(h.mg("k", { v: true })).toEqual({ code: "VA", value: "y" })
    })

    it("T: seconds; negative is already expired; above 30 days an absolute unix time", () => {
      const h = new Harness()
      h.ms("rel", "v", { T: 2592000 })
      expect(h.mg("rel", { t: true })).toEqual({ code: "HD", ttl: 2592000 })
      h.ms("neg", "v", { T: -1 })
      expect(h.mg("neg")).toEqual({ code: "EN" })
      h.ms("past", "v", { T: 2592001 })
      expect(h.mg("past")).toEqual({ code: "EN" })
      const unix = T0 / 1000
      h.ms("abs", "v", { T: unix + 500 })
      expect(h.mg("abs", { t: true })).toEqual({ code: "HD", ttl: 500 })
      h.now = at(500)
      expect(h.mg("abs")).toEqual({ code: "EN" })
    })

    it("expiry has 1-second resolution like memcached's clock", () => {
      const h = new Harness()
      h.now = T0 + 900
      h.ms("k", "v", { T: 1 })
      h.now = T0 + 999
      expect(h.mg("k")).toEqual({ code: "HD" })
      // 101 ms later, but the clock has reached the next whole second.
      h.now = T0 + 1000
      expect(h.mg("k")).toEqual({ code: "EN" })
      expect(h.engine.size(h.now)).toBe(0)
    })

    it("a set without T clears the TTL", () => {
      const h = new Harness()
      h.ms("k", "v", { T: 10 })
      h.ms("k", "v")
      expect(h.mg("k", { t: true })).toEqual({ code: "HD", ttl: -1 })
    })

    it("too large: SERVER_ERROR, even with q, and the old item is removed", () => {
      const h = new Harness()
      // 48-byte header + 8 CAS + key + 1 + value + 2 (+ 4 with flags) must fit in -I.
      const max = 1024 * 1024 - 56 - 1 - 1 - 2
      h.ms("k", "old")
      expect(h.ms("k", new Uint8Array(max + 1), { M: "E", q: true })).toEqual({
        code: "SERVER_ERROR",
        message: "object too large for cache",
      })
      expect(h.mg("k")).toEqual({ code: "EN" })
      expect(h.ms("k", new Uint8Array(max))).toEqual({ code: "HD" })
      expect(h.ms("k", new Uint8Array(max - 3), { F: 1 })).toMatchObject({ code: "SERVER_ERROR" })
      expect(h.ms("k", new Uint8Array(max - 4), { F: 1 })).toEqual({ code: "HD" })
      // Append past the limit is just NS.
      expect(h.ms("k", "x", { M: "A" })).toEqual({ code: "NS" })
    })

    it("maxItemSize is configurable", () => {
      const h = new Harness(100)
      expect(h.ms("k", new Uint8Array(100 - 56 - 2 - 2))).toEqual({ code: "HD" })
      expect(h.ms("k", new Uint8Array(100 - 56 - 2 - 1))).toMatchObject({ code: "SERVER_ERROR" })
    })

    it("stores a copy of the value", () => {
      const h = new Harness()
      const value = Buffer.from("abc")
      h.ms("k", value)
      value[0] = 120
      expect(h.mg("k", { v: true })).toEqual({ code: "VA", value: "abc" })
    })

    it("errors: bad tokens and long opaques", () => {
      const h = new Harness()
      expect(h.ms("k", "v", { T: 1.5 })).toEqual({ code: "CLIENT_ERROR", message: "bad token in command line format" })
      expect(h.ms("k", "v", { F: -1 })).toEqual({ code: "CLIENT_ERROR", message: "bad command line format" })
      expect(h.ms("k", "v", { O: "x".repeat(32) })).toEqual({ code: "CLIENT_ERROR", message: "opaque token too long" })
      expect(h.mg("k")).toEqual({ code: "EN" })
    })
  })

  describe("md", () => {
    it("deletes; NF on a miss; q suppresses only HD; O and k echoed", () => {
      const h = new Harness()
      expect(h.md("k", { q: true, O: "o", k: true })).toEqual({ code: "NF", opaque: "o", key: "k" })
      h.ms("k", "v")
      expect(h.md("k", { O: "o" })).toEqual({ code: "HD", opaque: "o" })
      expect(h.mg("k")).toEqual({ code: "EN" })
      h.ms("k", "v")
      expect(h.md("k", { q: true })).toBeUndefined()
      expect(h.engine.size(h.now)).toBe(0)
    })

    it("C: EX on mismatch (C0 included), deletes on match", () => {
      const h = new Harness()
      h.ms("k", "v")
      expect(h.md("k", { C: 0n })).toEqual({ code: "EX" })
      expect(h.md("k", { C: h.cas("k") + 1n, I: true })).toEqual({ code: "EX" })
      expect(h.mg("k")).toEqual({ code: "HD" })
      expect(h.md("k", { C: h.cas("k") })).toEqual({ code: "HD" })
      expect(h.mg("k")).toEqual({ code: "EN" })
    })

    it("T without I is ignored", () => {
      const h = new Harness()
      h.ms("k", "v")
      expect(h.md("k", { T: 30 })).toEqual({ code: "HD" })
      expect(h.mg("k")).toEqual({ code: "EN" })
    })

    it("an expired item is NF", () => {
      const h = new Harness()
      h.ms("k", "v", { T: 1 })
      h.now = at(1)
      expect(h.md("k")).toEqual({ code: "NF" })
    })
  })

  describe("ma", () => {
    it("incr by 1 by default, D delta, decr with MD; v returns the number", () => {
      const h = new Harness()
      h.ms("k", "10")
      expect(h.ma("k")).toEqual({ code: "HD" })
      expect(h.ma("k", { v: true, D: 5n })).toEqual({ code: "VA", value: "16" })
      expect(h.ma("k", { v: true, M: "D", D: 6n })).toEqual({ code: "VA", value: "10" })
    })

    it("NF on a miss without N, echoing O and k", () => {
      const h = new Harness()
      expect(h.ma("k", { O: "o", k: true, q: true })).toEqual({ code: "NF", opaque: "o", key: "k" })
    })

    it("N creates the item with J (no delta), and q does not hide that reply", () => {
      const h = new Harness()
      expect(h.ma("k", { N: 30, J: 5n, v: true, t: true, q: true })).toMatchObject({ code: "VA", value: "5", ttl: -1 })
      expect(h.mg("k", { v: true, t: true })).toEqual({ code: "VA", value: "5", ttl: 30 })
      // Later incr/decr with q are hidden.
      expect(h.ma("k", { q: true, v: true })).toBeUndefined()
      expect(h.ma("k", { v: true, t: true })).toEqual({ code: "VA", value: "7", ttl: 30 })
      // T wins over N on creation (it comes later on the line).
      expect(h.ma("j", { N: 0, J: 7n, T: 40 })).toEqual({ code: "HD" })
      expect(h.mg("j", { t: true })).toEqual({ code: "HD", ttl: 40 })
    })

    it("incr wraps at 2^64, decr clamps at 0", () => {
      const h = new Harness()
      h.ms("k", "18446744073709551615")
      expect(h.ma("k", { v: true, D: 2n })).toEqual({ code: "VA", value: "1" })
      h.ms("k", "5")
      expect(h.ma("k", { v: true, D: 18446744073709551615n })).toEqual({ code: "VA", value: "4" })
      expect(h.ma("k", { v: true, M: "D", D: 100n })).toEqual({ code: "VA", value: "0" })
    })

    it("a shorter result is written in place, padded with spaces; flags and TTL stay", () => {
      const h = new Harness()
      h.ms("k", "100", { F: 7, T: 50 })
      const before = h.cas("k")
      const r = h.ma("k", { M: "D", D: 95n, v: true, c: true })
      expect(r).toMatchObject({ code: "VA", value: "5" })
      expect(r!["cas"]).toBeGreaterThan(before)
      expect(h.mg("k", { v: true, s: true, f: true, t: true, c: true })).toEqual({
        code: "VA",
        value: "5  ",
        size: 3,
        clientFlags: 7,
        ttl: 50,
        cas: r!["cas"],
      })
    })

    it("a longer result makes a new item keeping flags and TTL, but T on that request is lost", () => {
      const h = new Harness()
      h.ms("k", "9", { F: 3, T: 60 })
      expect(h.ma("k", { v: true, t: true, T: 100 })).toEqual({ code: "VA", value: "10", ttl: 60 })
      expect(h.mg("k", { v: true, f: true, t: true })).toEqual({ code: "VA", value: "10", clientFlags: 3, ttl: 60 })
      // In place, T applies.
      expect(h.ma("k", { v: true, T: 100 })).toEqual({ code: "VA", value: "11" })
      expect(h.mg("k", { t: true })).toEqual({ code: "HD", ttl: 100 })
    })

    it("non-numeric values", () => {
      const h = new Harness()
      const nonNumeric = { code: "CLIENT_ERROR", message: "cannot increment or decrement non-numeric value" }
      for (const value of ["abc", "12abc", "-1", "", "   ", "18446744073709551616"]) {
        h.ms("k", value)
        expect(h.ma("k", { q: true })).toEqual(nonNumeric)
      }
    })

    it("modes: + and - are incr and decr; unknown modes and long M tokens fail (found by the differential test)", () => {
      const h = new Harness()
      h.ms("k", "5")
      expect(h.ma("k", { M: "+" as "I", v: true })).toEqual({ code: "VA", value: "6" })
      expect(h.ma("k", { M: "-" as "D", v: true })).toEqual({ code: "VA", value: "5" })
      expect(h.ma("k", { M: "x" as "I", O: "o".repeat(40) })).toEqual({ code: "CLIENT_ERROR", message: "invalid mode for ma M token" })
      expect(h.ma("k", { M: "ID" as "I" })).toEqual({ code: "CLIENT_ERROR", message: "invalid or duplicate flag" })
      expect(h.ms("k", "v", { M: "s" as "S", O: "o".repeat(40) })).toEqual({ code: "CLIENT_ERROR", message: "invalid mode for ms M token" })
      expect(h.ms("k", "v", { M: "SS" as "S" })).toEqual({ code: "CLIENT_ERROR", message: "incorrect length for M token" })
      expect(h.ms("k", "v", { M: "SS" as "S", T: 1.5 })).toEqual({ code: "CLIENT_ERROR", message: "bad token in command line format" })
      expect(h.mg("k", { v: true })).toEqual({ code: "VA", value: "5" })
    })

    it("from 2^63 up, only a leading '-' makes it non-numeric (1.6.18: a '-' anywhere, up to a NUL)", () => {
      // safe_strtoull's memchr looks for a '-' in the text strtoull read; 1.6.18's strchr scanned
      // past the number (found by the differential test).
      const h = new Harness()
      const nonNumeric = { code: "CLIENT_ERROR", message: "cannot increment or decrement non-numeric value" }
      h.ms("k", "-9223372036854775808")
      expect(h.ma("k", { v: true })).toEqual(nonNumeric)
      h.ms("k", " -18446744073709551615 ")
      expect(h.ma("k", { v: true })).toEqual({ code: "VA", value: "2" })
      h.ms("k", "18446744073709551610 -")
      expect(h.ma("k", { v: true })).toEqual({ code: "VA", value: "18446744073709551611" })
      h.ms("k", "9223372036854775808 a-b")
      expect(h.ma("k", { v: true })).toEqual({ code: "VA", value: "9223372036854775809" })
      h.ms("k", "18446744073709551610 x")
      expect(h.ma("k", { v: true })).toEqual({ code: "VA", value: "18446744073709551611" })
      h.ms("k", "18446744073709551610 \u0000-")
      expect(h.ma("k", { v: true })).toEqual({ code: "VA", value: "18446744073709551611" })
      h.ms("k", "9223372036854775807 -")
      expect(h.ma("k", { v: true })).toEqual({ code: "VA", value: "9223372036854775808" })
    })

    it("what strtoull accepts: white space around, a sign, leading zeros", () => {
      const h = new Harness()
      const cases: ReadonlyArray<[string, string, string]> = [
        ["12 abc", "13", "13    "],
        [" 12", "13", "13 "],
        ["+5", "6", "6 "],
        ["-0", "1", "1 "],
        ["000000000000000000000000042", "43", "43" + " ".repeat(25)],
      ]
      for (const [stored, result, after] of cases) {
        h.ms("k", stored)
        expect(h.ma("k", { v: true })).toEqual({ code: "VA", value: result })
        expect(h.mg("k", { v: true })).toEqual({ code: "VA", value: after })
      }
    })

    it("C: EX on mismatch; C0 is no check; an empty value fails before the CAS check", () => {
      const h = new Harness()
      h.ms("k", "5")
      expect(h.ma("k", { C: h.cas("k") + 1n, O: "o" })).toEqual({ code: "EX", opaque: "o" })
      expect(h.ma("k", { C: 0n, v: true })).toEqual({ code: "VA", value: "6" })
      expect(h.ma("k", { C: h.cas("k"), v: true })).toEqual({ code: "VA", value: "7" })
      h.ms("e", "")
      expect(h.ma("e", { C: 12345n })).toMatchObject({ code: "CLIENT_ERROR" })
      h.ms("x", "5x")
      expect(h.ma("x", { C: 12345n })).toEqual({ code: "EX" })
    })

    it("a negative delta is a flag error", () => {
      const h = new Harness()
      h.ms("k", "5")
      expect(h.ma("k", { D: -1n })).toEqual({ code: "CLIENT_ERROR", message: "invalid or duplicate flag" })
    })
  })

  describe("keys", () => {
    it("b: base64 keys address the decoded bytes; k returns what the item was stored as", () => {
      const h = new Harness()
      expect(h.ms(b64("bk1"), "v1", { b: true, k: true })).toEqual({ code: "HD", key: b64("bk1"), base64: true })
      // The same bytes in plain text find the item, and k comes back in base64 (the item is binary).
      expect(h.mg("bk1", { k: true, v: true })).toEqual({ code: "VA", value: "v1", key: b64("bk1"), base64: true })
      // Stored as text, fetched in base64: k comes back as text.
      h.ms("bk2", "v")
      expect(h.mg(b64("bk2"), { b: true, k: true })).toEqual({ code: "HD", key: "bk2" })
    })

    it("append and vivify drop the binary mark; EN, md and ma echo the request's form", () => {
      const h = new Harness()
      h.ms(b64("a"), "1", { b: true })
      h.ms(b64("a"), "2", { b: true, M: "A" })
      expect(h.mg(b64("a"), { b: true, k: true })).toEqual({ code: "HD", key: "a" })
      expect(h.mg(b64("viv"), { b: true, k: true, N: 30 })).toEqual({ code: "HD", key: "viv", won: true })
      expect(h.mg(b64("none"), { b: true, k: true })).toEqual({ code: "EN", key: b64("none"), base64: true })
      expect(h.md(b64("none"), { b: true, k: true })).toEqual({ code: "NF", key: b64("none"), base64: true })
      expect(h.ma(b64("a"), { b: true, k: true, v: true })).toEqual({ code: "VA", value: "13", key: b64("a"), base64: true })
    })

    it("base64 is decoded like memcached: stray characters skipped, bad lengths refused", () => {
      const h = new Harness()
      h.ms("bk2", "v")
      expect(h.mg("Y.m.s.y", { b: true, v: true })).toEqual({ code: "VA", value: "v" })
      expect(h.mg(b64("bk2") + "X", { b: true })).toEqual({ code: "CLIENT_ERROR", message: "error decoding key" })
      expect(h.md("====", { b: true })).toEqual({ code: "CLIENT_ERROR", message: "invalid or duplicate flag" })
      expect(h.ms("!", "v", { b: true })).toEqual({ code: "CLIENT_ERROR", message: "error decoding key" })
    })

    it("keys longer than 250 bytes on the line are refused", () => {
      const h = new Harness()
      const long = "k".repeat(251)
      const err = { code: "CLIENT_ERROR", message: "bad command line format" }
      expect(h.ms(long, "v")).toEqual(err)
      expect(h.md(long)).toEqual(err)
      expect(h.ma(long)).toEqual(err)
      expect(h.ms("k".repeat(250), "v")).toEqual({ code: "HD" })
    })
  })
})
