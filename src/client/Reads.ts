/**
 * The reads: get, getMulti and getAs, and how a value reply becomes an item (namespace check,
 * then decompression, for the values whose upper flag bits ask for them).
 */
import { Effect, Exit, type Schema } from "effect"
import { type CodecOption, decodeValue } from "../Codec.js"
import { type CacheMiss, ClientError, DecodeError, type McError } from "../Errors.js"
import type { Item } from "../Item.js"
import type { GetMultiOptions, GetOptions } from "../Options.js"
import { constantFlags, type GetFlags, getRequest } from "../protocol/Request.js"
import { Reply } from "../protocol/Reply.js"
import { checkCodecArgs, checkGetOptions } from "./CallOptions.js"
import type { ClientContext } from "./ClientContext.js"
import { runCodec } from "./Compression.js"
import { badInput, notAKey, unreadable } from "./Inputs.js"
import { internalFlagsOf, type ItemImpl, makeItem } from "./Items.js"
import { cacheMiss, unexpected } from "./Replies.js"
import { captureRegister, offerRegistered, type Register, releaseReplies, requestOptions } from "./Transport.js"
import { COMPRESSED, NAMESPACED, readNamespaceHeader, USER_FLAGS_MASK } from "./ValueFormat.js"

/** `getMulti(keys, { partial: true })`: the hits, and the keys that could not be read. */
export interface PartialItems {
  readonly items: ReadonlyMap<string, Item>
  readonly failed: ReadonlyMap<string, McError | DecodeError>
}

const EMPTY = new Uint8Array(0)
// Request effects of plain gets kept for reuse, per client.
const PLAIN_GETS_CACHED = 4096

/** A plain get's request effect, and its register step for the Promise client (see `registered`). */
interface ReusedGet {
  readonly effect: Effect.Effect<Item, CacheMiss | McError | DecodeError>
  readonly register: Register<Item, CacheMiss | McError | DecodeError> | undefined
}

export const makeReads = (ctx: ClientContext) => {
  const { transport, config, keys, b, timeoutOf, ns } = ctx

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

  // Plain gets (no options) of recent keys reuse their request effect: an effect is a description,
  // and each run routes, times, sends and decodes anew; what a reuse skips is building it (the key's
  // hash lookup, the request, the call object and the effect: ~500 B a get). First in, first out.
  const plainGets = new Map<string, ReusedGet>()

  const get = (key: string, options?: GetOptions): Effect.Effect<Item, CacheMiss | McError | DecodeError> => {
    if (options === undefined) {
      const cached = plainGets.get(key)
      if (cached !== undefined) {
        offerRegistered(cached.effect, cached.register)
        return cached.effect
      }
    }
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
    const request = getRequest(wire, getFlags(o))
    const opts = requestOptions(timeoutMillis, true, key)
    if (o !== undefined) return transport.request(key, request, decodeGet(timeoutMillis), opts)
    const built = captureRegister(() => transport.request<Item, CacheMiss | DecodeError>(key, request, decodePlainGet, opts))
    if (plainGets.size >= PLAIN_GETS_CACHED) plainGets.delete(plainGets.keys().next().value!)
    plainGets.set(key, built)
    offerRegistered(built.effect, built.register)
    return built.effect
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
    keyList: ReadonlyArray<string>,
    o?: GetMultiOptions,
  ): Effect.Effect<ReadonlyMap<string, Item> | PartialItems, McError | DecodeError> =>
    Effect.suspend(() => {
      // The deadline counts from here: encoding a large batch's keys takes time too.
      const startedAt = Date.now()
      const timeoutMillis = timeoutOf(o?.timeout)
      const partial = o?.partial === true
      const failed = new Map<string, McError | DecodeError>()
      // The answer doubles as the set of keys seen: each key is entered once, in order, and the
      // ones that turn out not to be hits are taken out (one hash operation per key, not two).
      const found = new Map<string, Item | undefined>()
      const routing: Array<string> = []
      const wires: Array<string> = []
      for (const key of keyList) {
        const size = found.size
        if (found.set(key, undefined).size === size) continue
        const wire = keys.encode(key)
        if (typeof wire !== "string") {
          if (!partial) return Effect.fail(wire)
          found.delete(key)
          failed.set(key, wire)
          continue
        }
        routing.push(key)
        wires.push(wire)
      }
      const fail = (key: string, error: McError | DecodeError) => {
        found.delete(key)
        failed.set(key, error)
      }
      // Once the items are in, every key left in `found` has its item.
      const answer = partial ? { items: found as Map<string, Item>, failed } : (found as Map<string, Item>)
      return Effect.flatMap(
        transport.getMany(routing, wires, getFlags(o), { timeoutMillis, startedAt, broadcast: o?.broadcast === true }),
        ({ outcomes, servers }) => {
          const later: Array<{ readonly reply: Reply; readonly server: string }> = []
          const laterKeys: Array<string> = []
          for (let i = 0; i < outcomes.length; i++) {
            const outcome = outcomes[i]
            const key = routing[i]!
            if (outcome === undefined) {
              found.delete(key)
            } else if (!(outcome instanceof Reply)) {
              if (!partial) return Effect.fail(outcome)
              fail(key, outcome)
            } else if (((outcome.clientFlags ?? 0) & ~USER_FLAGS_MASK) === 0) {
              found.set(key, makeItem(key, outcome, outcome.value!, 0))
            } else {
              later.push({ reply: outcome, server: servers[i]! })
              laterKeys.push(key)
            }
          }
          releaseReplies(outcomes)
          if (later.length === 0) return Effect.succeed(answer)
          // Namespaced or compressed items: one namespace lookup for the batch, then per item.
          const failAll = (error: McError | DecodeError) =>
            Effect.sync(() => {
              for (const key of laterKeys) fail(key, error)
            })
          return ns.versionsFor(later.map((hit) => hit.reply), timeoutMillis).pipe(
            Effect.flatMap((known) =>
              Effect.forEach(later, (hit, j) =>
                finishItem(laterKeys[j]!, hit.reply, hit.server, timeoutMillis, known).pipe(
                  Effect.match({
                    // A namespace purge makes the item a miss; other failures stay failures.
                    onFailure: (error) => {
                      if (error._tag !== "CacheMiss") return error
                      found.delete(laterKeys[j]!)
                      return undefined
                    },
                    onSuccess: (item) => {
                      found.set(laterKeys[j]!, item)
                      return undefined
                    },
                  }),
                  Effect.flatMap((error) => {
                    if (error === undefined) return Effect.void
                    if (!partial) return Effect.fail(error)
                    fail(laterKeys[j]!, error)
                    return Effect.void
                  }),
                ),
              ),
            ),
            (self) => (partial ? Effect.catchAll(self, failAll) : self),
            Effect.as(answer),
          )
        },
      )
    })

  const getAs = <A, I>(
    schema: Schema.Schema<A, I, never>,
    key: string,
    o?: GetOptions & CodecOption,
  ): Effect.Effect<A, CacheMiss | DecodeError | McError> => {
    const checked = checkCodecArgs(schema, o)
    if (checked instanceof ClientError) return Exit.fail(checked)
    return Effect.flatMap(get(key, o), (item) => decodeValue(schema, key, item.value, internalFlagsOf(item), checked.codec))
  }

  return { get, getMulti, getAs }
}
