/**
 * Many servers: placement over real memcached processes, getMulti fan-out with a failed server,
 * custom pickServer, retries, and connection rotation.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { inject } from "vitest"
import { makeKetamaRing, McClient, parseServerSpec } from "../../src/index.js"
import { failureTag } from "../support/exits.js"
import { fakeServer, refusedAddress } from "../support/fakeServer.js"
import { text, uniqueKey } from "../support/layers.js"
import { textRequest } from "../support/textProtocol.js"
import { startMemcached } from "../../scripts/memcached.js"

/** A client pinned to one server, to see where keys landed. */
const pinned = (server: string) =>
  Layer.build(McClient.layer({ servers: [server], pickServer: () => [server] })).pipe(
    Effect.map((ctx) => Context.get(ctx, McClient)),
  )

/**
 * Answers `version` like memcached 1.6.18 and every other request line with `answer(line, nth)`,
 * `line` without its opaque token; `echo(reply)` adds it to a reply code, as memcached does.
 * Requests must arrive whole in one chunk (small ones do on loopback); an `ms` data block is skipped.
 */
const scriptedServer = (
  answer: (line: string, nth: number, socket: import("node:net").Socket, echo: (code: string) => string) => void,
) => {
  let n = 0
  return fakeServer((socket, chunk) => {
    const lines = chunk.toString().split("\r\n")
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!
      if (line.length === 0) continue
      const opaque = / O\d+$/.exec(line)?.[0] ?? ""
      if (line === "version") socket.write("VERSION 1.6.18\r\n")
      else answer(line.slice(0, line.length - opaque.length), n++, socket, (code) => `${code}${opaque}\r\n`)
      if (line.startsWith("ms ")) i++
    }
  })
}

