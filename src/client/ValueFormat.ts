/**
 * What the client stores besides the user's bytes.
 *
 * memcached keeps 32 bits of client flags per item. The user's flags take the lower 16; the upper
 * 16 say how the value was written, so any reader decodes it whatever the writer chose:
 *
 *   bit 16      the payload is compressed
 *   bit 17      the value starts with a namespace header
 *   bits 18-19  the payload's codec: 0 raw bytes, 1 JSON, 2 MessagePack, 3 a custom binary codec
 *
 * A value with none of these bits is exactly the user's bytes, readable by any memcached client.
 *
 * Namespace header: u16 BE length of the namespace (UTF-8), the namespace, u64 BE version.
 */

export const USER_FLAGS_MASK = 0xffff
export const COMPRESSED = 1 << 16
export const NAMESPACED = 1 << 17
export const FORMAT_SHIFT = 18
export const FORMAT_MASK = 3 << FORMAT_SHIFT

export type ValueFormat = "raw" | "json" | "msgpack" | "binary"
const FORMATS: ReadonlyArray<ValueFormat> = ["raw", "json", "msgpack", "binary"]

export const formatBits = (format: ValueFormat): number => FORMATS.indexOf(format) << FORMAT_SHIFT
export const formatOf = (clientFlags: number): ValueFormat => FORMATS[(clientFlags & FORMAT_MASK) >>> FORMAT_SHIFT]!

export interface NamespaceHeader {
  readonly namespace: string
  readonly version: bigint
  /** offset of the payload after the header */
  readonly payloadOffset: number
}

export const writeNamespaceHeader = (namespace: string, version: bigint, payload: Uint8Array): Uint8Array => {
  const ns = Buffer.from(namespace, "utf8")
  const out = Buffer.allocUnsafe(2 + ns.length + 8 + payload.length)
  out.writeUInt16BE(ns.length, 0)
  ns.copy(out, 2)
  out.writeBigUInt64BE(version, 2 + ns.length)
  out.set(payload, 2 + ns.length + 8)
  return out
}

export const readNamespaceHeader = (value: Uint8Array): NamespaceHeader | undefined => {
  if (value.length < 10) return undefined
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  const len = buf.readUInt16BE(0)
  if (value.length < 2 + len + 8) return undefined
  return {
    namespace: buf.toString("utf8", 2, 2 + len),
    version: buf.readBigUInt64BE(2 + len),
    payloadOffset: 2 + len + 8,
  }
}
