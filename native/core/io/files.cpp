#include "core/io/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace dfkd {

namespace fs = std::filesystem;

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

void make_dirs(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec && !fs::is_directory(dir)) fail("E_IO", "cannot create directory " + dir + ": " + ec.message());
}

void make_parent_dirs(const std::string& file) { make_dirs(fs::path(file).parent_path().string()); }

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
