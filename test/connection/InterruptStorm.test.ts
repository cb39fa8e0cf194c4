/**
 * An interrupt storm: over a million operations on the three shared memcached servers, with
 * random interruptions (`Fiber.interrupt`, `Effect.timeout`, races) and 5 ms per-call deadlines.
 *
 * Every key's value is the key's own name, so a reply handed to the wrong caller (a FIFO slot out
 * of step after an interruption or a timeout) shows up as a value that is not the caller's key.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Option } from "effect"
import { inject } from "vitest"
import { type Item, McClient, type McClientService } from "../../src/index.js"
import { uniqueKey } from "../support/layers.js"

const TARGET_OPS = 1_000_000
// The storm stops here even if it has not reached its target (and then fails): bounded time.
const TIME_LIMIT_MS = 45_000
const WORKERS = 256
const KEYS = 5_000

const decoder = new TextDecoder()

interface Stats {
  ops: number
  ok: number
  /** 5 ms deadlines that passed: Timeout */
  timeouts: number
  /** operations whose fiber was interrupted or raced away */
  interrupted: number
  /** successful replies whose value or key is not the caller's key */
  mixedUp: number
  /** failures that should not happen (an op with a generous deadline failed, an untyped error …) */
  unexpected: Array<string>
}

/** A successful get: its item must be the caller's key, holding the key's name. */
const checkItem = (stats: Stats, key: string, item: Item) => {
  stats.ok++
  if (item.key !== key || decoder.decode(item.value) !== key) {
    stats.mixedUp++
    if (stats.unexpected.length < 10) stats.unexpected.push(`key ${key} got ${item.key}=${decoder.decode(item.value)}`)
  }
}

const note = (stats: Stats, what: string) => {
  if (stats.unexpected.length < 10) stats.unexpected.push(what)
}

/** A short-deadline op may time out, nothing else. */
const expectTimeoutOnly = (stats: Stats, key: string, exit: Exit.Exit<unknown, { readonly _tag: string }>) => {
  if (Exit.isSuccess(exit)) return
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure) && failure.value._tag === "Timeout") stats.timeouts++
  else note(stats, `${key}: ${Cause.pretty(exit.cause)}`)
}

