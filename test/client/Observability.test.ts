/**
 * Tracing, metrics, status and stats (issue 11): spans collected with a test `Tracer`, metrics
 * read back from Effect's registry, status and stats against real memcached and the memory layer.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Metric, MetricState, Option, Schedule, Tracer } from "effect"
import { inject } from "vitest"
import { McClient, type McClientOptions } from "../../src/index.js"
import { failureTag } from "../support/exits.js"
import { uniqueKey } from "../support/layers.js"
import { type Fault, normal, type ScriptedRequest, scriptedServer } from "../support/scriptedServer.js"

class TestSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId = `span${Math.random().toString(36).slice(2)}`
  readonly traceId = "trace"
  readonly sampled = true
  readonly attributes = new Map<string, unknown>()
  readonly events: Array<{ readonly name: string; readonly attributes: Record<string, unknown> | undefined }> = []
  links: ReadonlyArray<Tracer.SpanLink>
  status: Tracer.SpanStatus
  exit: Exit.Exit<unknown, unknown> | undefined = undefined
  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: import("effect").Context.Context<never>,
    links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind,
  ) {
    this.links = links
    this.status = { _tag: "Started", startTime }
  }
  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>) {
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
    this.exit = exit
  }
  attribute(key: string, value: unknown) {
    this.attributes.set(key, value)
  }
  event(name: string, _startTime: bigint, attributes?: Record<string, unknown>) {
    this.events.push({ name, attributes })
  }
  addLinks(links: ReadonlyArray<Tracer.SpanLink>) {
    this.links = [...this.links, ...links]
  }
}

const testTracer = () => {
  const spans: Array<TestSpan> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const span = new TestSpan(name, parent, context, links, startTime, kind)
      spans.push(span)
      return span
    },
    context: (f) => f(),
  })
  const ours = () => spans.filter((s) => s.name.startsWith("memcached "))
  return { spans, ours, tracer }
}

const parentOf = (span: TestSpan) => Option.getOrUndefined(span.parent) as TestSpan | undefined

/** Runs `body` with a fresh client of `layer` and a test tracer, inside a "caller" span. */
const traced = <A, E>(
  layer: Layer.Layer<McClient, unknown>,
  body: Effect.Effect<A, E, McClient>,
) => {
  const t = testTracer()
  return body.pipe(
    Effect.withSpan("caller"),
    Effect.provide(layer),
    Effect.withTracer(t.tracer),
    Effect.exit,
    Effect.map((exit) => ({ exit, ...t })),
  )
}

const counterValue = (metric: Metric.Metric.Counter<number>, op: string) =>
  Effect.map(Metric.value(Metric.tagged(metric, "db.operation.name", op)), (s) => s.count)

const memory = (options: Omit<McClientOptions, "servers"> = {}) => McClient.layerMemory(options)
const tcp = (options: Omit<McClientOptions, "servers"> = {}) => McClient.layer({ ...options, servers: [inject("memcached")] })

