#include "cli/commands.h"

#include <cctype>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/internal/flags.h"
#include "cli/internal/verb.h"
#include "cli/version.h"

namespace cluster2 {
namespace {

using ctl::Verb;
using ctl::VerbContext;
using ctl::VerbHandler;

constexpr char kDescription[] =
    "cluster2ctl: the command line of a running cluster (the master, or its "
    "cache server for the cache verbs).";

constexpr char kRootFooter[] =
    "Options go before or after the verb; \"--\" ends them (for a value that "
    "starts\nwith \"-\"). DURATION is 500ms, 5s, 2m, 1h30m or plain seconds. "
    "`cluster2ctl VERB --help`\nshows one verb.\n\n"
    "Exit codes: 0 ok; 1 the master or cache server returned an error, or a "
    "cache\nkey is absent (get, del) or present (set --nx); 2 usage; 3 no "
    "master or cache\nserver running (or it cannot be reached).";

constexpr char kVerbFooter[] =
    "Global options (--name, --run-dir, --master, --hosts, --tls-*, "
    "--cache-socket, -o,\n--timeout): see cluster2ctl --help.";

std::vector<Verb> AllVerbs() {
  std::vector<Verb> verbs;
  for (auto group : {ctl::ClusterVerbs, ctl::EcvVerbs, ctl::EventVerbs,
                     ctl::FleetVerbs, ctl::CacheVerbs, ctl::CompletionVerbs}) {
    for (Verb& verb : group()) verbs.push_back(std::move(verb));
  }
  return verbs;
}

// "cache set NS KEY VALUE [--nx]": a verb's words and arguments.
std::string Synopsis(const Verb& verb) {
  return verb.synopsis.empty() ? verb.path
                               : absl::StrCat(verb.path, " ", verb.synopsis);
}

// The usage error of a verb given the wrong arguments.
std::string Takes(const Verb& verb) {
  return absl::StrCat(verb.path, " takes ",
                      verb.synopsis.empty() ? "no arguments" : verb.synopsis);
}

// `text` wrapped to 80 columns, its lines after the first indented by
// `indent` (the first continues a line already that wide).
std::string Wrap(const std::string& text, size_t indent) {
  constexpr size_t kWidth = 80;
  std::string wrapped;
  size_t column = indent;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (column > indent && column + 1 + word.size() > kWidth) {
      absl::StrAppend(&wrapped, "\n", std::string(indent, ' '));
      column = indent;
    } else if (column > indent) {
      wrapped += ' ';
      ++column;
    }
    absl::StrAppend(&wrapped, word);
    column += word.size();
  }
  return wrapped;
}

// Help as the verb table describes each verb: its synopsis as the usage
// line, and every verb below it in the verb list.
class HelpFormatter : public CLI::Formatter {
 public:
  // `verb` must outlive the formatter.
  void Describe(const CLI::App* command, const Verb* verb) {
    verbs_[command] = verb;
  }

  std::string make_help(const CLI::App* app, std::string name,
                        CLI::AppFormatMode mode) const override {
    std::string help = make_usage(app, std::move(name));
    if (!app->get_description().empty())
      absl::StrAppend(&help, "\n", app->get_description(), "\n");
    absl::StrAppend(&help, make_positionals(app), make_groups(app, mode),
                    make_subcommands(app, mode));
    if (!app->get_footer().empty())
      absl::StrAppend(&help, "\n", app->get_footer(), "\n");
    return help;
  }

  std::string make_usage(const CLI::App* app, std::string) const override {
    auto verb = verbs_.find(app);
    if (verb == verbs_.end())
      return "usage: cluster2ctl [OPTIONS] VERB [ARGS]\n";
    return absl::StrCat("usage: cluster2ctl ", Synopsis(*verb->second), "\n");
  }

  std::string make_subcommand(const CLI::App* sub) const override {
    auto verb = verbs_.find(sub);
    if (verb == verbs_.end()) return CLI::Formatter::make_subcommand(sub);
    std::string synopsis = Synopsis(*verb->second);
    constexpr size_t kColumn = 24;
    std::string line = absl::StrCat("  ", synopsis);
    if (line.size() + 1 > kColumn) {
      absl::StrAppend(&line, "\n", std::string(kColumn, ' '));
    } else {
      line.append(kColumn - line.size(), ' ');
    }
    absl::StrAppend(&line, Wrap(sub->get_description(), kColumn), "\n");
    for (const CLI::App* child : sub->get_subcommands({}))
      absl::StrAppend(&line, make_subcommand(child));
    return line;
  }

