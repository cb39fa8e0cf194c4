/**
 * Opening a socket to a server: plain TCP, a unix socket, or TLS over TCP.
 *
 * TLS verifies the server's certificate by default, against `ca` or Node's roots, and for the
 * server's host name, which is also sent as SNI (an IP address is verified as such, and no SNI is
 * sent for it: RFC 6066 forbids it). The socket counts as connected only once the handshake is
 * done (`secureConnect`): the dial timeout covers it, and nothing but what Node buffers is written
 * before it. Handshake failures become `ConnectionError`s whose `tls` says what failed.
 */
import * as net from "node:net"
import * as tls from "node:tls"
import { Redacted } from "effect"
import { ConnectionError, type TlsFailure, withoutStack } from "../Errors.js"
import type { Pem, TlsOptions } from "../Options.js"

export interface Dialed {
  readonly socket: net.Socket
  /** the event after which the socket can carry requests */
  readonly connectedEvent: "connect" | "secureConnect"
}

const hostAndPort = (server: string): { readonly host: string; readonly port: number } => {
  const colon = server.lastIndexOf(":")
  return { host: server.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port: Number(server.slice(colon + 1)) }
}

const pem = (p: Pem): string | Buffer | Array<string | Buffer> =>
  typeof p === "string" ? p : p instanceof Uint8Array ? Buffer.from(p) : p.map((x) => (typeof x === "string" ? x : Buffer.from(x)))

/** Node's options for a TLS connection to `host`. */
export const tlsConnectOptions = (host: string, port: number, options: TlsOptions): tls.ConnectionOptions => {
  const servername = options.servername ?? (net.isIP(host) === 0 ? host : undefined)
  const key = options.key === undefined ? undefined : Redacted.isRedacted(options.key) ? Redacted.value(options.key) : pem(options.key)
  return {
    host,
    port,
    ...(servername === undefined ? {} : { servername }),
    ...(options.ca === undefined ? {} : { ca: pem(options.ca) }),
    ...(options.cert === undefined ? {} : { cert: pem(options.cert) }),
    ...(key === undefined ? {} : { key }),
    ...(options.minVersion === undefined ? {} : { minVersion: options.minVersion }),
    rejectUnauthorized: options.rejectUnauthorized ?? true,
  }
}

/** Opens the socket; `tlsOptions` is ignored for a unix socket path. */
export const dial = (server: string, tlsOptions: TlsOptions | undefined): Dialed => {
  if (server.startsWith("/")) return { socket: net.createConnection({ path: server }), connectedEvent: "connect" }
  const { host, port } = hostAndPort(server)
  if (tlsOptions === undefined) return { socket: net.createConnection({ host, port, noDelay: true }), connectedEvent: "connect" }
  const socket = tls.connect(tlsConnectOptions(host, port, tlsOptions))
  socket.setNoDelay(true)
  return { socket, connectedEvent: "secureConnect" }
}

const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
  "INVALID_CA",
])

/** What a socket error says about a TLS handshake, if anything. */
export const tlsFailureOf = (code: string | undefined, message: string): TlsFailure | undefined => {
  if (code === undefined) return undefined
  // OpenSSL record-layer errors surface as EPROTO, with the reason in the message.
  if (code === "EPROTO") {
    if (/wrong version number|unsupported protocol|protocol version|packet length too long/i.test(message)) return "protocol-version"
    return /SSL routines/.test(message) ? "handshake" : undefined
  }
  if (UNTRUSTED.has(code)) return "untrusted-certificate"
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID" || code === "HOSTNAME_MISMATCH" || code === "IP_ADDRESS_MISMATCH") return "hostname-mismatch"
  if (
    code === "ERR_SSL_UNSUPPORTED_PROTOCOL" ||
    code === "ERR_SSL_WRONG_VERSION_NUMBER" ||
    code === "ERR_SSL_NO_PROTOCOLS_AVAILABLE" ||
    code.endsWith("ALERT_PROTOCOL_VERSION")
  )
    return "protocol-version"
  if (code.endsWith("CERTIFICATE_REQUIRED") || code.endsWith("ALERT_BAD_CERTIFICATE") || code.endsWith("ALERT_UNKNOWN_CA"))
    return "client-certificate"
  if (code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_")) return "handshake"
  return undefined
}

const TLS_WHAT: Readonly<Record<TlsFailure, string>> = {
  "untrusted-certificate": "the server's certificate is not trusted",
  "hostname-mismatch": "the server's certificate is not for this host name",
  "protocol-version": "no TLS protocol version in common (or the server does not speak TLS)",
  "client-certificate": "the server refused the client certificate (or wants one)",
  handshake: "the TLS handshake failed",
}

/**
 * A socket error as a `ConnectionError`. No `cause`: node's error objects hold the socket (a
 * captured stack keeps its frames' objects alive).
 */
export const socketError = (server: string, cause: Error & { readonly code?: unknown }): ConnectionError => {
  const code = typeof cause.code === "string" ? cause.code : undefined
  const failure = tlsFailureOf(code, cause.message)
  // OpenSSL's messages span lines; the first one says it.
  const said = cause.message.split("\n")[0]!.trim()
  return withoutStack(() =>
    failure === undefined
      ? new ConnectionError({ server, reason: cause.message })
      : new ConnectionError({ server, reason: `TLS: ${TLS_WHAT[failure]} (${code}: ${said})`, tls: failure }),
  )
}
