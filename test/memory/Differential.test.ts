/**
 * Differential tests: the in-memory engine against a real memcached (issue 4): whichever the tests
 * run (MEMCACHED_BIN, or `memcached` on PATH). CI runs them against Debian 12's 1.6.18 and a
 * current build (scripts/memcached-source.sh, 1.6.38). The engine follows current memcached; the
 * documented differences of older servers are accounted for here, explicitly, by the server's
 * version or a probe (see `Dialect`):
 * - before 1.6.20, `ms` in append/prepend mode ignores `N` (no autovivify, NS on a missing key): the
 *   raw requests then send no `N` with `MA`/`MP`, and the autovivify scenario is skipped. (The
 *   client only sends `MA N` to servers ≥ 1.6.20, so part 1 needs nothing.)
 * - 1.6.18 refuses incr/decr of a number of 2^63 or more when a '-' follows it anywhere (see
 *   `leftoverMinus`): tolerated only where a probe shows the server does that.
 *
 * 1. Through the public client: random sequences of operations run through `McClient.layer`
 *    (memcached) and `McClient.layerMemory()` with the same client options, on a small key space so
 *    that operations collide. Results must agree: success values (bytes, flags, hit, stale, won,
 *    winSent, cas presence, ttl within ±1 s, lastAccess within ±1) and failure tags and reasons.
 *    CAS numbers differ between the engines, so they are compared by identity: every CAS one engine
 *    returns is paired with the other's, a pairing must never contradict an earlier one, and
 *    compareAndSwap sends each engine its own member of a pair read earlier.
 * 2. Raw: MetaRequests, flags the client never sends included, executed by `MemoryEngine.execute`
 *    and, encoded with `encode()`, by memcached over a socket (each followed by `mn`, so quiet
 *    requests are delimited), replies parsed with `ReplyParser`.
 *
 * Time is real on both sides (`it.live`): memcached's clock is wall time, ticked once a second and
 * not aligned with the wall-clock second, so TTLs are compared within ±1 s (±2 for absolute
 * expirations, whose conversion goes through the server's start time), and expirations are either
 * long or already in the past, never a few seconds.
 *
 * Not compared exactly, because memcached's LRU maintainer thread decides them in the background:
 * - `lastAccess` (`l`): memcached refreshes an item's access time on the fetch that makes it ACTIVE
 *   (the second), then not again until the maintainer clears ACTIVE; an item in the COLD LRU is
 *   bumped asynchronously, its time set when the maintainer gets to it. The engine refreshes on
 *   every fetch after the first. Compared within ±1 s plus the seconds the sequence slept.
 * - incr/decr: the second fetch of an item in the COLD LRU queues an asynchronous bump that holds a
 *   reference to the item until the maintainer runs (up to a second later). An incr/decr meanwhile
 *   finds the item shared and writes the result into a new item instead of in place
 *   (do_add_delta): no space padding, none of the old item's marks (fetched, token sent, stale,
 *   binary key), and a `T` on the request goes to the old, unlinked item. The engine always works
 *   in place, like memcached when no bump is pending. Around each incr/decr the test asks memcached
 *   with `me` (meta debug, which changes nothing) whether the item carries the fetched mark: fetched
 *   before and not after means a new item. The key is then "ambiguous" until stored or deleted
 *   again: values are compared without trailing spaces, and hit/won/winSent/stale (raw: also size
 *   and the returned key) are not compared; append/prepend are not generated for it, so the padding
 *   never becomes data. A raw `ma` with `T` that made a new item has the key deleted on both sides.
 * - incr/decr of a value of 2^63 or more on 1.6.18: see `leftoverMinus` (memcached reads past the
 *   value).
 *
 * Every tolerance is counted and printed with the run's summary.
 *
 * Seeds: MEMCACHE_DIFF_SEED=<n> replays a run's operations (memcached's background thread may still
 * decide the tolerated cases differently); a failure prints the seed and the operations, and
 * MEMCACHE_DIFF_DUMP=<file> appends every failing sequence to a file.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import { inject } from "vitest"
import { makeKeyEncoder } from "../../src/client/Keys.js"
import type { GetOptions, Item, McClientOptions, McClientService } from "../../src/index.js"
import { McClient } from "../../src/index.js"
import { MemoryEngine } from "../../src/memory/MemoryEngine.js"
import type { ArithmeticFlags, DeleteFlags, GetFlags, MetaRequest, SetFlags, SetMode } from "../../src/protocol/Request.js"
import { encode } from "../../src/protocol/Request.js"
import { type Reply, ReplyParser } from "../../src/protocol/Reply.js"
import { supportsAppendVivify } from "../../src/connection/Version.js"
import { refusesMinusAfterNumber, serverVersion } from "../support/server.js"

// ---------------------------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------------------------

const BASE_SEED: number =
  process.env.MEMCACHE_DIFF_SEED !== undefined ? Number(process.env.MEMCACHE_DIFF_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0

/** MEMCACHE_DIFF_SCALE=<n> runs n times as many random sequences (for a longer search). */
const SCALE = Math.max(1, Number(process.env.MEMCACHE_DIFF_SCALE ?? 1) || 1)
const TIMEOUT = 60_000 * SCALE

/** mulberry32 */
class Rng {
  private state: number
  constructor(seed: number) {
    this.state = seed >>> 0
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(xs: ReadonlyArray<T>): T {
    return xs[this.int(xs.length)]!
  }
  weighted<T>(entries: ReadonlyArray<readonly [number, T]>): T {
    let total = 0
    for (const [w] of entries) total += w
    let r = this.next() * total
    for (const [w, v] of entries) {
      r -= w
      if (r < 0) return v
    }
    return entries[entries.length - 1]![1]
  }
}

// ---------------------------------------------------------------------------------------------
// Shared values
// ---------------------------------------------------------------------------------------------

const REALTIME_MAXDELTA = 60 * 60 * 24 * 30
const nowSeconds = () => Math.floor(Date.now() / 1000)
const bytes = (s: string): Uint8Array => Buffer.from(s, "latin1")
const show = (v: Uint8Array | undefined): string | undefined => {
  if (v === undefined) return undefined
  const s = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("latin1")
  return s.length > 40 ? `${s.slice(0, 20)}…(${s.length} bytes)` : s
}
const json = (v: unknown): string =>
  JSON.stringify(v, function (this: Record<string, unknown>, k, x) {
    const original = this[k]
    return typeof x === "bigint" ? `${x}n` : original instanceof Uint8Array ? show(original) : x
  })

/** Values that exercise incr/decr parsing, CRLF in data, and the empty value. */
const VALUES: ReadonlyArray<string> = [
  "", "0", "1", "9", "10", "99", "42", "007", " 5", "5 ", "-1", "-0", "+3", "abc", "12abc", "12 abc", "1.5",
  "18446744073709551615", "18446744073709551614", "18446744073709551616", "9223372036854775808",
  "00000000000000000000001", "hello world", "line\r\nbreak", "\u0000\u00ff\r\n",
]
const randomValue = (rng: Rng): Uint8Array => {
  if (rng.chance(0.7)) return bytes(rng.pick(VALUES))
  const n = rng.int(24)
  let s = ""
  for (let i = 0; i < n; i++) s += String.fromCharCode(33 + rng.int(90))
  return bytes(s)
}

/**
 * Expirations: none, long relative ones, 30 days exactly (still relative), absolute times in the
 * future and in the past, -1 and values that wrap to negative in memcached's int32 (expired at once).
 */
const randomExpiration = (rng: Rng): number | undefined =>
  rng.weighted<number | undefined>([
    [30, undefined],
    [8, 0],
    [12, 3600],
    [6, 60],
    [4, 86400],
    [8, -1],
    [2, REALTIME_MAXDELTA],
    [2, REALTIME_MAXDELTA + 1],
    [3, nowSeconds() + 7200],
    [2, nowSeconds() - 5],
    [1, 2147483647],
    [1, 2147483648],
    [1, 4294967295],
  ])
const isAbsolute = (exp: number | undefined) => exp !== undefined && exp > REALTIME_MAXDELTA

// ---------------------------------------------------------------------------------------------
// CAS identity
// ---------------------------------------------------------------------------------------------

/** Pairs memcached's CAS values with the engine's; a pairing must never contradict an earlier one. */
class CasPairs {
  private readonly realToMem = new Map<bigint, bigint>()
  private readonly memToReal = new Map<bigint, bigint>()
  pair(real: bigint, mem: bigint): string | undefined {
    const m = this.realToMem.get(real)
    const r = this.memToReal.get(mem)
    if (m !== undefined && m !== mem) return `memcached CAS ${real} was paired with memory CAS ${m}, now with ${mem}`
    if (r !== undefined && r !== real) return `memory CAS ${mem} was paired with memcached CAS ${r}, now with ${real}`
    this.realToMem.set(real, mem)
    this.memToReal.set(mem, real)
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------
// A raw connection to memcached: each request is followed by `mn`, so its replies (none for a quiet
// request that had nothing to say) are those before MN. Requests may overlap: answers come in order.
// ---------------------------------------------------------------------------------------------

const MN = Buffer.from("mn\r\n")

class RawConnection {
  private readonly waiting: Array<{ readonly resolve: (replies: ReadonlyArray<Reply>) => void; readonly reject: (e: Error) => void }> = []
  private replies: Array<Reply> = []
  private readonly parser = new ReplyParser((reply) => {
    if (reply.code !== "MN") {
      this.replies.push(reply)
      return
    }
    const done = this.replies
    this.replies = []
    this.waiting.shift()?.resolve(done)
  })
  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk) => {
      const error = this.parser.push(chunk)
      if (error !== undefined) this.fail(new Error(`unparseable reply: ${error.reason}`))
    })
    socket.on("error", (e) => this.fail(e))
    socket.on("close", () => this.fail(new Error("connection closed")))
  }
  private fail(e: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(e)
  }
  static open(address: string): Promise<RawConnection> {
    const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))]
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ host, port })
      socket.setNoDelay(true)
      socket.once("connect", () => {
        socket.off("error", reject)
        resolve(new RawConnection(socket))
      })
      socket.once("error", reject)
    })
  }
  send(request: MetaRequest): Promise<ReadonlyArray<Reply>> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject })
      this.socket.write(Buffer.concat([encode(request), MN]))
    })
  }
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.socket.once("close", () => resolve())
      this.socket.end()
    })
  }
}

