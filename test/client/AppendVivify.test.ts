/**
 * append/prepend with an expiration on a missing key create it, on both of the client's paths:
 * `ms … MA N<ttl>` on memcached ≥ 1.6.20 (supportsAppendVivify), and append → add on NS → append
 * on older servers (Debian 12's 1.6.18). Which one runs depends on the memcached the tests run
 * (MEMCACHED_BIN): CI runs the suite against 1.6.18 and against a current build, so each path is
 * covered by one of the two passes. The client talks to memcached through a proxy that records the
 * request lines, so the test also pins which path was taken.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as net from "node:net"
import { inject } from "vitest"
import { supportsAppendVivify } from "../../src/connection/Version.js"
import { McClient } from "../../src/index.js"
import { failureTag } from "../support/exits.js"
import { text, uniqueKey } from "../support/layers.js"
import { requestLines } from "../support/requestLines.js"
import { serverVersion } from "../support/server.js"

const version = await serverVersion(inject("memcached"))
const vivify = supportsAppendVivify(version)

/** A TCP proxy to `target` that records the request lines clients send (value blocks skipped). */
const recordingProxy = (target: string) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{ readonly address: string; readonly lines: Array<string>; readonly close: () => Promise<void> }>((resolve) => {
          const lines: Array<string> = []
          const sockets = new Set<net.Socket>()
          const i = target.lastIndexOf(":")
          const server = net.createServer((client) => {
            const upstream = net.createConnection({ host: target.slice(0, i), port: Number(target.slice(i + 1)) })
            sockets.add(client).add(upstream)
            // Recorded without the opaque token the client adds to every request.
            const record = requestLines((line) => lines.push(line.replace(/ O\d+$/, "")))
            client.on("data", (chunk) => {
              upstream.write(chunk)
              record(chunk)
            })
            upstream.on("data", (chunk) => client.write(chunk))
            for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
              a.on("error", () => b.destroy())
              a.on("close", () => b.destroy())
            }
          })
          server.listen(0, "127.0.0.1", () => {
            const { port } = server.address() as net.AddressInfo
            resolve({
              address: `127.0.0.1:${port}`,
              lines,
              close: () =>
                new Promise<void>((done) => {
                  for (const s of sockets) s.destroy()
                  server.close(() => done())
                }),
            })
          })
        }),
    ),
    (proxy) => Effect.promise(proxy.close),
  )

/** Runs `body` with a client (plain keys, so the wire lines show them) behind a recording proxy. */
const recorded = <A, E>(body: Effect.Effect<A, E, McClient>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const proxy = yield* recordingProxy(inject("memcached"))
      const result = yield* body.pipe(
        Effect.provide(McClient.layer({ servers: [proxy.address], disableBinaryEncodedKeys: true, timeout: "2 seconds" })),
      )
      return { result, lines: proxy.lines.filter((l) => l.startsWith("ms ")) }
    }),
  )

/** The shared assertions: the keys were created with the value, no flags and the expiration. */
const createsMissingKeys = Effect.gen(function* () {
  const appended = uniqueKey("vivify-append")
  const prepended = uniqueKey("vivify-prepend")
  const plain = uniqueKey("vivify-none")
  yield* McClient.append({ key: appended, value: "a" }, { expiration: 60 })
  yield* McClient.prepend({ key: prepended, value: "p" }, { expiration: 120 })
  const a = yield* McClient.get(appended, { ttl: true })
  const p = yield* McClient.get(prepended, { ttl: true })
  // An existing key is appended to and keeps its TTL.
  yield* McClient.append({ key: appended, value: "b" }, { expiration: 3600 })
  const ab = yield* McClient.get(appended, { ttl: true })
  const none = failureTag(yield* Effect.exit(McClient.append({ key: plain, value: "x" })))
  return { keys: { appended, prepended, plain }, a, p, ab, none }
})

describe(`append/prepend with expiration on a missing key (memcached ${version.text})`, () => {
  it.live.runIf(vivify)("memcached ≥ 1.6.20: created by ms … MA/MP N<ttl> in one request", () =>
    Effect.gen(function* () {
      const { result, lines } = yield* recorded(createsMissingKeys)
      const { keys, a, p, ab, none } = result
      expect(text(a.value)).toBe("a")
      expect(a.flags).toBe(0)
      expect(a.ttl).toBeGreaterThanOrEqual(59)
      expect(a.ttl).toBeLessThanOrEqual(60)
      expect(text(p.value)).toBe("p")
      expect(p.ttl).toBeGreaterThanOrEqual(119)
      expect(text(ab.value)).toBe("ab")
      expect(ab.ttl).toBeLessThanOrEqual(60)
      expect(none).toBe("NotStored")
      expect(lines).toEqual([
        `ms ${keys.appended} 1 MA N60`,
        `ms ${keys.prepended} 1 MP N120`,
        `ms ${keys.appended} 1 MA N3600`,
        `ms ${keys.plain} 1 MA`,
      ])
    }))

  it.live.runIf(!vivify)("memcached < 1.6.20: emulated by append, add on NS (then append again if the add lost)", () =>
    Effect.gen(function* () {
      const { result, lines } = yield* recorded(createsMissingKeys)
      const { keys, a, p, ab, none } = result
      expect(text(a.value)).toBe("a")
      expect(a.flags).toBe(0)
      expect(a.ttl).toBeGreaterThanOrEqual(59)
      expect(a.ttl).toBeLessThanOrEqual(60)
      expect(text(p.value)).toBe("p")
      expect(p.ttl).toBeGreaterThanOrEqual(119)
      expect(text(ab.value)).toBe("ab")
      expect(ab.ttl).toBeLessThanOrEqual(60)
      expect(none).toBe("NotStored")
      expect(lines).toEqual([
        `ms ${keys.appended} 1 MA`,
        `ms ${keys.appended} 1 ME T60`,
        `ms ${keys.prepended} 1 MP`,
        `ms ${keys.prepended} 1 ME T120`,
        `ms ${keys.appended} 1 MA`,
        `ms ${keys.plain} 1 MA`,
      ])
    }))

  it.live.runIf(!vivify)("memcached < 1.6.20 ignores N on append: the reason the client emulates it", () =>
    Effect.gen(function* () {
      const key = uniqueKey("vivify-raw")
      const reply = yield* Effect.promise(
        () =>
          new Promise<string>((resolve, reject) => {
            const target = inject("memcached")
            const i = target.lastIndexOf(":")
            const s = net.createConnection({ host: target.slice(0, i), port: Number(target.slice(i + 1)) })
            let data = ""
            s.on("data", (d) => {
              data += d.toString("latin1")
              if (data.endsWith("MN\r\n")) {
                s.destroy()
                resolve(data)
              }
            })
            s.on("error", reject)
            s.write(`ms ${key} 1 MA N60\r\nx\r\nmg ${key} v\r\nmn\r\n`)
          }),
      )
      expect(reply).toBe("NS\r\nEN\r\nMN\r\n")
    }))
})
