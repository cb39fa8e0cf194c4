/**
 * Every failure of the client is one of these tagged errors.
 *
 * Per-operation outcomes (`CacheMiss`, `NotStored`, …) are frequent, so they are built without
 * capturing a stack trace: capturing one costs ~9 µs on the machines we measured, more than the
 * whole round trip of a pipelined get.
 */
import { Data } from "effect"

/**
 * Builds an error without capturing a stack trace (hot-path outcomes such as a miss).
 * @internal
 */
export const withoutStack = <A>(f: () => A): A => {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return f()
  } finally {
    Error.stackTraceLimit = limit
  }
}

const where = (server: string | undefined, key: string | undefined) =>
  (server === undefined ? "" : ` [server ${server}]`) + (key === undefined ? "" : ` [key ${JSON.stringify(key)}]`)

/** The key is not in the cache (or was invalidated by a namespace purge). */
export class CacheMiss extends Data.TaggedError("CacheMiss")<{ readonly key: string; readonly server?: string | undefined }> {
  override get message() {
    return `memcache: cache miss${where(this.server, this.key)}`
  }
}

/** add on an existing key, replace/append/prepend on a missing one. */
export class NotStored extends Data.TaggedError("NotStored")<{ readonly key: string; readonly server?: string | undefined }> {
  override get message() {
    return `memcache: item not stored${where(this.server, this.key)}`
  }
}

/** compareAndSwap lost: the item changed since its CAS token was read. */
export class CASConflict extends Data.TaggedError("CASConflict")<{ readonly key: string; readonly server?: string | undefined }> {
  override get message() {
    return `memcache: compare-and-swap conflict${where(this.server, this.key)}`
  }
}

/** inc/dec on a value that is not a decimal uint64, or an invalid delta. */
export class BadIncrDec extends Data.TaggedError("BadIncrDec")<{
  readonly key: string
  readonly reason: string
  readonly server?: string | undefined
}> {
  override get message() {
    return `memcache: bad increment/decrement: ${this.reason}${where(this.server, this.key)}`
  }
}

/** The key cannot be sent: too long, empty, or holding whitespace/control bytes (plain keys only). */
export class MalformedKey extends Data.TaggedError("MalformedKey")<{ readonly key: string; readonly reason: string }> {
  override get message() {
    return `memcache: malformed key: ${this.reason}${where(undefined, this.key)}`
  }
}

/** A stored value could not be decoded (schema, codec or decompression). */
export class DecodeError extends Data.TaggedError("DecodeError")<{
  readonly key: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message() {
    return `memcache: decode failed: ${this.reason}${where(undefined, this.key)}`
  }
}

/** A value could not be encoded for storage (schema or codec). */
export class EncodeError extends Data.TaggedError("EncodeError")<{
  readonly key: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message() {
    return `memcache: encode failed: ${this.reason}${where(undefined, this.key)}`
  }
}

/**
 * What failed in a TLS handshake:
 * - "untrusted-certificate": the server's certificate does not chain to a trusted CA (or expired);
 * - "hostname-mismatch": the certificate is not for the host name (or IP) connected to;
 * - "protocol-version": no TLS version both sides accept (or the server does not speak TLS);
 * - "client-certificate": the server wants a client certificate and got none, or refused it;
 * - "handshake": any other handshake failure.
 */
export type TlsFailure = "untrusted-certificate" | "hostname-mismatch" | "protocol-version" | "client-certificate" | "handshake"

/** The socket could not be opened, or died with operations in flight. */
export class ConnectionError extends Data.TaggedError("ConnectionError")<{
  readonly server: string
  readonly reason: string
  readonly key?: string | undefined
  readonly cause?: unknown
  /** set when the TLS handshake failed: what failed */
  readonly tls?: TlsFailure | undefined
}> {
  override get message() {
    return `memcache: connection error: ${this.reason}${where(this.server, this.key)}`
  }
}

/** The operation did not complete within its deadline. */
export class Timeout extends Data.TaggedError("Timeout")<{
  readonly server: string
  readonly timeoutMillis: number
  readonly key?: string | undefined
}> {
  override get message() {
    return `memcache: timed out after ${this.timeoutMillis} ms${where(this.server, this.key)}`
  }
}

/** memcached answered SERVER_ERROR (e.g. "object too large for cache", "out of memory"). */
export class ServerError extends Data.TaggedError("ServerError")<{
  readonly server: string
  readonly reason: string
  readonly key?: string | undefined
}> {
  override get message() {
    return `memcache: server error: ${this.reason}${where(this.server, this.key)}`
  }
}

/** memcached answered CLIENT_ERROR or ERROR: it rejected the request as sent. */
export class ClientError extends Data.TaggedError("ClientError")<{
  readonly server?: string | undefined
  readonly reason: string
  readonly key?: string | undefined
}> {
  override get message() {
    return `memcache: client error: ${this.reason}${where(this.server, this.key)}`
  }
}

/** The bytes from the server are not a valid meta protocol reply. The connection is discarded. */
export class CorruptResponse extends Data.TaggedError("CorruptResponse")<{
  readonly reason: string
  readonly server?: string | undefined
  readonly key?: string | undefined
}> {
  override get message() {
    return `memcache: corrupt response: ${this.reason}${where(this.server, this.key)}`
  }
}

/** No server to send to: the server list is empty, or pickServer returned nothing usable. */
export class NoServers extends Data.TaggedError("NoServers")<{ readonly reason: string; readonly key?: string | undefined }> {
  override get message() {
    return `memcache: no servers: ${this.reason}${where(undefined, this.key)}`
  }
}

/**
 * An option of `McClient.layer` / `make` / `layerConfig` / `layerMemory` is invalid: the layer fails
 * with this before it opens anything. `value` is the given value, rendered as text.
 */
export class InvalidOption extends Data.TaggedError("InvalidOption")<{
  readonly option: string
  readonly value: string
  readonly reason: string
}> {
  override get message() {
    return `memcache: invalid option ${this.option} (${this.value}): ${this.reason}`
  }
}

/** The server is older than 1.6.14, the oldest meta protocol dialect this client speaks. */
export class UnsupportedServerVersion extends Data.TaggedError("UnsupportedServerVersion")<{
  readonly server: string
  readonly version: string
}> {
  override get message() {
    return `memcache: server ${this.server} runs memcached ${this.version}; 1.6.14 or newer is required`
  }
}

/**
 * The server refused this client's credentials (memcached `-Y`), or requires credentials and the
 * client has no `auth` option. Not retried: the same credentials fail the same way.
 */
export class AuthenticationError extends Data.TaggedError("AuthenticationError")<{
  readonly server: string
  readonly reason: string
}> {
  override get message() {
    return `memcache: authentication failed: ${this.reason}${where(this.server, undefined)}`
  }
}

/** Infrastructure failures any operation can meet. */
export type McError =
  | ConnectionError
  | Timeout
  | ServerError
  | ClientError
  | CorruptResponse
  | NoServers
  | UnsupportedServerVersion
  | AuthenticationError
  | MalformedKey