/** What the server under test does differently from current memcached (see the header). */
interface Dialect {
  readonly version: string
  /** `ms … MA/MP N<ttl>` creates a missing key (≥ 1.6.20) */
  readonly appendVivify: boolean
  /** incr/decr refuses a number ≥ 2^63 with a '-' anywhere after it (1.6.18) */
  readonly minusAfterNumber: boolean
}

const dialect: Effect.Effect<Dialect> = Effect.promise(async () => {
  const version = await serverVersion(inject("memcached"))
  return {
    version: version.text,
    appendVivify: supportsAppendVivify(version),
    minusAfterNumber: await refusesMinusAfterNumber(inject("memcached")),
  }
})

const rawConnection = Effect.acquireRelease(
  Effect.promise(() => RawConnection.open(inject("memcached"))),
  (conn) => Effect.promise(() => conn.close()),
)

/**
 * memcached's `me` (meta debug): whether an item carries the fetched mark, read without touching
 * the item (DONT_UPDATE; an `mg` would hand out the token of a stale item). The reply line holds
 * the key raw when the item lost its binary mark, so it is read up to its fixed ending rather
 * than parsed.
 */
class MetaDebug {
  private buffer = ""
  private chain: Promise<unknown> = Promise.resolve()
  private waiter: ((line: string) => void) | undefined
  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk) => {
      this.buffer += chunk.toString("latin1")
      const end = /(?:^EN|fetch=(?:yes|no) cls=\d+ size=\d+)\r\n$/.exec(this.buffer)
      if (end !== null && this.waiter !== undefined) {
        const line = this.buffer
        this.buffer = ""
        const w = this.waiter
        this.waiter = undefined
        w(line)
      }
    })
  }
  static open = (address: string): Promise<MetaDebug> =>
    new Promise((resolve, reject) => {
      const socket = net.createConnection({ host: address.slice(0, address.lastIndexOf(":")), port: Number(address.slice(address.lastIndexOf(":") + 1)) })
      socket.once("connect", () => resolve(new MetaDebug(socket)))
      socket.once("error", reject)
    })
  /** true: the item exists and was fetched; false: missing or not fetched */
  fetched(wireKey: string, binary: boolean): Promise<boolean> {
    const next = this.chain.then(
      () =>
        new Promise<boolean>((resolve) => {
          this.waiter = (line) => resolve(line.endsWith("\r\n") && / fetch=yes cls=/.test(line))
          // `me <key> b` alone is ignored by memcached ≥ 1.6.40 (the key is then taken as text);
          // with a token after the `b` every version decodes the key.
          this.socket.write(`me ${wireKey}${binary ? " b x" : ""}\r\n`)
        }),
    )
    this.chain = next
    return next
  }
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.socket.once("close", () => resolve())
      this.socket.end()
    })
  }
}

const metaDebug = Effect.acquireRelease(
  Effect.promise(() => MetaDebug.open(inject("memcached"))),
  (conn) => Effect.promise(() => conn.close()),
)

// ---------------------------------------------------------------------------------------------
// Part 1: through the client
// ---------------------------------------------------------------------------------------------

type CasChoice =
  | { readonly kind: "observed"; readonly index: number }
  | { readonly kind: "bogus" }
  | { readonly kind: "zero" }
  | { readonly kind: "missing" }

type Op =
  | {
      readonly op: "set" | "add" | "replace"
      readonly key: number
      readonly value: Uint8Array
      readonly flags: number | undefined
      readonly expiration: number | undefined
    }
  | { readonly op: "append" | "prepend"; readonly key: number; readonly value: Uint8Array; readonly expiration: number | undefined }
  | {
      readonly op: "compareAndSwap"
      readonly key: number
      readonly value: Uint8Array
      readonly flags: number | undefined
      readonly expiration: number | undefined
      readonly cas: CasChoice
    }
  | { readonly op: "del"; readonly key: number; readonly invalidate: number | undefined }
  | {
      readonly op: "inc" | "dec"
      readonly key: number
      readonly delta: bigint
      readonly expiration: number | undefined
      readonly initialValue: bigint | undefined
    }
  | { readonly op: "touch"; readonly key: number; readonly expiration: number }
  | { readonly op: "get"; readonly key: number; readonly options: GetOptions | undefined }
  | { readonly op: "getMulti"; readonly keys: ReadonlyArray<number>; readonly options: GetOptions | undefined }


type Outcome =
  | { readonly ok: true; readonly kind: "void" }
  | { readonly ok: true; readonly kind: "item"; readonly item: Item }
  | { readonly ok: true; readonly kind: "number"; readonly value: bigint }
  | { readonly ok: true; readonly kind: "items"; readonly items: ReadonlyMap<string, Item> }
  | { readonly ok: false; readonly tag: string; readonly reason: string | undefined }

/** A copy of the item that owns its bytes (a value may view a socket chunk). */
const itemView = (item: Item): Item => ({ ...item, value: new Uint8Array(item.value) })

const outcomeOf = <A>(exit: Exit.Exit<A, unknown>, ok: (a: A) => Outcome): Outcome => {
  if (Exit.isSuccess(exit)) return ok(exit.value)
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return { ok: false, tag: "Defect", reason: Cause.pretty(exit.cause) }
  const e = failure.value as { readonly _tag?: string; readonly reason?: string }
  return { ok: false, tag: e._tag ?? String(e), reason: typeof e.reason === "string" ? e.reason : undefined }
}

const describeOutcome = (o: Outcome): string => {
  if (!o.ok) return `${o.tag}${o.reason === undefined ? "" : `(${o.reason})`}`
  switch (o.kind) {
    case "void":
      return "ok"
    case "number":
      return `${o.value}`
    case "item":
      return json(o.item)
    case "items":
      return json(Object.fromEntries(o.items))
  }
}

/** Bogus CAS tokens no item has: above both counters. */
const BOGUS_CAS = (1n << 62n) + 12345n

interface Observation {
  readonly key: number
  readonly real: bigint
  readonly mem: bigint
}

interface SequenceState {
  readonly keys: ReadonlyArray<string>
  readonly observed: Array<Observation>
  /** keys whose TTL came from an absolute expiration (compared within ±2 s) */
  readonly absolute: Set<number>
  /** keys whose last incr/decr may have made a new item on memcached (see the header) */
  readonly ambiguous: Set<number>
  slept: number
}

