/**
 * The client's operations, written once over a `Transport`: key encoding, namespaces,
 * compression, min-uses, getMulti fan-out and codecs run the same on TCP and in memory.
 */
import { Duration, Effect, Exit, type Schema } from "effect"
import { type CodecOption, decodeValue, encodeValue } from "../Codec.js"
import {
  BadIncrDec,
  ClientError,
  DecodeError,
  type CacheMiss,
  type CASConflict,
  type EncodeError,
  type McError,
  type NotStored,
} from "../Errors.js"
import type { Item, ItemInput } from "../Item.js"
import type {
  CompressionCodec,
  DeleteOptions,
  GetMultiOptions,
  GetOptions,
  IncrDecrOptions,
  SetOptions,
  TimeoutOption,
} from "../Options.js"
import { constantFlags, type GetFlags, type MetaRequest, type SetMode } from "../protocol/Request.js"
import type { Reply } from "../protocol/Reply.js"
import { runCodec } from "./Compression.js"
import type { KeyEncoder } from "./Keys.js"
import { makeNamespaces } from "./Namespaces.js"
import { cacheMiss, casConflict, notStored, unexpected } from "./Replies.js"
import { Hit, type Transport } from "./Transport.js"
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
    expiration?: number,
    options?: IncrDecrOptions,
  ) => Effect.Effect<bigint, CacheMiss | BadIncrDec | McError>
  readonly dec: (
    key: string,
    delta: bigint | number,
    expiration?: number,
    options?: IncrDecrOptions,
  ) => Effect.Effect<bigint, CacheMiss | BadIncrDec | McError>
  readonly touch: (key: string, expiration: number, options?: TimeoutOption) => Effect.Effect<void, CacheMiss | McError>
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

const badInput = (key: string, reason: string) => new ClientError({ key, reason })

const checkExpiration = (key: string, exp: number | undefined): ClientError | undefined =>
  exp === undefined || (Number.isInteger(exp) && exp >= -1 && exp <= 0xffffffff)
    ? undefined
    : badInput(key, `expiration must be an integer number of seconds, got ${exp}`)