describe("cluster", () => {
  it.live("keys land on the server ketama names, and every client agrees", () =>
    Effect.gen(function* () {
      const servers = inject("memcachedCluster")
      const ring = makeKetamaRing(servers.map((s) => parseServerSpec(s)))
      const keys = Array.from({ length: 300 }, (_, i) => uniqueKey(`placed-${i}`))
      const mc = yield* McClient
      yield* Effect.forEach(keys, (key) => mc.set({ key, value: key }), { concurrency: 50, discard: true })
      const byServer = new Map<string, number>()
      for (const server of servers) {
        const one = yield* pinned(server)
        for (const key of keys) {
          const found = yield* Effect.exit(one.get(key))
          const owner = ring.pick(key)[0]!
          expect(found._tag === "Success", `${key} on ${server}`).toBe(owner === server)
          if (owner === server) byServer.set(server, (byServer.get(server) ?? 0) + 1)
        }
      }
      // Each of the three servers holds a fair share.
      for (const server of servers) expect(byServer.get(server) ?? 0).toBeGreaterThan(40)
      const all = yield* mc.getMulti(keys)
      expect(all.size).toBe(keys.length)
      for (const key of keys) expect(text(all.get(key)!.value)).toBe(key)
    }).pipe(Effect.scoped, Effect.provide(McClient.layer({ servers: inject("memcachedCluster") }))),
  )

  it.live("getMulti: a failed server fails the call; with partial, the hits come with each failed key's error", () =>
    Effect.gen(function* () {
      const [up] = inject("memcachedCluster")
      const down = yield* Effect.promise(refusedAddress)
      const keys = Array.from({ length: 60 }, (_, i) => uniqueKey(`half-${i}`))
      const byServer = (key: string) => (keys.indexOf(key) % 2 === 0 ? up! : down)
      const [whole, { items, failed }] = yield* Effect.gen(function* () {
        const mc = yield* McClient
        for (const key of keys.filter((k) => byServer(k) === up)) yield* mc.set({ key, value: key })
        return [yield* Effect.exit(mc.getMulti(keys)), yield* mc.getMulti(keys, { partial: true })] as const
      }).pipe(Effect.provide(McClient.layer({ servers: [up!, down], pickServer: (k) => [byServer(k)] })))
      expect(failureTag(whole)).toBe("ConnectionError")
      expect(items.size).toBe(30)
      for (const [key, item] of items) expect(text(item.value)).toBe(key)
      expect(failed.size).toBe(30)
      for (const [key, error] of failed) {
        expect(byServer(key)).toBe(down)
        expect(error._tag).toBe("ConnectionError")
      }
    }),
  )

  it.live("getMulti broadcast asks every listed server, prefers the first, and accepts only listed servers", () =>
    Effect.gen(function* () {
      const [a, b] = inject("memcachedCluster")
      const down = yield* Effect.promise(refusedAddress)
      const [onlyB, both, unlisted] = [uniqueKey("only-b"), uniqueKey("both"), uniqueKey("unlisted")]
      const onA = yield* pinned(a!)
      const onB = yield* pinned(b!)
      yield* onB.set({ key: onlyB, value: "from b" })
      yield* onA.set({ key: both, value: "from a" })
      yield* onB.set({ key: both, value: "from b" })
      yield* onB.set({ key: unlisted, value: "from b" })
      const pickServer = (key: string) => (key === unlisted ? [a!] : [a!, down, b!])
      const [broadcast, single] = yield* Effect.gen(function* () {
        const mc = yield* McClient
        return [
          yield* mc.getMulti([onlyB, both, unlisted], { broadcast: true }),
          yield* mc.getMulti([onlyB, both, unlisted]),
        ] as const
      }).pipe(Effect.provide(McClient.layer({ servers: [a!, b!, down], pickServer })))
      expect(text(broadcast.get(onlyB)!.value)).toBe("from b")
      expect(text(broadcast.get(both)!.value)).toBe("from a")
      // A hit from a listed server answers the key, even when another listed server failed.
      expect(broadcast.has(unlisted)).toBe(false)
      // Without broadcast each key is read where a get would read it: the first healthy server.
      expect([...single.keys()]).toEqual([both])
    }).pipe(Effect.scoped),
  )

  it.live("a custom pickServer routes every operation", () =>
    Effect.gen(function* () {
      const [a, b] = inject("memcachedCluster")
      const key = uniqueKey("routed")
      yield* McClient.set({ key, value: "here" }).pipe(
        Effect.provide(McClient.layer({ servers: [a!, b!], pickServer: () => [b!] })),
      )
      const onB = yield* pinned(b!)
      expect(text((yield* onB.get(key)).value)).toBe("here")
      const onA = yield* pinned(a!)
      expect(failureTag(yield* Effect.exit(onA.get(key)))).toBe("CacheMiss")
    }).pipe(Effect.scoped),
  )

  it.live("a connection error is retried (idempotent operations); a server's answer never is", () =>
    Effect.gen(function* () {
      const requests: Array<string> = []
      const flaky = yield* Effect.promise(() =>
        scriptedServer((line, nth, socket, echo) => {
          requests.push(line)
          if (nth === 0) socket.destroy() // the first request dies with its connection
          else if (line.startsWith("mg")) socket.write(echo("EN"))
          else socket.write("SERVER_ERROR out of memory storing object\r\n")
        }),
      )
      const layer = McClient.layer({ servers: [flaky.address], disableBinaryEncodedKeys: true })
      const get = yield* Effect.exit(McClient.get("k").pipe(Effect.provide(layer)))
      expect(failureTag(get)).toBe("CacheMiss") // retried after the connection died, then answered
      const set = yield* Effect.exit(McClient.set({ key: "k", value: "v" }).pipe(Effect.provide(layer)))
      expect(failureTag(set)).toBe("ServerError")
      yield* Effect.promise(flaky.close)
      expect(requests).toEqual(["mg k f v", "mg k f v", "ms k 1"])
    }),
  )

  it.live("inc is not idempotent: a connection error is not retried", () =>
    Effect.gen(function* () {
      const requests: Array<string> = []
      const dying = yield* Effect.promise(() =>
        scriptedServer((line, _nth, socket) => {
          requests.push(line)
          socket.destroy()
        }),
      )
      const exit = yield* Effect.exit(
        McClient.inc("n", 1).pipe(Effect.provide(McClient.layer({ servers: [dying.address], disableBinaryEncodedKeys: true }))),
      )
      yield* Effect.promise(dying.close)
      expect(failureTag(exit)).toBe("ConnectionError")
      expect(requests).toEqual(["ma n v D1"])
    }),
  )

  it.live("connMaxLifetime rotates connections without failing the operations in flight", () =>
    Effect.gen(function* () {
      // A server of its own, so that its connection count is this test's alone.
      const own = yield* Effect.acquireRelease(Effect.promise(() => startMemcached()), (m) => Effect.promise(() => m.stop()))
      const before = Number((yield* Effect.promise(() => statsOf(own.address))).get("total_connections"))
      const key = uniqueKey("rotate")
      const ops = yield* Effect.gen(function* () {
        const mc = yield* McClient
        yield* mc.set({ key, value: key })
        const deadline = Date.now() + 600
        let count = 0
        yield* Effect.forEach(
          Array.from({ length: 20 }),
          () =>
            Effect.gen(function* () {
              while (Date.now() < deadline) {
                expect(text((yield* mc.get(key)).value)).toBe(key)
                count++
              }
            }),
          { concurrency: "unbounded", discard: true },
        )
        return count
      }).pipe(Effect.provide(McClient.layer({ servers: [own.address], connMaxLifetime: "100 millis" })))
      // Every get succeeded (a failure would have failed the test), across several connections.
      expect(ops).toBeGreaterThanOrEqual(20)
      const after = Number((yield* Effect.promise(() => statsOf(own.address))).get("total_connections"))
      expect(after - before).toBeGreaterThan(3)
    }).pipe(Effect.scoped),
  )
})

/** memcached's `stats` as a map. */
const statsOf = async (server: string) =>
  new Map(
    (await textRequest(server, "stats\r\n"))
      .split("\r\n")
      .filter((l) => l.startsWith("STAT "))
      .map((l) => l.split(" ").slice(1, 3) as [string, string]),
  )
