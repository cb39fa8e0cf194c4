/**
 * getMulti over TCP: keys grouped by server, pipelined as batches of quiet gets, large groups
 * split into chunks so that they spread over the server's connections instead of queueing behind
 * each other on one socket. Keys whose server failed under them are retried on the retry
 * schedule (routing again, so a server marked down meanwhile fails over), within the call's
 * deadline. A key's failure stays a failure: it is never reported as a miss.
 */
import { Effect, Option, Schedule } from "effect"
import type { Cluster } from "../cluster/Cluster.js"
import { Connection } from "../connection/Connection.js"
import { BatchSlot, type BatchResult } from "../connection/ReplySlot.js"
import type { SlotFailure } from "../connection/Slot.js"
import { type ManyOptions, type ManyOutcome, type ManyResult, releaseReplies } from "../client/Transport.js"
import { type McError, NoServers, Timeout, withoutStack } from "../Errors.js"
import type { GetFlags } from "../protocol/Request.js"
import { Reply } from "../protocol/Reply.js"

// Keys per batch: larger groups are split, and each chunk picks the least loaded connection.
const CHUNK = 512
const END_TEXT: GetFlags = {}
const END_BINARY: GetFlags = { b: true }

// The quiet flags derived from a get's flags, per flags object (getMulti without options reuses one).
const quietFlagsOf = new WeakMap<GetFlags, GetFlags>()
const quietFlags = (flags: GetFlags): GetFlags => {
  let quiet = quietFlagsOf.get(flags)
  if (quiet === undefined) {
    // `k` lets the batch check text keys; binary keys are matched by opaque token alone, since
    // memcached 1.6.18 returns raw key bytes (not base64) for items that append or incr rewrote.
    quiet = { ...flags, k: flags.b !== true, q: true }
    quietFlagsOf.set(flags, quiet)
  }
  return quiet
}

export const isRetryable = (e: { readonly _tag: string }): boolean => e._tag === "ConnectionError" || e._tag === "CorruptResponse"

/** A key's outcome is a failure of its server under it (retried within the deadline). */
const failedRetryably = (o: ManyOutcome): o is McError => o !== undefined && !(o instanceof Reply) && isRetryable(o)

interface Sent {
  readonly server: string
  /** indices of the keys, in the call's key list */
  readonly indices: ReadonlyArray<number>
  /** per key in this batch: the rank of `server` in pickServer's list (broadcast only) */
  readonly ranks: ReadonlyArray<number> | undefined
}

