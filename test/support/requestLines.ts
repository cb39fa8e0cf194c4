/** Splits a client's byte stream into meta request lines, for servers and proxies that record them. */

/**
 * A chunk handler that calls `onLine` with each whole request line (its tokens split on spaces),
 * skipping the data block that follows an `ms` line.
 */
export const requestLines = (onLine: (line: string, tokens: Array<string>) => void): ((chunk: Buffer) => void) => {
  let pending = Buffer.alloc(0)
  return (chunk) => {
    pending = Buffer.concat([pending, chunk])
    for (;;) {
      const lf = pending.indexOf("\r\n")
      if (lf < 0) return
      const line = pending.subarray(0, lf).toString("latin1")
      const tokens = line.split(" ")
      let consumed = lf + 2
      if (tokens[0] === "ms") {
        const size = Number(tokens[2])
        if (pending.length < consumed + size + 2) return
        consumed += size + 2
      }
      pending = pending.subarray(consumed)
      onLine(line, tokens)
    }
  }
}
