/**
 * Kill and restart under load: three memcached processes of the test's own, 50 fibers doing
 * set-then-get of keys whose value is the key's name, and one server SIGKILLed mid-load, then
 * restarted on the same port; twice, a different server each time.
 *
 * What must hold:
 * - no operation takes longer than its timeout plus a small margin (nothing hangs);
 * - a failure is typed (ConnectionError or Timeout; a get may miss when its key moved between
 *   servers), and once the dead server is marked down its keys succeed on an alternate;
 * - no get ever returns another key's value;
 * - the restarted server is used again within a second of accepting connections.
 *
 * Durations are measured with the test process's own pauses taken out (a GC pause, or the OS not
 * scheduling us on a busy machine): while the process is frozen no client can answer, and the
 * point is to catch operations that wait on the client, not on the machine. Both figures are
 * printed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { makeKetamaRing, make, parseServerSpec } from "../../src/index.js"
import { type MemcachedProcess, startMemcached } from "../../scripts/memcached.js"
import { failureOf, failureTag } from "../support/exits.js"
import { refusedAddress } from "../support/fakeServer.js"
import { uniqueKey } from "../support/layers.js"

const TIMEOUT_MS = 100
// Scheduling noise on a loaded 2-core machine; an op that hangs would take far longer.
const MARGIN_MS = 60
const FIBERS = 50
const KEYS = 3000
const decoder = new TextDecoder()

const OUTCOMES = ["Success", "CacheMiss", "ConnectionError", "Timeout"] as const

/**
 * The process's own pauses: a 2 ms interval that fires late means the event loop was frozen.
 * `pausedDuring(from, to)` is how much of that span the process spent frozen.
 */
const pauseMonitor = () => {
  const pauses: Array<readonly [number, number]> = []
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    if (now - last > 12) pauses.push([last + 2, now])
    last = now
  }, 2)
  return {
    pauses,
    stop: () => clearInterval(timer),
    pausedDuring: (from: number, to: number) => {
      let sum = 0
      for (const [a, b] of pauses) sum += Math.max(0, Math.min(b, to) - Math.max(a, from))
      return sum
    },
  }
}

const startCluster = Effect.acquireRelease(
  Effect.promise(() => Promise.all([startMemcached(), startMemcached(), startMemcached()])),
  (procs) => Effect.promise(() => Promise.all(procs.map((p) => p.stop("SIGKILL")))),
)

interface Cycle {
  readonly victim: string
  readonly killedAt: number
  /** when the restart began: the server may accept a little before startMemcached sees it */
  readonly restartingAt: number
  readonly restartedAt: number
  readonly recoveredAt: number | undefined
}

