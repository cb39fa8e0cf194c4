/**
 * The TCP transport: real memcached servers through pipelined `node:net` connections.
 *
 * Each request is one `Effect.async` whose register step routes the key, queues the slot and
 * writes, all synchronously (tcpRequest.ts, DESIGN.md §3).
 */
import { Effect, FiberSet, Schedule, type Scope } from "effect"
import { Cluster } from "../cluster/Cluster.js"
import type { HealthEvent } from "../cluster/ServerPool.js"
import type { SlotFailure } from "../connection/Slot.js"
import type { ServerStats, ServerStatus, Transport, TransportEvents } from "../client/Transport.js"
import { ClientError } from "../Errors.js"
import type { AuthOptions, TlsOptions } from "../Options.js"
import { makeGetMany } from "./tcpGetMany.js"
import { makeRequest } from "./tcpRequest.js"
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

    const request = makeRequest({ cluster, retry: options.retry, failoverTtlSeconds: options.failoverTtlSeconds, events })

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
