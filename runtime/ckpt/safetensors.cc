// The safetensors reader (see safetensors.h).
#include "ckpt/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "zerorun/dtype.h"

namespace zerorun::ckpt {
namespace {

constexpr uint64_t kMaxHeader = uint64_t{100} << 20;  // The format's own limit.

size_t ElementSize(const std::string& dtype) { return dtype == "F32" ? 4 : 2; }

absl::Status PreadAll(int fd, char* out, size_t n, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      return absl::InternalError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
    if (r == 0) return absl::DataLossError(absl::StrCat(path, " ends early (truncated?)"));
    done += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

}  // namespace

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      file_bytes_(other.file_bytes_),
      entries_(std::move(other.entries_)),
      metadata_(std::move(other.metadata_)) {}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const std::string why = strerror(errno);
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", why));
  }
  SafetensorsFile file(path, fd);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    return absl::InternalError(absl::StrCat("cannot stat ", path, ": ", strerror(errno)));
  }
  file.file_bytes_ = static_cast<uint64_t>(st.st_size);
  auto bad = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat(path, " is not a safetensors file: ", why));
  };
  unsigned char size_bytes[8];
  if (file.file_bytes_ < 8) return bad("shorter than its 8-byte header length");
  if (absl::Status s = PreadAll(fd, reinterpret_cast<char*>(size_bytes), 8, 0, path); !s.ok()) {
    return s;
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | size_bytes[i];
  if (header_bytes > kMaxHeader || 8 + header_bytes > file.file_bytes_) {
    return bad(
        absl::StrCat("a header of ", header_bytes, " bytes in a file of ", file.file_bytes_));
  }
  std::string text(header_bytes, '\0');
  if (absl::Status s = PreadAll(fd, text.data(), text.size(), 8, path); !s.ok()) return s;
  const nlohmann::json header = nlohmann::json::parse(text, nullptr, false);
  if (header.is_discarded() || !header.is_object()) return bad("its header is not a JSON object");
  const uint64_t data_begin = 8 + header_bytes, data_bytes = file.file_bytes_ - data_begin;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) return bad("its __metadata__ is not a JSON object");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) return bad(absl::StrCat("__metadata__ ", key, " is not a string"));
        file.metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    const nlohmann::json* offsets =
        value.is_object() && value.contains("data_offsets") ? &value["data_offsets"] : nullptr;
    if (offsets == nullptr || !offsets->is_array() || offsets->size() != 2 ||
        !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned() ||
        !value.contains("dtype") || !value["dtype"].is_string() || !value.contains("shape") ||
        !value["shape"].is_array()) {
      return bad(absl::StrCat("tensor ", name, " lacks dtype, shape or data_offsets"));
    }
    SafetensorsEntry entry;
    entry.dtype = value["dtype"].get<std::string>();
    if (entry.dtype != "F32" && entry.dtype != "BF16" && entry.dtype != "F16") {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", name, " is ", entry.dtype,
                                                     "; zerorun imports F32, BF16 and F16"));
    }
    entry.numel = 1;
    for (const nlohmann::json& d : value["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 40)) {
        return bad(absl::StrCat("tensor ", name, " has shape ", value["shape"].dump()));
      }
      entry.shape.push_back(d.get<uint64_t>());
      entry.numel *= entry.shape.back();
    }
    const uint64_t lo = (*offsets)[0].get<uint64_t>(), hi = (*offsets)[1].get<uint64_t>();
    if (lo > hi || hi > data_bytes || hi - lo != entry.numel * ElementSize(entry.dtype)) {
      return bad(absl::StrCat("tensor ", name, " has data_offsets [", lo, ", ", hi, "] for ",
                              entry.numel, " ", entry.dtype, " elements in ", data_bytes,
                              " data bytes"));
    }
    entry.begin = data_begin + lo;
    spans.emplace_back(lo, hi);
    file.entries_[name] = std::move(entry);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].first < spans[i - 1].second) return bad("two tensors' data overlap");
  }
  return file;
}

absl::Status SafetensorsFile::ReadFloats(const std::string& name, uint64_t begin, uint64_t end,
                                         float* out) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, " has no tensor ", name));
  }
  const SafetensorsEntry& e = it->second;
  if (begin > end || end > e.numel) {
    return absl::InvalidArgumentError(
        absl::StrCat("elements [", begin, ", ", end, ") of ", name, " (", e.numel, " elements)"));
  }
  const size_t width = ElementSize(e.dtype), n = end - begin;
  if (width == 4)
    return PreadAll(fd_, reinterpret_cast<char*>(out), n * 4, e.begin + begin * 4, path_);
  std::vector<uint16_t> half(n);
  if (absl::Status s =
          PreadAll(fd_, reinterpret_cast<char*>(half.data()), n * 2, e.begin + begin * 2, path_);
      !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < n; ++i)
    out[i] = e.dtype == "BF16" ? Bf16ToFloat(half[i]) : Fp16ToFloat(half[i]);
  return absl::OkStatus();
}

}  // namespace zerorun::ckpt
