/**
 * A server that stalls, and one that is slow but alive, through a TCP proxy written here.
 *
 * The client talks to [proxy → memcached A, memcached B, memcached C] (the shared cluster). The
 * proxy forwards requests always, and replies as its mode says: at once, after a delay, or not at
 * all (a stall: the socket stays open, nothing comes back).
 *
 * - A stalled server gives `Timeout` near the deadline and is marked down; its keys then fail over
 *   at once (no second timeout), while the other servers keep their normal latency throughout.
 *   When the proxy forwards again, the server is used again within a second.
 * - A server that answers late but within the deadline is never marked down.
 * - A pause of this process (with the server paused too, as on a loaded machine) is not a stall.
 */
import { spawn } from "node:child_process"
import * as net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Exit, Fiber } from "effect"
import { inject } from "vitest"
import { make, makeKetamaRing, parseServerSpec } from "../../src/index.js"
import { startMemcached } from "../../scripts/memcached.js"
import { failureOf, failureTag } from "../support/exits.js"
import { uniqueKey } from "../support/layers.js"
import { captureHealth } from "../support/logs.js"

const TIMEOUT_MS = 150
const decoder = new TextDecoder()

type Mode = { readonly _tag: "pass" } | { readonly _tag: "stall" } | { readonly _tag: "delay"; readonly millis: number }

interface Proxy {
  readonly address: string
  mode: Mode
  readonly close: () => Promise<void>
}

