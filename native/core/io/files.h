// Files: atomic writes, reads with a coded error, directories (std::filesystem).
#pragma once
#include <string>

namespace dfkd {

// Atomic file write: write to path + ".tmp-<pid>-<n>", fsync, then rename over path.
void write_file_atomic(const std::string& path, const std::string& bytes);
// The whole file; `missing_code` (E_DATA_NOT_FOUND, E_CHECKPOINT, ...) when it is not a file.
std::string read_file(const std::string& path, const char* missing_code);
bool file_exists(const std::string& path);
// Creates `dir` and its parents (nothing for ""); E_IO naming the directory when it cannot.
void make_dirs(const std::string& dir);
// Creates the directory a file goes in.
void make_parent_dirs(const std::string& file);

}  // namespace dfkd
