/**
 * The servers of one client: routes a key to the first healthy server `pickServer` lists for it.
 */
import { Connection } from "../connection/Connection.js"
import { type ConnectionError, NoServers, type UnsupportedServerVersion } from "../Errors.js"
import { ServerPool, type ServerPoolOptions } from "./ServerPool.js"

export class Cluster {
  private readonly pools = new Map<string, ServerPool>()

  constructor(
    servers: ReadonlyArray<string>,
    readonly pickServer: (key: string) => ReadonlyArray<string>,
    private readonly options: ServerPoolOptions,
  ) {
    for (const s of servers) this.pool(s)
  }

  /** The pool of a server; a custom `pickServer` may name servers outside the list. */
  pool(server: string): ServerPool {
    let p = this.pools.get(server)
    if (p === undefined) {
      p = new ServerPool(server, this.options)
      this.pools.set(server, p)
    }
    return p
  }

  /**
   * The connection for a key: the first server in `pickServer(key)` that is not marked down.
   * When all are down, the primary's error (fail fast, no waiting for a timeout).
   */
  route(key: string, now: number): Connection | ConnectionError | UnsupportedServerVersion | NoServers {
    const servers = this.pickServer(key)
    if (servers.length === 0) return new NoServers({ reason: "pickServer returned no server", key })
    let firstError: ConnectionError | UnsupportedServerVersion | undefined
    for (const server of servers) {
      const picked = this.pool(server).pick(now)
      if (picked instanceof Connection) return picked
      firstError ??= picked
    }
    return firstError!
  }

  /** The server a key routes to now (first healthy), for batching keys per server. */
  serverFor(key: string): string | NoServers {
    const servers = this.pickServer(key)
    if (servers.length === 0) return new NoServers({ reason: "pickServer returned no server", key })
    for (const server of servers) {
      const p = this.pool(server)
      if (p.downError === undefined && p.unsupported === undefined) return server
    }
    return servers[0]!
  }

  close(): void {
    for (const p of this.pools.values()) p.close()
  }
}
