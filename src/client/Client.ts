/**
 * The client's operations, written once over a `Transport`: key encoding, namespaces,
 * compression, min-uses, getMulti fan-out and codecs run the same on TCP and in memory.
 */
import { Duration, Effect, Exit, Schema } from "effect"
import { type CodecOption, decodeValue, encodeValue } from "../Codec.js"
import {
  BadIncrDec,
  ClientError,
  DecodeError,
  EncodeError,
  type CacheMiss,
  type CASConflict,
  type McError,
  type NotStored,
} from "../Errors.js"
import type { Item, ItemInput } from "../Item.js"
import type {
  CompressionCodec,
  DeleteOptions,
  Expiration,
  GetMultiOptions,
  GetOptions,
  IncrDecrOptions,
  SetOptions,
  TimeoutOption,
} from "../Options.js"
import { constantFlags, type GetFlags, type MetaRequest, type SetMode } from "../protocol/Request.js"
import type { Reply } from "../protocol/Reply.js"
import { runCodec } from "./Compression.js"
import {
  badInput,
  expirationRule,
  expirationSeconds,
  isCodec,
  isFlag,
  isOptions,
  isValue,
  notAKey,
  reasonOf,
  render,
  timeoutMillisOf,
  timeoutRule,
  unreadable,
} from "./Inputs.js"
import type { KeyEncoder } from "./Keys.js"
import type { GetOrSet } from "./ReadThrough.js"
import { makeNamespaces } from "./Namespaces.js"
import { cacheMiss, casConflict, notStored, unexpected } from "./Replies.js"
import { Hit, type ServerStats, type ServerStatus, type Transport } from "./Transport.js"
import { supportsAppendVivify } from "../connection/Version.js"
import {
  COMPRESSED,
  NAMESPACED,
  readNamespaceHeader,
  USER_FLAGS_MASK,
  writeNamespaceHeader,
} from "./ValueFormat.js"

export interface ClientConfig {
  readonly keys: KeyEncoder
  readonly timeoutMillis: number
  readonly compression: CompressionCodec
}

export interface McClientService {
  readonly get: (key: string, options?: GetOptions) => Effect.Effect<Item, CacheMiss | McError | DecodeError>
  readonly getMulti: {
    (
      keys: Iterable<string>,
      options: GetMultiOptions & { readonly partial: true },
    ): Effect.Effect<PartialItems, McError | DecodeError>
    (keys: Iterable<string>, options?: GetMultiOptions): Effect.Effect<ReadonlyMap<string, Item>, McError | DecodeError>
  }
  readonly set: (item: ItemInput, options?: SetOptions) => Effect.Effect<void, McError | ClientError>
  readonly add: (item: ItemInput, options?: SetOptions) => Effect.Effect<void, NotStored | McError>
  readonly replace: (item: ItemInput, options?: SetOptions) => Effect.Effect<void, NotStored | McError>
  readonly append: (item: ItemInput, options?: SetOptions) => Effect.Effect<void, NotStored | McError>
  readonly prepend: (item: ItemInput, options?: SetOptions) => Effect.Effect<void, NotStored | McError>
  readonly compareAndSwap: (
    item: ItemInput,
    options?: SetOptions,
  ) => Effect.Effect<void, CASConflict | CacheMiss | NotStored | McError>
  readonly del: (key: string, options?: DeleteOptions) => Effect.Effect<void, CacheMiss | McError>
  readonly inc: (
    key: string,
    delta: bigint | number,
    expiration?: Expiration,
    options?: IncrDecrOptions,
  ) => Effect.Effect<bigint, CacheMiss | BadIncrDec | McError>
  readonly dec: (
    key: string,
    delta: bigint | number,
    expiration?: Expiration,
    options?: IncrDecrOptions,
  ) => Effect.Effect<bigint, CacheMiss | BadIncrDec | McError>
  readonly touch: (key: string, expiration: Expiration, options?: TimeoutOption) => Effect.Effect<void, CacheMiss | McError>
  readonly purgeNamespace: (namespace: string, options?: TimeoutOption) => Effect.Effect<void, McError>
  /** get, then decode the value with a schema (format read from the item's flags) */
  readonly getAs: <A, I>(
    schema: Schema.Schema<A, I, never>,
    key: string,
    options?: GetOptions & CodecOption,
  ) => Effect.Effect<A, CacheMiss | DecodeError | McError>
  /** encode the value with a schema and a codec (JSON by default), then set */
  readonly setAs: <A, I>(
    schema: Schema.Schema<A, I, never>,
    item: { readonly key: string; readonly value: A; readonly flags?: number | undefined },
    options?: SetOptions & CodecOption,
  ) => Effect.Effect<void, EncodeError | McError | ClientError>
  /**
   * The value of `key` decoded with `schema`; on a miss `lookup` computes it, once across
   * processes (leases) and within this one, and it is stored (src/client/ReadThrough.ts).
   */
  readonly getOrSet: GetOrSet
  /** Every server's state, version, connections and requests in flight (no I/O). */
  readonly status: Effect.Effect<ReadonlyArray<ServerStatus>>
  /**
   * memcached's `stats` (the `STAT` lines): of one server (one of the client's), or, without a
   * server, of each server, keyed by address.
   */
  readonly stats: {
    (server: string): Effect.Effect<ServerStats, McError>
    (): Effect.Effect<ReadonlyMap<string, ServerStats>, McError>
  }
}

