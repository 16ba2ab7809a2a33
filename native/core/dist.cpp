#include "core/dist.h"

#include <chrono>
#include <cstdlib>

#include "core/error.h"

#if defined(DFKD_GLOO) || defined(DFKD_NCCL)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef DFKD_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef DFKD_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace dfkd {

namespace {

thread_local Dist* g_active = nullptr;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end || n < 0 || n > 1 << 20) fail("E_CONFIG", std::string(name) + " must be a non-negative integer, got '" + v + "'");
  return int(n);
}

}  // namespace

DistSpec dist_from_env(double timeout) {
  DistSpec s;
  s.timeout = timeout;
  s.world = env_int("WORLD_SIZE", 1);
  if (s.world < 1) fail("E_CONFIG", "WORLD_SIZE must be at least 1");
  s.rank = env_int("RANK", 0);
  if (s.rank >= s.world)
    fail("E_CONFIG", "RANK " + std::to_string(s.rank) + " is not below WORLD_SIZE " + std::to_string(s.world));
  if (s.world > 1 && !std::getenv("RANK")) fail("E_CONFIG", "WORLD_SIZE is " + std::to_string(s.world) + " but RANK is not set");
  s.local_rank = env_int("LOCAL_RANK", s.rank);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) s.addr = a;
  s.port = env_int("MASTER_PORT", 29500);
  if (s.port < 1 || s.port > 65535) fail("E_CONFIG", "MASTER_PORT must be a TCP port (1..65535)");
  return s;
}

Dist* active_dist() { return g_active; }
torch::Tensor mean_over_ranks(const torch::Tensor& t, const char* what) {
  Dist* d = active_dist();
  if (!d || d->world() < 2) return t;
  auto m = t.detach().clone();
  d->sum_({m}, what);
  return m / double(d->world());
}
int64_t per_rank(int64_t batch, int world, const char* what) {
  if (batch % world)
    fail("E_CONFIG", std::string(what) + " " + std::to_string(batch) + " is not a multiple of the " + std::to_string(world) + " ranks");
  return batch / world;
}
Share share_of(int64_t batch, const char* what) {
  Dist* d = active_dist();
  if (!d || d->world() < 2) return {1, 0, batch};
  const int64_t n = per_rank(batch, d->world(), what);
  return {d->world(), d->rank() * n, (d->rank() + 1) * n};
}
ActiveDist::ActiveDist(Dist* d) : prev_(g_active) { g_active = d; }
ActiveDist::~ActiveDist() { g_active = prev_; }

bool Dist::compiled() {
#ifdef DFKD_GLOO
  return true;
#else
  return false;
#endif
}
bool Dist::nccl_compiled() {
#ifdef DFKD_NCCL
  return true;
#else
  return false;
#endif
}

#if defined(DFKD_GLOO) || defined(DFKD_NCCL)

struct Dist::Impl {
  DistSpec spec;
  std::chrono::milliseconds timeout;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;  // ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA)
  const char* backend = "gloo";

  // What a collective reads and writes: NCCL takes device tensors only, so a host tensor (the
  // cancel flag, the plan) goes through the rank's device; c10d wants contiguous ones.
  torch::Tensor staged(const torch::Tensor& t) const {
    if (spec.device.is_cuda() && !t.is_cuda()) return t.to(spec.device);
    return t.is_contiguous() ? t : t.contiguous();
  }

  std::string who() const { return "rank " + std::to_string(spec.rank) + " of " + std::to_string(spec.world); }
  // Waits for a collective; a peer that died (its sockets closed) or hangs past the timeout ends
  // the job on this rank with E_DISTRIBUTED, never a hang.
  void wait(const c10::intrusive_ptr<c10d::Work>& w, const char* what) {
    try {
      w->wait(timeout);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (auto nl = msg.find("\nException raised from"); nl != std::string::npos) msg.resize(nl);
      fail("E_DISTRIBUTED", who() + ": " + what + " failed (another rank died, hung or left; timeout " +
                                std::to_string(timeout.count() / 1000) + " s): " + msg);
    }
  }
};