const storm = (mc: McClientService, keys: ReadonlyArray<string>, stats: Stats, deadline: number) => {
  const randomKey = () => keys[(Math.random() * keys.length) | 0]!
  const step: Effect.Effect<void> = Effect.suspend(() => {
    const key = randomKey()
    const r = Math.random()
    stats.ops++
    if (r < 0.8) {
      // A plain get with the client's (generous) deadline: must succeed with its own value.
      return Effect.matchCause(mc.get(key), {
        onSuccess: (item) => checkItem(stats, key, item),
        onFailure: (cause) => note(stats, `plain get ${key}: ${Cause.pretty(cause)}`),
      })
    }
    if (r < 0.88) {
      return Effect.matchCause(mc.set({ key, value: key }), {
        onSuccess: () => void stats.ok++,
        onFailure: (cause) => note(stats, `plain set ${key}: ${Cause.pretty(cause)}`),
      })
    }
    if (r < 0.94) {
      return Effect.map(Effect.exit(mc.get(key, { timeout: "5 millis" })), (exit) => {
        if (Exit.isSuccess(exit)) checkItem(stats, key, exit.value)
        else expectTimeoutOnly(stats, key, exit)
      })
    }
    if (r < 0.95) {
      return Effect.map(Effect.exit(mc.set({ key, value: key }, { timeout: "5 millis" })), (exit) => {
        if (Exit.isSuccess(exit)) stats.ok++
        else expectTimeoutOnly(stats, key, exit)
      })
    }
    if (r < 0.965) {
      // Effect.timeout races the get against a 0–2 ms timer and interrupts the loser.
      return Effect.map(Effect.exit(Effect.timeout(mc.get(key), Math.random() * 2)), (exit) => {
        if (Exit.isSuccess(exit)) checkItem(stats, key, exit.value)
        else if (Cause.isFailType(exit.cause) && exit.cause.error._tag === "TimeoutException") stats.interrupted++
        else note(stats, `timeout-raced get ${key}: ${Cause.pretty(exit.cause)}`)
      })
    }
    if (r < 0.985) {
      // Fork, let it run for 0–3 scheduler turns (so it may be before, during or after its write), interrupt.
      return Effect.gen(function* () {
        const fiber = yield* Effect.fork(mc.get(key))
        for (let i = (Math.random() * 4) | 0; i > 0; i--) yield* Effect.yieldNow()
        const exit = yield* Fiber.interrupt(fiber)
        if (Exit.isSuccess(exit)) checkItem(stats, key, exit.value)
        else if (Exit.isInterrupted(exit)) stats.interrupted++
        else note(stats, `interrupted get ${key}: ${Cause.pretty(exit.cause)}`)
      })
    }
    if (r < 0.998) {
      // Two gets race, the loser is interrupted; the winner must carry its own key's value.
      stats.ops++
      const other = randomKey()
      return Effect.matchCause(Effect.race(mc.get(key), mc.get(other)), {
        onSuccess: (item) => {
          stats.interrupted++
          checkItem(stats, item.key, item)
          if (item.key !== key && item.key !== other) {
            stats.mixedUp++
            note(stats, `race of ${key} and ${other} won by ${item.key}`)
          }
        },
        onFailure: (cause) => note(stats, `race ${key}/${other}: ${Cause.pretty(cause)}`),
      })
    }
    // A multi-get (one pipeline per server) raced against a 0–2 ms timer.
    const many = [key, randomKey(), randomKey(), randomKey(), randomKey()]
    stats.ops += many.length - 1
    return Effect.map(Effect.exit(Effect.timeout(mc.getMulti(many), Math.random() * 2)), (exit) => {
      if (Exit.isSuccess(exit)) {
        for (const [k, item] of exit.value) checkItem(stats, k, item)
        if (exit.value.size !== new Set(many).size) note(stats, `getMulti returned ${exit.value.size} of ${new Set(many).size}`)
      } else if (Cause.isFailType(exit.cause) && exit.cause.error._tag === "TimeoutException") stats.interrupted++
      else note(stats, `getMulti: ${Cause.pretty(exit.cause)}`)
    })
  })
  const worker = Effect.whileLoop({
    while: () => stats.ops < TARGET_OPS && Date.now() < deadline,
    body: () => step,
    step: () => {},
  })
  return Effect.all(Array.from({ length: WORKERS }, () => worker), { concurrency: "unbounded", discard: true })
}

describe("interrupt storm", () => {
  it.live(
    `${TARGET_OPS.toLocaleString("en")} operations over three servers with random interruptions and 5 ms deadlines`,
    () =>
      Effect.gen(function* () {
        const mc = yield* McClient
        const prefix = uniqueKey("storm")
        const keys = Array.from({ length: KEYS }, (_, i) => `${prefix}:${i}`)
        yield* Effect.forEach(keys, (key) => mc.set({ key, value: key }), { concurrency: 256, discard: true })

        const stats: Stats = { ops: 0, ok: 0, timeouts: 0, interrupted: 0, mixedUp: 0, unexpected: [] }
        const start = Date.now()
        yield* storm(mc, keys, stats, start + TIME_LIMIT_MS)
        const millis = Date.now() - start

        // Every connection is still in step after the storm.
        const after = keys.filter((_, i) => i % 20 === 0)
        const items = yield* Effect.forEach(after, (key) => mc.get(key), { concurrency: 64 })
        items.forEach((item, i) => checkItem(stats, after[i]!, item))

        const opsPerSec = Math.round((stats.ops / millis) * 1000)
        console.log(
          `InterruptStorm: ${stats.ops} ops in ${millis} ms (${opsPerSec} ops/s, ${WORKERS} fibers, 3 servers): ` +
            `${stats.ok} ok, ${stats.timeouts} Timeout (5 ms deadlines), ${stats.interrupted} interrupted, ` +
            `${stats.mixedUp} mixed-up replies`,
        )
        expect(stats.unexpected).toEqual([])
        expect(stats.mixedUp).toBe(0)
        expect(stats.ops).toBeGreaterThanOrEqual(TARGET_OPS)
        // The interruptions and deadlines really happened.
        expect(stats.interrupted).toBeGreaterThan(1000)
      }).pipe(Effect.provide(McClient.layer({ servers: inject("memcachedCluster"), timeout: "5 seconds" }))),
    60_000,
  )
})
