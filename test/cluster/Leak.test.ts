/**
 * Nothing outlives the layer, and nothing grows with use.
 *
 * - After the layer closes, no socket, timer or fiber of the client remains: counted with
 *   `process.getActiveResourcesInfo()` (ref'd handles), with an async hook that sees every TCP
 *   handle, timer and immediate the client created (unref'd ones too), and with a fiber supervisor.
 *   The layer is closed in a busy state: operations in flight, some interrupted, a server down and
 *   being probed, a server stalled, a connection dialling.
 * - The heap stays flat over 200,000 operations (measured after a forced GC).
 */
import { createHook } from "node:async_hooks"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Supervisor } from "effect"
import { inject } from "vitest"
import { McClient, type McClientService } from "../../src/index.js"
import { fakeServer, refusedAddress } from "../support/fakeServer.js"
import { uniqueKey } from "../support/layers.js"

/** `gc()`: exposed by vitest.config.ts (`--expose-gc`), or obtained from V8 at run time. */
const gc: () => void = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed !== undefined) return exposed
  v8.setFlagsFromString("--expose-gc")
  return vm.runInNewContext("gc") as () => void
})()

const WATCHED = ["TCPSocketWrap", "TCPServerWrap", "Timeout", "Immediate"]

/** Counts of the watched kinds in `process.getActiveResourcesInfo()`. */
const activeResources = (): Record<string, number> => {
  const counts: Record<string, number> = Object.fromEntries(WATCHED.map((k) => [k, 0]))
  for (const r of process.getActiveResourcesInfo()) if (r in counts) counts[r]!++
  return counts
}

/**
 * Every TCP handle, connect request, timer and immediate created while enabled that has not been
 * destroyed yet (closed, cleared or run), with where it was created.
 */
const SRC = new URL("../../src/", import.meta.url).pathname

const trackResources = () => {
  const live = new Map<number, { readonly type: string; readonly stack: string }>()
  const hook = createHook({
    init: (asyncId, type) => {
      if (type === "TCPWRAP" || type === "TCPCONNECTWRAP" || type === "Timeout" || type === "Immediate") {
        live.set(asyncId, { type, stack: new Error().stack ?? "" })
      }
    },
    destroy: (asyncId) => {
      live.delete(asyncId)
    },
  })
  return {
    enable: () => hook.enable(),
    disable: () => hook.disable(),
    /** the live ones created by this package's code (src/) */
    fromClient: () =>
      [...live.values()]
        .filter((r) => r.stack.includes(SRC))
        .map((r) => `${r.type} created ${r.stack.split("\n").find((l) => l.includes(SRC))?.trim()}`),
  }
}

const countBy = <A>(xs: ReadonlyArray<A>, f: (a: A) => string): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const x of xs) out[f(x)] = (out[f(x)] ?? 0) + 1
  return out
}

const settle = (check: () => boolean, millis: number) =>
  Effect.gen(function* () {
    const until = Date.now() + millis
    while (!check() && Date.now() < until) yield* Effect.sleep("10 millis")
  })

/** A busy session: load with interruptions and short deadlines, a dead server, a silent server. */
const busySession = (mc: McClientService, keys: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    // Keys of the dead and the silent server fail (and mark them down): that is part of the session.
    yield* Effect.forEach(keys, (key) => Effect.exit(mc.set({ key, value: key })), { concurrency: 50, discard: true })
    const worker = Effect.forEach(
      keys,
      (key, i) =>
        i % 7 === 0
          ? Effect.exit(Effect.timeout(mc.get(key), 1))
          : i % 5 === 0
            ? Effect.exit(mc.get(key, { timeout: "3 millis" }))
            : Effect.exit(mc.get(key)),
      { discard: true },
    )
    yield* Effect.all(Array.from({ length: 20 }, () => worker), { concurrency: "unbounded", discard: true })
    // Let the dead and the silent server be marked down and probed.
    yield* Effect.sleep("300 millis")
    // Close with work in flight: forked gets still running, interrupted or not.
    for (const key of keys.slice(0, 200)) yield* Effect.fork(mc.get(key))
    const interrupted = yield* Effect.fork(Effect.forEach(keys.slice(200, 400), (key) => mc.get(key), { concurrency: 50 }))
    yield* Effect.yieldNow()
    yield* Fiber.interrupt(interrupted)
  })