const generateOp = (rng: Rng, state: SequenceState): Op => {
  const key = rng.int(state.keys.length)
  const flags = rng.weighted<number | undefined>([[6, undefined], [2, 0], [1, 1], [1, 42], [1, 65535]])
  const kind = rng.weighted<Op["op"]>([
    [14, "set"],
    [5, "add"],
    [5, "replace"],
    [5, "append"],
    [4, "prepend"],
    [8, "compareAndSwap"],
    [6, "del"],
    [7, "inc"],
    [5, "dec"],
    [5, "touch"],
    [26, "get"],
    [6, "getMulti"],
  ])
  const getOptions = (): GetOptions | undefined =>
    rng.chance(0.25)
      ? undefined
      : {
          cas: rng.chance(0.6),
          hit: rng.chance(0.4),
          lastAccess: rng.chance(0.3),
          ttl: rng.chance(0.4),
          earlyRecache: rng.weighted<number | undefined>([[6, undefined], [2, 30], [3, 100000], [1, 0], [1, -1]]),
        }
  switch (kind) {
    case "set":
    case "add":
    case "replace":
      return { op: kind, key, value: randomValue(rng), flags, expiration: randomExpiration(rng) }
    case "append":
    case "prepend":
      return { op: kind, key, value: randomValue(rng), expiration: rng.chance(0.7) ? undefined : randomExpiration(rng) }
    case "compareAndSwap": {
      const own = state.observed.map((o, i) => [o, i] as const).filter(([o]) => o.key === key)
      const cas: CasChoice = rng.weighted<CasChoice>([
        [own.length > 0 ? 10 : 0, { kind: "observed", index: own.length > 0 ? own[own.length - 1]![1] : 0 }],
        [own.length > 1 ? 3 : 0, { kind: "observed", index: own.length > 0 ? rng.pick(own)[1] : 0 }],
        [state.observed.length > 0 ? 2 : 0, { kind: "observed", index: rng.int(state.observed.length) }],
        [1, { kind: "bogus" }],
        [1, { kind: "zero" }],
        [0.3, { kind: "missing" }],
      ])
      return { op: kind, key, value: randomValue(rng), flags, expiration: randomExpiration(rng), cas }
    }
    case "del":
      return { op: kind, key, invalidate: rng.chance(0.35) ? rng.pick([0, 30, 3600, -1, nowSeconds() + 600]) : undefined }
    case "inc":
    case "dec":
      return {
        op: kind,
        key,
        delta: rng.pick([0n, 1n, 1n, 2n, 7n, 10n, 100n, 1n << 63n, (1n << 64n) - 1n]),
        expiration: rng.chance(0.5) ? undefined : randomExpiration(rng),
        initialValue: rng.chance(0.4) ? rng.pick([0n, 5n, 99n, (1n << 64n) - 1n]) : undefined,
      }
    case "touch":
      return { op: kind, key, expiration: randomExpiration(rng) ?? 0 }
    case "get":
      return { op: kind, key, options: getOptions() }
    case "getMulti": {
      const keys = Array.from({ length: 1 + rng.int(state.keys.length) }, () => rng.int(state.keys.length))
      return { op: kind, keys, options: getOptions() }
    }
  }
}

const toOutcome = (exit: Exit.Exit<void, unknown>): Outcome => outcomeOf(exit, () => ({ ok: true, kind: "void" }))

const runOp = (
  client: McClientService,
  side: "real" | "mem",
  op: Op,
  state: SequenceState,
): Effect.Effect<Outcome> => {
  const k = (i: number) => state.keys[i]!
  switch (op.op) {
    case "set":
    case "add":
    case "replace":
      return Effect.exit(client[op.op]({ key: k(op.key), value: op.value, flags: op.flags }, { expiration: op.expiration })).pipe(
        Effect.map(toOutcome),
      )
    case "append":
    case "prepend":
      return Effect.exit(client[op.op]({ key: k(op.key), value: op.value }, { expiration: op.expiration })).pipe(Effect.map(toOutcome))
    case "compareAndSwap": {
      const c = op.cas
      const cas =
        c.kind === "observed" ? state.observed[c.index]![side] : c.kind === "bogus" ? BOGUS_CAS : c.kind === "zero" ? 0n : undefined
      return Effect.exit(client.compareAndSwap({ key: k(op.key), value: op.value, flags: op.flags, cas }, { expiration: op.expiration })).pipe(
        Effect.map(toOutcome),
      )
    }
    case "del":
      return Effect.exit(client.del(k(op.key), { invalidate: op.invalidate })).pipe(Effect.map(toOutcome))
    case "inc":
    case "dec":
      return Effect.exit(client[op.op](k(op.key), op.delta, op.expiration, { initialValue: op.initialValue })).pipe(
        Effect.map((exit) => outcomeOf(exit, (value): Outcome => ({ ok: true, kind: "number", value }))),
      )
    case "touch":
      return Effect.exit(client.touch(k(op.key), op.expiration)).pipe(Effect.map(toOutcome))
    case "get":
      return Effect.exit(client.get(k(op.key), op.options)).pipe(
        Effect.map((exit) => outcomeOf(exit, (item): Outcome => ({ ok: true, kind: "item", item: itemView(item) }))),
      )
    case "getMulti":
      return Effect.exit(client.getMulti(op.keys.map(k), op.options)).pipe(
        Effect.map((exit) =>
          outcomeOf(exit, (found): Outcome => {
            const items = new Map<string, Item>()
            for (const [key, item] of found) items.set(key, itemView(item))
            return { ok: true, kind: "items", items }
          }),
        ),
      )
  }
}

const keyIndex = (state: SequenceState, key: string): number => state.keys.indexOf(key)

const trimSpaces = (v: Uint8Array): string => Buffer.from(v).toString("latin1").replace(/ +$/, "")

/** Differences between the two items; records CAS pairs. */
const compareItem = (
  real: Item,
  mem: Item,
  state: SequenceState,
  casPairs: CasPairs,
  out: Array<string>,
): void => {
  const where = `item ${JSON.stringify(real.key)}`
  const index = keyIndex(state, real.key)
  if (real.key !== mem.key) out.push(`${where}: key ${real.key} vs ${mem.key}`)
  const ambiguous = state.ambiguous.has(index)
  const sameValue =
    Buffer.compare(Buffer.from(real.value), Buffer.from(mem.value)) === 0 ||
    (ambiguous && trimSpaces(real.value) === trimSpaces(mem.value))
  if (!sameValue) out.push(`${where}: value ${json(real.value)} vs ${json(mem.value)}`)
  const fields = ambiguous ? (["flags", "compressionRatio"] as const) : (["flags", "hit", "stale", "won", "winSent", "compressionRatio"] as const)
  for (const f of fields) {
    if (real[f] !== mem[f]) out.push(`${where}: ${f} ${String(real[f])} vs ${String(mem[f])}`)
  }
  if (ambiguous && (real.hit === undefined) !== (mem.hit === undefined)) out.push(`${where}: hit ${real.hit} vs ${mem.hit}`)
  if ((real.cas === undefined) !== (mem.cas === undefined)) out.push(`${where}: cas ${real.cas} vs ${mem.cas}`)
  else if (real.cas !== undefined && mem.cas !== undefined) {
    const conflict = casPairs.pair(real.cas, mem.cas)
    if (conflict !== undefined) out.push(`${where}: ${conflict}`)
    else state.observed.push({ key: index, real: real.cas, mem: mem.cas })
  }
  const ttlTolerance = state.absolute.has(index) ? 2 : 1
  if ((real.ttl === undefined) !== (mem.ttl === undefined)) out.push(`${where}: ttl ${real.ttl} vs ${mem.ttl}`)
  else if (real.ttl !== undefined && mem.ttl !== undefined) {
    // -1 (no expiry) must match exactly; remaining seconds within the tolerance.
    if ((real.ttl === -1) !== (mem.ttl === -1) || Math.abs(real.ttl - mem.ttl) > ttlTolerance)
      out.push(`${where}: ttl ${real.ttl} vs ${mem.ttl} (±${ttlTolerance})`)
  }
  const laTolerance = 1 + Math.ceil(state.slept / 1000)
  if ((real.lastAccess === undefined) !== (mem.lastAccess === undefined) ||
    (real.lastAccess !== undefined && mem.lastAccess !== undefined && Math.abs(real.lastAccess - mem.lastAccess) > laTolerance))
    out.push(`${where}: lastAccess ${real.lastAccess} vs ${mem.lastAccess} (±${laTolerance})`)
}

