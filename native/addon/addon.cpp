// N-API only: converts JS <-> core types, starts each job on its own std::thread, streams its
// events through a ThreadSafeFunction, and turns dfkd::Error into a JS Error with a `code`.
#include <napi.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/alloc.h"
#include "core/common.h"
#include "core/dist.h"
#include "core/graphs.h"
#include "core/job.h"
#include "core/zoo.h"

namespace {

using dfkd::Json;

Json to_json(const Napi::Value& v, int depth = 0) {
  if (depth > 32) throw dfkd::Error("E_CONFIG", "config nested too deeply");
  if (v.IsNull() || v.IsUndefined()) return Json();
  if (v.IsBoolean()) return Json(v.As<Napi::Boolean>().Value());
  if (v.IsNumber()) return Json(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return Json(v.As<Napi::String>().Utf8Value());
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    auto blob = std::make_shared<dfkd::Blob>();
    switch (ta.TypedArrayType()) {
      case napi_uint8_array: case napi_uint8_clamped_array: blob->dtype = "uint8"; break;
      case napi_float32_array: blob->dtype = "float32"; break;
      case napi_float64_array: blob->dtype = "float64"; break;
      case napi_int32_array: blob->dtype = "int32"; break;
      case napi_bigint64_array: blob->dtype = "int64"; break;
      default: throw dfkd::Error("E_CONFIG", "unsupported typed array (use Float32Array, Float64Array, Uint8Array, Int32Array or BigInt64Array)");
    }
    auto data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    blob->bytes.assign(data, data + ta.ByteLength());
    return Json(blob);
  }
  if (v.IsArray()) {
    auto a = v.As<Napi::Array>();
    Json::Array out;
    for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(to_json(a.Get(i), depth + 1));
    return Json(out);
  }
  if (v.IsObject() && !v.IsFunction()) {
    auto o = v.As<Napi::Object>();
    Json::Object out;
    auto keys = o.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      auto k = keys.Get(i).As<Napi::String>().Utf8Value();
      auto val = o.Get(k);
      if (val.IsUndefined() || val.IsFunction()) continue;
      out[k] = to_json(val, depth + 1);
    }
    return Json(out);
  }
  return Json();
}

Napi::Value to_js(Napi::Env env, const Json& j) {
  if (j.is_bool()) return Napi::Boolean::New(env, j.as_bool());
  if (j.is_number()) return Napi::Number::New(env, j.as_number());
  if (j.is_string()) return Napi::String::New(env, j.as_string());
  if (j.is_array()) {
    auto a = Napi::Array::New(env, j.as_array().size());
    for (size_t i = 0; i < j.as_array().size(); ++i) a.Set(uint32_t(i), to_js(env, j.as_array()[i]));
    return a;
  }
  if (j.is_object()) {
    auto o = Napi::Object::New(env);
    for (auto& [k, v] : j.as_object()) o.Set(k, to_js(env, v));
    return o;
  }
  return env.Null();
}

Napi::Error coded_error(Napi::Env env, const std::string& code, const std::string& msg) {
  auto e = Napi::Error::New(env, msg);
  e.Value().Set("code", Napi::String::New(env, code));
  return e;
}

// ---- jobs -----------------------------------------------------------------------------------

struct JobState {
  napi_env env = nullptr;  // the environment (main thread or worker) that started the job
  std::atomic<bool> cancel{false};
  std::thread thread;
  Napi::ThreadSafeFunction tsfn;
  std::unique_ptr<Napi::Promise::Deferred> deferred;
  bool ok = false;
  Json result;
  std::string err_code, err_msg, err_checkpoint;
};

std::mutex g_jobs_mutex;
std::set<std::shared_ptr<JobState>> g_jobs;  // running jobs, stopped by stop_jobs

// Cancels the jobs `env` started and waits for their threads (each stops within a step).
void stop_jobs(napi_env env) {
  std::set<std::shared_ptr<JobState>> jobs;
  {
    std::lock_guard<std::mutex> lock(g_jobs_mutex);
    for (auto& j : g_jobs)
      if (j->env == env) jobs.insert(j);
  }
  for (auto& j : jobs) j->cancel = true;
  for (auto& j : jobs)
    if (j->thread.joinable()) j->thread.join();
}

void cleanup_hook(void* env) { stop_jobs(static_cast<napi_env>(env)); }

// For process.on("exit"): process.exit() does not run env cleanup hooks before exit() destroys
// libtorch's statics, so a job thread still running then crashed the process (SIGSEGV).
Napi::Value StopAll(const Napi::CallbackInfo& info) {
  stop_jobs(info.Env());
  return info.Env().Undefined();
}

