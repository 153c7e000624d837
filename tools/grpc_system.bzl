"""C++ code generation for .proto files with Debian's protoc and grpc_cpp_plugin.

Native proto_library/cc_grpc_library would build protobuf and gRPC from source,
which needs downloads; this macro runs the system generators instead.
"""

def cc_grpc_system_library(name, srcs, proto_root, deps = [], **kwargs):
    """Generates and compiles messages and gRPC stubs for `srcs`.

    Args:
      name: the cc_library to define.
      srcs: .proto files, relative to the package, under `proto_root`.
      proto_root: the import root, relative to the package ("." for the package
        itself). Generated headers are included as "<path under proto_root>.pb.h".
      deps: cc_library dependencies (other generated libraries).
      **kwargs: passed to the cc_library.
    """
    bases = [src[:-len(".proto")] for src in srcs]
    outs = []
    for base in bases:
        outs += [base + ".pb.h", base + ".pb.cc", base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    pkg = native.package_name()
    root = pkg + ("/" + proto_root if proto_root != "." else "")
    # In another workspace (@cluster2//proto), sources and outputs live
    # under external/<repository>/.
    repo = native.repository_name()
    if repo != "@":
        root = "external/" + repo[1:] + "/" + root
    native.genrule(
        name = name + "_codegen",
        srcs = srcs,
        outs = outs,
        tools = ["@system//:bin/protoc", "@system//:bin/grpc_cpp_plugin"],
        cmd = ("$(location @system//:bin/protoc) -I{root} -I/usr/include " +
               "--cpp_out=$(GENDIR)/{root} --grpc_out=$(GENDIR)/{root} " +
               "--plugin=protoc-gen-grpc=$(location @system//:bin/grpc_cpp_plugin) " +
               "$(SRCS)").format(root = root),
    )
    native.cc_library(
        name = name,
        srcs = [b + ".pb.cc" for b in bases] + [b + ".grpc.pb.cc" for b in bases],
        hdrs = [b + ".pb.h" for b in bases] + [b + ".grpc.pb.h" for b in bases],
        includes = [proto_root],
        deps = deps + ["@system//:grpc++"],
        **kwargs
    )
