/**
 * Seed: Example (WithEarlyRecache). With `earlyRecache: s`, a get whose item has less than `s`
 * seconds left wins the recache token (`item.won`); here the item has an hour left, so the value
 * is simply returned.
 *
 * Output:
 *   Value: data
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "cacheable", value: "data" }, { expiration: 3600 })

  const item = yield* McClient.get("cacheable", { earlyRecache: 300 })

  yield* Console.log(`Value: ${valueText(item)}`)
})

runIfMain(import.meta.url, program)
