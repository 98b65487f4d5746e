/**
 * `DATABASE_URL`: postgres:// or postgresql:// connection URLs.
 *
 * The URL may carry a password, so the whole value is read `Redacted` and no message written
 * here ever repeats any part of it other than a well-formed query parameter name.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { AuthMethod, ChannelBinding, LoadBalanceHosts, TargetSessionAttrs } from "../DbSettings.js"
import {
  ChannelBinding as ChannelBindingSchema,
  type HostEntry,
  LoadBalanceHosts as LoadBalanceHostsSchema,
  parseHostList,
  parseRequireAuth,
  RequireAuth,
  TargetSessionAttrs as TargetSessionAttrsSchema
} from "./fields.js"

/**
 * The `sslmode` values we accept. libpq's `allow` and `prefer` (use TLS only if the server offers
 * it) are refused: a downgrade an attacker can trigger is not a setting we want to honour.
 *
 * @internal
 */
export const SslMode = Schema.Literal("disable", "require", "verify-ca", "verify-full")

/** @internal */
export type SslMode = typeof SslMode.Type

/** @internal */
export const DatabaseUrlParts = Schema.Struct({
  /** the first host */
  host: Schema.String,
  port: Schema.OptionFromSelf(Schema.Number),
  /** every host of the URL, libpq-style `postgresql://u@a:5432,b:5433/db` (one entry for one host) */
  hosts: Schema.Array(Schema.Struct({ host: Schema.String, port: Schema.OptionFromSelf(Schema.Number) })),
  /** libpq `target_session_attrs` */
  targetSessionAttrs: Schema.OptionFromSelf(TargetSessionAttrsSchema),
  /** libpq `load_balance_hosts` */
  loadBalanceHosts: Schema.OptionFromSelf(LoadBalanceHostsSchema),
  user: Schema.OptionFromSelf(Schema.String),
  database: Schema.OptionFromSelf(Schema.String),
  password: Schema.OptionFromSelf(Schema.RedactedFromSelf(Schema.String)),
  sslmode: Schema.OptionFromSelf(SslMode),
  /** libpq `channel_binding` */
  channelBinding: Schema.OptionFromSelf(ChannelBindingSchema),
  /** libpq `require_auth` */
  requireAuth: Schema.OptionFromSelf(Schema.typeSchema(RequireAuth))
})

/** @internal */
export type DatabaseUrlParts = typeof DatabaseUrlParts.Type

const hints: Record<string, string> = {
  sslrootcert: "DB_SSL_CA",
  sslcert: "DB_SSL_CERT",
  sslkey: "DB_SSL_KEY",
  sslpassword: "DB_SSL_KEY_PASSPHRASE",
  application_name: "DB_APPLICATION_NAME",
  connect_timeout: "DB_CONNECTION_TIMEOUT",
  password: "the secrets backend",
  user: "DB_USER",
  host: "DB_HOST",
  port: "DB_PORT",
  dbname: "DB_NAME"
}

const decodeComponent = (value: string): Option.Option<string> =>
  Either.getRight(Either.try(() => decodeURIComponent(value)))

/**
 * A libpq multi-host URL (`postgresql://u@a:5432,b:5433/db`) is not a WHATWG URL: its hosts are
 * taken out here and the rest is parsed with the first host in their place.
 */
