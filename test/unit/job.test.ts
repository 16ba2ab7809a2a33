// The Job handle without the addon: a fake native handle stands in for a native job.
import { describe, expect, it } from "vitest";
import { DfkdError } from "../../src/errors.js";
import { Job, type JobEvent } from "../../src/job.js";

function fake() {
  let resolve!: (v: unknown) => void, reject!: (e: unknown) => void;
  const promise = new Promise((a, b) => { resolve = a; reject = b; });
  const h = { cancelled: 0, emit: (_e: unknown) => {}, resolve, reject };
  const start = (onEvent: (e: unknown) => void) => {
    h.emit = onEvent;
    return { promise, cancel: () => { h.cancelled++; } };
  };
  return { h, start };
}

describe("Job (fake native handle)", () => {
  it("delivers typed events to listeners and iterators, then the mapped result", async () => {
    const { h, start } = fake();
    const job = Job.start<number>(start, { map: (r) => (r as { n: number }).n * 2 });
    const seen: string[] = [], progress: number[] = [];
    job.on("event", (e) => seen.push(e.type)).on("progress", (e) => progress.push(e.step));
    const iterated: JobEvent[] = [];
    const it = (async () => { for await (const e of job) iterated.push(e); })();
    h.emit({ type: "phase", phase: "train" });
    h.emit({ type: "progress", phase: "train", step: 3, total: 4, losses: {}, throughput: 1, elapsed: 0, eta: 0 });
    h.resolve({ n: 21 });
    expect(await job).toBe(42);
    await it;
    expect(seen).toEqual(["phase", "progress"]);
    expect(progress).toEqual([3]);
    expect(iterated.map((e) => e.type)).toEqual(["phase", "progress"]);
  });

  it("rejects with a DfkdError carrying the native code and checkpoint; iterators throw it", async () => {
    const { h, start } = fake();
    const job = Job.start(start);
    const it = (async () => { for await (const _ of job) { /* none */ } })();
    h.reject(Object.assign(new Error("cancelled; checkpoint written"), { code: "E_CANCELLED", checkpoint: "/x/ck.dfkd" }));
    const e = (await job.result.catch((x) => x)) as DfkdError;
    expect(e).toBeInstanceOf(DfkdError);
    expect([e.code, e.checkpoint]).toEqual(["E_CANCELLED", "/x/ck.dfkd"]);
    await expect(it).rejects.toMatchObject({ code: "E_CANCELLED" });
  });

  it("cancel(), an AbortSignal and dispose() reach the native handle; dispose never rejects", async () => {
    const { h, start } = fake();
    const ac = new AbortController();
    const job = Job.start(start, { signal: ac.signal });
    job.cancel();
    ac.abort();
    expect(h.cancelled).toBe(2);
    const done = job.dispose();
    h.reject(Object.assign(new Error("cancelled"), { code: "E_CANCELLED" }));
    await expect(done).resolves.toBeUndefined();
    job.cancel();  // after the end: nothing reaches the finished native job
    expect(h.cancelled).toBe(3);
  });

  it("a start that throws gives a rejected job (E_INTERNAL for a plain error)", async () => {
    const job = Job.start(() => { throw new Error("boom"); });
    await expect(job.result).rejects.toMatchObject({ code: "E_INTERNAL", message: "boom" });
  });
});
