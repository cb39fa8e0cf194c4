/**
 * Reply integrity against a hostile server (test/support/scriptedServer.ts): extra, missing,
 * wrong-code, wrong-opaque and garbage replies, in single gets, under load and inside getMulti
 * batches; connection refusals ("ERROR Too many open connections"); per-request CLIENT_ERROR.
 *
 * Every value is its key's name, so a reply handed to the wrong caller cannot hide: each test
 * counts the mixed-up values and asserts there are none.
 *
 * The old core matched replies to callers by position alone (FIFO, no opaque token, no check of
 * the reply code). One reply too many or too few shifted every later reply on the connection onto
 * the next caller, for as long as the connection lived: the reproduction (an extra `HD`
 * after the 4th reply) gave key e the value of nothing, key f the value of e, and so on.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schedule } from "effect"
import { type GetOptions, type Item, make, type McClientOptions, type McClientService } from "../../src/index.js"
import { failureOf, failureTag } from "../support/exits.js"
import {
  type Fault,
  normal,
  type ScriptedRequest,
  type ScriptedServer,
  type ScriptedServerOptions,
  scriptedServer,
} from "../support/scriptedServer.js"
import { captureHealth } from "../support/logs.js"

const decoder = new TextDecoder()
const LETTERS = "abcdefghijklmnopqrstuvwxyz".split("")
const noRetry = Schedule.stop

type GetExit = Exit.Exit<Item, { readonly _tag: string }>

/** A scripted server for the test's scope. */
const serverFor = (options: ScriptedServerOptions = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => scriptedServer(options)),
    (s) => Effect.promise(() => s.close()),
  )

/** The request's opaque token (` O<n>`), if it has one. */
const opaqueOf = (req: ScriptedRequest): string | undefined => req.tokens.slice(2).find((t) => t.startsWith("O"))?.slice(1)

/** Outcomes of gets, with mixed-up values counted (a success whose key or value is not the caller's key). */
class Tally {
  ok = 0
  mixedUp = 0
  readonly failures: Record<string, number> = {}
  readonly notes: Array<string> = []
  readonly byKey = new Map<string, string>()

  record(key: string, exit: GetExit): void {
    if (Exit.isSuccess(exit)) {
      const item = exit.value
      const value = decoder.decode(item.value)
      if (item.key !== key || value !== key) {
        this.mixedUp++
        this.note(`get ${key} returned ${item.key}=${JSON.stringify(value)}`)
        this.byKey.set(key, "MixedUp")
      } else {
        this.ok++
        this.byKey.set(key, "Success")
      }
      return
    }
    const tag = failureTag(exit)
    this.failures[tag] = (this.failures[tag] ?? 0) + 1
    this.byKey.set(key, tag)
    if (tag === "Defect" || tag === "Interrupt") this.note(`get ${key}: ${tag}`)
  }

  note(text: string): void {
    if (this.notes.length < 10) this.notes.push(text)
  }

  /** the keys whose outcome had this tag ("Success", "CorruptResponse", …) */
  keysWith(tag: string): Array<string> {
    return [...this.byKey].filter(([, t]) => t === tag).map(([k]) => k)
  }
}

/** Gets every key concurrently (one pipeline) and tallies the outcomes. */
const getAll = (mc: McClientService, keys: ReadonlyArray<string>, options?: GetOptions) =>
  Effect.gen(function* () {
    const tally = new Tally()
    const exits = yield* Effect.forEach(keys, (k) => Effect.exit(mc.get(k, options)), { concurrency: "unbounded" })
    exits.forEach((exit, i) => tally.record(keys[i]!, exit))
    return tally
  })

/**
 * A client on `server` with every key stored (value = key name, written through the client, so
 * binary keys are stored under their hashed form) and then `script` armed. `script` sees only the
 * requests sent after the keys were stored.
 */
const setUp = (
  server: ScriptedServer,
  options: Omit<McClientOptions, "servers">,
  keys: ReadonlyArray<string>,
) =>
  Effect.gen(function* () {
    const mc = yield* make({ servers: [server.address], ...options })
    yield* Effect.forEach(keys, (key) => mc.set({ key, value: key }), { concurrency: "unbounded", discard: true })
    return mc
  })

