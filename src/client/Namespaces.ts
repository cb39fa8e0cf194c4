/**
 * Namespaces and min-uses: both live in counter keys on the servers, so every client sharing the
 * servers sees a purge (or a use) at once.
 *
 * A namespace's version is the counter `mc:ns:<namespace>`. It is created on first use with the
 * current time in milliseconds, so a counter that was evicted comes back with a version no stored
 * item can carry. `purgeNamespace` increments it. Items record the version they were written
 * under (see ValueFormat.ts); a read that finds an older one treats the item as a miss and
 * deletes it in the background.
 *
 * Round trips: `set` needs the version before it can write, so it waits for it. `get` cannot know
 * an item is namespaced until it has read it, so a namespaced item costs one more round trip;
 * `getMulti` does that lookup once for all the namespaces in the batch, in one parallel step.
 */
import { Clock, Effect, Exit } from "effect"
import type { McError } from "../Errors.js"
import type { Reply } from "../protocol/Reply.js"
import { arithmeticRequest, deleteRequest } from "../protocol/Request.js"
import type { KeyEncoder } from "./Keys.js"
import { unexpected } from "./Replies.js"
import { requestOptions, type Transport } from "./Transport.js"
import { readNamespaceHeader } from "./ValueFormat.js"

const NAMESPACE_PREFIX = "mc:ns:"
const MIN_USES_PREFIX = "mc:muc:"
/** Whether a key is one of the client's own counters (tracing gives their requests child spans). */
export const internalCounterOf = (key: string): "namespace" | "minUses" | undefined =>
  key.startsWith(NAMESPACE_PREFIX) ? "namespace" : key.startsWith(MIN_USES_PREFIX) ? "minUses" : undefined

// Min-use counters live at most this long without an expiration (the seed's bound).
const MIN_USES_DEFAULT_TTL = 1800

export const makeNamespaces = (transport: Transport, keys: KeyEncoder) => {
  const b = keys.binary

  /** `ma <counter> N<ttl> J<initial> D<delta> v`: read-or-create-then-add in one round trip. */
  const counter = (key: string, delta: bigint, ttl: number, initial: bigint, timeoutMillis: number) => {
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    return transport.request<bigint, never>(
      key,
      arithmeticRequest(wire, { b, v: true, N: ttl, J: initial, D: delta }),
      (reply, server) => {
        if (reply.code === "VA") {
          const text = Buffer.from(reply.value!).toString("latin1")
          if (/^\d+$/.test(text)) return Exit.succeed(BigInt(text))
        }
        return Exit.fail(unexpected(reply, server, key))
      },
      requestOptions(timeoutMillis, delta === 0n, key),
    )
  }

  const version = (namespace: string, timeoutMillis: number): Effect.Effect<bigint, McError> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      counter(NAMESPACE_PREFIX + namespace, 0n, 0, BigInt(now), timeoutMillis),
    )

  return {
    version,

    purge: (namespace: string, timeoutMillis: number): Effect.Effect<void, McError> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        counter(NAMESPACE_PREFIX + namespace, 1n, 0, BigInt(now), timeoutMillis),
      ).pipe(Effect.asVoid),

    /** The current versions of the namespaces these replies were written under, fetched in parallel. */
    versionsFor: (replies: ReadonlyArray<Reply>, timeoutMillis: number) => {
      const names = new Set<string>()
      for (const r of replies) {
        const header = r.value === undefined ? undefined : readNamespaceHeader(r.value)
        if (header !== undefined) names.add(header.namespace)
      }
      return Effect.forEach(names, (n) => Effect.map(version(n, timeoutMillis), (v) => [n, v] as const), {
        concurrency: "unbounded",
      }).pipe(Effect.map((entries) => new Map(entries)))
    },

    /** Deletes an item written under an outdated namespace version, without making the caller wait. */
    dropStale: (key: string, timeoutMillis: number): Effect.Effect<void> => {
      const wire = keys.encode(key)
      if (typeof wire !== "string") return Effect.void
      return transport
        .request<void, never>(key, deleteRequest(wire, { b }), () => Exit.void, requestOptions(timeoutMillis, true, key))
        .pipe(Effect.ignore, Effect.forkDaemon, Effect.asVoid)
    },

    /** Counts one more set of `key` for min-uses; the counter lives as long as the item would. */
    countUse: (key: string, expiration: number, timeoutMillis: number) =>
      counter(MIN_USES_PREFIX + key, 1n, expiration > 0 ? expiration : MIN_USES_DEFAULT_TTL, 1n, timeoutMillis),
  }
}
