/**
 * Seed: Example (CasConsistency). Optimistic locking: when `compareAndSwap` fails with
 * `CASConflict` (another client changed the value), read it again and retry once.
 *
 * Nobody else writes "counter" here, so the first attempt succeeds.
 *
 * Output:
 *   Successfully updated with CAS
 */
import { Console, Effect } from "effect"
import { McClient } from "../src/index.js"
import { runIfMain } from "./runtime.js"

export const program: Effect.Effect<void, unknown, McClient> = Effect.gen(function* () {
  yield* McClient.set({ key: "counter", value: "100" }, { expiration: 3600 })

  const item = yield* McClient.get("counter", { cas: true })

  // In a real scenario, another client might modify the value here

  const newValue = "101"
  yield* McClient.compareAndSwap({ ...item, value: newValue }).pipe(
    Effect.zipRight(Console.log("Successfully updated with CAS")),
    Effect.catchTag("CASConflict", () =>
      Effect.gen(function* () {
        yield* Console.log("CAS conflict: value was modified by another client")
        // Retry: get the fresh value and its token, and try again
        const fresh = yield* McClient.get("counter", { cas: true })
        yield* McClient.compareAndSwap({ ...fresh, value: newValue })
        yield* Console.log("Successfully updated on retry")
      }),
    ),
  )
})

runIfMain(import.meta.url, program)
