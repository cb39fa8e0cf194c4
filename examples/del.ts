/**
 * Seed: Example (Client.Del). After `del`, a `get` of the key fails with `CacheMiss`.
 *
 * Output:
 *   Key successfully deleted
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "temp", value: "data" }, { expiration: 60 })

  yield* McClient.del("temp")

  yield* McClient.get("temp").pipe(
    Effect.asVoid,
    Effect.catchTag("CacheMiss", () => Console.log("Key successfully deleted")),
  )
})

runIfMain(import.meta.url, program)
