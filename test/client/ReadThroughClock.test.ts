/** getOrSet on the memory layer under TestClock: early recache, lease waits, background refreshes. */
import { describe, expect, it } from "@effect/vitest"
import { Data, Deferred, Effect, Fiber, Layer, Logger, Schema, TestClock } from "effect"
import { McClient, type McClientService } from "../../src/index.js"
import { readThroughsInFlight } from "../../src/client/ReadThrough.js"
import { uniqueKey } from "../support/layers.js"

const Value = Schema.Struct({ key: Schema.String, n: Schema.Number })
type Value = typeof Value.Type

class LookupFailed extends Data.TaggedError("LookupFailed")<{ readonly key: string }> {}

/** A lookup that counts its runs and answers `{ key, n }`, n = its run number. */
const counted = (key: string) => {
  let runs = 0
  return { lookup: Effect.sync((): Value => ({ key, n: ++runs })), runs: () => runs }
}

const options = { schema: Value, expiration: 60 } as const

describe("memory on TestClock", () => {
  it.effect("early recache: the winner gets the current value and refreshes it in the background", () =>
    Effect.gen(function* () {
      const key = uniqueKey("recache-clock")
      const { lookup, runs } = counted(key)
      const o = { schema: Value, expiration: "10 seconds", earlyRecache: "5 seconds" } as const
      expect(yield* McClient.getOrSet(key, lookup, o)).toEqual({ key, n: 1 })
      yield* TestClock.adjust("4 seconds")
      expect(yield* McClient.getOrSet(key, lookup, o)).toEqual({ key, n: 1 })
      expect(runs()).toBe(1)
      yield* TestClock.adjust("2 seconds")
      expect(yield* McClient.getOrSet(key, lookup, o)).toEqual({ key, n: 1 })
      yield* Effect.yieldNow()
      expect(runs()).toBe(2)
      expect(yield* McClient.getOrSet(key, lookup, o)).toEqual({ key, n: 2 })
      expect((yield* McClient.get(key, { ttl: true })).ttl).toBe(10)
      // And it expires as stored.
      yield* TestClock.adjust("11 seconds")
      expect(yield* McClient.getOrSet(key, lookup, o)).toEqual({ key, n: 3 })
    }).pipe(Effect.provide(McClient.layerMemory())),
  )

  it.effect("a background refresh that fails is logged and leaves the current value", () => {
    const logs: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => void logs.push(`${logLevel.label} ${String(message)}`))
    return Effect.gen(function* () {
      const key = uniqueKey("recache-fail")
      const o = { schema: Value, expiration: 10, earlyRecache: 5 } as const
      yield* McClient.getOrSet(key, Effect.succeed({ key, n: 1 }), o)
      yield* TestClock.adjust("6 seconds")
      expect(yield* McClient.getOrSet(key, Effect.fail(new LookupFailed({ key })), o)).toEqual({ key, n: 1 })
      yield* Effect.yieldNow()
      expect(logs.some((l) => l.startsWith("WARN") && l.includes("background refresh failed"))).toBe(true)
      expect(yield* McClient.getAs(Value, key)).toEqual({ key, n: 1 })
    }).pipe(Effect.provide(Layer.merge(McClient.layerMemory(), Logger.replace(Logger.defaultLogger, logger))))
  })

  it.effect("a loser waits on the lease schedule as the clock moves, then computes itself", () =>
    Effect.gen(function* () {
      const key = uniqueKey("loser-clock")
      yield* McClient.setAs(Value, { key, value: { key, n: 0 } })
      yield* McClient.del(key, { invalidate: 60 })
      expect((yield* McClient.get(key)).won).toBe(true)
      const { lookup, runs } = counted(key)
      const fiber = yield* Effect.fork(McClient.getOrSet(key, lookup, options))
      yield* TestClock.adjust("1 second")
      expect(runs()).toBe(0)
      expect(fiber.unsafePoll()).toBe(null)
      // The default schedule gives up after 2 seconds.
      yield* TestClock.adjust("1500 millis")
      expect(yield* Fiber.join(fiber)).toEqual({ key, n: 1 })
      expect(runs()).toBe(1)
      expect(readThroughsInFlight()).toBe(0)
    }).pipe(Effect.provide(McClient.layerMemory())),
  )

  it.effect("closing the layer interrupts a background refresh", () =>
    Effect.gen(function* () {
      const key = uniqueKey("recache-close")
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const o = { schema: Value, expiration: 10, earlyRecache: 5 } as const
      yield* Effect.scoped(
        Effect.gen(function* () {
          const mc = yield* Layer.build(McClient.layerMemory()).pipe(Effect.map((ctx) => ctx.unsafeMap.get(McClient.key) as McClientService))
          yield* mc.getOrSet(key, Effect.succeed({ key, n: 1 }), o)
          yield* TestClock.adjust("6 seconds")
          const slow = Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)),
          )
          expect(yield* mc.getOrSet(key, slow, o)).toEqual({ key, n: 1 })
          yield* Deferred.await(started)
        }),
      )
      expect(yield* Deferred.isDone(interrupted)).toBe(true)
    }),
  )
})