export const makeClient = (transport: Transport, config: ClientConfig): McClientService => {
  const { keys } = config
  const b = keys.binary
  const timeoutOf = (t: Duration.DurationInput | undefined): number =>
    t === undefined ? config.timeoutMillis : Duration.toMillis(Duration.decode(t))
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
          ...(o.earlyRecache === undefined ? {} : { R: o.earlyRecache }),
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

  const get = (key: string, o?: GetOptions): Effect.Effect<Item, CacheMiss | McError | DecodeError> => {
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    const timeoutMillis = timeoutOf(o?.timeout)
    const request: MetaRequest = { command: "mg", key: wire, flags: getFlags(o) }
    return transport.request<Item, CacheMiss | DecodeError>(
      key,
      request,
      o === undefined ? decodePlainGet : decodeGet(timeoutMillis),
      { timeoutMillis, idempotent: true, key },
    )
  }

  const getMulti = (keyList: Iterable<string>, o?: GetMultiOptions): Effect.Effect<ReadonlyMap<string, Item> | PartialItems, McError | DecodeError> =>
    Effect.suspend(() => {
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
        transport.getMany(routing, wires, getFlags(o), { timeoutMillis, broadcast: o?.broadcast === true }),
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
    const key = input.key
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    const userFlags = input.flags ?? 0
    if (!Number.isInteger(userFlags) || userFlags < 0 || userFlags > USER_FLAGS_MASK)
      return Exit.fail(badInput(key, `flags must be an integer in 0..65535, got ${userFlags}`))
    const badExp = checkExpiration(key, o?.expiration)
    if (badExp !== undefined) return Exit.fail(badExp)
    if (cas && input.cas === undefined)
      return Exit.fail(badInput(key, "compareAndSwap needs the item's cas (read it with get(key, { cas: true }))"))
    const timeoutMillis = timeoutOf(o?.timeout)
    const exp = o?.expiration ?? 0
    const M = mode === "S" ? undefined : mode
    const T = exp === 0 ? undefined : exp
    const C = cas ? input.cas : undefined
    const idempotent = mode === "S" && !cas
    const value = toBytes(input.value)
    // The common case: nothing but bytes and flags.
    if (o === undefined || (o.namespace === undefined && o.compression === undefined && (o.minUses ?? 1) <= 1)) {
      const F = userFlags | internal
      return sendStore(key, wire, value, M, F === 0 ? undefined : F, T, C, undefined, timeoutMillis, idempotent)
    }
    return Effect.gen(function* () {
      if ((o.minUses ?? 1) > 1) {
        const uses = yield* ns.countUse(key, exp, timeoutMillis)
        if (uses < BigInt(o.minUses!)) return
      }
      let payload = value
      let bits = internal
      if (o.compression !== undefined && payload.length > o.compression) {
        const packed = yield* runCodec(config.compression.compress, payload).pipe(
          Effect.mapError((cause) => badInput(key, `compression failed: ${String(cause)}`)),
        )
        if (packed.length < payload.length) {
          payload = packed
          bits |= COMPRESSED
        }
      }
      if (o.namespace !== undefined) {
        const version = yield* ns.version(o.namespace, timeoutMillis)
        payload = writeNamespaceHeader(o.namespace, version, payload)
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
      const key = input.key
      const wire = keys.encode(key)
      if (typeof wire !== "string") return Exit.fail(wire)
      const badExp = checkExpiration(key, o?.expiration)
      if (badExp !== undefined) return Exit.fail(badExp)
      const timeoutMillis = timeoutOf(o?.timeout)
      const value = toBytes(input.value)
      // Without C, an ms in these modes answers HD or NS (or an infrastructure error).
      const send = (M: SetMode, T: number | undefined, N: number | undefined) =>
        sendStore(key, wire, value, M, undefined, T, undefined, N, timeoutMillis, false) as Effect.Effect<void, NotStored | McError>
      const plain = send(mode, undefined, undefined)
      const exp = o?.expiration
      if (exp === undefined || exp === 0) return plain
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
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    const timeoutMillis = timeoutOf(o?.timeout)
    const flags = o?.invalidate === undefined ? { b } : { b, I: true, T: o.invalidate }
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
      expiration?: number,
      o?: IncrDecrOptions,
    ): Effect.Effect<bigint, CacheMiss | BadIncrDec | McError> => {
      const wire = keys.encode(key)
      if (typeof wire !== "string") return Exit.fail(wire)
      let d: bigint
      let initial: bigint | undefined
      try {
        d = BigInt(delta)
        initial = o?.initialValue === undefined ? undefined : BigInt(o.initialValue)
      } catch {
        return Exit.fail(new BadIncrDec({ key, reason: "delta and initial value must be integers" }))
      }
      if (d < 0n || d > MAX_U64) return Exit.fail(new BadIncrDec({ key, reason: "delta must be in 0..2^64-1" }))
      if (initial !== undefined && (initial < 0n || initial > MAX_U64))
        return Exit.fail(new BadIncrDec({ key, reason: "initial value must be in 0..2^64-1" }))
      const badExp = checkExpiration(key, expiration)
      if (badExp !== undefined) return Exit.fail(badExp)
      const timeoutMillis = timeoutOf(o?.timeout)
      const flags = {
        b,
        v: true,
        D: d,
        ...(mode === "D" ? { M: mode } : {}),
        ...(initial === undefined ? {} : { N: expiration ?? 0, J: initial }),
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

  const touch = (key: string, expiration: number, o?: TimeoutOption): Effect.Effect<void, CacheMiss | McError> => {
    const wire = keys.encode(key)
    if (typeof wire !== "string") return Exit.fail(wire)
    const badExp = checkExpiration(key, expiration)
    if (badExp !== undefined) return Exit.fail(badExp)
    return transport.request<void, CacheMiss>(
      key,
      { command: "mg", key: wire, flags: { b, T: expiration } },
      touched,
      { timeoutMillis: timeoutOf(o?.timeout), idempotent: true, key },
    )
  }

  const store = storeWith<never>("S", false)
  return {
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
    purgeNamespace: (namespace, o) => ns.purge(namespace, timeoutOf(o?.timeout)),
    getAs: (schema, key, o) =>
      Effect.flatMap(get(key, o), (item) => decodeValue(schema, key, item.value, internalFlagsOf(item), o?.codec)),
    setAs: (schema, item, o) =>
      Effect.flatMap(
        encodeValue(schema, item.key, item.value, o?.codec),
        ({ bytes, internalFlags }) =>
          storeAny("S", false, { key: item.key, value: bytes, flags: item.flags }, internalFlags, o) as Effect.Effect<
            void,
            McError
          >,
      ),
  }
}
