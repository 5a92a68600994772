/**
 * Certificates of the HTTPS listeners: the per-listener {@linkcode CertStore} with the SNI
 * selection of TLS-6 and the hot reload of TLS-7 (key changes included). The sockets themselves
 * live in `server/listen.ts`.
 * @module
 */

export {
  CERT_CHECK_INTERVAL_MS,
  type CertEntry,
  type CertEvent,
  CertificateLoadError,
  type CertPair,
  CertStore,
  type CertStoreOptions,
  FALLBACK_PATTERN,
  loadCertPair,
  MAX_PEM_FILE_BYTES,
  type SelectableEntry,
  selectCertificate,
} from "./cert_store.ts";
