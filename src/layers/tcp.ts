/**
 * The TCP transport: real memcached servers through pipelined `node:net` connections.
 *
 * Each request is one `Effect.async` whose register step routes the key, queues the slot and
 * writes, all synchronously (DESIGN.md §3). An interrupted request keeps its slot, so its late
 * reply is read and dropped by the connection.
 */
import { Effect, Exit, FiberSet, Schedule, type Scope } from "effect"
import { Cluster } from "../cluster/Cluster.js"
import type { HealthEvent } from "../cluster/ServerPool.js"
import { Connection } from "../connection/Connection.js"
import { BatchSlot, SingleReplySlot } from "../connection/ReplySlot.js"
import type { SlotFailure } from "../connection/Slot.js"
import type { Transport } from "../client/Transport.js"
import type { McError } from "../Errors.js"
import { encodeGetBatch, encodeHeader, type GetFlags, type MetaRequest } from "../protocol/Request.js"
import type { Reply } from "../protocol/Reply.js"

export interface TcpOptions {
  readonly servers: ReadonlyArray<string>
  readonly pickServer: (key: string) => ReadonlyArray<string>
  readonly dialTimeoutMillis: number
  readonly timeoutMillis: number
  readonly connMaxLifetimeMillis: number
  readonly maxConnections: number
  readonly retry: Schedule.Schedule<unknown, unknown>
  readonly reconnect: Schedule.Schedule<unknown, unknown>
}

const logHealth = (event: HealthEvent): Effect.Effect<void> =>
  event._tag === "ServerDown"
    ? Effect.logWarning(`memcache: server ${event.server} marked down (${event.reason})`)
    : Effect.logInfo(`memcache: server ${event.server} is back up`)

/**
 * Fails a request that has no server to go to (all marked down) on the next turn of the event
 * loop, not synchronously. Fibers looping on requests that fail synchronously never yield to
 * Node: timers, I/O and the probes that would bring the servers back would not run (measured: a
 * 10 ms interval fired 0 times in 500 ms). Still fast: one event loop turn.
 */
const failSoon = <A, E>(resume: (effect: Effect.Effect<A, E>) => void, error: E): Effect.Effect<void> => {
  const timer = setImmediate(() => resume(Exit.fail(error)))
  return Effect.sync(() => clearImmediate(timer))
}

const isConnectionError = (e: unknown): boolean =>
  typeof e === "object" && e !== null && (e as { readonly _tag?: unknown })._tag === "ConnectionError"

export const makeTcpTransport = (options: TcpOptions): Effect.Effect<Transport, never, Scope.Scope> =>
  Effect.gen(function* () {
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const cluster = new Cluster(options.servers, options.pickServer, {
      dialTimeoutMillis: options.dialTimeoutMillis,
      timeoutMillis: options.timeoutMillis,
      connMaxLifetimeMillis: options.connMaxLifetimeMillis,
      maxConnections: options.maxConnections,
      backoff: options.reconnect,
      fork: (effect) => {
        run(effect)
      },
      onHealth: (event) => {
        run(logHealth(event))
      },
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => cluster.close()))

    const request = <A, E>(
      routingKey: string,
      req: MetaRequest,
      decode: (reply: Reply, server: string, key: string) => Effect.Effect<A, E | McError>,
      opts: { readonly timeoutMillis: number; readonly idempotent: boolean; readonly key: string },
    ): Effect.Effect<A, E | McError> => {
      const header = encodeHeader(req)
      const value = req.command === "ms" ? req.value : undefined
      const attempt = (recover: (error: SlotFailure) => Effect.Effect<A, E | McError>) =>
        Effect.async<A, E | McError>((resume) => {
          const now = Date.now()
          const conn = cluster.route(routingKey, now)
          if (!(conn instanceof Connection)) return failSoon(resume, conn)
          const slot = new SingleReplySlot<A, E | McError>(
            resume,
            decode,
            recover,
            conn.server,
            opts.key,
            now + opts.timeoutMillis,
            opts.timeoutMillis,
          )
          conn.send(header, value, slot)
        })
      if (!opts.idempotent) return attempt(Exit.fail)
      // Only a connection that failed under the request is retried; the retry goes through
      // routing again, so a server marked down meanwhile is skipped (failover).
      return attempt((error) =>
        isConnectionError(error)
          ? Effect.retry(attempt(Exit.fail), { schedule: options.retry, while: isConnectionError })
          : Exit.fail(error),
      )
    }

    const batch = (server: string, keys: ReadonlyArray<string>, opaques: ReadonlyArray<string>, flags: GetFlags, timeoutMillis: number) =>
      Effect.async<ReadonlyArray<Reply>, McError>((resume) => {
        const now = Date.now()
        const conn = cluster.pool(server).pick(now)
        if (!(conn instanceof Connection)) return failSoon(resume, conn)
        const slot = new BatchSlot(resume, now + timeoutMillis, timeoutMillis)
        conn.send(encodeGetBatch(keys, opaques, flags), undefined, slot)
      })

    const transport: Transport = {
      request,
      batch,
      serverFor: (key) => cluster.serverFor(key),
      serversFor: (key) => cluster.pickServer(key),
      version: (key) => {
        const server = cluster.serverFor(key)
        return typeof server === "string" ? cluster.pool(server).whenVersion() : Effect.fail(server)
      },
    }
    return transport
  })

export const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("20 millis", 2).pipe(
  Schedule.intersect(Schedule.recurs(2)),
)

/** Probes of a down server: 50 ms doubling, capped at 500 ms, so a server that comes back is used within a second. */
export const defaultReconnect: Schedule.Schedule<unknown, unknown> = Schedule.exponential("50 millis", 2).pipe(
  Schedule.union(Schedule.spaced("500 millis")),
)
