/** Scripted TCP servers for failure tests: silent, lying about their version, or dying mid-request. */
import * as net from "node:net"

export interface FakeServer {
  readonly address: string
  readonly sockets: Set<net.Socket>
  readonly close: () => Promise<void>
}

/** A loopback server whose connections get `onData(socket, chunk)`. */
export const fakeServer = (onData: (socket: net.Socket, chunk: Buffer) => void = () => {}): Promise<FakeServer> =>
  new Promise((resolve) => {
    const sockets = new Set<net.Socket>()
    const server = net.createServer((socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      socket.on("error", () => {})
      socket.on("data", (chunk) => onData(socket, chunk))
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      resolve({
        address: `127.0.0.1:${port}`,
        sockets,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy()
            server.close(() => done())
          }),
      })
    })
  })

/** A port with no listener: connections are refused. */
export const refusedAddress = async (): Promise<string> => {
  const s = await fakeServer()
  await s.close()
  return s.address
}
