/**
 * Seed: Example (WithCAS). `get(key, { cas: true })` returns the item's CAS token, which
 * `compareAndSwap` checks.
 *
 * Output:
 *   Updated using CAS
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "data", value: "initial" }, { expiration: 60 })

  // Get with the CAS token, for optimistic locking
  const item = yield* McClient.get("data", { cas: true })

  yield* McClient.compareAndSwap({ ...item, value: "updated" })

  yield* Console.log("Updated using CAS")
})

runIfMain(import.meta.url, program)