describe("tracing", () => {
  it.effect("a get is a client span named `memcached get`, child of the caller's span, with OTel attributes", () =>
    Effect.gen(function* () {
      const key = uniqueKey("trace-get")
      const { exit, ours, spans } = yield* traced(
        memory({ tracing: true }),
        Effect.zipRight(McClient.set({ key, value: "v" }), McClient.get(key)),
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      const [set, get] = ours()
      expect(set!.name).toBe("memcached set")
      expect(get!.name).toBe("memcached get")
      expect(get!.kind).toBe("client")
      expect(parentOf(get!)).toBe(spans.find((s) => s.name === "caller"))
      expect(get!.attributes.get("db.system.name")).toBe("memcached")
      expect(get!.attributes.get("db.operation.name")).toBe("get")
      expect(get!.attributes.get("server.address")).toBe("memory")
      expect(get!.attributes.get("db.memcached.hits")).toBe(1)
      expect(get!.attributes.get("db.memcached.misses")).toBe(0)
      expect(get!.attributes.has("db.memcached.key")).toBe(false)
      expect(get!.attributes.has("error.type")).toBe(false)
      expect(Exit.isSuccess(get!.exit!)).toBe(true)
    }),
  )

  it.effect("a miss and NotStored are outcomes: the span succeeds, the caller still gets the error", () =>
    Effect.gen(function* () {
      const key = uniqueKey("trace-miss")
      const { exit, ours } = yield* traced(
        memory({ tracing: true }),
        Effect.gen(function* () {
          expect(failureTag(yield* Effect.exit(McClient.get(key)))).toBe("CacheMiss")
          expect(failureTag(yield* Effect.exit(McClient.replace({ key, value: "x" })))).toBe("NotStored")
        }),
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      const [get, replace] = ours()
      expect(Exit.isSuccess(get!.exit!)).toBe(true)
      expect(get!.attributes.get("db.memcached.outcome")).toBe("miss")
      expect(get!.attributes.get("db.memcached.misses")).toBe(1)
      expect(get!.attributes.has("error.type")).toBe(false)
      expect(Exit.isSuccess(replace!.exit!)).toBe(true)
      expect(replace!.attributes.get("db.memcached.outcome")).toBe("not_stored")
    }),
  )

  it.effect("a failure marks the span failed, with error.type", () =>
    Effect.gen(function* () {
      const key = uniqueKey("trace-fail")
      const { exit, ours } = yield* traced(
        memory({ tracing: true }),
        Effect.zipRight(McClient.set({ key, value: "not a number" }), McClient.inc(key, 1)),
      )
      expect(failureTag(exit as Exit.Exit<unknown, { readonly _tag: string }>)).toBe("BadIncrDec")
      const inc = ours().find((s) => s.name === "memcached inc")!
      expect(Exit.isFailure(inc.exit!)).toBe(true)
      expect(inc.attributes.get("error.type")).toBe("BadIncrDec")
    }),
  )

  it.effect("keys are attributes only with keys: true; user attributes on every span", () =>
    Effect.gen(function* () {
      const key = uniqueKey("trace-keys")
      const off = yield* traced(memory({ tracing: { attributes: { "service.tier": "gold" } } }), Effect.exit(McClient.get(key)))
      expect(off.ours()[0]!.attributes.has("db.memcached.key")).toBe(false)
      expect(off.ours()[0]!.attributes.get("service.tier")).toBe("gold")
      const on = yield* traced(
        memory({ tracing: { keys: true } }),
        Effect.zipRight(Effect.exit(McClient.get(key)), McClient.getMulti([key, `${key}:2`, key])),
      )
      const [get, multi] = on.ours()
      expect(get!.attributes.get("db.memcached.key")).toBe(key)
      expect(multi!.name).toBe("memcached getMulti")
      expect(multi!.attributes.get("db.operation.batch.size")).toBe(2)
      expect(multi!.attributes.get("db.memcached.key")).toEqual([key, `${key}:2`])
      expect(multi!.attributes.get("db.memcached.misses")).toBe(2)
    }),
  )

  it.effect("namespace lookups and min-uses counters are child spans of the operation", () =>
    Effect.gen(function* () {
      const key = uniqueKey("trace-ns")
      const { exit, ours } = yield* traced(
        memory({ tracing: true }),
        Effect.zipRight(McClient.set({ key, value: "v" }, { namespace: "tenant" }), McClient.set({ key, value: "v" }, { minUses: 2 })),
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      const spans = ours()
      const [nsSet, minSet] = spans.filter((s) => s.name === "memcached set")
      const ns = spans.find((s) => s.name === "memcached namespace")!
      const uses = spans.find((s) => s.name === "memcached minUses")!
      expect(parentOf(ns)).toBe(nsSet)
      expect(parentOf(uses)).toBe(minSet)
      expect(ns.attributes.get("server.address")).toBe("memory")
    }),
  )

  it.effect("nothing is emitted with tracing off, nor with the tracer disabled", () =>
    Effect.gen(function* () {
      const key = uniqueKey("trace-off")
      const off = yield* traced(memory(), Effect.exit(McClient.get(key)))
      expect(off.ours()).toEqual([])
      const disabled = yield* traced(
        memory({ tracing: true }),
        Effect.exit(McClient.set({ key, value: "v" }, { namespace: "n" }).pipe(Effect.withTracerEnabled(false))),
      )
      expect(disabled.ours()).toEqual([])
    }),
  )

  it.effect("over TCP: server.address and server.port of the server that answered", () =>
    Effect.gen(function* () {
      const key = uniqueKey("trace-tcp")
      const [host, port] = inject("memcached").split(":")
      const { exit, ours } = yield* traced(
        tcp({ tracing: true }),
        Effect.zipRight(McClient.set({ key, value: "v" }), McClient.getMulti([key, `${key}:miss`])),
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      const [set, multi] = ours()
      expect(set!.attributes.get("server.address")).toBe(host)
      expect(set!.attributes.get("server.port")).toBe(Number(port))
      expect(multi!.attributes.get("server.address")).toBe(host)
      expect(multi!.attributes.get("db.memcached.hits")).toBe(1)
      expect(multi!.attributes.get("db.memcached.misses")).toBe(1)
    }),
  )

  it.effect("an invalid tracing option fails the layer", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(Layer.build(memory({ tracing: { keys: "yes" } as never })).pipe(Effect.scoped))
      expect(failureTag(exit)).toBe("InvalidOption")
    }),
  )
})

describe("metrics", () => {
  it.effect("operation durations, hits and misses, tagged by operation", () =>
    Effect.gen(function* () {
      const key = uniqueKey("metrics")
      const { hits, misses, operationDuration } = yield* Effect.promise(() => import("../../src/client/Metrics.js"))
      const hitsBefore = yield* counterValue(hits, "getMulti")
      const missesBefore = yield* counterValue(misses, "get")
      const histogram = Metric.tagged(Metric.tagged(operationDuration, "db.operation.name", "get"), "server.address", "memory")
      const countBefore = (yield* Metric.value(histogram)).count
      yield* Effect.gen(function* () {
        yield* McClient.set({ key, value: "v" })
        yield* Effect.exit(McClient.get(`${key}:miss`))
        yield* McClient.get(key)
        yield* McClient.getMulti([key, `${key}:a`, `${key}:b`])
      }).pipe(Effect.provide(memory({ metrics: true })))
      expect((yield* counterValue(hits, "getMulti")) - hitsBefore).toBe(1)
      expect((yield* counterValue(misses, "get")) - missesBefore).toBe(1)
      expect((yield* Metric.value(histogram)).count - countBefore).toBe(2)
      const names = new Set(Metric.unsafeSnapshot().map((p) => p.metricKey.name))
      expect(names.has("db.client.operation.duration")).toBe(true)
    }),
  )

  it.effect("nothing is recorded with metrics off", () =>
    Effect.gen(function* () {
      const { misses } = yield* Effect.promise(() => import("../../src/client/Metrics.js"))
      const before = yield* counterValue(misses, "touch")
      yield* Effect.exit(McClient.touch(uniqueKey("nometrics"), 10)).pipe(Effect.provide(memory()))
      expect(yield* counterValue(misses, "touch")).toBe(before)
    }),
  )

  it.live("over TCP: failed connections, servers marked down, and per-server gauges", () =>
    Effect.gen(function* () {
      const M = yield* Effect.promise(() => import("../../src/client/Metrics.js"))
      const up = inject("memcached")
      const dead = "127.0.0.1:1"
      const downBefore = (yield* Metric.value(Metric.tagged(M.serversDown, "server.address", dead))).count
      yield* Effect.gen(function* () {
        const mc = yield* McClient
        yield* mc.set({ key: uniqueKey("gauge"), value: "v" })
        // ketama puts some keys on the dead server: its first connection fails, it is marked down
        yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => uniqueKey(`k${i}`)), (k) => Effect.exit(mc.get(k)))
        yield* Effect.sleep("1200 millis")
        const status = yield* mc.status
        const deadStatus = status.find((s) => s.address === dead)!
        expect(deadStatus.state).toBe("down")
        expect(deadStatus.lastError?._tag).toBe("ConnectionError")
      }).pipe(Effect.provide(McClient.layer({ servers: [up, dead], metrics: true })), Effect.scoped)
      const snapshot = Metric.unsafeSnapshot()
      const gauge = snapshot.find(
        (p) => p.metricKey.name === "db.client.connection.count" && p.metricKey.tags.some((t) => t.value === up),
      )
      expect(gauge).toBeDefined()
      expect(MetricState.isGaugeState(gauge!.metricState) && Number(gauge!.metricState.value) >= 1).toBe(true)
      expect((yield* Metric.value(Metric.tagged(M.serversDown, "server.address", dead))).count - downBefore).toBe(1)
      const failed = (yield* Metric.value(Metric.tagged(Metric.tagged(M.connectionErrors, "server.address", dead), "error.type", "ConnectionError"))).count
      expect(failed).toBeGreaterThanOrEqual(1)
    }),
  )
})

