/**
 * Schemas for single environment variables (string in, typed value out).
 *
 * Messages authored here explain *why* a value was refused and never repeat the value: the
 * caller decides whether the value may be echoed (never for secret variables).
 *
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as AST from "effect/SchemaAST"
import * as Crypto from "node:crypto"
import * as Tls from "node:tls"
import type { AuthMethod, PemSource } from "../DbSettings.js"

/** @internal */
export const Environment = Schema.Literal("development", "test", "staging", "production")

/** @internal */
export const SecretsBackendKind = Schema.Literal("aws-secrets-manager", "vault", "env", "rds-iam")

/** @internal */
export const VaultAuthMethod = Schema.Literal("token", "approle", "kubernetes", "jwt")

/** @internal */
export const TlsVersion = Schema.Literal("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")

/**
 * true / false / 1 / 0 in any letter case, and nothing else: "yes", "on" or an empty value are
 * refused rather than guessed (a typo must not quietly turn TLS verification off).
 *
 * @internal
 */
export const BooleanFromEnv = Schema.transformOrFail(Schema.String, Schema.Boolean, {
  strict: true,
  decode: (input, _, ast) => {
    const lower = input.toLowerCase()
    if (lower === "true" || lower === "1") return ParseResult.succeed(true)
    if (lower === "false" || lower === "0") return ParseResult.succeed(false)
    return ParseResult.fail(new ParseResult.Type(ast, input, "not one of true, false, 1, 0"))
  },
  encode: (value) => ParseResult.succeed(value ? "true" : "false")
})

/** Decimal digits only: no exponent, hex, whitespace or empty string sneaks through `Number()`. */
const IntegerFromString = Schema.compose(
  Schema.String.pipe(Schema.pattern(/^[+-]?\d{1,15}$/)),
  Schema.NumberFromString
).pipe(Schema.int())

/** @internal */
export const intBetween = (min: number, max: number) => IntegerFromString.pipe(Schema.between(min, max))

/** @internal */
export const Port = intBetween(1, 65535)

/**
 * Node timers overflow above 2^31-1 ms (about 24.8 days) and then fire at once, so longer
 * durations are refused rather than silently turned into "immediately".
 *
 * @internal
 */
export const maxTimerMillis = 2_147_483_647

/** @internal */
export const Millis = intBetween(1, maxTimerMillis).pipe(Schema.compose(Schema.DurationFromMillis))

/** Milliseconds where 0 means "no limit" (`DB_STATEMENT_TIMEOUT=0`), as PostgreSQL reads it. */
export const MillisOrNone = intBetween(0, maxTimerMillis).pipe(Schema.compose(Schema.DurationFromMillis))

/** @internal */
export const ChannelBinding = Schema.Literal("disable", "prefer", "require")

/** `DB_POOLER`: what sits between the client and PostgreSQL. @internal */
export const Pooler = Schema.Literal("none", "pgbouncer")

const authMethods: ReadonlyArray<AuthMethod> = ["scram-sha-256", "md5", "password", "none"]

const isAuthMethod = (name: string): name is AuthMethod => authMethods.some((method) => method === name)

/**
 * libpq's `require_auth` list (`scram-sha-256,none`): the methods the server may ask for. libpq's
 * negated form (`!md5`) and the Kerberos / SSPI methods are not supported: say so rather than
 * guess.
 *
 * @internal
 */
export const parseRequireAuth = (text: string): Either.Either<ReadonlyArray<AuthMethod>, string> => {
  const names = text.split(",").map((name) => name.trim().toLowerCase())
  const methods: Array<AuthMethod> = []
  for (const name of names) {
    if (name.startsWith("!")) return Either.left("negated methods (!md5) are not supported; list the accepted ones")
    if (!isAuthMethod(name)) {
      return Either.left(`"${name.slice(0, 20)}" is not one of ${authMethods.join(", ")}`)
    }
    if (!methods.includes(name)) methods.push(name)
  }
  return Either.right(methods)
}

