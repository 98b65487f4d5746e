/**
 * Every way reaching PostgreSQL can fail, one class per failure mode. Each error names where it
 * happened (`host`, `port`), keeps the underlying driver code (a SQLSTATE such as `28P01` or a
 * Node code such as `CERT_HAS_EXPIRED`) where there is one, and carries a `message` that says
 * what failed, where, and how to fix it. No error ever holds a password: the fields are the
 * target, the code and the server's or TLS stack's own reason text, none of which contain one.
 *
 * Callers branch with `Effect.catchTag("CertificateExpired", ...)`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

const Target = {
  /** the host the client tried to reach (`DB_HOST`, or the replica's) */
  host: Schema.String,
  /** the port the client tried to reach */
  port: Schema.Number
}

const where = (self: { readonly host: string; readonly port: number }): string => `${self.host}:${self.port}`

const because = (reason: string | undefined): string => (reason === undefined || reason === "" ? "" : ` (${reason})`)

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

/**
 * The server answered the TLS request with "no" (`ssl = off`). Takumi DB never falls back to an
 * unencrypted connection when TLS is enabled.
 *
 * @since 0.1.0
 * @category errors
 */
export class SslNotSupportedByServer extends Schema.TaggedError<SslNotSupportedByServer>()(
  "SslNotSupportedByServer",
  { ...Target }
) {
  override get message(): string {
    return `The PostgreSQL server at ${where(this)} does not support SSL connections. ` +
      "Enable TLS on the server (postgresql.conf: ssl = on, ssl_cert_file, ssl_key_file; `SHOW ssl;` must say on) " +
      "— the client never falls back to an unencrypted connection."
  }
}

/**
 * The server's certificate chain does not lead to a CA the client trusts.
 *
 * @since 0.1.0
 * @category errors
 */
export class CertificateUntrusted extends Schema.TaggedError<CertificateUntrusted>()("CertificateUntrusted", {
  ...Target,
  /** `SELF_SIGNED_CERT_IN_CHAIN`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `DEPTH_ZERO_SELF_SIGNED_CERT`, ... */
  code: Schema.String
}) {
  override get message(): string {
    if (this.code === "INVALID_PURPOSE") {
      return `The certificate presented by ${where(this)} is not meant for a TLS server (INVALID_PURPOSE: its ` +
        "extendedKeyUsage lacks serverAuth). Reissue the server certificate with extendedKeyUsage=serverAuth " +
        "(a client certificate installed as ssl_cert_file shows this)."
    }
    return `The certificate presented by ${where(this)} is not trusted (${this.code}). ` +
      "Set DB_SSL_CA to the CA that signed the server certificate " +
      "(development only: DB_SSL_REJECT_UNAUTHORIZED=false)."
  }
}

/**
 * The server's certificate is listed in the certificate revocation list `DB_SSL_CRL`
 * (`CERT_REVOKED`): its key is compromised or it was withdrawn.
 *
 * @since 0.1.0
 * @category errors
 */
export class CertificateRevoked extends Schema.TaggedError<CertificateRevoked>()("CertificateRevoked", {
  ...Target,
  /** `CERT_REVOKED` */
  code: Schema.String
}) {
  override get message(): string {
    return `The certificate presented by ${where(this)} has been revoked (${this.code}, listed in DB_SSL_CRL). ` +
      "Install a newly issued server certificate (ssl_cert_file, ssl_key_file) and reload PostgreSQL; if the " +
      "revocation is a mistake, publish a corrected CRL and point DB_SSL_CRL at it."
  }
}

/**
 * The server's certificate is outside its validity period. Both directions are this one error:
 * `CERT_HAS_EXPIRED` (renew the certificate) and `CERT_NOT_YET_VALID` (a certificate issued for
 * the future, or a client/server clock that is wrong) — in both cases the certificate cannot be
 * used now and the remedy is on the certificate or the clock; `code` tells which.
 *
 * @since 0.1.0
 * @category errors
 */
