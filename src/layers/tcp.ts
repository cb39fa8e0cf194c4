/**
 * The TCP transport: real memcached servers through pipelined `node:net` connections.
 *
 * Each request is one `Effect.async` whose register step routes the key, queues the slot and
 * writes, all synchronously (DESIGN.md §3). An interrupted request keeps its slot, so its late
 * reply is read and dropped by the connection.
 */
import { Effect, Exit, FiberSet, Schedule, type Scope } from "effect"
import { capTtl, changesItem } from "../cluster/Failover.js"
import { Cluster } from "../cluster/Cluster.js"
import type { HealthEvent } from "../cluster/ServerPool.js"
import { Connection } from "../connection/Connection.js"
import { SingleReplySlot } from "../connection/ReplySlot.js"
import type { SlotFailure } from "../connection/Slot.js"
import { registered, type RequestOptions, type ServerStats, type ServerStatus, type Transport, type TransportEvents } from "../client/Transport.js"
import { ClientError, type McError, Timeout, withoutStack } from "../Errors.js"
import type { AuthOptions, TlsOptions } from "../Options.js"
import { acceptedReplies, encodeLine, type MetaRequest } from "../protocol/Request.js"
import type { Reply } from "../protocol/Reply.js"
import { isRetryable, makeGetMany } from "./tcpGetMany.js"
import { fetchStats } from "./tcpStats.js"

export interface TcpOptions {
  readonly servers: ReadonlyArray<string>
  readonly pickServer: (key: string) => ReadonlyArray<string>
  readonly dialTimeoutMillis: number
  readonly stallTimeoutMillis: number
  readonly connMaxLifetimeMillis: number
  readonly maxConnections: number
  /** TLS and credentials of a server's connections */
  readonly security: (server: string) => { readonly tls?: TlsOptions | undefined; readonly auth?: AuthOptions | undefined }
  readonly retry: Schedule.Schedule<unknown, unknown>
  readonly reconnect: Schedule.Schedule<unknown, unknown>
  /** TTL cap, in seconds, of writes that fail over */
  readonly failoverTtlSeconds: number
  /** metrics hooks (McClientOptions.metrics) */
  readonly events?: TransportEvents | undefined
}

/** A server's health and last failure, as `status` reports them. */
interface Health {
  state: "up" | "down"
  since: number
  lastError: SlotFailure | undefined
  lastErrorAt: number | undefined
}

// Keys remembered for repair after failover (see cluster/Failover.ts).
const MAX_FAILOVER_KEYS = 100_000

const logHealth = (event: HealthEvent): Effect.Effect<void> => {
  switch (event._tag) {
    case "ServerDown":
      return Effect.logWarning(`memcache: server ${event.server} marked down (${event.reason})`)
    case "ServerUp":
      return Effect.logInfo(`memcache: server ${event.server} is back up`)
    case "AuthenticationFailed":
      return Effect.logError(`memcache: ${event.error.reason} [server ${event.server}]; its requests fail with AuthenticationError`)
  }
}

/** The TCP transport, and the cluster under it (discovery changes its servers). */
export interface TcpTransport extends Transport {
  readonly cluster: Cluster
}

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