// runJob(kind, config, onEvent) -> { promise, cancel() }
Napi::Value RunJob(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[2].IsFunction())
    throw Napi::TypeError::New(env, "runJob(kind: string, config: object, onEvent: function)");
  std::string kind = info[0].As<Napi::String>().Utf8Value();
  Json config;
  try {
    config = to_json(info[1]);
  } catch (const dfkd::Error& e) {
    throw coded_error(env, e.code, e.what());
  }
  auto st = std::make_shared<JobState>();
  st->env = env;
  st->deferred = std::make_unique<Napi::Promise::Deferred>(env);
  auto promise = st->deferred->Promise();
  st->tsfn = Napi::ThreadSafeFunction::New(
      env, info[2].As<Napi::Function>(), "dfkd-job", 0, 1, [st](Napi::Env env) {
        // Finalizer, on the JS thread, after the worker released the TSFN.
        if (st->thread.joinable()) st->thread.join();
        {
          std::lock_guard<std::mutex> lock(g_jobs_mutex);
          g_jobs.erase(st);
        }
        if (st->ok) st->deferred->Resolve(to_js(env, st->result));
        else {
          auto err = coded_error(env, st->err_code, st->err_msg);
          if (!st->err_checkpoint.empty()) err.Value().Set("checkpoint", Napi::String::New(env, st->err_checkpoint));
          st->deferred->Reject(err.Value());
        }
      });
  {
    std::lock_guard<std::mutex> lock(g_jobs_mutex);
    g_jobs.insert(st);
  }
  st->thread = std::thread([st, kind, config = std::move(config)]() {
    auto emit = [st](const Json& e) {
      auto* copy = new Json(e);
      auto status = st->tsfn.NonBlockingCall(copy, [](Napi::Env env, Napi::Function cb, Json* data) {
        std::unique_ptr<Json> d(data);
        if (env && cb) {
          // An event listener that throws is an uncaught exception, as with any EventEmitter
          // (it used to be swallowed silently); the job itself runs on.
          try { cb.Call({to_js(env, *d)}); } catch (const Napi::Error& e) { napi_fatal_exception(env, e.Value()); }
        }
      });
      if (status != napi_ok) delete copy;
    };
    try {
      st->result = dfkd::run_job(kind, config, emit, st->cancel);
      st->ok = true;
    } catch (const dfkd::Error& e) {
      st->err_code = e.code;
      st->err_msg = e.what();
      st->err_checkpoint = e.checkpoint;
    } catch (...) {
      auto e = dfkd::translate(std::current_exception(), "E_INTERNAL", "");
      st->err_code = e.code;
      st->err_msg = e.what();
    }
    st->tsfn.Release();
  });
  auto handle = Napi::Object::New(env);
  handle.Set("promise", promise);
  std::weak_ptr<JobState> weak = st;
  handle.Set("cancel", Napi::Function::New(env, [weak](const Napi::CallbackInfo& info) {
    if (auto s = weak.lock()) s->cancel = true;
    return info.Env().Undefined();
  }));
  return handle;
}

Napi::Value Zoo(const Napi::CallbackInfo& info) {
  auto names = dfkd::zoo_names();
  auto a = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) a.Set(uint32_t(i), names[i]);
  return a;
}

// Every default of a distill config, from the core: the façade keeps no copy.
Napi::Value Defaults(const Napi::CallbackInfo& info) { return to_js(info.Env(), dfkd::distill_defaults()); }

Napi::Value Runtime(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("torch", TORCH_VERSION);
  o.Set("cuda", torch::cuda::is_available());
  o.Set("cudaDevices", double(torch::cuda::device_count()));
  o.Set("cudaGraphs", dfkd::graphs_compiled());
  o.Set("distributed", dfkd::Dist::compiled());
  o.Set("nccl", dfkd::Dist::nccl_compiled());
  o.Set("threads", double(at::get_num_threads()));
  auto cs = dfkd::cpu_cache_stats();
  auto c = Napi::Object::New(info.Env());
  c.Set("enabled", dfkd::cpu_cache_installed());
  c.Set("cachedBytes", double(cs.cached_bytes));
  c.Set("peakCachedBytes", double(cs.peak_cached_bytes));
  c.Set("hits", double(cs.hits));
  c.Set("misses", double(cs.misses));
  o.Set("cpuCache", c);
  return o;
}

// Jobs run on their own threads, and glibc gives each thread its own arena: heaps of at most
// 64 MB that it trims back to the system whenever their top is free, and an mmap for every block
// over a threshold. One arena, the largest fixed mmap threshold glibc accepts (32 MB) and no
// trimming below 1 GB keep freed memory for reuse. These reach only the threads that pick their
// arena after the addon loads, so the blocks that matter most (a training step's activations of
// 1 MB and more, freed and re-allocated every step) are kept for reuse by dfkd's caching CPU
// allocator instead (core/alloc.h): it holds them only while a job runs. DFKD_MALLOC=system leaves
// malloc and libtorch's CPU allocator as they were.
void tune_malloc() {
  const char* m = std::getenv("DFKD_MALLOC");
  if (m && std::strcmp(m, "system") == 0) return;
#if defined(__GLIBC__)
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  dfkd::install_cpu_cache();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  static std::once_flag malloc_once;
  std::call_once(malloc_once, tune_malloc);
  napi_add_env_cleanup_hook(env, cleanup_hook, env);
  exports.Set("runJob", Napi::Function::New(env, RunJob));
  exports.Set("stopAll", Napi::Function::New(env, StopAll));
  exports.Set("zoo", Napi::Function::New(env, Zoo));
  exports.Set("defaults", Napi::Function::New(env, Defaults));
  exports.Set("runtime", Napi::Function::New(env, Runtime));
  return exports;
}

}  // namespace

NODE_API_MODULE(dfkd, Init)
