/**
 * Seed: Example (ServeStale). An item that simply expired is gone: a get with `earlyRecache` after
 * its expiration is a `CacheMiss`. (Stale serving applies to items invalidated with
 * `del(key, { invalidate: s })`: those are returned with `item.stale`, and the first reader wins
 * the recache token, `item.won`.)
 *
 * The program sleeps 2 seconds (Effect's Clock), so that the 1-second item expires.
 *
 * Output:
 *   Cache miss - need to fetch from source
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  // A value with a short expiration (1 second)
  yield* McClient.set({ key: "stale_data", value: "original_value" }, { expiration: 1 })

  // Wait for it to expire
  yield* Effect.sleep("2 seconds")

  // Get with early recache: stale data would be returned if it were available
  yield* McClient.get("stale_data", { earlyRecache: 60 }).pipe(
    Effect.flatMap((item) =>
      item.stale
        ? Effect.gen(function* () {
            yield* Console.log(`Serving stale data: ${valueText(item)}`)
            if (item.won) yield* Console.log("Refreshing stale data...")
          })
        : Console.log(`Fresh data: ${valueText(item)}`),
    ),
    Effect.catchTag("CacheMiss", () => Console.log("Cache miss - need to fetch from source")),
  )
})

runIfMain(import.meta.url, program)
