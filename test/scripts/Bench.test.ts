/**
 * The benchmark's own machinery (scripts/bench): the floor's minimal socket against a real and a
 * hostile server, the value checks, the latency sampler, and the targets' arithmetic. A benchmark
 * that counted a wrong reply as a hit, or a hang as a result, would flatter whoever has the bug.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { inject } from "vitest"
import { floorRunner, MinimalMetaSocket } from "../../scripts/bench/floor.js"
import { LatencyRecorder } from "../../scripts/bench/latency.js"
import { type Cell, compare, targetsOf } from "../../scripts/bench/report.js"
import {
  type AsyncOps,
  checkValue,
  makeWorkload,
  type Runner,
  runAsyncScenario,
  type Scenario,
  scenarios,
  valueFor,
} from "../../scripts/bench/types.js"
import { fakeServer } from "../support/fakeServer.js"

const scenario = (id: string): Scenario => scenarios.find((s) => s.id === id)!

describe("values and checks", () => {
  it("a value encodes its key, at the requested length", () => {
    const v = valueFor("bench:x:0001", 100)
    expect(v.length).toBe(100)
    expect(v.toString("latin1").startsWith("bench:x:0001=")).toBe(true)
    expect(valueFor("bench:x:big:001", 16384).length).toBe(16384)
  })

  it("another key's value passes the length check but not the whole-value check", () => {
    const w = makeWorkload("t")
    const other = w.values[1]!
    expect(checkValue(other, w.values[0]!, w.texts[0]!, false)).toBe(1)
    expect(checkValue(other, w.values[0]!, w.texts[0]!, true)).toBe(0)
    expect(checkValue(w.texts[1], w.values[0]!, w.texts[0]!, true)).toBe(0)
    expect(checkValue(w.texts[0], w.values[0]!, w.texts[0]!, true)).toBe(1)
    expect(checkValue(undefined, w.values[0]!, w.texts[0]!, false)).toBe(0)
  })
})

/** The next turn of the event loop: a fake call that answered in a microtask would starve the stop timer. */
const io = () => new Promise<void>((resolve) => setImmediate(resolve))

/** A fake client over a Map, with a fault; it answers on the next turn, like a socket. */
const fakeOps = (w: ReturnType<typeof makeWorkload>, fault: "none" | "swap" | "miss" | "reject"): AsyncOps<Buffer | undefined, Map<string, Buffer>> => {
  const store = new Map<string, Buffer>()
  w.keys.forEach((k, i) => store.set(k, w.values[i]!))
  const neighbour = (key: string) => w.keys[(w.keys.indexOf(key) + 1) % w.keys.length]!
  return {
    get: async (key) => {
      await io()
      if (fault === "reject") throw new Error(`refused ${key}`)
      if (fault === "miss") return undefined
      return store.get(fault === "swap" ? neighbour(key) : key)
    },
    value: (v) => v,
    set: async (key, value) => {
      await io()
      return store.set(key, value)
    },
    getMulti: async (batch) => {
      await io()
      return new Map(batch.map((k) => [k, store.get(fault === "swap" ? neighbour(k) : k)!]))
    },
    found: (m) => m.size,
    multiValue: (m, key) => m.get(key),
  }
}

describe("the async driver", () => {
  const w = makeWorkload("d")
  it("counts right answers, with latency", async () => {
    const r = await runAsyncScenario(fakeOps(w, "none"), w, scenario("get-c50"), 50)
    expect(r.errors).toBe(0)
    expect(r.units).toBeGreaterThan(100)
    expect(r.latency?.samples).toBeGreaterThan(0)
  })
  it("catches swapped replies (whole values on the sampled calls), in gets and getMulti", async () => {
    const get = await runAsyncScenario(fakeOps(w, "swap"), w, scenario("get-c50"), 50)
    expect(get.errors).toBeGreaterThan(0)
    expect(get.firstError).toMatch(/whole values checked/)
    const multi = await runAsyncScenario(fakeOps(w, "swap"), w, scenario("multi-c10"), 50)
    expect(multi.errors).toBeGreaterThan(0)
  })
  it("counts misses and rejections as errors, never as results", async () => {
    const miss = await runAsyncScenario(fakeOps(w, "miss"), w, scenario("get-c1"), 30)
    expect(miss.units).toBe(0)
    expect(miss.errors).toBeGreaterThan(0)
    const rejected = await runAsyncScenario(fakeOps(w, "reject"), w, scenario("get-c1"), 30)
    expect(rejected.units).toBe(0)
    expect(rejected.firstError).toMatch(/refused bench:d:/)
  })
})

describe("LatencyRecorder", () => {
  it("samples one call in eight", () => {
    const lat = new LatencyRecorder()
    let sampled = 0
    for (let i = 0; i < 800; i++) if (lat.end(lat.start())) sampled++
    expect(sampled).toBe(100)
  })
  it("reports p50 and p99 in microseconds", () => {
    const lat = new LatencyRecorder()
    for (let i = 1; i <= 1000; i++) lat.record(i / 1000) // 1 µs .. 1000 µs
    const s = lat.summary()!
    expect(s.samples).toBe(1000)
    expect(s.p50).toBeCloseTo(501, 0)
    expect(s.p99).toBeCloseTo(991, 0)
    expect(new LatencyRecorder().summary()).toBeUndefined()
  })
})

