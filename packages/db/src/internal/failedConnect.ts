/**
 * A connection attempt that fails on the client's side must close its socket.
 *
 * pg leaves the socket open when `connect` fails for a reason of its own making rather than the
 * server's: the password callback rejected (the secrets backend is down and has no stale value),
 * the authentication policy refused the method, a message it could not parse. The server then
 * keeps that half-authenticated backend until `authentication_timeout` (60 s by default), and
 * pg-pool opens the next connection for the next waiting caller at once — under a secrets outage
 * the soak (test/soak, issue #16) saw this fill the server's `max_connections` within a second
 * ("sorry, too many clients already"), locking out every other client. Closing the socket with
 * the failure frees the backend at once. A failure the server reported has closed it already.
 *
 * @internal
 */
import type * as Pg from "pg"

type ConnectCallback = (err: Error | null, client?: Pg.Client) => void

/** `Base` whose failed `connect` destroys its socket before the failure is handed on. */
export const withSocketClosedOnFailure = (Base: typeof Pg.Client): typeof Pg.Client =>
  class SocketClosingClient extends Base {
    override connect(): Promise<Pg.Client>
    override connect(callback: ConnectCallback): void
    override connect(callback?: ConnectCallback): Promise<Pg.Client> | void {
      const connected = super.connect().then(
        () => this,
        (err: unknown) => {
          this.connection.stream.destroy()
          throw err
        }
      )
      if (callback === undefined) return connected
      connected.then(
        (client) => callback(null, client),
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)))
      )
    }
  }
