/**
 * Connection life cycle against real memcached (each test starts its own, on a free port).
 *
 * - Closing the layer while thousands of gets are in flight over a grown pool fails them at once
 *   with `ConnectionError` and leaves no socket to the server (memcached's own `curr_connections`
 *   and this process's active TCP handles both say so).
 * - Rotation (`connMaxLifetime`) under bursts closes every rotated connection: the number of open
 *   connections stays bounded, and none remains after close.
 * - A server marked down (it stalls: SIGSTOP) has no connection from the client left, apart from
 *   the probe's one attempt at a time.
 * - A process that closes a busy layer exits by itself.
 *
 * Old behaviour (before the rewrite): `ServerPool.close` and the mark-down path iterated the
 * connection array while each connection's `onClose` spliced itself out of it, so every other
 * connection was skipped and stayed ESTABLISHED; and rotated (draining) connections were dropped
 * from the pool without ever being closed.
 */
import { spawn } from "node:child_process"
import * as net from "node:net"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import { McClient, make } from "../../src/index.js"
import { type MemcachedProcess, startMemcached } from "../../scripts/memcached.js"
import { failureOf, failureTag } from "../support/exits.js"
import { uniqueKey } from "../support/layers.js"
import { textRequest } from "../support/textProtocol.js"
import { captureHealth } from "../support/logs.js"
import { stopProcess } from "../support/signals.js"

const decoder = new TextDecoder()

/** A memcached of this test's own, stopped (after a SIGCONT, in case it was paused) at the end. */
const ownMemcached = Effect.acquireRelease(
  Effect.promise(() => startMemcached()),
  (p) =>
    Effect.promise(async () => {
      if (p.process.exitCode === null) p.process.kill("SIGCONT")
      await p.stop("SIGKILL")
    }),
)

let statCalls = 0
/** memcached's `stats` value `name` (this stats request's own connection included). */
const stat = (server: string, name: string) =>
  Effect.promise(() => {
    statCalls++
    return textRequest(server, "stats\r\n")
  }).pipe(
    Effect.map((text) => {
      const m = new RegExp(`STAT ${name} (\\d+)`).exec(text)
      if (m === null) throw new Error(`no ${name} in stats`)
      return Number(m[1])
    }),
  )

/** Open TCP handles of this process (`TCPSocketWrap`). */
const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length

/** Polls `check` every 10 ms until it holds or `millis` passed; the last value. */
const settle = <A>(measure: Effect.Effect<A>, check: (a: A) => boolean, millis: number) =>
  Effect.gen(function* () {
    const until = Date.now() + millis
    let a = yield* measure
    while (!check(a) && Date.now() < until) {
      yield* Effect.sleep("10 millis")
      a = yield* measure
    }
    return a
  })

/**
 * A stat once two reads 10 ms apart agree: right after start, memcached may still count a
 * connection that already closed (the readiness probe's, an earlier stats connection's), and a
 * baseline that counts it makes a later count look one lower.
 */
const settledStat = (server: string, name: string) =>
  Effect.gen(function* () {
    const until = Date.now() + 2000
    let last = yield* stat(server, name)
    while (Date.now() < until) {
      yield* Effect.sleep("10 millis")
      const now = yield* stat(server, name)
      if (now === last) break
      last = now
    }
    return last
  })

/** Values encode their key, ~`size` bytes (big values make replies take a while to arrive). */
const valueOf = (key: string, size = 16) => `${key}|`.repeat(Math.max(1, Math.ceil(size / (key.length + 1))))

const countBy = (tags: ReadonlyArray<string>): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const t of tags) out[t] = (out[t] ?? 0) + 1
  return out
}


interface CountingProxy {
  readonly address: string
  /** client connections accepted and not closed yet */
  readonly open: () => number
  readonly accepted: () => number
  readonly close: () => Promise<void>
}

