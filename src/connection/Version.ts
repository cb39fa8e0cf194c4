/** memcached versions, as the `version` command reports them. */

export interface ServerVersion {
  readonly text: string
  readonly major: number
  readonly minor: number
  readonly patch: number
}

export const parseServerVersion = (text: string): ServerVersion | undefined => {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(text.trim())
  if (m === null) return undefined
  return { text: text.trim(), major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) }
}

export const atLeast = (v: ServerVersion, major: number, minor: number, patch: number): boolean =>
  v.major !== major ? v.major > major : v.minor !== minor ? v.minor > minor : v.patch >= patch

/** 1.6.14 is the oldest meta dialect this client speaks (stable HD/VA codes, `b` keys, P/L tokens). */
export const supportsMetaProtocol = (v: ServerVersion): boolean => atLeast(v, 1, 6, 14)

/** `ms … MA N<ttl>`: append/prepend autovivify arrived in 1.6.20. */
export const supportsAppendVivify = (v: ServerVersion): boolean => atLeast(v, 1, 6, 20)
