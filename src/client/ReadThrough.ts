/**
 * `getOrSet`: read-through caching that survives a stampede, on memcached's leases.
 *
 * - Across processes, a lease get (`mg <key> b c f v N<leaseTtl>`) plants an empty placeholder on
 *   a miss and hands its win token (`W`) to one caller: that one runs the lookup and stores the
 *   value with `ms … C<cas>`. The others see the placeholder with `Z` and re-read on the lease's
 *   retry schedule; when it runs out they run the lookup themselves. A winner whose lookup fails or
 *   is interrupted gives the lease back (`md <key> C<cas>`) before its error goes on, so the next
 *   reader wins at once instead of waiting out the lease.
 * - Within one process, concurrent calls for one key share one read and one lookup: the first call
 *   owns an in-flight entry, the others await its outcome.
 * - `earlyRecache` (`R<s>`): the reader that wins the recache token gets the current value and
 *   refreshes it in a background fiber (in the client's scope), storing with `C<cas>`.
 * - After `del(key, { invalidate })` the item is stale (`X`): its first reader (`X` + `W`) runs the
 *   lookup and is answered with the fresh value; later readers (`X` + `Z`) get the stale value with
 *   `serveStale`, else they wait for the refresh like lease losers.
 */
import { Cause, Clock, Deferred, type Duration, Effect, Exit, Option, Schedule, Schema } from "effect"
import { type CodecOption, decodeValue, encodeValue } from "../Codec.js"
import { type CacheMiss, type CASConflict, ClientError, type DecodeError, type EncodeError, type McError, type NotStored } from "../Errors.js"
import type { Expiration } from "../Options.js"
import type { Reply } from "../protocol/Reply.js"
import { deleteRequest, getRequest, StoreFlags, storeRequest } from "../protocol/Request.js"
import {
  badInput,
  expirationRule,
  expirationSeconds,
  isCodec,
  isFlag,
  notAKey,
  render,
  timeoutMillisOf,
  timeoutRule,
  unreadable,
} from "./Inputs.js"
import type { KeyEncoder } from "./Keys.js"
import { cacheMiss, casConflict, storeReply, unexpected } from "./Replies.js"
import { requestOptions, type Transport } from "./Transport.js"
import { COMPRESSED, NAMESPACED, USER_FLAGS_MASK } from "./ValueFormat.js"

export interface LeaseOptions {
  /**
   * How long a lease (the placeholder) lives, in the forms of an `Expiration`, at least 1 s; a
   * winner that dies without storing or releasing holds the others off this long at most.
   * Default 30 seconds.
   */
  readonly ttl?: Expiration | undefined
  /**
   * When a loser re-reads while another caller holds the lease; when the schedule ends it runs the
   * lookup itself. Default: 10 ms, growing by 1.5× up to 100 ms apart, for at most 2 seconds.
   */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
}

export interface GetOrSetOptions<A, I> extends CodecOption {
  /** the value's schema: what the lookup yields is encoded with it, what is read is decoded */
  readonly schema: Schema.Schema<A, I, never>
  /** the stored value's time to live (see `Expiration`; 0 = no expiry) */
  readonly expiration: Expiration
  /** on by default (see `LeaseOptions`); `false`: a miss runs the lookup in every process that sees it */
  readonly lease?: LeaseOptions | false | undefined
  /** below this remaining TTL one reader refreshes the value in the background (`R`) */
  readonly earlyRecache?: Expiration | undefined
  /** after `del(key, { invalidate })`, answer with the stale value while one caller refreshes it */
  readonly serveStale?: boolean | undefined
  /** "lookup" (default): a cache failure runs the lookup and logs a warning; "fail": it fails the call */
  readonly onCacheError?: "lookup" | "fail" | undefined
  /** the deadline of each cache request (not of the lookup); default the client's `timeout` */
  readonly timeout?: Duration.DurationInput | undefined
}

export type GetOrSet = <A, I, E, R>(
  key: string,
  lookup: Effect.Effect<A, E, R>,
  options: GetOrSetOptions<A, I>,
) => Effect.Effect<A, E | DecodeError | EncodeError | McError, R>