export const makeGetMany =
  (cluster: Cluster, retry: Schedule.Schedule<unknown, unknown>, onRetry?: (error: McError) => void) =>
  (
    routingKeys: ReadonlyArray<string>,
    wires: ReadonlyArray<string>,
    flags: GetFlags,
    options: ManyOptions,
  ): Effect.Effect<ManyResult> =>
    Effect.suspend(() => {
      const n = wires.length
      const outcomes: Array<ManyOutcome> = new Array(n).fill(undefined)
      // the server of each hit
      const servers: Array<string | undefined> = new Array(n).fill(undefined)
      const result: ManyResult = { outcomes, servers }
      if (n === 0) return Effect.succeed(result)
      const deadline = options.startedAt + options.timeoutMillis
      const quiet = quietFlags(flags)
      const end = flags.b === true ? END_BINARY : END_TEXT
      // Broadcast: per key, the rank of the server whose answer is kept, and whether any asked
      // server failed (a miss counts only when every asked server answered).
      const bestRank: Array<number> | undefined = options.broadcast ? new Array(n).fill(Number.POSITIVE_INFINITY) : undefined

      const plan = (indices: ReadonlyArray<number>): Array<Sent> => {
        const groups = new Map<string, { indices: Array<number>; ranks: Array<number> | undefined }>()
        if (options.broadcast) {
          for (const i of indices) {
            const servers = cluster.pickServer(routingKeys[i]!)
            if (servers.length === 0) outcomes[i] = new NoServers({ reason: "pickServer returned no server", key: routingKeys[i] })
            for (let r = 0; r < servers.length; r++) {
              let g = groups.get(servers[r]!)
              if (g === undefined) groups.set(servers[r]!, (g = { indices: [], ranks: [] }))
              g.indices.push(i)
              g.ranks!.push(r)
            }
          }
        } else {
          // Keys with the same server list (every key, with one server) route alike: routed once.
          let lastList: ReadonlyArray<string> | undefined
          let lastGroup: Array<number> | undefined
          for (const i of indices) {
            const list = cluster.pickServer(routingKeys[i]!)
            if (list !== lastList || lastGroup === undefined) {
              const server = cluster.firstHealthy(list, routingKeys[i]!)
              if (typeof server !== "string") {
                outcomes[i] = server
                lastList = undefined
                continue
              }
              let g = groups.get(server)
              if (g === undefined) groups.set(server, (g = { indices: [], ranks: undefined }))
              lastList = list
              lastGroup = g.indices
            }
            lastGroup.push(i)
          }
        }
        const sent: Array<Sent> = []
        for (const [server, g] of groups) {
          if (g.indices.length <= CHUNK) {
            sent.push({ server, indices: g.indices, ranks: g.ranks })
            continue
          }
          for (let at = 0; at < g.indices.length; at += CHUNK) {
            sent.push({ server, indices: g.indices.slice(at, at + CHUNK), ranks: g.ranks?.slice(at, at + CHUNK) })
          }
        }
        return sent
      }

      const send = (batch: Sent): Effect.Effect<BatchResult, McError> =>
        Effect.async<BatchResult, McError>((resume) => {
          const now = Date.now()
          const conn = cluster.pool(batch.server).pick(now)
          if (!(conn instanceof Connection)) {
            resume(Effect.fail(conn))
            return
          }
          // Indices are in ascending order: a batch of every key is the key list itself.
          const keys = batch.indices.length === n ? wires : batch.indices.map((i) => wires[i]!)
          const slot = new BatchSlot(
            resume as (effect: Effect.Effect<BatchResult, SlotFailure>) => void,
            batch.server,
            keys,
            flags.b !== true,
            deadline,
            options.timeoutMillis,
          )
          conn.sendBatch(quiet, end, slot)
        })

      /** Reads the keys at `indices`; the ones whose server failed under them get their error. */
      const round = (indices: ReadonlyArray<number>): Effect.Effect<void> => {
        const batches = plan(indices)
        // One batch (one server, the common case) needs no child fibers.
        if (batches.length === 1) return receive(batches[0]!)
        return Effect.forEach(batches, receive, { concurrency: "unbounded", discard: true })
      }

      /** Sends a batch and records its keys' outcomes. */
      const receive = (batch: Sent): Effect.Effect<void> =>
        Effect.match(send(batch), {
          onFailure: (error) => {
            for (let j = 0; j < batch.indices.length; j++) {
              const i = batch.indices[j]!
              const o = outcomes[i]
              if (!(o instanceof Reply)) outcomes[i] = error
            }
          },
          onSuccess: ({ hits, error }) => {
            for (let j = 0; j < batch.indices.length; j++) {
              const i = batch.indices[j]!
              const reply = hits[j]
              if (reply !== undefined) {
                if (bestRank !== undefined) {
                  // broadcast: the most preferred server's hit wins
                  const rank = batch.ranks![j]!
                  if (rank >= bestRank[i]!) continue
                  bestRank[i] = rank
                }
                outcomes[i] = reply
                servers[i] = batch.server
              } else if (error !== undefined && !(outcomes[i] instanceof Reply)) {
                // An error reply in the batch: this key may be the one that failed.
                outcomes[i] = error
              }
            }
            releaseReplies(hits)
          },
        })

      const retries = Effect.gen(function* () {
        const driver = yield* Schedule.driver(retry)
        while (true) {
          const again: Array<number> = []
          let last: McError | undefined
          for (let i = 0; i < n; i++) {
            const o = outcomes[i]
            if (failedRetryably(o)) {
              again.push(i)
              last = o
            }
          }
          if (again.length === 0 || cluster.closed || Date.now() >= deadline) break
          // A retry delay does not outlast the call's deadline.
          const more = yield* Effect.option(Effect.timeout(driver.next(last), Math.max(0, deadline - Date.now())))
          if (Option.isNone(more) || Date.now() >= deadline) break
          for (const i of again) outcomes[i] = undefined
          onRetry?.(last!)
          options.onRetry?.(last!)
          yield* round(again)
        }
        // A deadline that passed while keys waited for a retry is a timeout.
        for (let i = 0; i < n; i++) {
          const o = outcomes[i]
          if (failedRetryably(o) && Date.now() >= deadline) {
            outcomes[i] = withoutStack(
              () => new Timeout({ server: o._tag === "ConnectionError" ? o.server : "", timeoutMillis: options.timeoutMillis, key: routingKeys[i] }),
            )
          }
        }
        return result
      })

      // Retries, and their schedule's driver, only when a server failed under some keys.
      const all: Array<number> = new Array(n)
      for (let i = 0; i < n; i++) all[i] = i
      return Effect.flatMap(round(all), () => (outcomes.some(failedRetryably) ? retries : Effect.succeed(result)))
    })
