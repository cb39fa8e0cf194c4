/**
 * Seed: Example (Client.Append, Autovivify). With an `expiration`, `append` creates a missing key.
 *
 * The Go example falls back to `Set` when its append fails ("autovivify may not work in all
 * memcached versions"). This client vivifies on every supported server (natively on memcached
 * >= 1.6.20, emulated below that), so the example relies on it and has no fallback.
 *
 * Output:
 *   Log:
 *   Entry 1
 *   Entry 2
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  // Delete the key if it exists, to show autovivify
  yield* McClient.del("log").pipe(Effect.catchTag("CacheMiss", () => Effect.void))

  // Append with an expiration creates the key when it is missing (1 hour TTL)
  yield* McClient.append({ key: "log", value: "Entry 1" }, { expiration: 3600 })

  // Append more (no expiration needed for an existing key)
  yield* McClient.append({ key: "log", value: "\nEntry 2" })

  const item = yield* McClient.get("log")
  yield* Console.log(`Log:\n${valueText(item)}`)
})

runIfMain(import.meta.url, program)
