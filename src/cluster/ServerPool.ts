/**
 * The connections to one server, and that server's health.
 *
 * Requests pick a held connection synchronously (no per-operation checkout). A server whose dial
 * fails, or whose connection stalls, is marked down: requests skip it at once, and a background
 * probe reconnects on a backoff `Schedule`, marking it up again on success.
 */
import { Effect, type Schedule } from "effect"
import { Connection } from "../connection/Connection.js"
import type { SlotFailure } from "../connection/Slot.js"
import type { ServerVersion } from "../connection/Version.js"
import { ConnectionError, UnsupportedServerVersion } from "../Errors.js"

export interface ServerPoolOptions {
  readonly dialTimeoutMillis: number
  readonly timeoutMillis: number
  readonly connMaxLifetimeMillis: number
  readonly maxConnections: number
  /** delays between probes of a server marked down */
  readonly backoff: Schedule.Schedule<unknown, unknown>
  /** runs a background fiber in the client's scope */
  readonly fork: (effect: Effect.Effect<void>) => void
  readonly onHealth: (event: HealthEvent) => void
}

export type HealthEvent =
  | { readonly _tag: "ServerDown"; readonly server: string; readonly error: SlotFailure; readonly reason: string }
  | { readonly _tag: "ServerUp"; readonly server: string }

const describe = (error: SlotFailure): string => {
  switch (error._tag) {
    case "Timeout":
      return `no reply within ${error.timeoutMillis} ms`
    case "UnsupportedServerVersion":
      return `memcached ${error.version}`
    default:
      return error.reason
  }
}

// A connection with this many requests in flight makes the pool open another one (up to the max).
const GROW_AT_IN_FLIGHT = 256

export class ServerPool {
  version: ServerVersion | undefined = undefined
  /** set while the server is marked down: the error requests fail with */
  downError: ConnectionError | undefined = undefined
  unsupported: UnsupportedServerVersion | undefined = undefined
  private connections: Array<Connection> = []
  private closed = false
  // Completes callers waiting for the server's version (see `whenVersion`).
  private versionWaiters: Array<(version: ServerVersion | SlotFailure) => void> = []

  constructor(
    readonly server: string,
    private readonly options: ServerPoolOptions,
  ) {}

  /** A connection to send on, or the reason there is none. Never blocks. */
  pick(now: number): Connection | ConnectionError | UnsupportedServerVersion {
    if (this.unsupported !== undefined) return this.unsupported
    if (this.downError !== undefined) return this.downError
    if (this.closed) return new ConnectionError({ server: this.server, reason: "client closed" })
    const conns = this.connections
    let best: Connection | undefined
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i]!
      if (now - c.createdAt > this.options.connMaxLifetimeMillis && c.ready) {
        // Rotation: the old connection finishes its in-flight requests, new ones go elsewhere.
        c.drain()
        conns.splice(i--, 1)
        continue
      }
      if (best === undefined || c.inFlight < best.inFlight) best = c
    }
    if (best === undefined || (best.inFlight >= GROW_AT_IN_FLIGHT && conns.length < this.options.maxConnections)) {
      const fresh = this.open()
      if (best === undefined) return fresh
    }
    return best
  }

  /** The server's version, connecting if needed. */
  whenVersion(): Effect.Effect<ServerVersion, ConnectionError | UnsupportedServerVersion> {
    return Effect.suspend(() => {
      if (this.version !== undefined && this.unsupported === undefined) return Effect.succeed(this.version)
      const picked = this.pick(Date.now())
      if (!(picked instanceof Connection)) return Effect.fail(picked)
      return Effect.async<ServerVersion, ConnectionError | UnsupportedServerVersion>((resume) => {
        this.versionWaiters.push((v) => {
          if ("major" in v) resume(Effect.succeed(v))
          else if (v._tag === "UnsupportedServerVersion") resume(Effect.fail(v))
          else resume(Effect.fail(new ConnectionError({ server: this.server, reason: v.message })))
        })
      })
    })
  }

  close(): void {
    this.closed = true
    for (const c of this.connections) c.close()
    this.connections = []
  }

  private connect(
    onVersion: (version: ServerVersion) => void,
    onClose: (connection: Connection, error: SlotFailure | undefined) => void,
  ): Connection {
    return new Connection({
      server: this.server,
      dialTimeoutMillis: this.options.dialTimeoutMillis,
      stallTimeoutMillis: this.options.timeoutMillis,
      onVersion,
      onClose,
    })
  }

  private open(): Connection {
    const conn = this.connect(
      (version) => {
        this.version = version
        this.settleVersionWaiters(version)
      },
      (c, error) => this.onClose(c, error),
    )
    this.connections.push(conn)
    return conn
  }

  private settleVersionWaiters(result: ServerVersion | SlotFailure): void {
    const waiters = this.versionWaiters
    this.versionWaiters = []
    for (const w of waiters) w(result)
  }

  private onClose(conn: Connection, error: SlotFailure | undefined): void {
    const i = this.connections.indexOf(conn)
    if (i >= 0) this.connections.splice(i, 1)
    if (error === undefined || this.closed) return
    if (error._tag === "UnsupportedServerVersion") {
      this.unsupported = error
      this.settleVersionWaiters(error)
      return
    }
    this.settleVersionWaiters(error)
    // A dial that failed, or a server that went silent, takes the server out of rotation.
    // A ready connection that dropped (a restart, an idle close) is simply replaced on next use.
    if (!conn.ready || error._tag === "Timeout") this.markDown(error)
  }

  private markDown(error: SlotFailure): void {
    if (this.downError !== undefined) return
    const reason = describe(error)
    this.downError = new ConnectionError({ server: this.server, reason: `server marked down (${reason})` })
    for (const c of this.connections) c.close()
    this.connections = []
    this.options.onHealth({ _tag: "ServerDown", server: this.server, error, reason })
    this.options.fork(this.probe())
  }

  /** Reconnects on the backoff schedule until a connection passes the version check. */
  private probe(): Effect.Effect<void> {
    const attempt = Effect.async<Connection, SlotFailure>((resume) => {
      const conn = this.connect(
        (version) => {
          this.version = version
          resume(Effect.succeed(conn))
        },
        (_, error) => {
          if (error?._tag === "UnsupportedServerVersion") this.unsupported = error
          if (!conn.ready) resume(Effect.fail(error ?? new ConnectionError({ server: this.server, reason: "closed" })))
          else this.onClose(conn, error)
        },
      )
      return Effect.sync(() => conn.close())
    })
    return attempt.pipe(
      Effect.retry({ schedule: this.options.backoff, while: (e) => e._tag !== "UnsupportedServerVersion" }),
      Effect.matchEffect({
        onFailure: () => Effect.void,
        onSuccess: (conn) =>
          Effect.sync(() => {
            if (this.closed) return conn.close()
            this.connections.push(conn)
            this.downError = undefined
            this.options.onHealth({ _tag: "ServerUp", server: this.server })
          }),
      }),
    )
  }
}
