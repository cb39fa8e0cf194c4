/**
 * `effect-memcache/Persistence` against real memcached and the memory engine: @effect/experimental's
 * PersistedCache test (packages/experimental/test/PersistedCache.test.ts at @effect/experimental@0.61.1),
 * the backing store's own methods, server-side TTLs, and the failure paths.
 */
import * as PersistedCache from "@effect/experimental/PersistedCache"
import * as Persistence from "@effect/experimental/Persistence"
import { describe, expect, it, layer } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Option, PrimaryKey, Schedule, Schema, TestClock } from "effect"
import { McClient } from "../src/index.js"
import * as McPersistence from "../src/Persistence.js"
import { failureOf } from "./support/exits.js"
import { refusedAddress } from "./support/fakeServer.js"
import { targets, uniqueKey } from "./support/layers.js"

class User extends Schema.Class<User>("User")({ id: Schema.Number, name: Schema.String }) {}

class UserRequest extends Schema.TaggedRequest<UserRequest>()("UserRequest", {
  failure: Schema.String,
  success: User,
  payload: { id: Schema.Number },
}) {
  [PrimaryKey.symbol]() {
    return `UserRequest:${this.id}`
  }
}

const userOf = (id: number) => new User({ id, name: `user ${id}` })

/** A PersistedCache over ResultPersistence whose lookup counts its calls; ids below 0 fail. */
const makeCache = (storeId: string, counter: { calls: number }, timeToLive: Duration.DurationInput = "1 hour") =>
  PersistedCache.make({
    storeId,
    lookup: (req: UserRequest) =>
      Effect.suspend(() => {
        counter.calls++
        return req.id < 0 ? Effect.fail(`no user ${req.id}`) : Effect.succeed(userOf(req.id))
      }),
    timeToLive: () => timeToLive,
  })

/** The wire key of a store's entry (see src/Persistence.ts). */
const wireKey = (storeId: string, key: string) => `${encodeURIComponent(`persistence:${storeId}`)}:${key}`

/** The PersistenceError an effect fails with. */
const persistenceFailure = <A, E>(exit: Exit.Exit<A, E>) => {
  const error = failureOf(exit) as Persistence.PersistenceError | undefined
  if (error?._tag !== "PersistenceError") throw new Error(`expected a PersistenceError, got ${String(exit)}`)
  return error
}
const causeTag = (error: Persistence.PersistenceError) =>
  error.reason === "BackingError" ? (error.cause as { _tag?: string } | undefined)?._tag : undefined

// Before the shared-layer suites: @effect/vitest's `layer()` replaces the module's `it.effect` with
// one that runs in its layer (without TestClock), for every `it.effect` declared after it.
describe("memory engine on TestClock", () => {
  it.scoped("a persisted result expires with its time to live; a fresh in-memory cache then looks it up again", () =>
    Effect.gen(function* () {
      const counter = { calls: 0 }
      const first = yield* makeCache("ttl", counter, "5 seconds")
      expect(yield* first.get(new UserRequest({ id: 1 }))).toEqual(userOf(1))
      yield* TestClock.adjust("4 seconds")
      // A new PersistedCache has nothing in memory: this hit is served from the engine.
      expect(yield* (yield* makeCache("ttl", counter, "5 seconds")).get(new UserRequest({ id: 1 }))).toEqual(userOf(1))
      expect(counter.calls).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(yield* (yield* makeCache("ttl", counter, "5 seconds")).get(new UserRequest({ id: 1 }))).toEqual(userOf(1))
      expect(counter.calls).toBe(2)
    }).pipe(Effect.provide(McPersistence.layerResult().pipe(Layer.provide(McClient.layerMemory())))),
  )

  it.scoped("a TTL under a second lives a whole second; one over 30 days is sent as an absolute time", () =>
    Effect.gen(function* () {
      const backing = yield* Persistence.BackingPersistence
      const store = yield* backing.make("units")
      yield* store.set("short", { value: "short" }, Option.some(Duration.millis(500)))
      yield* store.set("long", { value: "long" }, Option.some(Duration.days(40)))
      yield* TestClock.adjust("999 millis")
      expect(yield* store.get("short")).toEqual(Option.some({ value: "short" }))
      yield* TestClock.adjust("1 milli")
      expect(yield* store.get("short")).toEqual(Option.none())
      yield* TestClock.adjust(Duration.subtract(Duration.days(40), Duration.seconds(2)))
      expect(yield* store.get("long")).toEqual(Option.some({ value: "long" }))
      yield* TestClock.adjust("2 seconds")
      expect(yield* store.get("long")).toEqual(Option.none())
    }).pipe(Effect.provide(McPersistence.layer().pipe(Layer.provide(McClient.layerMemory())))),
  )
})

