// zerorund: the per-node daemon. Serves NodeAgent over gRPC on --listen (default 127.0.0.1:29600;
// a non-loopback address needs mTLS or a secret, and so does loopback when zerorund is root unless
// --anonymous-tcp) and on its UNIX socket, in the foreground, logging to stderr.
// SIGTERM/SIGINT/SIGHUP stop it; running jobs keep running under their supervisors unless
// --kill-jobs-on-exit, and the next zerorund on the same --state-dir re-adopts them; with
// --exit-on-stdin-close, so does stdin's end (the ssh session of `zerorun --launcher ssh`).
// main reads as its steps: flags, access (who may call), the state dir, the UNIX socket, the
// runner (re-adopting live ranks), the server, then the stop signal.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "agent_service.h"
#include "base/env.h"
#include "base/exit_codes.h"
#include "base/fs.h"
#include "base/version.h"
#include "cgroup.h"
#include "google/protobuf/util/json_util.h"
#include "job_runner.h"
#include "node_agent.h"
#include "proc_util.h"
#include "rank_supervisor.h"
#include "rpc/grpc_util.h"
#include "security/local_cred.h"
#include "security/tls.h"

namespace {

int PrintProbe(const zerorun::worker::NodeAgent& agent, const std::string& device,
               const std::vector<int>& slots, const std::string& train_bin) {
  zerorun::v1::ProbeRequest request;
  request.set_node("localhost");
  request.set_device(device == "cpu" ? zerorun::v1::DEVICE_CPU : zerorun::v1::DEVICE_GPU);
  for (int slot : slots) request.add_slots(slot);
  request.set_train_bin(train_bin);
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(agent.Probe(request), &json, options);
  std::cout << json;
  return zerorun::kExitOk;
}

void Log(const std::string& text) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::cerr << "[zerorund " << host << ":" << getpid() << "] " << text << std::endl;
}

