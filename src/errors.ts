/** Every code a DfkdError can carry (README, "Errors"). */
export const ERROR_CODES = [
  "E_CONFIG",
  "E_MODEL_NOT_FOUND",
  "E_MODEL_INVALID",
  "E_MODEL_OUTPUT",
  "E_SHAPE",
  "E_CLASS_MISMATCH",
  "E_DATA_NOT_FOUND",
  "E_DATA_INVALID",
  "E_TAPS",
  "E_NO_TAPS",
  "E_NO_BN",
  "E_STATS_NOT_FOUND",
  "E_STATS_INVALID",
  "E_STATS_MISMATCH",
  "E_NAN",
  "E_OOM",
  "E_CANCELLED",
  "E_BUDGET",
  "E_CHECKPOINT",
  "E_DISTRIBUTED",
  "E_DEVICE",
  "E_IO",
  "E_ADDON",
  "E_TORCH",
  "E_INTERNAL",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const isErrorCode = (c: unknown): c is ErrorCode => typeof c === "string" && (ERROR_CODES as readonly string[]).includes(c);

/** Every error dfkd raises carries a stable `code` (see README, "Errors"). */
export class DfkdError extends Error {
  readonly code: ErrorCode;
  /** For E_CANCELLED / E_NAN: the checkpoint that `resume` continues from (absent if none was kept). */
  checkpoint?: string;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; checkpoint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DfkdError";
    this.code = code;
    if (options?.checkpoint) this.checkpoint = options.checkpoint;
  }
}

/**
 * Wraps an error from the addon (an Error with a `code`, and a `checkpoint` where the native job
 * kept one of a good state) as a DfkdError. A code this version does not know is E_INTERNAL.
 */
export function fromNative(e: unknown): DfkdError {
  if (e instanceof DfkdError) return e;
  const err = e as { code?: unknown; message?: string; checkpoint?: unknown };
  const message = err?.message ?? String(e);
  const withCkpt = typeof err?.checkpoint === "string" ? err.checkpoint : undefined;
  if (isErrorCode(err?.code)) return new DfkdError(err.code, message, { cause: e, checkpoint: withCkpt });
  const raw = typeof err?.code === "string" ? ` (${err.code})` : "";
  return new DfkdError("E_INTERNAL", message + raw, { cause: e, checkpoint: withCkpt });
}
