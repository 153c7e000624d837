"""One gRPC channel per address for the process (channels are thread-safe
and multiplex calls), and where the master is."""
import os
import threading

import grpc

from cluster2 import worker as _worker
from cluster2._errors import Error

_lock = threading.Lock()
_channels = {}
_master_address = None


def channel(address):
    """The process's channel to `address` ("unix:/path/master.sock")."""
    with _lock:
        found = _channels.get(address)
        if found is None:
            found = _channels[address] = grpc.insecure_channel(address)
        return found


def set_master_address(address):
    """Sets the master's address for a process that is not a worker and has
    no CLUSTER2_MASTER (None: back to the environment)."""
    global _master_address
    _master_address = address


def master_address():
    """The master's address: this worker's session's, else the one set with
    set_master_address(), else CLUSTER2_MASTER. Error FAILED_PRECONDITION if
    there is none."""
    worker = _worker.current()
    if worker is not None:
        return worker.master_address
    address = _master_address or os.environ.get("CLUSTER2_MASTER")
    if not address:
        raise Error(grpc.StatusCode.FAILED_PRECONDITION,
                    "no cluster2 master: not a worker, no CLUSTER2_MASTER "
                    "(or cluster2.connect(address))")
    return address
