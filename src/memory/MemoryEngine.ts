/**
 * An in-memory memcached: the meta commands (mg ms md ma mn) with current memcached's semantics
 * (1.6.38, Debian trixie's).
 *
 * The behaviour follows 1.6.38's source (proto_text.c: process_m*_command and _meta_flag_preparse;
 * memcached.c: do_store_item, do_add_delta, realtime; items.c: do_item_get, do_item_link,
 * do_item_bump; util.c: safe_strto*) and is checked against running servers
 * (test/memory/Differential.test.ts, against whichever memcached the tests run). Where the source
 * does something surprising, the engine does it too, and a comment says so.
 *
 * Differences from older servers, all from 1.6.18 (Debian 12's) unless said otherwise:
 * - `ms` in append/prepend mode with `N<ttl>` creates a missing key (autovivify), since 1.6.20;
 *   1.6.18 ignores N and answers NS. The client depends on this: `append`/`prepend` with an
 *   expiration send `MA N<ttl>` only to servers ≥ 1.6.20 (supportsAppendVivify) and emulate it
 *   (append, add on NS, append again) below; the memory layer reports 1.6.38, so it takes the
 *   `N` path.
 * - incr/decr of a stored number of 2^63 or more: 1.6.18's safe_strtoull refuses it when strchr
 *   finds a '-' anywhere up to the next NUL, i.e. also after the number and past the value's "\r\n"
 *   into old slab memory; current servers only look at the text they parsed (memchr up to the end
 *   of the digits), so only a leading '-' refuses it.
 * - Not modelled (the client sends neither, MetaRequest has no field for them): the `E<cas>` flag
 *   (a client-chosen CAS for ms/md/ma/mg N), `md … x` (replace the value by an empty one), and
 *   `ms … s` (the stored size). Current memcached also takes a CAS number at every ms, stored or not;
 *   the engine's CAS numbers are its own (the differential test pairs them, never compares them).
 *
 * Flags are processed in the order `encodeFlags` writes them (b c f h k l q s t u v I, then
 * C D F J M N R T O), because memcached applies some flags in the order they appear on the line:
 * `t` is written before `N`/`T`, so it reports the TTL from before this request's `N`/`T`; `R`
 * compares against the TTL from before `T`; an over-long `O` fails after the earlier flags took effect.
 *
 * Not modelled: memory limits and eviction (the store is unbounded), the LRU maintainer thread, and
 * in-flight references (the engine behaves as if no other connection were reading the item). Both
 * show through: the second fetch of an item in the COLD LRU queues an asynchronous bump whose
 * reference, held until the maintainer runs (up to a second), makes memcached's incr/decr write a
 * new item rather than in place (no padding, no fetched/token/stale/binary-key marks, T lost); and
 * the last-access time moves when the maintainer decides. test/memory/Differential.test.ts compares
 * the engine with a running memcached and documents its tolerances.
 */
import type { ArithmeticFlags, DeleteFlags, GetFlags, MetaRequest, SetFlags, SetMode } from "../protocol/Request.js"
import { opaqueValue, Reply } from "../protocol/Reply.js"

export interface MemoryEngineOptions {
  /** memcached's `-I`: the largest item, header included. Default 1 MiB, like `-I 1m`. */
  readonly maxItemSize?: number
}

/** Seconds in 30 days: larger TTLs are absolute unix times (REALTIME_MAXDELTA). */
const REALTIME_MAXDELTA = 60 * 60 * 24 * 30
/** KEY_MAX_LENGTH, checked against the key as written on the line (base64 text when `b`). */
const KEY_MAX_LENGTH = 250
/** MFLAG_MAX_OPAQUE_LENGTH: the `O` token, letter included. */
const MAX_OPAQUE_TOKEN = 32
/**
 * The item header memcached allocates around key and value on a 64-bit build: sizeof(item) (48)
 * plus the CAS (8). The key takes nkey + 1, the value nbytes + 2 (its "\r\n"), and non-zero client
 * flags 4 more (item_make_header). An item is too large when that total exceeds `-I`.
 */
