"""Fuzz targets: one libFuzzer entry point, two ways to run it.

A fuzz target is a source file defining
    extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
that must never crash, hang or leak on any input.

cluster2_fuzz_test(name, srcs, deps, corpus) defines:
  <name>          a cc_test (normal toolchain, part of `bazel test //...`):
                  replays every corpus file, then deterministic mutations of
                  them (bit flips, truncations, splices), through the target.
                  Under --config=asan it is a small fuzzer of its own.
  <name>_fuzzer   the same code linked with libFuzzer (tags = ["manual"]):
                  built with clang by scripts/fuzz.sh, which runs each for a
                  bounded time from the committed corpus.
"""

def cluster2_fuzz_test(name, srcs, corpus, deps = [], **kwargs):
    """Args:
      name: the replay test; `<name>_fuzzer` is the libFuzzer binary.
      srcs: the file(s) defining LLVMFuzzerTestOneInput.
      corpus: label of a filegroup of seed inputs (committed files).
      deps: what the target links.
      **kwargs: passed to the cc_test (size, tags, ...).
    """
    native.cc_library(
        name = name + "_target",
        testonly = True,
        srcs = srcs,
        deps = deps,
        alwayslink = True,
    )
    native.cc_test(
        name = name,
        args = ["$(locations %s)" % corpus],
        data = [corpus],
        deps = [
            ":" + name + "_target",
            "//tools:fuzz_replay_main",
        ],
        **kwargs
    )
    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        linkopts = ["-fsanitize=fuzzer"],
        tags = ["manual"],
        deps = [":" + name + "_target"],
    )
