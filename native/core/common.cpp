#include "core/common.h"

#include <cmath>

namespace dfkd {

Rng::Rng(uint64_t seed, torch::Device dev) : host(at::make_generator<at::CPUGeneratorImpl>(seed)), device(host) {
  if (!dev.is_cpu()) {
    auto g = at::globalContext().defaultGenerator(dev);
    std::lock_guard<std::mutex> lock(g.mutex());
    device = g.clone();
    device.set_current_seed(seed);
  }
}

Error translate(std::exception_ptr e, const char* code, const std::string& context) {
  const std::string pre = context.empty() ? "" : context + ": ";
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err;
  } catch (const c10::OutOfMemoryError& err) {
    return Error("E_OOM", pre + "out of memory: " + err.what_without_backtrace() +
                              " (use a smaller batch size)");
  } catch (const c10::Error& err) {
    std::string msg = err.what_without_backtrace();
    if (msg.find("out of memory") != std::string::npos || msg.find("DefaultCPUAllocator") != std::string::npos)
      return Error("E_OOM", pre + msg + " (use a smaller batch size)");
    return Error(code, pre + msg);
  } catch (const std::bad_alloc&) {
    return Error("E_OOM", pre + "out of memory (std::bad_alloc); use a smaller batch size");
  } catch (const std::exception& err) {
    return Error(code, pre + err.what());
  } catch (...) {
    return Error(code, pre + "unknown error");
  }
}

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int64_t> to_shape(const std::vector<double>& v) {
  std::vector<int64_t> out;
  for (double d : v) {  // (casting an out-of-range double to an integer is undefined)
    if (!(d >= 0 && d <= 9007199254740992.0 && d == std::floor(d))) fail("E_CONFIG", "invalid dimension " + std::to_string(d) + " in a shape");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

Json tensor_list(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kDouble).contiguous().view(-1);
  Json::Array a;
  auto p = c.data_ptr<double>();
  for (int64_t i = 0; i < c.numel(); ++i) a.emplace_back(p[i]);
  return Json(a);
}

}  // namespace dfkd
