/**
 * Deadlines, server health and retries (issue 8): hostile-path tests of the reliability core.
 *
 * - A caller's deadline is the caller's: per call (longer or shorter than the client's), across
 *   retries, possibly infinite. It never closes a connection or marks a server down.
 * - A server's health is judged by `stallTimeout` alone: while requests are pending a whole reply
 *   must arrive within it; trickled bytes are not progress.
 * - `retry` is a Schedule: `recurs(n)` is n retries, `Schedule.stop` none, the default two.
 *
 * Fakes are test/support/scriptedServer.ts; test 3 runs a memcached of its own.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Logger, Schedule, type Scope } from "effect"
import { make, type McClientOptions } from "../../src/index.js"
import { startMemcached } from "../../scripts/memcached.js"
import { failureOf, failureTag } from "../support/exits.js"
import { uniqueKey } from "../support/layers.js"
import { type Fault, normal, type ScriptedServer, type ScriptedServerOptions, scriptedServer } from "../support/scriptedServer.js"

const decoder = new TextDecoder()

/** A scripted server closed with the test's scope. */
const scripted = (options: ScriptedServerOptions = {}): Effect.Effect<ScriptedServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => scriptedServer(options)),
    (s) => Effect.promise(() => s.close()),
  )

/** The health messages the client logs ("marked down", "back up"), with the time they were logged. */
const captureHealth = () => {
  const lines: Array<{ readonly at: number; readonly text: string }> = []
  const logger = Logger.make(({ message }) => {
    const text = Array.isArray(message) ? message.join(" ") : String(message)
    if (text.includes("marked down") || text.includes("back up")) lines.push({ at: performance.now(), text })
  })
  return { lines, downs: () => lines.filter((l) => l.text.includes("marked down")), layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** A client in the test's scope whose health log is captured. */
const clientWithHealth = (options: McClientOptions) =>
  Effect.gen(function* () {
    const health = captureHealth()
    const mc = yield* make(options).pipe(Effect.provide(health.layer))
    return { mc, health }
  })

const timed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.suspend(() => {
    const start = performance.now()
    return Effect.map(Effect.exit(effect), (exit) => ({ exit, millis: performance.now() - start }))
  })

/** Puts `key` → value `key` straight into a scripted server's store (plain keys: the store key is the key). */
const preload = (server: ScriptedServer, keys: ReadonlyArray<string>) => {
  for (const key of keys) server.store.set(key, { value: Buffer.from(key, "latin1"), flags: 0, cas: 1n, exp: 0 })
}

const mgCount = (server: ScriptedServer) => server.requests.filter((r) => r.command === "mg").length

/** Every request but the very first (connection 0's version check) gets `fault`: probes never pass. */
const allButFirst =
  (fault: Fault) =>
  (r: { readonly index: number }): Fault =>
    r.index === 0 ? normal : fault

describe("deadlines and server health", () => {
  // Old behaviour: any byte counted as progress, so a server trickling one byte every 50 ms was
  // never judged stuck: the get waited for the whole trickled reply (or timed out) and the server
  // stayed in rotation, every later call paying the same.
  it.scopedLive("a slow-loris server (1 byte / 50 ms) is marked down within the stall window and its keys fail over", () =>
    Effect.gen(function* () {
      const stall = 300
      const slow = yield* scripted({ script: allButFirst({ kind: "trickle", bytesPerTick: 1, intervalMillis: 50 }) })
      const good = yield* scripted()
      // Long keys: a trickled VA reply (key as value) takes several seconds.
      const keys = Array.from({ length: 5 }, (_, i) => `slowloris-${i}-${"x".repeat(40)}`)
      preload(slow, keys)
      preload(good, keys)
      const { mc, health } = yield* clientWithHealth({
        servers: [slow.address, good.address],
        pickServer: () => [slow.address, good.address],
        timeout: "3 seconds",
        stallTimeout: `${stall} millis`,
        dialTimeout: "200 millis",
        disableBinaryEncodedKeys: true,
      })

      const start = performance.now()
      const first = yield* timed(mc.get(keys[0]!))
      // The first get is retried after the stall: it fails over to the good server.
      expect(failureTag(first.exit)).toBe("Success")
      if (Exit.isSuccess(first.exit)) expect(decoder.decode(first.exit.value.value)).toBe(keys[0])
      const downs = health.downs()
      expect(downs.length).toBe(1)
      expect(downs[0]!.text).toContain(slow.address)
      expect(downs[0]!.text).toContain("stalled")
      const downAfter = downs[0]!.at - start
      // Judged by the stall window (not earlier), with a margin for a loaded machine; a whole
      // trickled reply would take > 3 s.
      expect(downAfter).toBeGreaterThanOrEqual(stall - 5)
      expect(downAfter).toBeLessThan(stall + 300)
      expect(first.millis).toBeLessThan(stall + 400)

      // Later gets go straight to the good server: fast, right values, and the slow one sees none.
      const slowMgBefore = mgCount(slow)
      const later = yield* Effect.forEach(keys.slice(1), (key) => timed(mc.get(key)))
      later.forEach(({ exit }, i) => {
        expect(failureTag(exit)).toBe("Success")
        if (Exit.isSuccess(exit)) expect(decoder.decode(exit.value.value)).toBe(keys[i + 1])
      })
      expect(Math.max(...later.map((l) => l.millis))).toBeLessThan(100)
      expect(mgCount(slow)).toBe(slowMgBefore)
      expect(good.requests.filter((r) => r.command === "mg").map((r) => r.key)).toEqual(keys)
      console.log(
        `Deadlines slow-loris: marked down ${downAfter.toFixed(0)} ms after the get (stallTimeout ${stall} ms); ` +
          `first get succeeded via failover in ${first.millis.toFixed(0)} ms; later gets max ${Math.max(...later.map((l) => l.millis)).toFixed(1)} ms`,
      )
    }),
  )

  // Old behaviour: the connection judged deadlines with the client's timeout, so a call's own
  // longer timeout was cut at 200 ms, and a late reply could mark a healthy server down.
  it.scopedLive("a per-call deadline longer than the client's is honoured; a shorter one fails at its own time", () =>
    Effect.gen(function* () {
      const server = yield* scripted({ script: (r) => (r.command === "mg" ? { kind: "delay", millis: 400 } : normal) })
      const key = uniqueKey("late")
      preload(server, [key])
      const { mc, health } = yield* clientWithHealth({
        servers: [server.address],
        timeout: "200 millis",
        disableBinaryEncodedKeys: true,
      })

      const long = yield* timed(mc.get(key, { timeout: "2 seconds" }))
      expect(failureTag(long.exit)).toBe("Success")
      if (Exit.isSuccess(long.exit)) expect(decoder.decode(long.exit.value.value)).toBe(key)
      expect(long.millis).toBeGreaterThanOrEqual(390)
      expect(long.millis).toBeLessThan(1000)

      const short = yield* timed(mc.get(key, { timeout: "250 millis" }))
      expect(failureOf(short.exit)).toMatchObject({ _tag: "Timeout", timeoutMillis: 250, server: server.address })
      expect(short.millis).toBeGreaterThanOrEqual(240)
      expect(short.millis).toBeLessThan(400)

      // The same connection still serves: nothing was closed, nothing marked down.
      const again = yield* timed(mc.get(key, { timeout: "2 seconds" }))
      expect(failureTag(again.exit)).toBe("Success")
      expect(server.connections).toBe(1)
      expect(health.lines).toEqual([])
      console.log(
        `Deadlines per call: 2 s call succeeded after ${long.millis.toFixed(0)} ms against a 400 ms server (client timeout 200 ms); ` +
          `250 ms call timed out after ${short.millis.toFixed(0)} ms; connections opened ${server.connections}`,
      )
    }),
  )

  // Old behaviour: a deadline of 0–1 ms that passed before the (healthy, local) server answered
  // counted against the server: it was marked down and later callers got ConnectionError.
  it.scopedLive("1 ms deadlines never take a healthy memcached out", () =>
    Effect.gen(function* () {
      const proc = yield* Effect.acquireRelease(
        Effect.promise(() => startMemcached()),
        (p) => Effect.promise(() => p.stop("SIGKILL")),
      )
      const { mc, health } = yield* clientWithHealth({ servers: [proc.address], timeout: "1 millis" })
      const prefix = uniqueKey("tiny")
      const keys = Array.from({ length: 2000 }, (_, i) => `${prefix}:${i}`)
      const tags: Record<string, number> = {}
      let mixUps = 0
      const count = (key: string, exit: Exit.Exit<unknown, { readonly _tag: string }>) => {
        const tag = failureTag(exit)
        tags[tag] = (tags[tag] ?? 0) + 1
        const value = Exit.isSuccess(exit) ? (exit.value as { readonly value?: Uint8Array } | undefined)?.value : undefined
        if (value !== undefined && decoder.decode(value) !== key) mixUps++
      }

      // The client's 1 ms timeout from the first call on (the connection is still being opened).
      for (const key of keys.slice(0, 20)) count(key, yield* Effect.exit(mc.set({ key, value: key })))
      yield* Effect.forEach(keys, (key) => mc.set({ key, value: key }, { timeout: "1 second" }), { concurrency: 100, discard: true })
      // A burst of 2,000 gets at 1 ms each.
      const burst = yield* Effect.forEach(keys, (key) => Effect.exit(mc.get(key, { timeout: "1 millis" })), { concurrency: "unbounded" })
      burst.forEach((exit, i) => count(keys[i]!, exit))
      // And single gets at the client's 1 ms.
      for (const key of keys.slice(0, 50)) count(key, yield* Effect.exit(mc.get(key)))

      // Afterwards the server is fine.
      const after = yield* Effect.forEach(keys, (key) => Effect.exit(mc.get(key, { timeout: "1 second" })), { concurrency: 200 })
      const afterTags: Record<string, number> = {}
      after.forEach((exit, i) => {
        const tag = failureTag(exit)
        afterTags[tag] = (afterTags[tag] ?? 0) + 1
        if (Exit.isSuccess(exit) && decoder.decode(exit.value.value) !== keys[i]) mixUps++
      })
      console.log(
        `Deadlines 1 ms: outcomes at 1 ms ${JSON.stringify(tags)}; then at 1 s ${JSON.stringify(afterTags)}; mix-ups ${mixUps}; ` +
          `health log ${JSON.stringify(health.lines.map((l) => l.text))}`,
      )
      // Short deadlines time out, nothing else.
      expect(Object.keys(tags).filter((t) => t !== "Success" && t !== "Timeout")).toEqual([])
      expect(tags["Timeout"] ?? 0).toBeGreaterThan(0)
      expect(afterTags).toEqual({ Success: keys.length })
      expect(mixUps).toBe(0)
      expect(health.lines).toEqual([])
    }),
  )

  // Old behaviour: stall detection rode on the caller's deadline, so with `timeout: Infinity` a
  // stalled server was never detected and the call hung for ever.
  it.scopedLive("an infinite timeout still has stall detection", () =>
    Effect.gen(function* () {
      const stall = 300
      const stalled = yield* scripted({ script: allButFirst({ kind: "stall" }) })
      const { mc, health } = yield* clientWithHealth({
        servers: [stalled.address],
        timeout: Duration.infinity,
        stallTimeout: `${stall} millis`,
        disableBinaryEncodedKeys: true,
      })
      // Bounded here so that a hang fails the test instead of the run.
      const alone = yield* timed(mc.get("stalled-key").pipe(Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => ({ _tag: "Hung" as const }) })))
      expect(failureOf(alone.exit)).toMatchObject({ _tag: "ConnectionError", server: stalled.address })
      expect((failureOf(alone.exit) as { readonly reason: string }).reason).toContain("stalled")
      expect(alone.millis).toBeGreaterThanOrEqual(stall - 5)
      expect(alone.millis).toBeLessThan(1000)
      expect(health.downs().length).toBe(1)

      // With a second server the same call fails over and succeeds.
      const stalled2 = yield* scripted({ script: allButFirst({ kind: "stall" }) })
      const good = yield* scripted()
      preload(good, ["failover-key"])
      const { mc: pair } = yield* clientWithHealth({
        servers: [stalled2.address, good.address],
        pickServer: () => [stalled2.address, good.address],
        timeout: Duration.infinity,
        stallTimeout: `${stall} millis`,
        disableBinaryEncodedKeys: true,
      })
      const over = yield* timed(pair.get("failover-key").pipe(Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => ({ _tag: "Hung" as const }) })))
      expect(failureTag(over.exit)).toBe("Success")
      if (Exit.isSuccess(over.exit)) expect(decoder.decode(over.exit.value.value)).toBe("failover-key")
      expect(over.millis).toBeLessThan(1000)
      console.log(
        `Deadlines infinite timeout: stalled server gave ConnectionError after ${alone.millis.toFixed(0)} ms ` +
          `(stallTimeout ${stall} ms); with a second server the get succeeded after ${over.millis.toFixed(0)} ms`,
      )
    }),
  )
})

