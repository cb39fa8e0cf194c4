/** A server given as a path is reached over a unix socket. */
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { startMemcached } from "../../scripts/memcached.js"
import { McClient } from "../../src/index.js"
import { text } from "../support/layers.js"

describe("unix sockets", () => {
  it.live("get and set through memcached's unix socket", () =>
    Effect.gen(function* () {
      const socketPath = path.join(os.tmpdir(), `effect-memcache-${process.pid}-${Date.now()}.sock`)
      const server = yield* Effect.acquireRelease(Effect.promise(() => startMemcached({ socketPath })), (m) =>
        Effect.promise(() => m.stop()),
      )
      expect(server.address).toBe(socketPath)
      const value = yield* Effect.gen(function* () {
        yield* McClient.set({ key: "over-unix", value: "yes" })
        return text((yield* McClient.get("over-unix")).value)
      }).pipe(Effect.provide(McClient.layer({ servers: [socketPath] })))
      expect(value).toBe("yes")
    }).pipe(Effect.scoped),
  )
})
