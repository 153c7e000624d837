# The two commands of the README. Each installs what it needs first.
#   make demo   a real cluster of 4 HTTP workers on port 9090 (Ctrl-C stops it)
#   make test   every test: bazel test //..., then the Node client's tests
.PHONY: setup build demo test node-deps clean

setup:
	./scripts/setup.sh

build: setup
	bazel build //...

demo: setup
	bazel build //master:cluster2-master //cache_server:cluster2-cache //cli:cluster2ctl //examples/hello:hello_worker
	./scripts/demo.sh

# clients/node's locked dependencies (the npm registry), which the Node
# workers of the tests need.
node-deps: setup
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error

test: setup node-deps
	bazel test //...
	./scripts/node_test.sh

clean:
	bazel clean
