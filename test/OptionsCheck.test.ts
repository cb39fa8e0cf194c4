/**
 * Layer options: every invalid one fails the layer with InvalidOption (naming the option and the
 * value), on McClient.layer, layerConfig, layerFromEnv and layerMemory alike; never a throw or a
 * defect. IPv6 servers in brackets work.
 */
import { execSync } from "node:child_process"
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Duration, Effect, Exit, Layer, Schedule } from "effect"
import * as fc from "fast-check"
import { inject } from "vitest"
import { startMemcached } from "../scripts/memcached.js"
import { McClient } from "../src/index.js"
import { failureOf, failureTag } from "./support/exits.js"
import { text, uniqueKey } from "./support/layers.js"

const roundTrip = Effect.gen(function* () {
  const key = uniqueKey("options")
  yield* McClient.set({ key, value: `value of ${key}` })
  return text((yield* McClient.get(key)).value) === `value of ${key}`
})

const outcome = (layer: Layer.Layer<McClient, unknown>) =>
  Effect.map(Effect.exit(roundTrip.pipe(Effect.provide(layer))), (exit) => exit as Exit.Exit<boolean, { _tag: string }>)

const tcp = (options: Record<string, unknown>) =>
  McClient.layer({ servers: [inject("memcached")], ...options } as never)
const memory = (options: unknown) => McClient.layerMemory(options as never)

const throwing = () => new Proxy({}, { get: () => { throw new Error("boom") }, ownKeys: () => { throw new Error("boom") } })