/** A loopback proxy to `upstream` ("host:port") whose replies follow `proxy.mode`. */
const makeProxy = (upstream: string): Promise<Proxy> =>
  new Promise((resolve) => {
    const [host, port] = upstream.split(":") as [string, string]
    const sockets = new Set<net.Socket>()
    const server = net.createServer((client) => {
      const up = net.createConnection({ host, port: Number(port) })
      sockets.add(client).add(up)
      const end = () => {
        client.destroy()
        up.destroy()
        sockets.delete(client)
        sockets.delete(up)
      }
      client.on("error", end).on("close", end)
      up.on("error", end).on("close", end)
      client.on("data", (chunk) => up.write(chunk))
      // Replies keep their order: each chunk waits for the one before it.
      let previous = Promise.resolve()
      up.on("data", (chunk) => {
        const mode = proxy.mode
        if (mode._tag === "stall") return // swallowed: the server looks alive but never answers
        if (mode._tag === "pass") {
          previous = previous.then(() => void client.write(chunk))
          return
        }
        const at = Date.now() + mode.millis
        previous = previous.then(
          () => new Promise<void>((done) => setTimeout(() => done(void client.write(chunk)), Math.max(0, at - Date.now()))),
        )
      })
    })
    const proxy: Proxy = {
      address: "",
      mode: { _tag: "pass" },
      close: () =>
        new Promise<void>((done) => {
          for (const s of sockets) s.destroy()
          server.close(() => done())
        }),
    }
    server.listen(0, "127.0.0.1", () => {
      ;(proxy as { address: string }).address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`
      resolve(proxy)
    })
  })


const timed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.suspend(() => {
    const start = performance.now()
    return Effect.map(Effect.exit(effect), (exit) => ({ exit, millis: performance.now() - start }))
  })

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

/** Background gets of keys on healthy servers, with their latencies and failures. */
const backgroundLoad = (mc: { readonly get: (key: string) => Effect.Effect<{ readonly value: Uint8Array }, unknown> }, keys: ReadonlyArray<string>) => {
  const latencies: Array<number> = []
  const failures: Array<string> = []
  let running = true
  const worker = Effect.whileLoop({
    while: () => running,
    body: () =>
      Effect.gen(function* () {
        const key = keys[(Math.random() * keys.length) | 0]!
        const { exit, millis } = yield* timed(mc.get(key))
        latencies.push(millis)
        if (Exit.isFailure(exit)) failures.push(`${key}: ${failureTag(exit as Exit.Exit<unknown, { readonly _tag: string }>)}`)
        else if (decoder.decode(exit.value.value) !== key) failures.push(`${key}: got another value`)
        yield* Effect.sleep("2 millis")
      }),
    step: () => {},
  })
  return Effect.map(
    Effect.fork(Effect.all(Array.from({ length: 10 }, () => worker), { concurrency: "unbounded", discard: true })),
    (fiber) => ({
      latencies,
      failures,
      stop: Effect.suspend(() => {
        running = false
        return Fiber.join(fiber)
      }),
    }),
  )
}

/** A proxy in front of the first cluster server, and a client over it and the two others. */
const proxiedCluster = Effect.gen(function* () {
  const [behind, b, c] = inject("memcachedCluster") as readonly [string, string, string]
  const proxy = yield* Effect.acquireRelease(
    Effect.promise(() => makeProxy(behind)),
    (p) => Effect.promise(() => p.close()),
  )
  const servers = [proxy.address, b, c]
  const ring = makeKetamaRing(servers.map((s) => parseServerSpec(s)))
  const health = captureHealth()
  // A stall window just past the deadline: a stalled server is marked down right after its callers time out.
  const mc = yield* make({ servers, timeout: `${TIMEOUT_MS} millis`, stallTimeout: `${TIMEOUT_MS + 50} millis`, dialTimeout: "100 millis" }).pipe(
    Effect.provide(health.layer),
  )
  return { behind, proxy, ring, health, mc }
})

describe("stalled and slow servers (TCP proxy)", () => {
  it.scopedLive(
    "a stalled server times out near the deadline, is marked down, its keys fail over at once, the others are unaffected",
    () =>
      Effect.gen(function* () {
        const { behind, proxy, ring, health, mc } = yield* proxiedCluster
        // Reads memcached A directly, bypassing the proxy.
        const directA = yield* make({ servers: [behind], pickServer: () => [behind], timeout: "500 millis" })

        const prefix = uniqueKey("proxy")
        const keys = Array.from({ length: 400 }, (_, i) => `${prefix}:${i}`)
        const proxied = keys.filter((k) => ring.pick(k)[0] === proxy.address)
        const direct = keys.filter((k) => ring.pick(k)[0] !== proxy.address)
        yield* Effect.forEach(keys, (key) => mc.set({ key, value: key }), { concurrency: 50, discard: true })
        // Through the proxy, as through any server.
        for (const key of proxied.slice(0, 20)) expect(decoder.decode((yield* mc.get(key)).value)).toBe(key)

        const load = yield* backgroundLoad(mc, direct)
        yield* Effect.sleep("200 millis")
        const before = load.latencies.length

        // ---- stall: every in-flight operation on that server times out near its deadline
        proxy.mode = { _tag: "stall" }
        const stalled = yield* Effect.forEach(proxied.slice(0, 20), (key) => timed(mc.get(key)), { concurrency: "unbounded" })
        for (const { exit, millis } of stalled) {
          expect(failureOf(exit)).toMatchObject({ _tag: "Timeout", server: proxy.address })
          expect(millis).toBeGreaterThanOrEqual(TIMEOUT_MS - 5)
          expect(millis).toBeLessThan(TIMEOUT_MS + 100)
        }
        // … and the server is marked down (the decision may wait a moment if this process was
        // paused when the deadline passed, see Connection.onTimer).
        const markedDownAt = performance.now()
        while (!health.lines.some((l) => l.includes(proxy.address) && l.includes("marked down"))) {
          expect(performance.now() - markedDownAt).toBeLessThan(500)
          yield* Effect.sleep("5 millis")
        }

        // ---- its keys now go to their alternate at once: a miss there (or the value, once set), never a timeout
        const failedOver = yield* Effect.forEach(proxied.slice(20, 60), (key) => timed(mc.get(key)), { concurrency: 10 })
        for (const { exit, millis } of failedOver) {
          expect(["CacheMiss", "Success"]).toContain(failureTag(exit))
          expect(millis).toBeLessThan(TIMEOUT_MS / 3)
        }
        const setOver = yield* Effect.forEach(proxied.slice(20, 60), (key) => timed(mc.set({ key, value: key })), { concurrency: 10 })
        for (const { exit, millis } of setOver) {
          expect(failureTag(exit)).toBe("Success")
          expect(millis).toBeLessThan(TIMEOUT_MS / 3)
        }
        for (const key of proxied.slice(20, 60)) expect(decoder.decode((yield* mc.get(key)).value)).toBe(key)
        const duringStall = load.latencies.slice(before)

        // ---- the proxy forwards again: the server is used again within a second
        proxy.mode = { _tag: "pass" }
        const resumedAt = performance.now()
        const probeKey = proxied[60]!
        let usedAgainAfter: number | undefined
        for (let i = 0; usedAgainAfter === undefined && performance.now() - resumedAt < 3000; i++) {
          const marker = `${probeKey}#${i}`
          yield* Effect.exit(mc.set({ key: probeKey, value: marker }))
          const seen = yield* Effect.exit(directA.get(probeKey))
          if (Exit.isSuccess(seen) && decoder.decode(seen.value.value) === marker) usedAgainAfter = performance.now() - resumedAt
          else yield* Effect.sleep("5 millis")
        }
        yield* load.stop

        console.log(
          `Proxy stall: ${stalled.length} gets on the stalled server gave Timeout after ` +
            `${Math.min(...stalled.map((s) => s.millis)).toFixed(0)}–${Math.max(...stalled.map((s) => s.millis)).toFixed(0)} ms ` +
            `(timeout ${TIMEOUT_MS} ms); then ${failedOver.length} gets failed over in at most ` +
            `${Math.max(...failedOver.map((s) => s.millis)).toFixed(1)} ms; healthy servers during the stall: ` +
            `${duringStall.length} gets, p50 ${percentile(duringStall, 50).toFixed(1)} ms, p99 ${percentile(duringStall, 99).toFixed(1)} ms, ` +
            `max ${Math.max(...duringStall).toFixed(1)} ms, ${load.failures.length} failures; ` +
            `used again ${usedAgainAfter?.toFixed(0) ?? "never"} ms after the proxy resumed; health log: ${JSON.stringify(health.lines)}`,
        )
        // The healthy servers never noticed.
        expect(load.failures).toEqual([])
        expect(duringStall.length).toBeGreaterThan(50)
        expect(Math.max(...duringStall)).toBeLessThan(TIMEOUT_MS / 2)
        expect(health.lines.filter((l) => !l.includes(proxy.address))).toEqual([])
        expect(usedAgainAfter).toBeDefined()
        expect(usedAgainAfter!).toBeLessThan(1000)
      }),
    20_000,
  )

  it.scopedLive("a server that is slow but answers within the deadline is never marked down", () =>
    Effect.gen(function* () {
      const { proxy, ring, health, mc } = yield* proxiedCluster
      const prefix = uniqueKey("slow")
      const keys = Array.from({ length: 300 }, (_, i) => `${prefix}:${i}`)
      const proxied = keys.filter((k) => ring.pick(k)[0] === proxy.address)
      yield* Effect.forEach(keys, (key) => mc.set({ key, value: key }), { concurrency: 50, discard: true })

      const delay = Math.round(TIMEOUT_MS / 3)
      proxy.mode = { _tag: "delay", millis: delay }
      // One second of gets on the slow server: several in flight at once, and single ones after pauses.
      const results: Array<{ readonly ok: boolean; readonly millis: number }> = []
      const until = performance.now() + 1000
      const worker = (pause: Duration.DurationInput) =>
        Effect.whileLoop({
          while: () => performance.now() < until,
          body: () =>
            Effect.gen(function* () {
              const key = proxied[(Math.random() * proxied.length) | 0]!
              const { exit, millis } = yield* timed(mc.get(key))
              results.push({ ok: Exit.isSuccess(exit) && decoder.decode(exit.value.value) === key, millis })
              yield* Effect.sleep(pause)
            }),
          step: () => {},
        })
      yield* Effect.all([worker("0 millis"), worker("0 millis"), worker("0 millis"), worker("120 millis")], {
        concurrency: "unbounded",
      })
      proxy.mode = { _tag: "pass" }

      const ms = results.map((r) => r.millis)
      console.log(
        `Proxy slow (${delay} ms delay, timeout ${TIMEOUT_MS} ms): ${results.length} gets, ` +
          `${results.filter((r) => r.ok).length} ok, latency ${Math.min(...ms).toFixed(0)}–${Math.max(...ms).toFixed(0)} ms; ` +
          `health log: ${JSON.stringify(health.lines)}`,
      )
      expect(results.length).toBeGreaterThan(20)
      expect(results.filter((r) => !r.ok)).toEqual([])
      // Every answer came through the slow proxy (a failover would have answered faster, with a miss).
      expect(Math.min(...ms)).toBeGreaterThanOrEqual(delay - 2)
      expect(health.lines).toEqual([])
    }),
  )

  // What a loaded machine does: this process and the server are both descheduled, and this process
  // runs again a little before the server. Deadlines pass meanwhile, and the first look at the
  // socket finds nothing, yet the server is fine. Such a pause must not mark it down (the
  // connection gives a late deadline timer a moment of grace before calling the server stuck).
  it.scopedLive("a pause of this process, with the server paused too, does not mark the server down", () =>
    Effect.gen(function* () {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => startMemcached()),
        (p) => Effect.promise(() => p.stop("SIGKILL")),
      )
      const health = captureHealth()
      const mc = yield* make({ servers: [server.address], timeout: "200 millis" }).pipe(Effect.provide(health.layer))
      const keys = Array.from({ length: 200 }, (_, i) => uniqueKey(`pause-${i}`))
      yield* Effect.forEach(keys, (key) => mc.set({ key, value: key }), { concurrency: 20, discard: true })

      let running = true
      // Bounded even if the loop starves the event loop (see the all-down test in KillRestart.test.ts).
      const hardStop = performance.now() + 4000
      const outcomes: Record<string, number> = {}
      const worker = Effect.whileLoop({
        while: () => running && performance.now() < hardStop,
        body: () =>
          Effect.map(Effect.exit(mc.get(keys[(Math.random() * keys.length) | 0]!)), (exit) => {
            const tag = failureTag(exit)
            outcomes[tag] = (outcomes[tag] ?? 0) + 1
          }),
        step: () => {},
      })
      const load = yield* Effect.fork(Effect.all(Array.from({ length: 20 }, () => worker), { concurrency: "unbounded", discard: true }))
      const pid = server.process.pid!
      for (let i = 0; i < 3; i++) {
        yield* Effect.sleep("150 millis")
        // Freeze both for 300 ms; wake this process first, the server 10 ms later.
        yield* Effect.async<void>((resume) => {
          spawn("sh", ["-c", `kill -STOP ${pid} ${process.pid}; sleep 0.3; kill -CONT ${process.pid}; sleep 0.01; kill -CONT ${pid}`], {
            stdio: "ignore",
          }).once("exit", () => resume(Effect.void))
        })
      }
      yield* Effect.sleep("150 millis")
      running = false
      yield* Fiber.join(load)
      console.log(`Proxy pause: 3 pauses of 300 ms under load; outcomes ${JSON.stringify(outcomes)}; health log: ${JSON.stringify(health.lines)}`)
      // Operations whose deadline passed while frozen may time out; the server is never marked down.
      expect(Object.keys(outcomes).filter((t) => t !== "Success" && t !== "Timeout")).toEqual([])
      expect(health.lines).toEqual([])
    }),
  )
})
