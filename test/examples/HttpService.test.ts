/**
 * The example HTTP service (examples/http-service), through HTTP requests answered by its router
 * as a web handler: on the memory layer under `TestClock` (the lookup's delay, the cached copy's
 * expiry and its early recache all run on the test's clock), and on real memcached.
 */
import { HttpApp } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, DateTime, Duration, Effect, Fiber, Layer, Logger, Option, Schema, TestClock } from "effect"
import { inject } from "vitest"
import { CacheLive, router, userCache, userKey } from "../../examples/http-service/app.js"
import { directorySize, User, UserDirectory, UserId } from "../../examples/http-service/Users.js"
import { McClient } from "../../src/index.js"

interface Reply {
  readonly status: number
  readonly body: unknown
}

/**
 * The service over `cache`, its directory taking `delay` per lookup and recording the ids it
 * looks up. The handler runs on the test's runtime, so its fibers see the test's clock.
 */
const makeService = (cache: Layer.Layer<McClient, unknown>, delay: Duration.DurationInput) =>
  Effect.gen(function* () {
    const lookups: Array<number> = []
    const counted = Layer.effect(
      UserDirectory,
      Effect.map(UserDirectory, ({ lookup }) => ({
        lookup: (id: UserId) => Effect.suspend(() => (lookups.push(id), lookup(id))),
      })),
    ).pipe(Layer.provide(UserDirectory.layerSlow(delay)))
    const runtime = yield* Layer.toRuntime(Layer.merge(cache, counted))
    const handler = HttpApp.toWebHandlerRuntime(runtime)(router)
    const get = (path: string): Effect.Effect<Reply> =>
      Effect.promise(async () => {
        const response = await handler(new Request(`http://localhost${path}`))
        const text = await response.text()
        return { status: response.status, body: text === "" ? undefined : JSON.parse(text) }
      })
    return { get, lookups, runtime }
  })

/** The user of a 200 reply. */
const userOf = (reply: Reply) => {
  expect(reply.status).toBe(200)
  return Schema.decodeUnknownSync(User)(reply.body)
}

/** The user `id` as the directory makes it, loaded at `loadedAt` (ms on the test clock). */
const expectUser = (reply: Reply, id: number, loadedAt: number) => {
  const user = userOf(reply)
  expect({ ...user, loadedAt: DateTime.toEpochMillis(user.loadedAt) }).toEqual({
    id,
    name: `User ${id}`,
    email: `user${id}@example.com`,
    loadedAt,
  })
}

/**
 * The handler's fibers are not children of the test's fiber, so `TestClock.adjust` does not wait
 * for them to reach their sleeps: this lets them run (real event-loop turns) until `done` holds.
 */
const waitUntil = (what: string, done: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    for (let turn = 0; turn < 2000; turn++) {
      if (yield* done) return
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
    }
    return yield* Effect.dieMessage(`timed out waiting until ${what}`)
  })

/** A request the cache answers: it completes without the test clock moving. */
const answeredNow = (request: Effect.Effect<Reply>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(request)
    yield* waitUntil("the request is answered without the clock moving", Effect.map(Fiber.poll(fiber), Option.isSome))
    return yield* Fiber.join(fiber)
  })

/** `n` lookups have started and are sleeping on the test clock. */
const lookupsSleeping = (lookups: ReadonlyArray<number>, n: number) =>
  waitUntil(
    `${n} lookup(s) sleep`,
    Effect.map(TestClock.sleeps(), (sleeps) => lookups.length === n && sleeps.length >= 1),
  )

const delay = Duration.seconds(1)
const seconds = (s: number) => Duration.seconds(s)

