/**
 * ElastiCache auto-discovery against a fake configuration endpoint (node:net) in front of real
 * memcached processes: the endpoint changes its node list, answers garbage, stalls and goes away,
 * and every request keeps a correct answer or a typed error throughout.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Logger } from "effect"
import * as net from "node:net"
import { inject } from "vitest"
import { freePort } from "../../scripts/memcached.js"
import { parseClusterConfig } from "../../src/cluster/Discovery.js"
import { McClient } from "../../src/index.js"
import { failureOf } from "../support/exits.js"
import { text, uniqueKey } from "../support/layers.js"

type Mode = "config" | "legacy" | "garbage" | "stall"

/** A configuration endpoint whose answers the test controls. */
const fakeEndpoint = async () => {
  const port = await freePort()
  const state = { mode: "config" as Mode, version: 1, nodes: [] as Array<string>, requests: 0 }
  const sockets = new Set<net.Socket>()
  const payload = () => `${state.version}\n${state.nodes.map((a) => `node${a.split(":")[1]}.cache.internal|${a.split(":")[0]}|${a.split(":")[1]}`).join(" ")}\n`
  const block = (header: string) => `${header} 0 ${Buffer.byteLength(payload())}\r\n${payload()}\r\nEND\r\n`
  let server: net.Server | undefined
  const listen = () =>
    new Promise<void>((resolve) => {
      server = net.createServer((socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => {})
        socket.on("data", (d) => {
          for (const line of String(d).split("\r\n").filter((l) => l.length > 0)) {
            state.requests++
            if (state.mode === "stall") continue
            if (state.mode === "garbage") socket.write("CONFIG cluster 0 5\r\nhello\r\nEND\r\n")
            else if (line === "config get cluster") socket.write(state.mode === "legacy" ? "ERROR\r\n" : block("CONFIG cluster"))
            else if (line === "get AmazonElastiCache:cluster") socket.write(block("VALUE AmazonElastiCache:cluster"))
            else socket.write("ERROR\r\n")
          }
        })
      })
      server.listen(port, "127.0.0.1", () => resolve())
    })
  await listen()
  return {
    address: `127.0.0.1:${port}`,
    state,
    goAway: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server!.close(() => resolve())
      }),
    comeBack: listen,
  }
}

/** Whether memcached at `server` holds `key` (plain keys), asked directly. */
const holds = (server: string, key: string): Promise<boolean> =>
  new Promise((resolve, reject) => {
    const i = server.lastIndexOf(":")
    const socket = net.createConnection({ host: server.slice(0, i), port: Number(server.slice(i + 1)) })
    let data = ""
    socket.on("data", (d) => {
      data += String(d)
      if (data.endsWith("\r\n")) {
        socket.destroy()
        resolve(data.startsWith("HD"))
      }
    })
    socket.on("error", reject)
    socket.write(`mg ${key}\r\n`)
  })

