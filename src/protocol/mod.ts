/**
 * Everything that crosses the wire: the tunnel message layout (`frame.ts`), HTTP/1.x heads as
 * groom serialises and strictly parses them (`http1.ts`) and the chunked transfer coding
 * (`chunked.ts`). A leaf: it imports nothing else from `src/`. Pinned against recordings of
 * groom 1.3 by `golden_test.ts`.
 * @module
 */

export {
  type AbortFrame,
  type BodyFrame,
  classifyFlags,
  decodeFrame,
  describeFlags,
  describeFrame,
  encodeFrame,
  encodeFrameInto,
  Flag,
  type Frame,
  FRAME_TRAILER_SIZE,
  type FrameClass,
  FrameError,
  type FrameErrorReason,
  frameFlags,
  type FrameHeader,
  type FrameKind,
  type HeadFrame,
  MAX_BODY_PAYLOAD,
  MAX_MESSAGE_SIZE,
  MAX_PAYLOAD_SIZE,
  MAX_READ_PAYLOAD,
  MAX_SENT_MESSAGE_SIZE,
  MAX_STREAM_ID,
  type RawFrame,
} from "./frame.ts";
export {
  type BodyFraming,
  canonicalHeaderName,
  connectionTokens,
  findHeadEnd,
  formatHttpDate,
  getHeader,
  type HeaderField,
  headerValues,
  type HeadParseOptions,
  HOP_BY_HOP_HEADERS,
  HttpParseError,
  type HttpParseErrorReason,
  isAbsoluteFormTarget,
  isHopByHopHeader,
  MAX_CONTENT_LENGTH,
  MAX_HEAD_SIZE,
  MAX_HEADER_COUNT,
  type ParsedRequestHead,
  type ParsedResponseHead,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
  type ResponseParseOptions,
  serializeRequestHead,
  serializeResponseHead,
  synthesizeStatusHead,
} from "./http1.ts";
export {
  ChunkedDecoder,
  type ChunkedDecodeResult,
  type ChunkedDecoderOptions,
  encodeChunk,
  encodeLastChunk,
  MAX_CHUNK_LINE_SIZE,
  MAX_CHUNK_SIZE,
  MAX_TRAILER_SIZE,
} from "./chunked.ts";
