/**
 * Meta protocol requests as data, and their encoding to wire bytes.
 *
 * Requests are plain objects so that the TCP transport encodes them and the in-memory engine
 * interprets them: both sides of the `Transport` seam share one vocabulary. Flags are written in a
 * fixed order, which makes the bytes on the wire predictable (tests pin them).
 *
 * The flag sets are those memcached 1.6.18 accepts (doc/protocol.txt at that tag), plus `N` on
 * append/prepend, which needs 1.6.20 (the client gates it on the server's version).
 */

import { type ReplyCode, replyBit } from "./Reply.js"

/** Flags of `mg`. Return flags: b c f h k l s t v; with tokens: N R T O. */
export interface GetFlags {
  readonly b?: boolean
  readonly c?: boolean
  readonly f?: boolean
  readonly h?: boolean
  readonly k?: boolean
  readonly l?: boolean
  readonly q?: boolean
  readonly s?: boolean
  readonly t?: boolean
  readonly u?: boolean
  readonly v?: boolean
  /** vivify on miss with this TTL */
  readonly N?: number
  /** win the recache token when the remaining TTL is below this */
  readonly R?: number
  /** touch: set the remaining TTL */
  readonly T?: number
  readonly O?: string
}

/** `ms` modes: E add, A append, P prepend, R replace, S set. */
export type SetMode = "E" | "A" | "P" | "R" | "S"

/** Token flags may be `undefined`: not written (so one object literal serves every store). */
export interface SetFlags {
  readonly b?: boolean
  readonly c?: boolean
  readonly k?: boolean
  readonly q?: boolean
  /** invalidate: with C, a CAS older than the item's stores the value as stale */
  readonly I?: boolean
  readonly C?: bigint | undefined
  readonly F?: number | undefined
  readonly T?: number | undefined
  readonly M?: SetMode | undefined
  /** autovivify on miss for append/prepend (memcached ≥ 1.6.20) */
  readonly N?: number | undefined
  readonly O?: string | undefined
}

export interface DeleteFlags {
  readonly b?: boolean
  readonly k?: boolean
  readonly q?: boolean
  /** mark stale instead of removing */
  readonly I?: boolean
  readonly C?: bigint
  /** with I: TTL of the stale item */
  readonly T?: number
  readonly O?: string
}

/** `ma` modes: I incr, D decr. */
export type ArithmeticMode = "I" | "D"

export interface ArithmeticFlags {
  readonly b?: boolean
  readonly c?: boolean
  readonly k?: boolean
  readonly q?: boolean
  readonly t?: boolean
  readonly v?: boolean
  readonly C?: bigint
  /** create on miss with this TTL */
  readonly N?: number
  /** initial value when created */
  readonly J?: bigint
  /** delta, default 1 */
  readonly D?: bigint
  /** update TTL on success */
  readonly T?: number
  readonly M?: ArithmeticMode
  readonly O?: string
}

export type MetaRequest =
  | { readonly command: "mg"; readonly key: string; readonly flags: GetFlags }
  | { readonly command: "ms"; readonly key: string; readonly flags: SetFlags; readonly value: Uint8Array }
  | { readonly command: "md"; readonly key: string; readonly flags: DeleteFlags }
  | { readonly command: "ma"; readonly key: string; readonly flags: ArithmeticFlags }
  | { readonly command: "mn" }

// The client builds its requests (and their line parts) with constructors, not object literals.
// They live for a round trip, and V8 may pretenure an object literal's allocation site (allocate
// its objects in the old generation) once some of them outlive a young collection; from then on
// every request costs old-generation memory until a full collection. Measured on set c=50: 267 B
// per set promoted with literals, 68 B with constructors.
class Get {
  readonly command = "mg"
  constructor(
    readonly key: string,
    readonly flags: GetFlags,
  ) {}
}
class Store {
  readonly command = "ms"
  constructor(
    readonly key: string,
    readonly flags: SetFlags,
    readonly value: Uint8Array,
  ) {}
}
class Delete {
  readonly command = "md"
  constructor(
    readonly key: string,
    readonly flags: DeleteFlags,
  ) {}
}
class Arithmetic {
  readonly command = "ma"
  constructor(
    readonly key: string,
    readonly flags: ArithmeticFlags,
  ) {}
}

export const getRequest = (key: string, flags: GetFlags): MetaRequest => new Get(key, flags)
export const storeRequest = (key: string, flags: SetFlags, value: Uint8Array): MetaRequest => new Store(key, flags, value)
export const deleteRequest = (key: string, flags: DeleteFlags): MetaRequest => new Delete(key, flags)
export const arithmeticRequest = (key: string, flags: ArithmeticFlags): MetaRequest => new Arithmetic(key, flags)

/** The token flags of a store (`undefined`: not written), built by a constructor (see above). */
export class StoreFlags implements SetFlags {
  constructor(
    readonly b: boolean,
    readonly C: bigint | undefined,
    readonly F: number | undefined,
    readonly M: SetMode | undefined,
    readonly N: number | undefined,
    readonly T: number | undefined,
  ) {}
}


