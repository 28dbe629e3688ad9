// Job records as small JSON files under $ZR_HOME/jobs.
#include "job/job_record.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/env.h"
#include "base/fs.h"
#include "dsconfig/config_json.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace zerorun::launcher {
namespace {

absl::Status WriteFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    out << text;
  }
  chmod(tmp.c_str(), 0600);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename ", tmp, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::string JobDir(const std::string& job_id) { return absl::StrCat(JobsDir(), "/", job_id); }

}  // namespace

std::string JobsDir() { return ZerorunHome() + "/jobs"; }

ClientAuth AgentAuthFor(const JobRecord& record, const ClientAuth& user) {
  return record.agent_secret.empty() ? user : ClientAuth::WithSecret(record.agent_secret);
}

absl::Status WriteJobRecord(const JobRecord& record) {
  const std::string dir = JobDir(record.job_id);
  if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return s;
  nlohmann::json nodes = nlohmann::json::array();
  for (const JobNode& node : record.nodes)
    nodes.push_back({{"name", node.name}, {"agent", node.agent}});
  const nlohmann::json j = {{"job_id", record.job_id},
                            {"nodes", nodes},
                            {"coordinator", record.coordinator},
                            {"secret", record.secret},
                            {"coordinator_ca", record.coordinator_ca},
                            {"launcher_pid", record.launcher_pid},
                            {"started_unix_ms", record.started_unix_ms},
                            {"world_size", record.world_size},
                            {"agent_job_id", record.agent_job_id},
                            {"agent_secret", record.agent_secret}};
  return WriteFile(dir + "/job.json", dsconfig::Dump(j, 2));
}

absl::Status WriteFinalStatus(const std::string& job_id, const v1::JobStatusReply& status) {
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(status, &text, options);
  return WriteFile(JobDir(job_id) + "/status.json", text);
}

absl::StatusOr<JobRecord> ReadJobRecord(const std::string& job_id) {
  std::ifstream in(JobDir(job_id) + "/job.json");
  if (!in) {
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "' in ", JobsDir(),
                                            ". Fix: run 'zerorun status' to list running jobs"));
  }
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat(JobDir(job_id), "/job.json is not valid JSON"));
  }
  JobRecord r;
  r.job_id = j.value("job_id", job_id);
  r.coordinator = j.value("coordinator", "");
  r.secret = j.value("secret", "");
  r.coordinator_ca = j.value("coordinator_ca", "");
  r.launcher_pid = j.value("launcher_pid", 0);
  r.started_unix_ms = j.value("started_unix_ms", int64_t{0});
  r.world_size = j.value("world_size", 0);
  r.agent_job_id = j.value("agent_job_id", r.job_id);
  if (r.agent_job_id.empty()) r.agent_job_id = r.job_id;
  r.agent_secret = j.value("agent_secret", "");
  if (j.contains("nodes") && j["nodes"].is_array()) {
    for (const nlohmann::json& node : j["nodes"]) {
      if (node.is_object()) r.nodes.push_back({node.value("name", ""), node.value("agent", "")});
    }
  }
  struct stat st {};
  r.finished = stat((JobDir(job_id) + "/status.json").c_str(), &st) == 0;
  return r;
}

absl::StatusOr<v1::JobStatusReply> ReadFinalStatus(const std::string& job_id) {
  std::ifstream in(JobDir(job_id) + "/status.json");
  if (!in) return absl::NotFoundError(absl::StrCat("job ", job_id, " has no final status"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  v1::JobStatusReply status;
  if (!google::protobuf::util::JsonStringToMessage(buffer.str(), &status).ok()) {
    return absl::DataLossError(absl::StrCat(JobDir(job_id), "/status.json is not valid"));
  }
  return status;
}

namespace {

// A launcher that died without writing status.json leaves a stale record.
}  // namespace

bool JobIdInUse(const std::string& job_id, JobRecord* record) {
  absl::StatusOr<JobRecord> found = ReadJobRecord(job_id);
  if (!found.ok() || !JobRunning(*found)) return false;
  *record = *std::move(found);
  return true;
}

std::vector<JobRecord> AllJobs() {
  std::vector<JobRecord> jobs;
  DIR* dir = opendir(JobsDir().c_str());
  if (dir == nullptr) return jobs;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    absl::StatusOr<JobRecord> record = ReadJobRecord(name);
    if (record.ok()) jobs.push_back(*std::move(record));
  }
  closedir(dir);
  std::sort(jobs.begin(), jobs.end(), [](const JobRecord& a, const JobRecord& b) {
    return a.started_unix_ms > b.started_unix_ms;
  });
  return jobs;
}

std::vector<JobRecord> RunningJobs() {
  std::vector<JobRecord> jobs = AllJobs();
  jobs.erase(std::remove_if(jobs.begin(), jobs.end(),
                            [](const JobRecord& job) { return !JobRunning(job); }),
             jobs.end());
  return jobs;
}

bool LauncherAlive(const JobRecord& record) {
  return record.launcher_pid > 0 && (kill(record.launcher_pid, 0) == 0 || errno == EPERM);
}

bool JobRunning(const JobRecord& record) { return !record.finished && LauncherAlive(record); }

}  // namespace zerorun::launcher
