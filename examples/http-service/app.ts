/**
 * The example service without a port: `GET /users/:id` as an `HttpRouter`, the user cached in
 * memcached with `getOrSet`. main.ts serves it; test/examples/HttpService.test.ts calls it through
 * `HttpApp.toWebHandlerRuntime`, on the memory layer and `TestClock`.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Config, Effect, Layer, Option, Schema } from "effect"
import { McClient } from "../../src/index.js"
import { User, UserDirectory, UserId } from "./Users.js"

export const userKey = (id: UserId) => `user:${id}`

/**
 * A cached user lives 60 s. In its last 10 s, one request refreshes it in the background while
 * every request is still answered at once with the cached copy, so a hot user never expires.
 */
export const userCache = { expiration: 60, earlyRecache: 10 } as const

const UserPath = Schema.Struct({ id: UserId })

const getUser = Effect.gen(function* () {
  const { id } = yield* HttpRouter.schemaPathParams(UserPath)
  const { lookup } = yield* UserDirectory
  const mc = yield* McClient
  // One lookup per cold id, however many requests (here or in other processes) ask at once.
  const user = yield* mc.getOrSet(userKey(id), lookup(id), { schema: User, ...userCache })
  return yield* HttpServerResponse.schemaJson(User)(user)
}).pipe(
  Effect.catchTags({
    ParseError: () => HttpServerResponse.json({ error: "the id must be a positive integer" }, { status: 400 }),
    UserNotFound: ({ id }) => HttpServerResponse.json({ error: `no user ${id}` }, { status: 404 }),
  }),
)

export const router = HttpRouter.empty.pipe(HttpRouter.get("/users/:id", getUser))

/** memcached at `MEMCACHE_SERVERS` when it is set, else the in-memory engine. */
export const CacheLive = Layer.unwrapEffect(
  Effect.flatMap(
    Config.option(McClient.serversFromEnv),
    Option.match({
      onNone: () => Effect.as(Effect.log("cache: in memory (MEMCACHE_SERVERS is not set)"), McClient.layerMemory()),
      onSome: (servers) => Effect.as(Effect.log(`cache: memcached at ${servers.join(", ")}`), McClient.layerFromEnv()),
    }),
  ),
)