describe("discovery", () => {
  it("parses the configuration payload", () => {
    expect(parseClusterConfig("12\na.cache|10.0.0.1|11211 b.cache||11212\n")).toEqual({
      version: 12,
      nodes: [
        { host: "a.cache", ip: "10.0.0.1", port: 11211 },
        { host: "b.cache", ip: "", port: 11212 },
      ],
    })
    expect(typeof parseClusterConfig("hello")).toBe("string")
    expect(typeof parseClusterConfig("1\na|b\n")).toBe("string")
    expect(typeof parseClusterConfig("1\na|1.2.3.4|99999\n")).toBe("string")
  })

  it.live("no answer from the configuration endpoint fails the layer with NoServers naming it", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(() => freePort())
      const start = Date.now()
      const exit = yield* Effect.exit(
        McClient.get("k").pipe(
          Effect.provide(McClient.layer({ discovery: { configEndpoint: `127.0.0.1:${port}` }, dialTimeout: "100 millis", timeout: "200 millis" })),
        ),
      )
      expect(failureOf(exit)).toMatchObject({ _tag: "NoServers" })
      expect((failureOf(exit) as Error).message).toContain(`127.0.0.1:${port}`)
      expect(Date.now() - start).toBeLessThan(1000)
    }),
  )

  it.live("the legacy key when the engine does not know config get cluster", () =>
    Effect.gen(function* () {
      const endpoint = yield* Effect.promise(() => fakeEndpoint())
      endpoint.state.mode = "legacy"
      endpoint.state.nodes = [inject("memcachedCluster")[0]!]
      const key = uniqueKey("legacy")
      yield* McClient.set({ key, value: "v" }).pipe(
        Effect.zipRight(McClient.get(key)),
        Effect.provide(McClient.layer({ discovery: { configEndpoint: endpoint.address } })),
      )
      yield* Effect.promise(() => endpoint.goAway())
    }),
  )

  it.live("node list changes, garbage, stalls and an absent endpoint: every request right or a typed error", () =>
    Effect.gen(function* () {
      const [a, b, c] = inject("memcachedCluster") as [string, string, string]
      const endpoint = yield* Effect.promise(() => fakeEndpoint())
      endpoint.state.nodes = [a, b]
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(String(message))
      })
      const layer = McClient.layer({
        discovery: { configEndpoint: endpoint.address, interval: "50 millis" },
        disableBinaryEncodedKeys: true,
        timeout: "500 millis",
        dialTimeout: "500 millis",
      })
      yield* Effect.gen(function* () {
        const prefix = uniqueKey("disc")
        // A load running throughout: each get answers what this loop set, or fails typed.
        let wrong = 0
        let ok = 0
        const untyped: Array<unknown> = []
        const load = yield* Effect.fork(
          Effect.forever(
            Effect.gen(function* () {
              const key = `${prefix}:${Math.floor(Math.random() * 200)}`
              const value = uniqueKey("v")
              const set = yield* Effect.exit(McClient.set({ key, value }))
              if (set._tag === "Failure") {
                if (failureOf(set) === undefined) untyped.push(set)
                return
              }
              const got = yield* Effect.exit(McClient.get(key))
              if (got._tag === "Success") {
                // Only this loop writes these keys, and a node that gains a key never owned it
                // before in this test: a hit must be this value (a ring change in between is a miss).
                if (text(got.value.value) === value) ok++
                else wrong++
              } else if (failureOf(got) === undefined) untyped.push(got)
            }),
          ),
        )
        const keys = Array.from({ length: 100 }, (_, i) => `${prefix}:fixed:${i}`)
        yield* Effect.forEach(keys, (key) => McClient.set({ key, value: key }), { discard: true })
        // Two nodes: nothing goes to c.
        expect((yield* Effect.promise(() => Promise.all(keys.map((k) => holds(c, k))))).some(Boolean)).toBe(false)

        // Same version, another list: no change.
        endpoint.state.nodes = [a, b, c]
        yield* Effect.sleep("200 millis")
        yield* Effect.forEach(keys, (key) => McClient.set({ key, value: key }), { discard: true })
        expect((yield* Effect.promise(() => Promise.all(keys.map((k) => holds(c, k))))).some(Boolean)).toBe(false)

        // Version up: c joins with ketama placement.
        endpoint.state.version = 2
        yield* Effect.sleep("300 millis")
        yield* Effect.forEach(keys, (key) => McClient.set({ key, value: key }), { discard: true })
        const onC = (yield* Effect.promise(() => Promise.all(keys.map((k) => holds(c, k))))).filter(Boolean).length
        expect(onC).toBeGreaterThan(10)
        expect(onC).toBeLessThan(60)

        // Garbage, a stall, then no endpoint at all: the last good list stays.
        for (const mode of ["garbage", "stall"] as const) {
          endpoint.state.mode = mode
          endpoint.state.version = 9
          yield* Effect.sleep("1200 millis")
        }
        endpoint.state.mode = "config"
        endpoint.state.version = 2
        yield* Effect.promise(() => endpoint.goAway())
        yield* Effect.sleep("200 millis")
        for (const key of keys) expect(text((yield* McClient.get(key)).value)).toBe(key)

        // Back, with b removed: b's connections drain and its keys move.
        endpoint.state.nodes = [a, c]
        endpoint.state.version = 3
        yield* Effect.promise(() => endpoint.comeBack())
        yield* Effect.sleep("300 millis")
        const fresh = keys.map((k) => `${k}:after`)
        yield* Effect.forEach(fresh, (key) => McClient.set({ key, value: key }), { discard: true })
        expect((yield* Effect.promise(() => Promise.all(fresh.map((k) => holds(b, k))))).some(Boolean)).toBe(false)
        for (const key of fresh) expect(text((yield* McClient.get(key)).value)).toBe(key)

        yield* Fiber.interrupt(load)
        expect(untyped).toEqual([])
        expect(wrong).toBe(0)
        expect(ok).toBeGreaterThan(100)
        expect(warnings.some((w) => /discovery poll .* failed .*corrupt|discovery poll .* failed/.test(w))).toBe(true)
        expect(warnings.some((w) => /timed out/.test(w))).toBe(true)
        expect(warnings.some((w) => /ECONNREFUSED|closed/.test(w))).toBe(true)
      }).pipe(Effect.provide(layer), Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      yield* Effect.promise(() => endpoint.goAway())
    }),
    30_000,
  )
})
