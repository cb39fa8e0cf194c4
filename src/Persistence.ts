/**
 * `effect-memcache/Persistence`: @effect/experimental's `BackingPersistence` backed by `McClient`,
 * modelled on its Redis backing (`Persistence/Redis.ts`): values as JSON, time to live on the server.
 *
 * Each store lives in its own client namespace, `<namespace>:<storeId>` (default namespace
 * `"persistence"`), so `clear` is a `purgeNamespace`. Namespaces group keys but do not partition
 * them, so the store's namespace is also written into each key, percent-encoded:
 * `<encoded store namespace>:<key>`.
 *
 * memcached counts time to live in whole seconds: a TTL is rounded up (500 ms lives 1 s), and one
 * above 30 days is sent as an absolute Unix time from this process's clock, as memcached reads it.
 */
import * as Persistence from "@effect/experimental/Persistence"
import { Clock, Duration, Effect, Layer, Option } from "effect"
import type { DecodeError, McError } from "./Errors.js"
import type { Item } from "./Item.js"
import { McClient } from "./McClient.js"

export interface PersistenceOptions {
  /** prefix of each store's client namespace, `<namespace>:<storeId>`; default `"persistence"` */
  readonly namespace?: string | undefined
}

// memcached reads an expiration above this many seconds as an absolute Unix time.
const MAX_RELATIVE_SECONDS = 30 * 24 * 60 * 60
const decoder = new TextDecoder()

/** A time to live as memcached's expiration (0 = none); `undefined` when the entry expires at once. */
const expirationOf = (ttl: Option.Option<Duration.Duration>): Effect.Effect<number | undefined> => {
  if (Option.isNone(ttl) || !Duration.isFinite(ttl.value)) return Effect.succeed(0)
  const millis = Duration.toMillis(ttl.value)
  if (millis <= 0) return Effect.succeed(undefined)
  const seconds = Math.ceil(millis / 1000)
  if (seconds <= MAX_RELATIVE_SECONDS) return Effect.succeed(seconds)
  return Effect.map(Clock.currentTimeMillis, (now) => Math.ceil((now + millis) / 1000))
}

const backingError = (method: string) => (error: unknown) => Persistence.PersistenceBackingError.make(method, error)

/** The persistence over the client; `layer` provides it. */
export const make = (options: PersistenceOptions = {}): Effect.Effect<Persistence.BackingPersistence, never, McClient> =>
  Effect.map(McClient, (mc) =>
    Persistence.BackingPersistence.of({
      [Persistence.BackingPersistenceTypeId]: Persistence.BackingPersistenceTypeId,
      make: (storeId) =>
        Effect.sync((): Persistence.BackingPersistenceStore => {
          const namespace = `${options.namespace ?? "persistence"}:${storeId}`
          const prefix = `${encodeURIComponent(namespace)}:`
          const wireKey = (key: string) => prefix + key

          const parse = (method: string, item: Item) =>
            Effect.try({ try: () => JSON.parse(decoder.decode(item.value)) as unknown, catch: backingError(method) })

          const set = (method: string, key: string, value: unknown, ttl: Option.Option<Duration.Duration>) =>
            Effect.gen(function* () {
              const json = yield* Effect.try({ try: () => JSON.stringify(value), catch: backingError(method) })
              if (json === undefined) return yield* Effect.fail(backingError(method)(new TypeError("the value has no JSON form")))
              const expiration = yield* expirationOf(ttl)
              // Already expired: what was stored before must not be served either.
              if (expiration === undefined) return yield* remove(method, key)
              yield* mc.set({ key: wireKey(key), value: json }, { namespace, expiration }).pipe(Effect.mapError(backingError(method)))
            })

          const remove = (method: string, key: string) =>
            mc.del(wireKey(key)).pipe(
              Effect.catchTag("CacheMiss", () => Effect.void),
              Effect.mapError(backingError(method)),
            )

          return {
            get: (key) =>
              mc.get(wireKey(key)).pipe(
                Effect.flatMap((item) => Effect.asSome(parse("get", item))),
                Effect.catchTag("CacheMiss", () => Effect.succeedNone),
                Effect.mapError((e: McError | DecodeError | Persistence.PersistenceError) =>
                  e._tag === "PersistenceError" ? e : backingError("get")(e),
                ),
              ),
            getMany: (keys) => {
              const wires = keys.map(wireKey)
              return mc.getMulti(wires).pipe(
                Effect.mapError(backingError("getMany")),
                Effect.flatMap((items) =>
                  Effect.forEach(wires, (wire) => {
                    const item = items.get(wire)
                    return item === undefined ? Effect.succeedNone : Effect.asSome(parse("getMany", item))
                  }),
                ),
              )
            },
            set: (key, value, ttl) => set("set", key, value, ttl),
            setMany: (entries) =>
              Effect.forEach(entries, ([key, value, ttl]) => set("setMany", key, value, ttl), {
                concurrency: "unbounded",
                discard: true,
              }),
            remove: (key) => remove("remove", key),
            clear: mc.purgeNamespace(namespace).pipe(Effect.mapError(backingError("clear"))),
          }
        }),
    }),
  )

/** `BackingPersistence` over `McClient`: each store in the namespace `<namespace>:<storeId>`, TTLs on the server. */
export const layer = (options?: PersistenceOptions): Layer.Layer<Persistence.BackingPersistence, never, McClient> =>
  Layer.effect(Persistence.BackingPersistence, make(options))

/** `ResultPersistence` (for `PersistedCache` and persisted request resolvers) over `layer`. */
export const layerResult = (options?: PersistenceOptions): Layer.Layer<Persistence.ResultPersistence, never, McClient> =>
  Persistence.layerResult.pipe(Layer.provide(layer(options)))
