/**
 * Typed values through Effect `Schema`: `getAs` / `setAs`.
 *
 * The schema's encoded side is serialized by a codec: JSON by default (through
 * `Schema.parseJson`), MessagePack (the optional `msgpackr` package), or any binary codec such as
 * protobuf. The writer's format is recorded in the item's internal flag bits, so a read decodes
 * with the format the value was written in, whatever the reader's default.
 */
import { Effect, ParseResult, Schema } from "effect"
import { DecodeError, EncodeError } from "./Errors.js"
import { formatBits, formatOf, type ValueFormat } from "./client/ValueFormat.js"

/** A binary serializer of a schema's encoded side (e.g. protobuf). */
export interface BinaryCodec {
  readonly encode: (value: unknown) => Uint8Array
  readonly decode: (bytes: Uint8Array) => unknown
}

/** "json" (default), "msgpack" (needs the `msgpackr` package), or a binary codec. */
export type ValueCodec = "json" | "msgpack" | BinaryCodec

export interface CodecOption {
  readonly codec?: ValueCodec | undefined
}

interface MsgPack {
  readonly pack: (value: unknown) => Uint8Array
  readonly unpack: (bytes: Uint8Array) => unknown
}

let msgpack: Promise<MsgPack> | undefined
const loadMsgPack = (): Effect.Effect<MsgPack, string> =>
  Effect.tryPromise({
    try: () => (msgpack ??= import("msgpackr") as Promise<MsgPack>),
    catch: () => "the msgpack codec needs the `msgpackr` package: npm install msgpackr",
  })

const formatOfCodec = (codec: ValueCodec | undefined): ValueFormat =>
  codec === undefined || codec === "json" ? "json" : codec === "msgpack" ? "msgpack" : "binary"

const message = (e: unknown): string =>
  ParseResult.isParseError(e) ? e.message : e instanceof Error ? e.message : String(e)

/** `A` → bytes and the internal flag bits that name the format. */
export const encodeValue = <A, I>(
  schema: Schema.Schema<A, I, never>,
  key: string,
  value: A,
  codec: ValueCodec | undefined,
): Effect.Effect<{ readonly bytes: Uint8Array; readonly internalFlags: number }, EncodeError> => {
  const format = formatOfCodec(codec)
  const fail = (reason: string, cause?: unknown) => new EncodeError({ key, reason, cause })
  const bytes: Effect.Effect<Uint8Array, EncodeError> =
    format === "json"
      ? Schema.encode(Schema.parseJson(schema))(value).pipe(
          Effect.mapError((e) => fail(message(e), e)),
          // JSON.stringify gives undefined (not text) for undefined, functions and symbols.
          Effect.flatMap((text: unknown) =>
            typeof text === "string" ? Effect.succeed(Buffer.from(text, "utf8")) : Effect.fail(fail("the value has no JSON form")),
          ),
        )
      : Effect.flatMap(
          Schema.encode(schema)(value).pipe(Effect.mapError((e) => fail(message(e), e))),
          (encoded) =>
            format === "msgpack"
              ? loadMsgPack().pipe(
                  Effect.mapError((reason) => fail(reason)),
                  Effect.flatMap((m) => Effect.try({ try: () => m.pack(encoded), catch: (e) => fail(message(e), e) })),
                )
              : Effect.try({ try: () => (codec as BinaryCodec).encode(encoded), catch: (e) => fail(message(e), e) }),
        )
  return Effect.map(bytes, (b) => ({ bytes: b, internalFlags: formatBits(format) }))
}

/** Bytes written in any format → `A`, checked by the schema. */
export const decodeValue = <A, I>(
  schema: Schema.Schema<A, I, never>,
  key: string,
  bytes: Uint8Array,
  internalFlags: number,
  codec: ValueCodec | undefined,
): Effect.Effect<A, DecodeError> => {
  const fail = (reason: string, cause?: unknown) => new DecodeError({ key, reason, cause })
  const validate = (encoded: unknown) =>
    Schema.decodeUnknown(schema)(encoded).pipe(Effect.mapError((e) => fail(message(e), e)))
  switch (formatOf(internalFlags)) {
    case "raw":
    case "json":
      // Values written without a codec (plain `set`, other clients) are read as JSON text.
      return Schema.decodeUnknown(Schema.parseJson(schema))(Buffer.from(bytes).toString("utf8")).pipe(
        Effect.mapError((e) => fail(message(e), e)),
      )
    case "msgpack":
      return loadMsgPack().pipe(
        Effect.mapError((reason) => fail(reason)),
        Effect.flatMap((m) => Effect.try({ try: () => m.unpack(bytes), catch: (e) => fail(message(e), e) })),
        Effect.flatMap(validate),
      )
    case "binary":
      if (codec === undefined || typeof codec === "string")
        return Effect.fail(fail("the value was written with a custom binary codec: pass it as the `codec` option"))
      return Effect.try({ try: () => codec.decode(bytes), catch: (e) => fail(message(e), e) }).pipe(Effect.flatMap(validate))
  }
}
