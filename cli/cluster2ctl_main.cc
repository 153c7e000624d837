// cluster2ctl: the command line of a running cluster. See `cluster2ctl --help`.
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return cluster2::RunCtl(args, std::cout, std::cerr);
}