Dist::Dist(const DistSpec& s) : impl_(new Impl{s, std::chrono::milliseconds(int64_t(s.timeout * 1000))}) {
  auto& m = *impl_;
  try {
    // (checked before the rendezvous: a rank that cannot make its group must not leave the others waiting on it)
    if (s.device.is_cuda() && !nccl_compiled())
      fail("E_DISTRIBUTED", "this build of dfkd has no NCCL process group for CUDA devices (it is compiled in when the CUDA "
                            "torch's c10d headers and NCCL's nccl.h are found at build time): run on device 'cpu' or one process");
    if (!s.device.is_cuda() && !compiled())
      fail("E_DISTRIBUTED", "this build of dfkd has no c10d Gloo process group: build it with the gloo headers installed "
                            "(Debian/Ubuntu: apt install libgloo-dev), or run on one process");
    c10d::TCPStoreOptions o;
    o.port = uint16_t(s.port);
    o.isServer = s.rank == 0;
    o.numWorkers = s.world;
    o.waitWorkers = true;
    o.timeout = m.timeout;
    m.store = c10::make_intrusive<c10d::TCPStore>(s.addr, o);
#ifdef DFKD_NCCL
    if (s.device.is_cuda()) {
      // Blocking waits: a collective that fails or outlives the timeout throws in wait() (and
      // becomes E_DISTRIBUTED) instead of NCCL's watchdog ending the process. A user's own
      // setting of the variable wins.
      setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = m.timeout;
      m.pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(m.store, s.rank, s.world, opts);
      m.backend = "nccl";
    }
#endif
#ifdef DFKD_GLOO
    if (!s.device.is_cuda()) {
      auto opts = c10d::ProcessGroupGloo::Options::create(m.timeout);
      // The interface to talk on: GLOO_SOCKET_IFNAME (torch.distributed's variable), else the
      // loopback for a local group, else this machine's hostname.
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (s.addr == "127.0.0.1" || s.addr == "localhost")
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      m.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(m.store, s.rank, s.world, opts);
    }
#endif
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find("\nException raised from"); nl != std::string::npos) msg.resize(nl);
    fail("E_DISTRIBUTED", m.who() + ": the rendezvous at " + s.addr + ":" + std::to_string(s.port) +
                              " did not complete within " + std::to_string(int64_t(s.timeout)) + " s: " + msg);
  }
}

template <class F>
void Dist::timed(const torch::Tensor& t, F&& collective) {
  const auto t0 = std::chrono::steady_clock::now();
  collective();
  traffic_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  traffic_.collectives += 1;
  if (t.defined()) traffic_.bytes += int64_t(t.numel() * t.element_size());
}

