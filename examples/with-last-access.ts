/**
 * Seed: Example (WithLastAccess). `get(key, { lastAccess: true })` also returns the seconds since
 * the item was last accessed (`item.lastAccess`).
 *
 * Output:
 *   Retrieved: data
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "tracked", value: "data" }, { expiration: 3600 })

  const item = yield* McClient.get("tracked", { lastAccess: true })

  yield* Console.log(`Retrieved: ${valueText(item)}`)
})

runIfMain(import.meta.url, program)