describe("leaks", () => {
  it.live(
    "closing the layer leaves no socket, timer or fiber behind",
    () =>
      Effect.gen(function* () {
        const refused = yield* Effect.promise(refusedAddress)
        const silent = yield* Effect.promise(() => fakeServer()) // accepts, never answers
        const servers = [...inject("memcachedCluster"), refused, silent.address]
        const keys = Array.from({ length: 2000 }, (_, i) => uniqueKey(`leak-${i}`))

        const before = activeResources()
        const tracker = trackResources()
        const supervisor = yield* Supervisor.track
        tracker.enable()
        let duringSession: Array<string> = []
        let aliveInside = 0
        const layer = McClient.layer({ servers, timeout: "100 millis", dialTimeout: "50 millis" })
        yield* Effect.scoped(
          Effect.gen(function* () {
            const mc = Context.get(yield* Layer.build(layer), McClient)
            yield* busySession(mc, keys)
            duringSession = tracker.fromClient()
            aliveInside = (yield* supervisor.value).length
          }),
        ).pipe(Effect.supervised(supervisor))
        // Sockets close on the next turns of the event loop.
        yield* settle(() => tracker.fromClient().length === 0, 2000)
        const leftFromClient = tracker.fromClient()
        tracker.disable()
        yield* settle(() => {
          const now = activeResources()
          return WATCHED.every((k) => now[k]! <= before[k]!)
        }, 2000)
        const after = activeResources()
        const fibers = yield* supervisor.value
        yield* Effect.promise(() => silent.close())

        console.log(
          `Leak: just before close, ${duringSession.length} live client resources ` +
            `(${JSON.stringify(countBy(duringSession, (r) => r.split(" ")[0]!))}) ` +
            `and ${aliveInside} fibers; ` +
            `after close, ${leftFromClient.length} client resources, ${fibers.length} fibers; ` +
            `active resources before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`,
        )
        // The checks can see what they look for: while open there were sockets, timers and fibers.
        expect(duringSession.some((r) => r.startsWith("TCPWRAP"))).toBe(true)
        expect(aliveInside).toBeGreaterThan(0)
        // After close: none.
        expect(leftFromClient).toEqual([])
        expect(fibers.map((f) => String(f.id()))).toEqual([])
        for (const kind of WATCHED) expect(after[kind], kind).toBeLessThanOrEqual(before[kind]!)
      }),
    20_000,
  )

  it.live(
    "the heap stays flat over 200,000 operations",
    () =>
      Effect.gen(function* () {
        const mc = yield* McClient
        const keys = Array.from({ length: 1000 }, (_, i) => uniqueKey(`heap-${i}`))
        yield* Effect.forEach(keys, (key) => mc.set({ key, value: key }), { concurrency: 50, discard: true })
        let ops = 0
        const run = (count: number) => {
          const target = ops + count
          const worker = Effect.whileLoop({
            while: () => ops < target,
            body: () => {
              const key = keys[ops++ % keys.length]!
              const r = ops % 100
              // Mostly gets and sets; some interrupted or with a deadline too short to make.
              return r < 70
                ? Effect.asVoid(mc.get(key))
                : r < 95
                  ? mc.set({ key, value: key })
                  : r < 98
                    ? Effect.asVoid(Effect.exit(mc.get(key, { timeout: "1 millis" })))
                    : Effect.asVoid(Effect.exit(Effect.timeout(mc.get(key), 0)))
            },
            step: () => {},
          })
          return Effect.all(Array.from({ length: 100 }, () => worker), { concurrency: "unbounded", discard: true })
        }
        const heap = () =>
          Effect.gen(function* () {
            // Let abandoned replies drain, then collect.
            yield* Effect.sleep("50 millis")
            gc()
            gc()
            return process.memoryUsage().heapUsed
          })
        yield* run(50_000) // warm-up: JIT, caches, pools
        const start = yield* heap()
        const samples: Array<number> = []
        const t0 = Date.now()
        for (let i = 0; i < 4; i++) {
          yield* run(50_000)
          samples.push(yield* heap())
        }
        const millis = Date.now() - t0
        const mb = (n: number) => (n / 1024 / 1024).toFixed(2)
        console.log(
          `Leak heap: ${ops - 50_000} ops measured in ${millis} ms (after a 50,000-op warm-up); heap after GC ` +
            `${mb(start)} MB, then ${samples.map(mb).join(", ")} MB every 50,000 ops`,
        )
        expect(ops).toBeGreaterThanOrEqual(250_000)
        // Flat: no growth beyond noise (a leak of even 20 bytes per operation would show 4 MB).
        expect(samples[samples.length - 1]! - start).toBeLessThan(2 * 1024 * 1024)
        expect(Math.max(...samples) - start).toBeLessThan(3 * 1024 * 1024)
      }).pipe(Effect.provide(McClient.layer({ servers: inject("memcachedCluster"), timeout: "5 seconds" }))),
    30_000,
  )
})
