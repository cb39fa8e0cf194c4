/**
 * TLS against real memcached (`-Z`), with certificates made by openssl for the test: verification
 * on by default, SNI and host name checks, typed handshake failures, mutual TLS, and per-server
 * overrides. The behaviour suites also run over TLS (test/support/layers.ts, target "memcached-tls").
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { inject } from "vitest"
import { type MemcachedProcess, startMemcached } from "../../scripts/memcached.js"
import { McClient, type McClientOptions } from "../../src/index.js"
import { makeTestCerts, type TestCerts, tlsArgs } from "../support/certs.js"
import { failureOf } from "../support/exits.js"
import { text, uniqueKey } from "../support/layers.js"

let certs: TestCerts
let tlsServer: MemcachedProcess
let mutualServer: MemcachedProcess

beforeAll(async () => {
  certs = makeTestCerts()
  tlsServer = await startMemcached({ extraArgs: tlsArgs(certs) })
  mutualServer = await startMemcached({ extraArgs: tlsArgs(certs, true) })
})

afterAll(async () => {
  await Promise.all([tlsServer?.stop(), mutualServer?.stop()])
})

const noRetry = Schedule.recurs(0)

/** set, get, getMulti, inc, del through a client with these options. */
const roundTrip = (options: McClientOptions) =>
  Effect.gen(function* () {
    const key = uniqueKey("tls")
    yield* McClient.set({ key, value: "over TLS" })
    const item = yield* McClient.get(key)
    const many = yield* McClient.getMulti([key, uniqueKey("absent")])
    const n = yield* McClient.inc(uniqueKey("counter"), 5, 60, { initialValue: 10 })
    yield* McClient.del(key)
    return { value: text(item.value), many: many.size, n }
  }).pipe(Effect.provide(McClient.layer({ dialTimeout: "2 seconds", timeout: "2 seconds", ...options })))

const firstFailure = (options: McClientOptions) =>
  McClient.get(uniqueKey("k")).pipe(
    Effect.provide(McClient.layer({ dialTimeout: "2 seconds", timeout: "2 seconds", retry: noRetry, ...options })),
    Effect.exit,
    Effect.map(failureOf),
  )

describe("TLS", () => {
  it.live("operations over TLS, the CA given, by IP and by host name (SNI)", () =>
    Effect.gen(function* () {
      const byIp = yield* roundTrip({ servers: [tlsServer.address], tls: { ca: certs.ca } })
      expect(byIp).toEqual({ value: "over TLS", many: 1, n: 10n })
      const byName = yield* roundTrip({ servers: [`localhost:${tlsServer.port}`], tls: { ca: certs.ca } })
      expect(byName.value).toBe("over TLS")
    }),
  )

  it.live("a certificate from an untrusted CA fails the handshake: ConnectionError, tls untrusted-certificate", () =>
    Effect.gen(function* () {
      const defaults = yield* firstFailure({ servers: [tlsServer.address], tls: true })
      expect(defaults).toMatchObject({ _tag: "ConnectionError", server: tlsServer.address, tls: "untrusted-certificate" })
      const other = yield* firstFailure({ servers: [tlsServer.address], tls: { ca: certs.otherCa } })
      expect(other).toMatchObject({ _tag: "ConnectionError", tls: "untrusted-certificate" })
      expect((other as Error).message).toMatch(/not trusted/)
    }),
  )

  it.live("a certificate for another host name fails: tls hostname-mismatch", () =>
    Effect.gen(function* () {
      const failure = yield* firstFailure({ servers: [tlsServer.address], tls: { ca: certs.ca, servername: "cache.example.com" } })
      expect(failure).toMatchObject({ _tag: "ConnectionError", tls: "hostname-mismatch" })
    }),
  )

  it.live("TLS to a plaintext server fails as a protocol failure, within the dial timeout", () =>
    Effect.gen(function* () {
      const start = Date.now()
      const failure = yield* firstFailure({ servers: [inject("memcached")], tls: { ca: certs.ca }, dialTimeout: "500 millis" })
      expect(failure).toMatchObject({ _tag: "ConnectionError", tls: "protocol-version" })
      expect(Date.now() - start).toBeLessThan(1500)
    }),
  )

  it.live("mutual TLS: with the client certificate it works; without one it is refused", () =>
    Effect.gen(function* () {
      const mutual = yield* roundTrip({
        servers: [mutualServer.address],
        tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey },
      })
      expect(mutual.value).toBe("over TLS")
      const without = yield* firstFailure({ servers: [mutualServer.address], tls: { ca: certs.ca } })
      expect(without).toMatchObject({ _tag: "ConnectionError", server: mutualServer.address })
    }),
  )

  it.live("a server's own tls overrides the client's: a TLS server beside a plaintext one", () =>
    Effect.gen(function* () {
      const mixed = yield* roundTrip({ servers: [{ address: tlsServer.address, tls: { ca: certs.ca } }, inject("memcached")] })
      expect(mixed.value).toBe("over TLS")
      const off = yield* roundTrip({ servers: [tlsServer.address, { address: inject("memcached"), tls: false }], tls: { ca: certs.ca } })
      expect(off.value).toBe("over TLS")
    }),
  )

  it.live("a failed handshake marks the server down like a failed dial", () =>
    Effect.gen(function* () {
      const failures: Array<unknown> = []
      for (let i = 0; i < 3; i++) failures.push(failureOf(yield* Effect.exit(McClient.get(uniqueKey("k")))))
      expect(failures[0]).toMatchObject({ _tag: "ConnectionError", tls: "untrusted-certificate" })
      expect(failures[1]).toMatchObject({ _tag: "ConnectionError" })
      expect((failures[1] as Error).message).toMatch(/marked down/)
    }).pipe(Effect.provide(McClient.layer({ servers: [tlsServer.address], tls: true, retry: noRetry, dialTimeout: "2 seconds" }))),
  )
})