export class CertificateExpired extends Schema.TaggedError<CertificateExpired>()("CertificateExpired", {
  ...Target,
  /** `CERT_HAS_EXPIRED` or `CERT_NOT_YET_VALID` */
  code: Schema.String
}) {
  override get message(): string {
    return this.code === "CERT_NOT_YET_VALID"
      ? `The certificate presented by ${where(this)} is not valid yet (${this.code}). ` +
        "Check the clocks of this machine and the server, or reissue the certificate with a notBefore in the past."
      : `The certificate presented by ${where(this)} has expired (${this.code}). ` +
        "Renew the server certificate (ssl_cert_file) and reload PostgreSQL (SELECT pg_reload_conf())."
  }
}

/**
 * The certificate is trusted but was not issued for the host the client connected to.
 *
 * @since 0.1.0
 * @category errors
 */
export class CertificateHostMismatch extends Schema.TaggedError<CertificateHostMismatch>()(
  "CertificateHostMismatch",
  {
    ...Target,
    /** `ERR_TLS_CERT_ALTNAME_INVALID` */
    code: Schema.String,
    /** the TLS stack's explanation, e.g. which names the certificate does carry */
    reason: Schema.optional(Schema.String)
  }
) {
  override get message(): string {
    return `The certificate presented by ${where(this)} is not valid for host "${this.host}"${because(this.reason)}. ` +
      "Set DB_HOST to a name listed in the certificate's subjectAltName, or reissue the certificate for this host."
  }
}

/**
 * Client and server could not agree on a TLS version or cipher: the server only offers TLS
 * below the configured minimum (TLS 1.2 by default), or only ciphers outside the strong set
 * (ECDHE with AES-GCM or ChaCha20-Poly1305), which the client never offers.
 *
 * @since 0.1.0
 * @category errors
 */
export class TlsProtocolRejected extends Schema.TaggedError<TlsProtocolRejected>()("TlsProtocolRejected", {
  ...Target,
  /** `EPROTO`, `ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION`, `ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE`, ... */
  code: Schema.String,
  reason: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `The TLS handshake with ${where(this)} failed: no common protocol version or cipher${because(this.reason)}. ` +
      "The server must offer TLS 1.2 or newer with an AES-GCM or ChaCha20-Poly1305 cipher " +
      "(postgresql.conf: ssl_min_protocol_version = 'TLSv1.2', ssl_ciphers = 'HIGH:!aNULL'; TLS 1.3 recommended)."
  }
}

/**
 * The server refused the password (SQLSTATE 28P01): wrong password or unknown user. A rotated
 * secret has already been re-read once before this is reported.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthenticationFailed extends Schema.TaggedError<AuthenticationFailed>()("AuthenticationFailed", {
  ...Target,
  user: Schema.String,
  /** `28P01` */
  code: Schema.String
}) {
  override get message(): string {
    return `Password authentication failed for user "${this.user}" at ${where(this)} (${this.code}). ` +
      "Check that DB_USER exists and that the DB_PASSWORD secret in the secrets backend matches the role's password " +
      "(after a rotation, both ALTER ROLE and the secret must be updated)."
  }
}

/** PostgreSQL's names of the authentication requests pg cannot answer, by code. */
const requestNames: Readonly<Record<number, string>> = {
  2: ": KerberosV5",
  6: ": SCM credentials",
  7: ": GSSAPI",
  8: ": GSSAPI continue",
  9: ": SSPI"
}

