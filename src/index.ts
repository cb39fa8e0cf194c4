/** effect-memcache: a memcached client for Effect over the meta text protocol. */
export {
  McClient,
  make,
  makeMemory,
  serversFromEnv,
  type McClientService,
  type PartialItems,
  type ServerStats,
  type ServerStatus,
} from "./McClient.js"
export type { Item, ItemInput } from "./Item.js"
export { valueText } from "./Item.js"
export {
  BadIncrDec,
  CacheMiss,
  CASConflict,
  ClientError,
  ConnectionError,
  CorruptResponse,
  DecodeError,
  EncodeError,
  InvalidOption,
  MalformedKey,
  NoServers,
  NotStored,
  ServerError,
  Timeout,
  UnsupportedServerVersion,
  AuthenticationError,
  type TlsFailure,
  type McError,
} from "./Errors.js"
export type {
  CompressionCodec,
  DeleteOptions,
  Expiration,
  GetMultiOptions,
  GetOptions,
  IncrDecrOptions,
  KeyHash,
  McClientOptions,
  AuthOptions,
  DiscoveryOptions,
  Pem,
  ServerConfig,
  TlsOptions,
  SetOptions,
  TimeoutOption,
  TracingOptions,
} from "./Options.js"
export type { MemoryOptions } from "./layers/memory.js"
export type { BinaryCodec, CodecOption, ValueCodec } from "./Codec.js"
export type { GetOrSet, GetOrSetOptions, LeaseOptions } from "./client/ReadThrough.js"
export { makeKetamaRing, parseServerSpec, type KetamaRing, type ServerSpec } from "./cluster/Ketama.js"
