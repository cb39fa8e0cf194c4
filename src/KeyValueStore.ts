/**
 * `effect-memcache/KeyValueStore`: @effect/platform's `KeyValueStore` backed by `McClient`.
 *
 * Every entry of a layer lives in one namespace of the client (default `"kv"`), so `clear` is a
 * `purgeNamespace`. Namespaces group keys for purging but do not partition them, so the namespace
 * is also written into each key: `<namespace>:<key>` (the namespace percent-encoded, so that its
 * first `:` always ends it and two layers' keys cannot meet).
 *
 * Values keep what they were given as: a `Uint8Array` is stored with user flag 1, so `get` answers
 * it in base64 (as `KeyValueStore.layerMemory` does) and `getUint8Array` as the same bytes.
 */
import * as PlatformError from "@effect/platform/Error"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import { Effect, Encoding, Layer, Option, Schedule } from "effect"
import type { DecodeError, McError } from "./Errors.js"
import type { Item } from "./Item.js"
import { McClient } from "./McClient.js"
import type { Expiration } from "./Options.js"

export interface KeyValueStoreOptions {
  /** the client namespace of the entries, which `clear` purges; default `"kv"` */
  readonly namespace?: string | undefined
  /** the expiration of every entry written (see README "Expirations"); default 0 = none */
  readonly expiration?: Expiration | undefined
}

const BYTES = 1
const decoder = new TextDecoder()

// How often `modify` starts over after losing a compare-and-swap before it gives up (`Busy`).
const MODIFY_RETRIES = 50

/**
 * The waits between those attempts: exponential from 1 ms with full jitter (uniform in 0..1 of the
 * step, which spreads contenders apart far better than ±20 %), each capped at 50 ms: about 2.2 s
 * in all at worst. 50 fibers on one key over loopback took 7 attempts each on average and 23 at
 * most in our runs (±20 % jitter took half as many again, and up to 1.2 s for the 50).
 */
const modifyRetry = Schedule.exponential("1 millis").pipe(
  Schedule.jitteredWith({ min: 0, max: 1 }),
  Schedule.union(Schedule.spaced("50 millis")),
  Schedule.intersect(Schedule.recurs(MODIFY_RETRIES)),
)

type Failure = McError | DecodeError

const reasonOf = (error: Failure): PlatformError.SystemErrorReason => {
  switch (error._tag) {
    case "Timeout":
      return "TimedOut"
    case "AuthenticationError":
      return "PermissionDenied"
    case "CorruptResponse":
    case "DecodeError":
      return "InvalidData"
    default:
      return "Unknown"
  }
}

/** An McError as a PlatformError: a request the client refused as given is a `BadArgument`. */
const platformError = (method: string, key: string | undefined, error: Failure): PlatformError.PlatformError =>
  error._tag === "MalformedKey" || error._tag === "ClientError"
    ? new PlatformError.BadArgument({ module: "KeyValueStore", method, description: error.message, cause: error })
    : new PlatformError.SystemError({
        reason: reasonOf(error),
        module: "KeyValueStore",
        method,
        ...(key === undefined ? {} : { pathOrDescriptor: key }),
        description: error.message,
        cause: error,
      })

const cannotCount = (method: string) =>
  Effect.fail(
    new PlatformError.SystemError({
      reason: "Unknown",
      module: "KeyValueStore",
      method,
      description:
        "memcached cannot count keys: items expire and are evicted on their own, so no counter could stay exact",
    }),
  )

/** The value as a plain `Uint8Array` (a view, not a copy: the TCP layer reads into Buffers). */
const bytesOf = (item: Item): Uint8Array =>
  item.value.constructor === Uint8Array ? item.value : new Uint8Array(item.value.buffer, item.value.byteOffset, item.value.byteLength)

const textOf = (item: Item): string => (item.flags === BYTES ? Encoding.encodeBase64(item.value) : decoder.decode(item.value))