// (c10d's list arguments are one tensor per device of this process: one call per tensor here;
// a non-contiguous tensor goes through a contiguous copy)
void Dist::sum_(std::vector<torch::Tensor> ts, const char* what) {
  for (auto& t : ts) {
    std::vector<torch::Tensor> one{impl_->staged(t)};
    timed(t, [&] { impl_->wait(impl_->pg->allreduce(one), what); });
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

void Dist::broadcast_(std::vector<torch::Tensor> ts, int root, const char* what) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  for (auto& t : ts) {
    std::vector<torch::Tensor> one{impl_->staged(t)};
    timed(t, [&] { impl_->wait(impl_->pg->broadcast(one, o), what); });
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

void Dist::barrier(const char* what) {
  c10d::BarrierOptions o;
  if (impl_->spec.device.is_cuda()) o.device = impl_->spec.device;
  timed(torch::Tensor(), [&] { impl_->wait(impl_->pg->barrier(o), what); });
}
int Dist::rank() const { return impl_->spec.rank; }
int Dist::world() const { return impl_->spec.world; }
const char* Dist::backend() const { return impl_->backend; }

#else  // no c10d process group at build time (neither gloo's headers nor a CUDA torch with NCCL's)

struct Dist::Impl {};
Dist::Dist(const DistSpec& s) {
  fail("E_DISTRIBUTED", "this build of dfkd has no c10d process group: build it with the gloo headers installed "
                        "(Debian/Ubuntu: apt install libgloo-dev), or run on one process");
}
void Dist::sum_(std::vector<torch::Tensor>, const char*) {}
void Dist::broadcast_(std::vector<torch::Tensor>, int, const char*) {}
void Dist::barrier(const char*) {}
int Dist::rank() const { return 0; }
int Dist::world() const { return 1; }
const char* Dist::backend() const { return "none"; }

#endif

Dist::~Dist() = default;

namespace {

// all_sum's autograd node: forward and backward are both sums over the ranks.
struct AllSum : torch::autograd::Function<AllSum> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& t, int64_t dist) {
    ctx->saved_data["dist"] = dist;
    auto out = t.detach().contiguous().clone();
    reinterpret_cast<Dist*>(dist)->sum_({out}, "the sum of a global-batch statistic");
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* d = reinterpret_cast<Dist*>(ctx->saved_data["dist"].toInt());
    auto g = grads[0].contiguous().clone();  // (defined: autograd materializes a missing gradient as zeros)
    d->sum_({g}, "the gradient of a global-batch statistic");
    return {g, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor Dist::all_sum(const torch::Tensor& t) { return AllSum::apply(t, reinterpret_cast<int64_t>(this)); }

namespace {
// Sums tensors over the ranks in place through one flat bucket: one collective for all of them.
void sum_flat(Dist& d, const std::vector<torch::Tensor>& ts, const char* what) {
  if (ts.empty()) return;
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> flat;
  for (auto& t : ts) flat.push_back(t.reshape(-1));
  auto bucket = torch::cat(flat);
  d.sum_({bucket}, what);
  int64_t at = 0;
  for (auto t : ts) {
    t.copy_(bucket.slice(0, at, at + t.numel()).view(t.sizes()));
    at += t.numel();
  }
}
}  // namespace

void Dist::sum_gradients(const std::vector<torch::Tensor>& params, const char* what) {
  std::vector<torch::Tensor> grads;
  for (auto p : params) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  sum_flat(*this, grads, what);
}

// ---- SyncBatchNorm: dfkd::sync_batch_norm (dist.h) --------------------------------------------

namespace {

torch::Tensor sync_batch_norm(const torch::Tensor& x, const std::optional<torch::Tensor>& weight,
                              const std::optional<torch::Tensor>& bias, torch::Tensor running_mean,
                              torch::Tensor running_var, bool training, double momentum, double eps) {
  Dist* d = active_dist();
  if (!training || !d || d->world() < 2)
    return at::batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, true);
  // The global batch's per-channel sum and sum of squares in one differentiable all-reduce: its
  // backward sums the gradients over the ranks, so each rank's inputs get what every rank's loss
  // says about the shared statistics (torch.nn.SyncBatchNorm's gradient).
  std::vector<int64_t> dims{0}, shape(x.dim(), 1);
  for (int64_t i = 2; i < x.dim(); ++i) dims.push_back(i);
  const int64_t c = x.size(1);
  shape[1] = c;
  const double n = double(x.numel() / std::max<int64_t>(c, 1)) * d->world();
  auto sums = d->all_sum(torch::cat({x.sum(dims), x.square().sum(dims)}));
  auto mean = sums.slice(0, 0, c) / n;
  auto var = (sums.slice(0, c, 2 * c) / n - mean.square()).clamp_min(0);  // biased, as BatchNorm normalizes
  auto y = (x - mean.view(shape)) * torch::rsqrt(var + eps).view(shape);
  if (weight && weight->defined()) y = y * weight->view(shape);
  if (bias && bias->defined()) y = y + bias->view(shape);
  {  // running statistics as BatchNorm keeps them (unbiased variance), the same on every rank
    torch::NoGradGuard ng;
    running_mean.mul_(1 - momentum).add_(mean.detach(), momentum);
    running_var.mul_(1 - momentum).add_(var.detach() * (n / std::max(n - 1, 1.0)), momentum);
  }
  return y;
}

}  // namespace

// Registered with the library (the zoo's BatchNorm source calls it by name); its autograd is that
// of the ops it is made of (CompositeImplicitAutograd), all_sum's node included.
TORCH_LIBRARY(dfkd, m) {
  m.def("sync_batch_norm(Tensor x, Tensor? weight, Tensor? bias, Tensor(a!) running_mean, Tensor(b!) running_var, "
        "bool training, float momentum, float eps) -> Tensor");
}
TORCH_LIBRARY_IMPL(dfkd, CompositeImplicitAutograd, m) { m.impl("sync_batch_norm", sync_batch_norm); }

void Dist::check_same(torch::jit::Module& m, const char* what) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the bytes of each tensor, in module order
  auto mix = [&h](const torch::Tensor& t) {
    auto c = t.detach().cpu().contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    for (size_t i = 0, n = c.nbytes(); i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  for (auto p : m.parameters()) mix(p);
  for (auto b : m.buffers())
    if (b.is_floating_point()) mix(b);
  const int64_t mine = int64_t(h);
  auto lead = torch::tensor({mine}, torch::kLong);
  broadcast_({lead}, 0, what);
  auto differ = torch::zeros({world()}, torch::kFloat);
  if (lead.item<int64_t>() != mine) differ[rank()] = 1.0f;
  sum_({differ}, what);
  std::string ranks;
  for (int k = 1; k < world(); ++k)
    if (differ[k].item<float>() > 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(k);
  if (!ranks.empty())
    fail("E_DISTRIBUTED", "rank " + std::to_string(rank()) + " of " + std::to_string(world()) + ": " + what +
                              ": rank(s) " + ranks + " hold weights that differ from rank 0's (the data-parallel "
                              "replicas drifted apart)");
}

void Dist::average_buffers(torch::jit::Module& m) {
  std::vector<torch::Tensor> bufs;
  for (auto b : m.buffers())
    if (b.is_floating_point()) bufs.push_back(b);
  sum_flat(*this, bufs, "the mean of the student's BatchNorm statistics");
  torch::NoGradGuard ng;
  for (auto& b : bufs) b.div_(double(world()));
}

}  // namespace dfkd
