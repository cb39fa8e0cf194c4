/**
 * XXH64 (seed 0), for wire compatibility with kinescope/mc's binary keys (`keyHash: "xxhash64"`).
 * BigInt arithmetic: slow next to native code, but keys are cached by the key encoder.
 */
const P1 = 11400714785074694791n
const P2 = 14029467366897019727n
const P3 = 1609587929392839161n
const P4 = 9650029242287828579n
const P5 = 2870177450012600261n
const MASK = 0xffffffffffffffffn

const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & MASK
const round = (acc: bigint, input: bigint): bigint => (rotl((acc + input * P2) & MASK, 31n) * P1) & MASK
const merge = (acc: bigint, val: bigint): bigint => (((acc ^ round(0n, val)) * P1) & MASK) + P4 & MASK

const u64 = (b: Uint8Array, i: number): bigint => {
  let v = 0n
  for (let k = 7; k >= 0; k--) v = (v << 8n) | BigInt(b[i + k]!)
  return v
}
const u32 = (b: Uint8Array, i: number): bigint =>
  BigInt((b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0)

export const xxhash64 = (input: Uint8Array): bigint => {
  const len = input.length
  let i = 0
  let h: bigint
  if (len >= 32) {
    let v1 = (P1 + P2) & MASK
    let v2 = P2
    let v3 = 0n
    let v4 = (0n - P1) & MASK
    for (; i + 32 <= len; i += 32) {
      v1 = round(v1, u64(input, i))
      v2 = round(v2, u64(input, i + 8))
      v3 = round(v3, u64(input, i + 16))
      v4 = round(v4, u64(input, i + 24))
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK
    h = merge(h, v1)
    h = merge(h, v2)
    h = merge(h, v3)
    h = merge(h, v4)
  } else {
    h = P5
  }
  h = (h + BigInt(len)) & MASK
  for (; i + 8 <= len; i += 8) h = (rotl(h ^ round(0n, u64(input, i)), 27n) * P1 + P4) & MASK
  if (i + 4 <= len) {
    h = (rotl(h ^ ((u32(input, i) * P1) & MASK), 23n) * P2 + P3) & MASK
    i += 4
  }
  for (; i < len; i++) h = (rotl(h ^ ((BigInt(input[i]!) * P5) & MASK), 11n) * P1) & MASK
  h ^= h >> 33n
  h = (h * P2) & MASK
  h ^= h >> 29n
  h = (h * P3) & MASK
  h ^= h >> 32n
  return h
}