for (const target of targets) {
  describe(target.name, () => {
    layer(target.layer(), { excludeTestServices: true })("Persistence", (it) => {
      const provideResult = Effect.provide(McPersistence.layerResult())
      const provideBacking = Effect.provide(McPersistence.layer())

      // @effect/experimental's case.
      it.scoped("PersistedCache: a hit is served from memcached after the in-memory cache is gone", () =>
        Effect.gen(function* () {
          const storeId = uniqueKey("users")
          const persistence = yield* Persistence.ResultPersistence
          const store = yield* persistence.make({ storeId })
          const counter = { calls: 0 }
          const cache = yield* makeCache(storeId, counter)
          expect(yield* cache.get(new UserRequest({ id: 1 }))).toEqual(userOf(1))
          expect(yield* store.get(new UserRequest({ id: 1 }))).toEqual(Option.some(Exit.succeed(userOf(1))))
          expect(counter.calls).toBe(1)
          expect(yield* cache.get(new UserRequest({ id: 1 }))).toEqual(userOf(1))
          expect(counter.calls).toBe(1)

          const fresh = yield* makeCache(storeId, counter)
          expect(yield* fresh.get(new UserRequest({ id: 1 }))).toEqual(userOf(1))
          expect(yield* fresh.get(new UserRequest({ id: 2 }))).toEqual(userOf(2))
          expect(counter.calls).toBe(2)
        }).pipe(provideResult),
      )

      it.scoped("PersistedCache: a failure is persisted too, and invalidate drops it", () =>
        Effect.gen(function* () {
          const storeId = uniqueKey("users")
          const counter = { calls: 0 }
          const cache = yield* makeCache(storeId, counter)
          expect(failureOf(yield* Effect.exit(cache.get(new UserRequest({ id: -7 }))))).toBe("no user -7")
          const fresh = yield* makeCache(storeId, counter)
          expect(failureOf(yield* Effect.exit(fresh.get(new UserRequest({ id: -7 }))))).toBe("no user -7")
          expect(counter.calls).toBe(1)
          yield* fresh.invalidate(new UserRequest({ id: -7 }))
          const third = yield* makeCache(storeId, counter)
          expect(failureOf(yield* Effect.exit(third.get(new UserRequest({ id: -7 }))))).toBe("no user -7")
          expect(counter.calls).toBe(2)
        }).pipe(provideResult),
      )

      it.scoped("ResultPersistence: getMany answers each key in order, misses as none", () =>
        Effect.gen(function* () {
          const persistence = yield* Persistence.ResultPersistence
          const store = yield* persistence.make({ storeId: uniqueKey("users"), timeToLive: () => "1 hour" })
          yield* store.setMany([
            [new UserRequest({ id: 1 }), Exit.succeed(userOf(1))],
            [new UserRequest({ id: 3 }), Exit.fail("no user 3")],
          ])
          expect(yield* store.getMany([1, 2, 3, 1].map((id) => new UserRequest({ id })))).toEqual([
            Option.some(Exit.succeed(userOf(1))),
            Option.none(),
            Option.some(Exit.fail("no user 3")),
            Option.some(Exit.succeed(userOf(1))),
          ])
        }).pipe(provideResult),
      )

      // The backing store itself.
      it.scoped("backing store: set, get, getMany, remove, and clear of one store only", () =>
        Effect.gen(function* () {
          const backing = yield* Persistence.BackingPersistence
          const id = uniqueKey("store")
          const store = yield* backing.make(id)
          const other = yield* backing.make(`${id}-other`)
          const entry = (key: string) => ({ key, nested: [1, "two", { three: null }] })
          yield* store.set("a", entry("a"), Option.none())
          yield* store.setMany([
            ["b", entry("b"), Option.some(Duration.hours(1))],
            ["c d ✓", entry("c d ✓"), Option.none()],
          ])
          yield* other.set("a", entry("other a"), Option.none())
          expect(yield* store.get("a")).toEqual(Option.some(entry("a")))
          expect(yield* store.getMany(["c d ✓", "missing", "b", "a"])).toEqual([
            Option.some(entry("c d ✓")),
            Option.none(),
            Option.some(entry("b")),
            Option.some(entry("a")),
          ])
          expect(yield* store.getMany([])).toEqual([])
          yield* store.remove("a")
          yield* store.remove("never set")
          expect(yield* store.get("a")).toEqual(Option.none())
          yield* store.clear
          expect(yield* store.getMany(["b", "c d ✓"])).toEqual([Option.none(), Option.none()])
          expect(yield* other.get("a")).toEqual(Option.some(entry("other a")))
          yield* store.set("b", entry("b again"), Option.none())
          expect(yield* store.get("b")).toEqual(Option.some(entry("b again")))
        }).pipe(provideBacking),
      )

      it.scoped("backing store: the TTL is the item's expiration on the server", () =>
        Effect.gen(function* () {
          const backing = yield* Persistence.BackingPersistence
          const id = uniqueKey("store")
          const store = yield* backing.make(id)
          yield* store.set("hour", "hour", Option.some(Duration.hours(1)))
          yield* store.set("half", "half", Option.some(Duration.millis(500)))
          yield* store.set("none", "none", Option.none())
          yield* store.set("forever", "forever", Option.some(Duration.infinity))
          yield* store.set("days", "days", Option.some(Duration.days(40)))
          const ttl = (key: string) => Effect.map(McClient.get(wireKey(id, key), { ttl: true }), (item) => item.ttl)
          expect(yield* ttl("hour")).toBeGreaterThan(3590)
          expect(yield* ttl("hour")).toBeLessThanOrEqual(3600)
          expect(yield* ttl("half")).toBeLessThanOrEqual(1)
          expect(yield* ttl("none")).toBe(-1)
          expect(yield* ttl("forever")).toBe(-1)
          expect(yield* ttl("days")).toBeGreaterThan(40 * 86400 - 10)
          // Rounded up to a whole second, against a server clock that ticks once a second.
          expect(yield* ttl("days")).toBeLessThanOrEqual(40 * 86400 + 2)
          // A TTL of zero expires at once: what was there is gone, nothing new is written.
          yield* store.set("hour", "zero", Option.some(Duration.zero))
          expect(yield* store.get("hour")).toEqual(Option.none())
        }).pipe(provideBacking),
      )

      it.scoped("backing store: a stored value that is not JSON is a BackingError, not a none", () =>
        Effect.gen(function* () {
          const backing = yield* Persistence.BackingPersistence
          const id = uniqueKey("store")
          const store = yield* backing.make(id)
          yield* McClient.set({ key: wireKey(id, "garbage"), value: "{not json" })
          for (const [method, effect] of [
            ["get", store.get("garbage")],
            ["getMany", store.getMany(["garbage"])],
          ] as const) {
            const error = persistenceFailure(yield* Effect.exit(effect as Effect.Effect<unknown, Persistence.PersistenceError>))
            expect(error).toMatchObject({ reason: "BackingError", method })
            expect((error as Persistence.PersistenceBackingError).cause).toBeInstanceOf(SyntaxError)
          }
        }).pipe(provideBacking),
      )

      it.scoped("backing store: a value without a JSON form is a BackingError and writes nothing", () =>
        Effect.gen(function* () {
          const backing = yield* Persistence.BackingPersistence
          const store = yield* backing.make(uniqueKey("store"))
          for (const value of [10n, undefined, () => "f"]) {
            const error = persistenceFailure(yield* Effect.exit(store.set("bad", value, Option.none())))
            expect(error).toMatchObject({ reason: "BackingError", method: "set" })
          }
          expect(yield* store.get("bad")).toEqual(Option.none())
        }).pipe(provideBacking),
      )
    })
  })
}

