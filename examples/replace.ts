/**
 * Seed: Example (Client.Replace). `replace` stores only a key that exists; otherwise it fails with
 * `NotStored`.
 *
 * Output:
 *   Status: new
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "status", value: "old" }, { expiration: 3600 })

  // Replace only works if the key exists
  yield* McClient.replace({ key: "status", value: "new" })

  const item = yield* McClient.get("status")
  yield* Console.log(`Status: ${valueText(item)}`)
})

runIfMain(import.meta.url, program)