describe("memory layer, TestClock", () => {
  it.scoped("a cold id runs the slow lookup; then the cache answers, until early recache and expiry", () =>
    Effect.gen(function* () {
      const { get, lookups } = yield* makeService(McClient.layerMemory(), delay)

      // Cold: the lookup runs and takes its second.
      const first = yield* Effect.fork(get("/users/7"))
      yield* lookupsSleeping(lookups, 1)
      yield* TestClock.adjust(delay)
      expectUser(yield* Fiber.join(first), 7, 1000)

      // Warm: answered from the cache at once, no lookup, the same copy.
      expectUser(yield* answeredNow(get("/users/7")), 7, 1000)
      expect(lookups).toEqual([7])

      // Inside the early-recache window (stored at 1 s, now 1 s + 51 s: 9 s of 60 left, under 10):
      // the request is answered with the cached copy at once, and one refresh starts behind it.
      yield* TestClock.adjust(seconds(userCache.expiration - userCache.earlyRecache + 1))
      expectUser(yield* answeredNow(get("/users/7")), 7, 1000)
      yield* lookupsSleeping(lookups, 2)
      // While it runs, others are answered from the cache too, and start no lookup.
      expectUser(yield* answeredNow(get("/users/7")), 7, 1000)
      expect(lookups).toEqual([7, 7])

      // The refresh lands: the next requests get the new copy (loaded at 52 s + 1 s).
      yield* TestClock.adjust(delay)
      const refreshedAt = 53_000
      yield* waitUntil(
        "the refreshed copy is served",
        Effect.map(answeredNow(get("/users/7")), (reply) => DateTime.toEpochMillis(userOf(reply).loadedAt) === refreshedAt),
      )
      expectUser(yield* answeredNow(get("/users/7")), 7, refreshedAt)
      expect(lookups).toEqual([7, 7])

      // Nobody asks during the refreshed copy's recache window; past its expiry the lookup runs again.
      yield* TestClock.adjust(seconds(userCache.expiration + 1))
      const afterExpiry = yield* Effect.fork(get("/users/7"))
      yield* lookupsSleeping(lookups, 3)
      yield* TestClock.adjust(delay)
      expectUser(yield* Fiber.join(afterExpiry), 7, refreshedAt + (userCache.expiration + 2) * 1000)
      expect(lookups).toEqual([7, 7, 7])
    }),
  )

  it.scoped("20 concurrent requests for one cold id run 1 lookup and all get that user", () =>
    Effect.gen(function* () {
      const { get, lookups } = yield* makeService(McClient.layerMemory(), delay)
      const requests = yield* Effect.forkAll(Array.from({ length: 20 }, () => get("/users/9")))
      yield* lookupsSleeping(lookups, 1)
      // No time has passed: not one request could be answered without the lookup.
      expect(yield* Fiber.poll(requests)).toEqual(Option.none())
      yield* TestClock.adjust(delay)
      const replies = yield* Fiber.join(requests)
      for (const reply of replies) expectUser(reply, 9, 1000)
      expect(lookups).toEqual([9])
    }),
  )

  it.scoped("concurrent requests for several cold ids: one lookup each, and each reply is its own user", () =>
    Effect.gen(function* () {
      const { get, lookups } = yield* makeService(McClient.layerMemory(), delay)
      const ids = Array.from({ length: 40 }, (_, i) => (i % 4) + 1)
      const requests = yield* Effect.forkAll(ids.map((id) => get(`/users/${id}`)))
      yield* lookupsSleeping(lookups, 4)
      yield* TestClock.adjust(delay)
      const replies = yield* Fiber.join(requests)
      replies.forEach((reply, i) => expectUser(reply, ids[i]!, 1000))
      expect([...lookups].sort()).toEqual([1, 2, 3, 4])
    }),
  )

  it.scoped("a malformed id is a 400 and reaches neither the cache nor the directory", () =>
    Effect.gen(function* () {
      const { get, lookups, runtime } = yield* makeService(McClient.layerMemory(), delay)
      for (const id of ["abc", "0", "-3", "1.5", "1e400", "%20"]) {
        const reply = yield* answeredNow(get(`/users/${id}`))
        expect({ id, reply }).toEqual({ id, reply: { status: 400, body: { error: "the id must be a positive integer" } } })
      }
      expect(lookups).toEqual([])
      // Nothing was cached under a key made of a bad id.
      const mc = yield* Effect.provide(McClient, runtime.context)
      for (const key of ["user:abc", "user:0", "user:NaN", "user:-3", "user:1.5", "user:Infinity"])
        expect(yield* Effect.flip(mc.get(key))).toMatchObject({ _tag: "CacheMiss" })
    }),
  )

  it.scoped("an unknown user is a 404, not cached: each request asks the directory again", () =>
    Effect.gen(function* () {
      const { get, lookups, runtime } = yield* makeService(McClient.layerMemory(), delay)
      const missing = directorySize + 1
      for (const n of [1, 2]) {
        const reply = yield* Effect.fork(get(`/users/${missing}`))
        yield* lookupsSleeping(lookups, n)
        yield* TestClock.adjust(delay)
        expect(yield* Fiber.join(reply)).toEqual({ status: 404, body: { error: `no user ${missing}` } })
      }
      expect(lookups).toEqual([missing, missing])
      const mc = yield* Effect.provide(McClient, runtime.context)
      expect(yield* Effect.flip(mc.get(userKey(UserId.make(missing))))).toMatchObject({ _tag: "CacheMiss" })
      // Another route is the router's own 404.
      expect(yield* answeredNow(get("/nothing-here"))).toEqual({ status: 404, body: undefined })
    }),
  )

  it.scoped("a cached value that no longer decodes as a User is recomputed, not served", () =>
    Effect.gen(function* () {
      const { get, lookups, runtime } = yield* makeService(McClient.layerMemory(), delay)
      const mc = yield* Effect.provide(McClient, runtime.context)
      yield* mc.set({ key: userKey(UserId.make(5)), value: JSON.stringify({ id: 5, name: 42 }) }, { expiration: 60 })
      const reply = yield* Effect.fork(get("/users/5"))
      yield* lookupsSleeping(lookups, 1)
      yield* TestClock.adjust(delay)
      expectUser(yield* Fiber.join(reply), 5, 1000)
      expect(lookups).toEqual([5])
    }),
  )
})

