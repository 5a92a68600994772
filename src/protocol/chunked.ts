/**
 * The chunked transfer coding (RFC 9112 §7.1): an incremental, bounded decoder and the encoder
 * groom uses to re-chunk request bodies (PROTO-21). The decoder fails loudly on every malformed
 * chunk-size line instead of treating it as the end of the body (ODD-42), requires CRLF line
 * ends (a bare LF in chunk framing is a known smuggling vector), bounds the chunk-size line
 * (extensions included) and the trailer section, and reports a body cut short at `finish()`.
 * @module
 */

import { type HeaderField, HttpParseError, type HttpParseErrorReason } from "./http1.ts";
import { parseFieldLine } from "./http1.ts";

/**
 * Longest chunk-size line, extensions included: Go's chunked reader limit (`maxLineLength`),
 * so everything groom 1.3 accepted still passes while extension floods are cut short.
 */
export const MAX_CHUNK_LINE_SIZE = 4096;

/**
 * Largest trailer section. Trailers are never forwarded (PROTO-21), only skipped, so a small
 * bound is enough; it keeps a peer from streaming an endless trailer.
 */
export const MAX_TRAILER_SIZE = 16 * 1024;

/**
 * Largest chunk size: above 2^53 − 1 a JavaScript number loses integer precision, and groom
 * 1.3's 64-bit overflow was what let malformed sizes end a body early (ODD-42).
 */
export const MAX_CHUNK_SIZE = Number.MAX_SAFE_INTEGER;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const SEMICOLON = 0x3b;

/** Limits for a {@linkcode ChunkedDecoder}. */
export interface ChunkedDecoderOptions {
  /** Longest chunk-size line; default {@linkcode MAX_CHUNK_LINE_SIZE}. */
  readonly maxLineSize?: number;
  /** Largest trailer section in bytes; default {@linkcode MAX_TRAILER_SIZE}. */
  readonly maxTrailerSize?: number;
  /** Largest single chunk; default {@linkcode MAX_CHUNK_SIZE}. */
  readonly maxChunkSize?: number;
}

/** What one {@linkcode ChunkedDecoder.decode} call found. */
export interface ChunkedDecodeResult {
  /** Body data, as zero-copy views into the input; never empty views. */
  readonly data: Uint8Array[];
  /** The last chunk and the trailer section have been read. */
  readonly done: boolean;
  /** Bytes of the input that belong to the body; the rest follows the body. */
  readonly consumed: number;
}

type State = "size" | "data" | "data-cr" | "data-lf" | "trailer" | "done";

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  return -1;
}

function chunkError(message: string, reason: HttpParseErrorReason): HttpParseError {
  return new HttpParseError(message, { reason, status: 400 });
}

/**
 * Incremental chunked body decoder. Feed it bytes as they arrive with {@linkcode decode}; call
 * {@linkcode finish} at end of input. Errors are {@linkcode HttpParseError} with status 400 (a
 * response decoder's caller answers 502 instead) and are sticky: once failed, every later call
 * throws the same error.
 */
export class ChunkedDecoder {
  #state: State = "size";
  #line: Uint8Array = new Uint8Array(64);
  #lineLength = 0;
  #remaining = 0;
  #trailerSize = 0;
  #trailers: HeaderField[] = [];
  #error: HttpParseError | undefined;
  readonly #maxLineSize: number;
  readonly #maxTrailerSize: number;
  readonly #maxChunkSize: number;

  /** Creates a decoder with the given limits. */
  constructor(options: ChunkedDecoderOptions = {}) {
    this.#maxLineSize = options.maxLineSize ?? MAX_CHUNK_LINE_SIZE;
    this.#maxTrailerSize = options.maxTrailerSize ?? MAX_TRAILER_SIZE;
    this.#maxChunkSize = options.maxChunkSize ?? MAX_CHUNK_SIZE;
  }

  /** Whether the last chunk and the trailer section have been read. */
  get done(): boolean {
    return this.#state === "done";
  }

  /** Trailer fields received after the last chunk (validated, never forwarded). */
  get trailers(): readonly HeaderField[] {
    return this.#trailers;
  }