/** @internal */
export const RequireAuth = Schema.transformOrFail(Schema.String, Schema.Array(Schema.Literal(...authMethods)), {
  strict: true,
  decode: (input, _, ast) =>
    Either.match(parseRequireAuth(input), {
      onLeft: (reason) => ParseResult.fail(new ParseResult.Type(ast, input, reason)),
      onRight: ParseResult.succeed
    }),
  encode: (methods) => ParseResult.succeed(methods.join(","))
})

/** @internal */
export const Days = intBetween(1, 3650).pipe(
  Schema.compose(
    Schema.transform(Schema.Number, Schema.DurationFromSelf, {
      strict: true,
      decode: (days) => Duration.days(days),
      encode: (duration) => Math.round(Duration.toHours(duration) / 24)
    })
  )
)

/** A fraction in (0, 1]. */
export const Ratio = Schema.compose(
  Schema.String.pipe(Schema.pattern(/^(?:0?\.\d{1,6}|[01](?:\.\d{1,6})?)$/)),
  Schema.NumberFromString
).pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1))

/** A DNS name, an IP address or (development) a Unix socket directory. */
export const Host = Schema.String.pipe(Schema.pattern(/^(?:\/\S*|[A-Za-z0-9:][A-Za-z0-9._%:-]{0,252})$/))

/** @internal */
export const NonBlank = Schema.String.pipe(Schema.pattern(/^\S+$/))

/** One `host[:port]` of a host list; the port is absent when the entry names none. */
export interface HostEntry {
  readonly host: string
  readonly port: Option.Option<number>
}

const hostPattern = /^(?:\/\S*|[A-Za-z0-9:][A-Za-z0-9._%:-]{0,252})$/

/**
 * One entry of a libpq-style host list: `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6
 * address (more than one colon, so no port can be told from it).
 */
export const parseHostEntry = (text: string): Either.Either<HostEntry, string> => {
  const entry = text.trim()
  const bracketed = /^\[([0-9A-Fa-f:.%A-Za-z]+)\](?::(\d*))?$/.exec(entry)
  const hostPort = /^([^:[\]]+):(\d*)$/.exec(entry)
  const [host, portText] = bracketed !== null
    ? [bracketed[1] ?? "", bracketed[2]]
    : hostPort !== null
    ? [hostPort[1] ?? "", hostPort[2]]
    : [entry, undefined]
  if (!hostPattern.test(host)) return Either.left("is not a host name or IP address")
  if (portText === undefined || portText === "") return Either.right({ host, port: Option.none() })
  const port = Number(portText)
  return Number.isInteger(port) && port >= 1 && port <= 65535
    ? Either.right({ host, port: Option.some(port) })
    : Either.left("has a port that is not an integer from 1 to 65535")
}

/** A comma-separated libpq-style host list (`a:5432,b:5433`), each entry parsed by `parseHostEntry`. */
export const parseHostList = (text: string): Either.Either<ReadonlyArray<HostEntry>, string> => {
  const entries: Array<HostEntry> = []
  for (const [index, part] of text.split(",").entries()) {
    const entry = parseHostEntry(part)
    if (Either.isLeft(entry)) return Either.left(`host ${index + 1} of the list ${entry.left}`)
    entries.push(entry.right)
  }
  return Either.right(entries)
}

const HostEntrySchema = Schema.Struct({ host: Schema.String, port: Schema.OptionFromSelf(Schema.Number) })

/** `DB_HOST`: one host or a libpq-style list of `host[:port]` (a connection goes to one that fits `DB_TARGET_SESSION_ATTRS`). */
export const HostPortList = Schema.transformOrFail(Schema.String, Schema.Array(HostEntrySchema), {
  strict: true,
  decode: (input, _, ast) =>
    Either.match(parseHostList(input), {
      onLeft: (reason) => ParseResult.fail(new ParseResult.Type(ast, input, reason)),
      onRight: (entries) => ParseResult.succeed(entries)
    }),
  encode: (entries) =>
    ParseResult.succeed(
      entries.map(({ host, port }) =>
        Option.match(port, { onNone: () => host, onSome: (p) => `${host.includes(":") ? `[${host}]` : host}:${p}` })
      ).join(",")
    )
})