/**
 * The client refused to authenticate the way the server asked, before sending anything derived
 * from the password (libpq's `require_auth` and `channel_binding`). A server that asks for the
 * password in cleartext or as an MD5 hash, or that offers SCRAM without channel binding when
 * `DB_CHANNEL_BINDING=require`, may be an impostor holding a certificate the client trusts: it
 * gets nothing. `rule` says which setting refused it:
 *
 * - `MethodNotAllowed`: `method` is not in `DB_REQUIRE_AUTH` (`none`: the server let the client
 *   in without asking for a password at all — trust or certificate authentication).
 * - `ChannelBindingRequired`: `DB_CHANNEL_BINDING=require` and the server did not authenticate
 *   with SCRAM-SHA-256-PLUS over TLS.
 * - `AuthenticationIncomplete`: the server declared the client authenticated before finishing
 *   the SCRAM exchange (it never proved it knows the password's verifier), and `DB_REQUIRE_AUTH`
 *   lacks `none`.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthenticationMethodRefused extends Schema.TaggedError<AuthenticationMethodRefused>()(
  "AuthenticationMethodRefused",
  {
    ...Target,
    user: Schema.String,
    /**
     * what the server asked for: `password` (cleartext), `md5`, `scram-sha-256`, `none` (no password
     * request) or `unsupported` (a request pg cannot answer, such as GSSAPI: `requestCode`)
     */
    method: Schema.Literal("password", "md5", "scram-sha-256", "none", "unsupported"),
    /** the AuthenticationRequest code of an `unsupported` request (7 GSSAPI, 9 SSPI, ...) */
    requestCode: Schema.optional(Schema.Number),
    rule: Schema.Literal("MethodNotAllowed", "ChannelBindingRequired", "AuthenticationIncomplete"),
    /** the SASL mechanisms the server offered, when it asked for SASL */
    offered: Schema.optional(Schema.Array(Schema.String)),
    /** `DB_REQUIRE_AUTH` in force */
    allowed: Schema.Array(Schema.String)
  }
) {
  override get message(): string {
    const who = `user "${this.user}" at ${where(this)}`
    const asked = this.method === "password"
      ? "asked for the password in cleartext (password)"
      : this.method === "md5"
      ? "asked for an MD5 password hash (md5)"
      : this.method === "scram-sha-256"
      ? `asked for SCRAM-SHA-256${this.offered === undefined ? "" : ` (offered: ${this.offered.join(", ")})`}`
      : this.method === "unsupported"
      ? `asked for an authentication method this client cannot answer (AuthenticationRequest code ${this.requestCode ?? "?"}${
        requestNames[this.requestCode ?? -1] ?? ""
      })`
      : "let the client in without asking for a password (trust or certificate authentication)"
    const toScram = "If this is the real server, move the role to SCRAM: on the server set " +
      "password_encryption = 'scram-sha-256', re-set the role's password (ALTER ROLE … PASSWORD …) and use " +
      "scram-sha-256 in pg_hba.conf, then reload (SELECT pg_reload_conf()). If it is not, something is impersonating it."
    switch (this.rule) {
      case "ChannelBindingRequired":
        return `The server ${asked} for ${who}, but DB_CHANNEL_BINDING=require accepts only SCRAM-SHA-256-PLUS ` +
          "over TLS; nothing derived from the password was sent. Connect directly to PostgreSQL with TLS " +
          "(DB_SSL=true; PgBouncer does not offer SCRAM-SHA-256-PLUS), or set DB_CHANNEL_BINDING=prefer."
      case "AuthenticationIncomplete":
        return `The server accepted ${who} before completing the SCRAM exchange: it never proved that it knows ` +
          `the role's password verifier, which DB_REQUIRE_AUTH (${this.allowed.join(",")}) does not allow without ` +
          `"none". Something may be impersonating the server; check DB_HOST and the server's certificate.`
      case "MethodNotAllowed":
        return `The server ${asked} for ${who}, which DB_REQUIRE_AUTH (${this.allowed.join(",")}) does not allow; ` +
          "nothing derived from the password was sent. " +
          (this.method === "none"
            ? "Use scram-sha-256 in pg_hba.conf, or add none to DB_REQUIRE_AUTH if certificate authentication is intended."
            : this.method === "scram-sha-256"
            ? "Add scram-sha-256 to DB_REQUIRE_AUTH, or authenticate with a client certificate (pg_hba cert)."
            : this.method === "unsupported"
            ? "Use scram-sha-256 (or cert) for this role in pg_hba.conf and reload; if the server should not ask for it, something is impersonating it."
            : toScram)
    }
  }
}

