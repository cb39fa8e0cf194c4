/**
 * Seed: Example (Client.Inc). `inc` with `initialValue` creates a missing counter with that value
 * (the delta is not added on creation); counters are exact uint64 `bigint`s.
 *
 * Output:
 *   Counter after first increment: 1
 *   Counter after increment by 5: 6
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  // A key of its own, deleted first for a clean state
  const key = "example_counter_inc"
  yield* McClient.del(key).pipe(Effect.catchTag("CacheMiss", () => Effect.void))

  // Increment, creating the counter with 1 if it doesn't exist
  const first = yield* McClient.inc(key, 1, 3600, { initialValue: 1 })
  yield* Console.log(`Counter after first increment: ${first}`)

  const next = yield* McClient.inc(key, 5, 3600)
  yield* Console.log(`Counter after increment by 5: ${next}`)
})

runIfMain(import.meta.url, program)
