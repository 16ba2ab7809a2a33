/** Every error dfkd raises carries a stable `code` (see README, "Errors"). */
export class DfkdError extends Error {
  readonly code: string;
  /** For E_CANCELLED / E_NAN: the checkpoint that `resume` continues from. */
  checkpoint?: string;
  constructor(code: string, message: string, options?: { cause?: unknown; checkpoint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DfkdError";
    this.code = code;
    if (options?.checkpoint) this.checkpoint = options.checkpoint;
  }
}

/** Wraps an error from the addon (an Error with a `code`) as a DfkdError. */
export function fromNative(e: unknown, checkpoint?: string): DfkdError {
  if (e instanceof DfkdError) return e;
  const err = e as { code?: string; message?: string };
  const code = typeof err?.code === "string" ? err.code : "E_INTERNAL";
  const withCkpt = code === "E_CANCELLED" || code === "E_NAN" ? checkpoint : undefined;
  return new DfkdError(code, err?.message ?? String(e), { cause: e, checkpoint: withCkpt });
}
