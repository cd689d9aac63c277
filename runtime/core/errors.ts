/**
 * @module core/errors
 * The closed set of errors kinfer raises. Each carries a `code`; the one table
 * in `http-status.ts` maps codes to HTTP statuses. Messages are what the client
 * reads in `{"error": "..."}`: say what was wrong and with which name.
 */

export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'NOT_READY'
  | 'PAYLOAD_TOO_LARGE'
  | 'RESOURCE_EXHAUSTED'
  | 'DEADLINE_EXCEEDED'
  | 'CANCELLED'
  | 'UNAVAILABLE'
  | 'UNSUPPORTED'
  | 'INTERNAL';

export abstract class KinferError extends Error {
  abstract readonly code: ErrorCode;
  override name = 'KinferError';
}

/** The client sent something malformed: bad JSON, wrong shape or datatype, unknown input. */
export class InvalidArgument extends KinferError {
  readonly code = 'INVALID_ARGUMENT';
}

/** Unknown model, version, or route. */
export class NotFound extends KinferError {
  readonly code = 'NOT_FOUND';
}

/**
 * What the client asked to create exists already: a shared-memory region name registered twice
 * (Triton's TRITONSERVER_ERROR_ALREADY_EXISTS, which its HTTP frontend answers 400 and gRPC
 * ALREADY_EXISTS).
 */
export class AlreadyExists extends KinferError {
  readonly code = 'ALREADY_EXISTS';
}

/** The model exists but is loading, unloading or failed to load. */
export class NotReady extends KinferError {
  readonly code = 'NOT_READY';
}

export class PayloadTooLarge extends KinferError {
  readonly code = 'PAYLOAD_TOO_LARGE';
}

/** A queue is full; the client should retry after `retryAfterSeconds`. */
export class ResourceExhausted extends KinferError {
  readonly code = 'RESOURCE_EXHAUSTED';
  constructor(
    message: string,
    readonly retryAfterSeconds = 1,
  ) {
    super(message);
  }
}

/** The request's deadline passed before it was computed. */
export class DeadlineExceeded extends KinferError {
  readonly code = 'DEADLINE_EXCEEDED';
}

/** The client went away; nobody reads the answer. */
export class Cancelled extends KinferError {
  readonly code = 'CANCELLED';
}

/** The server (or a device, runtime or storage it depends on) cannot serve now. */
export class Unavailable extends KinferError {
  readonly code = 'UNAVAILABLE';
  constructor(
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** A well-formed request for something this server does not do (e.g. an unknown platform). */
export class Unsupported extends KinferError {
  readonly code = 'UNSUPPORTED';
}

/** A fault of the server itself. */
export class Internal extends KinferError {
  readonly code = 'INTERNAL';
}

/** The one helper for argument checks: "<name>: expected <expected>, got <actual>". */
export function invalidArgument(name: string, expected: string, actual: unknown): InvalidArgument {
  return new InvalidArgument(`${name}: expected ${expected}, got ${describe(actual)}`);
}

/** A JSON value in an error message: its kind, or the value itself when short. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? value.slice(0, 64) + '…' : value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/** Whole seconds a client should wait before retrying `err` (at least 1), when it says to. */
export function retryAfterOf(err: KinferError): number | undefined {
  const retry = (err as { retryAfterSeconds?: number }).retryAfterSeconds;
  return retry === undefined ? undefined : Math.max(1, Math.ceil(retry));
}
