/** The memory layer runs on Effect's Clock: TestClock moves TTLs, with no real sleeps. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, TestClock } from "effect"
import { McClient } from "../../src/index.js"

const provide = Effect.provide(McClient.layerMemory())
const isMiss = (exit: Exit.Exit<unknown, { _tag: string }>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "CacheMiss"

describe("memory layer on TestClock", () => {
  it.effect("items expire when the clock passes their expiration", () =>
    Effect.gen(function* () {
      yield* McClient.set({ key: "k", value: "v" }, { expiration: 10 })
      yield* TestClock.adjust("9 seconds")
      expect((yield* McClient.get("k", { ttl: true })).ttl).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(isMiss(yield* Effect.exit(McClient.get("k")))).toBe(true)
    }).pipe(provide),
  )

  it.effect("touch extends the life of an item", () =>
    Effect.gen(function* () {
      yield* McClient.set({ key: "k", value: "v" }, { expiration: 10 })
      yield* TestClock.adjust("5 seconds")
      yield* McClient.touch("k", 60)
      yield* TestClock.adjust("30 seconds")
      expect((yield* McClient.get("k")).value.length).toBe(1)
    }).pipe(provide),
  )

  it.effect("earlyRecache wins once the remaining TTL drops below the window", () =>
    Effect.gen(function* () {
      yield* McClient.set({ key: "k", value: "v" }, { expiration: 100 })
      expect((yield* McClient.get("k", { earlyRecache: 30 })).won).toBe(false)
      yield* TestClock.adjust("80 seconds")
      expect((yield* McClient.get("k", { earlyRecache: 30 })).won).toBe(true)
      expect((yield* McClient.get("k", { earlyRecache: 30 })).winSent).toBe(true)
    }).pipe(provide),
  )

  it.effect("an invalidated item lives only as long as the invalidation window", () =>
    Effect.gen(function* () {
      yield* McClient.set({ key: "k", value: "v" }, { expiration: 3600 })
      yield* McClient.del("k", { invalidate: 30 })
      expect((yield* McClient.get("k")).stale).toBe(true)
      yield* TestClock.adjust("31 seconds")
      expect(isMiss(yield* Effect.exit(McClient.get("k")))).toBe(true)
    }).pipe(provide),
  )

  it.effect("min-uses counts expire with the expiration window", () =>
    Effect.gen(function* () {
      yield* McClient.set({ key: "k", value: "1" }, { minUses: 2, expiration: 10 })
      yield* TestClock.adjust("11 seconds")
      yield* McClient.set({ key: "k", value: "2" }, { minUses: 2, expiration: 10 })
      expect(isMiss(yield* Effect.exit(McClient.get("k")))).toBe(true)
      yield* McClient.set({ key: "k", value: "3" }, { minUses: 2, expiration: 10 })
      expect(Buffer.from((yield* McClient.get("k")).value).toString()).toBe("3")
    }).pipe(provide),
  )

  it.effect("lastAccess counts seconds of the Clock", () =>
    Effect.gen(function* () {
      yield* McClient.set({ key: "k", value: "v" })
      yield* McClient.get("k")
      yield* TestClock.adjust("42 seconds")
      expect((yield* McClient.get("k", { lastAccess: true })).lastAccess).toBe(42)
    }).pipe(provide),
  )
})
