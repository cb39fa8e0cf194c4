/** Hostile JavaScript values for property tests of the public API (fast-check arbitraries). */
import { Duration } from "effect"
import * as fc from "fast-check"

// Throws on every read by name (fast-check itself asks for symbols: those are answered).
const throwingProxy = () => {
  const boom = (): never => {
    throw new Error("boom")
  }
  return new Proxy(
    {},
    {
      get: (t, p) => (typeof p === "symbol" ? Reflect.get(t, p) : boom()),
      has: (t, p) => (typeof p === "symbol" ? Reflect.has(t, p) : boom()),
      ownKeys: boom,
      getOwnPropertyDescriptor: boom,
    },
  )
}

export const weirdNumber = fc.constantFrom(
  NaN, Infinity, -Infinity, -0, 0, 1, -1, 0.5, 1.5, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 2 ** 53 + 2,
  2 ** 64, Number.MAX_VALUE, Number.MIN_VALUE, 65535, 65536, 60 * 60 * 24 * 30, 60 * 60 * 24 * 30 + 1, 3600,
)
export const weirdString = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary", maxLength: 8 }),
  fc.constantFrom(
    "", " ", "a b", "a\r\nb", "\r\n", "\n", "\u0000", "é", "😀", "\uD800", "x\uDC00y", "1 hour", "2 seconds", "-1 seconds",
    "1 milli", "1.5 seconds", "30 days", "31 days", "Infinity", "1e3", "5", "sha256-128", "json", "msgpack",
  ),
)
export const weirdDuration = fc.constantFrom(
  Duration.zero, Duration.infinity, Duration.nanos(1n), Duration.millis(1), Duration.seconds(1), Duration.millis(1500),
  Duration.hours(1), Duration.days(30), Duration.days(31),
)
const weirdObject = fc.oneof(
  fc.constant(null).map(() => throwingProxy()),
  fc.constant(null).map(() => new Proxy(new Uint8Array(3), {})),
  fc.constant(null).map(() => ({ toString: () => { throw new Error("no") }, valueOf: () => 5 })),
  fc.constant(null).map(() => Object.create(null) as object),
  fc.constant(null).map(() => new Date(0)),
  fc.constant(null).map(() => new Float64Array(2)),
  fc.constant(null).map(() => [1, "a", null]),
  fc.constant(null).map(() => ({ length: 3, 0: 1 })),
)
/** Any JavaScript value, the awkward ones weighted in. */
export const hostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything({ withBigInt: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true }),
  weirdNumber,
  weirdString,
  fc.bigInt(),
  fc.constantFrom(-1n, 0n, 1n, 2n ** 64n, 2n ** 64n - 1n, -(2n ** 63n)),
  weirdDuration,
  weirdObject,
  fc.func(fc.anything()),
  fc.constantFrom(undefined, null, true, false, Symbol("s")),
  fc.uint8Array({ maxLength: 8 }),
)

