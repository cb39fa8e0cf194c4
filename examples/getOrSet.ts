/**
 * Read-through caching that survives a stampede (not one of the seed's examples: kinescope/mc has
 * no getOrSet). A hundred concurrent requests for one uncached user run the slow lookup once; all
 * of them get its value, and later requests are served from the cache.
 *
 * Output:
 *   100 concurrent callers, 1 lookup
 *   every caller got: Ada (user 42)
 *   a later call: Ada, still 1 lookup
 */
import { Console, Effect, Schema } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

const User = Schema.Struct({ id: Schema.Number, name: Schema.String })

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  const key = "example:getOrSet:user:42"
  // Start cold.
  yield* McClient.del(key).pipe(Effect.catchTag("CacheMiss", () => Effect.void))

  let lookups = 0
  // Stands for a database query that takes 50 ms.
  const loadUser = Effect.sync(() => lookups++).pipe(
    Effect.zipRight(Effect.sleep("50 millis")),
    Effect.as({ id: 42, name: "Ada" }),
  )
  const getUser = McClient.getOrSet(key, loadUser, { schema: User, expiration: "10 minutes" })

  const users = yield* Effect.all(Array.from({ length: 100 }, () => getUser), { concurrency: "unbounded" })
  yield* Console.log(`${users.length} concurrent callers, ${lookups} lookup${lookups === 1 ? "" : "s"}`)
  const names = new Set(users.map((u) => `${u.name} (user ${u.id})`))
  yield* Console.log(`every caller got: ${[...names].join(", ")}`)

  const later = yield* getUser
  yield* Console.log(`a later call: ${later.name}, still ${lookups} lookup${lookups === 1 ? "" : "s"}`)
})

runIfMain(import.meta.url, program)