describe("status and stats", () => {
  it.effect("memory: one server, and the engine's counts", () =>
    Effect.gen(function* () {
      const key = uniqueKey("stats")
      yield* McClient.set({ key, value: "12345" })
      yield* McClient.get(key)
      yield* Effect.exit(McClient.get(`${key}:miss`))
      const [status] = yield* McClient.status
      expect(status!.address).toBe("memory")
      expect(status!.state).toBe("up")
      const stats = yield* McClient.stats("memory")
      expect(stats.get("curr_items")).toBe("1")
      expect(stats.get("cmd_get")).toBe("2")
      expect(stats.get("get_hits")).toBe("1")
      expect(stats.get("get_misses")).toBe("1")
      expect(Number(stats.get("bytes"))).toBeGreaterThan(5)
      const all = yield* McClient.stats()
      expect(Array.from(all.keys())).toEqual(["memory"])
      expect(failureTag(yield* Effect.exit(McClient.stats("elsewhere:11211")))).toBe("ClientError")
    }).pipe(Effect.provide(memory())),
  )

  it.live("memcached: status after traffic, and the STAT lines of one server or each", () =>
    Effect.gen(function* () {
      const server = inject("memcached")
      yield* McClient.get(uniqueKey("status")).pipe(Effect.exit)
      const [status] = yield* McClient.status
      expect(status!.address).toBe(server)
      expect(status!.state).toBe("up")
      expect(status!.version).toMatch(/^1\.6\./)
      expect(status!.connections).toBeGreaterThanOrEqual(1)
      expect(status!.inFlight).toBe(0)
      expect(status!.lastError).toBeUndefined()
      const stats = yield* McClient.stats(server)
      expect(Number(stats.get("pid"))).toBeGreaterThan(0)
      expect(stats.get("version")).toBe(status!.version)
      const all = yield* McClient.stats()
      expect(all.get(server)?.has("curr_items")).toBe(true)
      expect(failureTag(yield* Effect.exit(McClient.stats("127.0.0.1:2")))).toBe("ClientError")
    }).pipe(Effect.provide(tcp())),
  )
})