 private:
  std::map<const CLI::App*, const Verb*> verbs_;
};

// The verb the arguments selected: the deepest parsed command (`root` for
// none).
const CLI::App* SelectedCommand(const CLI::App& root) {
  const CLI::App* app = &root;
  while (!app->get_subcommands().empty()) app = app->get_subcommands().front();
  return app;
}

// The arguments no option or positional of the selected verb took: CLI11's
// extras, and positionals that fell through to the verb's parent
// (`status NAME set ...`).
std::vector<std::string> Unused(CLI::App& root, const CLI::App* selected) {
  std::vector<std::string> unused;
  for (const std::string& arg : root.remaining(true))
    if (arg != "--") unused.push_back(arg);
  for (const CLI::App* app = selected->get_parent(); app != nullptr;
       app = app->get_parent()) {
    for (const CLI::Option* option : app->get_options()) {
      if (option->get_positional() && option->count() > 0) {
        for (const std::string& arg : option->results()) unused.push_back(arg);
      }
    }
  }
  return unused;
}

// The option `name` ("--ttl") as `command` or a command above it declares
// it; nullptr if none does.
const CLI::Option* FindOption(const CLI::App& command,
                              const std::string& name) {
  for (const CLI::App* app = &command; app != nullptr;
       app = app->get_parent()) {
    if (const CLI::Option* option = app->get_option_no_throw(name))
      return option;
  }
  return nullptr;
}

// Words CLI11's ArgumentMismatch by the argument that caused it: a flag
// given a value ("--nx=1") or an option without its value (a last "--ttl").
std::string MismatchProblem(const CLI::App& command,
                            const std::vector<std::string>& args,
                            const CLI::Error& error) {
  for (const std::string& arg : args) {
    size_t equals = arg.find('=');
    if (!absl::StartsWith(arg, "--") || equals == std::string::npos) continue;
    std::string name = arg.substr(0, equals);
    const CLI::Option* option = FindOption(command, name);
    if (option != nullptr && option->get_expected_max() == 0)
      return name + " takes no value";
  }
  if (!args.empty()) {
    const CLI::Option* option = FindOption(command, args.back());
    if (option != nullptr && option->get_expected_min() > 0)
      return args.back() + " needs a value";
  }
  return error.what();
}

bool LooksLikeFlag(const std::string& arg) {
  return arg.size() > 1 && arg[0] == '-' &&
         !std::isdigit(static_cast<unsigned char>(arg[1]));
}

int Usage(std::ostream& err, absl::string_view problem) {
  err << "cluster2ctl: " << problem << " (see cluster2ctl --help)\n";
  return kExitUsage;
}

}  // namespace

