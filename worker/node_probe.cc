// Node facts with plain POSIX calls: /proc/meminfo, statvfs, mkostemp(O_DIRECT), OpenSSL SHA-256.
#include "node_probe.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/fs.h"
#include "base/runtime_marker.h"

namespace zerorun::worker {
namespace {

std::string Errno(const std::string& what) {
  return absl::StrCat(what, ": ", std::strerror(errno));
}

std::string Parent(const std::string& path) {
  const size_t slash = path.find_last_of('/', path.size() > 1 ? path.size() - 2 : 0);
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The filesystem type of the longest mount point that prefixes `path`.
std::string FilesystemType(const std::string& path) {
  char resolved[PATH_MAX];
  const std::string real = realpath(path.c_str(), resolved) != nullptr ? resolved : path;
  std::ifstream mounts("/proc/self/mounts");
  std::string line, best_type;
  size_t best_length = 0;
  while (std::getline(mounts, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    if (fields.size() < 3) continue;
    const std::string& mount_point = fields[1];
    const bool under = real == mount_point || mount_point == "/" ||
                       absl::StartsWith(real, absl::StrCat(mount_point, "/"));
    if (under && mount_point.size() >= best_length) {
      best_length = mount_point.size();
      best_type = fields[2];
    }
  }
  return best_type;
}

void ProbeWrite(const std::string& dir, PathFacts* facts) {
  std::string name = absl::StrCat(dir, "/.zerorun-preflight-XXXXXX");
  int fd = mkostemp(name.data(), O_DIRECT);
  if (fd >= 0) {
    facts->writable = true;
    constexpr size_t kBlock = 4096;
    void* buffer = nullptr;
    if (posix_memalign(&buffer, kBlock, kBlock) == 0) {
      std::memset(buffer, 0, kBlock);
      const ssize_t written = pwrite(fd, buffer, kBlock, 0);
      facts->o_direct = written == static_cast<ssize_t>(kBlock);
      if (!facts->o_direct) facts->error = Errno("O_DIRECT write");
      std::free(buffer);
    }
    close(fd);
    unlink(name.c_str());
    return;
  }
  const int direct_errno = errno;
  name = absl::StrCat(dir, "/.zerorun-preflight-XXXXXX");
  fd = mkstemp(name.data());
  if (fd < 0) {
    facts->error = Errno("create a file");
    return;
  }
  facts->writable = true;
  close(fd);
  unlink(name.c_str());
  errno = direct_errno;
  facts->error = Errno("open with O_DIRECT");
}

}  // namespace

absl::StatusOr<HostMemory> ReadHostMemory() {
  std::ifstream in("/proc/meminfo");
  if (!in) return absl::UnavailableError("cannot read /proc/meminfo");
  HostMemory memory;
  std::string key, unit;
  uint64_t value = 0;
  while (in >> key >> value >> unit) {
    if (key == "MemTotal:") memory.total_bytes = value * 1024;
    if (key == "MemAvailable:") memory.available_bytes = value * 1024;
  }
  return memory;
}

PathFacts ProbePath(const std::string& path, bool probe_write) {
  PathFacts facts;
  struct stat st {};
  std::string existing = path;
  if (stat(path.c_str(), &st) == 0) {
    facts.exists = true;
    facts.is_directory = S_ISDIR(st.st_mode);
  } else {
    facts.error = Errno("stat");
    // Free space of the filesystem the path would land on.
    while (existing != "/" && existing != "." && stat(existing.c_str(), &st) != 0) {
      existing = Parent(existing);
    }
  }
  struct statvfs vfs {};
  if (statvfs(existing.c_str(), &vfs) == 0) {
    facts.free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  }
  facts.fs_type = FilesystemType(existing);
  if (probe_write && facts.exists && facts.is_directory) ProbeWrite(path, &facts);
  return facts;
}

ExecutableFacts ProbeExecutable(const std::string& name) {
  ExecutableFacts facts;
  facts.resolved_path = FindProgram(name);
  if (!facts.resolved_path.empty())
    facts.executable = access(facts.resolved_path.c_str(), X_OK) == 0;
  if (facts.resolved_path.empty()) {
    facts.error = name.find('/') != std::string::npos ? "no such file" : "not found in $PATH";
    struct stat st {};
    if (stat(name.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) facts.error = "is a directory";
    return facts;
  }
  std::ifstream in(facts.resolved_path, std::ios::binary);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!in || ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    facts.error = "cannot read it";
    return facts;
  }
  const std::string marker = absl::StrCat(kRuntimeMarkerPrefix, ":");
  std::string window;  // The last block's tail plus this block: a marker across blocks is found.
  char buffer[1 << 16];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    const size_t n = static_cast<size_t>(in.gcount());
    EVP_DigestUpdate(ctx.get(), buffer, n);
    if (facts.links_libzerorun) continue;
    window.append(buffer, n);
    if (window.find(marker) != std::string::npos) facts.links_libzerorun = true;
    window.erase(0, window.size() > marker.size() ? window.size() - marker.size() : 0);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  static const char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < length; ++i) {
    facts.sha256 += kHex[digest[i] >> 4];
    facts.sha256 += kHex[digest[i] & 15];
  }
  return facts;
}

std::string ProbePython(const std::string& interpreter, const std::string& cwd,
                        const std::string& module) {
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return "cannot create a pipe";
  const char* check =
      "import importlib.util, sys\n"
      "m = sys.argv[1] if len(sys.argv) > 1 else ''\n"
      "if m and importlib.util.find_spec(m) is None:\n"
      "    sys.exit('No module named ' + m)\n";
  std::vector<std::string> args = {interpreter, "-c", check};
  if (!module.empty()) args.push_back(module);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, 0);
    dup2(null_fd, 1);
    dup2(err_pipe[1], 2);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(err_pipe[1]);
  if (pid < 0) {
    close(err_pipe[0]);
    return "cannot fork";
  }
  int status = 0;
  bool done = false;
  for (int i = 0; i < 1000 && !done; ++i) {  // 10 s.
    done = waitpid(pid, &status, WNOHANG) == pid;
    if (!done) usleep(10 * 1000);
  }
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  std::string err;
  char buf[4096];
  ssize_t n = 0;
  while (err.size() < 65536 && (n = read(err_pipe[0], buf, sizeof(buf))) > 0) err.append(buf, n);
  close(err_pipe[0]);
  if (!done) return "did not finish within 10 s";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  absl::string_view last = absl::StripAsciiWhitespace(err);
  if (const size_t nl = last.rfind('\n'); nl != absl::string_view::npos) last.remove_prefix(nl + 1);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return "cannot be executed (not found?)";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 126) return absl::StrCat("cannot enter ", cwd);
  return absl::StrCat(WIFEXITED(status) ? absl::StrCat("exited ", WEXITSTATUS(status))
                                        : absl::StrCat("killed by signal ", WTERMSIG(status)),
                      last.empty() ? "" : ": ", last);
}

}  // namespace zerorun::worker