describe("retries and interruptions", () => {
  const serverFor = (script: (r: ScriptedRequest) => Fault) =>
    Effect.acquireRelease(
      Effect.promise(() => scriptedServer({ script })),
      (s) => Effect.promise(() => s.close()),
    )

  it.live("a retried get: one `memcached retry` event on its span, and the retries counter", () =>
    Effect.gen(function* () {
      const M = yield* Effect.promise(() => import("../../src/client/Metrics.js"))
      // The first get's connection dies before its reply; the retry goes out on a new one.
      let gets = 0
      const server = yield* serverFor((r) => (r.command === "mg" && gets++ === 0 ? { kind: "close" } : normal))
      const retries = Metric.tagged(Metric.tagged(M.retries, "server.address", server.address), "error.type", "ConnectionError")
      const before = (yield* Metric.value(retries)).count
      const { exit, ours } = yield* traced(
        McClient.layer({ servers: [server.address], tracing: true, metrics: true, retry: Schedule.recurs(2) }),
        Effect.zipRight(McClient.set({ key: "k", value: "k" }), McClient.get("k")),
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      const get = ours().find((s) => s.name === "memcached get")
      expect(get!.events.map((e) => e.name)).toEqual(["memcached retry"])
      expect(get!.events[0]!.attributes).toEqual({ "error.type": "ConnectionError" })
      expect((yield* Metric.value(retries)).count - before).toBe(1)
    }).pipe(Effect.scoped),
  )

  it.live("an interrupted get is measured under error.type Interrupted, and its span says so", () =>
    Effect.gen(function* () {
      const M = yield* Effect.promise(() => import("../../src/client/Metrics.js"))
      const server = yield* serverFor((r) => (r.command === "mg" ? { kind: "delay", millis: 2000 } : normal))
      // No server answered it: the duration has no server.address.
      const histogram = Metric.tagged(Metric.tagged(M.operationDuration, "db.operation.name", "get"), "error.type", "Interrupted")
      const before = (yield* Metric.value(histogram)).count
      const { exit, ours } = yield* traced(
        McClient.layer({ servers: [server.address], tracing: true, metrics: true, timeout: "5 seconds" }),
        Effect.gen(function* () {
          const fiber = yield* Effect.fork(McClient.get("slow"))
          yield* Effect.sleep("50 millis")
          yield* Fiber.interrupt(fiber)
        }),
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      const [get] = ours()
      expect(get!.exit !== undefined && Exit.isInterrupted(get!.exit)).toBe(true)
      expect(get!.attributes.get("db.memcached.outcome")).toBe("interrupted")
      expect(get!.attributes.has("error.type")).toBe(false)
      const after = yield* Metric.value(histogram)
      expect(after.count - before).toBe(1)
    }).pipe(Effect.scoped),
  )
})
