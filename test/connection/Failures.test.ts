/**
 * Failure behaviour of the TCP path: deadlines, refused and dying connections, old servers,
 * oversized values, and interruption under load.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Random, Schedule } from "effect"
import { inject } from "vitest"
import { McClient } from "../../src/index.js"
import { failureOf } from "../support/exits.js"
import { fakeServer, refusedAddress } from "../support/fakeServer.js"
import { text, uniqueKey } from "../support/layers.js"


/** Retries off, so that a failure is seen as it happened. */
const noRetry = Schedule.recurs(0)

const elapsed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const start = Date.now()
    const exit = yield* Effect.exit(effect)
    return { exit, millis: Date.now() - start }
  })

describe("failures", () => {
  it.live("a server that accepts and never answers gives Timeout close to the deadline", () =>
    Effect.gen(function* () {
      const silent = yield* Effect.promise(() => fakeServer())
      const { exit, millis } = yield* elapsed(
        McClient.get("k", { timeout: "150 millis" }).pipe(
          Effect.provide(McClient.layer({ servers: [silent.address], retry: noRetry })),
        ),
      )
      yield* Effect.promise(() => silent.close())
      expect(failureOf(exit)).toMatchObject({ _tag: "Timeout", server: silent.address, timeoutMillis: 150 })
      expect(millis).toBeGreaterThanOrEqual(140)
      expect(millis).toBeLessThan(400)
    }),
  )

  it.live("a refused connection gives ConnectionError within the dial timeout", () =>
    Effect.gen(function* () {
      const address = yield* Effect.promise(refusedAddress)
      const { exit, millis } = yield* elapsed(
        McClient.get("k").pipe(Effect.provide(McClient.layer({ servers: [address], dialTimeout: "100 millis" }))),
      )
      expect(failureOf(exit)).toMatchObject({ _tag: "ConnectionError", server: address })
      expect(millis).toBeLessThan(300)
    }),
  )

  it.live("pending operations fail with ConnectionError when the socket dies", () =>
    Effect.gen(function* () {
      const dying = yield* Effect.promise(() =>
        fakeServer((socket, chunk) => {
          if (chunk.includes("version")) socket.write("VERSION 1.6.18\r\n")
          if (chunk.includes("mg ")) socket.destroy()
        }),
      )
      const exits = yield* Effect.forEach(["a", "b", "c"], (k) => Effect.exit(McClient.get(k)), {
        concurrency: "unbounded",
      }).pipe(Effect.provide(McClient.layer({ servers: [dying.address], retry: noRetry })))
      yield* Effect.promise(() => dying.close())
      for (const exit of exits) expect(failureOf(exit)?._tag).toBe("ConnectionError")
    }),
  )

  it.live("a server older than 1.6.14 gives UnsupportedServerVersion", () =>
    Effect.gen(function* () {
      const old = yield* Effect.promise(() =>
        fakeServer((socket, chunk) => {
          if (chunk.includes("version")) socket.write("VERSION 1.5.22\r\n")
        }),
      )
      const exit = yield* Effect.exit(McClient.get("k").pipe(Effect.provide(McClient.layer({ servers: [old.address] }))))
      yield* Effect.promise(() => old.close())
      expect(failureOf(exit)).toMatchObject({ _tag: "UnsupportedServerVersion", version: "1.5.22" })
    }),
  )

  it.live("garbage from the server is CorruptResponse", () =>
    Effect.gen(function* () {
      const liar = yield* Effect.promise(() =>
        fakeServer((socket, chunk) => {
          if (chunk.includes("version")) socket.write("VERSION 1.6.18\r\n")
          if (chunk.includes("mg ")) socket.write("HELLO THERE\r\n")
        }),
      )
      const exit = yield* Effect.exit(McClient.get("k").pipe(Effect.provide(McClient.layer({ servers: [liar.address], retry: noRetry }))))
      yield* Effect.promise(() => liar.close())
      expect(failureOf(exit)?._tag).toBe("CorruptResponse")
    }),
  )

  it.live("an empty server list fails the layer with NoServers", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(McClient.get("k").pipe(Effect.provide(McClient.layer({ servers: [] }))))
      expect(failureOf(exit)?._tag).toBe("NoServers")
    }),
  )

  it.live("a value over the server's item limit is ServerError and the connection stays in sync", () =>
    Effect.gen(function* () {
      const key = uniqueKey("huge")
      const exit = yield* Effect.exit(McClient.set({ key, value: Buffer.alloc(2 * 1024 * 1024, 1) }))
      expect(failureOf(exit)).toMatchObject({ _tag: "ServerError", key })
      // The next operations on the same connection get their own replies.
      yield* McClient.set({ key, value: "small" })
      expect(text((yield* McClient.get(key)).value)).toBe("small")
      const limit = Buffer.alloc(1024 * 1024 - 512, 2)
      yield* McClient.set({ key, value: limit })
      expect((yield* McClient.get(key)).value.length).toBe(limit.length)
    }).pipe(Effect.provide(McClient.layer({ servers: [inject("memcached")], timeout: "2 seconds" }))),
  )

  it.live("10,000 concurrent gets with a third interrupted: every completed get has its own value", () =>
    Effect.gen(function* () {
      const prefix = uniqueKey("storm")
      const keys = Array.from({ length: 10_000 }, (_, i) => `${prefix}:${i}`)
      yield* Effect.forEach(keys, (key) => McClient.set({ key, value: key }), { concurrency: 200, discard: true })
      const fibers = yield* Effect.forEach(keys, (key) => Effect.fork(McClient.get(key)))
      const interrupted = new Set<number>()
      for (let i = 0; i < fibers.length; i++) {
        if ((yield* Random.nextIntBetween(0, 3)) === 0) interrupted.add(i)
      }
      yield* Effect.forEach(interrupted, (i) => Fiber.interruptFork(fibers[i]!), { discard: true })
      let completed = 0
      for (let i = 0; i < fibers.length; i++) {
        const exit = yield* Fiber.await(fibers[i]!)
        if (Exit.isSuccess(exit)) {
          completed++
          expect(text(exit.value.value)).toBe(keys[i])
          expect(exit.value.key).toBe(keys[i])
        } else {
          expect(interrupted.has(i), String(exit.cause)).toBe(true)
          expect(Exit.isInterrupted(exit)).toBe(true)
        }
      }
      expect(completed).toBeGreaterThanOrEqual(10_000 - interrupted.size)
      // The connection is still in sync after the storm.
      for (const i of [0, 4999, 9999]) expect(text((yield* McClient.get(keys[i]!)).value)).toBe(keys[i])
    }).pipe(Effect.provide(McClient.layer({ servers: [inject("memcached")], timeout: "5 seconds" }))),
  )

  it.live("closing the layer closes every socket", () =>
    Effect.gen(function* () {
      const server = yield* Effect.promise(() =>
        fakeServer((socket, chunk) => {
          if (chunk.includes("version")) socket.write("VERSION 1.6.18\r\n")
          if (chunk.includes("mg ")) socket.write("EN\r\n")
        }),
      )
      yield* Effect.exit(McClient.get("k")).pipe(Effect.provide(McClient.layer({ servers: [server.address] })))
      yield* Effect.sleep("50 millis")
      expect(server.sockets.size).toBe(0)
      yield* Effect.promise(() => server.close())
    }),
  )
})