/**
 * The server refused the SCRAM exchange because channel binding failed (SQLSTATE 28000, "SCRAM
 * channel binding check failed" or "… negotiation error"): the TLS certificate the client bound
 * its proof to is not the server's own, or the server's SCRAM-SHA-256-PLUS offer never reached the
 * client. Either way something between the two terminates TLS or rewrites the handshake: a
 * TLS-inspecting proxy or load balancer, or an attacker holding a certificate the trusted CA issued
 * for this host. The proof the client sent is bound to the certificate it saw, so the
 * interceptor cannot log in with it (test/Interception.test.ts shows the server refusing it).
 *
 * @since 0.1.0
 * @category errors
 */
export class ChannelBindingFailed extends Schema.TaggedError<ChannelBindingFailed>()("ChannelBindingFailed", {
  ...Target,
  user: Schema.String,
  code: Schema.String,
  /** the server's own reason */
  reason: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `The server at ${where(this)} refused the SCRAM exchange of user "${this.user}" (${this.code})${
      because(this.reason)
    }: the TLS connection the client authenticated over is not the server's own. Something between the client ` +
      "and PostgreSQL terminates TLS or rewrites the handshake (a TLS-inspecting proxy or load balancer, or an " +
      `attacker holding a certificate for ${this.host} from the CA in DB_SSL_CA); the proof sent is bound to the ` +
      "certificate the client saw and cannot be replayed. Connect to PostgreSQL directly and find who presents " +
      "that certificate; do not disable channel binding to get past this."
  }
}

/**
 * The server refused the connection before or instead of checking a password (SQLSTATE 28000):
 * no `pg_hba.conf` line matches, the line demands TLS or a client certificate, the client
 * certificate's CN does not match the user, or the server does not trust the client certificate.
 * Also a PgBouncer refusing a startup parameter (08P01 "unsupported startup parameter").
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionRejected extends Schema.TaggedError<ConnectionRejected>()("ConnectionRejected", {
  ...Target,
  user: Schema.String,
  database: Schema.String,
  /** `28000`, `08P01` (PgBouncer) or a TLS alert code such as `ERR_SSL_TLSV1_ALERT_UNKNOWN_CA` */
  code: Schema.String,
  /** the server's own reason, e.g. "connection requires a valid client certificate" */
  reason: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const reason = this.reason ?? ""
    const fix = /client certificate|certificate authentication/i.test(reason)
      ? "Set DB_SSL_CERT and DB_SSL_KEY to a client certificate signed by a CA in the server's ssl_ca_file, whose CN is the user name."
      : this.code === "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA"
      ? "The server does not trust the client certificate: DB_SSL_CERT must be signed by a CA listed in the server's ssl_ca_file."
      : /no encryption/i.test(reason)
      ? "The server requires TLS for this client: set DB_SSL=true."
      : /unsupported startup parameter/i.test(reason)
      ? "A connection pooler (PgBouncer) refused a startup parameter: set DB_POOLER=pgbouncer (the client then sends " +
        "only what PgBouncer accepts and checks the statement bounds on the server) and unset PGOPTIONS / PGREPLICATION."
      : "Add a matching line to pg_hba.conf on the server (e.g. hostssl <database> <user> <client address> scram-sha-256) and reload it."
    return `The server at ${where(this)} rejected user "${this.user}" for database "${this.database}" (${this.code})${because(reason)}. ${fix}`
  }
}

