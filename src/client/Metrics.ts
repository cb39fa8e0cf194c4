/**
 * The client's metrics (`McClientOptions.metrics`), as Effect `Metric`s: exporters such as
 * `@effect/opentelemetry` read them from Effect's global registry. Names follow OpenTelemetry's
 * database conventions where one exists (`db.client.*`), else `memcached.client.*`.
 *
 * Updates run synchronously (`unsafeUpdate`) with tag arrays built once per combination: the
 * registry caches a metric's hook per tag array, so a repeated update is a map lookup.
 */
import { Metric, MetricBoundaries, MetricLabel } from "effect"
import type { McError } from "../Errors.js"
import type { ServerStatus, TransportEvents } from "./Transport.js"

// OpenTelemetry's buckets for db.client.operation.duration start at 1 ms; a cache answers in
// tens of microseconds, so finer ones come first.
const DURATION_BOUNDARIES = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]

export const operationDuration = Metric.histogram(
  "db.client.operation.duration",
  MetricBoundaries.fromIterable(DURATION_BOUNDARIES),
  "Duration of memcached operations, in seconds",
)
export const hits = Metric.counter("memcached.client.hits", { description: "Keys found, per operation", incremental: true })
export const misses = Metric.counter("memcached.client.misses", { description: "Keys not found, per operation", incremental: true })
export const timeouts = Metric.counter("memcached.client.timeouts", {
  description: "Operations (and getMulti keys) that failed with Timeout",
  incremental: true,
})
export const connectionErrors = Metric.counter("memcached.client.connection_errors", {
  description: "Connections that failed: could not connect, closed by the server, stalled",
  incremental: true,
})
export const desyncs = Metric.counter("memcached.client.desyncs", {
  description: "Connections destroyed because a reply did not fit its request",
  incremental: true,
})
export const retries = Metric.counter("memcached.client.retries", { description: "Retries of requests", incremental: true })
export const serversDown = Metric.counter("memcached.client.servers_down", { description: "Servers marked down", incremental: true })
export const serversUp = Metric.counter("memcached.client.servers_up", { description: "Servers back up", incremental: true })
export const failoverLogFull = Metric.counter("memcached.client.failover_log_full", {
  description: "Writes during a failover that the repair log could not hold",
  incremental: true,
})
export const openConnections = Metric.gauge("db.client.connection.count", { description: "Open connections per server" })
export const pendingRequests = Metric.gauge("db.client.connection.pending_requests", {
  description: "Requests in flight per server",
})

type Labels = ReadonlyArray<MetricLabel.MetricLabel>

const cache = new Map<string, Labels>()
/** The tag array of one combination, built once. */
const labels = (op: string | undefined, server: string | undefined, errorType: string | undefined): Labels => {
  const id = `${op ?? ""}\u0000${server ?? ""}\u0000${errorType ?? ""}`
  let l = cache.get(id)
  if (l === undefined) {
    const out: Array<MetricLabel.MetricLabel> = []
    if (op !== undefined) out.push(MetricLabel.make("db.operation.name", op))
    if (server !== undefined) out.push(MetricLabel.make("server.address", server))
    if (errorType !== undefined) out.push(MetricLabel.make("error.type", errorType))
    cache.set(id, (l = out))
  }
  return l
}

/** One finished operation. */
export const recordOperation = (
  op: string,
  server: string | undefined,
  errorType: string | undefined,
  seconds: number,
  found: number,
  missed: number,
  timedOut: number,
): void => {
  operationDuration.unsafeUpdate(seconds, labels(op, server, errorType))
  if (found > 0) hits.unsafeUpdate(found, labels(op, undefined, undefined))
  if (missed > 0) misses.unsafeUpdate(missed, labels(op, undefined, undefined))
  if (timedOut > 0) timeouts.unsafeUpdate(timedOut, labels(op, undefined, undefined))
}

const serverOf = (error: McError): string | undefined =>
  "server" in error && typeof error.server === "string" && error.server !== "" ? error.server : undefined

/** The transport's events as metrics. */
export const metricEvents: TransportEvents = {
  onRetry: (error) => retries.unsafeUpdate(1, labels(undefined, serverOf(error), error._tag)),
  onConnectionFailed: (server, error) =>
    error._tag === "CorruptResponse"
      ? desyncs.unsafeUpdate(1, labels(undefined, server, undefined))
      : connectionErrors.unsafeUpdate(1, labels(undefined, server, error._tag)),
  onServerDown: (server) => serversDown.unsafeUpdate(1, labels(undefined, server, undefined)),
  onServerUp: (server) => serversUp.unsafeUpdate(1, labels(undefined, server, undefined)),
  onFailoverLogFull: (primary) => failoverLogFull.unsafeUpdate(1, labels(undefined, primary, undefined)),
}

/** Sets the per-server gauges from a status snapshot. */
export const recordStatus = (status: ReadonlyArray<ServerStatus>): void => {
  for (const s of status) {
    openConnections.unsafeUpdate(s.connections, labels(undefined, s.address, undefined))
    pendingRequests.unsafeUpdate(s.inFlight, labels(undefined, s.address, undefined))
  }
}
