// A caching CPU allocator for libtorch: blocks of 1 MB and more that a job frees are kept and
// handed out again for the next request of the same size class, instead of going back to malloc.
//
// Why: a training step frees and re-allocates the same large activations every step. glibc serves
// them from mmap (over its threshold) or from a per-thread arena that it trims, so each step wrote
// into fresh pages: page faults and zeroing by the kernel. A LeNet-5 DFAD iteration at batch 256
// spent over a third of its CPU time in the kernel that way (4.7 million faults in 5 iterations),
// and eager PyTorch pays the same. glibc's own knobs (one arena, a fixed mmap threshold) only
// reach threads that had not yet picked an arena when the addon loaded, so they helped in some
// processes and not in others.
//
// Blocks are cached only while a job runs (JobMemoryScope); when the last one ends, every cached
// block is freed and the heap trimmed, so an idle process keeps only what it uses. An allocation
// that fails frees the cache and tries once more before it reports out of memory.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dfkd {

// Makes the caching allocator libtorch's CPU allocator (idempotent). Tensors allocated before
// keep their own deleters.
void install_cpu_cache();
bool cpu_cache_installed();

struct CpuCacheStats {
  size_t cached_bytes = 0;  // held for reuse now
  size_t peak_cached_bytes = 0;
  uint64_t hits = 0, misses = 0;  // large allocations served from the cache / from malloc
};
CpuCacheStats cpu_cache_stats();
// Frees every cached block (and, on glibc, returns free heap pages to the system).
void release_cpu_cache();

// While one exists, freed large blocks are cached; the last one to end releases the cache.
class JobMemoryScope {
 public:
  JobMemoryScope();
  ~JobMemoryScope();
  JobMemoryScope(const JobMemoryScope&) = delete;
  JobMemoryScope& operator=(const JobMemoryScope&) = delete;
};

}  // namespace dfkd