/**
 * The database named in `DB_NAME` does not exist on the server (SQLSTATE 3D000).
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseNotFound extends Schema.TaggedError<DatabaseNotFound>()("DatabaseNotFound", {
  ...Target,
  database: Schema.String,
  /** `3D000` */
  code: Schema.String
}) {
  override get message(): string {
    return `Database "${this.database}" does not exist at ${where(this)} (${this.code}). ` +
      "Check DB_NAME, or create the database (CREATE DATABASE ...)."
  }
}

/**
 * The server has no connection slot left (SQLSTATE 53300): `max_connections` or the role's
 * connection limit is reached.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyConnections extends Schema.TaggedError<TooManyConnections>()("TooManyConnections", {
  ...Target,
  /** `53300` */
  code: Schema.String,
  reason: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `The server at ${where(this)} has no connection slot left (${this.code})${because(this.reason)}. ` +
      "Lower DB_POOL_MAX so that pool size x instances stays below 80% of max_connections " +
      "(`takumi-db pool-size`), or raise max_connections / the role's CONNECTION LIMIT."
  }
}

/**
 * Nothing accepted the TCP connection (`ECONNREFUSED`), or the host could not be resolved or
 * reached (`ENOTFOUND`, `EHOSTUNREACH`, ...).
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionRefused extends Schema.TaggedError<ConnectionRefused>()("ConnectionRefused", {
  ...Target,
  /** `ECONNREFUSED`, `ENOTFOUND`, `EHOSTUNREACH`, `ENETUNREACH`, `EAI_AGAIN` */
  code: Schema.String
}) {
  override get message(): string {
    return this.code === "ECONNREFUSED"
      ? `Nothing is listening at ${where(this)} (${this.code}). ` +
        "Check DB_HOST and DB_PORT, that PostgreSQL is running, and its listen_addresses."
      : `Cannot reach ${where(this)} (${this.code}). Check DB_HOST (DNS name), routing and firewalls.`
  }
}

/**
 * `DB_HOST` lists several hosts and none of them is the kind of server `DB_TARGET_SESSION_ATTRS`
 * asks for: during a failover only standbys answer until one is promoted, or every listed host
 * is read-only. Retried on the reconnect backoff like a refused connection.
 *
 * @since 0.1.0
 * @category errors
 */
export class NoSuitableHost extends Schema.TaggedError<NoSuitableHost>()("NoSuitableHost", {
  ...Target,
  /** `DB_TARGET_SESSION_ATTRS` */
  targetSessionAttrs: Schema.String,
  /** what each listed host was seen to be, e.g. `db2:5432 is a hot standby` */
  seen: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `No host of DB_HOST fits DB_TARGET_SESSION_ATTRS=${this.targetSessionAttrs}: ${this.seen.join("; ")}. ` +
      "During a failover this lasts until a standby is promoted; otherwise check that DB_HOST lists the primary " +
      "and that DB_TARGET_SESSION_ATTRS asks for the kind of server you mean."
  }
}

/**
 * Connecting (TCP, TLS handshake and authentication together) took longer than
 * `DB_CONNECTION_TIMEOUT`: a firewall dropping packets, a server that accepts and never answers,
 * or an overloaded server.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectTimeout extends Schema.TaggedError<ConnectTimeout>()("ConnectTimeout", {
  ...Target,
  timeoutMillis: Schema.Number
}) {
  override get message(): string {
    return `No connection to ${where(this)} within ${this.timeoutMillis} ms. ` +
      "Check that DB_HOST and DB_PORT point at PostgreSQL and that no firewall or security group drops the traffic; " +
      "raise DB_CONNECTION_TIMEOUT only if the server is known to be slow to accept."
  }
}

/**
 * One thing the startup check found wrong with the server or the credentials.
 *
 * @since 0.1.0
 * @category models
 */
