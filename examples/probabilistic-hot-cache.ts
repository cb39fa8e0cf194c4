/**
 * Seed: Example (ProbabilisticHotCache). `get(key, { hit: true })` tells whether the item was read
 * before this get: false on the first read after a set, true afterwards.
 *
 * Output:
 *   First access - not hit before
 *   Hot cache item - has been accessed before
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "hot_item", value: "data" }, { expiration: 3600 })

  // First access: the item has not been hit before
  const first = yield* McClient.get("hot_item", { hit: true })
  if (first.hit === false) yield* Console.log("First access - not hit before")

  // Second access: it has
  const second = yield* McClient.get("hot_item", { hit: true })
  if (second.hit === true) {
    // A real application might extend the TTL of hot items, pre-warm them, or monitor hit rates
    yield* Console.log("Hot cache item - has been accessed before")
  }
})

runIfMain(import.meta.url, program)
