/**
 * The seed's features through the public client, on real memcached and on the memory engine:
 * namespaces, compression, min-uses, early recache, invalidation, stale/won, codecs.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import { McClient, type McClientOptions } from "../../src/index.js"
import { failureOf, failureTag } from "../support/exits.js"
import { targets, text, uniqueKey } from "../support/layers.js"


const compressible = (n: number) => Buffer.from("effect-memcache ".repeat(Math.ceil(n / 16)).slice(0, n))

const User = Schema.Struct({ id: Schema.Number, name: Schema.String, tags: Schema.Array(Schema.String) })

/** A toy binary codec: the JSON of the value, reversed (stands in for protobuf). */
const reversedJson = {
  encode: (v: unknown) => Buffer.from(JSON.stringify(v)).reverse(),
  decode: (b: Uint8Array) => JSON.parse(Buffer.from(b).reverse().toString()),
}

for (const target of targets) {
  describe(target.name, () => {
    layer(target.layer(), { excludeTestServices: true })("features", (it) => {
      it.effect("purgeNamespace turns every item of the namespace into a miss, also for gets without it", () =>
        Effect.gen(function* () {
          const ns = uniqueKey("tenant")
          const [a, b, c] = [uniqueKey("name"), uniqueKey("email"), uniqueKey("other")]
          yield* McClient.set({ key: a, value: "John", flags: 42 }, { namespace: ns, expiration: 60 })
          yield* McClient.set({ key: b, value: "j@x", flags: 1 }, { namespace: ns, compression: 1 })
          yield* McClient.set({ key: c, value: "untouched" })
          const item = yield* McClient.get(a)
          expect(text(item.value)).toBe("John")
          expect(item.flags).toBe(42)
          expect(text((yield* McClient.getMulti([a, b, c])).get(b)!.value)).toBe("j@x")

          yield* McClient.purgeNamespace(ns)
          expect(failureTag(yield* Effect.exit(McClient.get(a)))).toBe("CacheMiss")
          expect(failureTag(yield* Effect.exit(McClient.get(b)))).toBe("CacheMiss")
          const after = yield* McClient.getMulti([a, b, c])
          expect([...after.keys()]).toEqual([c])
          // Written again under the new version, the item is visible again.
          yield* McClient.set({ key: a, value: "Jane" }, { namespace: ns })
          expect(text((yield* McClient.get(a)).value)).toBe("Jane")
        }),
      )

      it.effect("values above the compression threshold are stored compressed and read back transparently", () =>
        Effect.gen(function* () {
          const big = uniqueKey("big")
          const value = compressible(4096)
          yield* McClient.set({ key: big, value, flags: 9 }, { compression: 1024 })
          const item = yield* McClient.get(big)
          expect(Buffer.compare(Buffer.from(item.value), value)).toBe(0)
          expect(item.flags).toBe(9)
          expect(item.compressionRatio).toBeGreaterThan(1)
          const small = uniqueKey("small")
          yield* McClient.set({ key: small, value: compressible(100) }, { compression: 1024 })
          expect((yield* McClient.get(small)).compressionRatio).toBe(0)
          const multi = yield* McClient.getMulti([big, small])
          expect(Buffer.compare(Buffer.from(multi.get(big)!.value), value)).toBe(0)
        }),
      )

      it.effect("minUses stores only on the n-th set", () =>
        Effect.gen(function* () {
          const key = uniqueKey("popular")
          yield* McClient.set({ key, value: "1" }, { minUses: 3, expiration: 60 })
          expect(failureTag(yield* Effect.exit(McClient.get(key)))).toBe("CacheMiss")
          yield* McClient.set({ key, value: "2" }, { minUses: 3, expiration: 60 })
          expect(failureTag(yield* Effect.exit(McClient.get(key)))).toBe("CacheMiss")
          yield* McClient.set({ key, value: "3" }, { minUses: 3, expiration: 60 })
          expect(text((yield* McClient.get(key)).value)).toBe("3")
        }),
      )

      it.effect("earlyRecache: one caller wins the recache token, the others see it taken", () =>
        Effect.gen(function* () {
          const fresh = uniqueKey("fresh")
          yield* McClient.set({ key: fresh, value: "data" }, { expiration: 3600 })
          const notYet = yield* McClient.get(fresh, { earlyRecache: 300 })
          expect([notYet.won, notYet.winSent, notYet.stale]).toEqual([false, false, false])

          const ending = uniqueKey("ending")
          yield* McClient.set({ key: ending, value: "data" }, { expiration: 100 })
          const first = yield* McClient.get(ending, { earlyRecache: 300 })
          expect([first.won, first.winSent]).toEqual([true, false])
          const second = yield* McClient.get(ending, { earlyRecache: 300 })
          expect([second.won, second.winSent]).toEqual([false, true])
          expect(text(second.value)).toBe("data")
        }),
      )

      it.effect("del with invalidate serves the item stale: the next reader wins, the one after does not", () =>
        Effect.gen(function* () {
          const key = uniqueKey("stale")
          yield* McClient.set({ key, value: "old" }, { expiration: 3600 })
          yield* McClient.del(key, { invalidate: 30 })
          const first = yield* McClient.get(key)
          expect([first.stale, first.won, text(first.value)]).toEqual([true, true, "old"])
          const second = yield* McClient.get(key)
          expect([second.stale, second.won, second.winSent]).toEqual([true, false, true])
          // A fresh set clears the stale state.
          yield* McClient.set({ key, value: "new" })
          const third = yield* McClient.get(key)
          expect([third.stale, third.won, text(third.value)]).toEqual([false, false, "new"])
        }),
      )

      it.effect("an item read back and passed to set/compareAndSwap does not carry how it was stored", () =>
        Effect.gen(function* () {
          const key = uniqueKey("copy")
          const ns = uniqueKey("copy-ns")
          yield* McClient.set({ key, value: compressible(4096) }, { compression: 100, namespace: ns })
          const item = yield* McClient.get(key, { cas: true })
          yield* McClient.compareAndSwap({ ...item, value: "small" })
          const after = yield* McClient.get(key)
          expect([text(after.value), after.compressionRatio]).toEqual(["small", 0])
          yield* McClient.set({ ...after, value: "plain" })
          yield* McClient.purgeNamespace(ns)
          expect(text((yield* McClient.get(key)).value)).toBe("plain")
        }),
      )

      it.effect("setAs/getAs round-trip through JSON by default", () =>
        Effect.gen(function* () {
          const key = uniqueKey("user")
          const user = { id: 1, name: "Ada", tags: ["admin"] }
          yield* McClient.setAs(User, { key, value: user, flags: 5 })
          expect(yield* McClient.getAs(User, key)).toEqual(user)
          expect(JSON.parse(text((yield* McClient.get(key)).value))).toEqual(user)
          expect((yield* McClient.get(key)).flags).toBe(5)
        }),
      )

      it.effect("the writer's format wins: msgpack and binary codecs read back whatever the reader's default", () =>
        Effect.gen(function* () {
          const user = { id: 2, name: "Grace", tags: [] }
          const packed = uniqueKey("msgpack")
          yield* McClient.setAs(User, { key: packed, value: user }, { codec: "msgpack" })
          expect(yield* McClient.getAs(User, packed)).toEqual(user)
          const custom = uniqueKey("binary")
          yield* McClient.setAs(User, { key: custom, value: user }, { codec: reversedJson })
          expect(yield* McClient.getAs(User, custom, { codec: reversedJson })).toEqual(user)
          // Without its codec, a custom-binary value cannot be read: a typed error says why.
          const exit = yield* Effect.exit(McClient.getAs(User, custom))
          expect(failureTag(exit)).toBe("DecodeError")
        }),
      )

      it.effect("decode and encode failures are typed, with the schema's message", () =>
        Effect.gen(function* () {
          const key = uniqueKey("notuser")
          yield* McClient.set({ key, value: '{"id":"x"}' })
          const exit = yield* Effect.exit(McClient.getAs(User, key))
          expect(failureTag(exit)).toBe("DecodeError")
          const error = failureOf(exit)
          expect(error?.message).toMatch(/Expected number, actual "x"/)
          const garbage = uniqueKey("garbage")
          yield* McClient.set({ key: garbage, value: "{not json" })
          expect(failureTag(yield* Effect.exit(McClient.getAs(User, garbage)))).toBe("DecodeError")
          const Short = Schema.String.pipe(Schema.maxLength(3))
          const bad = yield* Effect.exit(McClient.setAs(Short, { key, value: "too long" }))
          expect(failureTag(bad)).toBe("EncodeError")
        }),
      )
    })

    const corrupting: Omit<McClientOptions, "servers"> = {
      compression: {
        compress: (data) => data.subarray(0, Math.max(1, data.length >> 1)),
        decompress: () => {
          throw new Error("corrupt input")
        },
      },
    }
    layer(target.layer(corrupting), { excludeTestServices: true })("corrupt compressed values", (it) => {
      it.effect("a value that does not decompress is a typed DecodeError", () =>
        Effect.gen(function* () {
          const key = uniqueKey("corrupt")
          yield* McClient.set({ key, value: compressible(2000) }, { compression: 10 })
          const exit = yield* Effect.exit(McClient.get(key))
          expect(failureTag(exit)).toBe("DecodeError")
          // getMulti fails with it (never a miss); with partial, it answers for the rest.
          const ok = uniqueKey("ok")
          yield* McClient.set({ key: ok, value: "fine" })
          expect(failureTag(yield* Effect.exit(McClient.getMulti([key, ok])))).toBe("DecodeError")
          const { items, failed } = yield* McClient.getMulti([key, ok], { partial: true })
          expect([...items.keys()]).toEqual([ok])
          expect(failed.get(key)?._tag).toBe("DecodeError")
        }),
      )
    })
  })
}

describe("namespaces across clients", () => {
  layer(targets[0]!.layer(), { excludeTestServices: true })("two clients on one memcached", (it) => {
    it.effect("a purge by one client is visible to another at once", () =>
      Effect.gen(function* () {
        const ns = uniqueKey("shared-ns")
        const key = uniqueKey("shared")
        const other = Context.get(yield* Layer.build(targets[0]!.layer()), McClient)
        yield* McClient.set({ key, value: "v" }, { namespace: ns })
        expect(text((yield* other.get(key)).value)).toBe("v")
        yield* other.purgeNamespace(ns)
        expect(failureTag(yield* Effect.exit(McClient.get(key)))).toBe("CacheMiss")
      }).pipe(Effect.scoped),
    )
  })
})
