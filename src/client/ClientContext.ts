/**
 * What every operation family shares, built once per client: the families capture it when the
 * client is made, so no call pays for it.
 */
import { Duration } from "effect"
import type { CompressionCodec } from "../Options.js"
import type { KeyEncoder } from "./Keys.js"
import { makeNamespaces } from "./Namespaces.js"
import type { Transport } from "./Transport.js"

export interface ClientConfig {
  readonly keys: KeyEncoder
  readonly timeoutMillis: number
  readonly compression: CompressionCodec
}

export interface ClientContext {
  readonly transport: Transport
  readonly config: ClientConfig
  readonly keys: KeyEncoder
  /** The `b` flag of every keyed request: keys are sent base64-encoded. */
  readonly b: boolean
  /** A checked per-call timeout in milliseconds, or the client's default. */
  readonly timeoutOf: (t: Duration.DurationInput | undefined) => number
  readonly ns: ReturnType<typeof makeNamespaces>
}

export const makeClientContext = (transport: Transport, config: ClientConfig): ClientContext => {
  const { keys } = config
  return {
    transport,
    config,
    keys,
    b: keys.binary,
    // Per-call timeouts are checked (and turned into milliseconds) at the top of each operation.
    timeoutOf: (t) => (t === undefined ? config.timeoutMillis : typeof t === "number" ? t : Duration.toMillis(Duration.decode(t))),
    ns: makeNamespaces(transport, keys),
  }
}