/** CacheLive with `MEMCACHE_SERVERS` as given (unset when undefined). */
const cacheFromEnv = (servers: string | undefined) =>
  CacheLive.pipe(
    Layer.provide(
      Layer.setConfigProvider(ConfigProvider.fromMap(new Map(servers === undefined ? [] : [["MEMCACHE_SERVERS", servers]]))),
    ),
  )

/** A user id no other run of this file has used on the shared memcached. */
const freshId = () => UserId.make(1 + ((process.pid * 31 + Date.now()) % directorySize))

describe("CacheLive (MEMCACHE_SERVERS), real time", () => {
  it.live("with MEMCACHE_SERVERS, users are cached in that memcached", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const id = freshId()
        const { get, lookups } = yield* makeService(cacheFromEnv(inject("memcached")), "20 millis")
        const first = userOf(yield* get(`/users/${id}`))
        expect(first).toMatchObject({ id, name: `User ${id}` })
        expect(userOf(yield* get(`/users/${id}`))).toEqual(first)
        expect(lookups).toEqual([id])
        // Another client of that server reads the very user the service cached.
        const cached = yield* McClient.getAs(User, userKey(id)).pipe(
          Effect.provide(McClient.layer({ servers: [inject("memcached")] })),
        )
        expect(cached).toEqual(first)
      }),
    ),
  )

  it.live("two instances of the service on one memcached: 20 concurrent requests for a cold id, 1 lookup in all", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const id = freshId()
        const server = yield* Layer.build(McClient.layer({ servers: [inject("memcached")] }))
        yield* Effect.ignore(Effect.provide(McClient.del(userKey(id)), server))
        // Two clients, as two processes would have: only memcached's lease keeps them to one lookup.
        const a = yield* makeService(cacheFromEnv(inject("memcached")), "100 millis")
        const b = yield* makeService(cacheFromEnv(inject("memcached")), "100 millis")
        const replies = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).get(`/users/${id}`)),
          { concurrency: "unbounded" },
        )
        const users = replies.map(userOf)
        for (const user of users) expect(user).toEqual(users[0])
        expect(users[0]).toMatchObject({ id, name: `User ${id}` })
        expect([...a.lookups, ...b.lookups]).toEqual([id])
      }),
    ),
  )

  it.live("without MEMCACHE_SERVERS, the in-memory engine: nothing reaches memcached", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const id = freshId()
        const server = yield* Layer.build(McClient.layer({ servers: [inject("memcached")] }))
        const onServer = Effect.flip(Effect.provide(McClient.get(userKey(id)), server))
        yield* Effect.ignore(Effect.provide(McClient.del(userKey(id)), server))
        const { get, lookups } = yield* makeService(cacheFromEnv(undefined), "20 millis")
        const first = userOf(yield* get(`/users/${id}`))
        expect(userOf(yield* get(`/users/${id}`))).toEqual(first)
        expect(lookups).toEqual([id])
        expect(yield* onServer).toMatchObject({ _tag: "CacheMiss" })
      }),
    ),
  )

  it.live("when memcached is down, every request is still answered by the lookup", () =>
    Effect.scoped(
      Effect.gen(function* () {
        // A port nothing listens on: the cache fails at once, and getOrSet falls back to the lookup
        // and says so in the log.
        const warnings: Array<unknown> = []
        const recordWarnings = Logger.replace(
          Logger.defaultLogger,
          Logger.make(({ logLevel, message }) => void (logLevel._tag === "Warning" && warnings.push(message))),
        )
        const { get, lookups } = yield* Effect.provide(makeService(cacheFromEnv("127.0.0.1:1"), "5 millis"), recordWarnings)
        const replies = yield* Effect.all([get("/users/3"), get("/users/4"), get("/users/3")])
        expect(replies.map((r) => userOf(r).name)).toEqual(["User 3", "User 4", "User 3"])
        expect(lookups).toEqual([3, 4, 3])
        expect(warnings.map(String)).toContainEqual(expect.stringContaining("going on without the cache"))
      }),
    ),
  )
})
