/**
 * Seed: Example (StampedingHerdHandling). Of many readers asking with `earlyRecache`, only one wins
 * the recache token (`item.won`) once the item is within that many seconds of expiring, and
 * refreshes it; the others keep using the cached value. Here 60 seconds are left, more than the
 * 10-second window, so nobody wins yet.
 *
 * Output:
 *   Using cached data: cached_value
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "popular_data", value: "cached_value" }, { expiration: 60 })

  const item = yield* McClient.get("popular_data", { earlyRecache: 10 })

  if (item.won) {
    // This reader won the recache: it should refresh the data in the background
    yield* Console.log("Won recache, refreshing data...")
  } else {
    // The others get the cached data at once
    yield* Console.log(`Using cached data: ${valueText(item)}`)
  }
})

runIfMain(import.meta.url, program)
