/**
 * getOrSet (issue 12) on real memcached and on the memory engine: hits, misses, values that no
 * longer decode, lookup errors and interruptions, in-process sharing, early recache, serve-stale,
 * and cache outages. Values carry their key, so a reply for another key cannot pass.
 * The cross-process stampede (4 clients, 1,000 callers) is in ReadThroughStampede.test.ts, the
 * memory layer on TestClock in ReadThroughClock.test.ts (TestClock fails in a file that also
 * runs `layer(...)` suites).
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Data, Deferred, Effect, Fiber, Layer, Logger, Option, Schedule, Schema, Tracer } from "effect"
import { ClientError, McClient } from "../../src/index.js"
import { readThroughsInFlight } from "../../src/client/ReadThrough.js"
import { refusedAddress } from "../support/fakeServer.js"
import { failureOf, failureTag } from "../support/exits.js"
import { targets, uniqueKey } from "../support/layers.js"

const Value = Schema.Struct({ key: Schema.String, n: Schema.Number })
type Value = typeof Value.Type

class LookupFailed extends Data.TaggedError("LookupFailed")<{ readonly key: string }> {}

/** A lookup that counts its runs and answers `{ key, n }`, n = its run number. */
const counted = (key: string, delay: Effect.Effect<void> = Effect.void) => {
  let runs = 0
  const lookup = Effect.zipRight(
    delay,
    Effect.sync((): Value => ({ key, n: ++runs })),
  )
  return { lookup, runs: () => runs }
}

const options = { schema: Value, expiration: 60 } as const

/** The lease placeholder (or nothing) is gone: a plain get misses. */
const expectNoItem = (key: string) =>
  Effect.gen(function* () {
    expect(failureTag(yield* Effect.exit(McClient.get(key)))).toBe("CacheMiss")
  })

const shared = targets.filter((t) => t.name !== "memcached-tls")