const compareOutcomes = (
  real: Outcome,
  mem: Outcome,
  state: SequenceState,
  casPairs: CasPairs,
): Array<string> => {
  const out: Array<string> = []
  if (!real.ok || !mem.ok) {
    if (real.ok !== mem.ok) out.push(`outcome ${describeOutcome(real)} vs ${describeOutcome(mem)}`)
    else if (!real.ok && !mem.ok && (real.tag !== mem.tag || real.reason !== mem.reason))
      out.push(`failure ${describeOutcome(real)} vs ${describeOutcome(mem)}`)
    return out
  }
  if (real.kind !== mem.kind) return [`outcome ${describeOutcome(real)} vs ${describeOutcome(mem)}`]
  if (real.kind === "number" && mem.kind === "number" && real.value !== mem.value) out.push(`number ${real.value} vs ${mem.value}`)
  if (real.kind === "item" && mem.kind === "item") compareItem(real.item, mem.item, state, casPairs, out)
  if (real.kind === "items" && mem.kind === "items") {
    const keys = new Set([...real.items.keys(), ...mem.items.keys()])
    for (const key of keys) {
      const r = real.items.get(key)
      const m = mem.items.get(key)
      if (r !== undefined && m !== undefined) compareItem(r, m, state, casPairs, out)
      else out.push(`getMulti ${JSON.stringify(key)}: ${r === undefined ? "missing" : "found"} on memcached, ${m === undefined ? "missing" : "found"} in memory`)
    }
  }
  return out
}

/**
 * What an agreed outcome tells about the key's state: TTL provenance, and whether memcached may
 * have made a new item. `newItem`: memcached's item lost its fetched mark in this incr/decr.
 */
const track = (op: Op, real: Outcome, state: SequenceState, newItem: boolean): void => {
  if (!real.ok) return
  switch (op.op) {
    case "set":
    case "add":
    case "replace":
    case "compareAndSwap":
      state.ambiguous.delete(op.key)
      if (isAbsolute(op.expiration)) state.absolute.add(op.key)
      else state.absolute.delete(op.key)
      return
    case "touch":
      if (isAbsolute(op.expiration)) state.absolute.add(op.key)
      else state.absolute.delete(op.key)
      return
    case "del":
      if (op.invalidate === undefined) state.ambiguous.delete(op.key)
      else if (isAbsolute(op.invalidate)) state.absolute.add(op.key)
      else state.absolute.delete(op.key)
      return
    case "append":
    case "prepend":
      if (isAbsolute(op.expiration)) state.absolute.add(op.key)
      return
    case "inc":
    case "dec":
      if (op.initialValue !== undefined && isAbsolute(op.expiration)) state.absolute.add(op.key)
      if (newItem) state.ambiguous.add(op.key)
      return
    default:
      return
  }
}

/**
 * memcached 1.6.18's safe_strtoull refuses a number of 2^63 or more when strchr finds a '-' in the
 * string; over item data the scan runs past the value's "\r\n" into what the slab chunk held before,
 * up to a NUL byte. So incr/decr of such a value may fail on memcached because of a '-' after the
 * number, or an earlier item's bytes (this test's values contain '-'). The engine follows current
 * memcached, which only looks at the number's own text. True, on a server that does this (probed),
 * when memcached failed as non-numeric where the engine computed a result from a value ≥ 2^63.
 */
const leftoverMinus = (dialect: Dialect, op: Op, real: Outcome, mem: Outcome): op is Extract<Op, { readonly op: "inc" | "dec" }> => {
  if (!dialect.minusAfterNumber) return false
  if (op.op !== "inc" && op.op !== "dec") return false
  if (real.ok || real.tag !== "BadIncrDec" || !mem.ok || mem.kind !== "number") return false
  const U64 = 1n << 64n
  const before =
    op.op === "inc" ? (((mem.value - op.delta) % U64) + U64) % U64 : mem.value > 0n ? mem.value + op.delta : op.delta
  return before >= 1n << 63n
}

/** How often the tolerances above were needed. */
interface Tolerated {
  /** incr/decr after which memcached's item had no fetched mark (key then compared leniently) */
  ambiguous: number
  /** incr/decr refused by memcached (1.6.18) because of a '-' after the number or left in the slab chunk */
  leftoverMinus: number
}

interface SequenceResult {
  readonly ops: number
  readonly failure: string | undefined
}

const runSequence = (
  real: McClientService,
  mem: McClientService,
  casPairs: CasPairs,
  seed: number,
  label: string,
  opsPerSequence: number,
  sleeps: ReadonlyArray<number>,
  peekFetched: (key: string) => Effect.Effect<boolean>,
  tolerated: Tolerated,
  server: Dialect,
): Effect.Effect<SequenceResult> =>
  Effect.gen(function* () {
    const rng = new Rng(seed)
    const state: SequenceState = {
      keys: Array.from({ length: 8 }, (_, i) => `diff:${label}:${seed.toString(36)}:${i}`),
      observed: [],
      absolute: new Set(),
      ambiguous: new Set(),
      slept: 0,
    }
    const log: Array<string> = []
    let failure: string | undefined
    let count = 0
    for (let i = 0; i < opsPerSequence && failure === undefined; i++) {
      let op = generateOp(rng, state)
      // While a value is ambiguous, no append/prepend: they would carry a difference in padding
      // into bytes that are compared exactly.
      if ((op.op === "append" || op.op === "prepend") && state.ambiguous.has(op.key)) op = { op: "get", key: op.key, options: undefined }
      if (sleeps.includes(i)) {
        yield* Effect.sleep(1100)
        state.slept += 1100
        log.push(`  -- slept 1100 ms`)
      }
      const arithmeticKey = op.op === "inc" || op.op === "dec" ? state.keys[op.key]! : undefined
      const fetchedBefore = arithmeticKey !== undefined ? yield* peekFetched(arithmeticKey) : false
      const r = yield* runOp(real, "real", op, state)
      const m = yield* runOp(mem, "mem", op, state)
      count++
      log.push(`  ${i}: ${json(op)}\n      memcached: ${describeOutcome(r)}\n      memory:    ${describeOutcome(m)}`)
      const diffs = compareOutcomes(r, m, state, casPairs)
      if (diffs.length > 0 && leftoverMinus(server, op, r, m)) {
        // Not reproducible by the engine (see leftoverMinus): start the key afresh on both sides.
        yield* Effect.exit(real.del(state.keys[op.key]!))
        yield* Effect.exit(mem.del(state.keys[op.key]!))
        state.ambiguous.delete(op.key)
        log.push(`      (tolerated: memcached found a '-' after the number; key deleted on both sides)`)
        tolerated.leftoverMinus++
      } else if (diffs.length > 0) failure = diffs.join("; ")
      else {
        // In place, the item keeps its fetched mark; a new item has none.
        const newItem = arithmeticKey !== undefined && fetchedBefore && r.ok && !(yield* peekFetched(arithmeticKey))
        if (newItem) tolerated.ambiguous++
        track(op, r, state, newItem)
      }
    }
    // Leave nothing behind on the shared memcached.
    for (const key of state.keys) {
      yield* Effect.exit(real.del(key))
      yield* Effect.exit(mem.del(key))
    }
    return {
      ops: count,
      failure: failure === undefined ? undefined : `sequence seed ${seed}: ${failure}\n${log.join("\n")}`,
    }
  })

const clientsFor = (options: Omit<McClientOptions, "servers">) =>
  Effect.gen(function* () {
    const realContext = yield* Layer.build(McClient.layer({ ...options, servers: [inject("memcached")] }))
    const memContext = yield* Layer.build(McClient.layerMemory(options))
    return { real: Context.get(realContext, McClient), mem: Context.get(memContext, McClient) }
  })

