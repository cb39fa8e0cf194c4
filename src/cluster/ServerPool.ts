/**
 * The connections to one server, and that server's health.
 *
 * Requests pick a held connection synchronously (no per-operation checkout). A server whose
 * connections cannot be opened, or that stalls, is marked down: requests skip it at once, and a
 * background probe reconnects on a backoff `Schedule`, marking it up again on success.
 *
 * Connections live in one set (`all`, every open one, draining included); `active` is the subset
 * that takes new requests. Closing and marking down iterate over a snapshot of `all`, and a
 * connection leaves both when it reports its close, so every connection is closed exactly once.
 */
import { Effect, type Schedule } from "effect"
import { Connection, type ServerVerdict } from "../connection/Connection.js"
import type { SlotFailure } from "../connection/Slot.js"
import type { ServerVersion } from "../connection/Version.js"
import { type AuthenticationError, ConnectionError, type UnsupportedServerVersion, withoutStack } from "../Errors.js"
import type { AuthOptions, TlsOptions } from "../Options.js"

export interface ServerPoolOptions {
  readonly dialTimeoutMillis: number
  readonly stallTimeoutMillis: number
  readonly connMaxLifetimeMillis: number
  readonly maxConnections: number
  /** TLS and credentials of a server's connections */
  readonly security: (server: string) => { readonly tls?: TlsOptions | undefined; readonly auth?: AuthOptions | undefined }
  /** delays between probes of a server marked down */
  readonly backoff: Schedule.Schedule<unknown, unknown>
  /** runs a background fiber in the client's scope */
  readonly fork: (effect: Effect.Effect<void>) => void
  readonly onHealth: (event: HealthEvent) => void
  /** a connection of this server ended with an error (observability: status, metrics) */
  readonly onConnectionFailed?: ((server: string, error: SlotFailure) => void) | undefined
  /**
   * Runs on a probe's connection before a server marked down takes traffic again (the cluster
   * repairs what failover left behind); a failure keeps the server down. It runs again as long as
   * `needsRepair` says so: writes keep failing over while it runs.
   */
  readonly repair: (server: string, connection: Connection) => Effect.Effect<void, SlotFailure>
  readonly needsRepair: (server: string) => boolean
}

export type HealthEvent =
  | { readonly _tag: "ServerDown"; readonly server: string; readonly error: SlotFailure; readonly reason: string }
  | { readonly _tag: "ServerUp"; readonly server: string }
  | { readonly _tag: "AuthenticationFailed"; readonly server: string; readonly error: AuthenticationError }

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

// A connection with this much load (requests in flight, a batch counting its keys) makes the pool
// open another one, up to the max.
const GROW_AT_LOAD = 256
// After the server refused an extra connection (e.g. memcached at its -c limit) while others
// work, the pool does not try to grow for this long.
const GROWTH_PAUSE_MILLIS = 1000
// After the server refused the credentials, requests fail with that error for this long before a
// connection tries them again (the server's authfile may be fixed and reloaded meanwhile).
const AUTH_RETRY_MILLIS = 1000

export class ServerPool {
  version: ServerVersion | undefined = undefined
  /** set while the server is marked down: the error requests fail with */
  downError: ConnectionError | undefined = undefined
  unsupported: UnsupportedServerVersion | undefined = undefined
  /**
   * Set while the server refuses the credentials. Not a health matter: the server is not marked
   * down (nor back up), and the refusal is reported once until a connection authenticates again.
   */
  authRefused: AuthenticationError | undefined = undefined
  private authRetryAt = 0
  private readonly all = new Set<Connection>()
  private readonly active: Array<Connection> = []
  private closed = false
  private growthPausedUntil = 0
  // Completes callers waiting for the server's version (see `whenVersion`).
  private versionWaiters: Array<(version: ServerVersion | SlotFailure) => void> = []

  constructor(
    readonly server: string,
    private readonly options: ServerPoolOptions,
  ) {}

