/**
 * The little of memjs and memcached (3rd-Eden) the benchmark uses; neither ships types.
 * (memcache-client ships its own.)
 */

declare module "memjs" {
  interface ClientOptions {
    /** seconds; default 0.5 */
    readonly timeout?: number
    readonly expires?: number
  }
  interface Client {
    get(key: string): Promise<{ readonly value: Buffer | null; readonly flags: Buffer | null }>
    set(key: string, value: string | Buffer, options: { readonly expires?: number }): Promise<boolean>
    quit(): void
    close(): void
  }
  const memjs: {
    readonly Client: { create(servers?: string, options?: ClientOptions): Client }
  }
  export default memjs
}

declare module "memcached" {
  type Callback<T> = (error: Error | undefined, data: T) => void
  class Memcached {
    constructor(location: string | ReadonlyArray<string>, options?: { readonly poolSize?: number; readonly timeout?: number })
    get(key: string, callback: Callback<Buffer | string | undefined>): void
    getMulti(keys: ReadonlyArray<string>, callback: Callback<Record<string, Buffer | string>>): void
    set(key: string, value: string | Buffer, lifetime: number, callback: Callback<boolean>): void
    end(): void
  }
  export default Memcached
}
