# Sourced by scripts that run Bazel in a second output base (fuzz.sh,
# clang_check.sh). Such a Bazel does not know the first one's convenience
# links (bazel-bin, bazel-<checkout directory>, ...) and would load them as
# packages under `//...`; .bazelignore takes no patterns, and the checkout's
# directory name is anyone's. So these scripts name the project's own
# top-level packages instead of `//...`.
source_packages() {
  git ls-files -- '*BUILD.bazel' | cut -d/ -f1 | sort -u |
    grep -v -e '^BUILD.bazel$' -e '^third_party$' | sed 's|.*|//&/...|'
}
