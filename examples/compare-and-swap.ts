/**
 * Seed: Example (Client.CompareAndSwap). Read the item with its CAS token, then store a new value
 * only if nobody changed it in between.
 *
 * Output:
 *   Updated successfully using CAS
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "counter", value: "100" }, { expiration: 60 })

  const item = yield* McClient.get("counter", { cas: true })

  // Modify and update using CAS
  yield* McClient.compareAndSwap({ ...item, value: "101" })

  yield* Console.log("Updated successfully using CAS")
})

runIfMain(import.meta.url, program)