/** The store over the client; `layer` provides it. */
export const make = (options: KeyValueStoreOptions = {}): Effect.Effect<KeyValueStore.KeyValueStore, never, McClient> =>
  Effect.map(McClient, (mc) => {
    const namespace = options.namespace ?? "kv"
    const prefix = `${encodeURIComponent(namespace)}:`
    const writeOptions = { namespace, expiration: options.expiration }
    const wireKey = (key: string) => prefix + key
    const fail = (method: string, key?: string) => (error: Failure) => Effect.fail(platformError(method, key, error))

    const read = <A>(method: string, key: string, f: (item: Item) => A) =>
      mc.get(wireKey(key)).pipe(
        Effect.map((item) => Option.some(f(item))),
        Effect.catchTags({ CacheMiss: () => Effect.succeedNone }),
        Effect.catchAll(fail(method, key)),
      )

    const write = (method: string, key: string, value: string | Uint8Array) =>
      mc
        .set({ key: wireKey(key), value, flags: typeof value === "string" ? 0 : BYTES }, writeOptions)
        .pipe(Effect.catchAll(fail(method, key)))

    /** Read with CAS, apply `f`, write back only if nothing changed meanwhile; a miss writes nothing. */
    const modifyWith = <V extends string | Uint8Array>(method: string, key: string, view: (item: Item) => V, f: (value: V) => V) => {
      const attempt = Effect.gen(function* () {
        const item = yield* mc.get(wireKey(key), { cas: true })
        const next = f(view(item))
        yield* mc.compareAndSwap(
          { key: wireKey(key), value: next, flags: typeof next === "string" ? 0 : BYTES, cas: item.cas },
          writeOptions,
        )
        return Option.some(next)
      })
      return attempt.pipe(
        Effect.retry({ schedule: modifyRetry, while: (e) => e._tag === "CASConflict" || e._tag === "NotStored" }),
        Effect.catchAll((e) => {
          switch (e._tag) {
            // Missing at the read, or deleted between the read and the write: nothing was modified.
            case "CacheMiss":
              return Effect.succeedNone
            case "CASConflict":
            case "NotStored":
              return Effect.fail(
                new PlatformError.SystemError({
                  reason: "Busy",
                  module: "KeyValueStore",
                  method,
                  pathOrDescriptor: key,
                  description: `the value kept changing under compare-and-swap; gave up after ${MODIFY_RETRIES} retries`,
                  cause: e,
                }),
              )
            default:
              return Effect.fail(platformError(method, key, e))
          }
        }),
      )
    }

    // `make` adds `forSchema`, @effect/platform's schema store over these methods (its `modify` is
    // its own read-then-write, not compare-and-swap); every other method is ours.
    return KeyValueStore.make({
      get: (key) => read("get", key, textOf),
      getUint8Array: (key) => read("getUint8Array", key, bytesOf),
      set: (key, value) => write("set", key, value),
      remove: (key) =>
        mc.del(wireKey(key)).pipe(Effect.catchTags({ CacheMiss: () => Effect.void }), Effect.catchAll(fail("remove", key))),
      has: (key) => Effect.map(read("has", key, () => true), Option.isSome),
      clear: mc.purgeNamespace(namespace).pipe(Effect.catchAll(fail("clear"))),
      size: cannotCount("size"),
      isEmpty: cannotCount("isEmpty"),
      modify: (key, f) => modifyWith("modify", key, textOf, f),
      modifyUint8Array: (key, f) => modifyWith("modifyUint8Array", key, bytesOf, f),
    })
  })

/**
 * `KeyValueStore` over `McClient`: entries in the client namespace `options.namespace` (default
 * `"kv"`), each written with `options.expiration` (default none). `modify` is atomic (CAS),
 * `clear` purges the namespace, `size` and `isEmpty` fail: memcached cannot count keys.
 */
export const layer = (options?: KeyValueStoreOptions): Layer.Layer<KeyValueStore.KeyValueStore, never, McClient> =>
  Layer.effect(KeyValueStore.KeyValueStore, make(options))
