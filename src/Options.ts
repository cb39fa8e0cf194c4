/** Options of `McClient.layer` (seed option names kept) and per-call options. */
import type { Duration, Effect, Redacted, Schedule } from "effect"

/** Functions of bytes, synchronous or effectful (seed `Compression`). */
export interface CompressionCodec {
  readonly compress: (data: Uint8Array) => Uint8Array | Effect.Effect<Uint8Array, unknown>
  readonly decompress: (data: Uint8Array) => Uint8Array | Effect.Effect<Uint8Array, unknown>
}

/**
 * A time to live, or a window (`earlyRecache`, `invalidate`):
 * - a number is whole seconds, 0..2^31-1; above 30 days (2592000) memcached reads it as an
 *   absolute Unix time in seconds;
 * - a `Duration` or a duration string ("1 hour") is relative, rounded up to whole seconds, at most
 *   30 days.
 * For an expiration, 0 (and `Duration.infinity`) means no expiry. Anything else is a `ClientError`.
 */
export type Expiration = number | Duration.Duration | `${number} ${Duration.Unit}`

/** How binary-encoded keys are hashed before base64 (see README "Keys"). */
export type KeyHash = "sha256-128" | "xxhash64"

/** PEM text or bytes, or several of them. */
export type Pem = string | Uint8Array | ReadonlyArray<string | Uint8Array>

/**
 * TLS for connections to memcached (`memcached -Z`). The server's certificate is verified by
 * default, against `ca` (else Node's trusted roots), and must be for the server's host name.
 */
export interface TlsOptions {
  /** the CAs to trust instead of Node's default roots */
  readonly ca?: Pem | undefined
  /** client certificate chain, for mutual TLS */
  readonly cert?: Pem | undefined
  /** client private key, for mutual TLS; may be `Redacted` */
  readonly key?: Pem | Redacted.Redacted<string> | undefined
  /** host name for SNI and certificate verification; default: the server's host (none for an IP) */
  readonly servername?: string | undefined
  /** default true; false accepts any certificate (testing only) */
  readonly rejectUnauthorized?: boolean | undefined
  /** default Node's (TLSv1.2) */
  readonly minVersion?: "TLSv1.2" | "TLSv1.3" | undefined
}

/** A server with its own settings, wherever servers are listed. */
export interface ServerConfig {
  /** "host:port", "[v6]:port" or a unix socket path */
  readonly address: string
  /** relative share of the keys, default 1 */
  readonly weight?: number | undefined
  /** overrides the client's `tls` for this server; unix sockets ignore it */
  readonly tls?: boolean | TlsOptions | undefined
}

/** memcached's text-protocol authentication (`memcached -Y <authfile>`). */
export interface AuthOptions {
  /** no spaces or line breaks */
  readonly username: string
  /** no line breaks; never logged, nor shown in errors */
  readonly password: Redacted.Redacted<string>
}

/** AWS ElastiCache auto-discovery through a cluster's configuration endpoint. */
export interface DiscoveryOptions {
  /** "host:port" of the configuration endpoint */
  readonly configEndpoint: string
  /** how often the node list is polled, default 60 seconds */
  readonly interval?: Duration.DurationInput | undefined
}