export const makeTcpTransport = (options: TcpOptions): Effect.Effect<TcpTransport, never, Scope.Scope> =>
  Effect.gen(function* () {
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const events = options.events
    const started = Date.now()
    const health = new Map<string, Health>()
    const healthOf = (server: string): Health => {
      let h = health.get(server)
      if (h === undefined) health.set(server, (h = { state: "up", since: started, lastError: undefined, lastErrorAt: undefined }))
      return h
    }
    const cluster = new Cluster(options.servers, options.pickServer, {
      dialTimeoutMillis: options.dialTimeoutMillis,
      stallTimeoutMillis: options.stallTimeoutMillis,
      connMaxLifetimeMillis: options.connMaxLifetimeMillis,
      maxConnections: options.maxConnections,
      security: options.security,
      backoff: options.reconnect,
      fork: (effect) => {
        run(effect)
      },
      onHealth: (event) => {
        run(logHealth(event))
        // A refused authentication is the server's answer, not its health: logged, never a flap.
        if (event._tag === "AuthenticationFailed") return
        const h = healthOf(event.server)
        h.state = event._tag === "ServerDown" ? "down" : "up"
        h.since = Date.now()
        if (event._tag === "ServerDown") events?.onServerDown(event.server)
        else events?.onServerUp(event.server)
      },
      onConnectionFailed: (server, error) => {
        const h = healthOf(server)
        h.lastError = error
        h.lastErrorAt = Date.now()
        events?.onConnectionFailed(server, error)
      },
      maxFailoverKeys: MAX_FAILOVER_KEYS,
      onFailoverLogFull: (primary) => {
        events?.onFailoverLogFull(primary)
        run(
          Effect.logWarning(
            `memcache: failover log full (${MAX_FAILOVER_KEYS} keys): further keys written while ${primary} is down are not repaired when it returns`,
          ),
        )
      },
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => cluster.close()))

    const request = <A, E>(
      routingKey: string,
      req: MetaRequest,
      decode: (reply: Reply, server: string, key: string) => Effect.Effect<A, E | McError>,
      opts: RequestOptions,
    ): Effect.Effect<A, E | McError> => {
      const line = encodeLine(req)
      const value = req.command === "ms" ? req.value : undefined
      const accepts = acceptedReplies(req)
      // `deadline`: the call's, once its first attempt set it; retries keep it.
      const attempt = (deadline: number | undefined, recover: (error: SlotFailure, deadline: number) => Effect.Effect<A, E | McError>) =>
        registered<A, E | McError>((resume) => {
          const now = Date.now()
          const conn = cluster.route(routingKey, now)
          if (!(conn instanceof Connection)) return failSoon(resume, conn)
          const primary = cluster.failedOverFrom
          let sent = line
          if (primary !== undefined && req.command !== "mn") {
            // Failover: a capped TTL, and a note to repair the key when its primary returns.
            sent = encodeLine(capTtl(req, options.failoverTtlSeconds, now))
            if (changesItem(req)) cluster.logFailoverWrite(primary, conn.server, req.key, req.flags.b === true)
          }
          const slot = new SingleReplySlot<A, E | McError>(
            resume,
            decode,
            recover,
            accepts,
            conn.server,
            opts.key,
            deadline ?? now + opts.timeoutMillis,
            opts.timeoutMillis,
          )
          conn.send(sent, value, slot)
        })
      if (!opts.idempotent) return attempt(undefined, Exit.fail)
      // Only a connection that failed under the request is retried, within the call's deadline;
      // the retry goes through routing again, so a server marked down meanwhile is skipped
      // (failover). The failed attempt is the schedule's first input: `recurs(n)` is n retries.
      return attempt(undefined, (error, deadline) => {
        if (!isRetryable(error) || cluster.closed) return Exit.fail(error)
        let first = true
        let cause: McError = error
        const again = attempt(deadline, Exit.fail)
        return Effect.retry(
          Effect.suspend(() => {
            if (!first) {
              events?.onRetry(cause)
              opts.onRetry?.(cause)
              return again
            }
            first = false
            return Exit.fail(error)
          }),
          {
            schedule: options.retry,
            while: (e) => {
              cause = e as McError
              return isRetryable(e as { readonly _tag: string }) && !cluster.closed && Date.now() < deadline
            },
          },
        ).pipe(
          // A retry delay does not outlast the call's deadline.
          Effect.timeoutFail({
            duration: Math.max(0, deadline - Date.now()),
            onTimeout: () => withoutStack(() => new Timeout({ server: error.server ?? "", timeoutMillis: opts.timeoutMillis, key: opts.key })),
          }),
        )
      })
    }

    const transport: TcpTransport = {
      cluster,
      request,
      getMany: makeGetMany(cluster, options.retry, events?.onRetry),
      version: (key) => {
        const server = cluster.serverFor(key)
        return typeof server === "string" ? cluster.pool(server).whenVersion() : Effect.fail(server)
      },
      status: Effect.sync(() => {
        const out: Array<ServerStatus> = []
        for (const pool of cluster.allPools) {
          const h = healthOf(pool.server)
          out.push({
            address: pool.server,
            state: pool.downError === undefined && pool.unsupported === undefined ? "up" : "down",
            since: h.since,
            lastError: pool.unsupported ?? h.lastError,
            lastErrorAt: h.lastErrorAt,
            version: pool.version?.text,
            connections: pool.connections,
            inFlight: pool.inFlight,
          })
        }
        return out
      }),
      stats: (server, timeoutMillis) => {
        const known = Array.from(cluster.allPools, (p) => p.server)
        if (server !== undefined && !known.includes(server))
          return Effect.fail(new ClientError({ reason: `stats: ${JSON.stringify(server)} is not one of this client's servers (${known.join(", ")})` }))
        return Effect.forEach(server === undefined ? known : [server], (s) => Effect.map(fetchStats(s, timeoutMillis), (st) => [s, st] as const), {
          concurrency: "unbounded",
        }).pipe(Effect.map((entries) => new Map<string, ServerStats>(entries)))
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
