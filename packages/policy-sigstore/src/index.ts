/**
 * @blobkit/policy-sigstore — cosign-compatible signing of blobkit manifests (sigstore bundle v0.3 referrers)
 * and signature / attestation verification policies, fully offline when given a trusted root.
 *
 * @packageDocumentation
 */

export { attachSignature, cosignReferrerManifest, signReference } from "./attach.ts";
export * from "./constants.ts";
export type { GitHubActionsIdentity, Identity } from "./identity.ts";
export {
  type CommonSignerOptions,
  type KeylessSignerOptions,
  type KeySignerOptions,
  keylessSigner,
  keySigner,
  publicKeyFromPrivate,
  resolveIdentityToken,
  type SigstoreSigner,
  type StatementOptions,
} from "./sign.ts";
export type { InTotoStatement, StatementSubject } from "./statement.ts";
export { loadTrustedRoot, type TrustedRootInput, type TufOptions } from "./trust.ts";
export {
  type AttestationOptions,
  type AttestationResult,
  attestationVerifier,
  normalizeRepository,
  type ProvenanceFacts,
  provenanceFacts,
  type ReferrerFailure,
  type SigstorePolicyOptions,
  type SlsaPolicyOptions,
  type StatementAttestation,
  sigstorePolicy,
  slsaPolicy,
  type TrustOptions,
  type VerifiedBundle,
  type VerifiedSigner,
  verifiedStatements,
  verifyAttestations,
} from "./verify.ts";
