/**
 * The exact bytes the client sends for each operation and option, pinned against a recording
 * server; and interop: what the client writes with plain keys is readable by memcached's own
 * text protocol.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { inject } from "vitest"
import { McClient, type McClientOptions } from "../../src/index.js"
import { makeKeyEncoder } from "../../src/client/Keys.js"
import { fakeServer } from "../support/fakeServer.js"
import { uniqueKey } from "../support/layers.js"
import { requestLines } from "../support/requestLines.js"
import { textRequest } from "../support/textProtocol.js"

/** A server that answers like memcached (misses, HD, a counter at 5) and records each request line. */
const recordingServer = async () => {
  const lines: Array<string> = []
  const parsers = new WeakMap<object, (chunk: Buffer) => void>()
  const server = await fakeServer((socket, chunk) => {
    let parse = parsers.get(socket)
    if (parse === undefined) parsers.set(socket, (parse = requestLines((line, tokens) => {
      if (line === "version") {
        socket.write("VERSION 1.6.18\r\n")
        return
      }
      // The opaque token the client adds to every meta request is echoed, and left out of the record.
      const opaque = tokens.at(-1)?.startsWith("O") === true ? ` ${tokens.pop()}` : ""
      lines.push(tokens.join(" "))
      const flags = tokens.slice(2)
      if (tokens[0] === "mg") {
        if (flags.includes("q")) return
        socket.write(flags.includes("v") ? `EN${opaque}\r\n` : `HD${opaque}\r\n`)
      } else if (tokens[0] === "ma") socket.write(flags.includes("v") ? `VA 1${opaque}\r\n5\r\n` : `HD${opaque}\r\n`)
      else if (tokens[0] === "mn") socket.write("MN\r\n")
      else socket.write(`HD${opaque}\r\n`)
    })))
    parse(chunk)
  })
  return { server, lines }
}

/** Runs each operation in turn (whatever its outcome) and returns the request lines sent. */
const wire = (options: Omit<McClientOptions, "servers">, operations: ReadonlyArray<Effect.Effect<unknown, unknown, McClient>>) =>
  Effect.gen(function* () {
    const { server, lines } = yield* Effect.promise(recordingServer)
    yield* Effect.forEach(operations, Effect.ignore).pipe(
      Effect.provide(McClient.layer({ ...options, servers: [server.address] })),
    )
    yield* Effect.promise(server.close)
    return lines
  })

const plain = { disableBinaryEncodedKeys: true }

describe("wire format", () => {
  it.live("get and its options", () =>
    Effect.gen(function* () {
      const lines = yield* wire(
        plain,
        [
          McClient.get("k"),
          McClient.get("k", { cas: true }),
          McClient.get("k", { cas: true, hit: true, lastAccess: true, ttl: true, earlyRecache: 30 }),
          McClient.touch("k", 60),
        ],
      )
      expect(lines).toEqual(["mg k f v", "mg k c f v", "mg k c f h l t v R30", "mg k T60"])
    }),
  )

  it.live("stores and their modes", () =>
    Effect.gen(function* () {
      const lines = yield* wire(
        plain,
        [
          McClient.set({ key: "k", value: "hello" }),
          McClient.set({ key: "k", value: "hello", flags: 3 }, { expiration: 60 }),
          McClient.add({ key: "k", value: "v" }),
          McClient.replace({ key: "k", value: "v" }, { expiration: 5 }),
          McClient.append({ key: "k", value: "v" }),
          McClient.prepend({ key: "k", value: "v" }),
          McClient.compareAndSwap({ key: "k", value: "v", cas: 123n }, { expiration: 9 }),
        ],
      )
      expect(lines).toEqual(["ms k 5", "ms k 5 F3 T60", "ms k 1 ME", "ms k 1 MR T5", "ms k 1 MA", "ms k 1 MP", "ms k 1 C123 T9"])
    }),
  )

  it.live("delete, invalidate, counters", () =>
    Effect.gen(function* () {
      const lines = yield* wire(
        plain,
        [
          McClient.del("k"),
          McClient.del("k", { invalidate: 30 }),
          McClient.inc("n", 5),
          McClient.inc("n", 1, 60, { initialValue: 10 }),
          McClient.dec("n", 2n),
        ],
      )
      expect(lines).toEqual(["md k", "md k I T30", "ma n v D5", "ma n v D1 J10 N60", "ma n v D2 MD"])
    }),
  )

  it.live("getMulti pipelines quiet gets with the key, closed by a plain get of the first key", () =>
    Effect.gen(function* () {
      const lines = yield* wire(plain, [McClient.getMulti(["a", "b", "c"], { cas: true })])
      expect(lines).toEqual(["mg a c f k q v", "mg b c f k q v", "mg c c f k q v", "mg a"])
    }),
  )

  it.live("binary keys: the hashed key in base64 with the b flag", () =>
    Effect.gen(function* () {
      const lines = yield* wire({}, [McClient.get("user:123"), McClient.set({ key: "user:123", value: "x" })])
      const encoded = makeKeyEncoder({ binary: true, hash: "sha256-128" }).encode("user:123") as string
      expect(encoded).toMatch(/^[A-Za-z0-9+/]{22}==$/)
      expect(lines).toEqual([`mg ${encoded} b f v`, `ms ${encoded} 1 b`])
      // getMulti matches binary keys by opaque token alone: no `k` (memcached may return raw key bytes).
      const multi = yield* wire({}, [McClient.getMulti(["user:123"])])
      expect(multi).toEqual([`mg ${encoded} b f q v`, `mg ${encoded} b`])
      const xx = yield* wire({ keyHash: "xxhash64" }, [McClient.get("user:123")])
      expect(xx[0]).toMatch(/^mg [A-Za-z0-9+/]{11}= b f v$/)
    }),
  )

  it.live("namespaces and min-uses go through counter keys", () =>
    Effect.gen(function* () {
      const lines = yield* wire(
        plain,
        [
          McClient.set({ key: "k", value: "v" }, { namespace: "tenant", minUses: 2, expiration: 60 }),
          McClient.purgeNamespace("tenant"),
        ],
      )
      expect(lines[0]).toBe("ma mc:muc:k v D1 J1 N60")
      expect(lines[1]).toMatch(/^ma mc:ns:tenant v D0 J\d+ N0$/)
      // The namespace header adds 2 + 6 + 8 bytes; the namespaced bit is 1 << 17.
      expect(lines[2]).toBe("ms k 17 F131072 T60")
      expect(lines[3]).toMatch(/^ma mc:ns:tenant v D1 J\d+ N0$/)
    }),
  )
})

describe("interop", () => {
  it.live("a value written with plain keys and no options is readable with memcached's text `get`", () =>
    Effect.gen(function* () {
      const key = uniqueKey("interop")
      yield* McClient.set({ key, value: "hello\r\nworld", flags: 7 }).pipe(
        Effect.provide(McClient.layer({ servers: [inject("memcached")], ...plain })),
      )
      const reply = yield* Effect.promise(() => textRequest(inject("memcached"), `get ${key}\r\n`))
      expect(reply).toBe(`VALUE ${key} 7 12\r\nhello\r\nworld\r\nEND\r\n`)
    }),
  )
})
