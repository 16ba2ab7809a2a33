#include "core/dist.h"

#include <cstdlib>

#include "core/error.h"

#ifdef DFKD_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
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
ActiveDist::ActiveDist(Dist* d) : prev_(g_active) { g_active = d; }
ActiveDist::~ActiveDist() { g_active = prev_; }

#ifdef DFKD_GLOO

struct Dist::Impl {
  DistSpec spec;
  std::chrono::milliseconds timeout;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;

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

bool Dist::compiled() { return true; }

Dist::Dist(const DistSpec& s) : impl_(new Impl{s, std::chrono::milliseconds(int64_t(s.timeout * 1000))}) {
  auto& m = *impl_;
  try {
    c10d::TCPStoreOptions o;
    o.port = uint16_t(s.port);
    o.isServer = s.rank == 0;
    o.numWorkers = s.world;
    o.waitWorkers = true;
    o.timeout = m.timeout;
    m.store = c10::make_intrusive<c10d::TCPStore>(s.addr, o);
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
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find("\nException raised from"); nl != std::string::npos) msg.resize(nl);
    fail("E_DISTRIBUTED", m.who() + ": the rendezvous at " + s.addr + ":" + std::to_string(s.port) +
                              " did not complete within " + std::to_string(int64_t(s.timeout)) + " s: " + msg);
  }
}

// (c10d's list arguments are one tensor per device of this process: one call per tensor here;
// a non-contiguous tensor goes through a contiguous copy)
void Dist::sum_(std::vector<torch::Tensor> ts, const char* what) {
  for (auto& t : ts) {
    std::vector<torch::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    impl_->wait(impl_->pg->allreduce(one), what);
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

void Dist::broadcast_(std::vector<torch::Tensor> ts, int root, const char* what) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  for (auto& t : ts) {
    std::vector<torch::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    impl_->wait(impl_->pg->broadcast(one, o), what);
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

void Dist::barrier(const char* what) { impl_->wait(impl_->pg->barrier(), what); }
int Dist::rank() const { return impl_->spec.rank; }
int Dist::world() const { return impl_->spec.world; }

#else  // no c10d Gloo headers at build time

struct Dist::Impl {};
bool Dist::compiled() { return false; }
Dist::Dist(const DistSpec& s) {
  fail("E_DISTRIBUTED", "this build of dfkd has no c10d process group: build it with the gloo headers installed "
                        "(Debian/Ubuntu: apt install libgloo-dev), or run on one process");
}
void Dist::sum_(std::vector<torch::Tensor>, const char*) {}
void Dist::broadcast_(std::vector<torch::Tensor>, int, const char*) {}
void Dist::barrier(const char*) {}
int Dist::rank() const { return 0; }
int Dist::world() const { return 1; }

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

void Dist::sum_gradients(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (auto p : params) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  sum_flat(*this, grads, "the sum of the student's gradients");
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
