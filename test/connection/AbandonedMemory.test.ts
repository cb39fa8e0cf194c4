/**
 * Memory a failed request must not hold.
 *
 * - A value block for a caller that stopped waiting is skipped, not buffered: a server that
 *   declares `VA 1000000000` and streams data keeps the client's memory flat once the caller's
 *   deadline passed. The old core buffered the block until it was complete (up to 1 GiB), for no
 *   one.
 * - An infrastructure error kept by the caller holds no socket or connection: no own property
 *   (nor `cause`) leads to one, its stack was built without frames (a captured stack keeps its
 *   frames' receivers, the connection, alive in V8), and the client's sockets are collected while
 *   the errors are still held. The old core's errors carried a stack and the socket error as
 *   `cause` (node's error objects hold the socket).
 */
import * as net from "node:net"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Schedule, Scope } from "effect"
import { make } from "../../src/index.js"
import { failureOf } from "../support/exits.js"
import { type Fault, normal, scriptedServer } from "../support/scriptedServer.js"

/** `gc()`: exposed by vitest.config.ts (`--expose-gc`), or obtained from V8 at run time. */
const gc: () => void = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed !== undefined) return exposed
  v8.setFlagsFromString("--expose-gc")
  return vm.runInNewContext("gc") as () => void
})()

const MiB = 1024 * 1024
const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

/** Bytes held in ArrayBuffers (socket reads, buffered value blocks) after a full GC. */
const heldBytes = (): number => {
  gc()
  gc()
  return process.memoryUsage().arrayBuffers
}

interface StreamingServer {
  readonly address: string
  /** bytes of value data written so far */
  readonly streamed: () => number
  readonly close: () => Promise<void>
}

/**
 * Answers `version`, and every `mg` with `VA 1000000000 O<n>` followed by data for `streamMillis`:
 * a 64 KiB chunk (the same buffer every time) up to 8 times a millisecond, as fast as the socket
 * drains. The value is never completed.
 */
const streamingServer = (streamMillis: number): Promise<StreamingServer> =>
  new Promise((resolve) => {
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    const sockets = new Set<net.Socket>()
    const timers = new Set<NodeJS.Timeout>()
    let streamed = 0
    const stream = (socket: net.Socket) => {
      const until = Date.now() + streamMillis
      const tick = () => {
        if (socket.destroyed || Date.now() >= until) return
        for (let i = 0; i < 8; i++) {
          streamed += chunk.length
          if (!socket.write(chunk)) {
            socket.once("drain", tick)
            return
          }
        }
        const timer = setTimeout(() => {
          timers.delete(timer)
          tick()
        }, 1)
        timers.add(timer)
      }
      tick()
    }
    const server = net.createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.on("close", () => sockets.delete(socket))
      let input = ""
      socket.on("data", (data) => {
        input += data.toString("latin1")
        let nl: number
        while ((nl = input.indexOf("\n")) >= 0) {
          const tokens = input.slice(0, nl).replace(/\r$/, "").split(" ")
          input = input.slice(nl + 1)
          if (tokens[0] === "version") socket.write("VERSION 1.6.18\r\n")
          else if (tokens[0] === "mg") {
            const opaque = tokens.slice(2).find((t) => t.startsWith("O"))
            socket.write(`VA 1000000000${opaque === undefined ? "" : ` ${opaque}`}\r\n`)
            stream(socket)
          }
        }
      })
    })
    server.listen(0, "127.0.0.1", () => {
      resolve({
        address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
        streamed: () => streamed,
        close: () =>
          new Promise<void>((done) => {
            for (const t of timers) clearTimeout(t)
            for (const s of sockets) s.destroy()
            server.close(() => done())
          }),
      })
    })
  })

