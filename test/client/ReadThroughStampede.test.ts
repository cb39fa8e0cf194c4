/**
 * getOrSet across processes, against real memcached (issue 12's measurement): four clients on one
 * server stand for four processes, each with its own in-flight map and connections.
 */
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect, Exit, Fiber, Schema } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { inject } from "vitest"
import { make, type McClientService } from "../../src/index.js"
import { readThroughsInFlight } from "../../src/client/ReadThrough.js"
import { failureOf, failureTag } from "../support/exits.js"
import { uniqueKey } from "../support/layers.js"

const Value = Schema.Struct({ key: Schema.String, n: Schema.Number, client: Schema.Number })
const options = { schema: Value, expiration: 60 } as const

class LookupFailed extends Data.TaggedError("LookupFailed")<{ readonly key: string; readonly client: number }> {}

const WATCHER = fileURLToPath(new URL("./fixtures/leaseWatcher.mjs", import.meta.url))
const CALLERS = 1000
const CLIENTS = 4

// Text keys, so that the lease watcher can name the item.
const clients = (n: number) =>
  Effect.all(Array.from({ length: n }, () => make({ servers: [inject("memcached")], disableBinaryEncodedKeys: true })))

interface Change {
  readonly at: number
  readonly seen: string
}

/** Starts test/client/fixtures/leaseWatcher.mjs on `key`; `stop` ends it and answers what it saw. */
const watchLease = (key: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly child: ChildProcess; readonly changes: Array<Change> }>((resume) => {
      const server = inject("memcached")
      const i = server.lastIndexOf(":")
      const child = spawn(process.execPath, [WATCHER, server.slice(0, i), server.slice(i + 1), key], {
        stdio: ["pipe", "pipe", "inherit"],
      })
      const changes: Array<Change> = []
      let pending = ""
      child.stdout!.on("data", (chunk: Buffer) => {
        pending += chunk.toString()
        let end
        while ((end = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, end)
          pending = pending.slice(end + 1)
          if (line === "ready") resume(Effect.succeed({ child, changes }))
          else changes.push(JSON.parse(line) as Change)
        }
      })
    }),
    ({ child }) => Effect.sync(() => child.kill()),
  ).pipe(
    Effect.map(({ child, changes }) => ({
      stop: Effect.async<ReadonlyArray<Change>>((resume) => {
        child.on("exit", () => resume(Effect.succeed(changes)))
        child.stdin!.end()
      }),
    })),
  )

const callers = <A, E>(mcs: ReadonlyArray<McClientService>, call: (mc: McClientService, client: number) => Effect.Effect<A, E>) =>
  Effect.forEach(
    Array.from({ length: CALLERS }, (_, i) => i),
    (i) => Effect.exit(call(mcs[i % mcs.length]!, i % mcs.length)),
    { concurrency: "unbounded" },
  )

