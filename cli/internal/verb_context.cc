#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/exit_codes.h"
#include "cli/internal/verb.h"
#include "common/keepalive.h"
#include "common/run_paths.h"
#include "common/trusted_path.h"

namespace cluster2::ctl {
namespace {

// What cluster2ctl says of a socket it will not use (CheckTrustedSocket).
std::string UntrustedSocketMessage(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kPermissionDenied) {
    return absl::StrCat("permission denied: ", status.message(),
                        " (the cluster belongs to another user)");
  }
  return std::string(status.message());
}

}  // namespace

VerbContext::VerbContext(GlobalOptions options, std::ostream& out,
                         std::ostream& err)
    : options_(std::move(options)), out_(out), err_(err) {}

int VerbContext::Usage(absl::string_view problem) {
  err_ << "cluster2ctl: " << problem << " (see cluster2ctl --help)\n";
  return kExitUsage;
}

int VerbContext::ConnectMaster() {
  master_address_ = options_.master;
  if (master_address_.empty() && options_.run_dir.empty()) {
    const char* env = std::getenv("CLUSTER2_MASTER");
    if (env != nullptr) master_address_ = env;
  }
  if (master_address_.empty()) {
    std::string dir =
        !options_.run_dir.empty()
            ? options_.run_dir
            : DefaultRunDir(options_.name, std::getenv, geteuid());
    master_address_ = absl::StrCat("unix:", dir, "/", kMasterSocketName);
  }
  if (absl::StartsWith(master_address_, "unix:")) {
    std::string path = master_address_.substr(5);
    absl::Status socket = CheckTrustedSocket(path, geteuid());
    if (socket.code() == absl::StatusCode::kNotFound) {
      err_ << "cluster2ctl: no master running: " << path
           << " does not exist (start one with cluster2-master, or pass "
              "--name/--run-dir)\n";
      return kExitNoMaster;
    }
  }
  std::string error;
  master_ = ChannelTo(master_address_, &error);
  if (master_ == nullptr) {
    err_ << "cluster2ctl: " << error << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

std::shared_ptr<grpc::Channel> VerbContext::ChannelTo(
    const std::string& address, std::string* error) const {
  if (absl::StartsWith(address, "unix:")) {
    absl::Status socket = CheckTrustedSocket(address.substr(5), geteuid());
    if (!socket.ok()) {
      *error = UntrustedSocketMessage(socket);
      return nullptr;
    }
    return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  }
  // TCP: the master's control port is mutual TLS (control.tcp).
  auto pem = [&](const std::string& flag, const char* env, std::string* out) {
    std::string path = flag;
    if (path.empty() && std::getenv(env) != nullptr) path = std::getenv(env);
    if (path.empty()) return true;  // not given
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in || text.str().find("-----BEGIN ") == std::string::npos) {
      *error = absl::StrCat("cannot read a PEM file at '", path, "'");
      return false;
    }
    *out = text.str();
    return true;
  };
  grpc::SslCredentialsOptions tls;
  if (!pem(options_.tls_ca, "CLUSTER2_TLS_CA", &tls.pem_root_certs) ||
      !pem(options_.tls_cert, "CLUSTER2_TLS_CERT", &tls.pem_cert_chain) ||
      !pem(options_.tls_key, "CLUSTER2_TLS_KEY", &tls.pem_private_key)) {
    return nullptr;
  }
  if (tls.pem_root_certs.empty()) {
    *error = absl::StrCat("the master at ", address,
                          " is on TCP: give its CA with --tls-ca (and a "
                          "client certificate with --tls-cert and --tls-key)");
    return nullptr;
  }
  grpc::ChannelArguments args;
  if (!options_.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options_.tls_server_name);
  }
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(tls), args);
}

std::string VerbContext::DescribeFailure(const std::string& address,
                                         const grpc::Status& status) const {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE)
    return status.error_message();
  if (absl::StartsWith(address, "unix:")) {
    return absl::StrCat("no master running at ", address, " (",
                        status.error_message(), ")");
  }
  const bool client_certificate =
      !options_.tls_cert.empty() || std::getenv("CLUSTER2_TLS_CERT") != nullptr;
  return absl::StrCat(
      "cannot reach the master at ", address, " (", status.error_message(),
      client_certificate
          ? "): is control.tcp on there, and do the --tls-* files match its "
            "certificates?"
          : "): a master's TCP control port refuses a client without a "
            "certificate: give one with --tls-cert and --tls-key");
}

int VerbContext::ConnectCache() {
  std::string address;
  const char* env = std::getenv("CLUSTER2_CACHE");
  if (!options_.cache_socket.empty()) {
    address = absl::StartsWith(options_.cache_socket, "unix:")
                  ? options_.cache_socket
                  : absl::StrCat("unix:", options_.cache_socket);
  } else if (options_.run_dir.empty() && env != nullptr && *env != '\0') {
    address = env;
  } else {
    std::string dir =
        !options_.run_dir.empty()
            ? options_.run_dir
            : DefaultRunDir(options_.name, std::getenv, geteuid());
    address = absl::StrCat("unix:", dir, "/", kCacheSocketName);
  }
  bool unix_socket = absl::StartsWith(address, "unix:");
  cache_where_ = unix_socket ? address.substr(5) : address;
  if (unix_socket) {
    absl::Status socket = CheckTrustedSocket(cache_where_, geteuid());
    if (socket.code() == absl::StatusCode::kNotFound) {
      err_ << "cluster2ctl: no cache server at " << cache_where_
           << " (no such socket; start a cluster with the cache enabled, or "
              "pass --cache-socket)\n";
      return kExitNoMaster;
    }
    if (!socket.ok()) {
      err_ << "cluster2ctl: " << UntrustedSocketMessage(socket) << "\n";
      return kExitFailed;
    }
  }
  grpc::ChannelArguments args;
  SetClientKeepalive(&args);  // `cache watch` ends if the server freezes
  cache_ = v1::Cache::NewStub(grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), args));
  return kExitOk;
}

void VerbContext::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoNanoseconds(options_.timeout));
}

int VerbContext::FailMaster(const grpc::Status& status) {
  err_ << "cluster2ctl: " << DescribeFailure(master_address_, status) << "\n";
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ? kExitNoMaster
                                                              : kExitFailed;
}

int VerbContext::FailCache(const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      absl::StartsWith(status.error_message(), "redis at ")) {
    // The server answered; its Redis (cache.backend) did not.
    err_ << "cluster2ctl: the cache server at " << cache_where_
         << " cannot reach its Redis: " << status.error_message() << "\n";
    return kExitNoMaster;
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    err_ << "cluster2ctl: no cache server at " << cache_where_ << " ("
         << status.error_message() << ")\n";
    return kExitNoMaster;
  }
  std::string message = status.error_message();
  if (message.empty()) {  // e.g. UNIMPLEMENTED from a server without the RPC
    message =
        absl::StrCat("the cache server answered ",
                     absl::StatusCodeToString(
                         static_cast<absl::StatusCode>(status.error_code())));
  }
  err_ << "cluster2ctl: " << message << "\n";
  return kExitFailed;
}

}  // namespace cluster2::ctl
