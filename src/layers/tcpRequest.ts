/**
 * One request on the TCP transport: routed, queued and written in its `Effect.async` register
 * step, all synchronously (DESIGN.md §3).
 *
 * Hot path: a call is one `TcpCall` object and one register closure; each run of the call's
 * effect adds one slot. The call object is the slot's `RequestSpec` (decode, recover), so a slot
 * carries no closures of its own. An interrupted request keeps its slot, so its late reply is read
 * and dropped by the connection.
 */
import { Effect, Exit, type Schedule } from "effect"
import { capTtl, changesItem } from "../cluster/Failover.js"
import type { Cluster } from "../cluster/Cluster.js"
import { Connection } from "../connection/Connection.js"
import { type RequestSpec, SingleReplySlot } from "../connection/ReplySlot.js"
import type { SlotFailure } from "../connection/Slot.js"
import { registered, type RequestOptions, type TransportEvents } from "../client/Transport.js"
import { type McError, Timeout, withoutStack } from "../Errors.js"
import { acceptedReplies, type LineParts, lineParts, type MetaRequest, withBytes } from "../protocol/Request.js"
import type { Reply } from "../protocol/Reply.js"
import { isRetryable } from "./tcpGetMany.js"

/** What every request of one transport shares. */
export interface RequestContext {
  readonly cluster: Cluster
  readonly retry: Schedule.Schedule<unknown, unknown>
  /** TTL cap, in seconds, of writes that fail over */
  readonly failoverTtlSeconds: number
  readonly events: TransportEvents | undefined
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

class TcpCall<A, E> implements RequestSpec<A, E | McError> {
  readonly accepts: number
  private line: LineParts
  private sends = 0
  constructor(
    private readonly ctx: RequestContext,
    private readonly routingKey: string,
    private readonly req: MetaRequest,
    private readonly decodeReply: (reply: Reply, server: string, key: string) => Effect.Effect<A, E | McError>,
    private readonly opts: RequestOptions,
    /** a connection that fails under the request starts the retries (the first attempt only) */
    private readonly retries: boolean,
  ) {
    this.accepts = acceptedReplies(req)
    this.line = lineParts(req)
  }

  get key(): string {
    return this.opts.key
  }

  get timeoutMillis(): number {
    return this.opts.timeoutMillis
  }

  decode(reply: Reply, server: string): Effect.Effect<A, E | McError> {
    return this.decodeReply(reply, server, this.opts.key)
  }

  /** Routes, queues and writes one attempt; `deadline`: the call's, once its first attempt set it. */
  send(resume: (outcome: Effect.Effect<A, E | McError>) => void, deadline: number | undefined): void | Effect.Effect<void> {
    const now = Date.now()
    const { cluster } = this.ctx
    const conn = cluster.route(this.routingKey, now)
    if (!(conn instanceof Connection)) return failSoon(resume, conn)
    const primary = cluster.failedOverFrom
    const req = this.req
    // A call sent more than once (a reused effect) writes its line as prepared bytes.
    if (++this.sends === 2 && this.line.bytes === undefined) this.line = withBytes(this.line)
    let line = this.line
    if (primary !== undefined && req.command !== "mn") {
      // Failover: a capped TTL, and a note to repair the key when its primary returns.
      line = lineParts(capTtl(req, this.ctx.failoverTtlSeconds, now))
      if (changesItem(req)) cluster.logFailoverWrite(primary, conn.server, req.key, req.flags.b === true)
    }
    conn.send(line, req.command === "ms" ? req.value : undefined, new SingleReplySlot(resume, this, conn.server, deadline ?? now + this.opts.timeoutMillis))
  }

  /**
   * Only a connection that failed under the request is retried, within the call's deadline; the
   * retry goes through routing again, so a server marked down meanwhile is skipped (failover).
   * The failed attempt is the schedule's first input: `recurs(n)` is n retries.
   */
  recover(error: SlotFailure, deadline: number): Effect.Effect<A, E | McError> {
    const { cluster, events } = this.ctx
    if (!this.retries || !isRetryable(error) || cluster.closed) return Exit.fail(error)
    const once = new TcpCall<A, E>(this.ctx, this.routingKey, this.req, this.decodeReply, this.opts, false)
    const again = registered<A, E | McError>((resume) => once.send(resume, deadline))
    const opts = this.opts
    let first = true
    let cause: McError = error
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
        schedule: this.ctx.retry,
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
  }
}

/** The transport's `request`: one call, sent by its effect's register step (see `registered`). */
export const makeRequest =
  (ctx: RequestContext) =>
  <A, E>(
    routingKey: string,
    req: MetaRequest,
    decode: (reply: Reply, server: string, key: string) => Effect.Effect<A, E | McError>,
    opts: RequestOptions,
  ): Effect.Effect<A, E | McError> => {
    const call = new TcpCall<A, E>(ctx, routingKey, req, decode, opts, opts.idempotent)
    return registered<A, E | McError>((resume) => call.send(resume, undefined))
  }
