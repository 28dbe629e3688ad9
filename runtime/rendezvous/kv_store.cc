// KvStore implementations: in-memory (threads), files (processes), the launcher (production).
#include "zerorun/kv_store.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "zerorun/coordinator_client.h"

namespace zerorun {
namespace {

absl::Status Missing(const std::string& key, absl::Duration timeout) {
  return absl::DeadlineExceededError(absl::StrCat("rendezvous key '", key, "' was not set within ",
                                                  absl::FormatDuration(timeout),
                                                  " (a peer rank did not start or died)"));
}

}  // namespace

struct InMemoryKvStore::State {
  zerorun::Mutex mu;
  std::map<std::string, std::string> values ABSL_GUARDED_BY(mu);
};

InMemoryKvStore::InMemoryKvStore() : state_(std::make_unique<State>()) {}
InMemoryKvStore::~InMemoryKvStore() = default;

absl::Status InMemoryKvStore::Set(const std::string& key, const std::string& value) {
  zerorun::MutexLock lock(&state_->mu);
  state_->values[key] = value;
  return absl::OkStatus();
}

absl::StatusOr<std::string> InMemoryKvStore::Get(const std::string& key, absl::Duration timeout) {
  State& st = *state_;
  zerorun::MutexLock lock(&st.mu);
  struct Args {
    std::map<std::string, std::string>* values;
    const std::string* key;
  } args{&st.values, &key};
  st.mu.AwaitWithTimeout(zerorun::Condition(
                             +[](Args* a) { return a->values->count(*a->key) > 0; }, &args),
                         timeout);
  auto it = st.values.find(key);
  if (it == st.values.end()) return Missing(key, timeout);
  return it->second;
}

std::string FileKvStore::Path(const std::string& key) const {
  std::string name;
  for (char c : key)
    name += (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
  return absl::StrCat(dir_, "/", name);
}

absl::Status FileKvStore::Set(const std::string& key, const std::string& value) {
  const std::string path = Path(key);
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(value.data(), static_cast<std::streamsize>(value.size()));
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FileKvStore::Get(const std::string& key, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string path = Path(key);
  while (true) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::stringstream buffer;
      buffer << in.rdbuf();
      return buffer.str();
    }
    if (absl::Now() >= deadline) return Missing(key, timeout);
    usleep(2000);
  }
}

}  // namespace zerorun
