/**
 * `effect-memcache/KeyValueStore` against real memcached and the memory engine: @effect/platform's
 * own KeyValueStore test cases (packages/platform/test/KeyValueStore.test.ts at
 * @effect/platform@0.97.1), with `size` replaced by what memcached can answer, then the hostile paths.
 */
import * as PlatformError from "@effect/platform/Error"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Encoding, Exit, Layer, Option, Schedule, Schema, TestClock } from "effect"
import { McClient } from "../src/index.js"
import * as McKeyValueStore from "../src/KeyValueStore.js"
import { failureOf } from "./support/exits.js"
import { fakeServer, refusedAddress } from "./support/fakeServer.js"
import { targets, uniqueKey } from "./support/layers.js"

/** Runs `f` with a store in a namespace no other test uses. */
const withStore = <A, E>(
  f: (kv: KeyValueStore.KeyValueStore, namespace: string) => Effect.Effect<A, E, McClient>,
  options: McKeyValueStore.KeyValueStoreOptions = {},
) =>
  Effect.gen(function* () {
    const namespace = options.namespace ?? uniqueKey("kv")
    const kv = yield* McKeyValueStore.make({ ...options, namespace })
    return yield* f(kv, namespace)
  })

/** The PlatformError an effect fails with. */
const platformFailure = <A, E>(exit: Exit.Exit<A, E>): PlatformError.PlatformError => {
  const error = failureOf(exit)
  if (!PlatformError.isPlatformError(error)) throw new Error(`expected a PlatformError, got ${String(exit)}`)
  return error
}

const causeTag = (error: PlatformError.PlatformError) => (error.cause as { _tag?: string } | undefined)?._tag

class User extends Schema.Class<User>("User")({ name: Schema.String, age: Schema.Number }) {}

// Before the shared-layer suites: @effect/vitest's `layer()` replaces the module's `it.effect` with
// one that runs in its layer (without TestClock), for every `it.effect` declared after it.
describe("layer", () => {
  it.effect("entries expire with the layer's expiration on TestClock", () =>
    Effect.gen(function* () {
      yield* withStore(
        (kv) =>
          Effect.gen(function* () {
            yield* kv.set("foo", "value of foo")
            yield* TestClock.adjust("9 seconds")
            expect(yield* kv.get("foo")).toEqual(Option.some("value of foo"))
            yield* TestClock.adjust("1 second")
            expect(yield* kv.get("foo")).toEqual(Option.none())
            expect(yield* kv.modify("foo", (v) => v + "!")).toEqual(Option.none())
          }),
        { namespace: "ttl", expiration: 10 },
      )
    }).pipe(Effect.provide(McClient.layerMemory())),
  )

  it.effect("the layer provides the store from McClient", () =>
    Effect.gen(function* () {
      const kv = yield* KeyValueStore.KeyValueStore
      yield* kv.set("foo", "value of foo")
      expect(yield* kv.get("foo")).toEqual(Option.some("value of foo"))
      // The default namespace is "kv": its entries are "kv:<key>" and clear purges "kv".
      expect((yield* McClient.get("kv:foo")).value.length).toBe("value of foo".length)
      yield* kv.clear
      expect(failureOf(yield* Effect.exit(McClient.get("kv:foo")))?._tag).toBe("CacheMiss")
      expect(yield* kv.get("foo")).toEqual(Option.none())
    }).pipe(Effect.provide(McKeyValueStore.layer().pipe(Layer.provideMerge(McClient.layerMemory())))),
  )
})

