#include "master/internal/config.h"

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/redis_connection.h"
#include "common/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "master/internal/spawn.h"

namespace cluster2 {
namespace {

constexpr uint32_t kMaxWorkers = 1024;

// protobuf reports "(ecv) foo: Cannot find field.", "foo: Cannot find
// field." at the top level, or "(no_workers): invalid value ..."; rewrite
// them into one line naming the JSON field path.
std::string DescribeJsonError(absl::string_view message) {
  std::string line = absl::StrReplaceAll(message, {{"\n", " "}});
  absl::StripAsciiWhitespace(&line);
  std::string path;
  std::string rest = line;
  if (absl::StartsWith(line, "(")) {
    size_t close = line.find(')');
    if (close == std::string::npos)
      return absl::StrCat("invalid config: ", line);
    path = line.substr(1, close - 1);
    rest = line.substr(close + 1);
  }
  constexpr absl::string_view kUnknown = ": Cannot find field.";
  if (absl::EndsWith(rest, kUnknown)) {
    std::string name(absl::StripAsciiWhitespace(
        absl::string_view(rest).substr(0, rest.size() - kUnknown.size())));
    std::string full = path.empty() ? name : absl::StrCat(path, ".", name);
    return absl::StrCat("unknown field '", JsonFieldPath(full), "'");
  }
  if (path.empty()) return absl::StrCat("invalid JSON: ", line);
  if (absl::StartsWith(rest, ":")) rest.erase(0, 1);
  return absl::StrCat("field '", JsonFieldPath(path), "':", rest);
}

// The field a dotted flag path names ("ecv.markUp" or "ecv.mark_up"), or
// null if there is none.
const google::protobuf::FieldDescriptor* FindField(absl::string_view key) {
  const google::protobuf::Descriptor* message = v1::ClusterConfig::descriptor();
  const google::protobuf::FieldDescriptor* field = nullptr;
  for (absl::string_view part : absl::StrSplit(key, '.')) {
    if (message == nullptr) return nullptr;
    std::string name(part);
    field = message->FindFieldByName(name);
    if (field == nullptr) field = message->FindFieldByCamelcaseName(name);
    if (field == nullptr) return nullptr;
    message = field->message_type();
  }
  return field;
}

bool IsJsonLiteral(absl::string_view value) {
  if (value == "true" || value == "false") return true;
  double number;
  return !value.empty() && absl::SimpleAtod(value, &number) &&
         (std::isdigit(static_cast<unsigned char>(value.back())) != 0);
}

std::string JsonQuote(absl::string_view value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
      continue;
    }
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-')
      return false;
  }
  return name != "." && name != "..";
}

absl::Status FieldError(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("field '", field, "': ", problem));
}

// Every number in ClusterConfig is an integer, but protobuf's JSON parser
// takes 1e3 or 1000.0 for one: a typo or a unit mix-up would pass silently.
// Refuses any number literal with a fraction or an exponent, naming the
// field it belongs to. (Anything else malformed is left to protobuf.)
absl::Status CheckIntegerLiterals(absl::string_view json) {
  std::vector<std::string> path;  // keys of the enclosing objects
  std::vector<char> nesting;      // '{' or '['
  std::string last_key;
  bool expect_key = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '"') {
      std::string text;
      for (++i; i < json.size() && json[i] != '"'; ++i) {
        if (json[i] == '\\') ++i;
        if (i < json.size()) text.push_back(json[i]);
      }
      if (expect_key) last_key = text;
      continue;
    }
    if (c == '{') {
      if (!nesting.empty() && nesting.back() == '{') path.push_back(last_key);
      nesting.push_back('{');
      expect_key = true;
    } else if (c == '[') {
      if (!nesting.empty() && nesting.back() == '{') path.push_back(last_key);
      nesting.push_back('[');
      expect_key = false;
    } else if (c == '}' || c == ']') {
      if (!nesting.empty()) nesting.pop_back();
      if (!nesting.empty() && nesting.back() == '{' && !path.empty())
        path.pop_back();
      expect_key = false;
    } else if (c == ':') {
      expect_key = false;
    } else if (c == ',') {
      expect_key = !nesting.empty() && nesting.back() == '{';
    } else if (c == '-' || absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      size_t end = i;
      while (end < json.size() &&
             (absl::ascii_isalnum(static_cast<unsigned char>(json[end])) ||
              json[end] == '.' || json[end] == '-' || json[end] == '+')) {
        ++end;
      }
      absl::string_view number = json.substr(i, end - i);
      if (number.find_first_of(".eE") != absl::string_view::npos) {
        std::vector<std::string> field = path;
        if (!nesting.empty() && nesting.back() == '{')
          field.push_back(last_key);
        // The key is the file's text, escaped: an error is one line.
        return FieldError(absl::CHexEscape(absl::StrJoin(field, ".")),
                          absl::StrCat("must be a whole number, not ", number));
      }
      i = end - 1;
    }
  }
  return absl::OkStatus();
}