const ITEM_HEADER = 48 + 8
/** slab_chunk_size_max (slab_page_size / 2): larger items are chunked, and incr/decr refuses them. */
const SLAB_CHUNK_SIZE_MAX = 512 * 1024

const U64 = 1n << 64n
const I64_MIN = -(1n << 63n)
const I64_MAX = (1n << 63n) - 1n
const SIGNED_BIT = 1n << 63n

const E_FORMAT = "bad command line format"
const E_TOKEN = "bad token in command line format"
const E_DECODE = "error decoding key"
const E_FLAG = "invalid or duplicate flag"
const E_OPAQUE = "opaque token too long"
const E_NON_NUMERIC = "cannot increment or decrement non-numeric value"
const E_TOO_LARGE = "object too large for cache"
const E_MODE_LENGTH = "incorrect length for M token"
const E_MS_MODE = "invalid mode for ms M token"
const E_MA_MODE = "invalid mode for ma M token"

interface Item {
  /** the key bytes, for `k` */
  readonly key: Buffer
  /** base64 key (ITEM_KEY_BINARY): `k` returns it encoded, with `b` */
  readonly keyBinary: boolean
  value: Uint8Array
  /** client flags, u32 */
  readonly flags: number
  /** absolute unix seconds; 0 = never */
  exptime: number
  cas: bigint
  /** last access, unix seconds */
  time: number
  /** ITEM_FETCHED: `h` */
  fetched: boolean
  /** ITEM_TOKEN_SENT: a W was handed out; later readers see Z */
  tokenSent: boolean
  /** ITEM_STALE: X, after `md I` or a stale `ms I` */
  stale: boolean
}

// ---------------------------------------------------------------------------------------------
// Number tokens, parsed the way memcached's safe_strto* parse them. Request flags are written with
// String(value), so the engine parses that same text: 1.5, NaN or 1e+21 fail like on the server.
// ---------------------------------------------------------------------------------------------

const INTEGER_TEXT = /^[+-]?[0-9]+$/

/** safe_strtol: strtol into a 64-bit long (ERANGE fails), then stored into an int32_t. */
const strtol32 = (text: string): number | undefined => {
  if (!INTEGER_TEXT.test(text)) return undefined
  const n = BigInt(text)
  if (n < I64_MIN || n > I64_MAX) return undefined
  return Number(BigInt.asIntN(32, n))
}

/**
 * safe_strtoull: strtoull negates "-n" modulo 2^64, and the result is refused only when it looks
 * negative as a signed number and the text has a '-'.
 */
const strtoull = (text: string): bigint | undefined => {
  if (!INTEGER_TEXT.test(text)) return undefined
  const n = BigInt(text)
  const magnitude = n < 0n ? -n : n
  if (magnitude >= U64) return undefined
  const v = n < 0n ? (U64 - magnitude) % U64 : magnitude
  if (v >= SIGNED_BIT && text.includes("-")) return undefined
  return v
}

/** safe_strtoul (64-bit unsigned long), stored into a uint32_t: the client flags. */
const strtoul32 = (text: string): number | undefined => {
  const v = strtoull(text)
  return v === undefined ? undefined : Number(BigInt.asUintN(32, v))
}

const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13)

/**
 * do_add_delta's reading of a stored value: strtoull over the item data, which ends in "\r\n".
 * Leading white space and a sign are accepted, the digits must be followed by white space (or a NUL,
 * or the end, where the "\r\n" is), and values of 2^64 and more fail (ERANGE). So "12 abc" is 12 and
 * "-0" is 0, while "-1" and "12abc" are not numbers; "-9223372036854775808" is not one either
 * (negated, it is 2^63 or more, with a '-'), but "9223372036854775808 -" is.
 */
