// The key-value store ranks bootstrap their communicators through (Gloo's address exchange,
// the NCCL unique id). Get blocks until the key exists, which Gloo's connectFullMesh needs.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_KV_STORE_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_KV_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace zerorun {

class CoordinatorClient;

class KvStore {
 public:
  virtual ~KvStore() = default;
  // Sets `key` (overwriting). Unavailable when the backing service is gone.
  virtual absl::Status Set(const std::string& key, const std::string& value) = 0;
  // Waits up to `timeout` for `key`; DeadlineExceeded naming the key when it never appears.
  virtual absl::StatusOr<std::string> Get(const std::string& key, absl::Duration timeout) = 0;
};

// In-process store for ranks that are threads of one test process. Thread-safe.
class InMemoryKvStore : public KvStore {
 public:
  InMemoryKvStore();
  ~InMemoryKvStore() override;
  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::string> Get(const std::string& key, absl::Duration timeout) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A directory shared by ranks that are processes on one machine: one file per key, written to a
// temporary name and renamed, so a reader never sees half a value. `dir` must exist.
class FileKvStore : public KvStore {
 public:
  explicit FileKvStore(std::string dir) : dir_(std::move(dir)) {}
  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::string> Get(const std::string& key, absl::Duration timeout) override;

 private:
  std::string Path(const std::string& key) const;
  const std::string dir_;
};

// The launcher's Coordinator key-value service (production). `client` must outlive the store.
class CoordinatorKvStore : public KvStore {
 public:
  explicit CoordinatorKvStore(CoordinatorClient* client) : client_(client) {}
  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::string> Get(const std::string& key, absl::Duration timeout) override;

 private:
  CoordinatorClient* client_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_KV_STORE_H_
