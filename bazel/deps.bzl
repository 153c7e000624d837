"""What a workspace that uses cluster2 declares, in one call:

    local_repository(name = "cluster2", path = "/path/to/cluster2")
    load("@cluster2//bazel:deps.bzl", "cluster2_dependencies")
    cluster2_dependencies()

It declares, unless the workspace already has them:
  - `system`: Debian's libraries and code generators under /usr (gRPC,
    protobuf, abseil, ...), as cluster2's own WORKSPACE does, with cluster2's
    third_party/system/system.BUILD;
  - `rules_cc`, `rules_java`, `remote_coverage_tools`: the small offline
    stand-ins for Bazel 4.2.3's implicit dependencies, which it would
    otherwise download (docs/adr/0001-offline-bazel.md). They are cluster2's
    third_party/bazel_offline/*, linked into the workspace's output base.
Call it before anything else declares these names (Bazel's own defaults come
after the WORKSPACE file).
"""

# A file of cluster2 whose place locates the rest of third_party/.
_SYSTEM_BUILD = Label("//third_party/system:system.BUILD")

def _offline_stub_impl(rctx):
    third_party = rctx.path(_SYSTEM_BUILD).dirname.dirname
    stub = third_party.get_child("bazel_offline").get_child(rctx.attr.stub)
    if not stub.exists:
        fail("cluster2: no offline stand-in %s at %s" % (rctx.attr.stub, stub))
    for entry in stub.readdir():
        rctx.symlink(entry, entry.basename)

_offline_stub = repository_rule(
    implementation = _offline_stub_impl,
    attrs = {"stub": attr.string(mandatory = True)},
    local = True,
)

def cluster2_dependencies():
    """Declares the repositories cluster2's targets need (see above)."""
    for stub in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        if not native.existing_rule(stub):
            _offline_stub(name = stub, stub = stub)
    if not native.existing_rule("system"):
        native.new_local_repository(
            name = "system",
            build_file = str(_SYSTEM_BUILD),
            path = "/usr",
        )
