/**
 * libpq's `require_auth` and `channel_binding` for `pg` 8, which has neither: it answers a
 * cleartext password request with the password, an MD5 request with the hash, and a
 * SCRAM-SHA-256-PLUS offer with plain SCRAM unless told otherwise. Any server whose certificate
 * chains to a trusted CA would get the production password. The policy decides on every
 * authentication request, before the password function is called or a byte is written, and
 * refuses with `AuthenticationMethodRefused`: the socket is destroyed and the connect fails.
 *
 * Why pg's underscore methods are overridden: pg has no hook between "the server asked for a
 * password" and "the password is fetched and sent". The connection emits the request as an event
 * (`authenticationCleartextPassword`, ...), but the client's own listener for it starts fetching
 * the password in the same `emit`, and a listener cannot stop its siblings. The only place to
 * decide first is the client's handler itself: `_handleAuthCleartextPassword`,
 * `_handleAuthMD5Password`, `_handleAuthSASL` (bound by name in `Client#_attachListeners`, so a
 * subclass's method is the one called). `_handleReadyForQuery` is overridden too: a refusal at
 * AuthenticationOk comes with the server's ReadyForQuery in the same packet, which pg would
 * otherwise report as a successful connect after the failure. `test/AuthPolicy.test.ts` fails if
 * pg renames any of them (`pgHandlers`).
 *
 * @internal
 */
import * as Predicate from "effect/Predicate"
import * as Tls from "node:tls"
import type * as Pg from "pg"
import type { AuthMethod, AuthSettings, DbSettings } from "@takumi/config"
import { AuthenticationMethodRefused } from "../DbError.js"
import type { ConnectTarget } from "./classify.js"
import { guardParser, unknownAuthenticationCode } from "./protocolGuard.js"

/** The SASL mechanism with channel binding (`tls-server-end-point`), and the one without. */
export const scramPlus = "SCRAM-SHA-256-PLUS"
export const scram = "SCRAM-SHA-256"

/** The methods of `pg.Client` the policy overrides; each must exist on pg's prototype. */
export const pgHandlers = [
  "_handleAuthCleartextPassword",
  "_handleAuthMD5Password",
  "_handleAuthSASL",
  "_handleReadyForQuery"
] as const

/** pg's `enableChannelBinding`: SCRAM-SHA-256-PLUS is used when offered over TLS unless disabled. */
export const enableChannelBinding = (settings: DbSettings): boolean => settings.auth.channelBinding !== "disable"

/** A method the client refused, and the rule that refused it. */
export interface Refusal {
  readonly method: AuthenticationMethodRefused["method"]
  readonly rule: AuthenticationMethodRefused["rule"]
  /** the request code of an `unsupported` method */
  readonly requestCode?: number
}

/** One authentication request of the server. */
export type Request =
  | { readonly method: "password" | "md5" }
  | { readonly method: "scram-sha-256"; readonly mechanisms: ReadonlyArray<string>; readonly tls: boolean }

/** The answer to a request: refuse it, or let pg answer (SASL: with exactly these mechanisms to choose from). */
export type Verdict =
  | { readonly _tag: "Refuse"; readonly refusal: Refusal }
  | Answer

/** pg may answer; for SASL it chooses among exactly these mechanisms. */
export interface Answer {
  readonly _tag: "Answer"
  readonly mechanisms: ReadonlyArray<string>
}

const refuse = (method: Refusal["method"], rule: Refusal["rule"]): Verdict => ({
  _tag: "Refuse",
  refusal: { method, rule }
})

const allows = (auth: AuthSettings, method: AuthMethod): boolean => auth.requireAuth.includes(method)

/**
 * libpq's order: `require_auth` first, then `channel_binding=require`, which answers nothing but
 * SASL, and SASL only with SCRAM-SHA-256-PLUS over TLS. For SASL the verdict names the one
 * mechanism pg may choose, so that pg's own choice cannot differ from the policy's (pg would try
 * -PLUS on a plain socket and fail, and use plain SCRAM when binding is disabled anyway).
 */
