/**
 * memcached's text-protocol authentication (`-Y <authfile>`) against real memcached: the right and
 * the wrong password, a missing `auth`, re-authentication after a restart, TLS with
 * authentication, and the password never showing in errors, logs, spans or `inspect` output.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Redacted, Schedule, Tracer } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inspect } from "node:util"
import { type MemcachedProcess, startMemcached } from "../../scripts/memcached.js"
import { McClient, type McClientOptions } from "../../src/index.js"
import { makeTestCerts, tlsArgs } from "../support/certs.js"
import { failureOf } from "../support/exits.js"
import { text, uniqueKey } from "../support/layers.js"

const PASSWORD = "s3cret-Pa55word"
let authFile: string
let server: MemcachedProcess

const startAuthServer = (port?: number, extra: ReadonlyArray<string> = []) =>
  startMemcached({ ...(port === undefined ? {} : { port }), extraArgs: ["-Y", authFile, ...extra] })

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "effect-memcache-auth-"))
  authFile = join(dir, "authfile")
  writeFileSync(authFile, `alice:${PASSWORD}\nbob:other\n`)
  server = await startAuthServer()
})

afterAll(async () => {
  await server?.stop()
})

const noRetry = Schedule.recurs(0)
const alice = { username: "alice", password: Redacted.make(PASSWORD) }

const withClient = <A, E, R>(options: Omit<McClientOptions, "servers"> & { servers?: ReadonlyArray<string> }, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(McClient.layer({ servers: [server.address], dialTimeout: "2 seconds", timeout: "2 seconds", ...options })))

/** Log lines (message and annotations, as text) while `effect` runs, the client's background fibers included. */
const capturingLogs = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const logger = Logger.make(({ message, annotations, cause }) => {
      lines.push(inspect({ message, annotations, cause }, { depth: 10 }))
    })
    const result = yield* Effect.exit(effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger))))
    return { result, lines }
  })