for (const target of shared) {
  describe(target.name, () => {
    layer(target.layer(), { excludeTestServices: true })("getOrSet", (it) => {
      it.effect("a hit answers the stored value and does not run the lookup", () =>
        Effect.gen(function* () {
          const key = uniqueKey("hit")
          yield* McClient.setAs(Value, { key, value: { key, n: 7 } })
          const { lookup, runs } = counted(key)
          expect(yield* McClient.getOrSet(key, lookup, options)).toEqual({ key, n: 7 })
          expect(runs()).toBe(0)
        }),
      )

      it.effect("a miss runs the lookup once and stores its value with the expiration", () =>
        Effect.gen(function* () {
          const key = uniqueKey("miss")
          const { lookup, runs } = counted(key)
          expect(yield* McClient.getOrSet(key, lookup, { schema: Value, expiration: "2 minutes" })).toEqual({ key, n: 1 })
          expect(yield* McClient.getAs(Value, key)).toEqual({ key, n: 1 })
          const item = yield* McClient.get(key, { ttl: true })
          expect(item.ttl).toBeGreaterThan(110)
          expect(item.ttl).toBeLessThanOrEqual(120)
          expect(item.won || item.winSent || item.stale).toBe(false)
          expect(yield* McClient.getOrSet(key, lookup, options)).toEqual({ key, n: 1 })
          expect(runs()).toBe(1)
        }),
      )

      it.effect("without a lease a miss is stored with add, and another key's value is never answered", () =>
        Effect.gen(function* () {
          const [a, b] = [uniqueKey("plain-a"), uniqueKey("plain-b")]
          const la = counted(a)
          const lb = counted(b)
          const noLease = { ...options, lease: false } as const
          expect(yield* McClient.getOrSet(a, la.lookup, noLease)).toEqual({ key: a, n: 1 })
          expect(yield* McClient.getOrSet(b, lb.lookup, noLease)).toEqual({ key: b, n: 1 })
          expect(yield* McClient.getOrSet(a, la.lookup, noLease)).toEqual({ key: a, n: 1 })
          expect([la.runs(), lb.runs()]).toEqual([1, 1])
        }),
      )

      it.effect("a value that no longer decodes is a miss: recomputed and stored over it", () =>
        Effect.gen(function* () {
          const garbage = uniqueKey("garbage")
          yield* McClient.set({ key: garbage, value: "not json {" })
          const g = counted(garbage)
          expect(yield* McClient.getOrSet(garbage, g.lookup, options)).toEqual({ key: garbage, n: 1 })
          expect(yield* McClient.getAs(Value, garbage)).toEqual({ key: garbage, n: 1 })

          // An old shape of the value: JSON, but not what the schema says.
          const old = uniqueKey("old-shape")
          yield* McClient.set({ key: old, value: JSON.stringify({ key: old, n: "seven" }) })
          const o = counted(old)
          expect(yield* McClient.getOrSet(old, o.lookup, options)).toEqual({ key: old, n: 1 })
          expect(yield* McClient.getOrSet(old, o.lookup, options)).toEqual({ key: old, n: 1 })
          expect(o.runs()).toBe(1)

          // Written compressed by set: not getOrSet's format, so recomputed.
          const packed = uniqueKey("packed")
          yield* McClient.set({ key: packed, value: JSON.stringify({ key: packed, n: 0, pad: "x".repeat(500) }) }, { compression: 10 })
          expect((yield* McClient.get(packed)).compressionRatio).toBeGreaterThan(1)
          const p = counted(packed)
          expect(yield* McClient.getOrSet(packed, p.lookup, options)).toEqual({ key: packed, n: 1 })
          expect(yield* McClient.getAs(Value, packed)).toEqual({ key: packed, n: 1 })

          // An empty value stored by someone else (no lease): not a placeholder to wait on.
          const empty = uniqueKey("empty")
          yield* McClient.set({ key: empty, value: "" })
          const e = counted(empty)
          expect(yield* McClient.getOrSet(empty, e.lookup, options)).toEqual({ key: empty, n: 1 })
        }),
      )

      it.effect("N concurrent fibers share one read and one lookup, and the in-flight entry goes", () =>
        Effect.gen(function* () {
          const key = uniqueKey("dedup")
          const { lookup, runs } = counted(key, Effect.sleep("30 millis"))
          const values = yield* Effect.all(
            Array.from({ length: 50 }, () => McClient.getOrSet(key, lookup, options)),
            { concurrency: "unbounded" },
          )
          expect(runs()).toBe(1)
          expect(new Set(values.map((v) => JSON.stringify(v)))).toEqual(new Set([JSON.stringify({ key, n: 1 })]))
          expect(readThroughsInFlight()).toBe(0)
          // Other keys at the same time are not shared with it.
          const other = uniqueKey("dedup-other")
          const o = counted(other, Effect.sleep("10 millis"))
          const [x, y] = yield* Effect.all(
            [McClient.getOrSet(key, lookup, options), McClient.getOrSet(other, o.lookup, options)],
            { concurrency: "unbounded" },
          )
          expect(x).toEqual({ key, n: 1 })
          expect(y).toEqual({ key: other, n: 1 })
        }),
      )

      it.effect("a lookup error reaches every waiting caller typed as E, and the lease is released", () =>
        Effect.gen(function* () {
          const key = uniqueKey("lookup-error")
          let runs = 0
          const lookup = Effect.zipRight(
            Effect.sleep("20 millis"),
            Effect.suspend(() => {
              runs++
              return Effect.fail(new LookupFailed({ key }))
            }),
          )
          const exits = yield* Effect.all(
            Array.from({ length: 20 }, () => Effect.exit(McClient.getOrSet(key, lookup, options))),
            { concurrency: "unbounded" },
          )
          expect(runs).toBe(1)
          for (const exit of exits) expect(failureOf(exit)).toEqual(new LookupFailed({ key }))
          yield* expectNoItem(key)
          expect(readThroughsInFlight()).toBe(0)
          // The next call wins a new lease at once.
          const next = counted(key)
          expect(yield* McClient.getOrSet(key, next.lookup, options)).toEqual({ key, n: 1 })
        }),
      )

      it.effect("a lookup that dies or whose value does not encode also releases the lease", () =>
        Effect.gen(function* () {
          const key = uniqueKey("defect")
          const died = yield* Effect.exit(McClient.getOrSet(key, Effect.dieMessage(`boom ${key}`), options))
          expect(failureTag(died)).toBe("Defect")
          yield* expectNoItem(key)
          const bad = yield* Effect.exit(
            McClient.getOrSet(key, Effect.succeed({ key, n: "nan" } as unknown as Value), options),
          )
          expect(failureTag(bad)).toBe("EncodeError")
          yield* expectNoItem(key)
          expect(readThroughsInFlight()).toBe(0)
        }),
      )

      it.effect("interrupting the winner releases the lease; its waiter starts over and computes", () =>
        Effect.gen(function* () {
          const key = uniqueKey("interrupt")
          const started = yield* Deferred.make<void>()
          const owner = yield* Effect.fork(
            McClient.getOrSet(key, Effect.zipRight(Deferred.succeed(started, undefined), Effect.never), options),
          )
          yield* Deferred.await(started)
          const w = counted(key)
          const waiter = yield* Effect.fork(McClient.getOrSet(key, w.lookup, options))
          yield* Effect.yieldNow()
          yield* Fiber.interrupt(owner)
          expect(yield* Fiber.join(waiter)).toEqual({ key, n: 1 })
          expect(w.runs()).toBe(1)
          expect(readThroughsInFlight()).toBe(0)

          // Interrupted with no one waiting: the placeholder goes, no entry is left.
          const lone = uniqueKey("interrupt-lone")
          const began = yield* Deferred.make<void>()
          const fiber = yield* Effect.fork(
            McClient.getOrSet(lone, Effect.zipRight(Deferred.succeed(began, undefined), Effect.never), options),
          )
          yield* Deferred.await(began)
          yield* Fiber.interrupt(fiber)
          yield* expectNoItem(lone)
          expect(readThroughsInFlight()).toBe(0)
        }),
      )

      it.effect("interrupting a waiter leaves the owner and the other waiters alone", () =>
        Effect.gen(function* () {
          const key = uniqueKey("interrupt-waiter")
          const { lookup, runs } = counted(key, Effect.sleep("40 millis"))
          const owner = yield* Effect.fork(McClient.getOrSet(key, lookup, options))
          yield* Effect.sleep("5 millis")
          const waiter = yield* Effect.fork(McClient.getOrSet(key, lookup, options))
          const other = yield* Effect.fork(McClient.getOrSet(key, lookup, options))
          yield* Effect.sleep("5 millis")
          yield* Fiber.interrupt(waiter)
          expect(yield* Fiber.join(owner)).toEqual({ key, n: 1 })
          expect(yield* Fiber.join(other)).toEqual({ key, n: 1 })
          expect(runs()).toBe(1)
          expect(readThroughsInFlight()).toBe(0)
        }),
      )

      it.effect("serveStale: after del(invalidate) the first reader refreshes, the others get the stale value", () =>
        Effect.gen(function* () {
          const key = uniqueKey("stale")
          const { lookup, runs } = counted(key)
          yield* McClient.getOrSet(key, lookup, options)
          yield* McClient.del(key, { invalidate: 30 })
          // X + W: this reader runs the lookup and gets the fresh value.
          expect(yield* McClient.getOrSet(key, lookup, { ...options, serveStale: true })).toEqual({ key, n: 2 })
          expect((yield* McClient.get(key)).stale).toBe(false)

          yield* McClient.del(key, { invalidate: 30 })
          // Another process takes the refresh (its read gets X + W) ...
          expect((yield* McClient.get(key)).won).toBe(true)
          // ... so this one sees X + Z: the stale value, and no lookup.
          expect(yield* McClient.getOrSet(key, lookup, { ...options, serveStale: true })).toEqual({ key, n: 2 })
          expect(runs()).toBe(2)
        }),
      )

      it.effect("a stale item's refresh that fails invalidates it again: the next reader takes the refresh over", () =>
        Effect.gen(function* () {
          const key = uniqueKey("stale-fail")
          yield* McClient.setAs(Value, { key, value: { key, n: 1 } })
          yield* McClient.del(key, { invalidate: 30 })
          const failed = yield* Effect.exit(
            McClient.getOrSet(key, Effect.fail(new LookupFailed({ key })), { ...options, serveStale: true }),
          )
          expect(failureOf(failed)).toEqual(new LookupFailed({ key }))
          // Still the stale value, and its token is free again (not Z): the next reader wins it.
          const item = yield* McClient.get(key)
          expect([item.stale, item.won, item.winSent]).toEqual([true, true, false])
          expect(JSON.parse(Buffer.from(item.value).toString())).toEqual({ key, n: 1 })
        }),
      )

      it.effect("without serveStale a stale item's readers wait for the refresh, then compute it themselves", () =>
        Effect.gen(function* () {
          const key = uniqueKey("stale-wait")
          yield* McClient.setAs(Value, { key, value: { key, n: 1 } })
          yield* McClient.del(key, { invalidate: 30 })
          expect((yield* McClient.get(key)).won).toBe(true)
          const { lookup, runs } = counted(key)
          const fast = { ...options, lease: { retry: Schedule.spaced("10 millis").pipe(Schedule.compose(Schedule.recurs(30))) } }
          // The refresher lands a value while this one waits: it is answered, the lookup never runs.
          const waiting = yield* Effect.fork(McClient.getOrSet(key, lookup, fast))
          yield* Effect.sleep("50 millis")
          yield* McClient.setAs(Value, { key, value: { key, n: 10 } })
          expect(yield* Fiber.join(waiting)).toEqual({ key, n: 10 })
          expect(runs()).toBe(0)

          // The refresher never lands one: when the schedule ends, the caller computes and stores.
          yield* McClient.del(key, { invalidate: 30 })
          expect((yield* McClient.get(key)).won).toBe(true)
          const short = { ...options, lease: { retry: Schedule.spaced("5 millis").pipe(Schedule.compose(Schedule.recurs(3))) } }
          expect(yield* McClient.getOrSet(key, lookup, short)).toEqual({ key, n: 1 })
          expect(yield* McClient.getAs(Value, key)).toEqual({ key, n: 1 })
        }),
      )

      it.effect("bad input is a typed error and runs nothing", () =>
        Effect.gen(function* () {
          const key = uniqueKey("bad")
          const { lookup, runs } = counted(key)
          const call = (k: unknown, l: unknown, o: unknown) =>
            Effect.exit(McClient.getOrSet(k as string, l as typeof lookup, o as typeof options))
          expect(failureTag(yield* call(42, lookup, options))).toBe("MalformedKey")
          expect(failureTag(yield* call("", lookup, options))).toBe("MalformedKey")
          const reasons: Array<string> = []
          for (const [l, o] of [
            [() => 1, options],
            [lookup, undefined],
            [lookup, { expiration: 60 }],
            [lookup, { schema: Value }],
            [lookup, { schema: Value, expiration: -1 }],
            [lookup, { schema: Value, expiration: 1.5 }],
            [lookup, { ...options, lease: { ttl: 0 } }],
            [lookup, { ...options, lease: { ttl: Infinity } }],
            [lookup, { ...options, lease: { retry: 100 } }],
            [lookup, { ...options, lease: true }],
            [lookup, { ...options, earlyRecache: "soon" }],
            [lookup, { ...options, serveStale: "yes" }],
            [lookup, { ...options, onCacheError: "ignore" }],
            [lookup, { ...options, timeout: -5 }],
            [lookup, { ...options, codec: "xml" }],
            [lookup, { get schema() { throw new Error("hostile getter") } }],
          ] as const) {
            const exit = yield* call(key, l, o)
            const error = failureOf(exit)
            expect(error).toBeInstanceOf(ClientError)
            reasons.push((error as ClientError).reason)
          }
          expect(reasons.every((r) => r.length > 10)).toBe(true)
          expect(reasons.some((r) => r.includes("hostile getter"))).toBe(true)
          expect(runs()).toBe(0)
          yield* expectNoItem(key)
        }),
      )
    })

    it.live("early recache with real time: served the current value, refreshed in the background", () =>
      Effect.gen(function* () {
        const key = uniqueKey("recache")
        const { lookup, runs } = counted(key)
        const o = { schema: Value, expiration: 4, earlyRecache: 3 }
        expect(yield* McClient.getOrSet(key, lookup, o)).toEqual({ key, n: 1 })
        expect(yield* McClient.getOrSet(key, lookup, o)).toEqual({ key, n: 1 })
        expect(runs()).toBe(1)
        // Below the window (whole seconds: 2 or 3 ticks later, 1-2 s remain): one reader wins the token.
        yield* Effect.sleep("2100 millis")
        expect(yield* McClient.getOrSet(key, lookup, o)).toEqual({ key, n: 1 })
        yield* Effect.sleep("50 millis")
        expect(runs()).toBe(2)
        expect(yield* McClient.getOrSet(key, lookup, o)).toEqual({ key, n: 2 })
        expect((yield* McClient.get(key, { ttl: true })).ttl).toBeGreaterThanOrEqual(3)
      }).pipe(Effect.provide(target.layer())),
    )
  })
}

