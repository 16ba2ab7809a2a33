// A running native job: a Promise of its result, typed events (EventEmitter and async
// iterator), cancel() / AbortSignal, dispose().
import { EventEmitter } from "node:events";
import { DfkdError, fromNative } from "./errors.js";
import type { NativeJobHandle } from "./native.js";

/** The events every job emits: `on(type, ...)`, `for await (const e of job)`. */
export type Phase = "load" | "synthesize" | "train" | "evaluate" | "save" | "stats";

export interface ProgressEvent {
  type: "progress";
  phase: Phase;
  step: number;
  total: number;
  /** Latest loss values: student ("kd", "ce", "student", "lr"), synthesis terms, generator ("g_*"). */
  losses: Record<string, number>;
  /** Images (synthesis: images x iterations) or samples per second in this phase. */
  throughput: number;
  /** Seconds since the job started, and estimated seconds left (-1 unknown). */
  elapsed: number;
  eta: number;
  round?: number;
  rounds?: number;
  epoch?: number;
  epochs?: number;
}
export interface PhaseEvent { type: "phase"; phase: Phase }
export interface LogEvent { type: "log"; message: string }
/** An evaluation on `test` every evalEvery student steps; elapsed: seconds since the job started, evaluations excluded. */
export interface EvalEvent { type: "eval"; step: number; studentAccuracy: number; samples: number; elapsed: number }
export interface CheckpointEvent { type: "checkpoint"; path: string; state: Record<string, unknown> }
export type JobEvent = ProgressEvent | PhaseEvent | LogEvent | EvalEvent | CheckpointEvent;

type Listener<E> = (e: E) => void;

export class Job<R> implements AsyncIterable<JobEvent>, PromiseLike<R> {
  /** Settles when the native thread has finished: the result, or a DfkdError with a code. */
  readonly result: Promise<R>;
  private readonly emitter = new EventEmitter();
  private readonly queue: JobEvent[] = [];
  private waiters: Array<() => void> = [];
  private done = false;
  private error: DfkdError | undefined;
  private cancelNative: () => void = () => {};

  /**
   * Jobs are made by distill(), evaluate() and stats(), never by `new`.
   * @internal
   */
  static start<R>(start: (onEvent: (e: unknown) => void) => NativeJobHandle, opts: { signal?: AbortSignal; map?: (r: unknown) => R } = {}): Job<R> {
    return new Job<R>(start, opts);
  }

  private constructor(start: (onEvent: (e: unknown) => void) => NativeJobHandle, opts: { signal?: AbortSignal; map?: (r: unknown) => R }) {
    let handle: NativeJobHandle;
    try {
      handle = start((e) => this.push(e as JobEvent));
    } catch (e) {
      this.result = Promise.reject(fromNative(e));
      this.result.catch(() => {});
      this.finish(fromNative(e));
      return;
    }
    this.cancelNative = () => handle.cancel();
    const onAbort = () => this.cancel();
    if (opts.signal) {
      if (opts.signal.aborted) queueMicrotask(onAbort);
      else opts.signal.addEventListener("abort", onAbort, { once: true });
    }
    this.result = handle.promise.then(
      (r) => {
        opts.signal?.removeEventListener("abort", onAbort);
        this.finish();
        return opts.map ? opts.map(r) : (r as R);
      },
      (e) => {
        opts.signal?.removeEventListener("abort", onAbort);
        const err = fromNative(e);
        this.finish(err);
        throw err;
      },
    );
    // A job whose caller only listens to events must not crash the process on rejection.
    this.result.catch(() => {});
  }

  /** Asks the native thread to stop within a step; it writes a checkpoint and rejects with E_CANCELLED. */
  cancel(): void {
    if (!this.done) this.cancelNative();
  }

  /** Cancels (if running) and waits until the native thread has stopped. Never rejects. */
  async dispose(): Promise<void> {
    this.cancel();
    await this.result.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  on(type: "progress", l: Listener<ProgressEvent>): this;
  on(type: "phase", l: Listener<PhaseEvent>): this;
  on(type: "log", l: Listener<LogEvent>): this;
  on(type: "eval", l: Listener<EvalEvent>): this;
  on(type: "checkpoint", l: Listener<CheckpointEvent>): this;
  on(type: "event", l: Listener<JobEvent>): this;
  on(type: string, l: Listener<never>): this {
    this.emitter.on(type, l as (...a: unknown[]) => void);
    return this;
  }

  off(type: string, l: (...a: never[]) => void): this {
    this.emitter.off(type, l as (...a: unknown[]) => void);
    return this;
  }

  then<A = R, B = never>(onOk?: ((v: R) => A | PromiseLike<A>) | null, onErr?: ((e: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.result.then(onOk, onErr);
  }

  /** Yields every event from now until the job ends; throws the job's error at the end, if any. */
  async *[Symbol.asyncIterator](): AsyncIterator<JobEvent> {
    while (true) {
      if (this.queue.length) {
        yield this.queue.shift()!;
        continue;
      }
      if (this.done) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private push(e: JobEvent): void {
    this.queue.push(e);
    if (this.queue.length > 10000) this.queue.shift();  // nobody is iterating: bound the memory
    this.wake();  // before the listeners: one that throws must not starve the iterators
    this.emitter.emit(e.type, e);
    this.emitter.emit("event", e);
  }

  private finish(err?: DfkdError): void {
    this.done = true;
    this.error = err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