const storedNumber = (value: Uint8Array): bigint | undefined => {
  const n = value.length
  let i = 0
  while (i < n && isSpace(value[i]!)) i++
  if (i === n) return undefined
  let negative = false
  if (value[i] === 43 /* + */ || value[i] === 45 /* - */) {
    negative = value[i] === 45
    i++
  }
  const start = i
  while (i < n && value[i]! >= 48 && value[i]! <= 57) i++
  if (i === start) return undefined
  if (i < n && !isSpace(value[i]!) && value[i] !== 0) return undefined
  let first = start
  while (first < i - 1 && value[first] === 48) first++
  if (i - first > 20) return undefined
  const magnitude = BigInt(Buffer.from(value.buffer, value.byteOffset + first, i - first).toString("latin1"))
  if (magnitude >= U64) return undefined
  const v = negative ? (U64 - magnitude) % U64 : magnitude
  // safe_strtoull refuses a result of 2^63 or more when memchr finds a '-' in the text strtoull
  // read (up to the end of the digits): only a sign can be there. (1.6.18 used strchr, which also
  // looked after the number, and past the value's "\r\n" into whatever the slab chunk held before,
  // up to a NUL byte: "18446744073709551615 -x" was not a number there.)
  if (v >= SIGNED_BIT && negative) return undefined
  return v
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

const B64_DECODE = (() => {
  const table = new Uint8Array(256).fill(0x80)
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i
  table[61 /* = */] = 0
  return table
})()

/**
 * memcached's base64_decode: characters outside the alphabet are skipped, the rest must come in
 * blocks of four, and decoding stops after the first block with padding. Returns undefined where
 * memcached returns 0 (failure, or nothing decoded).
 */
const base64Decode = (src: Buffer): Buffer | undefined => {
  let count = 0
  for (const c of src) if (B64_DECODE[c] !== 0x80) count++
  if (count === 0 || count % 4 !== 0) return undefined
  const out = Buffer.alloc((count / 4) * 3)
  const block = [0, 0, 0, 0]
  let pos = 0
  let pad = 0
  count = 0
  for (const c of src) {
    const d = B64_DECODE[c]!
    if (d === 0x80) continue
    if (c === 61) pad++
    block[count++] = d
    if (count === 4) {
      out[pos++] = ((block[0]! << 2) | (block[1]! >> 4)) & 0xff
      out[pos++] = ((block[1]! << 4) | (block[2]! >> 2)) & 0xff
      out[pos++] = ((block[2]! << 6) | block[3]!) & 0xff
      count = 0
      if (pad > 0) {
        if (pad > 2) return undefined
        pos -= pad
        break
      }
    }
  }
  return pos === 0 ? undefined : out.subarray(0, pos)
}

/** The `k` return flag: the key bytes, base64 with `b` when the key is binary. */
const setKey = (reply: Reply, key: Buffer, binary: boolean): void => {
  if (binary) {
    reply.key = key.toString("base64")
    reply.base64 = true
  } else {
    // The reply parser reads a returned key as UTF-8; so does the engine.
    reply.key = key.toString("utf8")
  }
}

const clientError = (message: string): Reply => {
  const reply = new Reply("CLIENT_ERROR")
  reply.message = message
  return reply
}

const serverError = (message: string): Reply => {
  const reply = new Reply("SERVER_ERROR")
  reply.message = message
  return reply
}

/** The `O` token is too long for memcached (it fails the request). */
const opaqueTooLong = (opaque: string | undefined): boolean =>
  opaque !== undefined && 1 + Buffer.byteLength(opaque, "utf8") > MAX_OPAQUE_TOKEN

const copy = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes)

const itemSize = (nkey: number, flags: number, nbytes: number): number =>
  ITEM_HEADER + nkey + 1 + (flags === 0 ? 0 : 4) + nbytes + 2

type StoreResult = "STORED" | "EXISTS" | "NOT_FOUND" | "NOT_STORED"
/** do_store_item's commands: the ms modes, CAS, and append/prepend with autovivify (N). */
type StoreCommand = SetMode | "CAS" | "AV" | "PV"

export class MemoryEngine {
  private readonly items = new Map<string, Item>()
  private readonly maxItemSize: number
  /** get_cas_id(): one global counter, bumped on every link, `md I` and incr/decr. */
  private casId = 0n

  constructor(options?: MemoryEngineOptions) {
    this.maxItemSize = options?.maxItemSize ?? 1024 * 1024
  }

