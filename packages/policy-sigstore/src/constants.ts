/** Media type (and referrer `artifactType`) of a sigstore bundle v0.3, as cosign attaches it. @public */
export const BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";

/** Predicate type of the in-toto statement `cosign sign` signs for an OCI manifest. @public */
export const COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1";

/** SLSA provenance v1 predicate type. @public */
export const SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1";

/** SLSA provenance v0.2 predicate type. @public */
export const SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2";

/** DSSE payload type of an in-toto statement. @public */
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";

/** `_type` of an in-toto Statement v1. @public */
export const IN_TOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1";

/** `_type` of an in-toto Statement v0.1 (carried by SLSA v0.2 provenance). @public */
export const IN_TOTO_STATEMENT_V01 = "https://in-toto.io/Statement/v0.1";

/** Referrer annotation naming the bundle content (`dsse-envelope` or `message-signature`). @public */
export const ANNOTATION_BUNDLE_CONTENT = "dev.sigstore.bundle.content";

/** Referrer annotation naming the statement's predicate type. @public */
export const ANNOTATION_BUNDLE_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType";

/** OIDC issuer of GitHub Actions workflow identities. @public */
export const GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com";

/** Sigstore public-good Fulcio. @public */
export const DEFAULT_FULCIO_URL = "https://fulcio.sigstore.dev";

/** Sigstore public-good Rekor. @public */
export const DEFAULT_REKOR_URL = "https://rekor.sigstore.dev";