describe("layer options", () => {
  it.live("each invalid option is an InvalidOption naming the option and the value", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, unknown]> = [
        ["timeout", "fast"],
        ["timeout", 0],
        ["timeout", 2 ** 31],
        ["dialTimeout", -5],
        ["connMaxLifetime", "forever"],
        ["retry", 3],
        ["reconnect", {}],
        ["keyHash", "md5"],
        ["maxIdleConnsPerAddr", "10"],
        ["maxIdleConnsPerAddr", 0],
        ["disableBinaryEncodedKeys", "yes"],
        ["compression", { compress: (b: Uint8Array) => b }],
        ["pickServer", "ketama"],
        ["stallTimeout", Duration.infinity],
        ["failoverTtl", 0],
        ["failoverTtl", Duration.zero],
        ["failoverTtl", Duration.infinity],
      ]
      for (const [option, value] of cases) {
        const exit = yield* outcome(tcp({ [option]: value }))
        expect(failureOf(exit), `${option}: ${String(value)}`).toMatchObject({ _tag: "InvalidOption", option })
        expect((failureOf(exit) as unknown as { value: string }).value.length).toBeGreaterThan(0)
        if (option !== "pickServer") {
          const mem = yield* outcome(memory({ [option]: value }))
          expect(failureOf(mem), `memory ${option}`).toMatchObject({ _tag: "InvalidOption", option })
        }
      }
      expect(failureOf(yield* outcome(memory({ maxItemSize: -1 })))).toMatchObject({ _tag: "InvalidOption", option: "maxItemSize" })
    }),
  )

  it.live("valid options, Infinity where it means never, and the new stallTimeout / failoverTtl", () =>
    Effect.gen(function* () {
      const options = {
        timeout: "2 seconds",
        dialTimeout: 1000,
        connMaxLifetime: Duration.infinity,
        retry: Schedule.recurs(1),
        keyHash: "xxhash64",
        maxIdleConnsPerAddr: 2,
        stallTimeout: "1 second",
        failoverTtl: "10 seconds",
      }
      expect(yield* roundTrip.pipe(Effect.provide(tcp(options)))).toBe(true)
      expect(yield* roundTrip.pipe(Effect.provide(memory(options)))).toBe(true)
    }),
  )

  it.live("servers: an array of parseable, distinct addresses; an empty one is NoServers", () =>
    Effect.gen(function* () {
      const server = inject("memcached")
      const servers = (list: unknown) => outcome(McClient.layer({ servers: list } as never))
      expect(failureTag(yield* servers([]))).toBe("NoServers")
      const duplicate = failureOf(yield* servers([server, server]))
      expect(duplicate).toMatchObject({ _tag: "InvalidOption", option: "servers[1]" })
      expect((duplicate as unknown as Error).message).toMatch(/duplicate/)
      expect(failureOf(yield* servers(["localhost", "localhost:11211"]))).toMatchObject({ _tag: "InvalidOption", option: "servers[1]" })
      for (const bad of [[""], ["host:port"], ["host:99999"], [5], [null], ["[::1"], "127.0.0.1:11211", undefined, {}])
        expect(failureTag(yield* servers(bad)), JSON.stringify(bad)).toBe("InvalidOption")
    }),
  )

  it.live("an options object that is null, a number, an array or a throwing Proxy is an InvalidOption", () =>
    Effect.gen(function* () {
      for (const [label, options] of [["null", null], ["5", 5], ["x", "x"], ["[1]", [1]], ["Proxy", throwing()]] as const) {
        expect(failureOf(yield* outcome(McClient.layer(options as never))), label).toMatchObject({
          _tag: "InvalidOption",
          option: "options",
        })
        expect(failureTag(yield* outcome(memory(options)))).toBe("InvalidOption")
        const env = Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["MEMCACHE_SERVERS", inject("memcached")]])))
        expect(failureTag(yield* outcome(McClient.layerFromEnv(options as never).pipe(Layer.provide(env))))).toBe("InvalidOption")
      }
      // A Proxy array of servers that throws on read.
      const servers = new Proxy([inject("memcached")], { get: () => { throw new Error("boom") } })
      expect(failureTag(yield* outcome(McClient.layer({ servers })))).toBe("InvalidOption")
    }),
  )

  it.live("layerConfig: an option read from Config is checked too", () =>
    Effect.gen(function* () {
      const env = Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["S", `${inject("memcached")},${inject("memcached")}`]])))
      const layer = McClient.layerConfig({ servers: Config.array(Config.string(), "S") }).pipe(Layer.provide(env))
      expect(failureTag(yield* outcome(layer))).toBe("InvalidOption")
    }),
  )

  it.live("any value for any option: success or InvalidOption, the same on both layers for shared options", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.constantFrom("timeout", "dialTimeout", "connMaxLifetime", "maxIdleConnsPerAddr", "disableBinaryEncodedKeys", "keyHash", "compression", "retry", "stallTimeout", "failoverTtl"),
          fc.oneof(
            fc.anything({ withBigInt: true }),
            fc.constantFrom(NaN, Infinity, -0, 0, 1, 2 ** 31, "1 second", "1 hour", "-1 seconds", Duration.infinity, Duration.zero, Schedule.once, null),
          ),
          async (option, value) => {
            // Building the layer is where options are checked (a round trip could time out under load).
            const built = (layer: Layer.Layer<McClient, unknown>) =>
              Effect.runPromise(Effect.exit(Effect.scoped(Layer.build(layer))) as Effect.Effect<Exit.Exit<unknown, { _tag: string }>>)
            const [t, m] = await Promise.all([built(tcp({ [option]: value })), built(memory({ [option]: value }))])
            const tags = [failureTag(t), failureTag(m)]
            for (const tag of tags) expect(["Success", "InvalidOption"]).toContain(tag)
            expect(tags[1]).toBe(tags[0])
          },
        ),
        { numRuns: 60 },
      ),
    ),
  )

  const hasIpv6Loopback = (() => {
    try {
      return /inet6 ::1\//.test(execSync("ip -6 addr show lo", { encoding: "utf8" }))
    } catch {
      return false
    }
  })()

  it.live.skipIf(!hasIpv6Loopback)("an IPv6 server in brackets: [::1]:port and [::1]:port:weight", () =>
    Effect.gen(function* () {
      const v6 = yield* Effect.acquireRelease(
        Effect.promise(() => startMemcached({ host: "::1" })),
        (p) => Effect.promise(() => p.stop()),
      )
      expect(v6.address).toBe(`[::1]:${v6.port}`)
      expect(yield* roundTrip.pipe(Effect.provide(McClient.layer({ servers: [v6.address] })))).toBe(true)
      const weighted = McClient.layer({ servers: [`[::1]:${v6.port}:2`, inject("memcached")] })
      const keys = Array.from({ length: 20 }, (_, i) => uniqueKey(`v6-${i}`))
      yield* Effect.gen(function* () {
        for (const key of keys) yield* McClient.set({ key, value: `value of ${key}` })
        const items = yield* McClient.getMulti(keys)
        expect(items.size).toBe(keys.length)
        for (const [key, item] of items) expect(text(item.value)).toBe(`value of ${key}`)
      }).pipe(Effect.provide(weighted))
      // the same server twice, once with the default port spelled out
      expect(failureTag(yield* outcome(McClient.layer({ servers: ["[::1]", "[::1]:11211"] })))).toBe("InvalidOption")
    }).pipe(Effect.scoped),
  )
})