// The secret as the first line of stdin (`--secret-file -`: it came over the launcher's ssh
// channel), read byte by byte so nothing after it is consumed.
std::string ReadSecretLine() {
  std::string line;
  char c = 0;
  while (line.size() < 4096) {
    const ssize_t n = read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') break;
    line.push_back(c);
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

// Stops zerorund (as SIGTERM does) once stdin ends: the session that started it is gone.
void ExitOnStdinClose() {
  std::thread([] {
    char buffer[256];
    while (true) {
      const ssize_t n = read(STDIN_FILENO, buffer, sizeof(buffer));
      if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    Log("stdin closed (the session that started this zerorund ended)");
    kill(getpid(), SIGTERM);
  }).detach();
}

// zerorund's flags (AddFlags says what each means).
struct Flags {
  std::string listen = "127.0.0.1:29600";
  CLI::Option* listen_option = nullptr;  // Whether --listen was given.
  std::string secret_file, tls_dir, auth_mode, revoked, unix_socket;
  std::vector<std::string> admins;
  std::string state_dir;
  bool kill_on_exit = false, probe = false;
  std::string device = "gpu";
  std::vector<int> slots;
  std::string train_bin;
  size_t replay_lines = 4096;
  double retention_s = 600;
  bool no_cgroups = false, allow_root_ranks = false, exit_on_stdin_close = false;
  bool anonymous_tcp = false;
};

void AddFlags(CLI::App* app, Flags* f) {
  f->listen_option =
      app->add_option("--listen", f->listen,
                      "host:port to serve on (a non-loopback host needs a secret; as root, so does "
                      "loopback unless --anonymous-tcp)")
          ->capture_default_str();
  app->add_flag("--anonymous-tcp", f->anonymous_tcp,
                "As root without --tls-dir or a secret: serve --listen anyway, to callers with no "
                "credential at all (each acts as zerorund's own user, seeing every user's jobs)");
  app->add_option("--secret-file", f->secret_file,
                  "File whose first line is the cluster secret (-: stdin's first line; or set "
                  "ZR_SECRET)");
  app->add_option("--tls-dir", f->tls_dir,
                  "mTLS: this node's directory from `zerorun cluster init` (ca.crt, cert.crt, "
                  "cert.key); every caller must present a certificate of that CA");
  app->add_option("--auth", f->auth_mode,
                  "secret: serve a non-loopback address in plaintext with the shared secret (the "
                  "explicit fallback to mTLS)")
      ->check(CLI::IsMember({"secret"}));
  app->add_option("--revoked", f->revoked,
                  "mTLS: a revocation list (DIR/revoked of `zerorun cluster revoke`), read on "
                  "every call");
  app->add_option("--admin", f->admins,
                  "mTLS: a user who may see and signal every job (repeatable)")
      ->allow_extra_args(false);
  app->add_option("--unix-socket", f->unix_socket,
                  "Also serve this UNIX socket (default STATE_DIR/zerorund.sock; none: off): local "
                  "users call as themselves (the kernel names them, SO_PEERCRED)");
  app->add_option(
      "--state-dir", f->state_dir,
      "Where job directories and rank logs go (default $ZR_HOME/agent, ~/.zerorun/agent)");
  app->add_flag("--kill-jobs-on-exit", f->kill_on_exit, "SIGKILL running ranks when stopping");
  app->add_option("--replay-lines", f->replay_lines,
                  "Events per rank kept in memory for Watch replay (the rank logs keep all)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{16}, size_t{1} << 24));
  app->add_option("--retention", f->retention_s, "Seconds an ended job stays in memory")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--no-cgroups", f->no_cgroups,
                "Do not put jobs in cgroups (the per-rank subreaper still ends leftovers)");
  app->add_flag("--allow-root-ranks", f->allow_root_ranks,
                "Run ranks as root when zerorund is root (refused otherwise)");
  app->add_flag("--exit-on-stdin-close", f->exit_on_stdin_close,
                "Stop (as on SIGTERM) when stdin ends: the ssh session that started it is gone");
  app->add_flag("--probe", f->probe, "Print this node's facts and checks as JSON, then exit");
  app->add_option("--device", f->device, "With --probe: gpu or cpu")
      ->check(CLI::IsMember({"gpu", "cpu"}));
  app->add_option("--slots", f->slots, "With --probe: slot ids the job would use")->delimiter(',');
  app->add_option("--train-bin", f->train_bin,
                  "With --probe: training binary to look for and hash");
}

// Who may call and how the TCP port is secured.
struct Access {
  zerorun::worker::AgentAuth auth;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  std::string secret;  // The shared secret (empty with mTLS or none).
};

// Who may call: mTLS, the shared secret, or (loopback, or root's UNIX socket alone) no
// credential; refuses what would expose the daemon. On success `f->listen` is cleared when only
// the UNIX socket may serve. Returns the exit code after logging why, or nullopt.
std::optional<int> ResolveAccess(Flags* f, Access* access) {
  zerorun::worker::AgentAuth& auth = access->auth;
  std::string& secret = access->secret;
  const std::string& tls_dir = f->tls_dir;
  const std::string& secret_file = f->secret_file;
  const std::string& revoked = f->revoked;
  if (!tls_dir.empty() && (!secret_file.empty() || f->auth_mode == "secret")) {
    Log("--tls-dir and the shared secret (--secret-file, --auth secret) exclude each other: "
        "choose one");
    return zerorun::kExitUsage;
  }
  if (!revoked.empty() && tls_dir.empty()) {
    Log("--revoked names certificates: it needs --tls-dir");
    return zerorun::kExitUsage;
  }
  if (!f->admins.empty() && tls_dir.empty() && f->unix_socket == "none") {
    Log("--admin names certificate or UNIX socket users: it needs --tls-dir or the UNIX socket");
    return zerorun::kExitUsage;
  }
  if (!tls_dir.empty()) {
    absl::StatusOr<zerorun::TlsFiles> files = zerorun::ReadTlsDir(tls_dir);
    if (!files.ok()) {
      Log("--tls-dir: " + std::string(files.status().message()));
      return zerorun::SecretFileExit(files.status());
    }
    access->credentials = zerorun::ServerTlsCredentials(*files);
    auth.mtls = true;
    auth.admins.insert(f->admins.begin(), f->admins.end());
    auth.revoked = revoked;
    if (!revoked.empty()) {
      if (absl::Status s = zerorun::CheckNotRevoked(revoked, ""); !s.ok()) {
        Log("--revoked: " + std::string(s.message()));
        return zerorun::kExitNoInput;
      }
    }
  } else if (secret_file == "-") {
    secret = ReadSecretLine();
    if (secret.empty()) {
      Log("--secret-file -: stdin gave no secret line");
      return zerorun::kExitDataErr;
    }
  } else if (!secret_file.empty()) {
    absl::StatusOr<std::string> read = zerorun::ReadSecretFile(secret_file);
    if (!read.ok()) {
      Log(std::string(read.status().message()));
      return zerorun::SecretFileExit(read.status());
    }
    secret = *read;
  } else {
    secret = zerorun::GetEnv(zerorun::kEnvSecret);
  }
  const bool loopback = zerorun::IsLoopbackListenAddress(f->listen);
  if (!auth.mtls && !loopback && secret.empty()) {
    Log("refusing to listen on " + f->listen +
        " without a secret: give --tls-dir DIR (mTLS; `zerorun cluster init`), or --auth secret "
        "with --secret-file (or ZR_SECRET), or listen on 127.0.0.1");
    return zerorun::kExitNoPerm;
  }
  if (!auth.mtls && !loopback && f->auth_mode != "secret") {
    Log("refusing to listen on " + f->listen +
        " in plaintext with the shared secret unless asked: pass --auth secret, or give "
        "--tls-dir DIR for mTLS (`zerorun cluster init`)");
    return zerorun::kExitNoPerm;
  }
  // Secure by default: a root zerorund answers anonymous TCP callers (who would see, signal and
  // read the logs of every user's jobs) only when asked; its UNIX socket names each local user.
  const bool anonymous = !auth.mtls && secret.empty();
  if (anonymous && geteuid() == 0 && !f->anonymous_tcp) {
    if (f->listen_option->count() > 0) {
      Log("refusing to serve " + f->listen +
          " to anonymous callers as root: give --tls-dir DIR (mTLS), or a secret (--secret-file, "
          "ZR_SECRET), or --anonymous-tcp to allow it; local users reach this zerorund on its "
          "UNIX socket as themselves");
      return zerorun::kExitNoPerm;
    }
    if (f->unix_socket == "none") {
      Log("as root without --tls-dir or a secret, zerorund serves only its UNIX socket, and "
          "--unix-socket none turns that off: nothing to serve. Fix: drop --unix-socket none, "
          "or give --tls-dir DIR");
      return zerorun::kExitUsage;
    }
    f->listen.clear();  // The UNIX socket alone.
  }
  auth.secret = auth.mtls ? "" : secret;
  return std::nullopt;
}

// The stop signals, blocked in every thread from now on (main's sigwait takes them); SIGPIPE
// ignored: a vanished log reader (ssh's pipe) must not kill the daemon.
sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}

// One zerorund per state dir: its lock, and its pid file that tells the rank supervisors it
// lives. 0711: ranks running as users reach their own job directories in it, nothing else.
std::optional<int> ClaimStateDir(const std::string& state_dir, std::string* pid_file) {
  if (absl::Status s = zerorun::MakeDirs(state_dir, 0711); !s.ok()) {
    Log(std::string(s.message()));
    return zerorun::kExitCantCreate;
  }
  *pid_file = state_dir + "/zerorund.pid";
  const int lock_fd =
      open((state_dir + "/zerorund.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    Log("another zerorund uses --state-dir " + state_dir +
        " (its lock is held). Fix: stop it, or give this one its own --state-dir");
    return zerorun::kExitUnavailable;
  }
  (void)zerorun::worker::WriteFileAtomic(*pid_file, std::to_string(getpid()) + "\n", 0644);
  return std::nullopt;
}

// The UNIX socket (gRPC) and its credential socket, both open to every local user: who calls
// is what the kernel says, not what the caller claims. `f->unix_socket` ends as the path or
// "none"; `local` stays null without one.
std::optional<int> OpenUnixSocket(Flags* f, Access* access,
                                  std::unique_ptr<zerorun::LocalCredentialServer>* local) {
  std::string& unix_socket = f->unix_socket;
  const std::string& state_dir = f->state_dir;
  if (unix_socket.empty()) {
    unix_socket = state_dir + "/zerorund.sock";
    // sockaddr_un holds 107 bytes: a deep state dir serves no socket rather than no jobs.
    if (zerorun::CredentialSocketPath(unix_socket).size() > 107) {
      Log("no UNIX socket: " + unix_socket + " is too long for one; give --unix-socket PATH");
      unix_socket = "none";
    }
  }
  if (unix_socket != "none") {
    absl::Status claimed = zerorun::ClaimSocketPath(unix_socket);
    absl::StatusOr<std::unique_ptr<zerorun::LocalCredentialServer>> started =
        claimed.ok()
            ? zerorun::LocalCredentialServer::Start(zerorun::CredentialSocketPath(unix_socket))
            : claimed;
    if (!started.ok()) {
      Log("--unix-socket: " + std::string(started.status().message()));
      return zerorun::kExitUnavailable;
    }
    *local = *std::move(started);
    access->auth.local = local->get();
  }
  return std::nullopt;
}

zerorun::worker::JobRunnerOptions RunnerOptions(const Flags& f, const std::string& pid_file) {
  zerorun::worker::JobRunnerOptions options;
  options.state_dir = f.state_dir;
  options.adoptable = true;
  options.daemon_pid_file = pid_file;
  options.cgroup_root = f.no_cgroups ? "" : zerorun::worker::AgentCgroupRoot(f.state_dir);
  options.replay_events_per_rank = f.replay_lines;
  options.retention = absl::Seconds(f.retention_s);
  options.refuse_root_ranks = !f.allow_root_ranks;
  return options;
}

// The gRPC server on --listen (unless cleared) and the UNIX socket; null after logging why.
std::unique_ptr<grpc::Server> StartServer(const Flags& f, const Access& access, bool local,
                                          zerorun::worker::AgentService* service, int* port) {
  grpc::ServerBuilder builder;
  zerorun::AddServerKeepalive(&builder);  // A frozen or vanished launcher is found in ~5 s.
  if (!f.listen.empty()) builder.AddListeningPort(f.listen, access.credentials, port);
  if (local) builder.AddListeningPort("unix:" + f.unix_socket, grpc::InsecureServerCredentials());
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || (!f.listen.empty() && *port == 0)) {
    Log("cannot listen on " + f.listen + " (address in use or not on this machine?)");
    return nullptr;
  }
  if (local) chmod(f.unix_socket.c_str(), 0666);
  return server;
}

// The line that says how this zerorund serves.
std::string ServingLine(const Flags& f, const Access& access, int port, bool local,
                        const std::string& cgroup_root) {
  const std::string& listen = f.listen;
  const std::string& secret = access.secret;
  return "zerorun " + std::string(ZR_VERSION) + " serving NodeAgent on " +
         (listen.empty() ? "no TCP port (root, no credentials: --anonymous-tcp to allow)"
                         : listen + " (port " + std::to_string(port) + ")") +
         (access.auth.mtls ? ", mTLS (clients: certificates of " + f.tls_dir + "/ca.crt)"
          : secret.empty() ? ", no secret (loopback)"
                           : ", shared secret, plaintext") +
         ", state in " + f.state_dir +
         (cgroup_root.empty() ? ", no cgroups" : ", cgroups under " + cgroup_root) +
         (local ? ", local users on unix:" + f.unix_socket : "") +
         (geteuid() != 0       ? ""
          : f.allow_root_ranks ? ", ranks run as root (--allow-root-ranks)"
                               : ", root: launches refused without --allow-root-ranks");
}

}  // namespace