export const PostureRule = Schema.Literal(
  "TlsNotNegotiated",
  "ProtocolTooOld",
  "WeakCipher",
  "SuperuserRole",
  "DefaultPassword",
  "SelfSignedCertificate",
  "WeakRsaKey",
  "BypassRlsRole",
  "ServerProgramExecution",
  "CreateRolePrivilege",
  "CreateDatabasePrivilege",
  "ReplicationPrivilege",
  "ReadAllDataRole",
  "WriteAllDataRole",
  "DatabaseOwner",
  "CreateOnPublicSchema",
  "StatementBoundsNotApplied"
)

/**
 * @since 0.1.0
 * @category models
 */
export type PostureRule = typeof PostureRule.Type

/**
 * @since 0.1.0
 * @category models
 */
export const PostureFinding = Schema.Struct({
  rule: PostureRule,
  /** what was observed, e.g. "negotiated TLSv1.1" — never a secret */
  detail: Schema.String
})

/**
 * @since 0.1.0
 * @category models
 */
export type PostureFinding = typeof PostureFinding.Type

/**
 * The remedy for each posture rule, used in `InsecureServer` messages and development warnings.
 *
 * @since 0.1.0
 * @category models
 */
export const postureFix: Readonly<Record<PostureRule, string>> = {
  TlsNotNegotiated: "enable TLS: DB_SSL=true on the client and ssl = on on the server",
  ProtocolTooOld: "set ssl_min_protocol_version = 'TLSv1.2' on the server (and DB_SSL_MIN_VERSION=TLSv1.2 or TLSv1.3)",
  WeakCipher: "restrict the server's ssl_ciphers to ECDHE with AES-GCM or ChaCha20-Poly1305",
  SuperuserRole: "connect as a least-privilege role (ALTER ROLE ... NOSUPERUSER or a dedicated application role)",
  DefaultPassword: "rotate the role's password to a long random secret (ALTER ROLE ... PASSWORD) and update the secret",
  SelfSignedCertificate: "issue the server certificate from a CA and set DB_SSL_CA to that CA",
  WeakRsaKey: "reissue the server certificate with an RSA key of at least 2048 bits (4096 recommended) or an EC key",
  BypassRlsRole: "ALTER ROLE <role> NOBYPASSRLS: row-level security must apply to the application",
  ServerProgramExecution: "REVOKE pg_execute_server_program FROM <role>: an application never runs programs on the database host",
  CreateRolePrivilege: "ALTER ROLE <role> NOCREATEROLE; manage roles with a separate administrative role",
  CreateDatabasePrivilege: "ALTER ROLE <role> NOCREATEDB; create databases with a separate administrative role",
  ReplicationPrivilege: "ALTER ROLE <role> NOREPLICATION; replicate with a dedicated replication role",
  ReadAllDataRole: "REVOKE pg_read_all_data FROM <role> and GRANT SELECT on the tables the application reads",
  WriteAllDataRole: "REVOKE pg_write_all_data FROM <role> and GRANT INSERT/UPDATE/DELETE on the tables the application writes",
  DatabaseOwner: "ALTER DATABASE <db> OWNER TO <migration role>; run migrations as the owner and the application as a role with grants only",
  CreateOnPublicSchema: "REVOKE CREATE ON SCHEMA public FROM PUBLIC, <role> (and let only the migration role own the schema)",
  StatementBoundsNotApplied:
    "behind PgBouncer set the bounds on the server: ALTER ROLE <role> SET statement_timeout = <DB_STATEMENT_TIMEOUT>, " +
    "ALTER ROLE <role> SET idle_in_transaction_session_timeout = <DB_IDLE_IN_TRANSACTION_TIMEOUT> (or set the variables to what the server enforces)"
}

/**
 * The connection works but the startup check found the server or the credentials below the
 * security policy. Raised in production; other environments log the same findings as warnings.
 *
 * @since 0.1.0
 * @category errors
 */
