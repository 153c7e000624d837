"""cluster2.cache: the cluster's shared cache (docs/cache.md) from Python,
the original's `require('cluster2').cacheManager`.

    from cluster2 import cache
    users = cache.use("users", expire=300)
    user = users.get("42", lambda: load_user(42))   # single-flight get-or-load
    users.set("42", {"name": "x"}, leave_if_not_null=True)
    users.watch("42", lambda value, key: print(key, value))

Values are JSON values, stored as compact UTF-8 JSON text (what
`cluster2ctl cache get` prints); bytes that are not JSON read back as str
(or bytes). Keys are str (UTF-8) or bytes. Durations are seconds (a number)
or datetime.timedelta.

get(key, loader) is the Cache service's get-or-load with leases: across
every process of the cluster one caller of a missing key runs its loader,
the others are parked on the server until it sets the value. The lease
belongs to this process's Hold stream: if the process dies, the next parked
caller loads at once.

The server's address is the worker's Welcome.cache_address, else
CLUSTER2_CACHE, else use(address=...). Errors are cluster2.Error with the
gRPC code and the cache's reason (docs/cache.md): e.g. DEADLINE_EXCEEDED
when `wait` runs out, ABORTED when another process's loader failed,
UNAVAILABLE without a server.

Threads: "cluster2-hold" keeps the Hold stream; one "cluster2-watch" per
watched key (or namespace) runs its callbacks in order. Thread-safe.
"""
import datetime
import os
import secrets
import threading
import time

import grpc

from cluster2 import values as _values
from cluster2 import worker as _worker
from cluster2._errors import Error, from_rpc_error

DEFAULT_WAIT = 10.0
_FSYNC = {None: 0, "always": 1, "everysec": 2, "no": 3}


def _seconds(duration):
    if duration is None:
        return None
    if isinstance(duration, datetime.timedelta):
        return duration.total_seconds()
    return float(duration)


def _set_duration(field, duration):
    field.FromNanoseconds(int(_seconds(duration) * 1e9))


def _key_bytes(key):
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8", "surrogateescape")
    raise TypeError(f"a cache key is str or bytes, not {type(key).__name__}")


def _key_str(key):
    return key.decode("utf-8", "surrogateescape")


def _pb():
    from cluster2.v1 import cache_pb2, cache_pb2_grpc
    return cache_pb2, cache_pb2_grpc


class _Client:
    """The process's connection to one cache server: its stub and its Hold
    stream (the liveness of this process's leases)."""

    def __init__(self, address):
        cache_pb2, cache_pb2_grpc = _pb()
        self.address = address
        # Replies may be larger than gRPC's 4 MiB default: a value of the
        # maximum size plus its envelope (the server bounds what it sends).
        self.channel = grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", -1)])
        self.stub = cache_pb2_grpc.CacheStub(self.channel)
        self.client_id = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._cond = threading.Condition()
        self._hold_live = False
        self._hold_thread = None

    def call(self, method, request, timeout):
        try:
            return getattr(self.stub, method)(request, timeout=timeout, wait_for_ready=True)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def await_hold(self, deadline):
        """Opens the Hold stream if needed and waits until the server
        registered it. Error UNAVAILABLE at `deadline` (monotonic)."""
        with self._cond:
            if self._hold_thread is None:
                self._hold_thread = threading.Thread(target=self._hold, name="cluster2-hold",
                                                     daemon=True)
                self._hold_thread.start()
            if not self._cond.wait_for(lambda: self._hold_live, deadline - time.monotonic()):
                raise Error(grpc.StatusCode.UNAVAILABLE,
                            f"no Hold stream with the cache server at {self.address}")

    def _hold(self):
        cache_pb2, _ = _pb()
        delay = 0.05
        while True:
            call = self.stub.Hold(cache_pb2.HoldRequest(client_id=self.client_id),
                                  wait_for_ready=True)
            try:
                for _ in call:  # the one HoldEvent: registered
                    with self._cond:
                        self._hold_live = True
                        self._cond.notify_all()
                    delay = 0.05
            except grpc.RpcError:
                pass
            with self._cond:
                self._hold_live = False
            time.sleep(delay)  # the server restarts: open it again
            delay = min(delay * 2, 1.0)