const bits = (...codes: ReadonlyArray<ReplyCode>): number => codes.reduce((set, c) => set | replyBit[c], 0)
const GET_VALUE = bits("VA", "EN")
const GET_NO_VALUE = bits("HD", "EN")
const STORE = bits("HD", "NS", "EX", "NF")
const DELETE = bits("HD", "NF", "EX")
const ARITHMETIC_VALUE = bits("VA", "NF", "NS", "EX")
const ARITHMETIC_NO_VALUE = bits("HD", "NF", "NS", "EX")
const NO_OP = bits("MN")

/**
 * The reply codes that can answer a (non-quiet) request, as a set of `replyBit`s. Error replies
 * (`CLIENT_ERROR`, `SERVER_ERROR`) can answer any request and are not in the set.
 */
export const acceptedReplies = (req: MetaRequest): number => {
  switch (req.command) {
    case "mg":
      return req.flags.v === true ? GET_VALUE : GET_NO_VALUE
    case "ms":
      return STORE
    case "md":
      return DELETE
    case "ma":
      return req.flags.v === true ? ARITHMETIC_VALUE : ARITHMETIC_NO_VALUE
    case "mn":
      return NO_OP
  }
}

/** Every flag any command takes; a command's flags are a subset. */
type AllFlags = GetFlags & SetFlags & DeleteFlags & ArithmeticFlags

// Return flags first, then flags with tokens, always in this order. Written out flag by flag:
// a loop over flag names costs a dynamic property lookup each (measured: 5% of a set).
const encodeFlags = (f: AllFlags): string => {
  let out = ""
  if (f.b === true) out += " b"
  if (f.c === true) out += " c"
  if (f.f === true) out += " f"
  if (f.h === true) out += " h"
  if (f.k === true) out += " k"
  if (f.l === true) out += " l"
  if (f.q === true) out += " q"
  if (f.s === true) out += " s"
  if (f.t === true) out += " t"
  if (f.u === true) out += " u"
  if (f.v === true) out += " v"
  if (f.I === true) out += " I"
  if (f.C !== undefined) out += " C" + f.C
  if (f.D !== undefined) out += " D" + f.D
  if (f.F !== undefined) out += " F" + f.F
  if (f.J !== undefined) out += " J" + f.J
  if (f.M !== undefined) out += " M" + f.M
  if (f.N !== undefined) out += " N" + f.N
  if (f.R !== undefined) out += " R" + f.R
  if (f.T !== undefined) out += " T" + f.T
  if (f.O !== undefined) out += " O" + f.O
  return out
}

// Flag suffixes of flag objects that are reused for many requests (see `constantFlags`).
const suffixes = new WeakMap<object, string>()

/**
 * Marks a flags object as reused for many requests, so its encoding is computed once. The object
 * must not change afterwards.
 */
export const constantFlags = <F extends object>(flags: F): F => {
  suffixes.set(flags, encodeFlags(flags as AllFlags))
  return flags
}

/** The flags of a request line as written after the key (` b f v`), encoded once for constant flags. */
export const suffixOf = (flags: object): string => suffixes.get(flags) ?? encodeFlags(flags as AllFlags)

/**
 * A request line in the parts a connection writes without joining them: `head` (the command and
 * a space), the key, ` <size>` for `ms`, and `tail` (the flags). The connection appends its opaque
 * token (` O<n>`) and `\r\n`; for `ms`, the value block follows.
 */
export interface LineParts {
  readonly head: string
  readonly key: string
  /** the value's size (`ms`) */
  readonly size: number | undefined
  readonly tail: string
  /**
   * The line up to its opaque token (`head`, key, size, `tail`, then ` O`) as bytes, for a line
   * sent again and again (a reused request effect): copied in one step, not character by character.
   */
  readonly bytes: Uint8Array | undefined
}

const HEADS = { mg: "mg ", ms: "ms ", md: "md ", ma: "ma " } as const

class Line implements LineParts {
  constructor(
    readonly head: string,
    readonly key: string,
    readonly size: number | undefined,
    readonly tail: string,
    readonly bytes: Uint8Array | undefined,
  ) {}
}

export const lineParts = (req: MetaRequest): LineParts => {
  switch (req.command) {
    case "mn":
      return new Line("mn", "", undefined, "", undefined)
    case "ms":
      return new Line(HEADS.ms, req.key, req.value.byteLength, suffixOf(req.flags), undefined)
    default:
      return new Line(HEADS[req.command], req.key, undefined, suffixOf(req.flags), undefined)
  }
}

/** The same parts with their bytes (see `LineParts.bytes`). */
export const withBytes = (line: LineParts): LineParts =>
  new Line(line.head, line.key, line.size, line.tail, Buffer.from(encodeParts(line) + " O", "utf8"))

const encodeParts = (line: LineParts): string => line.head + line.key + (line.size === undefined ? "" : " " + line.size) + line.tail

/** The request line without its end (see `lineParts`). */
export const encodeLine = (req: MetaRequest): string => encodeParts(lineParts(req))

/** The request line, `\r\n` included, without an opaque token. */
export const encodeHeader = (req: MetaRequest): string => encodeLine(req) + "\r\n"

const CRLF = Buffer.from("\r\n")

/**
 * The whole request as bytes (used by tests; the connection writes the parts).
 * @internal
 */
export const encode = (req: MetaRequest): Buffer => {
  const header = Buffer.from(encodeHeader(req), "utf8")
  return req.command === "ms" ? Buffer.concat([header, req.value, CRLF]) : header
}