/** `DB_TARGET_SESSION_ATTRS` (libpq `target_session_attrs`). */
export const TargetSessionAttrs = Schema.Literal("any", "read-write", "primary", "standby", "prefer-standby")

/** `DB_LOAD_BALANCE_HOSTS` (libpq `load_balance_hosts`). */
export const LoadBalanceHosts = Schema.Literal("disable", "random")

/** A comma-separated list of host names or IP addresses (`VAULT_REDIRECT_HOSTS`), lower-cased. */
export const HostList = Schema.transformOrFail(Schema.String, Schema.Array(Schema.String), {
  strict: true,
  decode: (input, _, ast) => {
    const hosts = input.split(",").map((host) => host.trim().toLowerCase()).filter((host) => host !== "")
    return hosts.every((host) => /^[a-z0-9:][a-z0-9._:-]{0,252}$/.test(host))
      ? ParseResult.succeed(hosts)
      : ParseResult.fail(new ParseResult.Type(ast, input, "not a comma-separated list of host names (no ports, no schemes)"))
  },
  encode: (hosts) => ParseResult.succeed(hosts.join(","))
})

/** @internal */
export const PathLike = Schema.String.pipe(Schema.pattern(/^[^\s/]\S*$/))

/** PostgreSQL keeps 63 bytes of `application_name`; printable ASCII keeps it readable in logs. */
export const ApplicationName = Schema.String.pipe(Schema.pattern(/^[\x20-\x7e]{1,63}$/))

/** @internal */
export const AwsRegion = Schema.String.pipe(Schema.pattern(/^[a-z]{2}(?:-[a-z0-9]+)+$/))

/** @internal */
export const HttpUrl = Schema.String.pipe(
  Schema.filter((input) => {
    if (!/^https?:\/\/[^\s/]/i.test(input) || !URL.canParse(input)) return false
    // credentials in an endpoint URL would end up in logs and error messages: refuse them
    const url = new URL(input)
    return url.username === "" && url.password === ""
  })
)

/** A secret that must not be empty, kept `Redacted`. */
export const Secret = Schema.RedactedFromSelf(Schema.String.pipe(Schema.minLength(1)))

/** A secret token that must not be empty nor contain whitespace (a header value). */
export const SecretToken = Schema.RedactedFromSelf(NonBlank)

const PemSourceSchema = Schema.Union(
  Schema.TaggedStruct("File", { path: Schema.String }),
  Schema.TaggedStruct("Inline", { pem: Schema.RedactedFromSelf(Schema.String) })
)

const looksLikePem = (value: string): boolean => value.trimStart().startsWith("-----BEGIN")

/**
 * Inline PEM pasted into a single-line variable often arrives with literal `\n` escapes; restore
 * the line breaks so the TLS stack can parse it.
 */
const normalizePem = (value: string): string =>
  value.includes("\n") ? value.trim() : value.trim().replace(/\\n/g, "\n")

/** What a PEM variable must hold. */
export type PemKind = "certificates" | "certificate" | "privateKey" | "crl"

/** The largest PEM accepted: a CA bundle of every public root is about 200 KiB. */
export const maxPemBytes = 1024 * 1024

const blocks = (pem: string, label: string): Array<string> =>
  pem.match(new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, "g")) ?? []

const parses = (parse: () => unknown): boolean => {
  try {
    parse()
    return true
  } catch {
    return false
  }
}

/**
 * Parses the PEM with OpenSSL (node:crypto, node:tls) as the connection will, so that a broken
 * file is a `ConfigError` on its own variable when the configuration loads rather than a TLS
 * error blamed on the server. Reasons never quote the content.
 */
