/**
 * Seed: Example (WithMinUses). With `minUses: n`, a set stores the value only on the n-th set of
 * that key (within the expiration window); the sets before it are counted, not stored. This keeps
 * one-off values out of the cache.
 *
 * Output:
 *   Item set with min uses requirement
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "popular", value: "data" }, { expiration: 60, minUses: 3 })

  yield* Console.log("Item set with min uses requirement")
})

runIfMain(import.meta.url, program)
