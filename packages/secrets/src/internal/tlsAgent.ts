import * as Https from "node:https"

/**
 * An HTTPS agent that always verifies the server: `rejectUnauthorized: true` set explicitly, so
 * neither `NODE_TLS_REJECT_UNAUTHORIZED=0` nor `VAULT_SKIP_VERIFY` can turn verification off
 * (Node applies the variable only when the option is absent), TLS 1.2 at least, and `ca` as the
 * whole trust store when given (`VAULT_CACERT`, `AWS_CA_BUNDLE`; else Node's public CA store).
 * Keep-alive, since every backend read goes to the same endpoint.
 *
 * @internal
 */
export const make = (ca: string | undefined): Https.Agent =>
  new Https.Agent({
    keepAlive: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
    ...(ca === undefined ? {} : { ca })
  })

/**
 * The Node error `code`s of a failed TLS verification or handshake, for an error message that
 * points at the CA setting instead of calling it transient.
 *
 * @internal
 */
export const verificationFailureCodes: ReadonlySet<string> = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "EPROTO"
])