describe("cache outages (TCP)", () => {
  it.live("onCacheError \"lookup\" (default): a dead server runs the lookup and logs a warning", () =>
    Effect.gen(function* () {
      const server = yield* Effect.promise(() => refusedAddress())
      const key = uniqueKey("outage")
      const logs: Array<{ level: string; message: unknown }> = []
      const logger = Logger.make(({ logLevel, message }) => void logs.push({ level: logLevel.label, message }))
      const { lookup, runs } = counted(key)
      const value = yield* McClient.getOrSet(key, lookup, options).pipe(
        Effect.provide(Layer.merge(McClient.layer({ servers: [server], retry: Schedule.stop }), Logger.replace(Logger.defaultLogger, logger))),
      )
      expect(value).toEqual({ key, n: 1 })
      expect(runs()).toBe(1)
      const warning = logs.find((l) => l.level === "WARN")
      expect(warning).toBeDefined()
      const parts = warning!.message as ReadonlyArray<unknown>
      expect(String(parts[0])).toContain("going on without the cache")
      expect((parts[1] as { _tag: string })._tag).toBe("ConnectionError")
    }),
  )

  it.live("onCacheError \"fail\": the McError reaches the caller and the lookup does not run", () =>
    Effect.gen(function* () {
      const server = yield* Effect.promise(() => refusedAddress())
      const key = uniqueKey("outage-fail")
      const { lookup, runs } = counted(key)
      const exit = yield* Effect.exit(
        McClient.getOrSet(key, lookup, { ...options, onCacheError: "fail" }).pipe(
          Effect.provide(McClient.layer({ servers: [server], retry: Schedule.stop })),
        ),
      )
      expect(failureTag(exit)).toBe("ConnectionError")
      expect(runs()).toBe(0)
    }),
  )
})

