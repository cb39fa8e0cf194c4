import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { makeKetamaRing, parseServerSpec } from "../../src/cluster/Ketama.js"

// Generated from real libmemcached by scripts/ketama/gen-table.sh.
interface Table {
  readonly generator: string
  readonly keys: ReadonlyArray<string>
  readonly cases: ReadonlyArray<{
    readonly name: string
    readonly servers: ReadonlyArray<string>
    readonly primary: ReadonlyArray<number>
  }>
}
const table: Table = JSON.parse(
  readFileSync(new URL("./fixtures/ketama-libmemcached.json", import.meta.url), "utf8")
)

const ringOf = (servers: ReadonlyArray<string>) => makeKetamaRing(servers.map((s) => parseServerSpec(s)))

describe("Ketama", () => {
  describe(`matches ${table.generator}`, () => {
    for (const { name, primary, servers } of table.cases) {
      it(`${name}: ${table.keys.length} keys`, () => {
        const ring = ringOf(servers)
        const mismatches = table.keys.filter((key, i) => ring.pick(key)[0] !== ring.servers[primary[i]!])
        expect(mismatches).toEqual([])
      })
    }
  })

  it("pick lists every server once, primary first", () => {
    for (const { servers } of table.cases) {
      const ring = ringOf(servers)
      for (const key of table.keys.slice(0, 500)) {
        const picked = ring.pick(key)
        expect(picked.length).toBe(servers.length)
        expect(new Set(picked)).toEqual(new Set(ring.servers))
      }
    }
  })

  it("removing the primary promotes the first alternate", () => {
    // Equal weights keep 160 points per server for 4 and 5 servers, so the
    // survivors' points do not move.
    const specs = ["a:1", "b:2", "c:3", "d:4", "e:5"].map((s) => parseServerSpec(s))
    const ring = makeKetamaRing(specs)
    const without = new Map(specs.map((s) => [s.address, makeKetamaRing(specs.filter((o) => o !== s))]))
    for (const key of table.keys.slice(0, 2000)) {
      const [primary, next] = ring.pick(key)
      expect(without.get(primary!)!.pick(key)[0]).toBe(next)
    }
  })

  it("handles zero and one server", () => {
    expect(makeKetamaRing([]).pick("k")).toEqual([])
    expect(makeKetamaRing([parseServerSpec("h:1")]).pick("k")).toEqual(["h:1"])
  })

  it("weights shift the key share", () => {
    const ring = makeKetamaRing([parseServerSpec("a:1:1"), parseServerSpec("b:1:3")])
    const onB = table.keys.filter((k) => ring.pick(k)[0] === "b:1").length / table.keys.length
    expect(onB).toBeGreaterThan(0.7)
    expect(onB).toBeLessThan(0.8)
  })

  it("a server too light to own a point is never primary but still listed last", () => {
    const ring = makeKetamaRing([parseServerSpec("a:1:1000"), parseServerSpec("b:1:1")])
    for (const key of table.keys.slice(0, 200)) expect(ring.pick(key)).toEqual(["a:1", "b:1"])
  })

  it("weight 0 means 1, as in libmemcached", () => {
    const a = makeKetamaRing([parseServerSpec("a:1:0"), parseServerSpec("b:1")])
    const b = makeKetamaRing([parseServerSpec("a:1"), parseServerSpec("b:1")])
    for (const key of table.keys.slice(0, 500)) expect(a.pick(key)).toEqual(b.pick(key))
  })

  it("rejects duplicate addresses", () => {
    expect(() => makeKetamaRing([parseServerSpec("h"), parseServerSpec("h:11211")])).toThrow(/Duplicate/)
  })

  describe("parseServerSpec", () => {
    it.each([
      ["cache:11211", { address: "cache:11211", weight: 1 }],
      ["cache", { address: "cache:11211", weight: 1 }],
      ["10.0.0.1:11212:5", { address: "10.0.0.1:11212", weight: 5 }],
      ["/var/run/memcached.sock", { address: "/var/run/memcached.sock", weight: 1 }],
      ["/tmp/a:b", { address: "/tmp/a:b", weight: 1 }]
    ] as const)("%s", (input, expected) => {
      expect(parseServerSpec(input)).toEqual(expected)
    })

    it("accepts objects", () => {
      expect(parseServerSpec({ address: "h:1" })).toEqual({ address: "h:1", weight: 1 })
      expect(parseServerSpec({ address: "h", weight: 3 })).toEqual({ address: "h:11211", weight: 3 })
      expect(parseServerSpec({ address: "/s", weight: 2 })).toEqual({ address: "/s", weight: 2 })
    })

    it.each(["", ":11211", "h:", "h:x", "h:0", "h:65536", "h:1:-1", "h:1:1.5", "h:1:2:3", "::1"])(
      "rejects %j",
      (input) => {
        expect(() => parseServerSpec(input)).toThrow()
      }
    )

    it("rejects bad object weights", () => {
      expect(() => parseServerSpec({ address: "h:1", weight: -1 })).toThrow()
      expect(() => parseServerSpec({ address: "h:1", weight: 0.5 })).toThrow()
      expect(() => parseServerSpec({ address: "h:1", weight: 2 ** 32 })).toThrow()
    })
  })
})