describe("the floor's minimal socket", () => {
  it.live("against memcached: gets, 16 KiB values, getMulti and the mix, every value right", () =>
    Effect.promise(async () => {
      const runner = floorRunner(inject("memcached"), "effect")
      const promise = floorRunner(inject("memcached"), "promise")
      try {
        await runner.preload()
        await promise.preload()
        for (const id of ["get-c50", "get16k-c50", "multi-c10", "mixed-c100", "set-c50"]) {
          for (const r of [runner, promise]) {
            const result = await r.run(scenario(id), 150)
            expect({ id, r: r.id, errors: result.errors, first: result.firstError }).toEqual({ id, r: r.id, errors: 0, first: undefined })
            expect(result.units).toBeGreaterThan(0)
          }
        }
      } finally {
        await runner.close()
        await promise.close()
      }
    }),
  )

  it.live("a value split into one-byte chunks is reassembled; an unknown reply is an error, not a miss", () =>
    Effect.promise(async () => {
      const value = valueFor("k1", 300)
      const server = await fakeServer((socket, chunk) => {
        for (const line of chunk.toString("latin1").split("\r\n").filter((l) => l.length > 0)) {
          const reply = line.startsWith("mg k1 ")
            ? Buffer.concat([Buffer.from(`VA ${value.length}\r\n`), value, Buffer.from("\r\n")])
            : line.startsWith("mg k2 ")
              ? Buffer.from("EN\r\n")
              : Buffer.from("SERVER_ERROR out of memory\r\n")
          for (const byte of reply) socket.write(Buffer.from([byte]))
        }
      })
      const s = await MinimalMetaSocket.open(server.address)
      try {
        const ask = (key: string) =>
          new Promise<[Buffer | undefined, string | undefined]>((resolve) => s.get(key, (v, e) => resolve([v, e])))
        const [hit, miss, bad] = await Promise.all([ask("k1"), ask("k2"), ask("k3")])
        expect(hit[1]).toBeUndefined()
        expect(Buffer.compare(hit[0]!, value)).toBe(0)
        expect(miss).toEqual([undefined, undefined])
        expect(bad).toEqual([undefined, "SERVER_ERROR out of memory"])
      } finally {
        s.close()
        await server.close()
      }
    }),
  )

  it.live("a connection that closes fails the calls waiting on it", () =>
    Effect.promise(async () => {
      const server = await fakeServer((socket) => socket.destroy())
      const s = await MinimalMetaSocket.open(server.address)
      try {
        const [, error] = await new Promise<[Buffer | undefined, string | undefined]>((resolve) =>
          s.get("k", (v, e) => resolve([v, e])),
        )
        expect(error).toBe("connection closed")
      } finally {
        s.close()
        await server.close()
      }
    }),
  )
})

describe("targets", () => {
  const runner = (id: string, group: Runner["group"], callingStyle?: Runner["callingStyle"]): Runner => ({
    id,
    label: id,
    column: id,
    group,
    ...(callingStyle === undefined ? {} : { callingStyle }),
    notes: "",
    preload: async () => {},
    run: async () => ({ units: 0, elapsedMs: 1, errors: 0 }),
    close: async () => {},
  })
  const cell = (median: number, p99?: number): Cell => ({
    rounds: [median],
    median,
    spread: 0,
    noisy: false,
    errors: 0,
    p50: p99 === undefined ? undefined : p99 / 2,
    p99,
  })
  const runners = [
    runner("effect-memcache", "ours", "effect"),
    runner("effect-memcache-async", "ours", "plain-async"),
    runner("floor/effect", "floor"),
    runner("floor/promise", "floor"),
    runner("memjs", "peer", "plain-async"),
    runner("memcache", "peer", "plain-async"),
  ]
  const results = new Map([
    [
      "get-c500",
      new Map([
        ["effect-memcache", cell(90, 300)],
        ["effect-memcache-async", cell(50)],
        ["floor/effect", cell(100)],
        ["floor/promise", cell(1000)], // a floor is never the best peer
        ["memjs", cell(60, 200)],
        ["memcache", cell(40, 900)],
      ]),
    ],
  ])

  it("the best peer is a peer, the floor is floor/effect", () => {
    const c = compare(results.get("get-c500"), runners)
    expect(c.bestPeer).toEqual({ id: "memjs", rate: 60 })
    expect(c.bestPeerP99).toEqual({ id: "memjs", p99: 200 })
    expect(c.floor).toBe(100)
  })

  it("each target is PASS or MISS with its ratio, SKIP when not measured", () => {
    const t = new Map(targetsOf(results, runners, undefined, 1000).map((x) => [x.name, x]))
    expect(t.get("get c=500 vs floor")).toMatchObject({ status: "PASS", ratio: 0.9 })
    expect(t.get("p99 at get c=500 vs best peer's")).toMatchObject({ status: "MISS", ratio: 1.5 })
    expect(t.get("plain async code, get c=500 vs best peer")).toMatchObject({ status: "MISS", ratio: 0.833 })
    expect(t.get("get c=50 vs floor")?.status).toBe("SKIP")
    expect(t.get("heap over 1,000 gets")?.status).toBe("SKIP")
  })
})
