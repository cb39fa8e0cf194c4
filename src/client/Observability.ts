/**
 * Tracing and metrics: a thin wrapper around the client's operations and its transport, chosen
 * once when the client is made. With both off the client is not wrapped at all, so the hot path
 * is the same code as without this module.
 *
 * Each operation call gets a `Call` record, found by the transport wrapper through the calling
 * fiber: the transport tells it which server answered (the decode step sees it) and how many keys
 * a getMulti sent, and the call, when it ends, sets the span's attributes and updates the metrics.
 * Requests of the client's own counters (namespace versions, min-uses) get child spans instead.
 */
import { Cause, Clock, Context, DefaultServices, Effect, Exit, FiberRef, Option, type Tracer } from "effect"
import type { McError } from "../Errors.js"
import type { McClientService, PartialItems } from "./Client.js"
import { recordOperation } from "./Metrics.js"
import { internalCounterOf } from "./Namespaces.js"
import type { ReadThroughOps } from "./ReadThrough.js"
import type { Transport } from "./Transport.js"

export interface TracingConfig {
  /** keys as `db.memcached.key` (they may carry personal data) */
  readonly keys: boolean
  /** added to every span */
  readonly attributes: Readonly<Record<string, unknown>>
}

export interface ObserveConfig {
  readonly tracing: TracingConfig | undefined
  readonly metrics: boolean
}

/** One operation call in flight. */
class Call {
  server: string | undefined = undefined
  manyServers = false
  /** getMulti: the distinct keys sent */
  batch: ReadonlyArray<string> | undefined = undefined
  span: Tracer.Span | undefined = undefined
  clock: Clock.Clock | undefined = undefined
  readonly onRetry = (error: McError): void => {
    this.span?.event("memcached retry", this.clock!.unsafeCurrentTimeNanos(), { "error.type": error._tag })
  }
  noteServer(server: string): void {
    if (this.server === undefined) this.server = server
    else if (this.server !== server) this.manyServers = true
  }
  /** The server that answered, when one did (a getMulti across servers has none). */
  get answeredBy(): string | undefined {
    return this.manyServers ? undefined : this.server
  }
}

// The call each fiber is running (an operation runs on its caller's fiber).
const calls = new WeakMap<object, Call>()

const SYSTEM = { "db.system.name": "memcached" } as const

/** "host:port" into OpenTelemetry's server.address / server.port; a unix socket path has no port. */
const setServer = (span: Tracer.Span, server: string): void => {
  const colon = server.startsWith("/") ? -1 : server.lastIndexOf(":")
  if (colon < 0) {
    span.attribute("server.address", server)
    return
  }
  span.attribute("server.address", server.slice(0, colon).replace(/^\[(.*)\]$/, "$1"))
  const port = Number(server.slice(colon + 1))
  if (Number.isInteger(port)) span.attribute("server.port", port)
}

/** Answers of the server that are an operation's outcome, not a failure of it. */
const OUTCOMES: Readonly<Record<string, string>> = { CacheMiss: "miss", NotStored: "not_stored", CASConflict: "exists" }

// The error type of an interrupted call: its duration is measured under it, and its span says so
// as an outcome (a caller that gave up, e.g. a race's loser, is not the cache failing).
const INTERRUPTED = "Interrupted"

const errorTypeOf = (cause: Cause.Cause<unknown>): string | undefined => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const e = failure.value as { readonly _tag?: unknown }
    return typeof e === "object" && e !== null && typeof e._tag === "string" ? e._tag : "_OTHER"
  }
  return Cause.isInterruptedOnly(cause) ? INTERRUPTED : "_OTHER"
}