const splitHosts = (value: string): Either.Either<{ readonly url: string; readonly hosts: ReadonlyArray<HostEntry> | undefined }, string> => {
  const match = /^(postgres(?:ql)?:\/\/)([^/?#]*)(.*)$/i.exec(value)
  const authority = match?.[2] ?? ""
  const at = authority.lastIndexOf("@")
  const hostList = authority.slice(at + 1)
  if (match === null || !hostList.includes(",")) return Either.right({ url: value, hosts: undefined })
  return Either.map(parseHostList(hostList), (hosts) => {
    const first = hosts[0]
    const firstText = first === undefined ? "" : first.host.includes(":") ? `[${first.host}]` : first.host
    const firstPort = first === undefined ? "" : Option.match(first.port, { onNone: () => "", onSome: (p) => `:${p}` })
    return { url: `${match[1]}${authority.slice(0, at + 1)}${firstText}${firstPort}${match[3]}`, hosts }
  })
}

const parse = (raw: string): Either.Either<DatabaseUrlParts, string> => {
  const trimmed = raw.trim()
  if (!/^postgres(?:ql)?:\/\//i.test(trimmed)) {
    return Either.left("the scheme must be postgres:// or postgresql://")
  }
  const split = splitHosts(trimmed)
  if (Either.isLeft(split)) return Either.left(split.left)
  const value = split.right.url
  if (!URL.canParse(value)) {
    return Either.left("not a valid URL (percent-encode special characters in the user name and password)")
  }
  const url = new URL(value)
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1")
  if (host === "") return Either.left("the URL has no host")
  if (!/^[A-Za-z0-9:][A-Za-z0-9._%:-]*$/.test(host)) {
    return Either.left("the host is not a host name or IP address")
  }
  let port: Option.Option<number> = Option.none()
  if (url.port !== "") {
    const n = Number(url.port)
    if (!Number.isInteger(n) || n < 1 || n > 65535) return Either.left("the port must be an integer from 1 to 65535")
    port = Option.some(n)
  }
  const user = decodeComponent(url.username)
  if (Option.isNone(user)) return Either.left("the user name has malformed percent-encoding")
  const password = decodeComponent(url.password)
  if (Option.isNone(password)) return Either.left("the password has malformed percent-encoding")
  const path = url.pathname.replace(/^\//, "")
  const database = decodeComponent(path)
  if (Option.isNone(database)) return Either.left("the database name has malformed percent-encoding")
  if (database.value.includes("/")) return Either.left("the database name must be a single path segment")
  let sslmode: Option.Option<SslMode> = Option.none()
  let channelBinding: Option.Option<ChannelBinding> = Option.none()
  let requireAuth: Option.Option<ReadonlyArray<AuthMethod>> = Option.none()
  let targetSessionAttrs: Option.Option<TargetSessionAttrs> = Option.none()
  let loadBalanceHosts: Option.Option<LoadBalanceHosts> = Option.none()
  for (const [key, parameter] of url.searchParams) {
    if (key === "target_session_attrs") {
      const attrs = Schema.decodeUnknownOption(TargetSessionAttrsSchema)(parameter)
      if (Option.isNone(attrs)) {
        return Either.left("target_session_attrs must be one of any, read-write, primary, standby, prefer-standby")
      }
      targetSessionAttrs = attrs
    } else if (key === "load_balance_hosts") {
      const balance = Schema.decodeUnknownOption(LoadBalanceHostsSchema)(parameter)
      if (Option.isNone(balance)) return Either.left("load_balance_hosts must be one of disable, random")
      loadBalanceHosts = balance
    } else if (key === "channel_binding") {
      if (parameter !== "disable" && parameter !== "prefer" && parameter !== "require") {
        return Either.left("channel_binding must be one of disable, prefer, require")
      }
      channelBinding = Option.some(parameter)
    } else if (key === "require_auth") {
      const methods = parseRequireAuth(parameter)
      if (Either.isLeft(methods)) {
        return Either.left("require_auth must list accepted methods from scram-sha-256, md5, password, none")
      }
      requireAuth = Option.some(methods.right)
    } else if (key === "sslmode") {
      if (parameter === "disable" || parameter === "require" || parameter === "verify-ca" || parameter === "verify-full") {
        sslmode = Option.some(parameter)
      } else if (parameter === "prefer" || parameter === "allow") {
        return Either.left(
          `sslmode=${parameter} (TLS only if the server offers it) is not supported: ` +
            `use verify-full, verify-ca, require, or disable (development only)`
        )
      } else {
        return Either.left("sslmode must be one of disable, require, verify-ca, verify-full")
      }
    } else {
      const name = /^[a-z_]{1,32}$/.test(key) ? `"${key}"` : "a query parameter"
      const hint = hints[key]
      return Either.left(
        `${name} is not supported in DATABASE_URL${hint === undefined ? "" : `; use ${hint} instead`}`
      )
    }
  }
  return Either.right({
    host,
    port,
    hosts: split.right.hosts ?? [{ host, port }],
    targetSessionAttrs,
    loadBalanceHosts,
    user: Option.liftPredicate(user.value, (s) => s !== ""),
    database: Option.liftPredicate(database.value, (s) => s !== ""),
    password: Option.map(Option.liftPredicate(password.value, (s) => s !== ""), Redacted.make),
    sslmode,
    channelBinding,
    requireAuth
  })
}

/**
 * `DATABASE_URL` (read `Redacted`) -> its parts.
 *
 * @internal
 */
export const DatabaseUrl = Schema.transformOrFail(Schema.RedactedFromSelf(Schema.String), DatabaseUrlParts, {
  strict: true,
  decode: (input, _, ast) =>
    Either.match(parse(Redacted.value(input)), {
      onLeft: (reason) => Effect.fail(new ParseResult.Type(ast, input, reason)),
      onRight: (parts) => Effect.succeed(parts)
    }),
  encode: (parts, _, ast) => Effect.fail(new ParseResult.Forbidden(ast, parts, "DATABASE_URL is decode-only"))
})
