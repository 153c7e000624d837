# The two commands of the README. Each installs what it needs first.
#   make demo   a real cluster of 4 HTTP workers on port 9090 (Ctrl-C stops it)
#   make test   every test: bazel test //...
.PHONY: setup build demo test clean

setup:
	./scripts/setup.sh

build: setup
	bazel build //...

demo: setup
	bazel build //master:cluster2-master //cache_server:cluster2-cache //cli:cluster2ctl //examples/hello:hello_worker
	./scripts/demo.sh

test: setup
	bazel test //...

clean:
	bazel clean