int main(int argc, char** argv) {
  if (const int code = zerorun::worker::MaybeRunRankSupervisor(argc, argv); code >= 0) return code;
  CLI::App app{"zerorund: zerorun's per-node agent (serves NodeAgent over gRPC)"};
  app.set_version_flag("--version", ZR_VERSION);
  Flags f;
  AddFlags(&app, &f);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? zerorun::kExitOk : zerorun::kExitUsage;
  }
  const zerorun::worker::NodeAgent agent(zerorun::GetEnv(zerorun::kEnvNvmlLibrary));
  if (f.probe) return PrintProbe(agent, f.device, f.slots, f.train_bin);
  Access access;
  if (const std::optional<int> refused = ResolveAccess(&f, &access)) return *refused;
  if (f.state_dir.empty()) f.state_dir = zerorun::ZerorunHome() + "/agent";
  sigset_t stop_signals = BlockStopSignals();
  std::string pid_file;
  if (const std::optional<int> taken = ClaimStateDir(f.state_dir, &pid_file)) return *taken;
  std::unique_ptr<zerorun::LocalCredentialServer> local;
  if (const std::optional<int> failed = OpenUnixSocket(&f, &access, &local)) return *failed;

  const zerorun::worker::JobRunnerOptions options = RunnerOptions(f, pid_file);
  zerorun::worker::JobRunner runner(options);
  if (const int adopted = runner.Restore(); adopted > 0) {
    Log("re-adopted the live ranks of " + std::to_string(adopted) + " job(s) from " + f.state_dir);
  }
  zerorun::worker::AgentService service(&agent, &runner, access.auth, Log);
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartServer(f, access, local != nullptr, &service, &port);
  if (server == nullptr) return zerorun::kExitUnavailable;
  Log(ServingLine(f, access, port, local != nullptr, options.cgroup_root));
  if (f.exit_on_stdin_close) ExitOnStdinClose();

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  Log(std::string("received ") + strsignal(signal_number) +
      (f.kill_on_exit ? ", killing running ranks" : ", leaving running ranks alone"));
  if (f.kill_on_exit) runner.KillAll();
  service.BeginShutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  unlink(pid_file.c_str());
  if (local != nullptr) unlink(f.unix_socket.c_str());
  return zerorun::kExitOk;
}