/** What a read-through get found. */
export interface Found {
  readonly value: Uint8Array
  /** all 32 client flags */
  readonly flags: number
  readonly cas: bigint | undefined
  /** W: this reader won the token (the lease, the recache, or the stale item's refresh) */
  readonly won: boolean
  /** Z: another reader holds the token */
  readonly winSent: boolean
  /** X: invalidated */
  readonly stale: boolean
}

/**
 * The requests `getOrSet` is made of. Each takes the caller's key (errors, tracing) and the wire
 * key. Named like the client's operations, so that tracing and metrics show them as such.
 */
export interface ReadThroughOps {
  /** `mg b c f v [N<lease>] [R<recache>]` */
  readonly get: (
    key: string,
    wire: string,
    lease: number | undefined,
    recache: number | undefined,
    timeoutMillis: number,
  ) => Effect.Effect<Found, CacheMiss | McError>
  /** `ms … ME`: store unless something is there by now */
  readonly add: (
    key: string,
    wire: string,
    value: Uint8Array,
    flags: number,
    expiration: number,
    timeoutMillis: number,
  ) => Effect.Effect<void, NotStored | McError>
  /** `ms … C<cas>`: replace exactly the item that was read */
  readonly compareAndSwap: (
    key: string,
    wire: string,
    value: Uint8Array,
    flags: number,
    expiration: number,
    cas: bigint,
    timeoutMillis: number,
  ) => Effect.Effect<void, CASConflict | CacheMiss | NotStored | McError>
  /** `md C<cas>`, with `I` (invalidate again) for a stale item */
  readonly del: (
    key: string,
    wire: string,
    cas: bigint,
    invalidate: boolean,
    timeoutMillis: number,
  ) => Effect.Effect<void, CacheMiss | CASConflict | McError>
}

const decodeFound = (reply: Reply, server: string, key: string): Exit.Exit<Found, CacheMiss | McError> => {
  if (reply.code === "VA")
    return Exit.succeed({
      value: reply.value!,
      flags: reply.clientFlags ?? 0,
      cas: reply.cas,
      won: reply.won,
      winSent: reply.winSent,
      stale: reply.stale,
    })
  if (reply.code === "EN") return Exit.fail(cacheMiss(key, server))
  return Exit.fail(unexpected(reply, server, key))
}

const decodeDeleted = (reply: Reply, server: string, key: string): Exit.Exit<void, CacheMiss | CASConflict | McError> =>
  reply.code === "HD"
    ? Exit.void
    : reply.code === "NF"
      ? Exit.fail(cacheMiss(key, server))
      : reply.code === "EX"
        ? Exit.fail(casConflict(key, server))
        : Exit.fail(unexpected(reply, server, key))

/** The read-through requests over a transport. Every one may be retried: a repeat is harmless. */
export const makeReadThroughOps = (transport: Transport, keys: KeyEncoder): ReadThroughOps => {
  const b = keys.binary
  return {
    get: (key, wire, N, R, timeoutMillis) =>
      transport.request(
        key,
        getRequest(wire, { b, c: true, f: true, v: true, ...(N === undefined ? {} : { N }), ...(R === undefined ? {} : { R }) }),
        decodeFound,
        requestOptions(timeoutMillis, true, key),
      ),
    add: (key, wire, value, F, T, timeoutMillis) =>
      transport.request(
        key,
        storeRequest(wire, new StoreFlags(b, undefined, F === 0 ? undefined : F, "E", undefined, T === 0 ? undefined : T), value),
        storeReply as (reply: Reply, server: string, key: string) => Exit.Exit<void, NotStored | McError>,
        requestOptions(timeoutMillis, true, key),
      ),
    compareAndSwap: (key, wire, value, F, T, C, timeoutMillis) =>
      transport.request(
        key,
        storeRequest(wire, new StoreFlags(b, C, F === 0 ? undefined : F, undefined, undefined, T === 0 ? undefined : T), value),
        storeReply,
        requestOptions(timeoutMillis, true, key),
      ),
    del: (key, wire, C, I, timeoutMillis) =>
      transport.request(key, deleteRequest(wire, I ? { b, C, I } : { b, C }), decodeDeleted, requestOptions(timeoutMillis, true, key)),
  }
}

