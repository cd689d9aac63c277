/**
 * @module client/errors
 * The errors the client throws. A server that answered with an error status
 * gives a `KinferHttpError` (status + the server's own message); a server that
 * could not be reached gives a `KinferConnectionError` naming the URL; a
 * request the client itself refuses to send (bad tensor) gives a
 * `KinferInputError`. All extend `KinferClientError`.
 */

export class KinferClientError extends Error {
  override name = 'KinferClientError';
}

/** The server answered with a non-success status. `message` is the server's `{"error"}` text when it sent one. */
export class KinferHttpError extends KinferClientError {
  override name = 'KinferHttpError';
  constructor(
    readonly status: number,
    message: string,
    /** The response body as text (JSON or otherwise), for diagnostics. */
    readonly body: string,
    readonly url: string,
    /** Seconds from `Retry-After`, when the server sent one. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** The request never got an answer: refused, reset, DNS failure, or timed out. */
export class KinferConnectionError extends KinferClientError {
  override name = 'KinferConnectionError';
  constructor(
    readonly url: string,
    message: string,
    /** The system error code (`ECONNREFUSED`, `ETIMEDOUT`, ...) when there is one. */
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** No answer within `timeoutMs` (per attempt), or `waitUntilReady` ran out of time. */
export class KinferTimeoutError extends KinferConnectionError {
  override name = 'KinferTimeoutError';
}

/** A tensor or option the client cannot encode: says which input and what was wrong. */
export class KinferInputError extends KinferClientError {
  override name = 'KinferInputError';
}

/** The server's reply could not be decoded as a v2 response. */
export class KinferProtocolError extends KinferClientError {
  override name = 'KinferProtocolError';
}
