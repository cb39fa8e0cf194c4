/**
 * The servers of one client: routes a key to the first healthy server `pickServer` lists for it,
 * and keeps failover consistent (see Failover.ts): writes that fail over are logged, and a server
 * that comes back is repaired before it takes traffic.
 */
import { Effect } from "effect"
import { Connection } from "../connection/Connection.js"
import { requestOn } from "../connection/ReplySlot.js"
import type { SlotFailure } from "../connection/Slot.js"
import { type AuthenticationError, type ConnectionError, NoServers, type UnsupportedServerVersion } from "../Errors.js"
import { deleteRequest, type MetaRequest } from "../protocol/Request.js"
import { FailoverLog, type FailoverWrite } from "./Failover.js"
import { type HealthEvent, ServerPool, type ServerPoolOptions } from "./ServerPool.js"

export interface ClusterOptions extends Omit<ServerPoolOptions, "repair" | "needsRepair"> {
  /** keys remembered for repair after failover, at most */
  readonly maxFailoverKeys: number
  /** the failover log is full: the keys past the bound are not repaired */
  readonly onFailoverLogFull: (primary: string) => void
}

// Repairs run this many deletes at a time on one connection.
const REPAIR_CONCURRENCY = 256

const repairRequest = (w: FailoverWrite): MetaRequest => deleteRequest(w.wire, { b: w.binary })

export class Cluster {
  private readonly pools = new Map<string, ServerPool>()
  private readonly failoverLog: FailoverLog
  private readonly poolOptions: ServerPoolOptions
  // Keys repaired on a primary, to delete on their failover servers once it is back up.
  private readonly repaired = new Map<string, Array<FailoverWrite>>()
  /**
   * Set by `route`: the primary the key failed over from, or undefined when the primary was
   * chosen. Read it right after `route`.
   */
  failedOverFrom: string | undefined = undefined
  // The pool `pool` returned last (`setServers` forgets it).
  private lastServer: string | undefined = undefined
  private lastPool: ServerPool | undefined = undefined

  constructor(
    servers: ReadonlyArray<string>,
    /** replaced by `setServers` (discovery) */
    public pickServer: (key: string) => ReadonlyArray<string>,
    private readonly options: ClusterOptions,
  ) {
    this.failoverLog = new FailoverLog(options.maxFailoverKeys, options.onFailoverLogFull)
    this.poolOptions = {
      ...options,
      repair: (server, conn) => this.repair(server, conn),
      needsRepair: (server) => this.failoverLog.has(server),
      onHealth: (event) => this.onHealth(event),
    }
    for (const s of servers) this.pool(s)
  }

  /** The pool of a server; a custom `pickServer` may name servers outside the list. */
  pool(server: string): ServerPool {
    // Consecutive requests mostly go to the same server (always, with one).
    if (server === this.lastServer) return this.lastPool!
    let p = this.pools.get(server)
    if (p === undefined) {
      p = new ServerPool(server, this.poolOptions)
      this.pools.set(server, p)
    }
    this.lastServer = server
    this.lastPool = p
    return p
  }

  /** Every server's pool (the listed servers, and any other a custom `pickServer` named). */
  get allPools(): Iterable<ServerPool> {
    return this.pools.values()
  }

  /**
   * The connection for a key: the first server in `pickServer(key)` that is not marked down.
   * When all are down, the primary's error (fail fast, no waiting for a timeout).
   */
  route(key: string, now: number): Connection | ConnectionError | UnsupportedServerVersion | AuthenticationError | NoServers {
    this.failedOverFrom = undefined
    const servers = this.pickServer(key)
    if (servers.length === 0) return new NoServers({ reason: "pickServer returned no server", key })
    let firstError: ConnectionError | UnsupportedServerVersion | AuthenticationError | undefined
    for (let i = 0; i < servers.length; i++) {
      const picked = this.pool(servers[i]!).pick(now)
      if (picked instanceof Connection) {
        if (i > 0) this.failedOverFrom = servers[0]
        return picked
      }
      firstError ??= picked
    }
    return firstError!
  }

