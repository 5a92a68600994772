/**
 * Test helper: loads the recorded SHA-512-crypt vectors of `testdata/sha512_crypt_vectors.json`
 * (made once with `mkpasswd -m sha-512` and libxcrypt; tests never run mkpasswd).
 * @module
 */

/** One recorded vector; see the fixture's "about". */
export interface CryptVector {
  password?: string;
  passwordHex?: string;
  salt?: string;
  rounds?: number;
  setting?: string;
  hash: string;
  source: string;
}

/** Number of vectors in the fixture; a changed count must be a deliberate edit. */
export const VECTOR_COUNT = 33;

/** Loads the recorded vectors. */
export async function loadVectors(): Promise<CryptVector[]> {
  const url = new URL("./testdata/sha512_crypt_vectors.json", import.meta.url);
  const fixture = JSON.parse(await Deno.readTextFile(url)) as { vectors: CryptVector[] };
  return fixture.vectors;
}

/** The password of a vector as bytes. */
export function vectorPassword(vector: CryptVector): Uint8Array {
  if (vector.passwordHex !== undefined) {
    return Uint8Array.from(vector.passwordHex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
  }
  return new TextEncoder().encode(vector.password ?? "");
}