/** `getMulti(keys, { partial: true })`: the hits, and the keys that could not be read. */
export interface PartialItems {
  readonly items: ReadonlyMap<string, Item>
  readonly failed: ReadonlyMap<string, McError | DecodeError>
}

class ItemImpl implements Item {
  constructor(
    readonly key: string,
    readonly value: Uint8Array,
    readonly flags: number,
    readonly cas: bigint | undefined,
    readonly hit: boolean | undefined,
    readonly lastAccess: number | undefined,
    readonly ttl: number | undefined,
    readonly stale: boolean,
    readonly won: boolean,
    readonly winSent: boolean,
    readonly compressionRatio: number,
  ) {}
}

// The upper 16 client-flag bits of items read by this client (how the value was written), kept
// off the item itself: `{ ...item, value }` passed back to set must not carry them along.
const internalFlags = new WeakMap<Item, number>()

const makeItem = (key: string, reply: Reply, value: Uint8Array, ratio: number): ItemImpl => {
  const cf = reply.clientFlags ?? 0
  const item = new ItemImpl(
    key,
    value,
    cf & USER_FLAGS_MASK,
    reply.cas,
    reply.hit,
    reply.lastAccess,
    reply.ttl,
    reply.stale,
    reply.won,
    reply.winSent,
    ratio,
  )
  if (cf > USER_FLAGS_MASK) internalFlags.set(item, cf & ~USER_FLAGS_MASK)
  return item
}

/** The upper 16 client-flag bits of an item read by this client. */
const internalFlagsOf = (item: Item): number => internalFlags.get(item) ?? 0

/** Decodes a reply that is `HD` on success and `miss` when the key is absent (md: NF, mg: EN). */
const doneOrMiss =
  (miss: "NF" | "EN") =>
  (reply: Reply, server: string, key: string): Exit.Exit<void, CacheMiss | McError> =>
    reply.code === "HD"
      ? Exit.void
      : reply.code === miss
        ? Exit.fail(cacheMiss(key, server))
        : Exit.fail(unexpected(reply, server, key))
const deleted = doneOrMiss("NF")
const touched = doneOrMiss("EN")

/** Decodes the reply of an `ms`. */
const storeReply = (reply: Reply, server: string, key: string): Exit.Exit<void, NotStored | CASConflict | CacheMiss | McError> => {
  switch (reply.code) {
    case "HD":
      return Exit.void
    case "NS":
      return Exit.fail(notStored(key, server))
    case "EX":
      return Exit.fail(casConflict(key, server))
    case "NF":
      return Exit.fail(cacheMiss(key, server))
    default:
      return Exit.fail(unexpected(reply, server, key))
  }
}

const EMPTY = new Uint8Array(0)
const MAX_U64 = 0xffffffffffffffffn
const encoder = new TextEncoder()
const toBytes = (value: Uint8Array | string): Uint8Array => (typeof value === "string" ? encoder.encode(value) : value)

const badExpiration = (key: string, what: string, value: unknown) =>
  badInput(key, `${what} must be ${expirationRule}, got ${render(value)}`)
const badTimeout = (key: string | undefined, value: unknown) => badInput(key, `timeout must be ${timeoutRule}, got ${render(value)}`)
const badOptions = (key: string | undefined, value: unknown) => badInput(key, `options must be an object, got ${render(value)}`)
const badValue = (key: string, value: unknown) =>
  badInput(key, `a value must be a Uint8Array or a string, got ${render(value)}`)

/** Whole numbers in 0..2^64-1 for inc/dec: a bigint, or a safe integer number; else `undefined`. */
const toU64 = (n: unknown): bigint | undefined => {
  const v = typeof n === "bigint" ? n : typeof n === "number" && Number.isSafeInteger(n) ? BigInt(n) : undefined
  return v !== undefined && v >= 0n && v <= MAX_U64 ? v : undefined
}

/** `namespace`: text whose UTF-8 form fits the value header's u16 length. */
const isNamespace = (ns: unknown): ns is string =>
  typeof ns === "string" && (ns.length <= 21_845 || Buffer.byteLength(ns, "utf8") <= 0xffff)