  /**
   * Executes one request at `nowMillis` (epoch ms from Effect's Clock). Returns the reply, or
   * undefined when quiet mode (q) suppresses it. mn returns MN.
   */
  execute(request: MetaRequest, nowMillis: number): Reply | undefined {
    // memcached keeps time in whole seconds (current_time, ticked once a second) and an item is
    // gone once exptime <= current_time. The engine uses the same whole seconds, floor(now / 1000),
    // so that it agrees with a server on when an item expires: a T1 set at 10.9 s is gone at 11.0 s,
    // and `t`/`l` count whole seconds. (The server's tick is not aligned with the wall-clock second;
    // floor is the closest deterministic model.)
    const now = Math.floor(nowMillis / 1000)
    switch (request.command) {
      case "mn":
        return new Reply("MN")
      case "mg":
        return this.get(request.key, request.flags, now)
      case "ms":
        return this.set(request.key, request.flags, request.value, now)
      case "md":
        return this.delete(request.key, request.flags, now)
      case "ma":
        return this.arithmetic(request.key, request.flags, now)
    }
  }

  /** number of live items (for tests) */
  size(nowMillis: number): number {
    const now = Math.floor(nowMillis / 1000)
    let n = 0
    for (const [id, item] of this.items) {
      if (isExpired(item, now)) this.items.delete(id)
      else n++
    }
    return n
  }

  flushAll(): void {
    this.items.clear()
  }

  /** Live items and their bytes (memcached's `curr_items`, and `bytes` as item sizes) at `nowMillis`. */
  usage(nowMillis: number): { readonly items: number; readonly bytes: number } {
    const now = Math.floor(nowMillis / 1000)
    let items = 0
    let bytes = 0
    for (const item of this.items.values()) {
      if (isExpired(item, now)) continue
      items++
      bytes += itemSize(item.key.length, item.flags, item.value.length)
    }
    return { items, bytes }
  }

  // -------------------------------------------------------------------------------------------

  private nextCas(): bigint {
    this.casId += 1n
    return this.casId
  }

  /** do_item_get: the live item, expired ones are unlinked on the way. */
  private lookup(id: string, now: number): Item | undefined {
    const item = this.items.get(id)
    if (item === undefined) return undefined
    if (isExpired(item, now)) {
      this.items.delete(id)
      return undefined
    }
    return item
  }

  /** do_item_link: a new item gets a fresh CAS and last-access time, and no fetched/token marks. */
  private link(id: string, item: Omit<Item, "cas" | "time" | "fetched" | "tokenSent" | "stale">, now: number): Item {
    const linked: Item = { ...item, cas: this.nextCas(), time: now, fetched: false, tokenSent: false, stale: false }
    this.items.set(id, linked)
    return linked
  }

  // mg ------------------------------------------------------------------------------------------