/** A loopback TCP proxy to `upstream` that counts the client's open connections. */
const countingProxy = (upstream: string): Promise<CountingProxy> =>
  new Promise((resolve) => {
    const [host, port] = upstream.split(":") as [string, string]
    const clients = new Set<net.Socket>()
    const sockets = new Set<net.Socket>()
    let accepted = 0
    const server = net.createServer((client) => {
      accepted++
      clients.add(client)
      const up = net.createConnection({ host, port: Number(port) })
      sockets.add(client).add(up)
      const end = () => {
        clients.delete(client)
        sockets.delete(client)
        sockets.delete(up)
        client.destroy()
        up.destroy()
      }
      client.on("error", end).on("close", end)
      up.on("error", end).on("close", end)
      client.pipe(up)
      up.pipe(client)
    })
    server.listen(0, "127.0.0.1", () => {
      resolve({
        address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
        open: () => clients.size,
        accepted: () => accepted,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy()
            server.close(() => done())
          }),
      })
    })
  })

describe("connection life cycle", () => {
  it.scopedLive(
    "closing the layer with 5,000 gets in flight over a grown pool fails them at once and leaves 0 sockets",
    () =>
      Effect.gen(function* () {
        const server = (yield* ownMemcached).address
        // memcached's count with no client: its listener and this stats connection.
        const baseline = yield* settledStat(server, "curr_connections")
        const handlesBefore = tcpHandles()
        const clientConnections = Effect.map(stat(server, "curr_connections"), (n) => n - baseline)

        const scope = yield* Scope.make()
        // A finalizer in case an assertion fails before the explicit close (closing twice is a no-op).
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        const mc = Context.get(yield* Layer.buildWithScope(McClient.layer({ servers: [server], timeout: "5 seconds" }), scope), McClient)

        const prefix = uniqueKey("life")
        const keys = Array.from({ length: 100 }, (_, i) => `${prefix}:${i}`)
        yield* Effect.forEach(keys, (key) => mc.set({ key, value: valueOf(key, 4096) }), { concurrency: 20, discard: true })

        // 700 concurrent gets: over 256 in flight on one connection, so the pool grows.
        let mixedUp = 0
        const check = (key: string, exit: Exit.Exit<{ readonly value: Uint8Array; readonly key: string }, unknown>) => {
          if (Exit.isSuccess(exit) && (exit.value.key !== key || decoder.decode(exit.value.value) !== valueOf(key, 4096))) mixedUp++
        }
        const first = yield* Effect.forEach(
          Array.from({ length: 700 }, (_, i) => keys[i % keys.length]!),
          (key) => Effect.tap(Effect.exit(mc.get(key)), (exit) => check(key, exit)),
          { concurrency: "unbounded" },
        )
        expect(countBy(first.map(failureTag))).toEqual({ Success: 700 })
        const afterFirst = yield* clientConnections

        // 5,000 concurrent gets, closed mid-flight: once some replies arrived, most still pending.
        const tags: Array<string> = []
        const endedAt: Array<number> = []
        const gets = yield* Effect.forkDaemon(
          Effect.forEach(
            Array.from({ length: 5000 }, (_, i) => keys[i % keys.length]!),
            (key) =>
              Effect.map(Effect.exit(mc.get(key)), (exit) => {
                check(key, exit)
                tags.push(failureTag(exit))
                endedAt.push(performance.now())
                const f = failureOf(exit) as { readonly _tag: string; readonly server?: string } | undefined
                if (f !== undefined && f._tag === "ConnectionError" && f.server !== server) tags.push(`ConnectionError naming ${f.server}`)
              }),
            { concurrency: "unbounded", discard: true },
          ),
        )
        while (tags.length < 200) yield* Effect.sleep("1 millis")
        const openAtClose = yield* clientConnections
        const handlesAtClose = tcpHandles()
        const doneBeforeClose = tags.length
        const closedAt = performance.now()
        yield* Scope.close(scope, Exit.void)
        const closeMillis = performance.now() - closedAt
        // Every pending get fails at once: none waits for its (5 s) deadline.
        const joined = yield* Fiber.join(gets).pipe(Effect.timeout("1 second"), Effect.exit)
        const lastEnd = Math.max(...endedAt) - closedAt

        const left = yield* settle(clientConnections, (n) => n === 0, 2000)
        const handlesAfter = yield* settle(Effect.sync(tcpHandles), (n) => n <= handlesBefore, 2000)
        const outcomes = countBy(tags)
        console.log(
          `Lifecycle close: after 700 gets ${afterFirst} connections open; 5,000 gets, ${doneBeforeClose} done when the ` +
            `layer closed with ${openAtClose} connections open; close took ${closeMillis.toFixed(1)} ms, the last get ` +
            `ended ${lastEnd.toFixed(1)} ms after it; outcomes ${JSON.stringify(outcomes)}; mixed-up ${mixedUp}; ` +
            `sockets left to the server ${left} (memcached curr_connections), TCP handles ${handlesBefore} before, ${handlesAtClose} at the close, ${handlesAfter} after`,
        )
        expect(handlesAtClose).toBeGreaterThan(handlesBefore)
        expect(afterFirst).toBeGreaterThan(1)
        expect(openAtClose).toBeGreaterThan(1)
        expect(Exit.isSuccess(joined)).toBe(true)
        expect(tags.length).toBe(5000)
        expect(Object.keys(outcomes).filter((t) => t !== "Success" && t !== "ConnectionError")).toEqual([])
        // Gets were in flight at the close, and they failed (not hung, not answered later).
        expect(outcomes["ConnectionError"] ?? 0).toBeGreaterThan(0)
        expect(lastEnd).toBeLessThan(200)
        expect(mixedUp).toBe(0)
        expect(left).toBe(0)
        expect(handlesAfter).toBeLessThanOrEqual(handlesBefore)
      }),
    20_000,
  )

  it.scopedLive(
    "rotation under bursts (connMaxLifetime 300 ms): open connections stay bounded, none left after close",
    () =>
      Effect.gen(function* () {
        const server = (yield* ownMemcached).address
        const baseline = yield* stat(server, "curr_connections")
        const totalBefore = yield* stat(server, "total_connections")
        const statCallsBefore = statCalls
        const handlesBefore = tcpHandles()
        // Never below 0: the baseline may count a connection of the server's that closes meanwhile.
        const clientConnections = Effect.map(stat(server, "curr_connections"), (n) => Math.max(0, n - baseline))
        const MAX = 10 // maxIdleConnsPerAddr (the default)

        const prefix = uniqueKey("rotate")
        const keys = Array.from({ length: 200 }, (_, i) => `${prefix}:${i}`)
        let mixedUp = 0
        const outcomes: Record<string, number> = {}
        const samples: Array<number> = []
        const betweenBursts: Array<number> = []
        let sampling = true
        let openBeforeClose = 0

        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        const mc = Context.get(
          yield* Layer.buildWithScope(
            McClient.layer({ servers: [server], timeout: "5 seconds", connMaxLifetime: "300 millis", maxIdleConnsPerAddr: MAX }),
            scope,
          ),
          McClient,
        )
        yield* Effect.forEach(keys, (key) => mc.set({ key, value: valueOf(key, 512) }), { concurrency: 20, discard: true })
        // memcached's view of the client's connections, every few milliseconds, all along.
        const sampler = yield* Effect.fork(
          Effect.whileLoop({
            while: () => sampling,
            body: () => Effect.flatMap(clientConnections, (n) => Effect.as(Effect.sync(() => samples.push(n)), Effect.sleep("5 millis"))),
            step: () => {},
          }),
        )
        for (let burst = 0; burst < 5; burst++) {
          if (burst > 0) yield* Effect.sleep("400 millis")
          betweenBursts.push(yield* clientConnections)
          yield* Effect.forEach(
            Array.from({ length: 2000 }, (_, i) => keys[i % keys.length]!),
            (key) =>
              Effect.map(Effect.exit(mc.get(key)), (exit) => {
                const tag = failureTag(exit)
                outcomes[tag] = (outcomes[tag] ?? 0) + 1
                if (Exit.isSuccess(exit) && decoder.decode(exit.value.value) !== valueOf(key, 512)) mixedUp++
              }),
            { concurrency: "unbounded", discard: true },
          )
        }
        // Settled: rotated connections that had nothing in flight are closed right away.
        yield* Effect.sleep("50 millis")
        openBeforeClose = yield* clientConnections
        sampling = false
        yield* Fiber.join(sampler)
        // total_connections counts every connection memcached accepted: the client's, and those of
        // the stats requests since `totalBefore` (this one included).
        const opened = (yield* stat(server, "total_connections")) - totalBefore - (statCalls - statCallsBefore)
        yield* Scope.close(scope, Exit.void)

        const left = yield* settle(clientConnections, (n) => n === 0, 2000)
        const handlesAfter = yield* settle(Effect.sync(tcpHandles), (n) => n <= handlesBefore, 2000)
        const maxOpen = Math.max(...samples)
        console.log(
          `Lifecycle rotation: 5 bursts of 2,000 gets, 400 ms apart, connMaxLifetime 300 ms, max ${MAX} per server: ` +
            `${opened} connections opened in all; open before each burst ${JSON.stringify(betweenBursts)}, at most ${maxOpen} ` +
            `over ${samples.length} samples, ${openBeforeClose} before close, ${left} after close; TCP handles ${handlesBefore} ` +
            `before, ${handlesAfter} after; outcomes ${JSON.stringify(outcomes)}; mixed-up ${mixedUp}`,
        )
        // Rotation happened: far more connections were opened than may be open at once.
        expect(opened).toBeGreaterThan(2 * MAX)
        expect(outcomes).toEqual({ Success: 10_000 })
        expect(mixedUp).toBe(0)
        // Bounded: the active ones (≤ MAX), plus a few rotated ones that are closing as memcached
        // notices. Rotated connections that were never closed would pile up burst after burst.
        expect(maxOpen).toBeLessThanOrEqual(MAX + 2)
        for (const n of betweenBursts) expect(n).toBeLessThanOrEqual(MAX)
        expect(openBeforeClose).toBeLessThanOrEqual(MAX)
        expect(left).toBe(0)
        expect(handlesAfter).toBeLessThanOrEqual(handlesBefore)
      }),
    20_000,
  )

  it.scopedLive(
    "a server marked down (SIGSTOP, stall) keeps no connection from the client but the probe's",
    () =>
      Effect.gen(function* () {
        const memcached: MemcachedProcess = yield* ownMemcached
        const pid = memcached.process.pid!
        const proxy = yield* Effect.acquireRelease(
          Effect.promise(() => countingProxy(memcached.address)),
          (p) => Effect.promise(() => p.close()),
        )
        // Runs before the proxy and memcached are released: the server always resumes.
        yield* Effect.addFinalizer(() => Effect.sync(() => void process.kill(pid, "SIGCONT")))
        const health = captureHealth()
        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        const mc = yield* make({
          servers: [proxy.address],
          timeout: "100 millis",
          stallTimeout: "300 millis",
          dialTimeout: "200 millis",
          reconnect: Schedule.spaced("100 millis"),
        }).pipe(Effect.provide(health.layer), Scope.extend(scope))

        const prefix = uniqueKey("down")
        const keys = Array.from({ length: 100 }, (_, i) => `${prefix}:${i}`)
        yield* Effect.forEach(keys, (key) => mc.set({ key, value: valueOf(key) }), { concurrency: 20, discard: true })
        // Load: the pool grows to several connections.
        const load = yield* Effect.forEach(
          Array.from({ length: 2000 }, (_, i) => keys[i % keys.length]!),
          (key) => Effect.map(Effect.exit(mc.get(key, { timeout: "2 seconds" })), (exit) => Exit.isSuccess(exit) && decoder.decode(exit.value.value) === valueOf(key)),
          { concurrency: "unbounded" },
        )
        expect(load.every((ok) => ok)).toBe(true)
        const openUnderLoad = proxy.open()

        // The server freezes; a get on it times out, and its connection stalls → marked down.
        stopProcess(pid)
        const stopped = yield* Effect.forEach(keys.slice(0, 20), (key) => Effect.exit(mc.get(key)), { concurrency: "unbounded" })
        const markedDownAt = performance.now()
        while (!health.lines.some((l) => l.includes("marked down"))) {
          expect(performance.now() - markedDownAt).toBeLessThan(2000)
          yield* Effect.sleep("5 millis")
        }
        // Sockets close on the next turns of the event loop; then at most the probe's one attempt.
        yield* Effect.sleep("30 millis")
        const samples: Array<number> = []
        const acceptedBefore = proxy.accepted()
        for (let i = 0; i < 80; i++) {
          samples.push(proxy.open())
          yield* Effect.sleep("10 millis")
        }
        const probes = proxy.accepted() - acceptedBefore
        // While down, requests fail fast with the down error.
        const whileDown = yield* Effect.exit(mc.get(keys[0]!))

        yield* Scope.close(scope, Exit.void)
        const left = yield* settle(Effect.sync(() => proxy.open()), (n) => n === 0, 1000)
        console.log(
          `Lifecycle mark-down: ${openUnderLoad} connections under load; after SIGSTOP ${JSON.stringify(countBy(stopped.map(failureTag)))}; ` +
            `once marked down, open connections at most ${Math.max(...samples)} over 800 ms (${probes} probe connections made); ` +
            `${left} after close; health ${JSON.stringify(health.lines)}`,
        )
        expect(openUnderLoad).toBeGreaterThanOrEqual(3)
        for (const e of stopped) expect(failureTag(e)).toBe("Timeout")
        expect(Math.max(...samples)).toBeLessThanOrEqual(1)
        expect(probes).toBeGreaterThan(0) // the probe is running (its attempt is what the 1 allows)
        expect(failureOf(whileDown)).toMatchObject({ _tag: "ConnectionError" })
        expect(left).toBe(0)
      }),
    20_000,
  )

  it.scopedLive(
    "a process that closes a busy layer exits by itself",
    () =>
      Effect.gen(function* () {
        const server = (yield* ownMemcached).address
        const fixture = fileURLToPath(new URL("./fixtures/closeBusyLayer.ts", import.meta.url))
        const root = fileURLToPath(new URL("../../", import.meta.url))
        const started = performance.now()
        let exitedAt = 0
        const result = yield* Effect.async<{ code: number | null; signal: string | null; stdout: string; stderr: string; timedOut: boolean }>(
          (resume) => {
            const child = spawn(process.execPath, ["--import", "tsx", fixture, server], {
              cwd: root,
              stdio: ["ignore", "pipe", "pipe"],
            })
            let stdout = ""
            let stderr = ""
            let timedOut = false
            child.stdout.on("data", (d) => (stdout += String(d)))
            child.stderr.on("data", (d) => (stderr += String(d)))
            // Loading tsx takes a moment on a busy machine; the fixture itself needs well under a second.
            const timer = setTimeout(() => {
              timedOut = true
              child.kill("SIGKILL")
            }, 8000)
            child.once("exit", (code, signal) => {
              exitedAt = Date.now()
              clearTimeout(timer)
              resume(Effect.succeed({ code, signal, stdout, stderr, timedOut }))
            })
            return Effect.sync(() => {
              clearTimeout(timer)
              child.kill("SIGKILL")
            })
          },
        )
        const millis = performance.now() - started
        const lines = result.stdout.trim().split("\n")
        const report = (() => {
          try {
            return JSON.parse(lines[lines.length - 1] ?? "{}") as unknown
          } catch {
            return {}
          }
        })() as {
          readonly outcomes?: Record<string, number>
          readonly mixedUp?: number
          readonly printedAt?: number
        }
        // From its last output (all work done, layer closed) to its exit: nothing may keep it alive.
        const lingered = report.printedAt === undefined ? undefined : exitedAt - report.printedAt
        console.log(
          `Lifecycle child: exited with ${result.code ?? result.signal} after ${millis.toFixed(0)} ms` +
            `${result.timedOut ? " (killed: it did not exit by itself)" : ""}, ${lingered ?? "?"} ms after its last output; ` +
            `it printed ${result.stdout.trim()}` +
            `${result.stderr.trim() === "" ? "" : `; stderr: ${result.stderr.trim().slice(0, 500)}`}`,
        )
        expect(result.timedOut).toBe(false)
        expect(result.code).toBe(0)
        expect(lingered).toBeDefined()
        expect(lingered!).toBeLessThan(1000)
        expect(report.mixedUp).toBe(0)
        expect(Object.keys(report.outcomes ?? {}).filter((t) => t !== "Success" && t !== "ConnectionError")).toEqual([])
        // The close caught gets in flight.
        expect(report.outcomes?.["ConnectionError"] ?? 0).toBeGreaterThan(0)
      }),
    20_000,
  )
})