// The master sets these in every worker's environment; a config may not.
absl::Status CheckEnvNames(
    const google::protobuf::Map<std::string, std::string>& env,
    absl::string_view field) {
  for (const auto& [key, value] : env) {
    if (IsWorkerVariable(key)) {
      return FieldError(field, absl::StrCat("'", absl::CHexEscape(key),
                                            "' is set by the master for each "
                                            "worker"));
    }
    if (key.empty() || key.find('=') != std::string::npos) {
      return FieldError(field, absl::StrCat("'", absl::CHexEscape(key),
                                            "' is not a variable name"));
    }
  }
  return absl::OkStatus();
}

// `groups` instead of `command`: names, commands and the sum of workers.
bool Reloadable(const google::protobuf::FieldDescriptor* field) {
  static const std::set<std::string>* const kReloadable =
      new std::set<std::string>{"groups",
                                "command",
                                "env",
                                "cwd",
                                "no_workers",
                                "heartbeat_interval",
                                "timeout",
                                "stop_timeout",
                                "nanny",
                                "restart_backoff",
                                "crash_loop_limit",
                                "surge",
                                "max_age",
                                "recycle"};
  return kReloadable->count(field->name()) > 0;
}

// The fields of `ecv` a reload applies: the mode and the monitor check.
bool ReloadableEcvField(const google::protobuf::FieldDescriptor* field) {
  static const std::set<std::string>* const kReloadable =
      new std::set<std::string>{"mode", "monitor", "monitor_status",
                                "monitor_body", "monitor_interval"};
  return kReloadable->count(field->name()) > 0;
}

// `config` with only `field` kept.
v1::ClusterConfig OnlyField(const v1::ClusterConfig& config,
                            const google::protobuf::FieldDescriptor* field) {
  v1::ClusterConfig only = config;
  const google::protobuf::Descriptor* descriptor = only.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    if (descriptor->field(i) != field)
      only.GetReflection()->ClearField(&only, descriptor->field(i));
  }
  return only;
}

