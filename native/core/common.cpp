#include "core/common.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

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

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  // Unique per call (jobs on several threads of one process may write the same file), flushed
  // to disk before the rename, so neither a crash nor a power loss leaves a half-written file.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("E_IO", "cannot write " + tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string why = std::strerror(errno);
      ::close(fd);
      std::remove(tmp.c_str());
      fail("E_IO", "write failed: " + tmp + ": " + why);
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    std::remove(tmp.c_str());
    fail("E_IO", "cannot flush " + tmp + ": " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    fail("E_IO", "cannot rename " + tmp + " to " + path + ": " + why);
  }
}

std::string read_file(const std::string& path, const char* missing_code) {
  if (!file_exists(path)) fail(missing_code, "file not found: " + path);
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(missing_code, "cannot open " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace dfkd
