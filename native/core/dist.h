// Data parallelism on torch.distributed's C++ core (c10d), the one shipped inside libtorch:
// TCPStore for the rendezvous and ProcessGroupGloo for the collectives (CPU tensors). No transport
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
};

// torchrun's variables from the environment (world 1 when WORLD_SIZE is unset); E_CONFIG when
// they are malformed or inconsistent.
DistSpec dist_from_env(double timeout);

class Dist {
 public:
  // Whether c10d's Gloo process group was compiled in (its headers, Debian's libgloo-dev, were
  // found at build time; libtorch carries the implementation).
  static bool compiled();
  // The rendezvous: rank 0 hosts the TCPStore at addr:port, every rank joins the Gloo group.
  // E_DISTRIBUTED when it does not complete within the timeout.
  explicit Dist(const DistSpec& s);
  ~Dist();
  Dist(const Dist&) = delete;
  int rank() const;
  int world() const;
  // Sums over the ranks, in place (CPU tensors). E_DISTRIBUTED (naming `what`) when a rank is gone
  // or does not answer within the timeout.
  void sum_(std::vector<torch::Tensor> ts, const char* what);
  void broadcast_(std::vector<torch::Tensor> ts, int root, const char* what);
  // Sums the gradients of `params` over the ranks, all in one flat bucket (parameters without a
  // gradient count as zeros). With every rank's loss divided by world(): the batch-mean gradient.
  void sum_gradients(const std::vector<torch::Tensor>& params);
  // The mean over the ranks of a module's floating-point buffers (BatchNorm's running statistics,
  // each rank's from its share of the batches), in one bucket: every rank keeps the same ones.
  void average_buffers(torch::jit::Module& m);
  // The sum over the ranks of `t`, differentiable: its backward sums the incoming gradients over
  // the ranks (each rank's input receives what every rank's loss says about the sum).
  torch::Tensor all_sum(const torch::Tensor& t);
  void barrier(const char* what);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The data-parallel group of the job running on this thread (null: one process). The statistics
// losses (losses.cpp batch_moments) read it: with a group, their statistics are the global batch's.
Dist* active_dist();
class ActiveDist {
 public:
  explicit ActiveDist(Dist* d);
  ~ActiveDist();
  ActiveDist(const ActiveDist&) = delete;
 private:
  Dist* prev_;
};

}  // namespace dfkd