_clients_lock = threading.Lock()
_clients = {}


def _client(address):
    if address is None:
        worker = _worker.current()
        address = (worker.cache_address if worker is not None and worker.cache_address
                   else os.environ.get("CLUSTER2_CACHE"))
    if not address:
        raise Error(grpc.StatusCode.FAILED_PRECONDITION,
                    "no cache server: the cluster's cache is off, or this process is not "
                    "in a cluster (set CLUSTER2_CACHE or use(address=...))")
    with _clients_lock:
        client = _clients.get(address)
        if client is None:
            client = _clients[address] = _Client(address)
        return client


def use(namespace, persist=False, expire=None, fsync=None, address=None, timeout=DEFAULT_WAIT):
    """Creates namespace `namespace` or joins it; returns its Namespace.
    The first use in the cluster fixes the options (persist: keep it on
    disk; expire: the keys' default time to live, None = never; fsync:
    "always", "everysec" or "no"); a later different one gets the existing
    options (Namespace.options) and `conflict` True, as in docs/cache.md.
    Waits up to `timeout` seconds for the server."""
    cache_pb2, _ = _pb()
    if fsync not in _FSYNC:
        raise ValueError(f"fsync is 'always', 'everysec' or 'no', not {fsync!r}")
    options = cache_pb2.NamespaceOptions(persist=persist, fsync=_FSYNC[fsync])
    if expire:
        _set_duration(options.expire, expire)
    namespace = Namespace(_client(address), namespace, options)
    namespace._use(timeout)
    return namespace


