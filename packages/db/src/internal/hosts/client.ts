/**
 * The client class of a pool over several hosts: its `connect` asks the pool's chooser where to go
 * (internal/hosts/chooser.ts), connects there with that host's TLS options (the certificate must
 * name the host it was reached at), and checks that the session fits `DB_TARGET_SESSION_ATTRS`
 * before the pool may hand it out. A connection that stops fitting later — a ParameterStatus
 * reporting `in_hot_standby` or `default_transaction_read_only` changed, or, from a server that
 * reports neither, a 25006 (read-only transaction) — is discarded: its socket is closed once the
 * statement in flight has its answer, so the pool never hands it out again and the next connection
 * goes where the chooser now finds a fitting server.
 *
 * @internal
 */
import type * as Pg from "pg"
import type { HostChooser, HostRoute } from "./chooser.js"
import { NoSuitableHostCause, sessionState, type SessionState, stateFromParameters } from "./session.js"

/** pg's connection, as far as this class uses it. */
interface Connection {
  readonly stream: { readonly destroyed: boolean; destroy: () => void }
  on(event: "parameterStatus", listener: (msg: { parameterName: string; parameterValue: string }) => void): void
  on(event: "errorMessage", listener: (msg: { code?: string }) => void): void
  once(event: "readyForQuery", listener: () => void): void
}

const connectionOf = (client: Pg.Client): Connection => Reflect.get(client, "connection") as Connection

/** `read_only_sql_transaction`: a write in a read-only transaction (on a standby, every transaction). */
const readOnlyTransaction = "25006"

const readOnly = (state: SessionState | undefined): SessionState => ({ hotStandby: state?.hotStandby ?? false, readOnly: true })

type ConnectCallback = (err: Error | null, client?: Pg.Client) => void

/** `Base` whose connections go where `chooser` says, and leave when they no longer fit. */
export const withHostChoice = (Base: typeof Pg.Client, chooser: HostChooser): typeof Pg.Client =>
  class HostChoosingClient extends Base {
    readonly #parameters = new Map<string, string>()
    #route: HostRoute | undefined = undefined
    #discarding = false

    constructor(config?: string | Pg.ClientConfig) {
      super(config)
      const connection = connectionOf(this)
      connection.on("parameterStatus", (msg) => {
        this.#parameters.set(msg.parameterName, msg.parameterValue)
        const state = stateFromParameters(this.#parameters)
        if (state !== undefined && !chooser.accepts(state)) this.#discard()
      })
      connection.on("errorMessage", (msg) => {
        // a server that reports its state says so itself; a 25006 there is a READ ONLY transaction of the caller's
        if (msg.code !== readOnlyTransaction || stateFromParameters(this.#parameters) !== undefined) return
        if (!chooser.accepts(readOnly(undefined))) this.#discard()
      })
    }

    /** Closes the socket after the answer in flight (pg then reports the connection lost, and pg-pool drops it). */
    #discard(): void {
      const route = this.#route
      // before the connect finished: the connect's own check refuses the session
      if (route === undefined || this.#discarding) return
      this.#discarding = true
      chooser.forget(route)
      const connection = connectionOf(this)
      const close = () => setImmediate(() => connection.stream.destroy())
      if (Reflect.get(this, "readyForQuery") === true) close()
      else connection.once("readyForQuery", close)
    }

    async #connectChosen(): Promise<void> {
      const route = await chooser.choose()
      const connection = connectionOf(this)
      // pg-pool's connect timeout closed the socket while the chooser scanned
      if (connection.stream.destroyed) throw new Error("timeout expired")
      this.host = route.host
      this.port = route.port
      Reflect.set(this, "ssl", route.ssl)
      Reflect.set(connection, "ssl", route.ssl)
      try {
        await super.connect()
      } catch (err) {
        chooser.forget(route)
        throw err
      }
      const state = await sessionState(this, this.#parameters)
      if (!chooser.accepts(state)) {
        chooser.forget(route)
        await this.end().catch(() => undefined)
        throw new NoSuitableHostCause(chooser.attrs, [
          `${route.host}:${route.port} no longer fits (${state.hotStandby ? "a hot standby" : "read-only"})`
        ])
      }
      this.#route = route
      chooser.confirmed(route, state)
    }

    override connect(): Promise<Pg.Client>
    override connect(callback: ConnectCallback): void
    override connect(callback?: ConnectCallback): Promise<Pg.Client> | void {
      const connected = this.#connectChosen().then(() => this)
      if (callback === undefined) return connected
      connected.then(
        (client) => callback(null, client),
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)))
      )
    }
  }