  private get(keyText: string, flags: GetFlags, now: number): Reply | undefined {
    if (Buffer.byteLength(keyText, "utf8") > KEY_MAX_LENGTH) return clientError(E_FORMAT)
    // _meta_flag_preparse: every error is noted, the last message wins.
    let error: string | undefined
    const key = decodeKey(keyText, flags.b === true)
    if (key === undefined) error = E_DECODE
    const vivify = flags.N === undefined ? undefined : strtol32(String(flags.N))
    if (flags.N !== undefined && vivify === undefined) error = E_TOKEN
    const recache = flags.R === undefined ? undefined : strtol32(String(flags.R))
    if (flags.R !== undefined && recache === undefined) error = E_TOKEN
    const touch = flags.T === undefined ? undefined : strtol32(String(flags.T))
    if (flags.T !== undefined && touch === undefined) error = E_TOKEN
    if (error !== undefined || key === undefined) return clientError(error ?? E_DECODE)

    const id = key.toString("latin1")
    const update = flags.u !== true
    // N, R, T, l and h take the item locked and delay the LRU bump until after the reply is built,
    // so that h and l show the state from before this access. Otherwise the fetch itself bumps.
    const locked = flags.N !== undefined || flags.R !== undefined || flags.T !== undefined || flags.l === true || flags.h === true
    let item = this.lookup(id, now)
    if (item !== undefined && !locked && update) bump(item, now)

    let created = false
    if (item === undefined && vivify !== undefined) {
      // A 0-byte item with no flags and no expiry; N sets its TTL below. It is not marked binary
      // even when the key came in base64 (item_alloc without ITEM_KEY_BINARY), so `k` returns the
      // raw key bytes for it.
      item = this.link(id, { key, keyBinary: false, value: new Uint8Array(0), flags: 0, exptime: 0 }, now)
      created = true
    }

    if (item === undefined) {
      if (opaqueTooLong(flags.O)) return clientError(E_OPAQUE)
      if (flags.q === true) return undefined
      const miss = new Reply("EN")
      if (flags.k === true) setKey(miss, key, flags.b === true)
      if (flags.O !== undefined) miss.opaque = opaqueValue(flags.O)
      return miss
    }

    const reply = new Reply(flags.v === true ? "VA" : "HD")
    if (flags.v === true) reply.value = copy(item.value)
    if (flags.c === true) reply.cas = item.cas
    if (flags.f === true) reply.clientFlags = item.flags
    if (flags.h === true) reply.hit = item.fetched
    if (flags.k === true) setKey(reply, item.key, item.keyBinary)
    if (flags.l === true) reply.lastAccess = Math.max(0, now - item.time)
    if (flags.s === true) reply.size = item.value.length
    // Written before N and T: the TTL before this request changes it (-1 for a vivified item).
    if (flags.t === true) reply.ttl = ttlOf(item, now)
    let won = false
    if (vivify !== undefined && created) {
      item.exptime = realtime(vivify, now)
      won = true
    }
    if (recache !== undefined && !item.tokenSent && !created && item.exptime !== 0 && item.exptime < realtime(recache, now)) {
      won = true
    }
    if (touch !== undefined) item.exptime = realtime(touch, now)
    // The opaque is checked while writing the flags: what came before stays done, but no win is
    // recorded and the locked bump is skipped.
    if (opaqueTooLong(flags.O)) return clientError(E_OPAQUE)
    if (flags.O !== undefined) reply.opaque = opaqueValue(flags.O)

    // Z when a token went out before; X for a stale item, whose first reader wins. Never W with Z.
    if (item.tokenSent) reply.winSent = true
    if (item.stale) {
      reply.stale = true
      if (!item.tokenSent) won = true
    }
    if (won) {
      reply.won = true
      item.tokenSent = true
    }
    if (locked && update) bump(item, now)
    return reply
  }

  // ms ------------------------------------------------------------------------------------------

