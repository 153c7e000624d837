// The verbs of the cache server: cache use, get, set, del, keys, watch,
// stats. Values are printed raw, without a newline added.
#include <algorithm>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/exit_codes.h"
#include "cli/internal/flags.h"
#include "cli/internal/output.h"
#include "cli/internal/verb.h"
#include "cli/tables.h"
#include "common/proto_time.h"

namespace cluster2::ctl {
namespace {

std::string FsyncName(v1::NamespaceOptions::Fsync fsync) {
  switch (fsync) {
    case v1::NamespaceOptions::FSYNC_ALWAYS:
      return "always";
    case v1::NamespaceOptions::FSYNC_NO:
      return "no";
    default:  // FSYNC_UNSPECIFIED means everysec
      return "everysec";
  }
}

int KeyNotFound(const std::string& ns, const std::string& key,
                VerbContext& ctl) {
  ctl.err() << "cluster2ctl: key '" << key << "' not found in namespace '" << ns
            << "'\n";
  return kExitFailed;
}

struct UseArgs {
  std::string ns;
  bool persist = false;
  std::string expire;  // empty: never
  std::string fsync;   // empty: everysec
};

int Use(const UseArgs& args, VerbContext& ctl) {
  v1::UseRequest request;
  request.set_namespace_(args.ns);
  v1::NamespaceOptions* options = request.mutable_options();
  options->set_persist(args.persist);
  if (!args.expire.empty()) {
    std::optional<absl::Duration> expire = ParseCliDuration(args.expire);
    if (!expire.has_value()) {
      return ctl.Usage(absl::StrCat("--expire takes a duration (30s, 1m, 90), ",
                                    "not '", args.expire, "'"));
    }
    ToProto(*expire, options->mutable_expire());
  }
  if (!args.fsync.empty()) {
    static const auto* const kFsync =
        new std::map<std::string, v1::NamespaceOptions::Fsync>{
            {"always", v1::NamespaceOptions::FSYNC_ALWAYS},
            {"everysec", v1::NamespaceOptions::FSYNC_EVERYSEC},
            {"no", v1::NamespaceOptions::FSYNC_NO}};
    auto policy = kFsync->find(args.fsync);
    if (policy == kFsync->end())
      return ctl.Usage("--fsync takes always, everysec or no");
    options->set_fsync(policy->second);
  }
  if (int code = ctl.ConnectCache(); code != kExitOk) return code;
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::UseResponse response;
  grpc::Status status = ctl.cache().Use(&context, request, &response);
  if (!status.ok()) return ctl.FailCache(status);
  if (response.conflict()) {
    ctl.err() << "cluster2ctl: namespace '" << request.namespace_()
              << "' already exists with other options; it keeps them\n";
  }
  if (ctl.json()) {
    ctl.out() << ToJson(response);
    return kExitOk;
  }
  absl::Duration expire = FromProto(response.options().expire());
  ctl.out() << FormatTable(
      {{"NAMESPACE", "PERSIST", "EXPIRE", "FSYNC", "CONFLICT"},
       {request.namespace_(), response.options().persist() ? "yes" : "no",
        expire == absl::ZeroDuration() ? "never" : absl::FormatDuration(expire),
        FsyncName(response.options().fsync()),
        response.conflict() ? "yes" : "no"}});
  return kExitOk;
}

struct KeyArgs {
  std::string ns;
  std::string key;
};

int Get(const KeyArgs& args, VerbContext& ctl) {
  if (int code = ctl.ConnectCache(); code != kExitOk) return code;
  v1::GetRequest request;
  request.set_namespace_(args.ns);
  request.set_key(args.key);
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::GetResponse response;
  grpc::Status status = ctl.cache().Get(&context, request, &response);
  if (!status.ok()) return ctl.FailCache(status);
  if (ctl.json()) ctl.out() << ToJson(response);
  if (!response.found()) return KeyNotFound(args.ns, args.key, ctl);
  if (!ctl.json()) ctl.out() << response.value();
  return kExitOk;
}

struct SetArgs {
  std::string ns;
  std::string key;
  std::string value;
  std::string ttl;  // empty: the namespace's expire
  bool nx = false;
};

int Set(const SetArgs& args, VerbContext& ctl) {
  v1::SetRequest request;
  request.set_namespace_(args.ns);
  request.set_key(args.key);
  request.set_value(args.value);
  request.set_leave_if_not_null(args.nx);
  if (!args.ttl.empty()) {
    std::optional<absl::Duration> ttl = ParseCliDuration(args.ttl);
    if (!ttl.has_value() || *ttl == absl::ZeroDuration()) {
      return ctl.Usage(
          absl::StrCat("--ttl takes a positive duration (30s, 1m, ",
                       "90), not '", args.ttl, "'"));
    }
    ToProto(*ttl, request.mutable_ttl());
  }
  if (int code = ctl.ConnectCache(); code != kExitOk) return code;
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::SetResponse response;
  grpc::Status status = ctl.cache().Set(&context, request, &response);
  if (!status.ok()) return ctl.FailCache(status);
  if (ctl.json()) {
    ctl.out() << ToJson(response);
  } else if (response.written()) {
    ctl.out() << "written (revision " << response.revision() << ")\n";
  } else {
    ctl.out() << response.current();
  }
  if (!response.written()) {
    ctl.err() << "cluster2ctl: key '" << request.key()
              << "' already has a value (printed); --nx left it\n";
    return kExitFailed;
  }
  return kExitOk;
}

int Delete(const KeyArgs& args, VerbContext& ctl) {
  if (int code = ctl.ConnectCache(); code != kExitOk) return code;
  v1::DeleteRequest request;
  request.set_namespace_(args.ns);
  request.set_key(args.key);
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::DeleteResponse response;
  grpc::Status status = ctl.cache().Delete(&context, request, &response);
  if (!status.ok()) return ctl.FailCache(status);
  if (ctl.json()) ctl.out() << ToJson(response);
  if (!response.found()) return KeyNotFound(args.ns, args.key, ctl);
  if (!ctl.json()) ctl.out() << response.old_value();
  return kExitOk;
}

struct KeysArgs {
  std::string ns;
  std::string prefix;
  std::string limit;  // empty: every key
};

int Keys(const KeysArgs& args, VerbContext& ctl) {
  uint64_t limit = 0;  // 0 = every key
  if (!args.limit.empty() &&
      (!absl::SimpleAtoi(args.limit, &limit) || limit == 0)) {
    return ctl.Usage("--limit takes a positive number");
  }
  if (int code = ctl.ConnectCache(); code != kExitOk) return code;
  constexpr uint64_t kMaxPage = 10000;  // the server's largest page
  v1::KeysRequest request;
  request.set_namespace_(args.ns);
  request.set_prefix(args.prefix);
  v1::KeysResponse all;  // for -o json
  uint64_t listed = 0;
  while (limit == 0 || listed < limit) {
    if (limit > 0) {
      request.set_limit(
          static_cast<uint32_t>(std::min<uint64_t>(limit - listed, kMaxPage)));
    }
    grpc::ClientContext context;
    ctl.SetDeadline(&context);
    v1::KeysResponse page;
    grpc::Status status = ctl.cache().Keys(&context, request, &page);
    if (!status.ok()) return ctl.FailCache(status);
    for (const std::string& key : page.keys()) {
      if (limit > 0 && listed == limit) break;
      if (ctl.json()) {
        all.add_keys(key);
      } else {
        ctl.out() << key << "\n";
      }
      ++listed;
    }
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (ctl.json()) ctl.out() << ToJson(all);
  return kExitOk;
}

struct WatchArgs {
  std::string ns;
  std::string key;
  std::string from;   // empty: from now
  std::string count;  // empty: until interrupted
};

int Watch(const WatchArgs& args, VerbContext& ctl) {
  v1::WatchRequest request;
  request.set_namespace_(args.ns);
  request.set_key(args.key);
  if (!args.from.empty()) {
    uint64_t revision = 0;
    if (!absl::SimpleAtoi(args.from, &revision))
      return ctl.Usage("--from takes a revision number");
    request.set_from_revision(revision);
  }
  int64_t count = -1;  // -1 = until interrupted
  if (!args.count.empty() &&
      (!absl::SimpleAtoi(args.count, &count) || count <= 0)) {
    return ctl.Usage("--count takes a positive number");
  }
  if (int code = ctl.ConnectCache(); code != kExitOk) return code;
  int64_t seen = 0;
  while (true) {
    grpc::ClientContext context;  // no deadline: it streams until stopped
    auto reader = ctl.cache().Watch(&context, request);
    v1::WatchEvent event;
    bool progressed = false;
    while (reader->Read(&event)) {
      progressed = true;
      // Resume after the last revision seen.
      if (event.revision() > 0) request.set_from_revision(event.revision());
      if (ctl.json()) {
        ctl.out() << JsonLine(event) << std::endl;
      } else {
        ctl.out() << FormatWatchEvent(event) << std::flush;
      }
      if (event.kind() != v1::WatchEvent::KIND_UNSPECIFIED) ++seen;
      if (count > 0 && seen >= count) {
        context.TryCancel();
        reader->Finish();
        return kExitOk;
      }
    }
    grpc::Status status = reader->Finish();
    // The contract: a slow consumer is cut off and resumes. Resume only
    // after progress, so a server that refuses at once is not hammered.
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
        progressed) {
      continue;
    }
    return status.ok() ? kExitOk : ctl.FailCache(status);
  }
}

int Stats(const std::string& ns, VerbContext& ctl) {
  if (int code = ctl.ConnectCache(); code != kExitOk) return code;
  v1::StatsRequest request;
  request.set_namespace_(ns);
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::StatsResponse response;
  grpc::Status status = ctl.cache().Stats(&context, request, &response);
  if (!status.ok()) return ctl.FailCache(status);
  ctl.out() << (ctl.json() ? ToJson(response)
                           : FormatCacheStatsTable(response));
  return kExitOk;
}

// Declares NS and KEY, both required, for get and del.
VerbHandler DeclareKey(CLI::App& command,
                       int (*run)(const KeyArgs&, VerbContext&)) {
  auto args = std::make_shared<KeyArgs>();
  command.add_option("NS", args->ns, "the namespace")->required();
  command.add_option("KEY", args->key, "the key")->required();
  return [args, run](VerbContext& ctl) { return run(*args, ctl); };
}

}  // namespace

std::vector<Verb> CacheVerbs() {
  return {
      {"cache", "VERB",
       "the cache server's verbs (not the master's; NS is a namespace)",
       "Values are printed exactly, without a newline added; -o json prints "
       "the responses as JSON (bytes in base64).",
       nullptr},
      {"cache use",
       "NS [--persist] [--expire=DURATION] "
       "[--fsync=always|everysec|no]",
       "create NS (the first use fixes its options); prints the namespace's "
       "options and whether yours conflict with them",
       "",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<UseArgs>();
         command.add_option("NS", args->ns, "the namespace")->required();
         command.add_flag("--persist", args->persist, "keep it on disk")
             ->disable_flag_override();
         command
             .add_option("--expire", args->expire,
                         "each key's default time to live (default: never)")
             ->type_name("DURATION");
         command
             .add_option("--fsync", args->fsync,
                         "when a persistent write reaches the disk: always, "
                         "everysec (default) or no")
             ->type_name("always|everysec|no");
         return [args](VerbContext& ctl) { return Use(*args, ctl); };
       }},
      {"cache get", "NS KEY", "print KEY's value raw (exit 1 if KEY is absent)",
       "", [](CLI::App& command) { return DeclareKey(command, Get); }},
      {"cache set", "NS KEY VALUE [--ttl=DURATION] [--nx]",
       "write KEY (--ttl default: the namespace's expire); with --nx only if "
       "KEY is absent, else print the current value and exit 1",
       "\"--\" ends the options, for a VALUE that starts with \"-\".",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<SetArgs>();
         command.add_option("NS", args->ns, "the namespace")->required();
         command.add_option("KEY", args->key, "the key")->required();
         command.add_option("VALUE", args->value, "the value, stored exactly")
             ->required();
         command
             .add_option("--ttl", args->ttl,
                         "time to live (default: the namespace's expire)")
             ->type_name("DURATION");
         command.add_flag("--nx", args->nx, "only if KEY is absent")
             ->disable_flag_override();
         return [args](VerbContext& ctl) { return Set(*args, ctl); };
       }},
      {"cache del", "NS KEY",
       "delete KEY and print its old value raw (exit 1 if absent)", "",
       [](CLI::App& command) { return DeclareKey(command, Delete); }},
      {"cache keys", "NS [PREFIX] [--limit=N]",
       "the keys, sorted, one per line (all of them, or N)", "",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<KeysArgs>();
         command.add_option("NS", args->ns, "the namespace")->required();
         command.add_option("PREFIX", args->prefix, "only keys with it");
         command.add_option("--limit", args->limit, "at most N keys")
             ->type_name("N");
         return [args](VerbContext& ctl) { return Keys(*args, ctl); };
       }},
      {"cache watch", "NS [KEY] [--from=REVISION] [--count=N]",
       "print each change after REVISION (default: from now)",
       "Each change is a line \"REVISION KIND KEY VALUE\", KIND set, delete, "
       "expire or evict;\na line \"resync\" if REVISION is gone (re-read). "
       "Until interrupted, or N changes\n(then exit 0). -o json: one JSON "
       "object per line.",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<WatchArgs>();
         command.add_option("NS", args->ns, "the namespace")->required();
         command.add_option("KEY", args->key, "only this key");
         command
             .add_option("--from", args->from,
                         "start after this revision (default: now)")
             ->type_name("REVISION");
         command.add_option("--count", args->count, "exit 0 after N changes")
             ->type_name("N");
         return [args](VerbContext& ctl) { return Watch(*args, ctl); };
       }},
      {"cache stats", "[NS]",
       "hits, misses, loads, errors, keys and bytes per namespace", "",
       [](CLI::App& command) -> VerbHandler {
         auto ns = std::make_shared<std::string>();
         command.add_option("NS", *ns, "only this namespace");
         return [ns](VerbContext& ctl) { return Stats(*ns, ctl); };
       }},
  };
}

}  // namespace cluster2::ctl