/** The transport as seen by observed calls. */
export const observeTransport = (base: Transport, config: ObserveConfig): Transport => {
  const tracing = config.tracing
  return {
    ...base,
    request: (routingKey, request, decode, options) => {
      const counter = internalCounterOf(routingKey)
      if (counter !== undefined) {
        if (tracing === undefined) return base.request(routingKey, request, decode, options)
        // A namespace lookup or min-uses count: its own span, under the operation's.
        const name = counter === "namespace" ? "memcached namespace" : "memcached minUses"
        return Effect.withFiberRuntime((fiber) => {
          const parent = calls.get(fiber)?.span
          const attributes = { ...tracing.attributes, ...SYSTEM, "db.operation.name": counter }
          const spanOptions: Tracer.SpanOptions = { kind: "client", captureStackTrace: false, attributes }
          return Effect.useSpan(name, parent === undefined ? spanOptions : { ...spanOptions, parent }, (span) => {
            if (tracing.keys) span.attribute("db.memcached.key", routingKey)
            return base
              .request(
                routingKey,
                request,
                (reply, server, key) => {
                  setServer(span, server)
                  return decode(reply, server, key)
                },
                options,
              )
              .pipe(Effect.tapErrorCause((cause) => Effect.sync(() => span.attribute("error.type", errorTypeOf(cause) ?? "_OTHER"))))
          })
        })
      }
      return Effect.withFiberRuntime((fiber) => {
        const call = calls.get(fiber)
        if (call === undefined) return base.request(routingKey, request, decode, options)
        return base.request(
          routingKey,
          request,
          (reply, server, key) => {
            call.noteServer(server)
            return decode(reply, server, key)
          },
          call.span === undefined ? options : { ...options, onRetry: call.onRetry },
        )
      })
    },
    getMany: (routingKeys, wires, flags, options) =>
      Effect.withFiberRuntime((fiber) => {
        const call = calls.get(fiber)
        if (call === undefined) return base.getMany(routingKeys, wires, flags, options)
        call.batch = routingKeys
        return Effect.map(
          base.getMany(routingKeys, wires, flags, call.span === undefined ? options : { ...options, onRetry: call.onRetry }),
          (result) => {
            const { outcomes, servers } = result
            for (let i = 0; i < outcomes.length; i++) {
              const o = outcomes[i]
              if (o === undefined) continue
              const server = servers[i] ?? ("server" in o ? o.server : undefined)
              if (typeof server === "string" && server !== "") call.noteServer(server)
            }
            return result
          },
        )
      }),
  }
}

type Op = (...args: ReadonlyArray<any>) => Effect.Effect<any, any>

/** How an operation reads its key from its arguments (only with `keys: true`). */
const keyArg = (index: number, inItem: boolean) => (args: ReadonlyArray<unknown>): unknown => {
  const a = args[index]
  if (!inItem) return typeof a === "string" ? a : undefined
  try {
    const key = typeof a === "object" && a !== null ? (a as { readonly key?: unknown }).key : undefined
    return typeof key === "string" ? key : undefined
  } catch {
    return undefined
  }
}

const OPERATIONS: ReadonlyArray<readonly [keyof McClientService, (args: ReadonlyArray<unknown>) => unknown, boolean]> = [
  // [operation, its key, whether it reads]
  ["get", keyArg(0, false), true],
  ["getMulti", () => undefined, true],
  ["set", keyArg(0, true), false],
  ["add", keyArg(0, true), false],
  ["replace", keyArg(0, true), false],
  ["append", keyArg(0, true), false],
  ["prepend", keyArg(0, true), false],
  ["compareAndSwap", keyArg(0, true), false],
  ["del", keyArg(0, false), false],
  ["inc", keyArg(0, false), false],
  ["dec", keyArg(0, false), false],
  ["touch", keyArg(0, false), false],
  ["purgeNamespace", () => undefined, false],
  ["getAs", keyArg(1, false), true],
  ["setAs", keyArg(1, true), false],
]

/** Hits and misses of a finished read; getMulti's from its map (and partial's failures). */
const readCounts = (op: string, call: Call, exit: Exit.Exit<unknown, unknown>): readonly [number, number, number] => {
  if (op !== "getMulti") {
    if (Exit.isSuccess(exit)) return [1, 0, 0]
    return errorTypeOf(exit.cause) === "CacheMiss" ? [0, 1, 0] : [0, 0, 0]
  }
  if (!Exit.isSuccess(exit)) return [0, 0, 0]
  const value = exit.value as ReadonlyMap<string, unknown> | PartialItems
  const found = value instanceof Map ? value.size : (value as PartialItems).items.size
  let failed = 0
  let timedOut = 0
  if (!(value instanceof Map)) {
    for (const e of (value as PartialItems).failed.values()) {
      failed++
      if (e._tag === "Timeout") timedOut++
    }
  }
  const batch = call.batch?.length ?? found + failed
  return [found, Math.max(0, batch - found - failed), timedOut]
}

/**
 * Wraps one operation in a span (tracing) and measures it (metrics). With `parent`, the operation
 * runs under its span, so that the spans it makes (getOrSet's requests, its lookup's) are children.
 */
