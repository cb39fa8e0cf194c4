/**
 * The operations of DESIGN.md's table, run against real memcached and the in-memory engine.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { McClient } from "../../src/index.js"
import { failureTag } from "../support/exits.js"
import { targets, text, uniqueKey } from "../support/layers.js"


for (const target of targets) {
  describe(target.name, () => {
    layer(target.layer(), { excludeTestServices: true })("operations", (it) => {
      it.effect("set then get returns the value and flags", () =>
        Effect.gen(function* () {
          const key = uniqueKey("set")
          yield* McClient.set({ key, value: "John Doe", flags: 42 }, { expiration: 3600 })
          const item = yield* McClient.get(key)
          expect(text(item.value)).toBe("John Doe")
          expect(item.flags).toBe(42)
          expect(item.key).toBe(key)
          expect(item.stale).toBe(false)
          expect(item.won).toBe(false)
          expect(item.compressionRatio).toBe(0)
        }),
      )

      it.effect("a missing key is CacheMiss", () =>
        Effect.gen(function* () {
          const key = uniqueKey("miss")
          const exit = yield* Effect.exit(McClient.get(key))
          expect(failureTag(exit)).toBe("CacheMiss")
          const caught = yield* McClient.get(key).pipe(Effect.catchTag("CacheMiss", (e) => Effect.succeed(e.key)))
          expect(caught).toBe(key)
        }),
      )

      it.effect("values with CRLF, empty values and binary bytes round-trip", () =>
        Effect.gen(function* () {
          const values = [
            Buffer.from("line1\r\nline2\r\n"),
            new Uint8Array(0),
            Buffer.from([0, 255, 13, 10, 0, 13]),
            Buffer.alloc(1000 * 1000, 0x61),
          ]
          for (const value of values) {
            const key = uniqueKey("bytes")
            yield* McClient.set({ key, value })
            const item = yield* McClient.get(key)
            expect(Buffer.compare(Buffer.from(item.value), value)).toBe(0)
          }
        }),
      )

      it.effect("add stores only a new key; replace only an existing one", () =>
        Effect.gen(function* () {
          const key = uniqueKey("add")
          yield* McClient.add({ key, value: "first" })
          expect(failureTag(yield* Effect.exit(McClient.add({ key, value: "second" })))).toBe("NotStored")
          expect(text((yield* McClient.get(key)).value)).toBe("first")
          yield* McClient.replace({ key, value: "third" })
          expect(text((yield* McClient.get(key)).value)).toBe("third")
          const other = uniqueKey("replace")
          expect(failureTag(yield* Effect.exit(McClient.replace({ key: other, value: "x" })))).toBe("NotStored")
        }),
      )

      it.effect("append and prepend; a missing key is NotStored without expiration", () =>
        Effect.gen(function* () {
          const key = uniqueKey("append")
          yield* McClient.set({ key, value: "World", flags: 7 })
          yield* McClient.prepend({ key, value: "Hello " })
          yield* McClient.append({ key, value: "!" })
          const item = yield* McClient.get(key)
          expect(text(item.value)).toBe("Hello World!")
          expect(item.flags).toBe(7)
          const missing = uniqueKey("append-missing")
          expect(failureTag(yield* Effect.exit(McClient.append({ key: missing, value: "x" })))).toBe("NotStored")
          expect(failureTag(yield* Effect.exit(McClient.prepend({ key: missing, value: "x" })))).toBe("NotStored")
        }),
      )

      it.effect("append and prepend with expiration create a missing key", () =>
        Effect.gen(function* () {
          const key = uniqueKey("vivify")
          yield* McClient.append({ key, value: "a" }, { expiration: 60 })
          yield* McClient.append({ key, value: "b" }, { expiration: 60 })
          yield* McClient.prepend({ key, value: "0" }, { expiration: 60 })
          expect(text((yield* McClient.get(key)).value)).toBe("0ab")
          const other = uniqueKey("vivify-prepend")
          yield* McClient.prepend({ key: other, value: "p" }, { expiration: 60 })
          expect(text((yield* McClient.get(other)).value)).toBe("p")
        }),
      )

      it.effect("compareAndSwap succeeds with a fresh token and conflicts with a stale one", () =>
        Effect.gen(function* () {
          const key = uniqueKey("cas")
          yield* McClient.set({ key, value: "100" })
          const item = yield* McClient.get(key, { cas: true })
          expect(typeof item.cas).toBe("bigint")
          yield* McClient.compareAndSwap({ ...item, value: "101" })
          expect(text((yield* McClient.get(key)).value)).toBe("101")
          expect(failureTag(yield* Effect.exit(McClient.compareAndSwap({ ...item, value: "102" })))).toBe("CASConflict")
          yield* McClient.del(key)
          expect(failureTag(yield* Effect.exit(McClient.compareAndSwap({ ...item, value: "103" })))).toBe("CacheMiss")
          expect(failureTag(yield* Effect.exit(McClient.compareAndSwap({ key, value: "x" })))).toBe("ClientError")
        }),
      )

      it.effect("del removes; deleting a missing key is CacheMiss", () =>
        Effect.gen(function* () {
          const key = uniqueKey("del")
          yield* McClient.set({ key, value: "v" })
          yield* McClient.del(key)
          expect(failureTag(yield* Effect.exit(McClient.get(key)))).toBe("CacheMiss")
          expect(failureTag(yield* Effect.exit(McClient.del(key)))).toBe("CacheMiss")
        }),
      )

      it.effect("inc and dec are exact uint64: initial value, wrap, clamp, non-numeric", () =>
        Effect.gen(function* () {
          const key = uniqueKey("counter")
          expect(failureTag(yield* Effect.exit(McClient.inc(key, 1, 3600)))).toBe("CacheMiss")
          expect(yield* McClient.inc(key, 1, 3600, { initialValue: 1 })).toBe(1n)
          expect(yield* McClient.inc(key, 5, 3600)).toBe(6n)
          expect(yield* McClient.dec(key, 10, 3600)).toBe(0n)
          const big = uniqueKey("big")
          yield* McClient.set({ key: big, value: "18446744073709551614" })
          expect(yield* McClient.inc(big, 1n)).toBe(18446744073709551615n)
          expect(yield* McClient.inc(big, 2n)).toBe(1n)
          const word = uniqueKey("word")
          yield* McClient.set({ key: word, value: "abc" })
          expect(failureTag(yield* Effect.exit(McClient.inc(word, 1)))).toBe("BadIncrDec")
          expect(failureTag(yield* Effect.exit(McClient.inc(key, -1)))).toBe("BadIncrDec")
          expect(failureTag(yield* Effect.exit(McClient.inc(key, 2n ** 64n)))).toBe("BadIncrDec")
        }),
      )

      it.effect("touch updates the TTL of an existing key; a missing key is CacheMiss", () =>
        Effect.gen(function* () {
          const key = uniqueKey("touch")
          yield* McClient.set({ key, value: "v" }, { expiration: 100 })
          yield* McClient.touch(key, 1000)
          const item = yield* McClient.get(key, { ttl: true })
          expect(item.ttl).toBeGreaterThan(900)
          expect(failureTag(yield* Effect.exit(McClient.touch(uniqueKey("touch-missing"), 10)))).toBe("CacheMiss")
        }),
      )

      it.effect("getMulti returns the hits keyed by the caller's keys", () =>
        Effect.gen(function* () {
          const keys = Array.from({ length: 50 }, (_, i) => uniqueKey(`multi-${i}`))
          for (const key of keys.slice(0, 30)) yield* McClient.set({ key, value: `v:${key}`, flags: 3 })
          const found = yield* McClient.getMulti([...keys, keys[0]!])
          expect(found.size).toBe(30)
          for (const key of keys.slice(0, 30)) {
            expect(text(found.get(key)!.value)).toBe(`v:${key}`)
            expect(found.get(key)!.key).toBe(key)
            expect(found.get(key)!.flags).toBe(3)
          }
          expect((yield* McClient.getMulti([])).size).toBe(0)
        }),
      )

      it.effect("getMulti finds items that append and counters rewrote", () =>
        Effect.gen(function* () {
          // memcached 1.6.18 returns raw key bytes for such items; the client must not rely on them.
          const keys = Array.from({ length: 40 }, (_, i) => uniqueKey(`rewritten-${i}`))
          for (const key of keys.slice(0, 20)) {
            yield* McClient.set({ key, value: "a" })
            yield* McClient.append({ key, value: "b" })
          }
          for (const key of keys.slice(20)) yield* McClient.inc(key, 1, 0, { initialValue: 5 })
          const found = yield* McClient.getMulti(keys)
          expect(found.size).toBe(40)
          for (const key of keys.slice(0, 20)) expect(text(found.get(key)!.value)).toBe("ab")
          for (const key of keys.slice(20)) expect(text(found.get(key)!.value)).toBe("5")
        }),
      )

      it.effect("get options fill cas, hit, lastAccess and ttl", () =>
        Effect.gen(function* () {
          const key = uniqueKey("meta")
          yield* McClient.set({ key, value: "v" }, { expiration: 3600 })
          const first = yield* McClient.get(key, { cas: true, hit: true, lastAccess: true, ttl: true })
          expect(first.hit).toBe(false)
          expect(first.lastAccess).toBeGreaterThanOrEqual(0)
          expect(first.ttl).toBeGreaterThan(3500)
          expect(first.cas).toBeDefined()
          const second = yield* McClient.get(key, { hit: true })
          expect(second.hit).toBe(true)
          const plain = yield* McClient.get(key)
          expect(plain.cas).toBeUndefined()
          expect(plain.hit).toBeUndefined()
          const forever = uniqueKey("forever")
          yield* McClient.set({ key: forever, value: "v" })
          expect((yield* McClient.get(forever, { ttl: true })).ttl).toBe(-1)
        }),
      )

      it.effect("keys of any length and characters work with binary encoding (the default)", () =>
        Effect.gen(function* () {
          for (const key of ["with space", "x".repeat(1000), "ключ\u0001\r\n", uniqueKey("ok")]) {
            yield* McClient.set({ key, value: key })
            expect(text((yield* McClient.get(key)).value)).toBe(key)
          }
          expect(failureTag(yield* Effect.exit(McClient.get("")))).toBe("MalformedKey")
        }),
      )

      it.effect("bad flags and expirations are typed errors and nothing is sent", () =>
        Effect.gen(function* () {
          const key = uniqueKey("bad")
          expect(failureTag(yield* Effect.exit(McClient.set({ key, value: "v", flags: 70000 })))).toBe("ClientError")
          expect(failureTag(yield* Effect.exit(McClient.set({ key, value: "v" }, { expiration: 1.5 })))).toBe("ClientError")
          expect(failureTag(yield* Effect.exit(McClient.get(key)))).toBe("CacheMiss")
        }),
      )
    })

    layer(target.layer({ disableBinaryEncodedKeys: true }), { excludeTestServices: true })("plain keys", (it) => {
      it.effect("malformed keys fail with MalformedKey and the connection stays usable", () =>
        Effect.gen(function* () {
          for (const bad of ["x".repeat(251), "has space", "ctl\u0001", "tab\t", "nl\n", "", "é".repeat(126)]) {
            const exit = yield* Effect.exit(McClient.set({ key: bad, value: "v" }))
            expect(failureTag(exit)).toBe("MalformedKey")
            expect(failureTag(yield* Effect.exit(McClient.get(bad)))).toBe("MalformedKey")
          }
          const key = uniqueKey("plain")
          yield* McClient.set({ key: "x".repeat(250 - key.length) + key, value: "ok" })
          expect(text((yield* McClient.get("x".repeat(250 - key.length) + key)).value)).toBe("ok")
        }),
      )
    })
  })
}