/** Get options read once (a getter or Proxy is not read again) and checked; `timeout` in ms. */
const checkGetOptions = (key: string | undefined, o: unknown): GetMultiOptions | ClientError => {
  if (!isOptions(o)) return badOptions(key, o)
  if (o === undefined) return {}
  let cas: unknown, hit: unknown, lastAccess: unknown, ttl: unknown, earlyRecache: unknown, timeout: unknown, broadcast: unknown, partial: unknown
  try {
    ;({ cas, hit, lastAccess, ttl, earlyRecache, timeout, broadcast, partial } = o as Record<string, unknown>)
  } catch (e) {
    return unreadable(key, "the options", e)
  }
  if (!isFlag(cas)) return badInput(key, `cas must be a boolean, got ${render(cas)}`)
  if (!isFlag(hit)) return badInput(key, `hit must be a boolean, got ${render(hit)}`)
  if (!isFlag(lastAccess)) return badInput(key, `lastAccess must be a boolean, got ${render(lastAccess)}`)
  if (!isFlag(ttl)) return badInput(key, `ttl must be a boolean, got ${render(ttl)}`)
  if (!isFlag(broadcast)) return badInput(key, `broadcast must be a boolean, got ${render(broadcast)}`)
  if (!isFlag(partial)) return badInput(key, `partial must be a boolean, got ${render(partial)}`)
  const R = earlyRecache === undefined ? undefined : expirationSeconds(earlyRecache, false)
  if (R !== undefined && R < 0) return badInput(key, `earlyRecache must be ${expirationRule} (not infinite), got ${render(earlyRecache)}`)
  const timeoutMillis = timeoutMillisOf(timeout, -2)
  if (timeoutMillis === -1) return badTimeout(key, timeout)
  return {
    cas: cas as boolean | undefined,
    hit: hit as boolean | undefined,
    lastAccess: lastAccess as boolean | undefined,
    ttl: ttl as boolean | undefined,
    earlyRecache: R,
    timeout: timeoutMillis === -2 ? undefined : timeoutMillis,
    broadcast: broadcast as boolean | undefined,
    partial: partial as boolean | undefined,
  }
}

/** The `timeout` of an options object that has nothing else (touch, purgeNamespace), in ms, or the error. */
const checkTimeoutOption = (key: string | undefined, o: unknown, fallback: number): number | ClientError => {
  if (o === undefined) return fallback
  if (!isOptions(o)) return badOptions(key, o)
  let timeout: unknown
  try {
    timeout = (o as TimeoutOption).timeout
  } catch (e) {
    return unreadable(key, "the options", e)
  }
  const ms = timeoutMillisOf(timeout, fallback)
  return ms === -1 ? badTimeout(key, timeout) : ms
}