for (const target of targets) {
  describe(target.name, () => {
    layer(target.layer(), { excludeTestServices: true })("KeyValueStore", (it) => {
      // @effect/platform's cases.
      it.effect("set then get", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            yield* kv.set("/foo/bar", "value of /foo/bar")
            expect(yield* kv.get("/foo/bar")).toEqual(Option.some("value of /foo/bar"))
            expect(yield* kv.has("/foo/bar")).toBe(true)
          }),
        ),
      )

      it.effect("get of a missing key is none", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            yield* kv.clear
            expect(yield* kv.get("foo")).toEqual(Option.none())
            expect(yield* kv.getUint8Array("foo")).toEqual(Option.none())
            expect(yield* kv.has("foo")).toBe(false)
          }),
        ),
      )

      it.effect("remove", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            yield* kv.set("foo", "value of foo")
            yield* kv.set("bar", "value of bar")
            yield* kv.remove("foo")
            expect(yield* kv.get("foo")).toEqual(Option.none())
            expect(yield* kv.has("foo")).toBe(false)
            expect(yield* kv.get("bar")).toEqual(Option.some("value of bar"))
            // Removing a missing key is not an error.
            yield* kv.remove("foo")
            yield* kv.remove("never-set")
          }),
        ),
      )

      it.effect("clear empties this store's namespace, and only it", () =>
        Effect.gen(function* () {
          const other = uniqueKey("kv-other")
          yield* withStore((kv) => kv.set("foo", "other's foo"), { namespace: other })
          yield* withStore((kv) =>
            Effect.gen(function* () {
              yield* kv.set("foo", "value of foo")
              yield* kv.set("bar", "value of bar")
              yield* kv.clear
              expect(yield* kv.get("foo")).toEqual(Option.none())
              expect(yield* kv.get("bar")).toEqual(Option.none())
              yield* kv.set("foo", "value of foo again")
              expect(yield* kv.get("foo")).toEqual(Option.some("value of foo again"))
            }),
          )
          yield* withStore((kv) => Effect.map(kv.get("foo"), (v) => expect(v).toEqual(Option.some("other's foo"))), {
            namespace: other,
          })
        }),
      )

      it.effect("modify", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            yield* kv.set("foo", "foo:")
            expect(yield* kv.modify("foo", (v) => v + "bar")).toEqual(Option.some("foo:bar"))
            expect(yield* kv.get("foo")).toEqual(Option.some("foo:bar"))
          }),
        ),
      )

      it.effect("modify of a missing key is none and writes nothing", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            let calls = 0
            const value = yield* kv.modify("foo", (v) => {
              calls++
              return v + "bar"
            })
            expect(value).toEqual(Option.none())
            expect(calls).toBe(0)
            expect(yield* kv.has("foo")).toBe(false)
            expect(yield* kv.modifyUint8Array("foo", (v) => v)).toEqual(Option.none())
            expect(yield* kv.has("foo")).toBe(false)
          }),
        ),
      )

      it.effect("prefix", () =>
        withStore((store) =>
          Effect.gen(function* () {
            const prefixed = KeyValueStore.prefix(store, "prefix/")
            yield* prefixed.set("foo", "foo:")
            yield* prefixed.modify("foo", (v) => v + "bar")
            expect(yield* prefixed.get("foo")).toEqual(Option.some("foo:bar"))
            expect(yield* prefixed.has("foo")).toBe(true)
            expect(yield* store.get("prefix/foo")).toEqual(Option.some("foo:bar"))
            expect(yield* store.has("prefix/foo")).toBe(true)
            expect(yield* store.has("foo")).toBe(false)
          }),
        ),
      )

      it.effect("forSchema encodes and decodes, modify included", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            const users = kv.forSchema(User)
            yield* users.set("user:foo", new User({ name: "foo", age: 42 }))
            yield* users.set("user:bar", new User({ name: "bar", age: 7 }))
            yield* users.modify("user:foo", (user) => new User({ ...user, age: 43 }))
            expect(yield* users.get("user:foo")).toEqual(Option.some(new User({ name: "foo", age: 43 })))
            expect(yield* users.get("user:bar")).toEqual(Option.some(new User({ name: "bar", age: 7 })))
            expect(yield* users.get("user:baz")).toEqual(Option.none())
            expect(yield* users.has("user:foo")).toBe(true)
            // What is stored is the JSON, readable through the plain store.
            expect(yield* kv.get("user:foo")).toEqual(Option.some('{"name":"foo","age":43}'))
            // A value the schema does not accept is a ParseError, not a none.
            yield* kv.set("user:broken", '{"name":"broken"}')
            const broken = failureOf(yield* Effect.exit(users.get("user:broken")))
            expect(broken?._tag).toBe("ParseError")
          }),
        ),
      )

      it.effect("layerSchema runs on top of the layer, prefix included", () =>
        Effect.gen(function* () {
          const UserStore = KeyValueStore.layerSchema(User, "UserStore")
          const namespace = uniqueKey("kv-schema")
          yield* Effect.gen(function* () {
            const store = yield* UserStore.tag
            const prefixed = KeyValueStore.prefix(store, "prefix/")
            yield* prefixed.set("foo", new User({ name: "foo", age: 42 }))
            expect(yield* store.get("prefix/foo")).toEqual(Option.some(new User({ name: "foo", age: 42 })))
            expect(yield* store.get("foo")).toEqual(Option.none())
          }).pipe(Effect.provide(UserStore.layer.pipe(Layer.provide(McKeyValueStore.layer({ namespace })))))
        }),
      )

      // What memcached cannot do.
      it.effect("size and isEmpty fail with SystemError Unknown: memcached cannot count keys", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            yield* kv.set("foo", "value of foo")
            for (const [method, effect] of [
              ["size", kv.size],
              ["isEmpty", kv.isEmpty],
              ["size", kv.forSchema(User).size],
            ] as const) {
              const error = platformFailure(yield* Effect.exit(effect as Effect.Effect<unknown, PlatformError.PlatformError>))
              expect(error._tag).toBe("SystemError")
              expect(error).toMatchObject({ reason: "Unknown", module: "KeyValueStore", method })
              expect(error.message).toContain("memcached cannot count keys")
            }
          }),
        ),
      )

      // Bytes and text.
      it.effect("bytes round-trip; get answers them in base64; text reads back as its UTF-8 bytes", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            const bytes = new Uint8Array([0, 255, 13, 10, 0x62, 0x69, 0x6e, 0xc3])
            yield* kv.set("bin", bytes)
            expect(yield* kv.getUint8Array("bin")).toEqual(Option.some(bytes))
            expect(yield* kv.get("bin")).toEqual(Option.some(Encoding.encodeBase64(bytes)))
            yield* kv.set("text", "text ü ✓")
            expect(yield* kv.getUint8Array("text")).toEqual(Option.some(new TextEncoder().encode("text ü ✓")))
            expect(yield* kv.modifyUint8Array("bin", (v) => new Uint8Array([...v, 1]))).toEqual(
              Option.some(new Uint8Array([...bytes, 1])),
            )
            expect(yield* kv.getUint8Array("bin")).toEqual(Option.some(new Uint8Array([...bytes, 1])))
            // A string written over bytes is text again.
            yield* kv.modify("bin", () => "now text")
            expect(yield* kv.get("bin")).toEqual(Option.some("now text"))
            // Empty values are values, not misses.
            yield* kv.set("empty", "")
            expect(yield* kv.get("empty")).toEqual(Option.some(""))
            yield* kv.set("empty-bytes", new Uint8Array(0))
            expect(yield* kv.getUint8Array("empty-bytes")).toEqual(Option.some(new Uint8Array(0)))
          }),
        ),
      )

      // Keys.
      it.effect("any string is a key: long, spaces, newlines, unicode, empty, the namespace's own separator", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            const keys = ["x".repeat(10_000), "with spaces and\r\nnewlines", "ключ 🔑 鍵", "", ":", "a:b", "kv:a"]
            for (const key of keys) yield* kv.set(key, `value of ${JSON.stringify(key)}`)
            for (const key of keys) expect(yield* kv.get(key)).toEqual(Option.some(`value of ${JSON.stringify(key)}`))
          }),
        ),
      )

      it.effect("two namespaces never share an entry, even when namespace + key spell the same", () =>
        Effect.gen(function* () {
          const base = uniqueKey("kv")
          yield* withStore((kv) => kv.set("b:x", "a's b:x"), { namespace: base })
          yield* withStore((kv) => kv.set("x", "a:b's x"), { namespace: `${base}:b` })
          yield* withStore((kv) => Effect.map(kv.get("b:x"), (v) => expect(v).toEqual(Option.some("a's b:x"))), {
            namespace: base,
          })
          yield* withStore((kv) => Effect.map(kv.get("x"), (v) => expect(v).toEqual(Option.some("a:b's x"))), {
            namespace: `${base}:b`,
          })
        }),
      )

      it.effect("a key the client cannot send is a BadArgument with the MalformedKey as cause", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            const lone = "half \ud800 a pair"
            for (const [method, effect] of [
              ["get", kv.get(lone)],
              ["set", kv.set(lone, "v")],
              ["has", kv.has(lone)],
              ["remove", kv.remove(lone)],
              ["modify", kv.modify(lone, (v) => v)],
            ] as const) {
              const error = platformFailure(yield* Effect.exit(effect as Effect.Effect<unknown, PlatformError.PlatformError>))
              expect(error._tag).toBe("BadArgument")
              expect(error).toMatchObject({ module: "KeyValueStore", method })
              expect(causeTag(error)).toBe("MalformedKey")
            }
          }),
        ),
      )

      it.effect("an invalid expiration is a BadArgument at each write, with the ClientError as cause", () =>
        withStore(
          (kv) =>
            Effect.gen(function* () {
              const error = platformFailure(yield* Effect.exit(kv.set("foo", "value of foo")))
              expect(error).toMatchObject({ _tag: "BadArgument", module: "KeyValueStore", method: "set" })
              expect(causeTag(error)).toBe("ClientError")
              expect(yield* kv.get("foo")).toEqual(Option.none())
            }),
          { expiration: -1 },
        ),
      )

      it.effect("the expiration is the item's TTL on the server", () =>
        withStore(
          (kv, namespace) =>
            Effect.gen(function* () {
              yield* kv.set("foo", "value of foo")
              yield* kv.modify("foo", (v) => v + "!")
              const item = yield* McClient.get(`${encodeURIComponent(namespace)}:foo`, { ttl: true })
              expect(item.ttl).toBeGreaterThan(3590)
              expect(item.ttl).toBeLessThanOrEqual(3600)
            }),
          { expiration: "1 hour" },
        ),
      )

      // Atomic modify.
      it.effect("concurrent modify from 50 fibers increments exactly 50 times", () =>
        withStore((kv) =>
          Effect.gen(function* () {
            yield* kv.set("counter", "0")
            const results = yield* Effect.forEach(
              Array.from({ length: 50 }, (_, i) => i),
              () => kv.modify("counter", (v) => String(Number(v) + 1)),
              { concurrency: "unbounded" },
            )
            expect(yield* kv.get("counter")).toEqual(Option.some("50"))
            // Each modify saw a different value: no two applied f to the same read.
            const seen = results.map((r) => Number(Option.getOrThrow(r))).sort((a, b) => a - b)
            expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
          }),
        ),
      )
    })
  })
}