export interface ReadThroughConfig {
  readonly keys: KeyEncoder
  readonly timeoutMillis: number
  /** runs a background refresh: in the client's scope where there is one */
  readonly background: <R>(refresh: Effect.Effect<void, never, R>) => Effect.Effect<void, never, R>
  /** tracing is on: lease waits become events of the current (`memcached getOrSet`) span */
  readonly tracing: boolean
}

const DEFAULT_LEASE_TTL = 30
export const defaultLeaseRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("10 millis", 1.5).pipe(
  Schedule.union(Schedule.spaced("100 millis")),
  Schedule.upTo("2 seconds"),
)

/** getOrSet's options, read once and checked. */
interface Checked {
  readonly schema: Schema.Schema<unknown, unknown, never>
  readonly codec: CodecOption["codec"]
  readonly expiration: number
  /** undefined: no lease */
  readonly lease: { readonly ttl: number; readonly retry: Schedule.Schedule<unknown, unknown> } | undefined
  readonly recache: number | undefined
  readonly serveStale: boolean
  readonly failOnCacheError: boolean
  readonly timeoutMillis: number
}

const checkOptions = (key: string, o: unknown, timeoutFallback: number): Checked | ClientError => {
  if (typeof o !== "object" || o === null || Array.isArray(o))
    return badInput(key, `getOrSet takes options { schema, expiration, ... }, got ${render(o)}`)
  let schema: unknown, codec: unknown, expiration: unknown, lease: unknown, earlyRecache: unknown
  let serveStale: unknown, onCacheError: unknown, timeout: unknown, leaseTtl: unknown, leaseRetry: unknown
  try {
    ;({ schema, codec, expiration, lease, earlyRecache, serveStale, onCacheError, timeout } = o as Record<string, unknown>)
    if (typeof lease === "object" && lease !== null) ({ ttl: leaseTtl, retry: leaseRetry } = lease as Record<string, unknown>)
  } catch (e) {
    return unreadable(key, "the options", e)
  }
  if (!Schema.isSchema(schema)) return badInput(key, `schema must be an Effect Schema, got ${render(schema)}`)
  if (!isCodec(codec)) return badInput(key, `codec must be "json", "msgpack" or { encode, decode }, got ${render(codec)}`)
  const T = expirationSeconds(expiration, true)
  if (T < 0) return badInput(key, `expiration must be ${expirationRule}, got ${render(expiration)}`)
  if (lease !== undefined && lease !== false && (typeof lease !== "object" || lease === null || Array.isArray(lease)))
    return badInput(key, `lease must be false or { ttl?, retry? }, got ${render(lease)}`)
  const N = leaseTtl === undefined ? DEFAULT_LEASE_TTL : expirationSeconds(leaseTtl, false)
  if (N < 1) return badInput(key, `lease.ttl must be at least 1 second: ${expirationRule} (not infinite), got ${render(leaseTtl)}`)
  if (leaseRetry !== undefined && !Schedule.isSchedule(leaseRetry))
    return badInput(key, `lease.retry must be a Schedule, got ${render(leaseRetry)}`)
  const R = earlyRecache === undefined ? undefined : expirationSeconds(earlyRecache, false)
  if (R !== undefined && R < 0) return badInput(key, `earlyRecache must be ${expirationRule} (not infinite), got ${render(earlyRecache)}`)
  if (!isFlag(serveStale)) return badInput(key, `serveStale must be a boolean, got ${render(serveStale)}`)
  if (onCacheError !== undefined && onCacheError !== "lookup" && onCacheError !== "fail")
    return badInput(key, `onCacheError must be "lookup" or "fail", got ${render(onCacheError)}`)
  const timeoutMillis = timeoutMillisOf(timeout, timeoutFallback)
  if (timeoutMillis < 0) return badInput(key, `timeout must be ${timeoutRule}, got ${render(timeout)}`)
  return {
    schema: schema as Schema.Schema<unknown, unknown, never>,
    codec: codec as CodecOption["codec"],
    expiration: T,
    lease:
      lease === false
        ? undefined
        : { ttl: N, retry: (leaseRetry as Schedule.Schedule<unknown, unknown> | undefined) ?? defaultLeaseRetry },
    recache: R,
    serveStale: serveStale === true,
    failOnCacheError: onCacheError === "fail",
    timeoutMillis,
  }
}