describe("memcached, real TTL", () => {
  const tcp = targets.find((t) => t.name === "memcached")!
  it.live(
    "a result persisted with a 2 second TTL is served until the server expires it",
    () =>
      Effect.gen(function* () {
        const storeId = uniqueKey("users")
        const counter = { calls: 0 }
        yield* (yield* makeCache(storeId, counter, "2 seconds")).get(new UserRequest({ id: 1 }))
        expect(yield* (yield* makeCache(storeId, counter, "2 seconds")).get(new UserRequest({ id: 1 }))).toEqual(userOf(1))
        expect(counter.calls).toBe(1)
        // memcached ticks in whole seconds: a 2 s item is gone within 2 s (and not before 1 s).
        yield* Effect.sleep("2500 millis")
        expect(yield* (yield* makeCache(storeId, counter, "2 seconds")).get(new UserRequest({ id: 1 }))).toEqual(userOf(1))
        expect(counter.calls).toBe(2)
      }).pipe(Effect.scoped, Effect.provide(McPersistence.layerResult().pipe(Layer.provide(tcp.layer())))),
    10_000,
  )
})

describe("a failing cache is a PersistenceError, never a miss", () => {
  it.live("a dead server: PersistedCache fails without running the lookup; every store method fails", () =>
    Effect.gen(function* () {
      const address = yield* Effect.promise(refusedAddress)
      const mc = McClient.layer({ servers: [address], retry: Schedule.recurs(0) })
      yield* Effect.gen(function* () {
        const counter = { calls: 0 }
        const cache = yield* makeCache("dead", counter)
        const error = persistenceFailure(yield* Effect.exit(cache.get(new UserRequest({ id: 1 }))))
        expect(error).toMatchObject({ reason: "BackingError", method: "get" })
        expect(causeTag(error)).toBe("ConnectionError")
        expect(counter.calls).toBe(0)
      }).pipe(Effect.scoped, Effect.provide(McPersistence.layerResult().pipe(Layer.provide(mc))))

      yield* Effect.gen(function* () {
        const store = yield* (yield* Persistence.BackingPersistence).make("dead")
        for (const [method, effect] of [
          ["get", store.get("k")],
          ["getMany", store.getMany(["k", "l"])],
          ["set", store.set("k", "v", Option.none())],
          ["setMany", store.setMany([["k", "v", Option.none()]])],
          ["remove", store.remove("k")],
          ["clear", store.clear],
        ] as const) {
          const error = persistenceFailure(yield* Effect.exit(effect as Effect.Effect<unknown, Persistence.PersistenceError>))
          expect(error).toMatchObject({ reason: "BackingError", method })
          expect(causeTag(error)).toBe("ConnectionError")
        }
      }).pipe(Effect.scoped, Effect.provide(McPersistence.layer().pipe(Layer.provide(mc))))
    }),
  )

  it.live("plain keys (disableBinaryEncodedKeys): a key memcached cannot take is a BackingError with MalformedKey", () =>
    Effect.gen(function* () {
      const store = yield* (yield* Persistence.BackingPersistence).make("plain")
      for (const effect of [store.set("with space", "v", Option.none()), store.get("x".repeat(300))]) {
        const error = persistenceFailure(yield* Effect.exit(effect as Effect.Effect<unknown, Persistence.PersistenceError>))
        expect(causeTag(error)).toBe("MalformedKey")
      }
      yield* store.set("plain-key", "value of plain-key", Option.none())
      expect(yield* store.get("plain-key")).toEqual(Option.some("value of plain-key"))
    }).pipe(
      Effect.scoped,
      Effect.provide(McPersistence.layer().pipe(Layer.provide(McClient.layerMemory({ disableBinaryEncodedKeys: true })))),
    ),
  )
})
