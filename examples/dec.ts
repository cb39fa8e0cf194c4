/**
 * Seed: Example (Client.Dec). Counters are decimal text values; `dec` returns the new value.
 *
 * Output:
 *   Stock after decrement: 90
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "stock", value: "100" }, { expiration: 3600 })

  const stock = yield* McClient.dec("stock", 10, 3600)
  yield* Console.log(`Stock after decrement: ${stock}`)
})

runIfMain(import.meta.url, program)