/** Paths from `root` to a socket, or to an object with a `socket` field, through own properties and `cause`. */
const pathsToSockets = (root: unknown): Array<string> => {
  const found: Array<string> = []
  const seen = new Set<object>()
  const walk = (value: unknown, path: string, depth: number) => {
    if (value === null || (typeof value !== "object" && typeof value !== "function")) return
    const obj = value as object
    if (seen.has(obj) || depth > 8) return
    seen.add(obj)
    if (obj instanceof net.Socket) {
      found.push(`${path} is a net.Socket`)
      return
    }
    const keys = new Set<string | symbol>(Reflect.ownKeys(obj))
    if ("cause" in obj) keys.add("cause")
    for (const key of keys) {
      if (key === "socket" || key === "_socket" || key === "connection") found.push(`${path}.${String(key)}`)
      const descriptor = Object.getOwnPropertyDescriptor(obj, key)
      // Getters are not run (Data.TaggedError's `message` is one); plain values are followed.
      const child = descriptor === undefined ? (obj as Record<string | symbol, unknown>)[key] : descriptor.value
      walk(child, `${path}.${String(key)}`, depth + 1)
    }
  }
  walk(root, "error", 0)
  return found
}

describe("abandoned memory", () => {
  it.live("a 1 GB value streamed to a caller that timed out is skipped, not buffered", () =>
    Effect.gen(function* () {
      const STREAM_MS = 1000
      const server = yield* Effect.promise(() => streamingServer(STREAM_MS))
      const scope = yield* Scope.make()
      // A long stall timeout keeps the connection (and the stream) for the whole measurement.
      const mc = yield* make({
        servers: [server.address],
        disableBinaryEncodedKeys: true,
        stallTimeout: "10 seconds",
        retry: Schedule.stop,
      }).pipe(Scope.extend(scope))
      const baseline = heldBytes()
      const start = Date.now()
      const exit = yield* Effect.exit(mc.get("huge", { timeout: "100 millis" }))
      expect(failureOf(exit)).toMatchObject({ _tag: "Timeout", key: "huge" })
      expect(Date.now() - start).toBeLessThan(400)
      // While the data keeps streaming: sample what the process holds.
      let peak = 0
      const samples: Array<number> = []
      while (Date.now() - start < STREAM_MS - 50) {
        yield* Effect.promise(() => sleep(100))
        const held = Math.max(0, heldBytes() - baseline)
        samples.push(held)
        peak = Math.max(peak, held)
      }
      const streamed = server.streamed()
      yield* Scope.close(scope, Exit.void)
      yield* Effect.promise(() => server.close())
      console.log(
        `AbandonedMemory: ${(streamed / MiB).toFixed(0)} MiB streamed after the caller's Timeout, ` +
          `peak held ${(peak / MiB).toFixed(2)} MiB (samples ${samples.map((s) => (s / MiB).toFixed(1)).join(", ")} MiB)`,
      )
      // The measurement means something only if far more arrived than the bound.
      expect(streamed).toBeGreaterThan(64 * MiB)
      expect(peak).toBeLessThan(16 * MiB)
    }),
  )

  it.live("control: for a caller still waiting, the same stream is buffered (the measurement sees it)", () =>
    Effect.gen(function* () {
      const server = yield* Effect.promise(() => streamingServer(400))
      const scope = yield* Scope.make()
      const mc = yield* make({ servers: [server.address], disableBinaryEncodedKeys: true, stallTimeout: "10 seconds" }).pipe(
        Scope.extend(scope),
      )
      const baseline = heldBytes()
      const waiting = yield* Effect.fork(Effect.exit(mc.get("huge", { timeout: "5 seconds" })))
      yield* Effect.promise(() => sleep(450))
      const held = heldBytes() - baseline
      const streamed = server.streamed()
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Fiber.join(waiting)
      yield* Effect.promise(() => server.close())
      console.log(`AbandonedMemory (control, caller waiting): ${(streamed / MiB).toFixed(0)} MiB streamed, ${(held / MiB).toFixed(1)} MiB held`)
      expect(failureOf(exit)).toMatchObject({ _tag: "ConnectionError" })
      expect(held).toBeGreaterThan(Math.min(32 * MiB, streamed / 2))
    }),
  )

  it.live("an error kept by the caller holds no socket or connection, and has no stack frames", () =>
    Effect.gen(function* () {
      // The client's sockets, watched with WeakRefs (Connection objects are not reachable from the
      // public API; their sockets are).
      const sockets: Array<WeakRef<net.Socket>> = []
      const connect = net.Socket.prototype.connect
      net.Socket.prototype.connect = function (this: net.Socket, ...args: Array<unknown>) {
        sockets.push(new WeakRef(this))
        return (connect as (...a: Array<unknown>) => net.Socket).apply(this, args)
      } as typeof connect

      const faults: Record<string, Fault> = {
        closed: { kind: "close" },
        stalled: { kind: "stall" },
        garbage: { kind: "replace", bytes: "XYZZY\r\n" },
        extra: { kind: "extra", bytes: "HD\r\n" },
      }
      const server = yield* Effect.promise(() =>
        scriptedServer({
          script: (req) => (req.command === "mg" ? (faults[req.key ?? ""] ?? normal) : normal),
          onConnect: (_, n) => (n >= 10 ? { kind: "reject", bytes: "ERROR Too many open connections\r\n" } : "accept"),
        }),
      )
      const refusing = yield* Effect.promise(() =>
        scriptedServer({ onConnect: () => ({ kind: "reject", bytes: "ERROR Too many open connections\r\n" }) }),
      )
      const kept: Array<{ readonly _tag: string; readonly stack?: string | undefined }> = []
      const scope = yield* Scope.make()
      try {
        const mc = yield* make({ servers: [server.address], disableBinaryEncodedKeys: true, retry: Schedule.stop }).pipe(
          Scope.extend(scope),
        )
        const refused = yield* make({ servers: [refusing.address], disableBinaryEncodedKeys: true }).pipe(Scope.extend(scope))
        for (const key of ["x", "extra"]) server.store.set(key, { value: Buffer.from(key), flags: 0, cas: 1n, exp: 0 })
        const fail = (effect: Effect.Effect<unknown, { readonly _tag: string }>) =>
          Effect.map(Effect.exit(effect), (exit) => {
            const error = failureOf(exit)
            if (error !== undefined) kept.push(error)
          })
        yield* fail(mc.get("closed")) // ConnectionError: closed by the server
        yield* fail(mc.get("garbage")) // CorruptResponse: unknown reply
        yield* Effect.all([fail(mc.get("extra")), fail(mc.get("x"))], { concurrency: "unbounded" }) // CorruptResponse: desync
        // Last on this server: a stalled connection answers nothing more (until its stall timeout).
        yield* fail(mc.get("stalled", { timeout: "50 millis" })) // Timeout
        yield* fail(refused.get("x")) // ConnectionError: ERROR Too many open connections, then marked down
        yield* fail(refused.get("x"))
      } finally {
        yield* Scope.close(scope, Exit.void)
        net.Socket.prototype.connect = connect
        yield* Effect.promise(() => server.close())
        yield* Effect.promise(() => refusing.close())
      }
      const tags = kept.map((e) => e._tag)
      expect(tags).toEqual(expect.arrayContaining(["ConnectionError", "Timeout", "CorruptResponse"]))

      for (const error of kept) {
        expect(pathsToSockets(error), `${error._tag}`).toEqual([])
        // No frames: a frame's receiver (the connection, the socket) would stay reachable.
        expect(error.stack ?? "", `${error._tag} stack`).not.toMatch(/^\s*at /m)
      }

      // Every client socket is collected while the errors are still held.
      expect(sockets.length).toBeGreaterThanOrEqual(5)
      let alive = sockets.length
      for (let i = 0; i < 20 && alive > 0; i++) {
        yield* Effect.promise(() => sleep(20))
        gc()
        alive = sockets.filter((s) => s.deref() !== undefined).length
      }
      console.log(
        `AbandonedMemory: ${kept.length} errors kept (${tags.join(", ")}); client sockets ${sockets.length}, still reachable ${alive}`,
      )
      expect(alive).toBe(0)
      expect(kept.length).toBeGreaterThanOrEqual(6)
    }),
  )
})
