// A reader of the safetensors format (an 8-byte little-endian header length, a JSON header of
// name -> {dtype, shape, data_offsets}, then the data): every entry checked against the file's
// size before use, element ranges read with pread and widened to fp32 (F32, BF16, F16).
#ifndef ZERORUN_RUNTIME_CKPT_SAFETENSORS_H_
#define ZERORUN_RUNTIME_CKPT_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace zerorun::ckpt {

struct SafetensorsEntry {
  std::string dtype;  // "F32", "BF16" or "F16".
  std::vector<uint64_t> shape;
  uint64_t numel = 0;
  uint64_t begin = 0;  // Byte offset of the data in the file.
};

class SafetensorsFile {
 public:
  // NotFound when `path` does not exist; DataLoss naming the path and what is wrong when it is
  // not a well-formed safetensors file (header past the end, overlapping or out-of-file data,
  // sizes that disagree with dtype x shape); InvalidArgument naming the tensor for a dtype other
  // than F32, BF16 and F16.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  uint64_t file_bytes() const { return file_bytes_; }
  // The header's "__metadata__" (string to string, as the format has it).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Elements [begin, end) of tensor `name` (flat, row-major) as fp32 into out[0, end - begin).
  // InvalidArgument for a range past the tensor; Internal/DataLoss on a failed or short read.
  absl::Status ReadFloats(const std::string& name, uint64_t begin, uint64_t end, float* out) const;

 private:
  SafetensorsFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_ = -1;
  uint64_t file_bytes_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace zerorun::ckpt

#endif  // ZERORUN_RUNTIME_CKPT_SAFETENSORS_H_