// control: all of tcp, cert, key and clientCa, or none (TLS only).
absl::Status ValidateControl(const v1::ClusterConfig::Control& control) {
  if (control.tcp().empty()) {
    if (!control.cert().empty() || !control.key().empty() ||
        !control.client_ca().empty()) {
      return FieldError("control.tcp",
                        "is required with control.cert, key and clientCa");
    }
    return absl::OkStatus();
  }
  const size_t colon = control.tcp().rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(control.tcp().substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return FieldError("control.tcp", "must be HOST:PORT, e.g. 0.0.0.0:7070");
  }
  for (const auto& [name, value] :
       {std::pair<const char*, const std::string*>{"control.cert",
                                                   &control.cert()},
        {"control.key", &control.key()},
        {"control.clientCa", &control.client_ca()}}) {
    if (value->empty()) {
      return FieldError(name,
                        "is required with control.tcp (the control API on "
                        "TCP is mutual TLS only)");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateGroups(const v1::ClusterConfig& config) {
  if (!config.command().empty()) {
    return FieldError("command",
                      "give either 'command' (or a command after '--') or "
                      "'groups', not both");
  }
  uint64_t sum = 0;
  std::set<std::string> names;
  for (int i = 0; i < config.groups_size(); ++i) {
    const v1::ClusterConfig::Group& group = config.groups(i);
    const std::string field = absl::StrCat("groups[", i, "]");
    if (!ValidName(group.name())) {
      return FieldError(absl::StrCat(field, ".name"),
                        "must be 1-64 characters of [A-Za-z0-9._-]");
    }
    if (!names.insert(group.name()).second) {
      return FieldError(absl::StrCat(field, ".name"),
                        absl::StrCat("'", group.name(), "' is used twice"));
    }
    CLUSTER2_RETURN_IF_ERROR(
        CheckEnvNames(group.env(), absl::StrCat(field, ".env")));
    if (group.command().empty() || group.command(0).empty()) {
      return FieldError(
          absl::StrCat(field, ".command"),
          absl::StrCat("group '", group.name(), "' has no worker command"));
    }
    sum += group.no_workers();
  }
  if (sum > kMaxWorkers) {
    return FieldError("groups", absl::StrCat("at most ", kMaxWorkers,
                                             " workers in all, not ", sum));
  }
  if (config.no_workers() != sum) {
    return FieldError(
        "noWorkers",
        absl::StrCat("is ", config.no_workers(),
                     " but the groups' workers add up to ", sum,
                     ": with 'groups', give each group's noWorkers"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string JsonFieldPath(absl::string_view proto_path) {
  std::string out;
  bool upper = false;
  for (char c : proto_path) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out.push_back(upper ? absl::ascii_toupper(c) : c);
    upper = false;
  }
  return out;
}

absl::StatusOr<v1::ClusterConfig> ParseConfigJson(absl::string_view json) {
  CLUSTER2_RETURN_IF_ERROR(CheckIntegerLiterals(json));
  v1::ClusterConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &config,
      options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        DescribeJsonError(std::string(status.message())));
  }
  return config;
}

absl::StatusOr<v1::ClusterConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoStatus(errno, absl::StrCat("config ", path));
  std::stringstream text;
  text << in.rdbuf();
  auto config = ParseConfigJson(text.str());
  if (!config.ok()) {
    return absl::Status(
        config.status().code(),
        absl::StrCat("config ", path, ": ", config.status().message()));
  }
  return config;
}

absl::Status ApplyConfigFlag(absl::string_view key, absl::string_view value,
                             v1::ClusterConfig* config) {
  std::vector<absl::string_view> parts = absl::StrSplit(key, '.');
  std::string json;
  for (absl::string_view part : parts) {
    if (part.empty())
      return absl::InvalidArgumentError(absl::StrCat("bad flag --", key));
    absl::StrAppend(&json, "{", JsonQuote(part), ":");
  }
  // Strings are quoted whatever they look like (a name may be "1234");
  // other values go in raw when they read as JSON literals, so protobuf
  // reports a wrong type against the field.
  const google::protobuf::FieldDescriptor* field = FindField(key);
  bool is_string =
      field != nullptr &&
      (field->type() == google::protobuf::FieldDescriptor::TYPE_STRING ||
       field->type() == google::protobuf::FieldDescriptor::TYPE_BYTES);
  bool raw = !is_string && IsJsonLiteral(value);
  absl::StrAppend(&json, raw ? std::string(value) : JsonQuote(value));
  json.append(parts.size(), '}');
  auto flag_config = ParseConfigJson(json);
  if (!flag_config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("flag --", key, ": ", flag_config.status().message()));
  }
  config->MergeFrom(*flag_config);
  return absl::OkStatus();
}

void ApplyConfigDefaults(unsigned cpu_count, v1::ClusterConfig* config) {
  if (config->name().empty()) config->set_name("default");
  if (!config->groups().empty()) {
    uint32_t sum = 0;
    for (v1::ClusterConfig::Group& group : *config->mutable_groups()) {
      if (group.no_workers() == 0) group.set_no_workers(1);
      if (group.cwd().empty()) group.set_cwd(config->cwd());
      sum += group.no_workers();
    }
    // A noWorkers that differs is left for ValidateConfig to refuse.
    if (config->no_workers() == 0) config->set_no_workers(sum);
  }
  if (config->no_workers() == 0)
    config->set_no_workers(cpu_count > 0 ? cpu_count : 1);
  if (!config->has_port()) config->set_port(8080);
  if (config->host().empty()) config->set_host("0.0.0.0");
  if (config->backlog() == 0) config->set_backlog(511);
  if (config->balance().empty()) config->set_balance("even");
  if (config->surge() == 0) config->set_surge(1);
  auto* backoff = config->mutable_restart_backoff();
  if (backoff->backoff_initial() == 0) backoff->set_backoff_initial(100);
  if (backoff->backoff_max() == 0) backoff->set_backoff_max(30000);
  if (backoff->stable_period() == 0) backoff->set_stable_period(10000);
  if (!config->has_crash_loop_limit()) config->set_crash_loop_limit(10);
  auto* recycle = config->mutable_recycle();
  if (!recycle->has_jitter_percent()) recycle->set_jitter_percent(10);
  if (recycle->degradation_window() == 0) recycle->set_degradation_window(5);
  if (!recycle->has_budget()) recycle->set_budget(1);
  if (recycle->budget_window() == 0) recycle->set_budget_window(60000);
  if (!config->has_mon_port()) config->set_mon_port(8081);
  if (config->mon_host().empty()) config->set_mon_host("127.0.0.1");
  if (config->heartbeat_interval() == 0) config->set_heartbeat_interval(5000);
  if (config->stop_timeout() == 0) config->set_stop_timeout(60000);
  if (config->timeout() == 0) config->set_timeout(60000);
  if (config->hello_timeout() == 0) config->set_hello_timeout(10000);
  auto* ecv = config->mutable_ecv();
  if (ecv->root().empty()) ecv->set_root("/ecv");
  if (ecv->mode().empty()) ecv->set_mode("control");
  if (ecv->mark_up().empty()) ecv->set_mark_up("/ecv/markUp");
  if (ecv->mark_down().empty()) ecv->set_mark_down("/ecv/markDown");
  if (ecv->monitor().empty()) ecv->set_monitor("/");
  if (ecv->monitor_status() == 0) ecv->set_monitor_status(200);
  if (ecv->monitor_interval() == 0) ecv->set_monitor_interval(1000);
  auto* cache = config->mutable_cache();
  if (!cache->has_enable()) cache->set_enable(true);
  if (cache->mode().empty()) cache->set_mode("standalone");
  if (cache->health_timeout() == 0) cache->set_health_timeout(5000);
  if (cache->start_timeout() == 0) cache->set_start_timeout(60000);
  if (config->debug().web_port() == 0)
    config->mutable_debug()->set_web_port(8082);
  if (config->debug().host().empty())
    config->mutable_debug()->set_host("127.0.0.1");
  if (config->debug().fresh_prefix().empty()) {
    config->mutable_debug()->add_fresh_prefix("gdbserver");
    config->mutable_debug()->add_fresh_prefix("{address}");
  }
  auto* nanny = config->mutable_nanny();
  if (!nanny->has_enable()) nanny->set_enable(true);
  if (nanny->tolerance() == 0)
    nanny->set_tolerance(3 * config->heartbeat_interval());
}

absl::Status ValidateConfig(const v1::ClusterConfig& config) {
  if (!ValidName(config.name())) {
    return FieldError("name", "must be 1-64 characters of [A-Za-z0-9._-]");
  }
  if (config.no_workers() > kMaxWorkers) {
    return FieldError("noWorkers",
                      absl::StrCat("must be at most ", kMaxWorkers));
  }
  if (config.port() > 65535) return FieldError("port", "must be at most 65535");
  if (config.mon_port() > 65535)
    return FieldError("monPort", "must be at most 65535");
  if (config.port() != 0 && config.port() == config.mon_port()) {
    return FieldError(
        "monPort",
        absl::StrCat("equals 'port' (", config.port(),
                     "): the monitor and application ports must differ"));
  }
  if (config.debug().web_port() > 65535) {
    return FieldError("debug.webPort", "must be at most 65535");
  }
  if ((config.port() != 0 && config.debug().web_port() == config.port()) ||
      (config.mon_port() != 0 &&
       config.debug().web_port() == config.mon_port())) {
    return FieldError("debug.webPort", "must differ from 'port' and 'monPort'");
  }
  if (config.heartbeat_interval() < 10) {
    return FieldError("heartbeatInterval", "must be at least 10 ms");
  }
  if (config.ecv().mode() != "control" && config.ecv().mode() != "monitor") {
    return FieldError("ecv.mode", "must be \"control\" or \"monitor\"");
  }
  if (config.ecv().monitor().empty() || config.ecv().monitor()[0] != '/') {
    return FieldError("ecv.monitor", "must be a path starting with '/'");
  }
  if (config.ecv().root().empty() || config.ecv().root()[0] != '/') {
    return FieldError("ecv.root", "must be a path starting with '/'");
  }
  if (config.cache().mode() != "standalone" &&
      config.cache().mode() != "master") {
    return FieldError("cache.mode", "must be \"standalone\" or \"master\"");
  }
  if (config.balance() != "even" && config.balance() != "shared" &&
      config.balance() != "reuseport") {
    return FieldError("balance",
                      "must be \"even\", \"shared\" or \"reuseport\"");
  }
  if (config.surge() > config.no_workers() && config.no_workers() > 0) {
    return FieldError("surge", "must be at most noWorkers");
  }
  if (config.restart_backoff().backoff_max() <
      config.restart_backoff().backoff_initial()) {
    return FieldError("restartBackoff.backoffMax",
                      "must be at least backoffInitial");
  }
  if (config.recycle().jitter_percent() > 50) {
    return FieldError("recycle.jitterPercent", "must be at most 50");
  }
  if (config.recycle().degradation_margin_percent() >= 100) {
    return FieldError("recycle.degradationMarginPercent", "must be below 100");
  }
  if (config.recycle().degradation_window() < 2) {
    return FieldError("recycle.degradationWindow",
                      "must be at least 2 heartbeats");
  }
  CLUSTER2_RETURN_IF_ERROR(ValidateControl(config.control()));
  if (!config.emitter().bridge().empty()) {
    if (absl::StatusOr<RedisAddress> address =
            ParseRedisAddress(config.emitter().bridge());
        !address.ok()) {
      return FieldError("emitter.bridge", address.status().message());
    }
  }
  if (!config.cache().backend().empty()) {
    if (absl::StatusOr<RedisAddress> address =
            ParseRedisAddress(config.cache().backend());
        !address.ok()) {
      return FieldError("cache.backend", address.status().message());
    }
  }
  CLUSTER2_RETURN_IF_ERROR(CheckEnvNames(config.env(), "env"));
  if (!config.groups().empty()) return ValidateGroups(config);
  if (config.command().empty()) {
    return FieldError(
        "command", "no worker command: give one in the config or after '--'");
  }
  if (config.command(0).empty())
    return FieldError("command", "argv[0] is empty");
  return absl::OkStatus();
}

std::vector<std::string> FieldsNeedingRestart(const v1::ClusterConfig& running,
                                              const v1::ClusterConfig& next) {
  std::vector<std::string> fields;
  const google::protobuf::Descriptor* descriptor = running.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    if (Reloadable(field)) continue;
    if (field->name() == "ecv") {
      const google::protobuf::Descriptor* ecv = running.ecv().GetDescriptor();
      for (int j = 0; j < ecv->field_count(); ++j) {
        const google::protobuf::FieldDescriptor* sub = ecv->field(j);
        const google::protobuf::Reflection* reflection =
            running.ecv().GetReflection();
        v1::ClusterConfig::Ecv a = running.ecv(), b = next.ecv();
        for (int k = 0; k < ecv->field_count(); ++k) {
          if (k == j) continue;
          reflection->ClearField(&a, ecv->field(k));
          reflection->ClearField(&b, ecv->field(k));
        }
        if (!ReloadableEcvField(sub) &&
            !google::protobuf::util::MessageDifferencer::Equals(a, b)) {
          fields.push_back(absl::StrCat("ecv.", sub->json_name()));
        }
      }
      continue;
    }
    if (!google::protobuf::util::MessageDifferencer::Equals(
            OnlyField(running, field), OnlyField(next, field))) {
      fields.push_back(field->json_name());
    }
  }
  return fields;
}

v1::ClusterConfig AppliedConfig(const v1::ClusterConfig& running,
                                v1::ClusterConfig next) {
  const google::protobuf::Descriptor* descriptor = running.GetDescriptor();
  const google::protobuf::Reflection* reflection = running.GetReflection();
  v1::ClusterConfig fixed = running;
  v1::ClusterConfig::Ecv* ecv = fixed.mutable_ecv();
  ecv->set_mode(next.ecv().mode());
  ecv->set_monitor(next.ecv().monitor());
  ecv->set_monitor_status(next.ecv().monitor_status());
  ecv->set_monitor_body(next.ecv().monitor_body());
  ecv->set_monitor_interval(next.ecv().monitor_interval());
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    if (!Reloadable(field)) continue;
    reflection->ClearField(&fixed, field);
    if (field->is_repeated() || reflection->HasField(next, field)) {
      // Moves next's value of a reloadable field over.
      reflection->SwapFields(&fixed, &next, {field});
    }
  }
  return fixed;
}

}  // namespace cluster2