  private set(keyText: string, flags: SetFlags, value: Uint8Array, now: number): Reply | undefined {
    // memcached answers this before reading the value block, so a real server then reads the
    // value as a command line; the engine only gives the error.
    if (Buffer.byteLength(keyText, "utf8") > KEY_MAX_LENGTH) return clientError(E_FORMAT)
    // Preparse: the last message wins; a bad F sets no message of its own.
    let error: string | undefined
    let message = E_FORMAT
    const key = decodeKey(keyText, flags.b === true)
    if (key === undefined) error = message = E_DECODE
    const cas = flags.C === undefined ? undefined : strtoull(String(flags.C))
    if (flags.C !== undefined && cas === undefined) error = message = E_TOKEN
    const clientFlags = flags.F === undefined ? 0 : strtoul32(String(flags.F))
    if (clientFlags === undefined) error = message
    // The mode is one character (the type says so; a cast could say otherwise).
    const modeText: string | undefined = flags.M
    if (modeText !== undefined && modeText.length !== 1) error = message = E_MODE_LENGTH
    // N: append and prepend create a missing key with this TTL (memcached ≥ 1.6.20; 1.6.18 ignores N
    // and answers NS). Other modes ignore it.
    const vivify = flags.N === undefined ? undefined : strtol32(String(flags.N))
    if (flags.N !== undefined && vivify === undefined) error = message = E_TOKEN
    const ttl = flags.T === undefined ? undefined : strtol32(String(flags.T))
    if (flags.T !== undefined && ttl === undefined) error = message = E_TOKEN
    if (error !== undefined || key === undefined || clientFlags === undefined) return clientError(message)
    // After a successful preparse: an unknown mode, then (but the mode error wins) the opaque.
    if (modeText !== undefined && !"EAPRS".includes(modeText)) return clientError(E_MS_MODE)
    if (opaqueTooLong(flags.O)) return clientError(E_OPAQUE)

    const id = key.toString("latin1")
    const mode = flags.M ?? "S"
    // With a CAS, set and replace become the CAS command; add ignores the CAS; append and prepend
    // compare it themselves.
    const command: StoreCommand =
      cas !== undefined && (mode === "S" || mode === "R")
        ? "CAS"
        : vivify !== undefined && (mode === "A" || mode === "P")
          ? mode === "A" ? "AV" : "PV"
          : mode

    if (itemSize(key.length, clientFlags, value.length) > this.maxItemSize) {
      // "Avoid stale data persisting in cache because we failed alloc": the old item goes, in
      // every mode.
      this.items.delete(id)
      return serverError(E_TOO_LARGE)
    }

    // NREAD_APPENDVIV/PREPENDVIV allocate the item with N's TTL instead of T's (it only counts when
    // the key is missing: appending to an existing item keeps that item's TTL).
    const exptime = command === "AV" || command === "PV" ? realtime(vivify!, now) : ttl === undefined ? 0 : realtime(ttl, now)
    const [result, stored] = this.store(id, command, {
      key,
      keyBinary: flags.b === true,
      value: copy(value),
      flags: clientFlags,
      exptime,
      cas: cas ?? 0n,
      // I only counts with the CAS command: a CAS older than the item's stores a stale value.
      setStale: flags.I === true && command === "CAS",
    }, now)

    if (result === "STORED" && flags.q === true) return undefined
    const reply = new Reply(result === "STORED" ? "HD" : result === "EXISTS" ? "EX" : result === "NOT_FOUND" ? "NF" : "NS")
    if (flags.O !== undefined) reply.opaque = opaqueValue(flags.O)
    if (flags.k === true) setKey(reply, key, flags.b === true)
    // The CAS is that of the stored item; when nothing was stored memcached still writes c0.
    if (flags.c === true) reply.cas = stored?.cas ?? 0n
    return reply
  }

  /** do_store_item */
  private store(
    id: string,
    command: StoreCommand,
    input: {
      readonly key: Buffer
      readonly keyBinary: boolean
      readonly value: Uint8Array
      readonly flags: number
      readonly exptime: number
      readonly cas: bigint
      readonly setStale: boolean
    },
    now: number,
  ): [StoreResult, Item | undefined] {
    const old = this.lookup(id, now)
    const fresh = { key: input.key, keyBinary: input.keyBinary, value: input.value, flags: input.flags, exptime: input.exptime }
    if (old === undefined) {
      switch (command) {
        case "E":
        case "S":
        // Autovivify stores the request's item as is (its flags, N's TTL, binary key), whatever
        // CAS came with it: there is nothing to compare it to.
        case "AV":
        case "PV":
          return ["STORED", this.link(id, fresh, now)]
        case "CAS":
          return ["NOT_FOUND", undefined]
        default:
          return ["NOT_STORED", undefined]
      }
    }
    const casResult =
      input.cas === 0n ? "none" : input.cas === old.cas ? "match" : input.setStale && input.cas < old.cas ? "stale" : "badval"
    switch (command) {
      case "E":
        // add on an existing item fails, but counts as an access (do_item_update).
        old.time = now
        return ["NOT_STORED", undefined]
      case "CAS":
        if (casResult === "match") return ["STORED", this.link(id, fresh, now)]
        if (casResult === "stale") {
          // Stored, but stale: keeps the old TTL, and the token if one was handed out.
          const item = this.link(id, { ...fresh, exptime: old.exptime }, now)
          item.stale = true
          item.tokenSent = old.tokenSent
          return ["STORED", item]
        }
        // A CAS of 0 ("none") is a mismatch for the CAS command.
        return ["EXISTS", undefined]
      case "A":
      case "P":
      case "AV":
      case "PV": {
        if (casResult !== "none" && casResult !== "match") return ["EXISTS", undefined]
        // The new item keeps the old flags and TTL; it is allocated without ITEM_KEY_BINARY.
        const nbytes = old.value.length + input.value.length
        if (itemSize(input.key.length, old.flags, nbytes) > this.maxItemSize) return ["NOT_STORED", undefined]
        const joined = new Uint8Array(nbytes)
        const [first, second] = command === "A" || command === "AV" ? [old.value, input.value] : [input.value, old.value]
        joined.set(first, 0)
        joined.set(second, first.length)
        const item = this.link(id, { key: old.key, keyBinary: false, value: joined, flags: old.flags, exptime: old.exptime }, now)
        return ["STORED", item]
      }
      case "R":
      case "S":
        return ["STORED", this.link(id, fresh, now)]
    }
  }

