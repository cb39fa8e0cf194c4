/** Items as the client returns them and takes them. */

export interface Item {
  /** the caller's key, never the encoded one */
  readonly key: string
  readonly value: Uint8Array
  /** the user's 16-bit flags */
  readonly flags: number
  /** present when requested: get(k, { cas: true }) */
  readonly cas: bigint | undefined
  /** whether the item was fetched before this get: { hit: true } */
  readonly hit: boolean | undefined
  /** seconds since the last access before this get: { lastAccess: true } */
  readonly lastAccess: number | undefined
  /** remaining seconds, -1 = no expiry: { ttl: true } */
  readonly ttl: number | undefined
  /** served stale (X): invalidated, or stored with an outdated CAS */
  readonly stale: boolean
  /** this caller won the recache token (W): it should refresh the value */
  readonly won: boolean
  /** another caller already holds the recache token (Z) */
  readonly winSent: boolean
  /** > 1 when the value was stored compressed, else 0 */
  readonly compressionRatio: number
}

export interface ItemInput {
  readonly key: string
  readonly value: Uint8Array | string
  /** 16-bit user flags */
  readonly flags?: number | undefined
  /** the CAS token for compareAndSwap */
  readonly cas?: bigint | undefined
}

/** An item's value as UTF-8 text. */
export const valueText = (item: Pick<Item, "value">): string =>
  Buffer.from(item.value.buffer, item.value.byteOffset, item.value.byteLength).toString("utf8")