/** A tracer that records each span's name, parent and events. */
const recordingTracer = () => {
  interface Recorded {
    readonly name: string
    readonly spanId: string
    readonly parent: Option.Option<Tracer.AnySpan>
    readonly events: Array<string>
  }
  const spans: Array<Recorded> = []
  let next = 0
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const recorded: Recorded = { name, spanId: `s${next++}`, parent, events: [] }
      spans.push(recorded)
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: recorded.spanId,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes: new Map(),
        links,
        sampled: true,
        kind,
        end: () => {},
        attribute: () => {},
        event: (event) => void recorded.events.push(event),
        addLinks: () => {},
      }
      return span
    },
    context: (f) => f(),
  })
  const parentName = (s: Recorded) => {
    const p = Option.getOrUndefined(s.parent)
    return p === undefined || p._tag !== "Span" ? undefined : p.name
  }
  return { spans, tracer, parentName }
}

describe("tracing", () => {
  it.live("getOrSet is one span; its requests and its lookup are children; lease waits are events", () => {
    const t = recordingTracer()
    return Effect.gen(function* () {
      const key = uniqueKey("traced")
      const lookup = Effect.succeed({ key, n: 1 }).pipe(Effect.withSpan("lookup"))
      yield* McClient.getOrSet(key, lookup, options).pipe(Effect.withSpan("caller"))
      const names = t.spans.map((s) => s.name)
      expect(names).toEqual(["caller", "memcached getOrSet", "memcached get", "lookup", "memcached compareAndSwap"])
      for (const s of t.spans.slice(2)) expect(t.parentName(s)).toBe("memcached getOrSet")
      expect(t.parentName(t.spans[1]!)).toBe("caller")

      // A loser's waits show as events of its getOrSet span.
      yield* McClient.del(key, { invalidate: 30 })
      yield* McClient.get(key)
      const short = { ...options, lease: { retry: Schedule.recurs(2) } }
      yield* McClient.getOrSet(key, lookup, short)
      const last = t.spans.filter((s) => s.name === "memcached getOrSet").at(-1)!
      expect(last.events).toEqual(["memcached lease wait", "memcached lease wait", "memcached lease wait", "memcached lease wait ended"])

      // A call that waited on another in-process call says so, and makes no requests of its own.
      const other = uniqueKey("traced-shared")
      const before = t.spans.length
      const slow = Effect.as(Effect.sleep("10 millis"), { key: other, n: 1 })
      yield* Effect.all([McClient.getOrSet(other, slow, options), McClient.getOrSet(other, slow, options)], {
        concurrency: "unbounded",
      })
      const calls = t.spans.slice(before).filter((s) => s.name === "memcached getOrSet")
      expect(calls.map((s) => s.events)).toEqual([[], ["memcached getOrSet shared"]])
      expect(t.spans.slice(before).map((s) => s.name).sort()).toEqual(
        ["memcached compareAndSwap", "memcached get", "memcached getOrSet", "memcached getOrSet"].sort(),
      )
    }).pipe(Effect.provide(McClient.layerMemory({ tracing: true })), Effect.withTracer(t.tracer))
  })
})
