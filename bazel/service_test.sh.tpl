%{preamble}
check="$PWD/%{check}"
# Sockets need a short path (TEST_TMPDIR is longer than sun_path allows).
dir=$(mktemp -d /tmp/c2svc-XXXXXX)
master_pid=
cleanup() {
  if [[ -n "$master_pid" ]] && kill -0 "$master_pid" 2>/dev/null; then
    kill -KILL "$master_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# Free ports and a private run and data directory, whatever the config says.
"$master" --config "$config" "${flags[@]}" --port=0 --monPort=0 \
  --runDir="$dir/run" --cache.persistPath="$dir/data" -- "$binary" \
  >"$dir/master.log" 2>&1 &
master_pid=$!

# Ready: the ECV is up once every initial worker has been ready.
deadline=$((SECONDS + %{timeout}))
until "$ctl" --run-dir "$dir/run" ecv -o json 2>/dev/null | grep -q HEALTH_UP; do
  if ! kill -0 "$master_pid" 2>/dev/null || ((SECONDS >= deadline)); then
    echo "cluster2_service_test: the cluster did not get ready within %{timeout}s:" >&2
    cat "$dir/master.log" >&2
    exit 1
  fi
  sleep 0.1
done
config_json=$("$ctl" --run-dir "$dir/run" config)
port=$(sed -n 's/^ *"port": *\([0-9]*\).*/\1/p' <<<"$config_json" | head -1)
mon_port=$(sed -n 's/^ *"monPort": *\([0-9]*\).*/\1/p' <<<"$config_json" | head -1)

status=0
CLUSTER2_SERVICE_PORT="$port" CLUSTER2_MONITOR_PORT="$mon_port" \
  CLUSTER2_RUN_DIR="$dir/run" CLUSTER2CTL="$ctl" "$check" || status=$?

kill -TERM "$master_pid"
if ! timeout 70 tail --pid="$master_pid" -f /dev/null; then
  echo "cluster2_service_test: the cluster did not stop within 70 s" >&2
  status=1
fi
wait "$master_pid" || { echo "cluster2_service_test: cluster2-master exited $?" >&2; status=1; }
master_pid=
if ((status != 0)); then
  echo "cluster2_service_test: check failed (exit $status); the master's log:" >&2
  cat "$dir/master.log" >&2
fi
exit "$status"
