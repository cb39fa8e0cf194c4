/** The items the client reads, built from a meta reply. */
import type { Item } from "../Item.js"
import type { Reply } from "../protocol/Reply.js"
import { USER_FLAGS_MASK } from "./ValueFormat.js"

export class ItemImpl implements Item {
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

export const makeItem = (key: string, reply: Reply, value: Uint8Array, ratio: number): ItemImpl => {
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
export const internalFlagsOf = (item: Item): number => internalFlags.get(item) ?? 0