const differential = (
  label: string,
  options: Omit<McClientOptions, "servers">,
  sequences: number,
  opsPerSequence: number,
  sleepsPerSequence: number,
  concurrency: number,
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const { real, mem } = yield* clientsFor(options)
      const binary = options.disableBinaryEncodedKeys !== true
      const keys = makeKeyEncoder({ binary, hash: "sha256-128" })
      const debug = yield* metaDebug
      const server = yield* dialect
      const peekFetched = (key: string) => Effect.promise(() => debug.fetched(keys.encode(key) as string, binary))
      const casPairs = new CasPairs()
      const tolerated: Tolerated = { ambiguous: 0, leftoverMinus: 0 }
      const seedRng = new Rng(BASE_SEED ^ hashLabel(label))
      const seeds = Array.from({ length: sequences }, () => (seedRng.next() * 2 ** 32) >>> 0)
      const started = Date.now()
      const results = yield* Effect.forEach(
        seeds,
        (seed) => {
          const rng = new Rng(seed ^ 0x5eed)
          const sleeps = Array.from({ length: sleepsPerSequence }, () => 1 + rng.int(opsPerSequence - 1))
          return runSequence(real, mem, casPairs, seed, label, opsPerSequence, sleeps, peekFetched, tolerated, server)
        },
        { concurrency },
      )
      const ops = results.reduce((n, r) => n + r.ops, 0)
      const failures = results.flatMap((r) => (r.failure === undefined ? [] : [r.failure]))
      const summary =
        `${label}: ${sequences} sequences, ${ops} operations compared against memcached ${server.version} in ${Date.now() - started} ms ` +
        `(MEMCACHE_DIFF_SEED=${BASE_SEED}; tolerated: ${json(tolerated)})`
      console.log(summary)
      if (failures.length > 0) {
        if (process.env.MEMCACHE_DIFF_DUMP !== undefined)
          fs.appendFileSync(process.env.MEMCACHE_DIFF_DUMP, failures.join("\n\n") + "\n\n")
        throw new Error(
          `${failures.length} of ${sequences} sequences disagree — ${summary}\n` +
            failures.map((f) => `- ${f.slice(0, f.indexOf("\n"))}`).join("\n") +
            `\n\n${failures.slice(0, 3).join("\n\n")}`,
        )
      }
      expect(ops).toBe(sequences * opsPerSequence)
    }),
  )

const hashLabel = (label: string): number => {
  let h = 2166136261
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 16777619)
  return h >>> 0
}

describe("differential: McClient over memcached and over the memory engine", () => {
  const sizes = { sequences: 200 * SCALE, ops: 50 }
  it.live(`binary keys: ${sizes.sequences} sequences × ${sizes.ops} operations agree`, () =>
    differential("binary", { timeout: "5 seconds" }, sizes.sequences, sizes.ops, 0, 1), TIMEOUT)

  it.live(`plain keys (disableBinaryEncodedKeys): ${sizes.sequences} sequences × ${sizes.ops} operations agree`, () =>
    differential("plain", { timeout: "5 seconds", disableBinaryEncodedKeys: true }, sizes.sequences, sizes.ops, 0, 1), TIMEOUT)

  // Time passing: TTLs count down and last-access times grow on both sides. Sequences run side by
  // side (disjoint keys) so that their sleeps overlap.
  it.live("time passes, binary keys: 16 concurrent sequences × 40 operations with two 1.1 s pauses agree", () =>
    differential("slow", { timeout: "5 seconds" }, 16, 40, 2, 16), TIMEOUT)

  it.live("time passes, plain keys: 16 concurrent sequences × 40 operations with two 1.1 s pauses agree", () =>
    differential("slow-plain", { timeout: "5 seconds", disableBinaryEncodedKeys: true }, 16, 40, 2, 16), TIMEOUT)
})

// ---------------------------------------------------------------------------------------------
// Part 2: raw meta requests
// ---------------------------------------------------------------------------------------------

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

interface RawState {
  readonly names: ReadonlyArray<string>
  /** CAS pairs read so far, per key name */
  readonly observed: Array<{ readonly name: string; readonly real: bigint; readonly mem: bigint }>
  /** keys whose last incr/decr may have made a new item on memcached (see the header) */
  readonly ambiguous: Set<string>
  /** keys whose TTL was set from an absolute time (±2 s) */
  readonly absolute: Set<string>
}

const b64 = (name: string): string => Buffer.from(name, "latin1").toString("base64")

/** TTL tokens: long relative ones, exactly 30 days, absolute future and past, negative. */
const rawTtl = (rng: Rng): number =>
  rng.weighted<number>([
    [3, 0],
    [3, 60],
    [4, 3600],
    [3, -1],
    [1, REALTIME_MAXDELTA],
    [1, REALTIME_MAXDELTA + 1],
    [2, nowSeconds() + 7200],
    [1, 2147483648],
    [0.3, 1.5],
  ])

const opaqueToken = (rng: Rng): string => {
  if (rng.chance(0.04)) return "o".repeat(31 + rng.int(3))
  const n = 1 + rng.int(10)
  let s = ""
  for (let i = 0; i < n; i++) s += "abcdefghijklmnopqrstuvwxyz0123456789"[rng.int(36)]
  return s
}

/** Values below 2^63 (see leftoverMinus), numbers and not, CRLF and NUL included. */
const RAW_VALUES: ReadonlyArray<string> = ["", "0", "1", "9", "10", "99", " 5", "7 ", "-0", "+3", "abc", "12abc", "12 abc", "line\r\nbreak", "\u0000x"]

interface RawRequest {
  readonly request: MetaRequest
  /** the key's name (undefined for a key token that does not decode) */
  readonly name: string | undefined
}

const generateRaw = (rng: Rng, state: RawState, server: Dialect): RawRequest => {
  const name = rng.pick(state.names)
  const keyChoice = rng.weighted<"plain" | "b" | "bad" | "long">([
    [55, "plain"],
    [40, "b"],
    [2, "bad"],
    [2, "long"],
  ])
  const command = rng.weighted<"mg" | "ms" | "md" | "ma">([
    [40, "mg"],
    [30, "ms"],
    [12, "md"],
    [18, "ma"],
  ])
  // ms with an over-long key is answered before its value is read, which memcached then takes for
  // a command: not a case for request/reply comparison.
  const choice = command === "ms" && keyChoice === "long" ? "plain" : keyChoice
  const key = choice === "plain" ? name : choice === "b" ? b64(name) : choice === "bad" ? "!!!!" : "x".repeat(251)
  const b = choice === "b" || choice === "bad"
  const keyName = choice === "plain" || choice === "b" ? name : undefined
  const casToken = (): bigint => {
    const own = state.observed.filter((o) => o.name === name)
    return rng.weighted<() => bigint>([
      [own.length > 0 ? 6 : 0, () => own[own.length - 1]!.real],
      [own.length > 1 ? 3 : 0, () => rng.pick(own).real],
      [1, () => 0n],
      [1, () => BOGUS_CAS],
    ])()
  }
  switch (command) {
    case "mg": {
      const f: Mutable<GetFlags> = {}
      if (b) f.b = true
      for (const flag of ["c", "f", "h", "k", "l", "q", "s", "t", "u"] as const) if (rng.chance(0.25)) f[flag] = true
      if (rng.chance(0.5)) f.v = true
      if (rng.chance(0.15)) f.N = rawTtl(rng)
      if (rng.chance(0.25)) f.R = rng.pick([30, 100000, 100000, 0, -1])
      if (rng.chance(0.15)) f.T = rawTtl(rng)
      if (rng.chance(0.25)) f.O = opaqueToken(rng)
      return { request: { command, key, flags: f }, name: keyName }
    }
    case "ms": {
      const f: Mutable<SetFlags> = {}
      if (b) f.b = true
      for (const flag of ["c", "k", "q"] as const) if (rng.chance(0.25)) f[flag] = true
      if (rng.chance(0.2)) f.I = true
      const mode = rng.weighted<SetMode | undefined>([[4, undefined], [2, "S"], [2, "E"], [2, "A"], [2, "P"], [2, "R"]])
      if (mode !== undefined && !((mode === "A" || mode === "P") && state.ambiguous.has(name))) f.M = mode
      // I with an outdated CAS stores a stale value (it keeps the TTL and the token).
      const own = state.observed.filter((o) => o.name === name)
      if (f.I === true && own.length > 1 && rng.chance(0.7)) f.C = own[rng.int(own.length - 1)]!.real
      else if (rng.chance(0.3)) f.C = casToken()
      if (rng.chance(0.4)) f.F = rng.pick([0, 1, 65535, 4294967295, 123456, -1])
      if (rng.chance(0.4)) f.T = rawTtl(rng)
      if (rng.chance(0.1)) f.N = rawTtl(rng)
      // Before 1.6.20 append/prepend ignore N (NS on a missing key) where the engine, like current
      // servers, creates the key: not sent to such a server. (Drawn anyway, so that a seed makes
      // the same requests otherwise.)
      if (!server.appendVivify && (f.M === "A" || f.M === "P")) delete f.N
      if (rng.chance(0.25)) f.O = opaqueToken(rng)
      let value = bytes(rng.pick(RAW_VALUES))
      if (rng.chance(0.02)) {
        // At memcached's -I 1m limit: header 48 + CAS 8, key + 1, flags 4 when non-zero, data + 2.
        const nkey = Buffer.byteLength(name)
        const max = 1024 * 1024 - 56 - (nkey + 1) - (f.F === undefined || f.F === 0 ? 0 : 4) - 2
        value = new Uint8Array(max + rng.int(2)).fill(0x61)
      }
      return { request: { command, key, flags: f, value }, name: keyName }
    }
    case "md": {
      const f: Mutable<DeleteFlags> = {}
      if (b) f.b = true
      for (const flag of ["k", "q"] as const) if (rng.chance(0.25)) f[flag] = true
      if (rng.chance(0.3)) f.I = true
      if (rng.chance(0.2)) f.C = casToken()
      if (rng.chance(f.I === true ? 0.6 : 0.1)) f.T = rawTtl(rng)
      if (rng.chance(0.25)) f.O = opaqueToken(rng)
      return { request: { command, key, flags: f }, name: keyName }
    }
    case "ma": {
      const f: Mutable<ArithmeticFlags> = {}
      if (b) f.b = true
      for (const flag of ["c", "k", "q", "t"] as const) if (rng.chance(0.3)) f[flag] = true
      if (rng.chance(0.5)) f.v = true
      if (rng.chance(0.15)) f.C = casToken()
      if (rng.chance(0.3)) f.N = rawTtl(rng)
      if (rng.chance(0.3)) f.J = rng.pick([0n, 5n, 100n])
      if (rng.chance(0.5)) f.D = rng.pick([0n, 1n, 7n, 100n])
      if (rng.chance(0.2)) f.T = rawTtl(rng)
      const mode = rng.weighted<"I" | "D" | undefined>([[2, undefined], [1, "I"], [2, "D"]])
      if (mode !== undefined) f.M = mode
      if (rng.chance(0.25)) f.O = opaqueToken(rng)
      return { request: { command, key, flags: f }, name: keyName }
    }
  }
}

