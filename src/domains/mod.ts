/**
 * Domain files, for both modes: which folder entries are domains, the pure scan planner, and the
 * watcher that turns folder changes into load / update / remove events (DOM-1…DOM-10).
 * @module
 */

export {
  classifyEntry,
  domainNameProblem,
  type EntryVerdict,
  MAX_DOMAIN_NAME_LENGTH,
  printable,
} from "./names.ts";
export { type FileStamp, planScan, sameStamp, type ScannedFile, type ScanPlan } from "./diff.ts";
export {
  type DomainEvent,
  DomainWatcher,
  type DomainWatcherOptions,
  type LoadedDomain,
  MAX_DOMAIN_FILE_SIZE,
  RESCAN_INTERVAL_MS,
  WATCH_DEBOUNCE_MS,
} from "./watcher.ts";