describe("retries are a Schedule", () => {
  /** A server that destroys the connection on every mg; the mg it saw per call are the attempts. */
  const attemptsWith = (retry: Schedule.Schedule<unknown, unknown> | undefined) =>
    Effect.scoped(
      Effect.gen(function* () {
        const server = yield* scripted({ script: (r) => (r.command === "mg" ? { kind: "close" } : normal) })
        const { mc, health } = yield* clientWithHealth({
          servers: [server.address],
          timeout: "5 seconds",
          dialTimeout: "200 millis",
          disableBinaryEncodedKeys: true,
          ...(retry === undefined ? {} : { retry }),
        })
        const get = yield* timed(mc.get("closing-key"))
        const getAttempts = mgCount(server)
        const many = yield* timed(mc.getMulti(["closing-a", "closing-b", "closing-c"]))
        const manyAttempts = mgCount(server) - getAttempts
        return { get, getAttempts, many, manyAttempts, downs: health.downs().length }
      }),
    )

  // Old behaviour: recurs(0) still retried once (the failed attempt was not the schedule's first
  // input), and the default made 4 attempts.
  it.live("recurs(n) is n retries; stop and recurs(0) none; the default two", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, Schedule.Schedule<unknown, unknown> | undefined, number]> = [
        ["recurs(0)", Schedule.recurs(0), 1],
        ["stop", Schedule.stop, 1],
        ["recurs(2)", Schedule.recurs(2), 3],
        ["default", undefined, 3],
      ]
      const seen: Array<string> = []
      for (const [name, retry, attempts] of cases) {
        const r = yield* attemptsWith(retry)
        seen.push(`${name}: get ${r.getAttempts}, getMulti ${r.manyAttempts}`)
        expect(failureOf(r.get.exit)).toMatchObject({ _tag: "ConnectionError" })
        expect(failureOf(r.many.exit)).toMatchObject({ _tag: "ConnectionError" })
        expect({ name, get: r.getAttempts, getMulti: r.manyAttempts }).toEqual({ name, get: attempts, getMulti: attempts })
        // A ready connection that closed says nothing about the server.
        expect(r.downs).toBe(0)
        expect(r.get.millis).toBeLessThan(1000)
      }
      console.log(`Deadlines retries (attempts seen by the server): ${seen.join("; ")}`)
    }),
  )

  /** A call against a server that always closes, with `retry` and a 250 ms timeout: how long it takes. */
  const retriesAgainstClosing = (retry: Schedule.Schedule<unknown, unknown>) =>
    Effect.scoped(
      Effect.gen(function* () {
        const server = yield* scripted({ script: (r) => (r.command === "mg" ? { kind: "close" } : normal) })
        const mc = yield* make({
          servers: [server.address],
          timeout: "250 millis",
          retry,
          dialTimeout: "200 millis",
          disableBinaryEncodedKeys: true,
        })
        const bound = <A, E>(e: Effect.Effect<A, E>) =>
          e.pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => ({ _tag: "Hung" as const }) }))
        const get = yield* timed(bound(mc.get("always-closed")))
        const getAttempts = mgCount(server)
        const many = yield* timed(bound(mc.getMulti(["always-a", "always-b"])))
        return { get, getAttempts, many: many as { readonly exit: Exit.Exit<unknown, { readonly _tag: string }>; readonly millis: number } }
      }),
    )

  // Old behaviour: each retry got a fresh deadline, so a spaced schedule retried for ever.
  it.live("retries stay within the call's deadline (spaced 100 ms, timeout 250 ms)", () =>
    Effect.gen(function* () {
      const { get, getAttempts, many } = yield* retriesAgainstClosing(Schedule.spaced("100 millis"))
      console.log(
        `Deadlines retry within deadline: get ended with ${failureTag(get.exit)} after ${get.millis.toFixed(0)} ms (${getAttempts} attempts), ` +
          `getMulti with ${failureTag(many.exit)} after ${many.millis.toFixed(0)} ms; timeout 250 ms, spaced 100 ms`,
      )
      for (const { exit, millis } of [get, many]) {
        expect(["Timeout", "ConnectionError"]).toContain(failureTag(exit))
        expect(millis).toBeLessThan(400)
      }
      // It did retry (0, 100, 200 ms, …), and not for ever.
      expect(getAttempts).toBeGreaterThanOrEqual(2)
      expect(getAttempts).toBeLessThanOrEqual(4)
    }),
  )

  // A retry delay longer than what is left of the deadline must not stretch the call: the call's
  // timeout is its own across retries. (Fails on the current core: the schedule's delay is slept
  // in full, then the call times out, ~1 s for a 250 ms call; see the report.)
  it.live("a retry delay past the deadline does not stretch the call (spaced 1 s, timeout 250 ms)", () =>
    Effect.gen(function* () {
      const { get, getAttempts, many } = yield* retriesAgainstClosing(Schedule.spaced("1 second"))
      console.log(
        `Deadlines retry delay past the deadline: get ended with ${failureTag(get.exit)} after ${get.millis.toFixed(0)} ms (${getAttempts} attempts), ` +
          `getMulti with ${failureTag(many.exit)} after ${many.millis.toFixed(0)} ms; timeout 250 ms, spaced 1 s`,
      )
      for (const { exit, millis } of [get, many]) {
        expect(["Timeout", "ConnectionError"]).toContain(failureTag(exit))
        expect(millis).toBeLessThan(400)
      }
    }),
  )
})