export const judgeRequest = (auth: AuthSettings, request: Request): Verdict => {
  if (!allows(auth, request.method)) return refuse(request.method, "MethodNotAllowed")
  if (request.method !== "scram-sha-256") {
    return auth.channelBinding === "require" ? refuse(request.method, "ChannelBindingRequired") : { _tag: "Answer", mechanisms: [] }
  }
  const bound = auth.channelBinding !== "disable" && request.tls && request.mechanisms.includes(scramPlus)
  if (auth.channelBinding === "require" && !bound) return refuse("scram-sha-256", "ChannelBindingRequired")
  // a server offering neither SCRAM variant keeps its list: pg then fails with its own error
  return { _tag: "Answer", mechanisms: bound ? [scramPlus] : request.mechanisms.filter((m) => m !== scramPlus) }
}

/** What a connection had done when the server sent AuthenticationOk. */
export interface Exchange {
  /** the method the server asked for, if it asked */
  readonly asked: AuthMethod | undefined
  /** the SASL mechanism the client used */
  readonly mechanism: string | undefined
  /** the password was sent (cleartext, md5) or the server's SCRAM signature arrived (AuthenticationSASLFinal) */
  readonly finished: boolean
}

/**
 * The check at AuthenticationOk, as libpq makes it: with `channel_binding=require` the exchange
 * must have been SCRAM-SHA-256-PLUS, completed (a server that skips it never proved anything);
 * without `none` in `require_auth` the server must have asked for a password and, for SCRAM,
 * completed the exchange. With `none` allowed a partial exchange passes, as in libpq: it is no
 * worse than the server asking for nothing.
 */
export const judgeOk = (auth: AuthSettings, exchange: Exchange): Refusal | undefined => {
  const method = exchange.asked ?? "none"
  if (auth.channelBinding === "require" && !(exchange.finished && exchange.mechanism === scramPlus)) {
    return { method, rule: "ChannelBindingRequired" }
  }
  if (allows(auth, "none")) return undefined
  if (exchange.asked === undefined) return { method, rule: "MethodNotAllowed" }
  return exchange.finished ? undefined : { method, rule: "AuthenticationIncomplete" }
}

/** The one warning of a pool whose server asked for md5 or cleartext, which the settings allow. */
export const weakMethodWarning = (settings: DbSettings, target: ConnectTarget, method: "password" | "md5"): string =>
  `PostgreSQL at ${target.host}:${target.port} asked user "${target.user}" for ${
    method === "md5" ? "an MD5 password hash (md5)" : "the password in cleartext (password)"
  }, which ${settings.environment} allows and production refuses (DB_REQUIRE_AUTH). Fix the server: ` +
  "set password_encryption = 'scram-sha-256', re-set the role's password (ALTER ROLE … PASSWORD …) and use " +
  "scram-sha-256 in pg_hba.conf, then reload (SELECT pg_reload_conf())."

/** What a policy reports. */
export interface AuthPolicyHooks {
  /** the server asked for md5 or cleartext and the settings allow it (called per connection) */
  readonly onWeakMethod: (method: "password" | "md5") => void
}

/** The SASL mechanisms of an AuthenticationSASL message. */
const mechanismsOf = (msg: unknown): ReadonlyArray<string> =>
  Predicate.hasProperty(msg, "mechanisms") && Array.isArray(msg.mechanisms) ? msg.mechanisms.filter(Predicate.isString) : []

/**
 * The policy of one pool, as a function from a `pg.Client` class to a subclass that enforces it
 * (so it composes with the monitor's instrumented client). Every client class of the pool — its
 * connections and the fresh clients of the probes — must be made by it.
 */
