/**
 * Which directory entries of a domains folder are domains (DOM-2, DOM-3, ODD-13). A domain file's
 * name is a host name; nothing else ever reaches the file system as a domain path, so a name with
 * a slash, `..`, a control character or any other stray byte is refused before it is joined to the
 * folder. Pure.
 * @module
 */

/** Longest host name (RFC 1035 §2.3.4: 255 octets on the wire, 253 characters written). */
export const MAX_DOMAIN_NAME_LENGTH = 253;

/** One host name label: letters, digits and inner hyphens, 1 to 63 characters (RFC 1123). */
const LABEL_REGEXP = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Why an entry of the domains folder is not a domain, or `undefined` when it is one. */
export type EntryVerdict =
  | { readonly kind: "domain"; readonly name: string }
  | { readonly kind: "skipped" }
  | { readonly kind: "invalid"; readonly reason: string };

/**
 * Classifies a folder entry name. Entries starting with `.` or `_` or containing `dpkg-` are
 * skipped silently as in the original (DOM-2: editor and package-manager leftovers, and `_x`
 * fragments meant for includes); anything else must be a valid host name. Names are lower-cased
 * (ODD-13: host names are case-insensitive, so `WWW.Example.com` and `www.example.com` are one
 * domain).
 */
export function classifyEntry(entry: string): EntryVerdict {
  if (entry.startsWith(".") || entry.startsWith("_") || entry.includes("dpkg-")) {
    return { kind: "skipped" };
  }
  const name = entry.toLowerCase();
  const reason = domainNameProblem(name);
  return reason === undefined ? { kind: "domain", name } : { kind: "invalid", reason };
}

/** Why `name` is not a valid (lower-case) host name, or `undefined` when it is one. */
export function domainNameProblem(name: string): string | undefined {
  if (name.length === 0) return "empty name";
  if (name.length > MAX_DOMAIN_NAME_LENGTH) {
    return `longer than ${MAX_DOMAIN_NAME_LENGTH} characters`;
  }
  const labels = name.split(".");
  for (const label of labels) {
    if (!LABEL_REGEXP.test(label)) {
      return `"${printable(label)}" is not a host name label (letters, digits, inner hyphens)`;
    }
  }
  return undefined;
}

/** Escapes control and non-ASCII characters so a hostile name cannot forge log lines. */
export function printable(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}