export interface McClientOptions {
  /**
   * "host:port", "host:port:weight", a unix socket path, or `{ address, weight?, tls? }`;
   * non-empty (seed `Addrs`). Omitted with `discovery`.
   */
  readonly servers?: ReadonlyArray<string | ServerConfig> | undefined
  /** TLS for every server (a server's own `tls` overrides it); `true` for the defaults */
  readonly tls?: boolean | TlsOptions | undefined
  /** credentials every new connection authenticates with before any request */
  readonly auth?: AuthOptions | undefined
  /** the servers come from an ElastiCache configuration endpoint, polled (then omit `servers`) */
  readonly discovery?: DiscoveryOptions | undefined
  /** primary first, then failover alternates; default: libmemcached-compatible ketama */
  readonly pickServer?: ((key: string) => ReadonlyArray<string>) | undefined
  readonly dialTimeout?: Duration.DurationInput | undefined
  /** per-operation deadline; a call's own `timeout` overrides it */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * How the client judges a server's health, apart from any caller's deadline: while requests are
   * pending, some whole reply must arrive within this (trickled bytes do not count). A connection
   * that goes without one is destroyed and its server marked down. Default 1 second.
   */
  readonly stallTimeout?: Duration.DurationInput | undefined
  /**
   * The TTL cap, in seconds, of writes that fail over to another server while their primary is
   * down (a Duration or duration string also works). Default 30 seconds.
   */
  readonly failoverTtl?: Duration.DurationInput | undefined
  readonly connMaxLifetime?: Duration.DurationInput | undefined
  /** upper bound of connections per server (they open as load needs them) */
  readonly maxIdleConnsPerAddr?: number | undefined
  readonly disableBinaryEncodedKeys?: boolean | undefined
  readonly keyHash?: KeyHash | undefined
  readonly compression?: CompressionCodec | undefined
  /** retries idempotent operations on connection errors, never on a server's answer */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  /** probes of a server marked down follow this schedule */
  readonly reconnect?: Schedule.Schedule<unknown, unknown> | undefined
  /**
   * A span per operation (`memcached get`, ...), child of the caller's span. Off by default. With
   * `keys: true` the keys become `db.memcached.key` attributes (they may carry personal data);
   * `attributes` are added to every span. See README "Tracing".
   */
  readonly tracing?: boolean | TracingOptions | undefined
  /** Effect `Metric`s of operations, connections and servers. Off by default (README "Metrics"). */
  readonly metrics?: boolean | undefined
}

export interface TracingOptions {
  readonly keys?: boolean | undefined
  readonly attributes?: Readonly<Record<string, unknown>> | undefined
}

export interface GetOptions {
  readonly cas?: boolean | undefined
  readonly hit?: boolean | undefined
  readonly lastAccess?: boolean | undefined
  readonly ttl?: boolean | undefined
  /** win the recache token when the remaining TTL is below this (`R`); see `Expiration` */
  readonly earlyRecache?: Expiration | undefined
  readonly timeout?: Duration.DurationInput | undefined
}

export interface GetMultiOptions extends GetOptions {
  /**
   * Send each key to every server `pickServer` lists for it (the seed's broadcast), not only to
   * the first healthy one; the answer of the most preferred server wins. Costs one request per
   * listed server and key: meant for a `pickServer` that lists replicas, since the default ketama
   * lists every server.
   */
  readonly broadcast?: boolean | undefined
  /**
   * Answer `{ items, failed }` instead of failing: the hits, and each key that could not be read
   * with its typed error. Without it, the first failure fails the call.
   */
  readonly partial?: boolean | undefined
}

export interface SetOptions {
  /** seconds (or a unix time above 30 days, as memcached reads it), a Duration or "1 hour"; 0 = never expire */
  readonly expiration?: Expiration | undefined
  readonly namespace?: string | undefined
  /** compress values longer than this many bytes */
  readonly compression?: number | undefined
  /** store only on the n-th set of the key within the expiration window */
  readonly minUses?: number | undefined
  readonly timeout?: Duration.DurationInput | undefined
}

export interface DeleteOptions {
  /** mark the item stale for this long instead of deleting it (`md I T<s>`); see `Expiration` */
  readonly invalidate?: Expiration | undefined
  readonly timeout?: Duration.DurationInput | undefined
}

export interface IncrDecrOptions {
  /** create the counter with this value when missing */
  readonly initialValue?: bigint | number | undefined
  readonly timeout?: Duration.DurationInput | undefined
}

export interface TimeoutOption {
  readonly timeout?: Duration.DurationInput | undefined
}
