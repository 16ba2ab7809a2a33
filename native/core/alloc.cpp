#include "core/alloc.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace dfkd {

namespace {

// Every block carries a header in front of its data: the size class it was allocated with (0: a
// small block, freed at once). 64 bytes keep the data as aligned as c10's own allocations.
constexpr size_t kHeader = 64;
constexpr size_t kMinCached = size_t(1) << 20;

// Size classes: 8 per power of two (at most 12.5% rounding), on 4 KB pages at least.
size_t size_class(size_t n) {
  if (n < kMinCached) return 0;
  const int log2 = 63 - __builtin_clzll(uint64_t(n));
  const size_t step = size_t(1) << std::max(log2 - 3, 12);
  return (n + step - 1) & ~(step - 1);
}

size_t default_cap() {
  if (const char* e = std::getenv("DFKD_CPU_CACHE_MB")) return size_t(std::strtoull(e, nullptr, 10)) << 20;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? size_t(pages) * size_t(page) / 2 : size_t(8) << 30;  // half the RAM
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;  // size class -> blocks (header addresses)
  CpuCacheStats stats;
  size_t cap = default_cap();
  int jobs = 0;  // running jobs (JobMemoryScope); read and written under `mu`

  // Frees every cached block; the caller holds `mu`.
  void drain() {
    for (auto& [cls, blocks] : free)
      for (void* b : blocks) c10::free_cpu(b);
    free.clear();
    stats.cached_bytes = 0;
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed during static destruction
  return *c;
}

void delete_block(void* data) {
  if (!data) return;
  void* base = static_cast<char*>(data) - kHeader;
  const size_t cls = *static_cast<size_t*>(base);
  if (cls) {
    auto& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.jobs > 0 && c.stats.cached_bytes + cls <= c.cap) {
      c.free[cls].push_back(base);
      c.stats.cached_bytes += cls;
      c.stats.peak_cached_bytes = std::max(c.stats.peak_cached_bytes, c.stats.cached_bytes);
      return;
    }
  }
  c10::free_cpu(base);
}

struct CachingCpuAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) override {
    if (n == 0) return {nullptr, nullptr, &delete_block, c10::Device(c10::DeviceType::CPU)};  // as c10's own
    // 2^56 bytes (64 PB) is more than any machine has; beyond it the size arithmetic could wrap.
    TORCH_CHECK_WITH(OutOfMemoryError, n < (size_t(1) << 56), "CPU allocator: not enough memory: you tried to allocate ", n, " bytes.");
    const size_t cls = size_class(n);
    void* base = nullptr;
    auto& c = cache();
    if (cls) {
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.free.find(cls);
      if (it != c.free.end() && !it->second.empty()) {
        base = it->second.back();
        it->second.pop_back();
        c.stats.cached_bytes -= cls;
        ++c.stats.hits;
      } else {
        ++c.stats.misses;
      }
    }
    if (!base) {
      const size_t bytes = (cls ? cls : n) + kHeader;
      try {
        base = c10::alloc_cpu(bytes);
      } catch (const c10::Error&) {
        {  // out of memory: give the cached blocks back and try once more
          std::lock_guard<std::mutex> lock(c.mu);
          if (c.stats.cached_bytes == 0) throw;
          c.drain();
        }
        base = c10::alloc_cpu(bytes);
      }
    }
    *static_cast<size_t*>(base) = cls;
    void* data = static_cast<char*>(base) + kHeader;
    return {data, data, &delete_block, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &delete_block; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

std::atomic<bool> g_installed{false};

}  // namespace

void install_cpu_cache() {
  static std::once_flag once;
  std::call_once(once, [] {
    static CachingCpuAllocator alloc;
    c10::SetCPUAllocator(&alloc, /*priority=*/1);
    g_installed = true;
  });
}

bool cpu_cache_installed() { return g_installed.load(); }

CpuCacheStats cpu_cache_stats() {
  auto& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

void release_cpu_cache() {
  auto& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.drain();
  }
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

JobMemoryScope::JobMemoryScope() {
  auto& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  ++c.jobs;
}

JobMemoryScope::~JobMemoryScope() {
  {
    auto& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (--c.jobs > 0) return;
  }
  release_cpu_cache();  // a job starting meanwhile only loses what it cached in its first steps
}

}  // namespace dfkd