describe("memcached, two clients", () => {
  const tcp = targets.find((t) => t.name === "memcached")!
  it.live("modify is atomic across clients: 2 × 25 fibers increment exactly 50 times", () =>
    Effect.gen(function* () {
      const namespace = uniqueKey("kv-two")
      const increments = (n: number) =>
        withStore(
          (kv) =>
            Effect.forEach(
              Array.from({ length: n }, (_, i) => i),
              () => kv.modify("counter", (v) => String(Number(v) + 1)),
              { concurrency: "unbounded", discard: true },
            ),
          { namespace },
        ).pipe(Effect.provide(tcp.layer()))
      yield* withStore((kv) => kv.set("counter", "0"), { namespace }).pipe(Effect.provide(tcp.layer()))
      yield* Effect.all([increments(25), increments(25)], { concurrency: "unbounded" })
      const final = yield* withStore((kv) => kv.get("counter"), { namespace }).pipe(Effect.provide(tcp.layer()))
      expect(final).toEqual(Option.some("50"))
    }),
  )
})

describe("memory engine, with modify's retries made visible", () => {
  it.live("a conflicting write between the read and the write is retried with the new value", () =>
    Effect.gen(function* () {
      const mc = yield* McClient
      let calls = 0
      yield* withStore((kv) => kv.set("foo", "first"), { namespace: "conflict" })
      const result = yield* withStore(
        (kv) =>
          kv.modify("foo", (v) => {
            // Another writer lands between this read and its compare-and-swap, once.
            if (calls++ === 0) Effect.runSync(mc.set({ key: "conflict:foo", value: "written meanwhile" }))
            return `${v}+modified`
          }),
        { namespace: "conflict" },
      )
      expect(calls).toBe(2)
      expect(result).toEqual(Option.some("written meanwhile+modified"))
    }).pipe(Effect.provide(McClient.layerMemory())),
  )

  it.live("a value that changes at every attempt gives up with SystemError Busy, not a none", () =>
    Effect.gen(function* () {
      const mc = yield* McClient
      let calls = 0
      yield* withStore((kv) => kv.set("foo", "first"), { namespace: "busy" })
      const exit = yield* withStore(
        (kv) =>
          kv.modify("foo", (v) => {
            Effect.runSync(mc.set({ key: "busy:foo", value: `write ${calls++}` }))
            return `${v}+modified`
          }),
        { namespace: "busy" },
      ).pipe(Effect.exit)
      const error = platformFailure(exit)
      expect(error).toMatchObject({ _tag: "SystemError", reason: "Busy", module: "KeyValueStore", method: "modify" })
      expect(causeTag(error)).toBe("CASConflict")
      expect(calls).toBe(51)
      expect(error.message).toContain("gave up after 50 retries")
    }).pipe(Effect.provide(McClient.layerMemory())),
  )

  it.live("a key removed between the read and the write is none, and stays removed", () =>
    Effect.gen(function* () {
      const mc = yield* McClient
      yield* withStore((kv) => kv.set("foo", "first"), { namespace: "removed" })
      const result = yield* withStore(
        (kv) =>
          kv.modify("foo", (v) => {
            Effect.runSync(Effect.ignore(mc.del("removed:foo")))
            return `${v}+modified`
          }),
        { namespace: "removed" },
      )
      expect(result).toEqual(Option.none())
      expect(yield* withStore((kv) => kv.has("foo"), { namespace: "removed" })).toBe(false)
    }).pipe(Effect.provide(McClient.layerMemory())),
  )
})