const RAW_FIELDS = ["code", "message", "clientFlags", "opaque"] as const
/** Fields memcached may change behind a new-item incr/decr (see the header). */
const RAW_MARKS = ["hit", "size", "key", "base64", "won", "stale", "winSent"] as const

const compareReply = (real: Reply, mem: Reply, name: string | undefined, state: RawState, casPairs: CasPairs): Array<string> => {
  const out: Array<string> = []
  const ambiguous = name !== undefined && state.ambiguous.has(name)
  for (const f of RAW_FIELDS) if (real[f] !== mem[f]) out.push(`${f} ${json(real[f])} vs ${json(mem[f])}`)
  if (!ambiguous) for (const f of RAW_MARKS) if (real[f] !== mem[f]) out.push(`${f} ${json(real[f])} vs ${json(mem[f])}`)
  else if ((real.hit === undefined) !== (mem.hit === undefined) || (real.size === undefined) !== (mem.size === undefined) ||
    (real.key === undefined) !== (mem.key === undefined))
    out.push(`requested fields differ: ${json(real)} vs ${json(mem)}`)
  const rv = real.value === undefined ? undefined : Buffer.from(real.value)
  const mv = mem.value === undefined ? undefined : Buffer.from(mem.value)
  if ((rv === undefined) !== (mv === undefined)) out.push(`value ${json(real.value)} vs ${json(mem.value)}`)
  else if (rv !== undefined && mv !== undefined && Buffer.compare(rv, mv) !== 0) {
    if (!(ambiguous && trimSpaces(rv) === trimSpaces(mv))) out.push(`value ${json(real.value)} vs ${json(mem.value)}`)
  }
  if ((real.cas === undefined) !== (mem.cas === undefined)) out.push(`cas ${real.cas} vs ${mem.cas}`)
  else if (real.cas !== undefined && mem.cas !== undefined) {
    const conflict = casPairs.pair(real.cas, mem.cas)
    if (conflict !== undefined) out.push(conflict)
    else if (name !== undefined && real.cas !== 0n) state.observed.push({ name, real: real.cas, mem: mem.cas })
  }
  const ttlTolerance = name !== undefined && state.absolute.has(name) ? 2 : 1
  if ((real.ttl === undefined) !== (mem.ttl === undefined) ||
    (real.ttl !== undefined && mem.ttl !== undefined &&
      ((real.ttl === -1) !== (mem.ttl === -1) || Math.abs(real.ttl - mem.ttl) > ttlTolerance)))
    out.push(`ttl ${real.ttl} vs ${mem.ttl} (±${ttlTolerance})`)
  if ((real.lastAccess === undefined) !== (mem.lastAccess === undefined) ||
    (real.lastAccess !== undefined && mem.lastAccess !== undefined && Math.abs(real.lastAccess - mem.lastAccess) > 1))
    out.push(`lastAccess ${real.lastAccess} vs ${mem.lastAccess} (±1)`)
  return out
}

/** The replies as a line each, for the log. */
const describeReplies = (replies: ReadonlyArray<Reply>): string =>
  replies.length === 0
    ? "(nothing)"
    : replies
        .map((r) => {
          const fields: Record<string, unknown> = {}
          for (const [k, v] of Object.entries(r)) if (v !== undefined && v !== false) fields[k] = v
          return json(fields)
        })
        .join(" ")

/**
 * The CAS tokens of a request are memcached's; the engine gets the paired ones (a bogus or zero
 * token is the same on both sides).
 */
const forEngine = (request: MetaRequest, state: RawState): MetaRequest => {
  if (request.command === "mn" || request.command === "mg") return request
  const cas = request.flags.C
  if (cas === undefined || cas === 0n || cas === BOGUS_CAS) return request
  const pair = state.observed.find((o) => o.real === cas)
  return pair === undefined ? request : ({ ...request, flags: { ...request.flags, C: pair.mem } } as MetaRequest)
}

const tokenTouchesTtlAbsolutely = (request: MetaRequest): boolean =>
  request.command !== "mn" &&
  [(request.flags as { readonly T?: number }).T, (request.flags as { readonly N?: number }).N].some((t) => t !== undefined && t > REALTIME_MAXDELTA)

interface RawContext {
  readonly conn: RawConnection
  readonly debug: MetaDebug
  readonly engine: MemoryEngine
  readonly casPairs: CasPairs
  readonly tolerated: { ambiguous: number; leftoverMinus: number }
  readonly server: Dialect
}