int RunCtl(const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err) {
  const std::vector<Verb> verbs = AllVerbs();
  ctl::GlobalOptions options;
  std::string timeout;
  CLI::App root(kDescription, "cluster2ctl");
  auto formatter = std::make_shared<HelpFormatter>();
  formatter->column_width(26);
  root.formatter(formatter);
  // Unknown flags and extra words are usage errors worded below.
  root.allow_extras();
  // The global options are accepted after the verb too.
  root.fallthrough();
  // One verb per command line, so a verb's argument may be another verb's
  // name (`status workers`).
  root.require_subcommand(0, 1);
  root.footer(kRootFooter);
  root.add_option("--name", options.name, "cluster name (default \"default\")")
      ->type_name("NAME");
  root.add_option("--run-dir", options.run_dir,
                  "run directory of the cluster (overrides --name)")
      ->type_name("DIR");
  root.add_option("--master", options.master,
                  "master address, e.g. unix:/run/x/master.sock (default: "
                  "$CLUSTER2_MASTER, then the run directory)")
      ->type_name("ADDRESS");
  root.add_option("--cache-socket", options.cache_socket,
                  "the cache server's socket (default: $CLUSTER2_CACHE, then "
                  "<run directory>/cache.sock)")
      ->type_name("PATH");
  root.add_option("--hosts", options.hosts,
                  "a file of masters, one \"NAME ADDRESS\" per line, for "
                  "workers, status NAME and rollout")
      ->type_name("FILE");
  root.add_option("--tls-ca", options.tls_ca,
                  "CA of a TCP master's certificate (default $CLUSTER2_TLS_CA)")
      ->type_name("FILE");
  root.add_option("--tls-cert", options.tls_cert,
                  "client certificate for a TCP master (default "
                  "$CLUSTER2_TLS_CERT)")
      ->type_name("FILE");
  root.add_option("--tls-key", options.tls_key,
                  "its private key (default $CLUSTER2_TLS_KEY)")
      ->type_name("FILE");
  root.add_option("--tls-server-name", options.tls_server_name,
                  "the name a TCP master's certificate must have (default: "
                  "its host)")
      ->type_name("NAME");
  root.add_option("-o,--output", options.output, "table (default) or json")
      ->type_name("table|json");
  root.add_option("--timeout", timeout,
                  "deadline of each call (default 5s; streams have none)")
      ->type_name("DURATION");
  root.set_version_flag("--version", Cluster2ctlVersion(), "print the version");

  std::map<std::string, CLI::App*> commands;  // by path
  std::map<const CLI::App*, VerbHandler> handlers;
  std::map<const CLI::App*, const Verb*> verb_of;
  for (const Verb& verb : verbs) {
    size_t space = verb.path.rfind(' ');
    CLI::App* parent = space == std::string::npos
                           ? &root
                           : commands.at(verb.path.substr(0, space));
    CLI::App* command = parent->add_subcommand(
        verb.path.substr(space == std::string::npos ? 0 : space + 1),
        verb.help);
    command->group("Verbs");
    command->require_subcommand(0, 1);
    command->footer(verb.details.empty()
                        ? kVerbFooter
                        : absl::StrCat(verb.details, "\n\n", kVerbFooter));
    formatter->Describe(command, &verb);
    commands[verb.path] = command;
    verb_of[command] = &verb;
    if (verb.declare) handlers[command] = verb.declare(*command);
  }

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    root.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    const CLI::App* selected = SelectedCommand(root);
    out << formatter->make_help(selected, selected->get_name(),
                                CLI::AppFormatMode::Normal);
    return kExitOk;
  } catch (const CLI::CallForVersion& version) {
    out << version.what() << "\n";
    return kExitOk;
  } catch (const CLI::RequiredError&) {
    // Only positionals are required: the verb lacks an argument.
    auto verb = verb_of.find(SelectedCommand(root));
    if (verb == verb_of.end()) return Usage(err, "no verb given");
    return Usage(err, Takes(*verb->second));
  } catch (const CLI::ArgumentMismatch& error) {
    return Usage(err, MismatchProblem(*SelectedCommand(root), args, error));
  } catch (const CLI::ParseError& error) {
    return Usage(err, error.what());
  }

  if (options.output != "json" && options.output != "table") {
    err << "cluster2ctl: -o takes table or json\n";
    return kExitUsage;
  }
  if (!timeout.empty()) {
    std::optional<absl::Duration> parsed = ctl::ParseCliDuration(timeout);
    if (!parsed.has_value() || *parsed == absl::ZeroDuration()) {
      return Usage(err, absl::StrCat("--timeout takes a positive duration (5s, "
                                     "500ms, 2m, or seconds), not '",
                                     timeout, "'"));
    }
    options.timeout = *parsed;
  }
  const CLI::App* selected = SelectedCommand(root);
  std::vector<std::string> unused = Unused(root, selected);
  for (const std::string& arg : unused) {
    if (LooksLikeFlag(arg))
      return Usage(err, absl::StrCat("unknown flag '",
                                     arg.substr(0, arg.find('=')), "'"));
  }
  if (selected == &root) {
    if (unused.empty()) return Usage(err, "no verb given");
    return Usage(err, absl::StrCat("unknown verb '", unused.front(), "'"));
  }
  const Verb& verb = *verb_of.at(selected);
  auto handler = handlers.find(selected);
  if (handler == handlers.end()) {  // a group: `cache` without its verb
    std::vector<std::string> names;
    for (const CLI::App* sub : selected->get_subcommands({}))
      names.push_back(sub->get_name());
    std::string last = names.back();
    names.pop_back();
    return Usage(err,
                 absl::StrCat(verb.path, " takes ", absl::StrJoin(names, ", "),
                              " or ", last, unused.empty() ? "" : ", not '",
                              unused.empty() ? "" : unused.front(),
                              unused.empty() ? "" : "'"));
  }
  if (!unused.empty()) return Usage(err, Takes(verb));
  const bool fleet_verb =
      verb.path == "workers" || verb.path == "status" || verb.path == "rollout";
  if (!options.hosts.empty() && !fleet_verb) {
    return Usage(err, "--hosts works with workers, status NAME and rollout");
  }
  VerbContext context(std::move(options), out, err);
  return handler->second(context);
}

}  // namespace cluster2