export const make = (
  settings: DbSettings,
  target: ConnectTarget,
  hooks: AuthPolicyHooks
): (Base: typeof Pg.Client) => typeof Pg.Client => {
  const auth = settings.auth
  const refusedError = (refusal: Refusal, offered: ReadonlyArray<string> | undefined) =>
    new AuthenticationMethodRefused({
      host: target.host,
      port: target.port,
      user: target.user,
      method: refusal.method,
      rule: refusal.rule,
      ...(refusal.requestCode === undefined ? {} : { requestCode: refusal.requestCode }),
      allowed: [...auth.requireAuth],
      ...(offered === undefined ? {} : { offered: [...offered] })
    })

  return (Base) => {
    /** pg's own handler, called when the policy lets pg answer */
    const inherited = (name: (typeof pgHandlers)[number]) => {
      const handler: unknown = Reflect.get(Base.prototype, name)
      return (self: Pg.Client, msg: unknown): void => {
        if (typeof handler === "function") Reflect.apply(handler, self, [msg])
      }
    }
    const cleartext = inherited("_handleAuthCleartextPassword")
    const md5 = inherited("_handleAuthMD5Password")
    const sasl = inherited("_handleAuthSASL")
    const readyForQuery = inherited("_handleReadyForQuery")

    return class AuthPolicyClient extends Base {
      #asked: AuthMethod | undefined = undefined
      #mechanism: string | undefined = undefined
      #finished = false
      /** refused, or failed otherwise, before the first ReadyForQuery: it must never become connected */
      #failed = false
      #ready = false

      constructor(config?: string | Pg.ClientConfig) {
        super(config)
        // pg does not listen to AuthenticationOk; these listeners run before pg's own (attached at connect)
        this.connection.on("authenticationOk", () => this.#onOk())
        this.connection.on("authenticationSASLFinal", () => {
          // pg verifies the server's signature right after this; a bad one fails the connect there
          this.#finished = true
        })
        this.connection.on("error", () => {
          if (!this.#ready) this.#failed = true
        })
        // a message pg's parser throws on fails this connection instead of the process
        guardParser(this, (thrown) => this.#unparsable(thrown))
      }

      /** pg's parser threw: an authentication request pg cannot answer is refused, anything else ends the connection. */
      #unparsable(thrown: unknown): void {
        const requestCode = unknownAuthenticationCode(thrown)
        if (requestCode !== undefined && !this.#failed && !this.#ready) {
          return this.#refuse({ method: "unsupported", rule: "MethodNotAllowed", requestCode })
        }
        if (!this.#ready) this.#failed = true
        this.connection.stream.destroy()
        const reason = thrown instanceof Error ? thrown.message : String(thrown)
        this.connection.emit("error", new Error(`the server sent a message the client cannot parse: ${reason}`))
      }

      /** Destroys the socket (nothing more is written) and fails the connect with the refusal. */
      #refuse(refusal: Refusal, offered?: ReadonlyArray<string>): void {
        this.#failed = true
        this.connection.stream.destroy()
        // pg's route for a failed connect: the connect callback gets this error, the later socket close is ignored
        this.connection.emit("error", refusedError(refusal, offered))
      }

      #onOk(): void {
        if (this.#failed || this.#ready) return
        const refusal = judgeOk(auth, { asked: this.#asked, mechanism: this.#mechanism, finished: this.#finished })
        if (refusal !== undefined) this.#refuse(refusal)
      }

      /** Decides one request: the verdict when pg may answer it, `undefined` when it was refused (or the connection failed). */
      #admit(request: Request): Answer | undefined {
        if (this.#failed) return undefined
        this.#asked = request.method
        const verdict = judgeRequest(auth, request)
        if (verdict._tag === "Refuse") {
          this.#refuse(verdict.refusal, request.method === "scram-sha-256" ? request.mechanisms : undefined)
          return undefined
        }
        return verdict
      }

      #weak(method: "password" | "md5", msg: unknown, answer: (self: Pg.Client, msg: unknown) => void): void {
        if (this.#admit({ method }) === undefined) return
        hooks.onWeakMethod(method)
        this.#finished = true
        answer(this, msg)
      }

      _handleAuthCleartextPassword(msg: unknown): void {
        this.#weak("password", msg, cleartext)
      }

      _handleAuthMD5Password(msg: unknown): void {
        this.#weak("md5", msg, md5)
      }

      _handleAuthSASL(msg: unknown): void {
        const mechanisms = mechanismsOf(msg)
        const verdict = this.#admit({
          method: "scram-sha-256",
          mechanisms,
          tls: this.connection.stream instanceof Tls.TLSSocket
        })
        if (verdict === undefined) return
        this.#mechanism = verdict.mechanisms.includes(scramPlus) ? scramPlus : scram
        sasl(this, { ...(Predicate.isObject(msg) ? msg : {}), mechanisms: [...verdict.mechanisms] })
      }

      _handleReadyForQuery(msg: unknown): void {
        if (!this.#ready) {
          // the startup ReadyForQuery of a connection already failed (often in the same packet)
          if (this.#failed) return
          this.#ready = true
        }
        readyForQuery(this, msg)
      }
    }
  }
}
