/**
 * Seed: Example (Client.Append). Append bytes to an existing value.
 *
 * Output:
 *   Message: Hello World
 */
import { Console, Effect } from "effect"
import { McClient, valueText } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "message", value: "Hello" }, { expiration: 3600 })

  yield* McClient.append({ key: "message", value: " World" })

  const item = yield* McClient.get("message")
  yield* Console.log(`Message: ${valueText(item)}`)
})

runIfMain(import.meta.url, program)
