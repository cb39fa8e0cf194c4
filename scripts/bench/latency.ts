/**
 * Per-call latency, cheaply: one call in SAMPLE_EVERY is timed with performance.now() into a
 * preallocated ring of samples, so measuring costs two clock reads per eight calls and no
 * allocation. The sampled calls are also the ones whose whole value is checked.
 */

export interface Latency {
  /** microseconds */
  readonly p50: number
  readonly p99: number
  readonly samples: number
}

/** a power of two */
const SAMPLE_EVERY = 8
const CAPACITY = 1 << 17

export class LatencyRecorder {
  private readonly samples = new Float64Array(CAPACITY)
  private count = 0
  private seq = 0

  /** performance.now() when this call is sampled, else -1. */
  start(): number {
    return (++this.seq & (SAMPLE_EVERY - 1)) === 0 ? performance.now() : -1
  }

  /** Records a sampled call (`t0` from `start`); true when it was sampled. */
  end(t0: number): boolean {
    if (t0 < 0) return false
    this.samples[this.count++ & (CAPACITY - 1)] = performance.now() - t0
    return true
  }

  /** Records a call timed elsewhere, in milliseconds. */
  record(ms: number): void {
    this.samples[this.count++ & (CAPACITY - 1)] = ms
  }

  summary(): Latency | undefined {
    const n = Math.min(this.count, CAPACITY)
    if (n === 0) return undefined
    const sorted = this.samples.subarray(0, n).sort()
    const at = (q: number) => sorted[Math.min(n - 1, Math.floor(q * n))]! * 1000
    return { p50: at(0.5), p99: at(0.99), samples: n }
  }
}
