/**
 * Failover consistency (the "gutter" rules of Facebook's memcache paper).
 *
 * A write that fails over gets its TTL capped (`capTtl`), so that what is written on a server that
 * does not own the key soon disappears.
 *
 * The keys this client wrote or deleted on a failover server while their primary was down.
 *
 * When the primary comes back, those keys are deleted on it before it takes traffic (it may hold
 * values from before the outage), and on the failover servers afterwards (a later outage must not
 * serve what was written during this one). The log is bounded: past `maxKeys`, further keys are
 * counted, not remembered, and `onFull` reports it once per outage of that primary. Their copies
 * then rely on the failover TTL cap alone.
 */

import type { MetaRequest } from "../protocol/Request.js"

// memcached reads TTLs above 30 days as absolute unix times.
const REALTIME_MAXDELTA = 60 * 60 * 24 * 30

const capSeconds = (ttl: number | undefined, cap: number, nowMillis: number): number => {
  if (ttl === undefined || ttl === 0) return cap
  if (ttl < 0) return ttl
  const remaining = ttl > REALTIME_MAXDELTA ? ttl - Math.floor(nowMillis / 1000) : ttl
  return remaining > cap ? cap : ttl
}

/** `T` (set when `setT`, else capped only when present) and `N`, capped. */
const capFlags = <F extends { readonly T?: number | undefined; readonly N?: number | undefined }>(
  flags: F,
  setT: boolean,
  cap: number,
  nowMillis: number,
): F => ({
  ...flags,
  ...(setT || flags.T !== undefined ? { T: capSeconds(flags.T, cap, nowMillis) } : {}),
  ...(flags.N === undefined ? {} : { N: capSeconds(flags.N, cap, nowMillis) }),
})

/**
 * The request as sent to a failover server: every TTL it sets is at most `cap` seconds. Stores
 * and increments always set one (an increment refreshes the counter's TTL to the cap); touches
 * and vivifying reads are capped; other reads are unchanged.
 */
export const capTtl = (req: MetaRequest, cap: number, nowMillis: number): MetaRequest => {
  switch (req.command) {
    case "ms":
      return { ...req, flags: capFlags(req.flags, true, cap, nowMillis) }
    case "ma":
      return { ...req, flags: capFlags(req.flags, true, cap, nowMillis) }
    case "md":
      return req.flags.I === true ? { ...req, flags: capFlags(req.flags, true, cap, nowMillis) } : req
    case "mg":
      return { ...req, flags: capFlags(req.flags, false, cap, nowMillis) }
    case "mn":
      return req
  }
}

/** Requests that change what is stored: on a failover server, they are logged for repair. */
export const changesItem = (req: MetaRequest): boolean =>
  req.command === "ms" || req.command === "md" || req.command === "ma" || (req.command === "mg" && req.flags.N !== undefined)

export interface FailoverWrite {
  /** the key as sent */
  readonly wire: string
  /** the key is base64 (`b`) */
  readonly binary: boolean
  /** the failover servers it was written to */
  readonly servers: Set<string>
}

export class FailoverLog {
  private readonly byPrimary = new Map<string, Map<string, FailoverWrite>>()
  private size = 0
  private readonly lost = new Map<string, number>()

  constructor(
    private readonly maxKeys: number,
    private readonly onFull: (primary: string) => void,
  ) {}

  record(primary: string, server: string, wire: string, binary: boolean): void {
    let writes = this.byPrimary.get(primary)
    if (writes === undefined) this.byPrimary.set(primary, (writes = new Map()))
    const known = writes.get(wire)
    if (known !== undefined) {
      known.servers.add(server)
      return
    }
    if (this.size >= this.maxKeys) {
      const lost = this.lost.get(primary) ?? 0
      if (lost === 0) this.onFull(primary)
      this.lost.set(primary, lost + 1)
      return
    }
    writes.set(wire, { wire, binary, servers: new Set([server]) })
    this.size++
  }

  /** Whether keys of this primary are waiting to be repaired. */
  has(primary: string): boolean {
    return (this.byPrimary.get(primary)?.size ?? 0) > 0
  }

  /** The keys logged for this primary, forgotten by the log. */
  take(primary: string): ReadonlyArray<FailoverWrite> {
    const writes = this.byPrimary.get(primary)
    if (writes === undefined) return []
    this.byPrimary.delete(primary)
    this.size -= writes.size
    return Array.from(writes.values())
  }

  /** Puts back keys whose repair failed. */
  restore(primary: string, writes: ReadonlyArray<FailoverWrite>): void {
    for (const w of writes) for (const s of w.servers) this.record(primary, s, w.wire, w.binary)
  }

  /** Keys of this primary that did not fit in the log since its last recovery; resets the count. */
  takeLost(primary: string): number {
    const lost = this.lost.get(primary) ?? 0
    this.lost.delete(primary)
    return lost
  }
}
