/** One request in memcached's classic text protocol over a fresh socket, read until `END\r\n`. */
import * as net from "node:net"

export const textRequest = (server: string, request: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const [host, port] = server.split(":")
    const socket = net.createConnection({ host: host!, port: Number(port) })
    let data = ""
    socket.on("data", (d) => {
      data += d.toString()
      if (data.endsWith("END\r\n")) {
        socket.destroy()
        resolve(data)
      }
    })
    socket.on("error", reject)
    socket.write(request)
  })