describe("kill and restart under load", () => {
  it.scopedLive(
    "SIGKILL of a server mid-load: bounded latency, typed failures, failover, no mixed-up values, fast recovery",
    () =>
      Effect.gen(function* () {
        const procs: Array<MemcachedProcess> = [...(yield* startCluster)]
        // Restarted processes replace their entry; this finalizer stops whatever runs at the end.
        yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all(procs.map((p) => p.stop("SIGKILL")))))
        const servers = procs.map((p) => p.address)
        const ring = makeKetamaRing(servers.map((s) => parseServerSpec(s)))
        const primaryOf = (key: string) => ring.pick(key)[0]!
        const mc = yield* make({ servers, timeout: `${TIMEOUT_MS} millis`, dialTimeout: `${TIMEOUT_MS} millis` })

        const prefix = uniqueKey("kill")
        const keys = Array.from({ length: KEYS }, (_, i) => `${prefix}:${i}`)
        // One record per operation, in parallel arrays of numbers (cheap for the GC).
        const endAt: Array<number> = []
        const millis: Array<number> = []
        const keyIndex: Array<number> = []
        const isGet: Array<boolean> = []
        const outcome: Array<number> = []
        const other: Array<string> = [] // outcomes outside OUTCOMES (must stay empty)
        const failedOn = new Map<number, string>() // record → the server the failure names
        const mixedUp: Array<string> = []
        let running = true

        const timed = <A, E extends { readonly _tag: string }>(k: number, get: boolean, effect: Effect.Effect<A, E>) =>
          Effect.suspend(() => {
            const start = performance.now()
            return Effect.map(Effect.exit(effect), (exit) => {
              const end = performance.now()
              const tag = failureTag(exit)
              const code = OUTCOMES.indexOf(tag as (typeof OUTCOMES)[number])
              if (code < 0) other.push(`${get ? "get" : "set"} ${keys[k]}: ${tag}`)
              const server = (failureOf(exit) as { readonly server?: string } | undefined)?.server
              if (server !== undefined) failedOn.set(endAt.length, server)
              endAt.push(end)
              millis.push(end - start)
              keyIndex.push(k)
              isGet.push(get)
              outcome.push(code)
              return exit
            })
          })

        // A watchdog: the workers stop on their own even if the test's timers could not run.
        const hardStop = performance.now() + 15_000
        const worker = Effect.whileLoop({
          while: () => running && performance.now() < hardStop,
          body: () =>
            Effect.gen(function* () {
              const k = (Math.random() * keys.length) | 0
              const key = keys[k]!
              yield* timed(k, false, mc.set({ key, value: key }))
              const got = yield* timed(k, true, mc.get(key))
              if (Exit.isSuccess(got) && (got.value.key !== key || decoder.decode(got.value.value) !== key)) {
                mixedUp.push(`${key} got ${got.value.key}=${decoder.decode(got.value.value)}`)
              }
            }),
          step: () => {},
        })
        const monitor = pauseMonitor()
        const load = yield* Effect.fork(
          Effect.all(Array.from({ length: FIBERS }, () => worker), { concurrency: "unbounded", discard: true }),
        )

        const cycles: Array<Cycle> = []
        for (const victimIndex of [0, 1]) {
          yield* Effect.sleep("500 millis")
          const victim = procs[victimIndex]!
          // A key (not one of the workers') whose primary is the victim: once the victim is back,
          // the client must write it there.
          let probeKey = `${prefix}:probe:0`
          for (let i = 1; primaryOf(probeKey) !== victim.address; i++) probeKey = `${prefix}:probe:${i}`
          const direct = yield* make({ servers: [victim.address], pickServer: () => [victim.address], timeout: "100 millis" })

          const killedAt = performance.now()
          yield* Effect.promise(() => victim.stop("SIGKILL"))
          yield* Effect.sleep("800 millis")
          const restartingAt = performance.now()
          procs[victimIndex] = yield* Effect.promise(() => startMemcached({ port: victim.port }))
          const restartedAt = performance.now()

          // Until the restarted server holds what the client writes for a key it owns.
          let recoveredAt: number | undefined
          for (let i = 0; recoveredAt === undefined && performance.now() - restartedAt < 3000; i++) {
            const marker = `${probeKey}#${i}`
            yield* Effect.exit(mc.set({ key: probeKey, value: marker }))
            const seen = yield* Effect.exit(direct.get(probeKey))
            if (Exit.isSuccess(seen) && decoder.decode(seen.value.value) === marker) recoveredAt = performance.now()
            else yield* Effect.sleep("5 millis")
          }
          cycles.push({ victim: victim.address, killedAt, restartingAt, restartedAt, recoveredAt })
        }
        yield* Effect.sleep("500 millis")
        running = false
        yield* Fiber.join(load)
        monitor.stop()

        // ---- figures
        const n = endAt.length
        const phaseOf = (i: number): string => {
          const at = endAt[i]!
          for (const [c, cycle] of cycles.entries()) {
            if (at >= cycle.killedAt && at < cycle.killedAt + 250) return `kill ${c + 1}`
            if (at >= cycle.killedAt && at < cycle.restartingAt) return `down ${c + 1}`
            if (at >= cycle.restartingAt && at < cycle.restartedAt + 1000) return `restart ${c + 1}`
          }
          return "elsewhere"
        }
        const describeOp = (i: number) =>
          `${isGet[i] ? "get" : "set"} ${OUTCOMES[outcome[i]!] ?? "?"}${failedOn.has(i) ? ` (${failedOn.get(i)})` : ""}`
        const byOutcome: Record<string, number> = {}
        const failures: Record<string, number> = {}
        let slowest = 0
        let slowestActive = 0
        const overBound: Array<string> = []
        for (let i = 0; i < n; i++) {
          const name = OUTCOMES[outcome[i]!] ?? "other"
          byOutcome[name] = (byOutcome[name] ?? 0) + 1
          if (outcome[i] !== 0) {
            const where = `${describeOp(i).replace(/ \(.*\)/, "")} at ${phaseOf(i)}`
            failures[where] = (failures[where] ?? 0) + 1
          }
          const ms = millis[i]!
          slowest = Math.max(slowest, ms)
          if (ms > slowestActive) {
            const active = ms - monitor.pausedDuring(endAt[i]! - ms, endAt[i]!)
            slowestActive = Math.max(slowestActive, active)
            if (active >= TIMEOUT_MS + MARGIN_MS) {
              overBound.push(`${describeOp(i)} took ${ms.toFixed(0)} ms (${active.toFixed(0)} ms not paused), ending at ${phaseOf(i)}`)
            }
          }
        }
        const longestPause = monitor.pauses.reduce((m, [a, b]) => Math.max(m, b - a), 0)
        console.log(
          `KillRestart: ${n} ops by ${FIBERS} fibers over 3 servers, ${cycles.length} SIGKILLs injected; ` +
            `outcomes ${JSON.stringify(byOutcome)}; mixed-up responses ${mixedUp.length}; ` +
            `slowest op ${slowest.toFixed(0)} ms, ${slowestActive.toFixed(0)} ms without the process's own pauses ` +
            `(${monitor.pauses.length} pauses, longest ${longestPause.toFixed(0)} ms); ` +
            cycles
              .map(
                (c, i) =>
                  `cycle ${i + 1}: restarted ${(c.restartedAt - c.killedAt).toFixed(0)} ms after the kill, ` +
                  `used again ${c.recoveredAt === undefined ? "never" : `${(c.recoveredAt - c.restartedAt).toFixed(0)} ms`} after the restart`,
              )
              .join("; "),
        )
        console.log(`KillRestart failures by phase: ${JSON.stringify(failures)}`)

        // ---- assertions
        expect(mixedUp).toEqual([])
        // Only typed failures: the connection ones, and misses of gets whose key moved between servers.
        expect(other).toEqual([])
        for (let i = 0; i < n; i++) if (OUTCOMES[outcome[i]!] === "CacheMiss") expect(isGet[i]).toBe(true)
        // Bounded latency: nothing waits longer than its deadline plus scheduling noise, and nothing
        // comes anywhere near hanging even counting the pauses.
        expect(overBound).toEqual([])
        expect(slowest).toBeLessThan(1000)
        for (const c of cycles) {
          const ofVictim = (i: number) => primaryOf(keys[keyIndex[i]!]!) === c.victim
          // Failover: once marked down (well within 250 ms of the kill), the victim's keys succeed elsewhere.
          const whileDown: Array<number> = []
          for (let i = 0; i < n; i++) {
            if (endAt[i]! > c.killedAt + 250 && endAt[i]! < c.restartingAt && ofVictim(i)) whileDown.push(i)
          }
          expect(whileDown.length).toBeGreaterThan(100)
          expect(whileDown.filter((i) => outcome[i] !== 0).map(describeOp)).toEqual([])
          // Recovery: the restarted server is used again within a second.
          expect(c.recoveredAt).toBeDefined()
          expect(c.recoveredAt! - c.restartedAt).toBeLessThan(1000)
        }
        // Keys of the servers that were never killed never failed.
        const victims = new Set(cycles.map((c) => c.victim))
        const otherFailures: Array<string> = []
        for (let i = 0; i < n; i++) {
          if (outcome[i] !== 0 && !victims.has(primaryOf(keys[keyIndex[i]!]!))) otherFailures.push(`${describeOp(i)} at ${phaseOf(i)}`)
        }
        expect(otherFailures).toEqual([])
      }),
    30_000,
  )

  // Regression: when every server a key can use is marked down, operations fail fast. Had they
  // failed synchronously inside their `Effect.async` registration, fibers looping on them would
  // never leave Effect's scheduler (it yields to the event loop only after 2,048 rounds of every
  // runnable fiber), so timers, I/O and the health probes would starve and a server that comes
  // back would never be noticed. The transport fails them one event loop turn later instead.
  it.live(
    "with every server down, a loop of fail-fast operations still lets timers and probes run",
    () =>
      Effect.gen(function* () {
        const servers = [yield* Effect.promise(refusedAddress), yield* Effect.promise(refusedAddress)]
        const mc = yield* make({ servers, timeout: "100 millis", dialTimeout: "100 millis" })
        const keys = Array.from({ length: 100 }, (_, i) => `down:${i}`)
        // Mark both down (refused dials).
        yield* Effect.forEach(keys, (key) => Effect.exit(mc.get(key)), { concurrency: 10, discard: true })
        expect(failureTag(yield* Effect.exit(mc.get(keys[0]!)))).toBe("ConnectionError")

        let ticks = 0
        let maxGap = 0
        let last = performance.now()
        const interval = setInterval(() => {
          const now = performance.now()
          maxGap = Math.max(maxGap, now - last)
          last = now
          ticks++
        }, 10)
        const until = performance.now() + 500
        let ops = 0
        const worker = Effect.whileLoop({
          while: () => performance.now() < until,
          body: () => {
            ops++
            return Effect.exit(mc.get(keys[ops % keys.length]!))
          },
          step: () => {},
        })
        yield* Effect.all(Array.from({ length: 20 }, () => worker), { concurrency: "unbounded", discard: true })
        maxGap = Math.max(maxGap, performance.now() - last)
        clearInterval(interval)
        console.log(`KillRestart all-down: ${ops} fail-fast ops in 500 ms; a 10 ms interval fired ${ticks} times, longest gap ${maxGap.toFixed(0)} ms`)
        expect(maxGap).toBeLessThan(100)
      }).pipe(Effect.scoped),
    10_000,
  )
})