class Namespace:
    """One namespace of the cache. Every method may raise cluster2.Error."""

    def __init__(self, client, name, options):
        self._client = client
        self.name = name
        self._requested = options
        self.options = options  # the namespace's (the first use's)
        self.conflict = False
        self._watch_lock = threading.Lock()
        self._watches = {}  # key bytes or b"" -> _Watch

    @property
    def expire(self):
        """The keys' default time to live in seconds (0: never)."""
        return self.options.expire.ToTimedelta().total_seconds()

    @property
    def persist(self):
        return self.options.persist

    def _use(self, timeout):
        cache_pb2, _ = _pb()
        response = self._client.call("Use", cache_pb2.UseRequest(
            namespace=self.name, options=self._requested), timeout)
        self.options = response.options
        self.conflict = response.conflict

    def _call(self, method, request, timeout):
        """A call that Uses the namespace again if the server lost it (it
        restarted) and retries once."""
        try:
            return self._client.call(method, request, timeout)
        except Error as error:
            if error.reason != "NAMESPACE_NOT_FOUND":
                raise
        self._use(timeout)
        return self._client.call(method, request, timeout)

    def get(self, key, loader=None, wait=DEFAULT_WAIT, lease_ttl=None):
        """The value of `key`. Without `loader`, None for a missing key.
        With one, a missing key is loaded once across the cluster: loader()
        runs here if this caller gets the lease, its value (JSON) is set and
        returned; other callers wait for it. `wait` (seconds) bounds the
        whole get: DEADLINE_EXCEEDED. A loader's exception is raised here
        and the parked callers get ABORTED. If the key was deleted or
        written meanwhile, the loaded value is returned without storing it
        (it may be stale). `lease_ttl`: how long the lease holds if this
        process neither sets nor fails (default 30 s)."""
        cache_pb2, _ = _pb()
        wait = _seconds(wait)
        key_bytes = _key_bytes(key)
        if loader is None:
            got = self._call("Get", cache_pb2.GetRequest(namespace=self.name, key=key_bytes), wait)
            return _values.decode_json(got.value) if got.found else None
        deadline = time.monotonic() + wait
        retried = False
        while True:
            remaining = max(deadline - time.monotonic(), 0.001)
            request = cache_pb2.GetRequest(namespace=self.name, key=key_bytes, lease=True,
                                           client_id=self._client.client_id)
            _set_duration(request.wait, remaining)
            if lease_ttl is not None:
                _set_duration(request.lease_ttl, lease_ttl)
            try:
                if not retried:
                    self._client.await_hold(deadline)
                got = self._client.call("Get", request, remaining + 1.0)
            except Error as error:
                if retried:
                    raise
                if error.reason == "NAMESPACE_NOT_FOUND":
                    self._use(remaining)
                elif error.reason in ("HOLD_MISSING", "HOLD_LOST"):
                    self._client.await_hold(deadline)  # reopened
                else:
                    raise
                retried = True
                continue
            break
        if got.found:
            return _values.decode_json(got.value)
        if got.load_error:
            raise Error(grpc.StatusCode.ABORTED,
                        f"the loader failed in another process: {got.load_error}")
        if not got.lease_token:
            raise Error(grpc.StatusCode.INTERNAL, "the cache answered neither a value nor a lease")
        try:
            value = loader()
            encoded = _values.encode_json(value)
        except BaseException as error:
            self._release(key_bytes, got.lease_token, f"{type(error).__name__}: {error}")
            raise
        set_request = cache_pb2.SetRequest(namespace=self.name, key=key_bytes, value=encoded,
                                           lease_token=got.lease_token)
        try:
            self._client.call("Set", set_request, max(deadline - time.monotonic(), 1.0))
        except Error as error:
            if error.reason != "LEASE_NOT_HELD":
                raise
        return value

    def _release(self, key_bytes, token, message):
        cache_pb2, _ = _pb()
        try:
            self._client.call("ReleaseLease", cache_pb2.ReleaseLeaseRequest(
                namespace=self.name, key=key_bytes, lease_token=token, error=message), 5.0)
        except Error:
            pass  # the lease lapses by itself (lease_ttl)

    def set(self, key, value, leave_if_not_null=False, ttl=None, wait=DEFAULT_WAIT):
        """Writes `value` (JSON) under `key`; returns whether it was written
        (False: leave_if_not_null found a value). `ttl` overrides the
        namespace's expire (seconds)."""
        cache_pb2, _ = _pb()
        request = cache_pb2.SetRequest(namespace=self.name, key=_key_bytes(key),
                                       value=_values.encode_json(value),
                                       leave_if_not_null=leave_if_not_null)
        if ttl is not None:
            _set_duration(request.ttl, ttl)
        return self._call("Set", request, _seconds(wait)).written

    def delete(self, key, wait=DEFAULT_WAIT):
        """Deletes `key`; returns its old value (None if it was absent)."""
        cache_pb2, _ = _pb()
        deleted = self._call("Delete", cache_pb2.DeleteRequest(
            namespace=self.name, key=_key_bytes(key)), _seconds(wait))
        return _values.decode_json(deleted.old_value) if deleted.found else None

    del_ = delete  # the original's name

    def keys(self, prefix="", limit=None, wait=DEFAULT_WAIT):
        """The keys (str), sorted, all of them or the first `limit`."""
        cache_pb2, _ = _pb()
        keys, token = [], b""
        while limit is None or len(keys) < limit:
            page = 1000 if limit is None else min(limit - len(keys), 10000)
            response = self._call("Keys", cache_pb2.KeysRequest(
                namespace=self.name, prefix=_key_bytes(prefix), limit=page, page_token=token),
                _seconds(wait))
            keys += [_key_str(key) for key in response.keys]
            token = response.next_page_token
            if not token:
                break
        return keys

    def stats(self, wait=DEFAULT_WAIT):
        """The server's figures of this namespace: hits, misses, loads,
        errors, keys, bytes, waiting (parked get-or-loads)."""
        cache_pb2, _ = _pb()
        response = self._call("Stats", cache_pb2.StatsRequest(namespace=self.name), _seconds(wait))
        for stats in response.namespaces:
            if stats.namespace == self.name:
                return {field: getattr(stats, field) for field in
                        ("hits", "misses", "loads", "errors", "keys", "bytes", "waiting")}
        raise Error(grpc.StatusCode.NOT_FOUND, f"no namespace {self.name!r}")

    def watch(self, key, fn, timeout=DEFAULT_WAIT):
        """Calls fn(value, key) for every later change of `key` (None: every
        key of the namespace), in order, on the watch's thread: the new value
        for a set, None for a delete, an expiry or an eviction. Returns once
        the server registered the watch: every change after that arrives.
        The watch resumes by itself after the server restarts (from its last
        revision; changes the server no longer keeps are skipped)."""
        key_bytes = b"" if key is None else _key_bytes(key)
        with self._watch_lock:
            watch = self._watches.get(key_bytes)
            if watch is None:
                watch = self._watches[key_bytes] = _Watch(self, key_bytes)
            watch.fns.append(fn)
        watch.await_live(time.monotonic() + _seconds(timeout))

    def unwatch(self, key, fn=None):
        """Stops calling `fn` (every fn if None) for `key` (None: the
        namespace's watch). Returns whether something was removed."""
        key_bytes = b"" if key is None else _key_bytes(key)
        with self._watch_lock:
            watch = self._watches.get(key_bytes)
            if watch is None:
                return False
            before = len(watch.fns)
            watch.fns[:] = [] if fn is None else [f for f in watch.fns if f != fn]
            removed = len(watch.fns) != before
            if not watch.fns:
                del self._watches[key_bytes]
                watch.stop()
        return removed


