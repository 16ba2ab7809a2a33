/** Every error dfkd raises carries a stable `code` (see README, "Errors"). */
export class DfkdError extends Error {
  readonly code: string;
  /** For E_CANCELLED / E_NAN: the checkpoint that `resume` continues from (absent if none was kept). */
  checkpoint?: string;
  constructor(code: string, message: string, options?: { cause?: unknown; checkpoint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DfkdError";
    this.code = code;
    if (options?.checkpoint) this.checkpoint = options.checkpoint;
  }
}

/**
 * Wraps an error from the addon (an Error with a `code`, and a `checkpoint` where the native job
 * kept one of a good state) as a DfkdError.
 */
export function fromNative(e: unknown): DfkdError {
  if (e instanceof DfkdError) return e;
  const err = e as { code?: string; message?: string; checkpoint?: unknown };
  const code = typeof err?.code === "string" ? err.code : "E_INTERNAL";
  const withCkpt = typeof err?.checkpoint === "string" ? err.checkpoint : undefined;
  return new DfkdError(code, err?.message ?? String(e), { cause: e, checkpoint: withCkpt });
}
