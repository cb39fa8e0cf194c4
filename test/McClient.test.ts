/** The service's layers from configuration: `layerConfig` and `MEMCACHE_SERVERS`. */
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect, Layer } from "effect"
import { inject } from "vitest"
import { McClient } from "../src/index.js"
import { failureTag } from "./support/exits.js"
import { text, uniqueKey } from "./support/layers.js"

const roundTrip = Effect.gen(function* () {
  const key = uniqueKey("config")
  yield* McClient.set({ key, value: "configured" })
  return text((yield* McClient.get(key)).value)
})

const withEnv = (env: Record<string, string>) => Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("configuration", () => {
  it.live("layerFromEnv reads MEMCACHE_SERVERS (comma-separated)", () =>
    Effect.gen(function* () {
      const [a, b] = inject("memcachedCluster")
      const layer = McClient.layerFromEnv({ timeout: "1 second" }).pipe(Layer.provide(withEnv({ MEMCACHE_SERVERS: ` ${a}, ${b} ` })))
      expect(yield* roundTrip.pipe(Effect.provide(layer))).toBe("configured")
    }),
  )

  it.live("layerConfig takes every option from Config", () =>
    Effect.gen(function* () {
      const layer = McClient.layerConfig({
        servers: McClient.serversFromEnv,
        timeout: Config.duration("MC_TIMEOUT"),
        disableBinaryEncodedKeys: Config.boolean("MC_PLAIN"),
      }).pipe(Layer.provide(withEnv({ MEMCACHE_SERVERS: inject("memcached"), MC_TIMEOUT: "500 millis", MC_PLAIN: "true" })))
      expect(yield* roundTrip.pipe(Effect.provide(layer))).toBe("configured")
    }),
  )

  it.live("a missing MEMCACHE_SERVERS is a ConfigError; an empty one is NoServers", () =>
    Effect.gen(function* () {
      const missing = yield* Effect.exit(roundTrip.pipe(Effect.provide(McClient.layerFromEnv().pipe(Layer.provide(withEnv({}))))))
      expect(failureTag(missing)).toBe("ConfigError")
      const empty = yield* Effect.exit(
        roundTrip.pipe(Effect.provide(McClient.layerFromEnv().pipe(Layer.provide(withEnv({ MEMCACHE_SERVERS: " , " }))))),
      )
      expect(failureTag(empty)).toBe("NoServers")
    }),
  )
})