describe("authentication (memcached -Y)", () => {
  it.live("the right password: every operation works", () =>
    withClient(
      { auth: alice },
      Effect.gen(function* () {
        const key = uniqueKey("auth")
        yield* McClient.set({ key, value: "authenticated" })
        expect(text((yield* McClient.get(key)).value)).toBe("authenticated")
        expect((yield* McClient.getMulti([key])).size).toBe(1)
        expect(yield* McClient.inc(uniqueKey("n"), 1, 60, { initialValue: 41 })).toBe(41n)
      }),
    ),
  )

  it.live("the wrong password: AuthenticationError, not retried, logged once, the server not marked down", () =>
    Effect.gen(function* () {
      const { result, lines } = yield* capturingLogs(
        withClient(
          { auth: { username: "alice", password: Redacted.make("wrong") } },
          Effect.gen(function* () {
            const failures: Array<unknown> = []
            for (let i = 0; i < 5; i++) failures.push(failureOf(yield* Effect.exit(McClient.get(uniqueKey("k")))))
            failures.push(failureOf(yield* Effect.exit(McClient.set({ key: uniqueKey("k"), value: "v" }))))
            yield* Effect.sleep("50 millis")
            return failures
          }),
        ),
      )
      const failures = result._tag === "Success" ? result.value : []
      expect(failures).toHaveLength(6)
      for (const f of failures) expect(f).toMatchObject({ _tag: "AuthenticationError", server: server.address })
      expect((failures[0] as { reason: string }).reason).toMatch(/refused user "alice" \(authentication failure\)/)
      expect(lines.filter((l) => /authentication/i.test(l))).toHaveLength(1)
      expect(lines.filter((l) => /marked down|back up/.test(l))).toHaveLength(0)
    }),
  )

  it.live("a missing auth against a server that requires it: AuthenticationError saying so", () =>
    withClient(
      { retry: noRetry },
      Effect.gen(function* () {
        const failure = failureOf(yield* Effect.exit(McClient.get(uniqueKey("k"))))
        expect(failure).toMatchObject({ _tag: "AuthenticationError", server: server.address })
        expect((failure as { reason: string }).reason).toMatch(/requires authentication/)
      }),
    ),
  )

  it.live("after the server restarts, new connections authenticate again", () =>
    Effect.gen(function* () {
      const own = yield* Effect.promise(() => startAuthServer())
      yield* withClient(
        { servers: [own.address], auth: alice },
        Effect.gen(function* () {
          const key = uniqueKey("restart")
          yield* McClient.set({ key, value: "before" })
          yield* Effect.promise(() => own.stop())
          const again = yield* Effect.promise(() => startAuthServer(own.port))
          yield* Effect.addFinalizer(() => Effect.promise(() => again.stop()))
          // The restarted server is empty; a set and a get on it only work if the client authenticated.
          const value = yield* McClient.set({ key, value: "after" }).pipe(
            Effect.zipRight(McClient.get(key)),
            Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.intersect(Schedule.recurs(60)))),
          )
          expect(text(value.value)).toBe("after")
        }),
      ).pipe(Effect.scoped)
    }),
  )

  it.live("TLS and authentication together", () =>
    Effect.gen(function* () {
      const certs = makeTestCerts()
      const both = yield* Effect.acquireRelease(
        Effect.promise(() => startAuthServer(undefined, tlsArgs(certs))),
        (p) => Effect.promise(() => p.stop()),
      )
      yield* withClient(
        { servers: [both.address], auth: alice, tls: { ca: certs.ca } },
        Effect.gen(function* () {
          const key = uniqueKey("tls-auth")
          yield* McClient.set({ key, value: "both" })
          expect(text((yield* McClient.get(key)).value)).toBe("both")
        }),
      )
      const wrong = yield* withClient(
        { servers: [both.address], auth: { username: "alice", password: Redacted.make("nope") }, tls: { ca: certs.ca } },
        Effect.exit(McClient.get(uniqueKey("k"))),
      )
      expect(failureOf(wrong)).toMatchObject({ _tag: "AuthenticationError" })
    }).pipe(Effect.scoped),
  )

  it.live("discovery over TLS with authentication: a real memcached (-Z -Y) as the configuration endpoint", () =>
    Effect.gen(function* () {
      const certs = makeTestCerts()
      const both = yield* Effect.acquireRelease(
        Effect.promise(() => startAuthServer(undefined, tlsArgs(certs))),
        (p) => Effect.promise(() => p.stop()),
      )
      const tls = { ca: certs.ca }
      // memcached 1.6 has no `config get cluster` (it answers ERROR): the client falls back to the
      // legacy key, which this server holds, listing itself by host name (for TLS) and IP.
      yield* withClient(
        { servers: [both.address], auth: alice, tls, disableBinaryEncodedKeys: true },
        McClient.set({ key: "AmazonElastiCache:cluster", value: `7\nlocalhost|127.0.0.1|${both.port}\n\r\n` }),
      )
      const discovered = (auth: McClientOptions["auth"]) =>
        McClient.layer({
          discovery: { configEndpoint: both.address },
          auth,
          tls,
          dialTimeout: "2 seconds",
          timeout: "2 seconds",
          retry: noRetry,
        })
      yield* Effect.gen(function* () {
        const key = uniqueKey("discovered")
        yield* McClient.set({ key, value: key })
        expect(text((yield* McClient.get(key)).value)).toBe(key)
        const [status] = yield* McClient.status
        expect(status!.address).toBe(`127.0.0.1:${both.port}`)
      }).pipe(Effect.provide(discovered(alice)))
      const refused = yield* Effect.exit(Layer.build(discovered({ username: "alice", password: Redacted.make("nope") })).pipe(Effect.scoped))
      expect(failureOf(refused)).toMatchObject({ _tag: "NoServers" })
      expect((failureOf(refused) as { reason: string }).reason).toMatch(/authentication failure/)
      expect((failureOf(refused) as { reason: string }).reason).not.toContain("nope")
    }).pipe(Effect.scoped),
  )

  it.live("the password never appears in errors, logs, spans or inspect output", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const spans: Array<Tracer.Span> = []
      const base = yield* Effect.tracer
      const tracer = Tracer.make({
        span: (...args) => {
          const span = base.span(...args)
          spans.push(span)
          return span
        },
        context: base.context,
      })
      const wrongPassword = { username: "alice", password: Redacted.make(PASSWORD + "x") }
      const run = <A, E>(options: McClientOptions, effect: Effect.Effect<A, E, McClient>) =>
        capturingLogs(
          effect.pipe(
            Effect.withSpan("test"),
            Effect.provide(McClient.layer(options)),
            Effect.provide(Layer.setTracer(tracer)),
          ),
        ).pipe(
          Effect.map(({ result, lines }) => {
            seen.push(...lines, inspect(result, { depth: 10 }), JSON.stringify(result))
            const failure = failureOf(result) as Error | undefined
            if (failure !== undefined) seen.push(failure.message, String(failure), inspect(failure), JSON.stringify(failure))
            return result
          }),
        )
      const options = { servers: [server.address], retry: noRetry, dialTimeout: "2 seconds", timeout: "2 seconds" } as const
      yield* run({ ...options, auth: alice }, McClient.set({ key: uniqueKey("k"), value: "v" }))
      yield* run({ ...options, auth: wrongPassword }, McClient.get(uniqueKey("k")))
      // A password given as a plain string (a mistake the types catch) is not echoed back either.
      const plain = yield* run({ ...options, auth: { username: "alice", password: PASSWORD } } as never, McClient.get("k"))
      expect(failureOf(plain)).toMatchObject({ _tag: "InvalidOption", option: "auth" })
      seen.push(inspect(alice), JSON.stringify(alice), String(alice.password), inspect({ ...options, auth: alice }, { depth: 10 }))
      for (const span of spans) seen.push(inspect(span.attributes), JSON.stringify([...span.attributes]))
      expect(seen.length).toBeGreaterThan(10)
      for (const s of seen) {
        expect(s).not.toContain(PASSWORD)
      }
    }),
  )
})
