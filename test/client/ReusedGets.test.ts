/**
 * Plain gets reuse their request effect per key (src/client/Reads.ts): an effect is a
 * description, and each run must route, time, send and decode anew. These tests pin what a reuse
 * must never share between runs: the deadline, the reply, and the route.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { make } from "../../src/index.js"
import { startMemcached } from "../../scripts/memcached.js"
import { failureTag } from "../support/exits.js"
import { uniqueKey } from "../support/layers.js"
import { normal, scriptedServer } from "../support/scriptedServer.js"

const decoder = new TextDecoder()

/** A client of a memcached of its own, both in the test's scope. */
const clientOfOwnMemcached = Effect.gen(function* () {
  const proc = yield* Effect.acquireRelease(
    Effect.promise(() => startMemcached()),
    (p) => Effect.promise(() => p.stop()),
  )
  return yield* make({ servers: [proc.address] })
})

describe("reused plain gets", () => {
  it.scopedLive("a plain get's effect is reused per key; a get with options or of another key is not", () =>
    Effect.gen(function* () {
      const mc = yield* clientOfOwnMemcached
      const key = uniqueKey("reuse")
      expect(mc.get(key)).toBe(mc.get(key))
      expect(mc.get(key)).not.toBe(mc.get(`${key}-other`))
      expect(mc.get(key, { cas: true })).not.toBe(mc.get(key, { cas: true }))
    }),
  )

  // A deadline fixed when the effect was built (or first run) would fail the second run at once.
  it.scopedLive("each run of a reused get has its own deadline", () =>
    Effect.gen(function* () {
      let gets = 0
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => scriptedServer({ script: (r) => (r.command === "mg" && ++gets === 2 ? { kind: "delay", millis: 150 } : normal) })),
        (s) => Effect.promise(() => s.close()),
      )
      const key = uniqueKey("deadline")
      server.store.set(key, { value: Buffer.from(key), flags: 0, cas: 1n, exp: 0 })
      const mc = yield* make({ servers: [server.address], timeout: "500 millis", disableBinaryEncodedKeys: true })
      const get = mc.get(key)
      const first = yield* Effect.exit(get)
      expect(failureTag(first)).toBe("Success")
      yield* Effect.sleep("700 millis")
      const second = yield* Effect.exit(get)
      expect(failureTag(second)).toBe("Success")
      if (Exit.isSuccess(second)) expect(decoder.decode(second.value.value)).toBe(key)
      expect(gets).toBe(2)
    }),
  )

  it.scopedLive("concurrent runs of reused gets each get their own reply", () =>
    Effect.gen(function* () {
      const mc = yield* clientOfOwnMemcached
      const keys = Array.from({ length: 50 }, (_, i) => uniqueKey(`many-${i}`))
      yield* Effect.forEach(keys, (key) => mc.set({ key, value: key }), { discard: true })
      // 50 keys × 40 runs of each key's one effect, all in flight together.
      const runs = keys.flatMap((key) => Array.from({ length: 40 }, () => key))
      const values = yield* Effect.forEach(runs, (key) => Effect.map(mc.get(key), (item) => decoder.decode(item.value)), {
        concurrency: "unbounded",
      })
      expect(values).toEqual(runs)
    }),
  )

  it.scopedLive("a reused get routes anew: after its server is killed, it fails over", () =>
    Effect.gen(function* () {
      const [a, b] = yield* Effect.acquireRelease(
        Effect.promise(() => Promise.all([startMemcached(), startMemcached()])),
        (ps) => Effect.promise(() => Promise.all(ps.map((p) => p.stop("SIGKILL")))),
      )
      const key = uniqueKey("route")
      const onA = yield* make({ servers: [a!.address] })
      const onB = yield* make({ servers: [b!.address] })
      yield* onA.set({ key, value: "from a" })
      yield* onB.set({ key, value: "from b" })
      const mc = yield* make({ servers: [a!.address, b!.address], pickServer: () => [a!.address, b!.address], dialTimeout: "200 millis" })
      const get = mc.get(key)
      expect(decoder.decode((yield* get).value)).toBe("from a")
      yield* Effect.promise(() => a!.stop("SIGKILL"))
      const after = yield* Effect.exit(get)
      expect(failureTag(after)).toBe("Success")
      if (Exit.isSuccess(after)) expect(decoder.decode(after.value.value)).toBe("from b")
    }),
  )
})