// Entries of every client's in-flight map (tests check that none outlives its call).
let inflightEntries = 0
/** @internal */
export const readThroughsInFlight = (): number => inflightEntries

// A cache request failed and `onCacheError` is "lookup": go on without the cache.
const OUTAGE = Symbol("outage")
type Outage = typeof OUTAGE

/** An in-flight call's outcome; `undefined` when its owner was interrupted (a waiter then starts over). */
type Shared = Deferred.Deferred<Exit.Exit<unknown, unknown> | undefined>

export const makeGetOrSet = (ops: ReadThroughOps, config: ReadThroughConfig): GetOrSet => {
  // In-flight calls by wire key (two keys with one wire key are one item).
  const inflight = new Map<string, Shared>()

  // An event of the current span, which is the call's own (`memcached getOrSet`) when tracing is on.
  const event = (name: string): Effect.Effect<void> =>
    config.tracing
      ? Effect.flatMap(Effect.currentSpan, (span) =>
          Effect.flatMap(Clock.currentTimeNanos, (now) => Effect.sync(() => span.event(name, now))),
        ).pipe(Effect.ignore)
      : Effect.void

  const resolve = <E, R>(key: string, wire: string, lookup: Effect.Effect<unknown, E, R>, c: Checked) => {
    const ms = c.timeoutMillis
    /** A cache request under `onCacheError`: with "lookup" a failure is logged and becomes OUTAGE. */
    const guard = <X>(what: string, request: Effect.Effect<X, McError>): Effect.Effect<X | Outage, McError> =>
      c.failOnCacheError
        ? request
        : Effect.catchAll(request, (error) =>
            Effect.as(Effect.logWarning(`memcached getOrSet: ${what} failed, going on without the cache`, error), OUTAGE),
          )

    const read: Effect.Effect<Found | undefined | Outage, McError> = guard(
      "the read",
      Effect.catchTag(ops.get(key, wire, c.lease?.ttl, c.recache, ms), "CacheMiss", () => Effect.succeed(undefined)),
    )

    /** The stored value, or none: a lease placeholder, a value that no longer decodes, or not ours. */
    const decode = (found: Found): Effect.Effect<Option.Option<unknown>> => {
      if (found.value.length === 0 && found.flags === 0) return Effect.succeedNone
      // getOrSet writes neither compressed nor namespaced values: someone else's item.
      if ((found.flags & (COMPRESSED | NAMESPACED)) !== 0) return Effect.succeedNone
      return decodeValue(c.schema, key, found.value, found.flags & ~USER_FLAGS_MASK, c.codec).pipe(
        Effect.option,
        // A schema's own code may throw on what it is given: that value does not decode either.
        Effect.catchAllDefect(() => Effect.succeedNone),
      )
    }

    const store = (found: Found | undefined, bytes: Uint8Array, flags: number): Effect.Effect<void, McError> => {
      const request =
        found?.cas === undefined
          ? Effect.catchTag(ops.add(key, wire, bytes, flags, c.expiration, ms), "NotStored", () => Effect.void)
          : // Lost to a newer value, or the lease ran out: the cache has its answer, the caller gets ours.
            Effect.catchTags(ops.compareAndSwap(key, wire, bytes, flags, c.expiration, found.cas, ms), {
              CASConflict: () => Effect.void,
              CacheMiss: () => Effect.void,
              NotStored: () => Effect.void,
            })
      return Effect.asVoid(guard("the store", request))
    }

    /** Gives back the token of `found`: deletes a placeholder, invalidates a stale item again. Never fails. */
    const release = (found: Found): Effect.Effect<void> =>
      found.cas === undefined
        ? Effect.void
        : ops.del(key, wire, found.cas, found.stale, ms).pipe(
            Effect.catchTags({ CacheMiss: () => Effect.void, CASConflict: () => Effect.void }),
            Effect.catchAll((error) => Effect.logWarning("memcached getOrSet: releasing the lease failed", error)),
          )

    /** Runs the lookup and stores its value over `found`; a token holder releases it if that fails. */
    const compute = (found: Found | undefined, holdsToken: boolean): Effect.Effect<unknown, E | EncodeError | McError, R> => {
      const produce = Effect.flatMap(lookup, (value) =>
        Effect.map(encodeValue(c.schema, key, value, c.codec), (encoded) => [value, encoded] as const),
      )
      const guarded = holdsToken && found !== undefined
        ? Effect.onExit(produce, (exit) => (Exit.isSuccess(exit) ? Effect.void : release(found)))
        : produce
      return Effect.flatMap(guarded, ([value, { bytes, internalFlags }]) => Effect.as(store(found, bytes, internalFlags), value))
    }

    return Effect.gen(function* () {
      let waits: Schedule.ScheduleDriver<unknown, unknown> | undefined
      while (true) {
        const found = yield* read
        // The cache is failing: the lookup's value, not stored.
        if (found === OUTAGE) return yield* lookup
        if (found === undefined) return yield* compute(undefined, false)
        const value = yield* decode(found)
        if (Option.isSome(value)) {
          if (!found.stale) {
            // Early recache: this reader refreshes in the background, everyone gets the current value.
            if (found.won) yield* config.background(Effect.catchAllCause(compute(found, false), refreshFailed))
            return value.value
          }
          if (found.won) return yield* compute(found, true)
          if (c.serveStale) return value.value
        } else if (found.won || !found.winSent || c.lease === undefined) {
          // A placeholder or a value that no longer decodes: ours to fill (the token's holder, or
          // no one holds one, or this call takes no leases).
          return yield* compute(found, found.won)
        }
        // Another caller holds the token: read again on the schedule, then do it ourselves.
        waits ??= yield* Schedule.driver(c.lease?.retry ?? defaultLeaseRetry)
        yield* event("memcached lease wait")
        const more = yield* Effect.option(waits.next(undefined))
        if (Option.isNone(more)) {
          yield* event("memcached lease wait ended")
          return yield* compute(found, false)
        }
      }
    })
  }

  const refreshFailed = (cause: Cause.Cause<unknown>): Effect.Effect<void> =>
    Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning("memcached getOrSet: the background refresh failed", cause)

  /** One resolve per wire key at a time; the others await its outcome. */
  const shared = <E, R>(key: string, wire: string, lookup: Effect.Effect<unknown, E, R>, c: Checked): Effect.Effect<unknown, unknown, R> =>
    Effect.withFiberRuntime((fiber) => {
      const running = inflight.get(wire)
      if (running !== undefined)
        return Effect.zipRight(
          event("memcached getOrSet shared"),
          Effect.flatMap(Deferred.await(running), (exit) => (exit === undefined ? shared(key, wire, lookup, c) : exit)),
        )
      const outcome: Shared = Deferred.unsafeMake(fiber.id())
      inflight.set(wire, outcome)
      inflightEntries++
      return Effect.onExit(resolve(key, wire, lookup, c), (exit) =>
        Effect.sync(() => {
          if (inflight.get(wire) === outcome) {
            inflight.delete(wire)
            inflightEntries--
          }
          const interrupted = Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
          Deferred.unsafeDone(outcome, Exit.succeed(interrupted ? undefined : exit))
        }),
      )
    })

  return (<A, I, E, R>(key: string, lookup: Effect.Effect<A, E, R>, options: GetOrSetOptions<A, I>) => {
    if (typeof key !== "string") return Exit.fail(notAKey(key))
    const wire = config.keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    if (!Effect.isEffect(lookup)) return Exit.fail(badInput(key, `the lookup must be an Effect, got ${render(lookup)}`))
    const checked = checkOptions(key, options, config.timeoutMillis)
    if (checked instanceof ClientError) return Exit.fail(checked)
    return shared(key, wire, lookup, checked)
  }) as GetOrSet
}
