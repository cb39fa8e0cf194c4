/**
 * The Promise client (issue 13's facade for code outside Effect): the same operations and typed
 * errors as the Effect API, on real memcached and the memory layer; plain requests skip the
 * runtime, everything else (namespaces, retries, tracing) still runs on it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Layer, Option, Schema, Tracer } from "effect"
import { captureRegister } from "../src/client/Transport.js"
import {
  CacheMiss,
  ConnectionError,
  makePromiseClient,
  McClient,
  type McPromiseClient,
  NotStored,
  valueText,
} from "../src/index.js"
import * as fc from "fast-check"
import { hostile } from "./support/hostile.js"
import { targets, uniqueKey } from "./support/layers.js"
import { type ScriptedRequest, scriptedServer } from "./support/scriptedServer.js"

const rejectionOf = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${String(value)}`)
    },
    (error: unknown) => error,
  )

const withClient = async <A>(client: Promise<McPromiseClient>, f: (mc: McPromiseClient) => Promise<A>): Promise<A> => {
  const mc = await client
  try {
    return await f(mc)
  } finally {
    await mc.close()
  }
}

describe.each(targets)("Promise client on $name", ({ layer, name }) => {
  it("500 concurrent sets and gets: each key reads its own value", () =>
    // A loaded CI machine can take more than the default 200 ms for 500 requests over TLS.
    withClient(makePromiseClient(layer({ timeout: "5 seconds" })), async (mc) => {
      const keys = Array.from({ length: 500 }, (_, i) => uniqueKey(`p${i}`))
      await Promise.all(keys.map((key) => mc.set({ key, value: `value of ${key}` })))
      const items = await Promise.all(keys.map((key) => mc.get(key)))
      expect(items.map((item) => valueText(item))).toEqual(keys.map((key) => `value of ${key}`))
      expect(items.map((item) => item.key)).toEqual(keys)
    }))

  it("rejects with the typed errors: a miss is CacheMiss, add of a present key NotStored", () =>
    withClient(makePromiseClient(layer()), async (mc) => {
      const key = uniqueKey("typed")
      const miss = await rejectionOf(mc.get(key))
      expect(miss).toBeInstanceOf(CacheMiss)
      expect((miss as CacheMiss).key).toBe(key)
      await mc.set({ key, value: "v" })
      expect(await rejectionOf(mc.add({ key, value: "w" }))).toBeInstanceOf(NotStored)
      await mc.del(key)
      expect(await rejectionOf(mc.del(key))).toBeInstanceOf(CacheMiss)
    }))

  it("bad input rejects with a typed error and harms no other call", () =>
    withClient(makePromiseClient(layer()), async (mc) => {
      const key = uniqueKey("bad")
      await mc.set({ key, value: key })
      const [bad, good] = await Promise.allSettled([mc.get(42 as unknown as string), mc.get(key)])
      expect(bad.status).toBe("rejected")
      expect((bad as PromiseRejectedResult).reason).toMatchObject({ _tag: "MalformedKey" })
      expect(good.status === "fulfilled" && valueText(good.value)).toBe(key)
    }))

  it("composite operations run on the runtime: namespaces, counters, getMulti, status", () =>
    withClient(makePromiseClient(layer()), async (mc) => {
      const ns = uniqueKey("ns")
      const key = uniqueKey("nk")
      await mc.set({ key, value: "in ns" }, { namespace: ns })
      expect(valueText(await mc.get(key))).toBe("in ns")
      await mc.purgeNamespace(ns)
      expect(await rejectionOf(mc.get(key))).toBeInstanceOf(CacheMiss)

      const counter = uniqueKey("n")
      expect(await mc.inc(counter, 5, 60, { initialValue: 10 })).toBe(10n)
      expect(await mc.inc(counter, 5)).toBe(15n)

      const a = uniqueKey("a")
      const b = uniqueKey("b")
      await Promise.all([mc.set({ key: a, value: a }), mc.set({ key: b, value: b })])
      const found = await mc.getMulti([a, b, uniqueKey("absent")])
      expect([...found].map(([k, item]) => [k, valueText(item)])).toEqual([
        [a, a],
        [b, b],
      ])
      const status = await mc.status()
      expect(status.length).toBeGreaterThan(0)
      expect(name === "memory" || status.every((s) => s.state === "up")).toBe(true)
    }))

  it("getOrSet: 200 concurrent callers of a cold key run one lookup; a rejected lookup rejects them all", () =>
    withClient(makePromiseClient(layer({ timeout: "5 seconds" })), async (mc) => {
      const key = uniqueKey("gos")
      let lookups = 0
      const lookup = async () => {
        lookups++
        await new Promise((resolve) => setTimeout(resolve, 20))
        return { id: key, n: 7 }
      }
      const options = { schema: Schema.Struct({ id: Schema.String, n: Schema.Number }), expiration: 60 }
      const values = await Promise.all(Array.from({ length: 200 }, () => mc.getOrSet(key, lookup, options)))
      expect(lookups).toBe(1)
      expect(values.every((v) => v.id === key && v.n === 7)).toBe(true)

      const failing = uniqueKey("gos-fail")
      const boom = new Error(`lookup of ${failing} failed`)
      const outcomes = await Promise.allSettled(
        Array.from({ length: 50 }, () => mc.getOrSet(failing, () => Promise.reject(boom), options)),
      )
      expect(outcomes.every((o) => o.status === "rejected" && o.reason === boom)).toBe(true)
    }))
})

describe("Promise client: the fast path and its limits", () => {
  const tcp = targets.find((t) => t.name === "memcached")!

  it("a plain TCP request carries its register step; memory, spans and composite operations do not", () =>
    withClient(makePromiseClient(tcp.layer()), async (mc) => {
      expect(captureRegister(() => mc.service.get("k")).register).toBeTypeOf("function")
      // the second time from the reused effect of a plain get
      expect(captureRegister(() => mc.service.get("k")).register).toBeTypeOf("function")
      expect(captureRegister(() => mc.service.set({ key: "k", value: "v" })).register).toBeTypeOf("function")
      expect(captureRegister(() => mc.service.getMulti(["a", "b"])).register).toBeUndefined()
      await withClient(makePromiseClient(McClient.layerMemory()), async (memory) => {
        expect(captureRegister(() => memory.service.get("k")).register).toBeUndefined()
      })
    }))

  it("with tracing on, calls go through the runtime and each gets its span", async () => {
    const spans: Array<string> = []
    // A span that records nothing: only the names matter here.
    const noopSpan = (name: string, parent: Option.Option<Tracer.AnySpan>, startTime: bigint, kind: Tracer.SpanKind) =>
      ({
        _tag: "Span",
        name,
        spanId: `s${spans.length}`,
        traceId: "t",
        parent,
        context: undefined as never,
        status: { _tag: "Started", startTime },
        attributes: new Map(),
        links: [],
        sampled: true,
        kind,
        end: () => {},
        attribute: () => {},
        event: () => {},
        addLinks: () => {},
      }) satisfies Tracer.Span
    const recording = Tracer.make({
      span: (name, parent, _context, _links, startTime, kind) => {
        spans.push(name)
        return noopSpan(name, parent, startTime, kind)
      },
      context: (f) => f(),
    })
    const layer = tcp.layer({ tracing: true }).pipe(Layer.provide(Layer.setTracer(recording)))
    await withClient(makePromiseClient(layer), async (mc) => {
      const key = uniqueKey("traced")
      expect(captureRegister(() => mc.service.get(key)).register).toBeUndefined()
      await mc.set({ key, value: "v" })
      expect(valueText(await mc.get(key))).toBe("v")
    })
    expect(spans.filter((s) => s.startsWith("memcached "))).toEqual(["memcached set", "memcached get"])
  })

  it("a connection lost under a get is retried on the runtime, and the get succeeds", async () => {
    const server = await scriptedServer({
      // The first get's connection dies before its reply; the retry on a new connection is answered.
      script: (request: ScriptedRequest) =>
        request.command === "mg" && request.connection === 0 ? { kind: "close" } : { kind: "normal" },
    })
    try {
      await withClient(makePromiseClient(McClient.layer({ servers: [server.address] })), async (mc) => {
        await mc.set({ key: "retried", value: "after a retry" })
        expect(valueText(await mc.get("retried"))).toBe("after a retry")
        expect(server.connections).toBeGreaterThanOrEqual(2)
      })
    } finally {
      await server.close()
    }
  })

  it("a failure is never a miss: a dead server rejects with ConnectionError", () =>
    withClient(makePromiseClient(McClient.layer({ servers: ["127.0.0.1:1"], retry: undefined })), async (mc) => {
      const error = await rejectionOf(mc.get("k"))
      expect(error).toBeInstanceOf(ConnectionError)
      expect(error).not.toBeInstanceOf(CacheMiss)
    }))

  it("after close, calls reject with ConnectionError and no connection is left", async () => {
    const server = await scriptedServer()
    try {
      const mc = await makePromiseClient(McClient.layer({ servers: [server.address] }))
      await mc.set({ key: "k", value: "v" })
      expect(server.openConnections()).toBe(1)
      await mc.close()
      expect(await rejectionOf(mc.get("k"))).toBeInstanceOf(ConnectionError)
      expect(await rejectionOf(mc.getMulti(["k"]))).toBeInstanceOf(ConnectionError)
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(server.openConnections()).toBe(0)
    } finally {
      await server.close()
    }
  })

  it("a layer that cannot be built rejects with its typed error", async () => {
    const error = await rejectionOf(makePromiseClient(McClient.layer({ servers: [] })))
    expect(error).toMatchObject({ _tag: "NoServers" })
  })
})

describe("Promise client: any JavaScript value", () => {
  const OPERATIONS = [
    "get", "getMulti", "set", "add", "replace", "append", "prepend", "compareAndSwap", "del", "inc", "dec",
    "touch", "purgeNamespace", "stats", "getOrSet",
  ] as const
  const SETTLED = 2000

  it.each(targets.filter((t) => t.name !== "memcached-tls"))(
    "on $name: every operation returns a Promise that settles with a value or a typed error, and the client still works",
    ({ layer }) =>
      withClient(makePromiseClient(layer()), async (mc) => {
        await fc.assert(
          fc.asyncProperty(fc.constantFrom(...OPERATIONS), fc.array(hostile, { maxLength: 4 }), async (op, args) => {
            let promise: unknown
            try {
              promise = (mc[op] as (...a: ReadonlyArray<unknown>) => unknown)(...args)
            } catch (error) {
              throw new Error(`${op} threw synchronously: ${String(error)}`)
            }
            expect(promise).toBeInstanceOf(Promise)
            let timer: NodeJS.Timeout | undefined
            const outcome = await Promise.race([
              (promise as Promise<unknown>).then(
                () => ({ ok: true as const }),
                (error: unknown) => ({ ok: false as const, error }),
              ),
              new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), SETTLED))),
            ])
            clearTimeout(timer)
            expect(outcome, `${op} did not settle within ${SETTLED} ms`).not.toBe("hung")
            if (outcome !== "hung" && !outcome.ok) {
              expect(outcome.error, `${op} rejected with an untyped value`).toBeInstanceOf(Error)
              expect(typeof (outcome.error as { _tag?: unknown })._tag).toBe("string")
            }
          }),
          { numRuns: 400 },
        )
        const key = uniqueKey("after-hostile")
        await mc.set({ key, value: `value of ${key}` })
        expect(valueText(await mc.get(key))).toBe(`value of ${key}`)
      }),
    60_000,
  )
})
