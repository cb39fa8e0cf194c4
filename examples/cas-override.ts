/**
 * Seed: Example (CasOverride). A normal update goes through `compareAndSwap`; a forced one
 * (regardless of the current CAS) is a plain `set`.
 *
 * Output:
 *   Config: forced_config
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "config", value: "old_config" }, { expiration: 3600 })

  // Normal update, with a CAS check
  const item = yield* McClient.get("config", { cas: true })
  yield* McClient.compareAndSwap({ ...item, value: "new_config" })

  // Forced update (override): set bypasses the CAS check
  yield* McClient.set({ key: "config", value: "forced_config" }, { expiration: 3600 })

  const current = yield* McClient.get("config")
  yield* Console.log(`Config: ${valueText(current)}`)
})

runIfMain(import.meta.url, program)