  // md ------------------------------------------------------------------------------------------

  private delete(keyText: string, flags: DeleteFlags, now: number): Reply | undefined {
    if (Buffer.byteLength(keyText, "utf8") > KEY_MAX_LENGTH) return clientError(E_FORMAT)
    const key = decodeKey(keyText, flags.b === true)
    const cas = flags.C === undefined ? undefined : strtoull(String(flags.C))
    const ttl = flags.T === undefined ? undefined : strtol32(String(flags.T))
    // md reports every preparse failure with one message.
    if (key === undefined || (flags.C !== undefined && cas === undefined) || (flags.T !== undefined && ttl === undefined)) {
      return clientError(E_FLAG)
    }
    if (opaqueTooLong(flags.O)) return clientError(E_OPAQUE)

    const id = key.toString("latin1")
    const item = this.lookup(id, now)
    let code: "HD" | "NF" | "EX"
    if (item === undefined) code = "NF"
    else if (cas !== undefined && item.cas !== cas) code = "EX"
    else {
      code = "HD"
      if (flags.I === true) {
        // Invalidate: keep the item, mark it stale, new CAS, and let the next reader win again.
        // T only counts here.
        if (ttl !== undefined) item.exptime = realtime(ttl, now)
        item.stale = true
        item.tokenSent = false
        item.cas = this.nextCas()
      } else {
        this.items.delete(id)
      }
    }
    if (code === "HD" && flags.q === true) return undefined
    const reply = new Reply(code)
    if (flags.O !== undefined) reply.opaque = opaqueValue(flags.O)
    if (flags.k === true) setKey(reply, key, flags.b === true)
    return reply
  }

  // ma ------------------------------------------------------------------------------------------