const pemProblem = (kind: PemKind, pem: string): string | undefined => {
  if (pem.length > maxPemBytes) return `it is larger than ${maxPemBytes / 1024} KiB, which no PEM file for this purpose is`
  switch (kind) {
    case "certificates":
    case "certificate": {
      if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
        return "it holds a private key: it must hold certificates only (never put a key in a certificate file)"
      }
      const certificates = blocks(pem, "CERTIFICATE")
      if (certificates.length === 0) return "it holds no -----BEGIN CERTIFICATE----- block"
      const broken = certificates.findIndex((block) => !parses(() => new Crypto.X509Certificate(block)))
      return broken === -1 ? undefined : `certificate ${broken + 1} of ${certificates.length} cannot be parsed`
    }
    case "privateKey": {
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) return "it holds no -----BEGIN ... PRIVATE KEY----- block"
      // an encrypted key is opened with DB_SSL_KEY_PASSPHRASE when the TLS options are built
      if (/ENCRYPTED/.test(pem)) return undefined
      return parses(() => Crypto.createPrivateKey(pem)) ? undefined : "the private key cannot be parsed"
    }
    case "crl":
      if (blocks(pem, "X509 CRL").length === 0) return "it holds no -----BEGIN X509 CRL----- block"
      return parses(() => Tls.createSecureContext({ crl: pem })) ? undefined : "the revocation list cannot be parsed"
  }
}

const checkPemFile = (kind: PemKind, path: string, actual: unknown, ast: AST.AST) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const refuse = (reason: string) => new ParseResult.Type(ast, actual, reason)
    const info = yield* fs.stat(path).pipe(
      Effect.mapError((error) =>
        refuse(
          error._tag === "SystemError" && error.reason === "NotFound"
            ? "no such file"
            : error._tag === "SystemError" && error.reason === "PermissionDenied"
            ? "the file cannot be accessed (permission denied)"
            : "the file cannot be examined"
        )
      )
    )
    if (info.size > BigInt(maxPemBytes)) {
      return yield* Effect.fail(refuse(`the file is ${info.size} bytes, larger than any PEM file for this purpose`))
    }
    if (info.type !== "File") {
      return yield* Effect.fail(
        refuse(info.type === "Directory" ? "is a directory, not a PEM file" : "is not a regular file")
      )
    }
    yield* fs.access(path, { readable: true }).pipe(Effect.mapError(() => refuse("the file is not readable")))
    const content = yield* fs.readFileString(path).pipe(Effect.mapError(() => refuse("the file cannot be read")))
    if (!content.includes("-----BEGIN")) {
      return yield* Effect.fail(
        refuse("the file holds no PEM document (no -----BEGIN line; convert DER with `openssl x509 -inform der`)")
      )
    }
    const problem = pemProblem(kind, content)
    if (problem !== undefined) return yield* Effect.fail(refuse(problem))
    const source: PemSource = { _tag: "File", path }
    return source
  })

const decodePem = (kind: PemKind, value: string, actual: unknown, ast: AST.AST) => {
  if (looksLikePem(value)) {
    const pem = normalizePem(value)
    if (!/-----END [A-Z0-9 ]+-----/.test(pem)) {
      return Effect.fail(new ParseResult.Type(ast, actual, "inline PEM without its -----END line"))
    }
    const problem = pemProblem(kind, pem)
    if (problem !== undefined) return Effect.fail(new ParseResult.Type(ast, actual, problem))
    const source: PemSource = { _tag: "Inline", pem: Redacted.make(pem) }
    return Effect.succeed(source)
  }
  if (value.trim() === "") {
    return Effect.fail(new ParseResult.Type(ast, actual, "empty"))
  }
  return checkPemFile(kind, value, actual, ast)
}

/** Certificates (or a CRL): a readable PEM file's path, or inline PEM, parsed as `kind`. */
export const PemFromString = (kind: Exclude<PemKind, "privateKey">) =>
  Schema.transformOrFail(Schema.String, PemSourceSchema, {
    strict: true,
    decode: (input, _, ast) => decodePem(kind, input, input, ast),
    encode: (source) => ParseResult.succeed(source._tag === "File" ? source.path : Redacted.value(source.pem))
  })

/** A private key (kept `Redacted` from the start): a readable PEM file's path, or inline PEM. */
export const PemFromRedacted = Schema.transformOrFail(Schema.RedactedFromSelf(Schema.String), PemSourceSchema, {
  strict: true,
  decode: (input, _, ast) => decodePem("privateKey", Redacted.value(input), input, ast),
  encode: (source) =>
    ParseResult.succeed(source._tag === "File" ? Redacted.make(source.path) : source.pem)
})
