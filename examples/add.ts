/**
 * Seed: Example (Client.Add). `add` stores only a key that does not exist yet; otherwise it fails
 * with `NotStored`.
 *
 * Output:
 *   Key already exists, Add failed
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  // Delete the key if it exists, to start clean
  yield* McClient.del("newkey").pipe(Effect.catchTag("CacheMiss", () => Effect.void))

  // Add only works if the key doesn't exist
  yield* McClient.add({ key: "newkey", value: "value" }, { expiration: 60 })

  // Adding again fails, because the key exists now
  yield* McClient.add({ key: "newkey", value: "another value" }).pipe(
    Effect.catchTag("NotStored", () => Console.log("Key already exists, Add failed")),
  )
})

runIfMain(import.meta.url, program)