export class InsecureServer extends Schema.TaggedError<InsecureServer>()("InsecureServer", {
  ...Target,
  findings: Schema.NonEmptyArray(PostureFinding)
}) {
  override get message(): string {
    const list = this.findings.map((f) => `${f.rule}: ${f.detail} — fix: ${postureFix[f.rule]}`).join("; ")
    return `Refusing to use the PostgreSQL server at ${where(this)} in production: ${list}.`
  }
}

/**
 * A client certificate, key, CA file or key passphrase could not be read or used.
 *
 * @since 0.1.0
 * @category errors
 */
export class TlsMaterialInvalid extends Schema.TaggedError<TlsMaterialInvalid>()("TlsMaterialInvalid", {
  /** the variable the material came from: `DB_SSL_CA`, `DB_SSL_CERT`, `DB_SSL_KEY`, `DB_SSL_KEY_PASSPHRASE` */
  variable: Schema.String,
  /** the file path, when the material is a file (never inline PEM) */
  path: Schema.optional(Schema.String),
  code: Schema.optional(Schema.String),
  reason: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const source = this.path === undefined ? "" : ` at ${this.path}`
    return `The TLS material from ${this.variable}${source} cannot be used${because(this.reason)}. ` +
      `Point ${this.variable} at a readable PEM file (or inline PEM); for an encrypted key set DB_SSL_KEY_PASSPHRASE.`
  }
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

/**
 * No pooled connection became free within the connect timeout: every connection is busy.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolExhausted extends Schema.TaggedError<PoolExhausted>()("PoolExhausted", {
  ...Target,
  max: Schema.Number,
  timeoutMillis: Schema.Number,
  /** callers queued for a connection when this one gave up, itself included (pg-pool `waitingCount`) */
  waiting: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    const waiting = this.waiting === undefined ? "" : ` (${this.waiting} callers were waiting)`
    return `All ${this.max} connections to ${where(this)} stayed busy for ${this.timeoutMillis} ms${waiting}. ` +
      "Investigate slow queries or long transactions, or increase DB_POOL_MAX (within the server's max_connections)."
  }
}

/**
 * An established connection went away: the server shut down or restarted (57P01, 57P03),
 * an administrator terminated the backend, or the network reset it.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionLost extends Schema.TaggedError<ConnectionLost>()("ConnectionLost", {
  ...Target,
  /** `57P01`, `57P03`, `ECONNRESET`, ... when there is one */
  code: Schema.optional(Schema.String),
  reason: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const code = this.code === undefined ? "" : ` (${this.code})`
    if (this.code === "25P03") {
      // not an outage: the server ended a session whose caller left its transaction open
      return `The server at ${where(this)} ended a session whose transaction stayed idle longer than ` +
        `idle_in_transaction_session_timeout (DB_IDLE_IN_TRANSACTION_TIMEOUT)${code}${because(this.reason)}; the ` +
        "transaction was rolled back. Do not keep a transaction open while waiting on something else (an HTTP call, " +
        "a queue, user input); raise DB_IDLE_IN_TRANSACTION_TIMEOUT only if such a wait is intended."
    }
    return `The connection to ${where(this)} was lost${code}${because(this.reason)}. ` +
      "The pool replaces broken connections by itself; retry the operation if it is idempotent, " +
      "and check the server's log for a restart, failover or terminated backend."
  }
}

/**
 * The read replica could not be reached within `DB_FAILOVER_TIMEOUT`.
 *
 * @since 0.1.0
 * @category errors
 */
export class FailoverTimeout extends Schema.TaggedError<FailoverTimeout>()("FailoverTimeout", {
  ...Target,
  timeoutMillis: Schema.Number
}) {
  override get message(): string {
    return `The read replica at ${where(this)} did not answer within ${this.timeoutMillis} ms. ` +
      "Check DB_READ_REPLICA_HOST / DB_READ_REPLICA_PORT and the replica's health, or raise DB_FAILOVER_TIMEOUT."
  }
}