/** Every operation but `getOrSet`, which is built on top (src/client/ReadThrough.ts). */
export const makeClient = (transport: Transport, config: ClientConfig): Omit<McClientService, "getOrSet"> => {
  const { keys } = config
  const b = keys.binary
  // Per-call timeouts are checked (and turned into milliseconds) at the top of each operation.
  const timeoutOf = (t: Duration.DurationInput | undefined): number =>
    t === undefined ? config.timeoutMillis : typeof t === "number" ? t : Duration.toMillis(Duration.decode(t))
  const ns = makeNamespaces(transport, keys)

  /** Applies what the upper flag bits say: namespace validity, then decompression. */
  const finishItem = (
    key: string,
    reply: Reply,
    server: string,
    timeoutMillis: number,
    known: ReadonlyMap<string, bigint> | undefined,
  ): Effect.Effect<ItemImpl, CacheMiss | McError | DecodeError> => {
    const cf = reply.clientFlags ?? 0
    let payload = reply.value ?? EMPTY
    const checkNamespace = (): Effect.Effect<void, CacheMiss | McError | DecodeError> => {
      if ((cf & NAMESPACED) === 0) return Effect.void
      const header = readNamespaceHeader(payload)
      if (header === undefined) return Effect.fail(new DecodeError({ key, reason: "bad namespace header" }))
      payload = payload.subarray(header.payloadOffset)
      const current = known?.get(header.namespace)
      const version = current === undefined ? ns.version(header.namespace, timeoutMillis) : Effect.succeed(current)
      return Effect.flatMap(version, (v) =>
        v === header.version ? Effect.void : Effect.zipRight(ns.dropStale(key, timeoutMillis), Effect.fail(cacheMiss(key, server))),
      )
    }
    return Effect.flatMap(checkNamespace(), () => {
      if ((cf & COMPRESSED) === 0) return Effect.succeed(makeItem(key, reply, payload, 0))
      const stored = payload.length
      return runCodec(config.compression.decompress, payload).pipe(
        Effect.mapError((cause) => new DecodeError({ key, reason: "corrupt compressed value", cause })),
        Effect.map((plain) => makeItem(key, reply, plain, stored === 0 ? 0 : plain.length / stored)),
      )
    })
  }

  // The flags of a get without options: one object for every such get, encoded once.
  const plainGetFlags: GetFlags = constantFlags({ b, f: true, v: true })
  const getFlags = (o: GetOptions | undefined): GetFlags =>
    o === undefined
      ? plainGetFlags
      : {
          b,
          c: o.cas === true,
          f: true,
          h: o.hit === true,
          l: o.lastAccess === true,
          t: o.ttl === true,
          v: true,
          // checked options: earlyRecache is already whole seconds (checkGetOptions)
          ...(o.earlyRecache === undefined ? {} : { R: o.earlyRecache as number }),
        }

  /** Decodes a get's reply; `timeoutMillis` bounds the namespace lookup of a namespaced item. */
  const decodeGet =
    (timeoutMillis: number) =>
    (reply: Reply, server: string, key: string): Effect.Effect<Item, CacheMiss | McError | DecodeError> => {
      if (reply.code === "VA") {
        if (((reply.clientFlags ?? 0) & ~USER_FLAGS_MASK) === 0) return Exit.succeed(makeItem(key, reply, reply.value!, 0))
        return finishItem(key, reply, server, timeoutMillis, undefined)
      }
      if (reply.code === "EN") return Exit.fail(cacheMiss(key, server))
      return Exit.fail(unexpected(reply, server, key))
    }
  // Gets without options share one decoder (no closure per call).
  const decodePlainGet = decodeGet(config.timeoutMillis)

  const get = (key: string, options?: GetOptions): Effect.Effect<Item, CacheMiss | McError | DecodeError> => {
    if (typeof key !== "string") return Exit.fail(notAKey(key))
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    let o: GetOptions | undefined
    if (options !== undefined) {
      const checked = checkGetOptions(key, options)
      if (checked instanceof ClientError) return Exit.fail(checked)
      o = checked
    }
    const timeoutMillis = timeoutOf(o?.timeout)
    const request: MetaRequest = { command: "mg", key: wire, flags: getFlags(o) }
    return transport.request<Item, CacheMiss | DecodeError>(
      key,
      request,
      o === undefined ? decodePlainGet : decodeGet(timeoutMillis),
      { timeoutMillis, idempotent: true, key },
    )
  }

  /** Reads the keys once (any iterable but a string) and checks them and the options. */
  const getMulti = (
    keyList: Iterable<string>,
    options?: GetMultiOptions,
  ): Effect.Effect<ReadonlyMap<string, Item> | PartialItems, McError | DecodeError> => {
    if (typeof keyList === "string") return Exit.fail(badInput(undefined, "getMulti takes an iterable of keys, not one string"))
    const o = checkGetOptions(undefined, options)
    if (o instanceof ClientError) return Exit.fail(o)
    const list: Array<string> = []
    try {
      for (const key of keyList) {
        if (typeof key !== "string") return Exit.fail(notAKey(key))
        list.push(key)
      }
    } catch (e) {
      return Exit.fail(unreadable(undefined, "the keys", e))
    }
    // Without options, the shared flags of a plain get (encoded once).
    return getMultiChecked(list, options === undefined ? undefined : o)
  }

  const getMultiChecked = (
    keyList: Iterable<string>,
    o?: GetMultiOptions,
  ): Effect.Effect<ReadonlyMap<string, Item> | PartialItems, McError | DecodeError> =>
    Effect.suspend(() => {
      // The deadline counts from here: encoding a large batch's keys takes time too.
      const startedAt = Date.now()
      const all = Array.from(new Set(keyList))
      const timeoutMillis = timeoutOf(o?.timeout)
      const partial = o?.partial === true
      const failed = new Map<string, McError | DecodeError>()
      const routing: Array<string> = []
      const wires: Array<string> = []
      for (const key of all) {
        const wire = keys.encode(key)
        if (typeof wire !== "string") {
          if (!partial) return Effect.fail(wire)
          failed.set(key, wire)
          continue
        }
        routing.push(key)
        wires.push(wire)
      }
      const answer = (found: ReadonlyMap<string, Item>) => (partial ? { items: found, failed } : found)
      return Effect.flatMap(
        transport.getMany(routing, wires, getFlags(o), { timeoutMillis, startedAt, broadcast: o?.broadcast === true }),
        (outcomes) => {
          const found = new Map<string, Item>()
          const later: Array<Hit> = []
          const laterKeys: Array<string> = []
          for (let i = 0; i < outcomes.length; i++) {
            const outcome = outcomes[i]
            if (outcome === undefined) continue
            const key = routing[i]!
            if (!(outcome instanceof Hit)) {
              if (!partial) return Effect.fail(outcome)
              failed.set(key, outcome)
            } else if (((outcome.reply.clientFlags ?? 0) & ~USER_FLAGS_MASK) === 0) {
              found.set(key, makeItem(key, outcome.reply, outcome.reply.value!, 0))
            } else {
              later.push(outcome)
              laterKeys.push(key)
            }
          }
          if (later.length === 0) return Effect.succeed(answer(found))
          // Namespaced or compressed items: one namespace lookup for the batch, then per item.
          const failAll = (error: McError | DecodeError) =>
            Effect.sync(() => {
              for (const key of laterKeys) failed.set(key, error)
            })
          return ns.versionsFor(later.map((hit) => hit.reply), timeoutMillis).pipe(
            Effect.flatMap((known) =>
              Effect.forEach(later, (hit, j) =>
                finishItem(laterKeys[j]!, hit.reply, hit.server, timeoutMillis, known).pipe(
                  Effect.match({
                    // A namespace purge makes the item a miss; other failures stay failures.
                    onFailure: (error) => (error._tag === "CacheMiss" ? undefined : error),
                    onSuccess: (item) => {
                      found.set(laterKeys[j]!, item)
                      return undefined
                    },
                  }),
                  Effect.flatMap((error) => {
                    if (error === undefined) return Effect.void
                    if (!partial) return Effect.fail(error)
                    failed.set(laterKeys[j]!, error)
                    return Effect.void
                  }),
                ),
              ),
            ),
            (self) => (partial ? Effect.catchAll(self, failAll) : self),
            Effect.as(answer(found)),
          )
        },
      )
    })

  /** One `ms`. Absent flags are `undefined` (not written), so the flags are one plain object. */
  const sendStore = (
    key: string,
    wire: string,
    value: Uint8Array,
    M: SetMode | undefined,
    F: number | undefined,
    T: number | undefined,
    C: bigint | undefined,
    N: number | undefined,
    timeoutMillis: number,
    idempotent: boolean,
  ) =>
    transport.request<void, NotStored | CASConflict | CacheMiss>(
      key,
      { command: "ms", key: wire, value, flags: { b, C, F, M, N, T } },
      storeReply,
      { timeoutMillis, idempotent, key },
    )

  /** set / add / replace / cas: the value goes through min-uses, compression and namespace. */
  // `E`: the outcomes the mode can answer (a plain set has none besides McError).
  const storeWith =
    <E>(mode: "S" | "E" | "R", cas: boolean) =>
    (input: ItemInput, o?: SetOptions): Effect.Effect<void, E | McError> =>
      storeAny(mode, cas, input, 0, o) as Effect.Effect<void, E | McError>

  /** `internal`: the upper flag bits a codec sets (setAs); user-facing stores pass 0. */
  const storeAny = (
    mode: "S" | "E" | "R",
    cas: boolean,
    input: ItemInput,
    internal: number,
    o: SetOptions | undefined,
  ): Effect.Effect<void, NotStored | CASConflict | CacheMiss | McError> => {
    // Every input is read once into a local (a getter or a Proxy is not asked twice), then checked.
    if (typeof input !== "object" || input === null)
      return Exit.fail(badInput(undefined, `an item must be an object { key, value }, got ${render(input)}`))
    let key: unknown, rawValue: unknown, rawFlags: unknown, rawCas: unknown
    try {
      key = input.key
      rawValue = input.value
      rawFlags = input.flags
      if (cas) rawCas = input.cas
    } catch (e) {
      return Exit.fail(unreadable(undefined, "the item", e))
    }
    if (typeof key !== "string") return Exit.fail(notAKey(key))
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    if (!isValue(rawValue)) return Exit.fail(badValue(key, rawValue))
    const userFlags = rawFlags === undefined ? 0 : rawFlags
    if (typeof userFlags !== "number" || !Number.isInteger(userFlags) || userFlags < 0 || userFlags > USER_FLAGS_MASK)
      return Exit.fail(badInput(key, `flags must be an integer in 0..65535, got ${render(userFlags)}`))
    if (cas && (typeof rawCas !== "bigint" || rawCas < 0n || rawCas > MAX_U64))
      return Exit.fail(
        rawCas === undefined
          ? badInput(key, "compareAndSwap needs the item's cas (read it with get(key, { cas: true }))")
          : badInput(key, `cas must be a bigint in 0..2^64-1, got ${render(rawCas)}`),
      )
    if (!isOptions(o)) return Exit.fail(badOptions(key, o))
    let rawExp: unknown, rawTimeout: unknown, namespace: unknown, compression: unknown, minUses: unknown
    if (o !== undefined) {
      try {
        rawExp = o.expiration
        rawTimeout = o.timeout
        namespace = o.namespace
        compression = o.compression
        minUses = o.minUses
      } catch (e) {
        return Exit.fail(unreadable(key, "the options", e))
      }
    }
    const exp = rawExp === undefined ? 0 : expirationSeconds(rawExp, true)
    if (exp < 0) return Exit.fail(badExpiration(key, "expiration", rawExp))
    const timeoutMillis = timeoutMillisOf(rawTimeout, config.timeoutMillis)
    if (timeoutMillis < 0) return Exit.fail(badTimeout(key, rawTimeout))
    if (namespace !== undefined && !isNamespace(namespace))
      return Exit.fail(badInput(key, `namespace must be a string of at most 65535 UTF-8 bytes, got ${render(namespace)}`))
    if (compression !== undefined && !(typeof compression === "number" && compression >= 0))
      return Exit.fail(badInput(key, `compression must be a number of bytes >= 0, got ${render(compression)}`))
    if (minUses !== undefined && !(Number.isSafeInteger(minUses) && (minUses as number) >= 0))
      return Exit.fail(badInput(key, `minUses must be an integer >= 0, got ${render(minUses)}`))
    const M = mode === "S" ? undefined : mode
    const T = exp === 0 ? undefined : exp
    const C = cas ? (rawCas as bigint) : undefined
    const idempotent = mode === "S" && !cas
    const value = toBytes(rawValue)
    // The common case: nothing but bytes and flags.
    if (namespace === undefined && compression === undefined && ((minUses as number | undefined) ?? 1) <= 1) {
      const F = userFlags | internal
      return sendStore(key, wire, value, M, F === 0 ? undefined : F, T, C, undefined, timeoutMillis, idempotent)
    }
    const uses = (minUses as number | undefined) ?? 1
    const threshold = compression as number | undefined
    const space = namespace as string | undefined
    return Effect.gen(function* () {
      if (uses > 1) {
        const count = yield* ns.countUse(key, exp, timeoutMillis)
        if (count < BigInt(uses)) return
      }
      let payload = value
      let bits = internal
      if (threshold !== undefined && payload.length > threshold) {
        const packed = yield* runCodec(config.compression.compress, payload).pipe(
          Effect.mapError((cause) => badInput(key, `compression failed: ${reasonOf(cause)}`)),
        )
        if (packed.length < payload.length) {
          payload = packed
          bits |= COMPRESSED
        }
      }
      if (space !== undefined) {
        const version = yield* ns.version(space, timeoutMillis)
        payload = writeNamespaceHeader(space, version, payload)
        bits |= NAMESPACED
      }
      const F = userFlags | bits
      yield* sendStore(key, wire, payload, M, F === 0 ? undefined : F, T, C, undefined, timeoutMillis, idempotent)
    })
  }

  /**
   * append / prepend. With an expiration a missing key is created (autovivify): `ms … N<ttl>` on
   * memcached ≥ 1.6.20; on older servers append, then add on NS, then append again if the add lost
   * to a concurrent creator, so no update is lost.
   */
  const concat =
    (mode: "A" | "P") =>
    (input: ItemInput, o?: SetOptions): Effect.Effect<void, NotStored | McError> => {
      // Read once, then checked (flags, namespace, compression and minUses do not apply here).
      if (typeof input !== "object" || input === null)
        return Exit.fail(badInput(undefined, `an item must be an object { key, value }, got ${render(input)}`))
      let key: unknown, rawValue: unknown, rawExp: unknown, rawTimeout: unknown
      try {
        key = input.key
        rawValue = input.value
      } catch (e) {
        return Exit.fail(unreadable(undefined, "the item", e))
      }
      if (typeof key !== "string") return Exit.fail(notAKey(key))
      const wire = keys.encode(key)
      if (typeof wire !== "string") return Exit.fail(wire)
      if (!isValue(rawValue)) return Exit.fail(badValue(key, rawValue))
      if (!isOptions(o)) return Exit.fail(badOptions(key, o))
      if (o !== undefined) {
        try {
          rawExp = o.expiration
          rawTimeout = o.timeout
        } catch (e) {
          return Exit.fail(unreadable(key, "the options", e))
        }
      }
      const exp = rawExp === undefined ? 0 : expirationSeconds(rawExp, true)
      if (exp < 0) return Exit.fail(badExpiration(key, "expiration", rawExp))
      const timeoutMillis = timeoutMillisOf(rawTimeout, config.timeoutMillis)
      if (timeoutMillis < 0) return Exit.fail(badTimeout(key, rawTimeout))
      const value = toBytes(rawValue)
      // Without C, an ms in these modes answers HD or NS (or an infrastructure error).
      const send = (M: SetMode, T: number | undefined, N: number | undefined) =>
        sendStore(key, wire, value, M, undefined, T, undefined, N, timeoutMillis, false) as Effect.Effect<void, NotStored | McError>
      const plain = send(mode, undefined, undefined)
      if (exp === 0) return plain
      return Effect.flatMap(transport.version(key), (version) => {
        if (supportsAppendVivify(version)) return send(mode, undefined, exp)
        const add = send("E", exp, undefined)
        return plain.pipe(
          Effect.catchTag("NotStored", () => add),
          Effect.catchTag("NotStored", () => plain),
        )
      })
    }

  const del = (key: string, o?: DeleteOptions): Effect.Effect<void, CacheMiss | McError> => {
    if (typeof key !== "string") return Exit.fail(notAKey(key))
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    if (!isOptions(o)) return Exit.fail(badOptions(key, o))
    let rawInvalidate: unknown, rawTimeout: unknown
    if (o !== undefined) {
      try {
        rawInvalidate = o.invalidate
        rawTimeout = o.timeout
      } catch (e) {
        return Exit.fail(unreadable(key, "the options", e))
      }
    }
    const timeoutMillis = timeoutMillisOf(rawTimeout, config.timeoutMillis)
    if (timeoutMillis < 0) return Exit.fail(badTimeout(key, rawTimeout))
    // Infinity: stale until replaced (T0).
    const T = rawInvalidate === undefined ? undefined : expirationSeconds(rawInvalidate, true)
    if (T !== undefined && T < 0) return Exit.fail(badExpiration(key, "invalidate", rawInvalidate))
    const flags = T === undefined ? { b } : { b, I: true, T }
    return transport.request<void, CacheMiss>(
      key,
      { command: "md", key: wire, flags },
      deleted,
      { timeoutMillis, idempotent: true, key },
    )
  }

  const arithmetic =
    (mode: "I" | "D") =>
    (
      key: string,
      delta: bigint | number,
      expiration?: Expiration,
      o?: IncrDecrOptions,
    ): Effect.Effect<bigint, CacheMiss | BadIncrDec | McError> => {
      if (typeof key !== "string") return Exit.fail(notAKey(key))
      const wire = keys.encode(key)
      if (typeof wire !== "string") return Exit.fail(wire)
      if (!isOptions(o)) return Exit.fail(badOptions(key, o))
      let rawInitial: unknown, rawTimeout: unknown
      if (o !== undefined) {
        try {
          rawInitial = o.initialValue
          rawTimeout = o.timeout
        } catch (e) {
          return Exit.fail(unreadable(key, "the options", e))
        }
      }
      // A number must be a safe integer: a larger one has already lost digits.
      const d = toU64(delta)
      if (d === undefined)
        return Exit.fail(new BadIncrDec({ key, reason: `delta must be a bigint or a safe integer in 0..2^64-1, got ${render(delta)}` }))
      const initial = rawInitial === undefined ? undefined : toU64(rawInitial)
      if (rawInitial !== undefined && initial === undefined)
        return Exit.fail(
          new BadIncrDec({ key, reason: `initial value must be a bigint or a safe integer in 0..2^64-1, got ${render(rawInitial)}` }),
        )
      const exp = expiration === undefined ? 0 : expirationSeconds(expiration, true)
      if (exp < 0) return Exit.fail(badExpiration(key, "expiration", expiration))
      const timeoutMillis = timeoutMillisOf(rawTimeout, config.timeoutMillis)
      if (timeoutMillis < 0) return Exit.fail(badTimeout(key, rawTimeout))
      const flags = {
        b,
        v: true,
        D: d,
        ...(mode === "D" ? { M: mode } : {}),
        ...(initial === undefined ? {} : { N: exp, J: initial }),
      }
      return transport.request<bigint, CacheMiss | BadIncrDec>(
        key,
        { command: "ma", key: wire, flags },
        (reply, server, key) => {
          if (reply.code === "VA") {
            const text = Buffer.from(reply.value!).toString("latin1")
            return /^\d+$/.test(text)
              ? Exit.succeed(BigInt(text))
              : Exit.fail(unexpected(reply, server, key))
          }
          if (reply.code === "NF") return Exit.fail(cacheMiss(key, server))
          if (reply.code === "CLIENT_ERROR" && /non-numeric/.test(reply.message ?? ""))
            return Exit.fail(new BadIncrDec({ key, reason: "value is not a decimal number", server }))
          return Exit.fail(unexpected(reply, server, key))
        },
        { timeoutMillis, idempotent: false, key },
      )
    }

  const touch = (key: string, expiration: Expiration, o?: TimeoutOption): Effect.Effect<void, CacheMiss | McError> => {
    if (typeof key !== "string") return Exit.fail(notAKey(key))
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    const T = expirationSeconds(expiration, true)
    if (T < 0) return Exit.fail(badExpiration(key, "expiration", expiration))
    const timeoutMillis = checkTimeoutOption(key, o, config.timeoutMillis)
    if (typeof timeoutMillis !== "number") return Exit.fail(timeoutMillis)
    return transport.request<void, CacheMiss>(
      key,
      { command: "mg", key: wire, flags: { b, T } },
      touched,
      { timeoutMillis, idempotent: true, key },
    )
  }

  const purgeNamespace = (namespace: string, o?: TimeoutOption): Effect.Effect<void, McError> => {
    if (!isNamespace(namespace))
      return Exit.fail(badInput(undefined, `a namespace must be a string of at most 65535 UTF-8 bytes, got ${render(namespace)}`))
    const timeoutMillis = checkTimeoutOption(undefined, o, config.timeoutMillis)
    if (typeof timeoutMillis !== "number") return Exit.fail(timeoutMillis)
    return ns.purge(namespace, timeoutMillis)
  }

  /** The schema and codec of getAs / setAs, checked; the codec is read once. */
  const checkCodecArgs = (
    schema: unknown,
    o: unknown,
  ): { readonly codec: CodecOption["codec"] } | ClientError => {
    if (!Schema.isSchema(schema)) return badInput(undefined, `schema must be an Effect Schema, got ${render(schema)}`)
    if (!isOptions(o)) return badOptions(undefined, o)
    let codec: unknown
    try {
      codec = (o as CodecOption | undefined)?.codec
    } catch (e) {
      return unreadable(undefined, "the options", e)
    }
    if (!isCodec(codec))
      return badInput(undefined, `codec must be "json", "msgpack" or { encode, decode }, got ${render(codec)}`)
    return { codec: codec as CodecOption["codec"] }
  }

  const getAs = <A, I>(
    schema: Schema.Schema<A, I, never>,
    key: string,
    o?: GetOptions & CodecOption,
  ): Effect.Effect<A, CacheMiss | DecodeError | McError> => {
    const checked = checkCodecArgs(schema, o)
    if (checked instanceof ClientError) return Exit.fail(checked)
    return Effect.flatMap(get(key, o), (item) => decodeValue(schema, key, item.value, internalFlagsOf(item), checked.codec))
  }

  const setAs = <A, I>(
    schema: Schema.Schema<A, I, never>,
    item: { readonly key: string; readonly value: A; readonly flags?: number | undefined },
    o?: SetOptions & CodecOption,
  ): Effect.Effect<void, EncodeError | McError> => {
    const checked = checkCodecArgs(schema, o)
    if (checked instanceof ClientError) return Exit.fail(checked)
    if (typeof item !== "object" || item === null)
      return Exit.fail(badInput(undefined, `an item must be an object { key, value }, got ${render(item)}`))
    let key: unknown, value: unknown, flags: unknown
    try {
      key = item.key
      value = item.value
      flags = item.flags
    } catch (e) {
      return Exit.fail(unreadable(undefined, "the item", e))
    }
    if (typeof key !== "string") return Exit.fail(notAKey(key))
    return encodeValue(schema, key, value as A, checked.codec).pipe(
      // A schema's own code can throw on a hostile value (a getter, a Proxy): still an EncodeError.
      Effect.catchAllDefect((cause) => Effect.fail(new EncodeError({ key, reason: reasonOf(cause), cause }))),
      Effect.flatMap(
        ({ bytes, internalFlags }) =>
          storeAny("S", false, { key, value: bytes, flags: flags as number | undefined }, internalFlags, o) as Effect.Effect<
            void,
            McError
          >,
      ),
    )
  }

  const stats = (server?: string): Effect.Effect<ServerStats | ReadonlyMap<string, ServerStats>, McError> => {
    if (server === undefined) return transport.stats(undefined, config.timeoutMillis)
    if (typeof server !== "string") return Exit.fail(badInput(undefined, `stats takes a server address, got ${render(server)}`))
    return Effect.map(transport.stats(server, config.timeoutMillis), (all) => all.get(server)!)
  }

  const store = storeWith<never>("S", false)
  return {
    status: transport.status,
    stats: stats as McClientService["stats"],
    get,
    getMulti: getMulti as McClientService["getMulti"],
    set: store,
    add: storeWith<NotStored>("E", false),
    replace: storeWith<NotStored>("R", false),
    compareAndSwap: storeWith<CASConflict | CacheMiss | NotStored>("S", true),
    append: concat("A"),
    prepend: concat("P"),
    del,
    inc: arithmetic("I"),
    dec: arithmetic("D"),
    touch,
    purgeNamespace,
    getAs,
    setAs,
  }
}
