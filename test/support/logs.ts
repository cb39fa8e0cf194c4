/** Log capture for tests that check what the client says about its servers. */
import { Logger } from "effect"

/** The health messages the client logs ("marked down", "back up"), and a layer that records them. */
export const captureHealth = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message }) => {
    const text = Array.isArray(message) ? message.join(" ") : String(message)
    if (text.includes("marked down") || text.includes("back up")) lines.push(text)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}