  /** Open connections (draining and probing ones included). */
  get connections(): number {
    return this.all.size
  }

  /** Requests awaiting replies on this server's connections (a batch counts its keys). */
  get inFlight(): number {
    let n = 0
    for (const c of this.all) n += c.load
    return n
  }

  /** A connection to send on, or the reason there is none. Never blocks. */
  pick(now: number): Connection | ConnectionError | UnsupportedServerVersion | AuthenticationError {
    if (this.unsupported !== undefined) return this.unsupported
    if (this.authRefused !== undefined && now < this.authRetryAt) return this.authRefused
    if (this.downError !== undefined) return this.downError
    if (this.closed) return withoutStack(() => new ConnectionError({ server: this.server, reason: "client closed" }))
    const conns = this.active
    let best: Connection | undefined
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i]!
      if (now - c.createdAt > this.options.connMaxLifetimeMillis && c.ready) {
        // Rotation: the old connection finishes its in-flight requests, new ones go elsewhere.
        // Out of `active` first: draining an idle connection closes it at once.
        conns.splice(i--, 1)
        c.drain()
        continue
      }
      if (best === undefined || c.load < best.load) best = c
    }
    if (best === undefined) return this.open()
    if (best.load >= GROW_AT_LOAD && conns.length < this.options.maxConnections && now >= this.growthPausedUntil) {
      // The fresh connection takes requests once it is the least loaded.
      this.open()
    }
    return best
  }

  /** The server's version, connecting if needed. */
  whenVersion(): Effect.Effect<ServerVersion, ConnectionError | UnsupportedServerVersion | AuthenticationError> {
    return Effect.suspend(() => {
      if (this.version !== undefined && this.unsupported === undefined) return Effect.succeed(this.version)
      const picked = this.pick(Date.now())
      if (!(picked instanceof Connection)) return Effect.fail(picked)
      return Effect.async<ServerVersion, ConnectionError | UnsupportedServerVersion | AuthenticationError>((resume) => {
        this.versionWaiters.push((v) => {
          if ("major" in v) resume(Effect.succeed(v))
          else if (v._tag === "UnsupportedServerVersion" || v._tag === "AuthenticationError") resume(Effect.fail(v))
          else resume(Effect.fail(new ConnectionError({ server: this.server, reason: v.message })))
        })
      })
    })
  }

  /** Closes every connection; requests in flight fail with `ConnectionError`. */
  close(): void {
    this.closed = true
    this.closeAll()
    this.settleVersionWaiters(withoutStack(() => new ConnectionError({ server: this.server, reason: "client closed" })))
  }

  /** The server left the cluster: no new requests; connections drain, then close. */
  retire(): void {
    this.closed = true
    this.active.length = 0
    for (const c of Array.from(this.all)) c.drain()
    this.settleVersionWaiters(withoutStack(() => new ConnectionError({ server: this.server, reason: "server left the cluster" })))
  }

  private closeAll(): void {
    this.active.length = 0
    for (const c of Array.from(this.all)) c.close()
  }

  private connect(
    onVersion: (conn: Connection, version: ServerVersion) => void,
    onClose: (conn: Connection, error: SlotFailure | undefined, verdict: ServerVerdict) => void,
  ): Connection {
    const conn: Connection = new Connection({
      server: this.server,
      dialTimeoutMillis: this.options.dialTimeoutMillis,
      stallTimeoutMillis: this.options.stallTimeoutMillis,
      ...this.options.security(this.server),
      onVersion: (version) => {
        this.version = version
        this.authRefused = undefined
        onVersion(conn, version)
      },
      onClose: (c, error, verdict) => {
        if (error !== undefined) this.options.onConnectionFailed?.(this.server, error)
        this.all.delete(c)
        const i = this.active.indexOf(c)
        if (i >= 0) this.active.splice(i, 1)
        onClose(c, error, verdict)
      },
    })
    this.all.add(conn)
    return conn
  }

  private open(): Connection {
    const conn = this.connect(
      (_, version) => this.settleVersionWaiters(version),
      (c, error, verdict) => this.onClose(c, error, verdict),
    )
    this.active.push(conn)
    return conn
  }

  private settleVersionWaiters(result: ServerVersion | SlotFailure): void {
    const waiters = this.versionWaiters
    this.versionWaiters = []
    for (const w of waiters) w(result)
  }

  private onClose(conn: Connection, error: SlotFailure | undefined, verdict: ServerVerdict): void {
    if (error === undefined || this.closed) return
    if (error._tag === "UnsupportedServerVersion") {
      this.unsupported = error
      this.closeAll()
      this.settleVersionWaiters(error)
      return
    }
    // Callers waiting for the version fail once no other connection may still answer it.
    if (!conn.ready && this.active.length === 0) this.settleVersionWaiters(error)
    if (error._tag === "AuthenticationError") {
      this.authRetryAt = Date.now() + AUTH_RETRY_MILLIS
      if (this.authRefused === undefined) this.options.onHealth({ _tag: "AuthenticationFailed", server: this.server, error })
      this.authRefused = error
      return
    }
    if (verdict === "stalled") return this.markDown(error)
    if (verdict === "unreachable") {
      // An extra connection refused while others work (memcached at its connection limit) says
      // the pool is big enough, not that the server is down.
      if (this.active.some((c) => c.ready)) this.growthPausedUntil = Date.now() + GROWTH_PAUSE_MILLIS
      else this.markDown(error)
    }
    // A ready connection that dropped (a restart, an idle close, a desync) is replaced on next use.
  }

  private markDown(error: SlotFailure): void {
    if (this.downError !== undefined) return
    const reason = describe(error)
    this.downError = withoutStack(() => new ConnectionError({ server: this.server, reason: `server marked down (${reason})` }))
    this.closeAll()
    this.options.onHealth({ _tag: "ServerDown", server: this.server, error, reason })
    this.options.fork(this.probe())
  }

  /**
   * Reconnects on the backoff schedule until a connection passes the version check and the
   * cluster's repairs (`beforeUp`), then puts the server back into rotation.
   */
  private probe(): Effect.Effect<void> {
    const connected = Effect.async<Connection, SlotFailure>((resume) => {
      const conn = this.connect(
        () => resume(Effect.succeed(conn)),
        (c, error, verdict) => {
          if (!c.ready) resume(Effect.fail(error ?? new ConnectionError({ server: this.server, reason: "closed" })))
          else if (this.downError === undefined) this.onClose(c, error, verdict)
        },
      )
      return Effect.sync(() => conn.close())
    })
    // The last check for repairs and the return to rotation happen in one synchronous step, so
    // no write can fail over in between.
    const repairThenUp = (conn: Connection): Effect.Effect<void, SlotFailure> =>
      Effect.suspend(() => {
        if (this.options.needsRepair(this.server)) {
          return Effect.zipRight(this.options.repair(this.server, conn), repairThenUp(conn))
        }
        if (conn.closed) return Effect.fail(new ConnectionError({ server: this.server, reason: "probe connection closed" }))
        if (this.closed) conn.close()
        else this.markUp(conn)
        return Effect.void
      })
    const attempt = Effect.flatMap(connected, (conn) =>
      repairThenUp(conn).pipe(Effect.onError(() => Effect.sync(() => conn.close()))),
    )
    return attempt.pipe(
      Effect.retry({ schedule: this.options.backoff, while: (e) => e._tag !== "UnsupportedServerVersion" && !this.closed }),
      Effect.catchAll((error) =>
        Effect.sync(() => {
          if (error._tag === "UnsupportedServerVersion" && !this.closed) this.unsupported = error
        }),
      ),
    )
  }

  private markUp(conn: Connection): void {
    this.active.push(conn)
    this.downError = undefined
    this.options.onHealth({ _tag: "ServerUp", server: this.server })
  }
}
