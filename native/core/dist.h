// Data parallelism on torch.distributed's C++ core (c10d), the one shipped inside libtorch:
// TCPStore for the rendezvous and ProcessGroupGloo for the collectives on the CPU,
// ProcessGroupNCCL on CUDA devices (one per local rank). No transport
// of our own. The launch contract is torchrun's: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT in the environment, so torchrun, Slurm or Kubernetes launchers start the ranks.
//
// The arithmetic of a data-parallel step (what makes W ranks at batch B/W equal one at batch B):
// every rank back-propagates its own loss divided by W; a statistic of the global batch (the
// BatchNorm-statistics and feature-statistics losses) is an all-reduced sum whose backward sums
// the gradients over the ranks (all_sum); the gradients of shared weights are summed over the
// ranks before the optimizer step (average_gradients sums the 1/W-scaled ones, i.e. averages).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <torch/script.h>
#include <torch/torch.h>

namespace dfkd {

struct DistSpec {
  int rank = 0, world = 1, local_rank = 0;
  std::string addr = "127.0.0.1";
  int port = 29500;
  double timeout = 300;  // seconds a rendezvous or collective waits for the other ranks
  torch::Device device = torch::kCPU;  // the rank's device: CPU -> Gloo, CUDA (cuda:LOCAL_RANK) -> NCCL
};

// torchrun's variables from the environment (world 1 when WORLD_SIZE is unset); E_CONFIG when
// they are malformed or inconsistent.
DistSpec dist_from_env(double timeout);

class Dist {
 public:
  // Whether c10d's Gloo process group was compiled in (its headers, Debian's libgloo-dev, were
  // found at build time; libtorch carries the implementation): data parallelism on CPUs.
  static bool compiled();
  // Whether c10d's NCCL process group was compiled in (a CUDA torch: its c10d headers and NCCL's
  // nccl.h found at build time; libtorch_cuda carries the implementation): on CUDA devices.
  static bool nccl_compiled();
  // The rendezvous: rank 0 hosts the TCPStore at addr:port, every rank joins the group (Gloo on
  // the CPU, NCCL on a CUDA device). E_DISTRIBUTED when it does not complete within the timeout,
  // or when the device's backend is not compiled in.
  explicit Dist(const DistSpec& s);
  ~Dist();
  Dist(const Dist&) = delete;
  int rank() const;
  int world() const;
  const char* backend() const;  // "gloo" or "nccl"
  // Sums over the ranks, in place (CPU tensors). E_DISTRIBUTED (naming `what`) when a rank is gone
  // or does not answer within the timeout.
  void sum_(std::vector<torch::Tensor> ts, const char* what);
  void broadcast_(std::vector<torch::Tensor> ts, int root, const char* what);
  // Sums the gradients of `params` over the ranks, all in one flat bucket (parameters without a
  // gradient count as zeros). With every rank's loss divided by world(): the batch-mean gradient.
  void sum_gradients(const std::vector<torch::Tensor>& params, const char* what = "the sum of the student's gradients");
  // The mean over the ranks of a module's floating-point buffers (BatchNorm's running statistics,
  // each rank's from its share of the batches), in one bucket: every rank keeps the same ones.
  void average_buffers(torch::jit::Module& m);
  // A zoo student with SyncBatchNorm (dist.h sync_batch_norm) updates its running statistics from
  // the group's batch statistics, the same on every rank: student_step skips average_buffers
  // (a collective a step that would average equal values). check_same confirms it at checkpoints.
  bool student_bn_synced = false;
  // Every rank's `m` is bit-identical to rank 0's (a hash of its parameters and floating-point
  // buffers, compared over the group): the data-parallel replicas have not drifted apart. On every
  // rank, E_DISTRIBUTED naming the ranks that differ. A broadcast and a sum; call it where every
  // rank is at the same point (a periodic checkpoint, the end of the run).
  void check_same(torch::jit::Module& m, const char* what);
  // The sum over the ranks of `t`, differentiable: its backward sums the incoming gradients over
  // the ranks (each rank's input receives what every rank's loss says about the sum).
  torch::Tensor all_sum(const torch::Tensor& t);
  void barrier(const char* what);

  // What this rank's collectives cost so far: how many, the bytes it sent into them, and the
  // seconds from issuing each to its completion (the transfer and the wait for slower ranks).
  struct Traffic {
    int64_t collectives = 0, bytes = 0;
    double seconds = 0;
  };
  const Traffic& traffic() const { return traffic_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Traffic traffic_;
  template <class F>
  void timed(const torch::Tensor& t, F&& collective);
};

// SyncBatchNorm, for the zoo's students in a data-parallel run (zoo.h make_model's sync_bn): the
// operator dfkd::sync_batch_norm, BatchNorm's arguments, normalizes in training mode by the
// statistics of the whole batch over the active group (an all-reduce of per-channel sums whose
// backward sums the gradients), so W ranks at B/W compute what one process does at B. Without a
// group, or in eval mode, it is torch.batch_norm. Registered by this library: a module that calls
// it loads only where dfkd is loaded, so the student file gets the plain model (driver.cpp).

// The data-parallel group of the job running on this thread (null: one process). The statistics
// losses (losses.cpp batch_moments) read it: with a group, their statistics are the global batch's.
Dist* active_dist();
// The whole batch's value of a loss that each rank computed on its equal share of the batch: the
// mean over the ranks (detached), or `t` itself in one process.
torch::Tensor mean_over_ranks(const torch::Tensor& t, const char* what);
// A global batch's size per rank: `batch` / `world`; E_CONFIG naming the setting (`what`, e.g.
// "synth.batchSize") when it does not split evenly over the ranks.
int64_t per_rank(int64_t batch, int world, const char* what);
// This rank's rows [lo, hi) of a batch that every rank draws whole (the same random draws, so the
// shares together are one process's batch); the whole batch in one process.
struct Share {
  int64_t world = 1, lo = 0, hi = 0;
  torch::Tensor of(const torch::Tensor& whole) const { return world > 1 ? whole.slice(0, lo, hi) : whole; }
};
Share share_of(int64_t batch, const char* what);
class ActiveDist {
 public:
  explicit ActiveDist(Dist* d);
  ~ActiveDist();
  ActiveDist(const ActiveDist&) = delete;
 private:
  Dist* prev_;
};

}  // namespace dfkd