class _Watch:
    """One Watch stream and the callbacks on it; resumes after errors."""

    def __init__(self, namespace, key_bytes):
        self.namespace = namespace
        self.key_bytes = key_bytes
        self.fns = []  # guarded by namespace._watch_lock
        self._cond = threading.Condition()
        self._live = False
        self._stopped = False
        self._call = None
        self._revision = 0
        threading.Thread(target=self._run, name="cluster2-watch", daemon=True).start()

    def await_live(self, deadline):
        with self._cond:
            if not self._cond.wait_for(lambda: self._live, deadline - time.monotonic()):
                raise Error(grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"the watch of {self.namespace.name!r} was not registered in time")

    def stop(self):
        with self._cond:
            self._stopped = True
            if self._call is not None:
                self._call.cancel()

    def _run(self):
        cache_pb2, _ = _pb()
        namespace = self.namespace
        delay = 0.05
        while True:
            with self._cond:
                if self._stopped:
                    return
                self._call = call = namespace._client.stub.Watch(
                    cache_pb2.WatchRequest(namespace=namespace.name, key=self.key_bytes,
                                           from_revision=self._revision), wait_for_ready=True)
            try:
                call.initial_metadata()  # the server registered the watch
                with self._cond:
                    self._live = True
                    self._cond.notify_all()
                for event in call:
                    delay = 0.05
                    if event.resync:
                        self._revision = 0
                        continue
                    self._revision = event.revision
                    value = (_values.decode_json(event.value)
                             if event.kind == cache_pb2.WatchEvent.KIND_SET else None)
                    with namespace._watch_lock:
                        fns = list(self.fns)
                    for fn in fns:
                        try:
                            fn(value, _key_str(event.key))
                        except Exception:
                            import traceback
                            traceback.print_exc()
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    try:  # the server restarted without the namespace
                        namespace._use(DEFAULT_WAIT)
                    except Error:
                        pass
            with self._cond:
                if self._stopped:
                    return
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