const makeWrap = (config: ObserveConfig) => {
  const { tracing, metrics } = config

  const finish = (op: string, reads: boolean, call: Call, exit: Exit.Exit<unknown, unknown>, startedAt: number): void => {
    const errorType = Exit.isSuccess(exit) ? undefined : errorTypeOf(exit.cause)
    const outcome = errorType === undefined ? (reads ? "hit" : "ok") : OUTCOMES[errorType]
    const [found, missed, timedOut] = reads ? readCounts(op, call, exit) : [0, 0, 0]
    const span = call.span
    if (span !== undefined) {
      const server = call.answeredBy
      if (server !== undefined) setServer(span, server)
      if (call.batch !== undefined) {
        span.attribute("db.operation.batch.size", call.batch.length)
        if (tracing!.keys) span.attribute("db.memcached.key", call.batch)
      }
      if (outcome !== undefined) span.attribute("db.memcached.outcome", op === "getMulti" ? "ok" : outcome)
      else if (errorType === INTERRUPTED) span.attribute("db.memcached.outcome", "interrupted")
      else if (errorType !== undefined) span.attribute("error.type", errorType)
      if (reads) {
        span.attribute("db.memcached.hits", found)
        span.attribute("db.memcached.misses", missed)
      }
    }
    if (metrics) {
      const seconds = (performance.now() - startedAt) / 1000
      const errorServer =
        !Exit.isSuccess(exit) && call.answeredBy === undefined ? serverOfCause(exit.cause) : undefined
      recordOperation(
        op,
        call.answeredBy ?? errorServer,
        outcome === undefined ? errorType : undefined,
        seconds,
        found,
        missed,
        timedOut + (errorType === "Timeout" ? 1 : 0),
      )
    }
  }

  return (op: string, f: Op, keyOf: (args: ReadonlyArray<unknown>) => unknown, reads: boolean, parent = false): Op => {
    const name = `memcached ${op}`
    const spanOptions: Tracer.SpanOptions = {
      kind: "client",
      captureStackTrace: false,
      attributes: { ...tracing?.attributes, ...SYSTEM, "db.operation.name": op },
    }
    return (...args) =>
      Effect.withFiberRuntime((fiber) => {
        const call = new Call()
        const outer = calls.get(fiber)
        calls.set(fiber, call)
        const startedAt = metrics ? performance.now() : 0
        const settle = (exit: Exit.Exit<unknown, unknown>) => {
          if (outer === undefined) calls.delete(fiber)
          else calls.set(fiber, outer)
          finish(op, reads, call, exit, startedAt)
        }
        // No span when the tracer is disabled (`Effect.withTracerEnabled(false)`): not even a noop one.
        // `onExit`, so that an interrupted call is measured too.
        if (tracing === undefined || !fiber.getFiberRef(FiberRef.currentTracerEnabled)) {
          return Effect.onExit(f(...args), (exit) => Effect.sync(() => settle(exit)))
        }
        // The operation does not run under `withParentSpan` (a context copy per call, measured at
        // half the tracing cost): nothing in it reads the parent but its own child spans, which
        // find it through the call. `parent` (getOrSet) is the exception: its lookup is the
        // caller's code, whose spans find their parent only in the context.
        const clock = Context.get(fiber.getFiberRef(DefaultServices.currentServices), Clock.Clock)
        const timed = fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
        // The span is ended here, with the call's settling, instead of by `useSpan`: one `onExit`
        // per call rather than two, and no `exit`/`flatten` round trip.
        return Effect.flatMap(Effect.makeSpan(name, spanOptions), (span) => {
          call.span = span
          call.clock = clock
          if (tracing.keys) {
            const key = keyOf(args)
            if (key !== undefined) span.attribute("db.memcached.key", key)
          }
          const run = parent ? Effect.withParentSpan(f(...args), span) : f(...args)
          return Effect.onExit(run, (exit) =>
            Effect.sync(() => {
              settle(exit)
              // An outcome (a miss, not stored) ends the span as a success; the caller still gets it.
              const ok = Exit.isSuccess(exit) || OUTCOMES[errorTypeOf(exit.cause) ?? ""] !== undefined
              span.end(timed ? clock.unsafeCurrentTimeNanos() : 0n, ok ? Exit.succeed(exit) : exit)
            }),
          )
        })
      })
  }
}

/** The client's operations, each in a span (tracing) and measured (metrics). */
export const observeClient = (service: McClientService, config: ObserveConfig): McClientService => {
  const wrap = makeWrap(config)
  const observed: Record<string, unknown> = { ...service }
  for (const [op, keyOf, reads] of OPERATIONS) observed[op] = wrap(op, service[op] as Op, keyOf, reads)
  observed.getOrSet = wrap("getOrSet", service.getOrSet as Op, keyArg(0, false), false, true)
  return observed as unknown as McClientService
}

/** getOrSet's requests, observed as the operations they are (children of its span). */
export const observeReadThrough = (ops: ReadThroughOps, config: ObserveConfig): ReadThroughOps => {
  const wrap = makeWrap(config)
  const key = keyArg(0, false)
  return {
    get: wrap("get", ops.get as Op, key, true) as ReadThroughOps["get"],
    add: wrap("add", ops.add as Op, key, false) as ReadThroughOps["add"],
    compareAndSwap: wrap("compareAndSwap", ops.compareAndSwap as Op, key, false) as ReadThroughOps["compareAndSwap"],
    del: wrap("del", ops.del as Op, key, false) as ReadThroughOps["del"],
  }
}

const serverOfCause = (cause: Cause.Cause<unknown>): string | undefined => {
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) return undefined
  const e = failure.value as { readonly server?: unknown }
  return typeof e === "object" && e !== null && typeof e.server === "string" && e.server !== "" ? e.server : undefined
}
