/**
 * The in-memory transport: the meta engine behind the same `Transport` seam as TCP, with time
 * from Effect's `Clock` (so `TestClock.adjust` expires items).
 */
import { Effect } from "effect"
import { unexpected } from "../client/Replies.js"
import { Hit, type ManyOutcome, type Transport } from "../client/Transport.js"
import { CorruptResponse } from "../Errors.js"
import { MemoryEngine } from "../memory/MemoryEngine.js"

const MEMORY_SERVER = "memory"

// The engine implements current memcached's dialect (1.6.38): append/prepend with `N` autovivify,
// so the client sends `MA N<ttl>` to it (src/memory/MemoryEngine.ts lists the differences from 1.6.18).
const MEMORY_VERSION = { text: "1.6.38 (in-memory engine)", major: 1, minor: 6, patch: 38 }

export interface MemoryOptions {
  /** largest value accepted, like memcached's -I (default 1 MiB) */
  readonly maxItemSize?: number | undefined
}

export const makeMemoryTransport = (options: MemoryOptions = {}): Transport => {
  const engine = new MemoryEngine(options.maxItemSize === undefined ? {} : { maxItemSize: options.maxItemSize })
  return {
    request: (_routingKey, request, decode, opts) =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const reply = engine.execute(request, clock.unsafeCurrentTimeMillis())
          return reply === undefined
            ? Effect.fail(new CorruptResponse({ server: MEMORY_SERVER, key: opts.key, reason: "no reply to a non-quiet request" }))
            : decode(reply, MEMORY_SERVER, opts.key)
        }),
      ),
    getMany: (routingKeys, wires, flags) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const outcomes: Array<ManyOutcome> = new Array(wires.length)
          for (let i = 0; i < wires.length; i++) {
            const reply = engine.execute({ command: "mg", key: wires[i]!, flags }, now)
            outcomes[i] =
              reply === undefined || reply.code === "EN"
                ? undefined
                : reply.code === "VA"
                  ? new Hit(reply, MEMORY_SERVER)
                  : unexpected(reply, MEMORY_SERVER, routingKeys[i]!)
          }
          return outcomes
        }),
      ),
    version: () => Effect.succeed(MEMORY_VERSION),
  }
}
