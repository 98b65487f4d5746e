/**
 * X.509 machinery behind `TestPki`: key generation with Node's WebCrypto and certificate
 * signing with `@peculiar/x509`. Everything here is Promise-based; `TestPki.ts` wraps it.
 *
 * @internal
 */
import "reflect-metadata"
import * as x509 from "@peculiar/x509"
import { webcrypto } from "node:crypto"

x509.cryptoProvider.set(webcrypto)

/** @internal */
export type KeyPair = webcrypto.CryptoKeyPair

const signingAlgorithm = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }

/** @internal */
export const generateKeyPair = (modulusLength: 1024 | 2048): Promise<KeyPair> =>
  webcrypto.subtle.generateKey(
    { ...signingAlgorithm, publicExponent: new Uint8Array([1, 0, 1]), modulusLength },
    true,
    ["sign", "verify"]
  )

// @peculiar/x509 emits PEM without a final newline; PostgreSQL (and any concatenated chain)
// needs one, so every PEM leaving this module ends with "\n".
const withNewline = (pem: string): string => (pem.endsWith("\n") ? pem : `${pem}\n`)

/** @internal */
export const privateKeyPem = async (keys: KeyPair): Promise<string> =>
  withNewline(x509.PemConverter.encode(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY"))

/** @internal */
export interface Issuer {
  readonly name: string
  readonly keys: KeyPair
}

/** @internal */
export interface LeafOptions {
  readonly subject: string
  readonly keys: KeyPair
  readonly issuer: Issuer | "self"
  readonly notBefore: Date
  readonly notAfter: Date
  readonly dnsNames: ReadonlyArray<string>
  readonly ipAddresses: ReadonlyArray<string>
  readonly usage: "server" | "client"
}

const randomSerial = (): string => {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16))
  // A positive INTEGER: clear the top bit of the first byte.
  bytes[0] = (bytes[0] ?? 0) & 0x7f
  return Buffer.from(bytes).toString("hex")
}

/** Self-signed CA certificate (basicConstraints CA:true, keyCertSign). @internal */
export const createCa = async (options: {
  readonly name: string
  readonly keys: KeyPair
  readonly notBefore: Date
  readonly notAfter: Date
}): Promise<string> => {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: options.name,
    keys: options.keys,
    notBefore: options.notBefore,
    notAfter: options.notAfter,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(options.keys.publicKey)
    ]
  })
  return withNewline(cert.toString("pem"))
}

/** End-entity certificate, signed by `issuer` or by its own key. @internal */
export const createLeaf = async (options: LeafOptions): Promise<string> => {
  const signer = options.issuer === "self" ? { name: options.subject, keys: options.keys } : options.issuer
  const names: Array<x509.JsonGeneralName> = [
    ...options.dnsNames.map((value): x509.JsonGeneralName => ({ type: "dns", value })),
    ...options.ipAddresses.map((value): x509.JsonGeneralName => ({ type: "ip", value }))
  ]
  const extensions: Array<x509.Extension> = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      true
    ),
    new x509.ExtendedKeyUsageExtension(
      [options.usage === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false
    ),
    await x509.SubjectKeyIdentifierExtension.create(options.keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(signer.keys.publicKey)
  ]
  if (names.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(names))
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: options.subject,
    issuer: signer.name,
    notBefore: options.notBefore,
    notAfter: options.notAfter,
    signingAlgorithm,
    publicKey: options.keys.publicKey,
    signingKey: signer.keys.privateKey,
    extensions
  })
  return withNewline(cert.toString("pem"))
}

/**
 * A CRL signed by `issuer` that revokes the certificates given as PEM (keyCompromise), valid for
 * 30 days from `thisUpdate`. @internal
 */
export const createCrl = async (options: {
  readonly issuer: Issuer
  readonly revoked: ReadonlyArray<string>
  readonly thisUpdate: Date
}): Promise<string> => {
  const crl = await x509.X509CrlGenerator.create({
    issuer: options.issuer.name,
    thisUpdate: options.thisUpdate,
    nextUpdate: new Date(options.thisUpdate.getTime() + 30 * 24 * 60 * 60 * 1000),
    signingAlgorithm,
    signingKey: options.issuer.keys.privateKey,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(options.issuer.keys.publicKey)],
    entries: options.revoked.map((pem) => ({
      serialNumber: new x509.X509Certificate(pem).serialNumber,
      revocationDate: options.thisUpdate,
      reason: x509.X509CrlReason.keyCompromise
    }))
  })
  // OpenSSL reads only the "X509 CRL" label (@peculiar/x509 writes "CRL")
  return withNewline(x509.PemConverter.encode(crl.rawData, "X509 CRL"))
}