/** Runs requests from `next` on both sides, comparing replies; a failure description, or undefined. */
const rawSequence = async (
  ctx: RawContext,
  label: string,
  names: ReadonlyArray<string>,
  steps: number,
  next: (state: RawState, step: number) => RawRequest,
): Promise<string | undefined> => {
  const { conn, debug, engine, casPairs, tolerated } = ctx
  const state: RawState = { names, observed: [], ambiguous: new Set(), absolute: new Set() }
  const log: Array<string> = []
  let failure: string | undefined
  for (let i = 0; i < steps && failure === undefined; i++) {
    const { request, name } = next(state, i)
    const fetchedBefore = request.command === "ma" && name !== undefined ? await debug.fetched(b64(name), true) : false
    const real = await conn.send(request)
    const reply = engine.execute(forEngine(request, state), Date.now())
    const mem = reply === undefined ? [] : [reply]
    log.push(`  ${i}: ${encode(request).toString("latin1").replace(/\r\n/g, "⏎").slice(0, 120)}\n      memcached: ${describeReplies(real)}\n      memory:    ${describeReplies(mem)}`)
    const diffs: Array<string> = []
    if (real.length !== mem.length) diffs.push(`${real.length} replies vs ${mem.length}`)
    else for (let j = 0; j < real.length; j++) diffs.push(...compareReply(real[j]!, mem[j]!, name, state, casPairs))
    if (diffs.length > 0 && name !== undefined && request.command === "ma" && ctx.server.minusAfterNumber && leftoverMinusRaw(request, real, engine, name)) {
      // See leftoverMinus: start the key afresh on both sides.
      await conn.send({ command: "md", key: b64(name), flags: { b: true } })
      engine.execute({ command: "md", key: b64(name), flags: { b: true } }, Date.now())
      state.ambiguous.delete(name)
      tolerated.leftoverMinus++
      log.push(`      (tolerated: memcached found a '-' after the value; key deleted on both sides)`)
      continue
    }
    if (diffs.length > 0) {
      failure = diffs.join("; ")
      break
    }
    if (name === undefined) continue
    if (tokenTouchesTtlAbsolutely(request)) state.absolute.add(name)
    const succeeded = real.length === 0 || real[0]!.code === "HD" || real[0]!.code === "VA"
    if (request.command === "ma" && fetchedBefore) {
      // In place, the item keeps its fetched mark; a new item has none. (Also after an error: an
      // over-long opaque fails after the item was changed.)
      if (!(await debug.fetched(b64(name), true))) {
        tolerated.ambiguous++
        if (request.flags.T === undefined) state.ambiguous.add(name)
        else {
          // memcached applied T to the old, unlinked item: the TTLs now differ (and with them,
          // whether the item exists). Start the key afresh on both sides.
          await conn.send({ command: "md", key: b64(name), flags: { b: true } })
          engine.execute({ command: "md", key: b64(name), flags: { b: true } }, Date.now())
          state.ambiguous.delete(name)
          log.push(`      (memcached made a new item and dropped T; key deleted on both sides)`)
        }
      }
    } else if (succeeded && request.command === "ms" && request.flags.I !== true && request.flags.M !== "A" && request.flags.M !== "P") {
      state.ambiguous.delete(name)
    } else if (succeeded && request.command === "md" && request.flags.I !== true) {
      state.ambiguous.delete(name)
    }
  }
  for (const name of state.names) {
    await conn.send({ command: "md", key: b64(name), flags: { b: true, q: true } })
    engine.execute({ command: "md", key: b64(name), flags: { b: true, q: true } }, Date.now())
  }
  return failure === undefined ? undefined : `${label}: ${failure}\n${log.join("\n")}`
}

/** leftoverMinus for a raw `ma`: memcached refused what the engine computed from a value ≥ 2^63. */
const leftoverMinusRaw = (request: Extract<MetaRequest, { command: "ma" }>, real: ReadonlyArray<Reply>, engine: MemoryEngine, name: string) => {
  if (real[0]?.code !== "CLIENT_ERROR" || !/non-numeric/.test(real[0].message ?? "")) return false
  // The engine's value after the request (the key is deleted afterwards, so this read may disturb it).
  const after = engine.execute({ command: "mg", key: b64(name), flags: { b: true, v: true, u: true } }, Date.now())
  if (after?.value === undefined) return false
  const value = BigInt(trimSpaces(after.value))
  const delta = request.flags.D ?? 1n
  const U64 = 1n << 64n
  const before = request.flags.M === "D" ? (value > 0n ? value + delta : delta) : (((value - delta) % U64) + U64) % U64
  return before >= 1n << 63n
}

/** The n-th latest distinct CAS seen for `name` (0 = latest), as memcached numbers it. */
const observedCas = (state: RawState, name: string, n: number): bigint => {
  const own = [...new Set(state.observed.filter((o) => o.name === name).map((o) => o.real))]
  return own[own.length - 1 - n] ?? BOGUS_CAS
}

type Step = (state: RawState, name: string) => MetaRequest
const mg = (flags: GetFlags = {}): Step => (_s, name) => ({ command: "mg", key: name, flags })
const ms = (value: string | Uint8Array, flags: SetFlags = {}): Step => (_s, name) => ({
  command: "ms",
  key: name,
  flags,
  value: typeof value === "string" ? bytes(value) : value,
})
const md = (flags: DeleteFlags = {}): Step => (_s, name) => ({ command: "md", key: name, flags })
const ma = (flags: ArithmeticFlags = {}): Step => (_s, name) => ({ command: "ma", key: name, flags })
/** The same request with the key base64 and `b`. */
const binaryKey = (step: Step): Step => (state, name) => {
  const request = step(state, name)
  return request.command === "mn" ? request : ({ ...request, key: b64(name), flags: { ...request.flags, b: true } } as MetaRequest)
}
const withCas = (step: Step, n: number): Step => (state, name) => {
  const request = step(state, name)
  return request.command === "mn" || request.command === "mg" ? request : ({ ...request, flags: { ...request.flags, C: observedCas(state, name, n) } } as MetaRequest)
}
/** The largest value memcached's -I 1m takes for this key and these client flags. */
const maxValue = (name: string, clientFlags: number, delta = 0): Uint8Array =>
  new Uint8Array(1024 * 1024 - 56 - (Buffer.byteLength(name) + 1) - (clientFlags === 0 ? 0 : 4) - 2 + delta).fill(0x62)

const LONG_OPAQUE = "o".repeat(32)

/**
 * Directed cases the random sequences reach rarely, checked against memcached the same way. A third
 * element says which servers a scenario is for (see the header); without it, every server.
 */