/**
 * Faults for the n-th mg (1-based) sent from now on. The first mg's reply is held back 30 ms so
 * that the whole pipeline is sent before any reply leaves (the faults then hit requests in flight).
 */
const onGets = (faults: Record<number, (req: ScriptedRequest) => Fault>) => {
  let seen = 0
  return (req: ScriptedRequest): Fault => {
    if (req.command !== "mg") return normal
    seen++
    const fault = faults[seen]
    if (fault !== undefined) return fault(req)
    return seen === 1 ? { kind: "delay", millis: 30 } : normal
  }
}

const mgOn = (server: ScriptedServer, connection: number, from = 0) =>
  server.requests.slice(from).filter((r) => r.command === "mg" && r.connection === connection).length

const keyModes = [
  { name: "text keys", options: { disableBinaryEncodedKeys: true } },
  { name: "binary keys", options: {} },
] as const

describe("reply integrity", () => {
  describe("an extra reply (the issue's reproduction: one HD after the 4th reply)", () => {
    for (const mode of keyModes) {
      it.scopedLive(`${mode.name}: detected, the connection replaced, the gets retried with their own values`, () =>
        Effect.gen(function* () {
          const server = yield* serverFor()
          const mc = yield* setUp(server, mode.options, LETTERS)
          expect(server.connections).toBe(1)
          const from = server.requests.length
          server.setScript(onGets({ 4: () => ({ kind: "extra", bytes: "HD\r\n" }) }))
          const tally = yield* getAll(mc, LETTERS)
          console.log(`Integrity (extra HD, ${mode.name}): ${tally.ok} ok, ${tally.mixedUp} mixed-up, ${server.connections} connections`)
          // Old core: e got the stray HD (as an empty hit or a miss), f got e's value, … z got y's.
          expect(tally.notes).toEqual([])
          expect(tally.mixedUp).toBe(0)
          expect(tally.ok).toBe(26)
          // The desynchronised connection was destroyed, and e..z were asked again on a new one.
          expect(server.connections).toBe(2)
          expect(mgOn(server, 0, from)).toBe(26)
          expect(mgOn(server, 1, from)).toBe(22)
        }),
      )

      it.scopedLive(`${mode.name}, retries off: the callers behind the extra reply fail with CorruptResponse`, () =>
        Effect.gen(function* () {
          const server = yield* serverFor()
          const mc = yield* setUp(server, { ...mode.options, retry: noRetry }, LETTERS)
          server.setScript(onGets({ 4: () => ({ kind: "extra", bytes: "HD\r\n" }) }))
          const tally = yield* getAll(mc, LETTERS)
          expect(tally.mixedUp).toBe(0)
          expect(tally.keysWith("Success")).toEqual(LETTERS.slice(0, 4))
          expect(tally.keysWith("CorruptResponse")).toEqual(LETTERS.slice(4))
          // The next get runs on a fresh connection and is right.
          const again = yield* mc.get("q")
          expect(decoder.decode(again.value)).toBe("q")
          expect(server.connections).toBe(2)
        }),
      )
    }
  })

  describe("a missing reply", () => {
    it.scopedLive("inside a pipeline: the next reply does not fit, no caller gets another's value", () =>
      Effect.gen(function* () {
        const server = yield* serverFor()
        const mc = yield* setUp(server, { disableBinaryEncodedKeys: true, retry: noRetry }, LETTERS)
        server.setScript(onGets({ 5: () => ({ kind: "drop" }) }))
        const tally = yield* getAll(mc, LETTERS)
        // Old core: e got f's value, f got g's, … and z waited for a reply that never came.
        expect(tally.mixedUp).toBe(0)
        expect(tally.keysWith("Success")).toEqual(LETTERS.slice(0, 4))
        expect(tally.keysWith("CorruptResponse")).toEqual(LETTERS.slice(4))
        const again = yield* mc.get("f")
        expect(decoder.decode(again.value)).toBe("f")
        expect(server.connections).toBe(2)
      }),
    )

    it.scopedLive("inside a pipeline, with retries: every caller gets its own value", () =>
      Effect.gen(function* () {
        const server = yield* serverFor()
        const mc = yield* setUp(server, { disableBinaryEncodedKeys: true }, LETTERS)
        server.setScript(onGets({ 5: () => ({ kind: "drop" }) }))
        const tally = yield* getAll(mc, LETTERS)
        expect(tally.notes).toEqual([])
        expect(tally.mixedUp).toBe(0)
        expect(tally.ok).toBe(26)
      }),
    )

    it.scopedLive("of the last request: that caller times out; the next caller on the connection still gets its own value", () =>
      Effect.gen(function* () {
        const server = yield* serverFor()
        const mc = yield* setUp(server, { disableBinaryEncodedKeys: true }, LETTERS)
        server.setScript(onGets({ 1: () => ({ kind: "drop" }) }))
        const lost = yield* Effect.exit(mc.get("z", { timeout: "100 millis" }))
        expect(failureOf(lost)).toMatchObject({ _tag: "Timeout", key: "z" })
        // Old core: the timed-out slot was gone or still first in line; either way the reply to the
        // next get went to the wrong place (the next caller waited for ever, or got z's reply).
        const tally = new Tally()
        for (const key of ["y", "x", "w"]) tally.record(key, yield* Effect.exit(mc.get(key)))
        expect(tally.notes).toEqual([])
        expect(tally.mixedUp).toBe(0)
        expect(tally.ok).toBe(3)
      }),
    )
  })

  describe("a reply with a code that cannot answer the request", () => {
    const hdFor = {
      "HD with the right opaque": (req: ScriptedRequest) => `HD O${opaqueOf(req)}\r\n`,
      "a bare HD": () => "HD\r\n",
      "NS with the right opaque": (req: ScriptedRequest) => `NS O${opaqueOf(req)}\r\n`,
    }
    for (const [name, bytes] of Object.entries(hdFor)) {
      it.scopedLive(`${name} in place of an mg … v reply: CorruptResponse, never a miss; the connection is dropped`, () =>
        Effect.gen(function* () {
          const server = yield* serverFor()
          const mc = yield* setUp(server, { disableBinaryEncodedKeys: true, retry: noRetry }, LETTERS)
          server.setScript(onGets({ 5: (req) => ({ kind: "replace", bytes: bytes(req) }) }))
          const tally = yield* getAll(mc, LETTERS)
          // Old core: HD was taken as e's answer (an empty hit or a miss) and the connection kept.
          expect(tally.mixedUp).toBe(0)
          expect(tally.failures["CacheMiss"]).toBeUndefined()
          expect(tally.byKey.get("e")).toBe("CorruptResponse")
          expect(tally.keysWith("Success")).toEqual(LETTERS.slice(0, 4))
          expect(tally.keysWith("CorruptResponse")).toEqual(LETTERS.slice(4))
          yield* mc.get("a")
          expect(server.connections).toBe(2)
        }),
      )
    }

    it.scopedLive("HD in place of an mg … v reply, with retries: every caller gets its own value", () =>
      Effect.gen(function* () {
        const server = yield* serverFor()
        const mc = yield* setUp(server, { disableBinaryEncodedKeys: true }, LETTERS)
        server.setScript(onGets({ 5: (req) => ({ kind: "replace", bytes: `HD O${opaqueOf(req)}\r\n` }) }))
        const tally = yield* getAll(mc, LETTERS)
        expect(tally.notes).toEqual([])
        expect(tally.mixedUp).toBe(0)
        expect(tally.ok).toBe(26)
        expect(server.connections).toBe(2)
      }),
    )
  })

  describe("a reply with the wrong opaque", () => {
    const forged = {
      "an unknown opaque (VA 1 O999)": () => "VA 1 O999\r\nx\r\n",
      // The reply the next request (f) will get, value included: position and code fit, only the
      // opaque tells that it is not e's.
      "the next request's reply": (req: ScriptedRequest) => `VA 1 O${Number(opaqueOf(req)) + 1}\r\nf\r\n`,
    }
    for (const [name, bytes] of Object.entries(forged)) {
      it.scopedLive(`${name}: desync, no mix-up`, () =>
        Effect.gen(function* () {
          const server = yield* serverFor()
          const mc = yield* setUp(server, { disableBinaryEncodedKeys: true, retry: noRetry }, LETTERS)
          server.setScript(onGets({ 5: (req) => ({ kind: "replace", bytes: bytes(req) }) }))
          const tally = yield* getAll(mc, LETTERS)
          // Old core: e took the forged reply by its position, and got "x" (or f's value).
          expect(tally.mixedUp).toBe(0)
          expect(tally.keysWith("Success")).toEqual(LETTERS.slice(0, 4))
          expect(tally.keysWith("CorruptResponse")).toEqual(LETTERS.slice(4))
          expect(server.connections).toBe(1)
          yield* mc.get("a")
          expect(server.connections).toBe(2)
        }),
      )
    }
  })

  it.scopedLive("under load: 256 fibers, a fault every ~2,000 gets, 0 mixed-up values", () =>
    Effect.gen(function* () {
      const KEYS = Array.from({ length: 200 }, (_, i) => `k${i}`)
      const FAULT_EVERY = 2000
      const kinds = ["extra HD", "drop", "wrong code", "garbage line"] as const
      const faults: Record<string, number> = {}
      let mg = 0
      const server = yield* serverFor({
        script: (req) => {
          if (req.command !== "mg") return normal
          mg++
          if (mg % FAULT_EVERY !== 0) return normal
          const kind = kinds[(mg / FAULT_EVERY) % kinds.length]!
          faults[kind] = (faults[kind] ?? 0) + 1
          switch (kind) {
            case "extra HD":
              return { kind: "extra", bytes: "HD\r\n" }
            case "drop":
              return { kind: "drop" }
            case "wrong code":
              return { kind: "replace", bytes: `HD O${opaqueOf(req)}\r\n` }
            case "garbage line":
              return { kind: "replace", bytes: "XYZZY what\r\n" }
          }
        },
      })
      for (const key of KEYS) server.store.set(key, { value: Buffer.from(key), flags: 0, cas: 1n, exp: 0 })
      const mc = yield* make({ servers: [server.address], disableBinaryEncodedKeys: true })
      const tally = new Tally()
      const until = Date.now() + 1500
      const worker = Effect.gen(function* () {
        while (Date.now() < until) {
          const key = KEYS[(Math.random() * KEYS.length) | 0]!
          tally.record(key, yield* Effect.exit(mc.get(key)))
        }
      })
      yield* Effect.all(Array.from({ length: 256 }, () => worker), { concurrency: "unbounded", discard: true })
      const gets = tally.ok + tally.mixedUp + Object.values(tally.failures).reduce((a, b) => a + b, 0)
      const faultCount = Object.values(faults).reduce((a, b) => a + b, 0)
      console.log(
        `Integrity: ${gets} gets, ${faultCount} faults, ${tally.mixedUp} mixed-up` +
          ` (faults ${JSON.stringify(faults)}; failures ${JSON.stringify(tally.failures)}; ${server.connections} connections)`,
      )
      expect(tally.notes).toEqual([])
      expect(tally.mixedUp).toBe(0)
      expect(faultCount).toBeGreaterThanOrEqual(4)
      // Every key exists: a miss would be a failure (or another key's miss) reported as a miss.
      expect(tally.failures["CacheMiss"]).toBeUndefined()
      for (const tag of Object.keys(tally.failures)) expect(["CorruptResponse", "Timeout", "ConnectionError"]).toContain(tag)
      // Idempotent gets are retried: nearly all succeed.
      expect(tally.ok).toBeGreaterThan(gets * 0.95)
    }),
  )

  describe("getMulti with a fault inside the batch", () => {
    /** Quiet mgs of a batch carry `q`; its closing mg does not. */
    const isQuiet = (req: ScriptedRequest) => req.command === "mg" && req.tokens.includes("q")

    /** Faults by the key of a quiet mg of the (first) batch; the key's opaque is at hand. */
    const inBatch = (faults: Record<string, (req: ScriptedRequest, firstOpaque: number) => Fault>) => {
      let first: number | undefined
      let done = false
      return (req: ScriptedRequest): Fault => {
        if (done || !isQuiet(req)) {
          if (req.command === "mg" && first !== undefined) done = true
          return normal
        }
        first ??= Number(opaqueOf(req))
        const fault = faults[req.key!]
        return fault === undefined ? normal : fault(req, first)
      }
    }

    const checkItems = (found: ReadonlyMap<string, Item>) => {
      let mixedUp = 0
      for (const [key, item] of found) if (item.key !== key || decoder.decode(item.value) !== key) mixedUp++
      return mixedUp
    }

    const cases: Record<string, Record<string, (req: ScriptedRequest, first: number) => Fault>> = {
      // After f's reply, c's reply again with another value: opaques must increase.
      "an extra VA with an earlier opaque": { f: (_, first) => ({ kind: "extra", bytes: `VA 1 O${first + 2} kc\r\nZ\r\n` }) },
      // c's reply names another key (text keys carry k).
      "a VA with the right opaque and another key": { c: (req) => ({ kind: "replace", bytes: `VA 1 O${opaqueOf(req)} kd\r\nd\r\n` }) },
      // d's reply replaced by a VA whose opaque lies beyond the batch.
      "a VA with an opaque beyond the batch": { d: (_, first) => ({ kind: "replace", bytes: `VA 1 O${first + 400} kd\r\nd\r\n` }) },
      "a garbage line": { g: () => ({ kind: "before", bytes: "XYZZY\r\n" }) },
      // A reply HD (no value) to a quiet mg … v.
      "an HD for a quiet get": { h: (req) => ({ kind: "replace", bytes: `HD O${opaqueOf(req)} kh\r\n` }) },
    }

    for (const [name, faults] of Object.entries(cases)) {
      it.scopedLive(`${name}: no wrong value; typed failure without retries, all values after a retry`, () =>
        Effect.gen(function* () {
          const server = yield* serverFor()
          const plain = yield* setUp(server, { disableBinaryEncodedKeys: true, retry: noRetry }, LETTERS)
          server.setScript(inBatch(faults))
          const once = yield* Effect.exit(plain.getMulti(LETTERS))
          // Old core: the batch read the forged reply as c's (or as the end), values shifted.
          if (Exit.isSuccess(once)) expect(checkItems(once.value)).toBe(0)
          expect(failureTag(once)).toBe("CorruptResponse")

          const retried = yield* make({ servers: [server.address], disableBinaryEncodedKeys: true })
          server.setScript(inBatch(faults))
          const found = yield* retried.getMulti(LETTERS)
          expect(checkItems(found)).toBe(0)
          expect([...found.keys()].sort()).toEqual(LETTERS)

          const partial = yield* make({ servers: [server.address], disableBinaryEncodedKeys: true, retry: noRetry })
          server.setScript(inBatch(faults))
          const { items, failed } = yield* partial.getMulti(LETTERS, { partial: true })
          expect(checkItems(items)).toBe(0)
          // Every key is either read right or failed, typed.
          expect(items.size + failed.size).toBe(26)
          for (const error of failed.values()) expect(error._tag).toBe("CorruptResponse")
        }),
      )
    }

    it.scopedLive("an extra EN with the closing request's opaque after the batch: the next caller is not answered by it", () =>
      Effect.gen(function* () {
        const server = yield* serverFor()
        const mc = yield* setUp(server, { disableBinaryEncodedKeys: true }, LETTERS)
        let first: number | undefined
        server.setScript((req) => {
          if (isQuiet(req)) first ??= Number(opaqueOf(req))
          // The closing mg of the batch: its reply, then a copy as EN (a miss).
          if (req.command === "mg" && !isQuiet(req) && first !== undefined && Number(opaqueOf(req)) === first + 26) {
            return { kind: "extra", bytes: `EN O${first + 26}\r\n` }
          }
          return normal
        })
        const [found, next] = yield* Effect.all([mc.getMulti(LETTERS), Effect.exit(mc.get("b"))], { concurrency: "unbounded" })
        expect(checkItems(found)).toBe(0)
        expect(found.size).toBe(26)
        // Old core (mn-terminated batches, FIFO): the stray EN answered the next get as a miss.
        const tally = new Tally()
        tally.record("b", next)
        expect(tally.byKey.get("b")).toBe("Success")
      }),
    )

    it.scopedLive("a forged early end (EN with the closing request's opaque mid-batch): the values returned are right", () =>
      Effect.gen(function* () {
        const server = yield* serverFor()
        const mc = yield* setUp(server, { disableBinaryEncodedKeys: true }, LETTERS)
        server.setScript(inBatch({ f: (_, first) => ({ kind: "extra", bytes: `EN O${first + 26}\r\n` }) }))
        const found = yield* Effect.exit(mc.getMulti(LETTERS))
        if (Exit.isSuccess(found)) {
          // The keys after the forged end cannot be told from misses (the end reply says "done");
          // what is returned must still be right, and the trailing replies must not reach anyone.
          console.log(`Integrity (forged batch end): ${found.value.size} of 26 keys returned, ${checkItems(found.value)} mixed-up`)
          expect(checkItems(found.value)).toBe(0)
        } else {
          expect(failureTag(found)).toBe("CorruptResponse")
        }
        const tally = new Tally()
        for (const key of ["x", "y", "z"]) tally.record(key, yield* Effect.exit(mc.get(key)))
        expect(tally.mixedUp).toBe(0)
        expect(tally.ok).toBe(3)
      }),
    )
  })

  describe("ERROR Too many open connections", () => {
    const REFUSAL = "ERROR Too many open connections\r\n"

    it.scopedLive("for an extra connection while the first works: the client keeps working, no server marked down", () =>
      Effect.gen(function* () {
        const KEYS = Array.from({ length: 600 }, (_, i) => `k${i}`)
        const server = yield* serverFor({
          onConnect: (_, n) => (n === 1 ? { kind: "reject", bytes: REFUSAL } : "accept"),
        })
        for (const key of KEYS) server.store.set(key, { value: Buffer.from(key), flags: 0, cas: 1n, exp: 0 })
        const health = captureHealth()
        const mc = yield* make({ servers: [server.address], disableBinaryEncodedKeys: true }).pipe(Effect.provide(health.layer))
        yield* mc.get("k0") // the first connection is up and working
        // 600 in flight: the pool grows at a load of 256, and the extra connection is refused.
        const tally = yield* getAll(mc, KEYS)
        console.log(`Integrity (one refused connection): ${tally.ok} ok, ${tally.mixedUp} mixed-up, ${server.connections} connections, health log ${JSON.stringify(health.lines)}`)
        expect(server.connections).toBeGreaterThanOrEqual(2)
        expect(tally.notes).toEqual([])
        expect(tally.mixedUp).toBe(0)
        expect(tally.ok).toBe(600)
        expect(health.lines).toEqual([])
        const after = yield* mc.get("k599")
        expect(decoder.decode(after.value)).toBe("k599")
      }),
    )

    it.scopedLive("for every connection: ConnectionError naming the refusal; once accepted again, operations succeed", () =>
      Effect.gen(function* () {
        let refusing = true
        const server = yield* serverFor({
          onConnect: () => (refusing ? { kind: "reject", bytes: REFUSAL } : "accept"),
        })
        server.store.set("k", { value: Buffer.from("k"), flags: 0, cas: 1n, exp: 0 })
        const mc = yield* make({ servers: [server.address], disableBinaryEncodedKeys: true })
        for (let i = 0; i < 3; i++) {
          const exit = yield* Effect.exit(mc.get("k"))
          const error = failureOf(exit)
          expect(error?._tag).toBe("ConnectionError")
          expect(error?.message).toContain("Too many open connections")
        }
        refusing = false
        const since = Date.now()
        let value: string | undefined
        while (value === undefined && Date.now() - since < 3000) {
          const exit = yield* Effect.exit(mc.get("k"))
          if (Exit.isSuccess(exit)) value = decoder.decode(exit.value.value)
          else {
            expect(failureTag(exit)).toBe("ConnectionError")
            yield* Effect.sleep("20 millis")
          }
        }
        console.log(`Integrity (all connections refused): back in ${Date.now() - since} ms`)
        expect(value).toBe("k")
        expect(Date.now() - since).toBeLessThan(2000)
      }),
    )
  })

  it.scopedLive("a per-request CLIENT_ERROR fails only that caller with ClientError; the connection stays", () =>
    Effect.gen(function* () {
      const server = yield* serverFor()
      const mc = yield* setUp(server, { disableBinaryEncodedKeys: true }, LETTERS)
      server.setScript(onGets({ 5: () => ({ kind: "replace", bytes: "CLIENT_ERROR bad command line format\r\n" }) }))
      const tally = yield* getAll(mc, LETTERS)
      expect(tally.mixedUp).toBe(0)
      expect(tally.byKey.get("e")).toBe("ClientError")
      expect(tally.ok).toBe(25)
      const again = yield* mc.get("e")
      expect(decoder.decode(again.value)).toBe("e")
      // Old core would have been right here too; the new one must not take an error reply without
      // an opaque for a desync.
      expect(server.connections).toBe(1)
    }),
  )
})