describe("getOrSet stampede on real memcached", () => {
  it.live(`${CALLERS} callers over ${CLIENTS} clients, one cold key: exactly 1 lookup, one value for all`, () =>
    Effect.scoped(
      Effect.gen(function* () {
        const mcs = yield* clients(CLIENTS)
        const key = uniqueKey("stampede")
        let runs = 0
        const lookup = (client: number) =>
          Effect.suspend(() => {
            const n = ++runs
            return Effect.as(Effect.sleep("50 millis"), { key, n, client })
          })
        const started = performance.now()
        const exits = yield* callers(mcs, (mc, client) => mc.getOrSet(key, lookup(client), options))
        const took = performance.now() - started
        expect(runs).toBe(1)
        const values = exits.map((exit) => (Exit.isSuccess(exit) ? JSON.stringify(exit.value) : failureTag(exit)))
        expect(new Set(values).size).toBe(1)
        const value = JSON.parse(values[0]!) as { key: string; n: number }
        expect(value).toMatchObject({ key, n: 1 })
        expect(readThroughsInFlight()).toBe(0)
        console.log(`getOrSet stampede: ${CALLERS} callers over ${CLIENTS} clients, ${runs} lookup, ${took.toFixed(0)} ms`)
      }),
    ),
  )

  it.live(`a failing lookup: all ${CALLERS} callers get the error, and the lease is free again within milliseconds`, () =>
    Effect.scoped(
      Effect.gen(function* () {
        const mcs = yield* clients(CLIENTS)
        const key = uniqueKey("stampede-fail")
        let runs = 0
        // When each lookup failed (comparable across processes).
        const failedAt: Array<number> = []
        const lookup = (client: number) =>
          Effect.suspend(() => {
            runs++
            return Effect.sleep("50 millis").pipe(
              Effect.zipRight(Effect.sync(() => failedAt.push(performance.timeOrigin + performance.now()))),
              Effect.zipRight(Effect.fail(new LookupFailed({ key, client }))),
            )
          })

        // Another process watches the lease (its own event loop: this one is busy resuming 1,000
        // fibers when the lookup fails). The first lease is free again at the first change it
        // sees after the first failure: the placeholder gone, or another one in its place.
        const watcher = yield* watchLease(key)
        const exits = yield* callers(mcs, (mc, client) => mc.getOrSet(key, lookup(client), options))
        const changes = yield* watcher.stop
        for (const exit of exits) {
          expect(failureTag(exit)).toBe("LookupFailed")
          expect((failureOf(exit) as LookupFailed).key).toBe(key)
        }
        // Each process's callers share one failing lookup; the other processes win the freed lease in turn.
        expect(runs).toBeGreaterThanOrEqual(1)
        expect(runs).toBeLessThanOrEqual(CLIENTS)
        const held = changes.filter((c) => c.at < failedAt[0]!).at(-1)
        expect(held?.seen).toMatch(/^placeholder c\d+$/)
        const released = changes.find((c) => c.at > failedAt[0]!)
        expect(released).toBeDefined()
        expect(released!.seen).not.toBe(held!.seen)
        const releaseMillis = released!.at - failedAt[0]!
        expect(releaseMillis).toBeLessThan(200)
        // The last failure released its lease too: nothing is left behind.
        expect(failureTag(yield* Effect.exit(mcs[0]!.get(key)))).toBe("CacheMiss")
        expect(readThroughsInFlight()).toBe(0)
        console.log(
          `getOrSet stampede, failing lookup: ${CALLERS} callers got the error, ${runs} lookups (one per client), ` +
            `lease free again ${releaseMillis.toFixed(2)} ms after the first failure`,
        )
      }),
    ),
  )

  it.live("serve-stale across clients: the refresher waits for its lookup, the others get the stale value", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const [a, b] = yield* clients(2)
        const key = uniqueKey("stale-across")
        yield* a!.setAs(Value, { key, value: { key, n: 1, client: 0 } })
        yield* a!.del(key, { invalidate: 30 })
        const stale = { ...options, serveStale: true }
        const refresher = yield* Effect.fork(
          a!.getOrSet(key, Effect.as(Effect.sleep("100 millis"), { key, n: 2, client: 0 }), stale),
        )
        yield* Effect.sleep("20 millis")
        const started = performance.now()
        expect(yield* b!.getOrSet(key, Effect.die("b must not look up"), stale)).toEqual({ key, n: 1, client: 0 })
        expect(performance.now() - started).toBeLessThan(50)
        expect(yield* Fiber.join(refresher)).toEqual({ key, n: 2, client: 0 })
        expect(yield* b!.getOrSet(key, Effect.die("b must not look up"), stale)).toEqual({ key, n: 2, client: 0 })
      }),
    ),
  )

  it.live("a loser in another process waits on the lease and reads the winner's value", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const [a, b] = yield* clients(2)
        const key = uniqueKey("loser-across")
        const winner = yield* Effect.fork(a!.getOrSet(key, Effect.as(Effect.sleep("80 millis"), { key, n: 1, client: 0 }), options))
        yield* Effect.sleep("10 millis")
        expect(yield* b!.getOrSet(key, Effect.die("b must not look up"), options)).toEqual({ key, n: 1, client: 0 })
        expect(yield* Fiber.join(winner)).toEqual({ key, n: 1, client: 0 })
      }),
    ),
  )
})