  /**
   * Decodes the next bytes of the body. Returns the data found (views into `input`), whether the
   * body is complete and how many input bytes it used; once done, nothing more is consumed.
   */
  decode(input: Uint8Array): ChunkedDecodeResult {
    if (this.#error !== undefined) throw this.#error;
    try {
      return this.#decode(input);
    } catch (error) {
      if (error instanceof HttpParseError) this.#error = error;
      throw error;
    }
  }

  /** Declares the end of input; throws when the body stopped before its last chunk (ODD-42). */
  finish(): void {
    if (this.#error !== undefined) throw this.#error;
    if (this.#state !== "done") {
      this.#error = chunkError(
        "Cannot decode chunked body: input ended before the last chunk",
        "truncated-chunked-body",
      );
      throw this.#error;
    }
  }

  #decode(input: Uint8Array): ChunkedDecodeResult {
    const data: Uint8Array[] = [];
    let at = 0;
    while (at < input.length && this.#state !== "done") {
      switch (this.#state) {
        case "data": {
          const take = Math.min(this.#remaining, input.length - at);
          data.push(input.subarray(at, at + take));
          at += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = "data-cr";
          break;
        }
        case "data-cr":
        case "data-lf": {
          const expected = this.#state === "data-cr" ? CR : LF;
          if (input[at] !== expected) {
            throw chunkError(
              "Cannot decode chunked body: chunk data is not followed by CRLF",
              "missing-chunk-crlf",
            );
          }
          at++;
          this.#state = this.#state === "data-cr" ? "data-lf" : "size";
          break;
        }
        default: {
          const lf = input.indexOf(LF, at);
          const end = lf === -1 ? input.length : lf;
          this.#appendLine(input.subarray(at, end));
          at = end;
          if (lf !== -1) {
            at++;
            this.#endLine();
          }
        }
      }
    }
    return { data, done: this.#state === "done", consumed: at };
  }

  #appendLine(bytes: Uint8Array): void {
    const length = this.#lineLength + bytes.length;
    if (this.#state === "size" && length > this.#maxLineSize) {
      throw chunkError(
        `Cannot decode chunked body: chunk-size line longer than ${this.#maxLineSize} bytes`,
        "chunk-line-too-long",
      );
    }
    if (this.#state === "trailer" && this.#trailerSize + length > this.#maxTrailerSize) {
      throw chunkError(
        `Cannot decode chunked body: trailer section larger than ${this.#maxTrailerSize} bytes`,
        "trailer-too-large",
      );
    }
    if (length > this.#line.length) {
      const grown = new Uint8Array(Math.max(length, this.#line.length * 2));
      grown.set(this.#line.subarray(0, this.#lineLength));
      this.#line = grown;
    }
    this.#line.set(bytes, this.#lineLength);
    this.#lineLength = length;
  }

  /** Handles a complete line (the LF has been consumed). */
  #endLine(): void {
    const length = this.#lineLength;
    this.#lineLength = 0;
    if (length === 0 || this.#line[length - 1] !== CR) {
      throw chunkError("Cannot decode chunked body: line ends with a bare LF", "bare-lf");
    }
    const line = this.#line.subarray(0, length - 1);
    if (line.includes(CR)) {
      throw chunkError("Cannot decode chunked body: bare CR in a line", "bare-cr");
    }
    if (this.#state === "size") {
      this.#chunkSize(line);
    } else {
      this.#trailerLine(line, length + 1);
    }
  }

  #chunkSize(line: Uint8Array): void {
    let size = 0;
    let at = 0;
    for (; at < line.length; at++) {
      const digit = hexValue(line[at] ?? 0);
      if (digit === -1) break;
      size = size * 16 + digit;
      if (size > this.#maxChunkSize) {
        throw chunkError(
          `Cannot decode chunked body: chunk size exceeds ${this.#maxChunkSize} bytes`,
          "chunk-size-overflow",
        );
      }
    }
    if (at === 0) {
      throw chunkError(
        "Cannot decode chunked body: chunk size is not hexadecimal",
        "bad-chunk-size",
      );
    }
    if (at < line.length) this.#chunkExtension(line, at);
    if (size === 0) {
      this.#state = "trailer";
    } else {
      this.#remaining = size;
      this.#state = "data";
    }
  }

  /** Validates `BWS ";" ...` after the size: whitespace only before `;`, no CTL (RFC 9112 §7.1.1). */
  #chunkExtension(line: Uint8Array, from: number): void {
    let at = from;
    while (at < line.length && (line[at] === SP || line[at] === HTAB)) at++;
    if (line[at] !== SEMICOLON) {
      throw chunkError(
        "Cannot decode chunked body: chunk size is not hexadecimal",
        "bad-chunk-size",
      );
    }
    for (; at < line.length; at++) {
      const byte = line[at] ?? 0;
      if (byte !== HTAB && (byte < SP || byte === 0x7f)) {
        throw chunkError(
          "Cannot decode chunked body: control character in a chunk extension",
          "bad-chunk-extension",
        );
      }
    }
  }

  #trailerLine(line: Uint8Array, lineSize: number): void {
    if (line.length === 0) {
      this.#state = "done";
      return;
    }
    this.#trailerSize += lineSize;
    if (line[0] === SP || line[0] === HTAB) {
      throw new HttpParseError("Cannot decode chunked body: obsolete line folding in trailer", {
        reason: "obs-fold",
        status: 400,
      });
    }
    this.#trailers.push(
      parseFieldLine(line, {
        start: 0,
        end: line.length,
        what: "Cannot decode chunked body: trailer field",
      }),
    );
  }
}

/**
 * Frames one chunk: `<lower-case hex size>\r\n<data>\r\n` (PROTO-21), in a single allocation.
 * Empty data yields an empty array, never a chunk of size 0, which would end the body.
 */
export function encodeChunk(data: Uint8Array): Uint8Array {
  if (data.length === 0) return new Uint8Array(0);
  const size = data.length.toString(16);
  const chunk = new Uint8Array(size.length + data.length + 4);
  for (let index = 0; index < size.length; index++) chunk[index] = size.charCodeAt(index);
  chunk[size.length] = CR;
  chunk[size.length + 1] = LF;
  chunk.set(data, size.length + 2);
  chunk[chunk.length - 2] = CR;
  chunk[chunk.length - 1] = LF;
  return chunk;
}

/** The last chunk with an empty trailer section, `0\r\n\r\n` (PROTO-21); a fresh array each call. */
export function encodeLastChunk(): Uint8Array {
  return new Uint8Array([0x30, CR, LF, CR, LF]);
}