describe("a failing cache is a PlatformError, never a none", () => {
  it.live("a dead server: every method fails with SystemError, the ConnectionError as cause", () =>
    Effect.gen(function* () {
      const address = yield* Effect.promise(refusedAddress)
      yield* withStore((kv) =>
        Effect.gen(function* () {
          for (const [method, effect] of [
            ["get", kv.get("foo")],
            ["getUint8Array", kv.getUint8Array("foo")],
            ["has", kv.has("foo")],
            ["set", kv.set("foo", "value of foo")],
            ["remove", kv.remove("foo")],
            ["modify", kv.modify("foo", (v) => v)],
            ["modifyUint8Array", kv.modifyUint8Array("foo", (v) => v)],
            ["clear", kv.clear],
            ["get", kv.forSchema(User).get("foo")],
          ] as const) {
            const error = platformFailure(yield* Effect.exit(effect as Effect.Effect<unknown, PlatformError.PlatformError>))
            expect(error).toMatchObject({ _tag: "SystemError", reason: "Unknown", module: "KeyValueStore", method })
            expect(causeTag(error)).toBe("ConnectionError")
            expect(error.message).toContain(address)
          }
        }),
      ).pipe(Effect.provide(McClient.layer({ servers: [address], retry: Schedule.recurs(0) })))
    }),
  )

  it.live("a server that never answers: SystemError TimedOut, the Timeout as cause", () =>
    Effect.gen(function* () {
      const silent = yield* Effect.acquireRelease(Effect.promise(() => fakeServer()), (s) => Effect.promise(s.close))
      yield* withStore((kv) =>
        Effect.gen(function* () {
          for (const [method, effect] of [
            ["get", kv.get("foo")],
            ["set", kv.set("foo", "value of foo")],
          ] as const) {
            const error = platformFailure(yield* Effect.exit(effect as Effect.Effect<unknown, PlatformError.PlatformError>))
            expect(error).toMatchObject({ _tag: "SystemError", reason: "TimedOut", module: "KeyValueStore", method, pathOrDescriptor: "foo" })
            expect(causeTag(error)).toBe("Timeout")
          }
        }),
      ).pipe(Effect.provide(McClient.layer({ servers: [silent.address], timeout: "100 millis", retry: Schedule.recurs(0) })))
    }).pipe(Effect.scoped),
  )

  it.live("plain keys (disableBinaryEncodedKeys): a key with a space or over 250 bytes is a BadArgument", () =>
    withStore((kv) =>
      Effect.gen(function* () {
        for (const key of ["with space", "x".repeat(300)]) {
          const error = platformFailure(yield* Effect.exit(kv.set(key, "v")))
          expect(error).toMatchObject({ _tag: "BadArgument", module: "KeyValueStore", method: "set" })
          expect(causeTag(error)).toBe("MalformedKey")
        }
        yield* kv.set("plain-key", "value of plain-key")
        expect(yield* kv.get("plain-key")).toEqual(Option.some("value of plain-key"))
      }),
    ).pipe(Effect.provide(McClient.layerMemory({ disableBinaryEncodedKeys: true }))),
  )
})