/**
 * A statement ran past its time bound. `side: "server"`: PostgreSQL cancelled it when it reached
 * `statement_timeout` (`DB_STATEMENT_TIMEOUT`, SQLSTATE 57014); the statement had no effect and
 * the connection stays usable. `side: "client"`: no answer came within `DB_QUERY_TIMEOUT` (a
 * server, proxy or network path that stopped answering); the connection was discarded and whether
 * the statement ran is unknown, so it is re-run only when marked `Idempotent.retry`.
 *
 * Statements fail with a `SqlError` whose `cause` is this error.
 *
 * @since 0.1.0
 * @category errors
 */
export class StatementTimeout extends Schema.TaggedError<StatementTimeout>()("StatementTimeout", {
  ...Target,
  /** who gave up: the server (`statement_timeout`) or this client (`query_timeout`) */
  side: Schema.Literal("server", "client"),
  /**
   * the configured bound: `DB_STATEMENT_TIMEOUT` (server) or `DB_QUERY_TIMEOUT` (client); absent
   * when `DB_STATEMENT_TIMEOUT` is 0 and the server's own `statement_timeout` (postgresql.conf,
   * ALTER ROLE / DATABASE ... SET) cancelled the statement. A `SET [LOCAL] statement_timeout` on
   * the connection replaces the server-side bound without the client seeing it (the server does
   * not report the setting), so for `side: "server"` this is the bound the session started with.
   */
  timeoutMillis: Schema.optional(Schema.Number),
  /** `57014` (query_canceled) when the server cancelled the statement */
  code: Schema.optional(Schema.String)
}) {
  override get message(): string {
    if (this.side === "client") {
      return `No answer from ${where(this)} within ${this.timeoutMillis ?? "?"} ms (DB_QUERY_TIMEOUT): the server, a ` +
        "proxy or the network path stopped answering. The connection was discarded; whether the statement ran is " +
        "unknown, so it is not re-run unless marked Idempotent.retry. Check the server and the network path " +
        "(SlowQuery alerts and DbHealth show stuck statements); keep DB_QUERY_TIMEOUT above DB_STATEMENT_TIMEOUT so " +
        "that a merely slow statement is cancelled by the server first."
    }
    const bound = this.timeoutMillis === undefined
      ? "its statement_timeout (DB_STATEMENT_TIMEOUT is 0: the server's own from postgresql.conf or ALTER ROLE / " +
        "DATABASE, or one a SET [LOCAL] statement_timeout gave the session or transaction)"
      : `its statement_timeout (${this.timeoutMillis} ms from DB_STATEMENT_TIMEOUT, unless a SET [LOCAL] ` +
        "statement_timeout gave the session or transaction another)"
    return `PostgreSQL at ${where(this)} cancelled a statement that ran longer than ${bound}` +
      `${this.code === undefined ? "" : ` (${this.code})`}. It had no effect and the connection stays usable. ` +
      "Make it faster (EXPLAIN ANALYZE, an index, smaller batches) or find the lock it waited on (pg_locks); raise " +
      "DB_STATEMENT_TIMEOUT, or SET LOCAL statement_timeout inside its transaction, only for work known to be long."
  }
}

/**
 * Every way opening a connection can fail.
 *
 * @since 0.1.0
 * @category errors
 */
export type ConnectError =
  | SslNotSupportedByServer
  | CertificateUntrusted
  | CertificateExpired
  | CertificateRevoked
  | CertificateHostMismatch
  | TlsProtocolRejected
  | AuthenticationFailed
  | AuthenticationMethodRefused
  | ChannelBindingFailed
  | ConnectionRejected
  | DatabaseNotFound
  | TooManyConnections
  | ConnectionRefused
  | NoSuitableHost
  | ConnectTimeout
  | TlsMaterialInvalid
  | InsecureServer
  | ConnectionLost

/**
 * Every failure of this package, connecting or running.
 *
 * @since 0.1.0
 * @category errors
 */
export type DbError = ConnectError | PoolExhausted | FailoverTimeout | StatementTimeout