  /** The server a key routes to now (first healthy), for batching keys per server. */
  serverFor(key: string): string | NoServers {
    return this.firstHealthy(this.pickServer(key), key)
  }

  /** The first server of `servers` (what `pickServer` gave for `key`) that is not marked down. */
  firstHealthy(servers: ReadonlyArray<string>, key: string): string | NoServers {
    if (servers.length === 0) return new NoServers({ reason: "pickServer returned no server", key })
    for (const server of servers) {
      const p = this.pool(server)
      if (p.downError === undefined && p.unsupported === undefined) return server
    }
    return servers[0]!
  }


  /**
   * The server list changed (discovery): keys route by `pickServer` from now on, and the pools of
   * servers no longer listed leave; their connections finish what is in flight, then close.
   */
  setServers(servers: ReadonlyArray<string>, pickServer: (key: string) => ReadonlyArray<string>): void {
    this.pickServer = pickServer
    this.lastServer = undefined
    this.lastPool = undefined
    const listed = new Set(servers)
    for (const [server, pool] of Array.from(this.pools)) {
      if (listed.has(server)) continue
      this.pools.delete(server)
      pool.retire()
    }
    for (const s of servers) this.pool(s)
  }

  /** A change written to `server` for a key whose primary is down. */
  logFailoverWrite(primary: string, server: string, wire: string, binary: boolean): void {
    this.failoverLog.record(primary, server, wire, binary)
  }

  /** The client closed: requests fail, and nothing is retried. */
  closed = false

  close(): void {
    this.closed = true
    for (const p of this.pools.values()) p.close()
  }

  /** Deletes the logged keys on the returning primary, through the probe's connection. */
  private repair(server: string, conn: Connection): Effect.Effect<void, SlotFailure> {
    const writes = this.failoverLog.take(server)
    const timeoutMillis = this.options.dialTimeoutMillis + this.options.stallTimeoutMillis
    return Effect.forEach(writes, (w) => requestOn(conn, repairRequest(w), timeoutMillis), {
      concurrency: REPAIR_CONCURRENCY,
      discard: true,
    }).pipe(
      Effect.tapError(() => Effect.sync(() => this.failoverLog.restore(server, writes))),
      Effect.tap(() =>
        Effect.sync(() => {
          let done = this.repaired.get(server)
          if (done === undefined) this.repaired.set(server, (done = []))
          for (const w of writes) done.push(w)
        }),
      ),
    )
  }

  private onHealth(event: HealthEvent): void {
    this.options.onHealth(event)
    if (event._tag !== "ServerUp") return
    const lost = this.failoverLog.takeLost(event.server)
    const writes = this.repaired.get(event.server)
    this.repaired.delete(event.server)
    if (writes === undefined && lost === 0) return
    this.options.fork(
      Effect.gen(this, function* () {
        if (lost > 0) {
          yield* Effect.logWarning(
            `memcache: ${lost} keys written during the failover of ${event.server} were not logged for repair; their copies on failover servers expire by the failover TTL`,
          )
        }
        if (writes !== undefined) yield* this.cleanFailoverServers(writes)
      }),
    )
  }

  /** Deletes the repaired keys on the failover servers they were written to (best effort). */
  private cleanFailoverServers(writes: ReadonlyArray<FailoverWrite>): Effect.Effect<void> {
    const timeoutMillis = this.options.dialTimeoutMillis + this.options.stallTimeoutMillis
    const deletes: Array<Effect.Effect<void>> = []
    for (const w of writes) {
      for (const server of w.servers) {
        deletes.push(
          Effect.suspend(() => {
            const conn = this.pool(server).pick(Date.now())
            return conn instanceof Connection ? requestOn(conn, repairRequest(w), timeoutMillis) : Effect.fail(conn)
          }).pipe(Effect.ignore),
        )
      }
    }
    return Effect.all(deletes, { concurrency: REPAIR_CONCURRENCY, discard: true })
  }
}