  private arithmetic(keyText: string, flags: ArithmeticFlags, now: number): Reply | undefined {
    if (Buffer.byteLength(keyText, "utf8") > KEY_MAX_LENGTH) return clientError(E_FORMAT)
    const key = decodeKey(keyText, flags.b === true)
    const cas = flags.C === undefined ? 0n : strtoull(String(flags.C))
    const vivify = flags.N === undefined ? undefined : strtol32(String(flags.N))
    const initial = flags.J === undefined ? 0n : strtoull(String(flags.J))
    const delta = flags.D === undefined ? 1n : strtoull(String(flags.D))
    const ttl = flags.T === undefined ? undefined : strtol32(String(flags.T))
    const modeText: string | undefined = flags.M
    if (
      key === undefined || cas === undefined || initial === undefined || delta === undefined ||
      (flags.N !== undefined && vivify === undefined) || (flags.T !== undefined && ttl === undefined) ||
      (modeText !== undefined && modeText.length !== 1)
    ) {
      return clientError(E_FLAG)
    }
    // I and + increment, D and - decrement; other modes fail before the item is looked at.
    if (modeText !== undefined && !"I+D-".includes(modeText)) return clientError(E_MA_MODE)
    const incr = modeText !== "D" && modeText !== "-"
    const id = key.toString("latin1")

    // do_add_delta. `target` is the item the reply is built from. When the result is longer than
    // the stored text, memcached links a new item but builds the reply (and applies T) on the old,
    // unlinked one: T is lost in that case. The engine does the same.
    let target: Item | undefined
    let text = ""
    let created = false
    let code: "HD" | "NF" | "EX" = "HD"
    const item = this.lookup(id, now)
    if (item === undefined) {
      if (vivify !== undefined) {
        // Created with J as is (no delta), no flags, no TTL until N (or T) below.
        text = initial.toString()
        target = this.link(id, { key, keyBinary: false, value: Buffer.from(text, "latin1"), flags: 0, exptime: 0 }, now)
        created = true
      } else {
        code = "NF"
      }
    } else {
      // Empty and chunked values are refused before the CAS is compared; other non-numbers after.
      if (item.value.length === 0 || itemSize(item.key.length, item.flags, item.value.length) > SLAB_CHUNK_SIZE_MAX) {
        return clientError(E_NON_NUMERIC)
      }
      if (cas !== 0n && item.cas !== cas) {
        code = "EX"
      } else {
        const current = storedNumber(item.value)
        if (current === undefined) return clientError(E_NON_NUMERIC)
        // incr wraps at 2^64, decr stops at 0.
        const next = incr ? (current + delta) % U64 : delta > current ? 0n : current - delta
        text = next.toString()
        if (text.length <= item.value.length) {
          // In place: the number, then spaces up to the old length; same item, new CAS, and it
          // counts as an access.
          const padded = new Uint8Array(item.value.length).fill(32)
          padded.set(Buffer.from(text, "latin1"))
          item.value = padded
          item.cas = this.nextCas()
          item.time = now
          target = item
        } else {
          const replacement = this.link(
            id,
            { key: item.key, keyBinary: false, value: Buffer.from(text, "latin1"), flags: item.flags, exptime: item.exptime },
            now,
          )
          target = { ...item, cas: replacement.cas }
        }
      }
    }

    if (target === undefined) {
      if (opaqueTooLong(flags.O)) return clientError(E_OPAQUE)
      const reply = new Reply(code)
      if (flags.O !== undefined) reply.opaque = opaqueValue(flags.O)
      if (flags.k === true) setKey(reply, key, flags.b === true)
      return reply
    }
    const reply = new Reply(flags.v === true ? "VA" : "HD")
    if (flags.c === true) reply.cas = target.cas
    if (flags.k === true) setKey(reply, key, flags.b === true)
    // Written before N and T: the TTL before this request changes it.
    if (flags.t === true) reply.ttl = ttlOf(target, now)
    if (vivify !== undefined && created) target.exptime = realtime(vivify, now)
    if (ttl !== undefined) target.exptime = realtime(ttl, now)
    if (opaqueTooLong(flags.O)) return clientError(E_OPAQUE)
    if (flags.O !== undefined) reply.opaque = opaqueValue(flags.O)
    if (flags.v === true) reply.value = Buffer.from(text, "latin1")
    // q hides a successful incr/decr, but not the reply for an item just created by N.
    if (flags.q === true && !created) return undefined
    return reply
  }
}

const isExpired = (item: Item, now: number): boolean => item.exptime !== 0 && item.exptime <= now

/** `t`: remaining seconds, -1 for no expiry. */
const ttlOf = (item: Item, now: number): number => (item.exptime === 0 ? -1 : item.exptime - now)

/**
 * memcached's realtime() of a TTL token, as absolute unix seconds (0 = never). Up to 30 days it is
 * relative to now; above, an absolute unix time; negative TTLs become 30 days + 1 s
 * (EXPTIME_TO_POSITIVE_TIME), an absolute time in 1970, so the item is already expired.
 */
const realtime = (ttl: number, now: number): number => {
  const t = ttl < 0 ? REALTIME_MAXDELTA + 1 : ttl
  if (t === 0) return 0
  return t > REALTIME_MAXDELTA ? t : now + t
}

/**
 * do_item_bump (segmented LRU, memcached's default): the first fetch only marks the item fetched;
 * later fetches mark it active, which refreshes the last-access time. (On a real server the LRU
 * maintainer decides when an active item becomes refreshable again, so later fetches do not
 * always move `l`; the engine refreshes on every fetch after the first.)
 */
const bump = (item: Item, now: number): void => {
  if (!item.fetched) item.fetched = true
  else item.time = now
}

/** The key bytes memcached stores: the text as sent, or its base64 decoding with `b`. */
const decodeKey = (keyText: string, base64: boolean): Buffer | undefined => {
  const bytes = Buffer.from(keyText, "utf8")
  return base64 ? base64Decode(bytes) : bytes
}