const SCENARIOS: ReadonlyArray<readonly [string, ReadonlyArray<Step>, ((server: Dialect) => boolean)?]> = [
  ["a stale set (ms I with an older CAS) keeps TTL and token", [
    ms("a", { T: 3600 }), mg({ c: true }), ms("b", { c: true, T: 3600 }), mg({ c: true, v: true, R: 100000 }),
    withCas(ms("c", { I: true, c: true, T: 60 }), 1), mg({ v: true, c: true, t: true }), mg({ v: true }),
    withCas(ms("d", { I: true, T: 600 }), 0), mg({ v: true, c: true, t: true }), withCas(ms("e", { I: true, c: true }), 2),
    mg({ v: true, t: true, h: true }), mg({ v: true }), withCas(ms("f", { I: true, M: "R" }), 3), mg({ v: true }),
    withCas(ms("g", { I: true, M: "E" }), 3), withCas(ms("h", { I: true, M: "A" }), 3), withCas(ms("h", { I: true, M: "A" }), 0), mg({ v: true }),
  ]],
  ["md I marks stale, clears the token and bumps the CAS; a set clears it all", [
    ms("v", { T: 3600 }), mg({ v: true, R: 100000, c: true }), mg({ v: true }), md({ I: true, T: 30, q: true }),
    mg({ v: true, t: true, c: true }), mg({ v: true }), withCas(md({ I: true, k: true, O: "x" }), 0), mg({ v: true }),
    ms("fresh"), mg({ v: true, t: true }), md({ C: BOGUS_CAS }), withCas(md({ q: true }), 0), mg({ v: true }),
  ]],
  ["ma: quiet, vivify, clamp, wrap-free growth, T and t", [
    ma({ q: true, N: 0, J: 5n }), ma({ q: true }), ma({ q: true, v: true }), ma({ v: true, t: true, c: true, k: true }),
    mg({ v: true, s: true }), ma({ M: "D", D: 100n, v: true }), mg({ v: true, s: true }), ma({ N: 60, J: 9n, v: true, t: true }),
    md({ q: true }), ma({ N: -1, J: 1n, v: true, t: true }), mg({ v: true }), ms("99", { T: 60 }),
    ma({ v: true, t: true, T: 100 }), mg({ v: true, t: true, s: true }), ma({ v: true, T: 200, q: true }), mg({ t: true }),
    ma({ M: "D", D: 1n, C: BOGUS_CAS, O: "o" }), withCas(ma({ c: true, v: true }), 0), ms(""), ma({ v: true }), ms("12abc"), ma({ O: "z" }),
  ]],
  ["mg N vivifies an item whose key is not binary; k and b", [
    binaryKey(mg({ N: 30, v: true, t: true, c: true, k: true })), mg({ v: true, k: true, t: true }), mg({ k: true, q: true, O: "q" }),
    binaryKey(ms("x", { k: true, c: true })), mg({ k: true }), binaryKey(mg({ k: true, s: true })),
    ms("y", { M: "A", k: true }), binaryKey(mg({ k: true, v: true })), binaryKey(md({ k: true, q: true })),
    binaryKey(mg({ k: true, q: true })), binaryKey(mg({ k: true, O: "miss" })), binaryKey(ma({ k: true, O: "nf" })),
  ]],
  ["an over-long opaque fails after earlier flags took effect", [
    ms("v", { T: 60 }), mg({ T: 3600, t: true, O: LONG_OPAQUE }), mg({ t: true, h: true }), mg({ O: LONG_OPAQUE }),
    md({ O: LONG_OPAQUE }), mg({ v: true }), ma({ O: LONG_OPAQUE }), ms("5"), ma({ v: true, O: LONG_OPAQUE }), mg({ v: true }),
    ms("w", { O: LONG_OPAQUE }), mg({ v: true }), mg({ N: 30, O: LONG_OPAQUE }), md(), mg({ N: 30, v: true, O: LONG_OPAQUE }),
    mg({ v: true, t: true }),
  ]],
  ["item size limit: too large removes the old item; append up to the limit", [
    (s, name) => ms(maxValue(name, 0))(s, name), mg({ s: true }),
    (s, name) => ms(maxValue(name, 0, 1), { q: true })(s, name), mg({ s: true }),
    (s, name) => ms(maxValue(name, 7, -4), { F: 7 })(s, name), mg({ s: true, f: true }),
    (s, name) => ms(maxValue(name, 7, -5), { F: 7 })(s, name), ms("x", { M: "A" }), mg({ s: true }), ms("y", { M: "P" }), mg({ s: true }),
    ms("123", { F: 7 }), ma({ v: true }), (s, name) => ms(maxValue(name, 0, -(600 * 1024)))(s, name), ma({ v: true }),
  ]],
  ["bad tokens and modes", [
    mg({ N: 1.5 }), mg({ T: Number.NaN }), mg({ R: 1e21 }), ms("v", { F: -1 }), ms("v", { T: 1.5 }), ms("v", { C: -1n }),
    ms("v", { N: 1.5 }), ma({ D: -1n }), ma({ J: 1n << 64n }), ma({ N: 1.5 }), ma({ M: "x" as "I" }), md({ C: -1n }), md({ T: 1.5 }),
    ms("v", { M: "x" as "S" }), mg({ v: true }), ms("v", { M: "s" as "S", O: LONG_OPAQUE }), ms("v", { M: "SS" as "S", T: 1.5 }),
    ms("v", { M: "SS" as "S" }), ms("5", { M: "S", O: LONG_OPAQUE }), mg({ v: true }), ms("5"), ma({ M: "+" as "I", v: true }),
    ma({ M: "-" as "D", v: true }), ma({ M: "i" as "I", O: LONG_OPAQUE }), ma({ M: "ID" as "I" }), ms("v", { F: 4294967296 }), mg({ f: true }), ms("v", { F: 4294967295, T: 2147483648 }),
    mg({ f: true, t: true }), ms("v", { T: 4294967296 + 60 }), mg({ t: true }),
  ]],
  ["ms MA/MP N creates a missing key with N's TTL, flags and binary key; an existing one keeps its own", [
    ms("v", { M: "A", N: 60, c: true, k: true }), mg({ v: true, t: true, f: true, c: true }),
    ms("w", { M: "A", N: 3600, T: 5, F: 3 }), mg({ v: true, t: true, f: true }), withCas(ms("x", { M: "P", N: 10, c: true }), 0),
    ms("y", { M: "P", N: 10, C: BOGUS_CAS }), mg({ v: true, t: true, c: true }), md(),
    ms("p", { M: "P", N: 0, F: 7, T: 30 }), mg({ v: true, t: true, f: true }), md(),
    binaryKey(ms("b", { M: "A", N: 30, k: true })), mg({ k: true, v: true }), binaryKey(mg({ k: true, s: true })), md(),
    ms("c", { M: "A", N: 60, C: BOGUS_CAS }), mg({ v: true, t: true }), md(),
    ms("q", { M: "A", N: 60, q: true }), mg({ v: true, t: true, h: true }), md(),
    ms("e", { M: "A", N: -1 }), mg({ v: true }), ms("f", { M: "E", N: 60 }), mg({ v: true, t: true }),
    ms("g", { M: "R", N: 60 }), md(), ms("h", { M: "R", N: 60 }), ms("i", { N: 60 }), mg({ v: true, t: true }),
  ], (server) => server.appendVivify],
  ["hit, last access, u, add as an access", [
    ms("v"), mg({ h: true, l: true }), mg({ h: true, u: true }), mg({ h: true, l: true }), ms("w", { M: "E" }), mg({ h: true, l: true, t: true }),
    mg({ T: 100, h: true }), mg({ t: true, h: true }), ms("x", { M: "R", T: 0 }), mg({ t: true, h: true }),
  ]],
]

describe("raw differential: MetaRequest → Reply, MemoryEngine.execute and memcached", () => {
  const report = (label: string, summary: string, failures: ReadonlyArray<string>, total: number) => {
    console.log(summary)
    if (failures.length === 0) return
    if (process.env.MEMCACHE_DIFF_DUMP !== undefined) fs.appendFileSync(process.env.MEMCACHE_DIFF_DUMP, failures.join("\n\n") + "\n\n")
    throw new Error(
      `${failures.length} of ${total} ${label} disagree — ${summary}\n` +
        failures.map((f) => `- ${f.slice(0, f.indexOf("\n"))}`).join("\n") +
        `\n\n${failures.slice(0, 3).join("\n\n")}`,
    )
  }
  const context = Effect.gen(function* () {
    const conn = yield* rawConnection
    const debug = yield* metaDebug
    const server = yield* dialect
    const ctx: RawContext = { conn, debug, engine: new MemoryEngine(), casPairs: new CasPairs(), tolerated: { ambiguous: 0, leftoverMinus: 0 }, server }
    return ctx
  })

  it.live(`${100 * SCALE} random sequences × 60 requests (flags the client never sends included) agree`, () =>
    Effect.scoped(
      Effect.gen(function* () {
        const ctx = yield* context
        const seedRng = new Rng(BASE_SEED ^ hashLabel("raw"))
        const started = Date.now()
        const failures: Array<string> = []
        const sequences = 100 * SCALE
        const requests = 60
        for (let i = 0; i < sequences; i++) {
          const seed = (seedRng.next() * 2 ** 32) >>> 0
          const rng = new Rng(seed)
          const names = Array.from({ length: 4 }, (_, i) => `raw:${seed.toString(36)}:${i}`)
          const failure = yield* Effect.promise(() =>
            rawSequence(ctx, `raw sequence seed ${seed}`, names, requests, (state) => generateRaw(rng, state, ctx.server)),
          )
          if (failure !== undefined) failures.push(failure)
        }
        const summary =
          `raw: ${sequences} sequences × ${requests} requests compared against memcached ${ctx.server.version} in ${Date.now() - started} ms ` +
          `(MEMCACHE_DIFF_SEED=${BASE_SEED}; tolerated: ${json(ctx.tolerated)})`
        report("raw sequences", summary, failures, sequences)
      }),
    ), TIMEOUT)

  it.live(`${SCENARIOS.length} directed scenarios agree`, () =>
    Effect.scoped(
      Effect.gen(function* () {
        const ctx = yield* context
        const run = `${process.pid.toString(36)}${Date.now().toString(36)}`
        const failures: Array<string> = []
        let requests = 0
        const skipped: Array<string> = []
        for (const [i, [title, steps, applies]] of SCENARIOS.entries()) {
          if (applies !== undefined && !applies(ctx.server)) {
            skipped.push(title)
            continue
          }
          const name = `scenario:${run}:${i}`
          requests += steps.length
          const failure = yield* Effect.promise(() =>
            rawSequence(ctx, `scenario "${title}"`, [name], steps.length, (state, step) => ({ request: steps[step]!(state, name), name })),
          )
          if (failure !== undefined) failures.push(failure)
        }
        const ran = SCENARIOS.length - skipped.length
        const summary =
          `scenarios: ${ran} scenarios, ${requests} requests compared against memcached ${ctx.server.version} ` +
          `(tolerated: ${json(ctx.tolerated)}${skipped.length === 0 ? "" : `; not for this server: ${json(skipped)}`})`
        report("scenarios", summary, failures, ran)
      }),
    ), TIMEOUT)
})
