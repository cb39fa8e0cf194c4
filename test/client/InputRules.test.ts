/**
 * The rules for per-call input (issue 9, inputs): bad values are typed failures before anything
 * is sent, the same on both layers, and expirations follow memcached's rules.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { McClient, type McClientService } from "../../src/index.js"
import { failureOf, failureTag } from "../support/exits.js"
import { targets, text, uniqueKey } from "../support/layers.js"

type Loose = Record<string, (...args: Array<unknown>) => Effect.Effect<unknown, unknown>>
const loose = (mc: McClientService) => mc as unknown as Loose

const tagOf = (effect: Effect.Effect<unknown, unknown>) =>
  Effect.map(Effect.exit(effect), (exit) => failureTag(exit as never))

for (const target of targets) {
  describe(target.name, () => {
    layer(target.layer(), { excludeTestServices: true })("input rules", (it) => {
      it.effect("a value that is not bytes or text is a ClientError, and the client goes on", () =>
        Effect.gen(function* () {
          const mc = loose(yield* McClient)
          const key = uniqueKey("badvalue")
          for (const value of [JSON.parse('{"c":123}').c, { a: 1 }, undefined, null, 5n, [1, 2], new Float32Array(2)]) {
            for (const op of ["set", "add", "replace", "append", "prepend"]) {
              const exit = yield* Effect.exit(mc[op]!({ key, value }))
              expect(failureOf(exit as never), `${op} ${String(value)}`).toMatchObject({ _tag: "ClientError", key })
            }
          }
          yield* McClient.set({ key, value: `v ${key}` })
          expect(text((yield* McClient.get(key)).value)).toBe(`v ${key}`)
        }),
      )

      it.effect("a key that is not a string is MalformedKey, in every operation", () =>
        Effect.gen(function* () {
          const mc = loose(yield* McClient)
          for (const key of [5, undefined, null, {}, Symbol("k")]) {
            expect(yield* tagOf(mc.get!(key))).toBe("MalformedKey")
            expect(yield* tagOf(mc.set!({ key, value: "v" }))).toBe("MalformedKey")
            expect(yield* tagOf(mc.del!(key))).toBe("MalformedKey")
            expect(yield* tagOf(mc.inc!(key, 1))).toBe("MalformedKey")
            expect(yield* tagOf(mc.touch!(key, 10))).toBe("MalformedKey")
            expect(yield* tagOf(mc.getMulti!([key]))).toBe("MalformedKey")
          }
          // A string is not a list of keys.
          expect(yield* tagOf(mc.getMulti!("abc"))).toBe("ClientError")
          expect(yield* tagOf(mc.getMulti!(5))).toBe("ClientError")
        }),
      )

      it.effect("expirations: whole seconds 0..2^31-1; anything else is a ClientError", () =>
        Effect.gen(function* () {
          const mc = loose(yield* McClient)
          const key = uniqueKey("exp")
          yield* McClient.set({ key, value: "v" })
          for (const bad of [-1, 2 ** 31, 2 ** 32 - 1, 1.5, NaN, Infinity, "soon", "-1 seconds", "31 days", Duration.days(31), 5n]) {
            const what = String(bad)
            expect(yield* tagOf(mc.set!({ key, value: "v" }, { expiration: bad })), what).toBe("ClientError")
            expect(yield* tagOf(mc.append!({ key, value: "v" }, { expiration: bad })), what).toBe("ClientError")
            expect(yield* tagOf(mc.touch!(key, bad)), what).toBe("ClientError")
            expect(yield* tagOf(mc.inc!(key, 1, bad)), what).toBe("ClientError")
            expect(yield* tagOf(mc.del!(key, { invalidate: bad })), what).toBe("ClientError")
            expect(yield* tagOf(mc.get!(key, { earlyRecache: bad })), what).toBe("ClientError")
            expect(yield* tagOf(mc.getMulti!([key], { earlyRecache: bad })), what).toBe("ClientError")
          }
          expect(yield* tagOf(mc.touch!(key, undefined))).toBe("ClientError")
          // An infinite window makes no sense for earlyRecache (it does for an expiration: none).
          expect(yield* tagOf(mc.get!(key, { earlyRecache: Duration.infinity }))).toBe("ClientError")
          yield* McClient.set({ key, value: "v" }, { expiration: 2 ** 31 - 1 }) // an absolute time in 2038
          expect((yield* McClient.get(key, { ttl: true })).ttl).toBeGreaterThan(60 * 60 * 24 * 365)
        }),
      )

      it.effect("a Duration or a duration string is relative seconds, rounded up", () =>
        Effect.gen(function* () {
          const key = uniqueKey("duration")
          const ttl = Effect.map(McClient.get(key, { ttl: true }), (i) => i.ttl)
          yield* McClient.set({ key, value: "v" }, { expiration: "1 hour" })
          expect(yield* ttl).toBeGreaterThanOrEqual(3599)
          yield* McClient.touch(key, Duration.minutes(2))
          expect(yield* ttl).toBeGreaterThanOrEqual(119)
          expect(yield* ttl).toBeLessThanOrEqual(120)
          // a sub-second TTL is 1 s, never 0 (= no expiry)
          yield* McClient.touch(key, "1 milli")
          expect(yield* ttl).toBeLessThanOrEqual(1)
          yield* McClient.touch(key, Duration.infinity)
          expect(yield* ttl).toBe(-1)
          yield* McClient.set({ key, value: "v" }, { expiration: "30 days" })
          expect(yield* ttl).toBeGreaterThan(60 * 60 * 24 * 29)
          const counter = uniqueKey("counter")
          expect(yield* McClient.inc(counter, 1, "10 seconds", { initialValue: 5 })).toBe(5n)
          yield* McClient.del(counter, { invalidate: "30 seconds" })
          yield* McClient.get(key, { earlyRecache: "30 seconds" })
        }),
      )

      it.effect("bad deltas, cas tokens, flags, per-call options and timeouts are typed", () =>
        Effect.gen(function* () {
          const mc = loose(yield* McClient)
          const key = uniqueKey("opts")
          yield* McClient.set({ key, value: "1" })
          for (const delta of [1.5, -1, 2 ** 53, NaN, "1", 2n ** 64n, null]) expect(yield* tagOf(mc.inc!(key, delta))).toBe("BadIncrDec")
          expect(yield* tagOf(mc.inc!(key, 1, 0, { initialValue: "5" }))).toBe("BadIncrDec")
          for (const cas of ["1 2", 5, -1n, 2n ** 64n]) expect(yield* tagOf(mc.compareAndSwap!({ key, value: "v", cas }))).toBe("ClientError")
          for (const flags of [65536, -1, "1", 1.5]) expect(yield* tagOf(mc.set!({ key, value: "v", flags }))).toBe("ClientError")
          for (const o of [null, 5, "x", [1], { timeout: "fast" }, { timeout: 0 }, { cas: "yes" }])
            expect(yield* tagOf(mc.get!(key, o)), JSON.stringify(o)).toBe("ClientError")
          const throwing = new Proxy({}, { get: () => { throw new Error("boom") } })
          for (const op of ["get", "del", "purgeNamespace"]) expect(yield* tagOf(mc[op]!(key, throwing)), op).toBe("ClientError")
          expect(yield* tagOf(mc.set!(throwing))).toBe("ClientError")
          expect(yield* tagOf(mc.set!({ key, value: "v" }, throwing))).toBe("ClientError")
          expect(yield* tagOf(mc.set!({ key, value: "v" }, { namespace: 5 }))).toBe("ClientError")
          expect(yield* tagOf(mc.set!({ key, value: "v" }, { minUses: 1.5 }))).toBe("ClientError")
          expect(yield* tagOf(mc.purgeNamespace!(5))).toBe("ClientError")
          expect(yield* tagOf(mc.getAs!("not a schema", key))).toBe("ClientError")
          expect(yield* tagOf(mc.setAs!({}, { key, value: 1 }))).toBe("ClientError")
          // still usable
          yield* McClient.set({ key, value: "fine" }, { timeout: 5000 })
          expect(text((yield* McClient.get(key, { timeout: "5 seconds" })).value)).toBe("fine")
        }),
      )
    })
  })
}
