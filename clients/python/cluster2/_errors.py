"""cluster2.Error: a failed cluster2 call and its gRPC status code."""
import grpc


class Error(Exception):
    """A cluster2 operation failed. `code` is a grpc.StatusCode, the contract
    (proto/cluster2/v1/common.proto): decide on it, never on the message.
    `reason` is the cache's CacheErrorReason name when the cache server gave
    one ("NAMESPACE_NOT_FOUND", ...), else ""."""

    def __init__(self, code, message, reason=""):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def code_from_number(number):
    """The grpc.StatusCode of a numeric code (UNKNOWN for an unknown one)."""
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


def from_rpc_error(error):
    """An Error for a grpc.RpcError (a failed call), with the cache's reason
    from its trailing metadata "cluster2-cache-error" if any."""
    reason = ""
    try:
        for key, value in error.trailing_metadata() or ():
            if key == "cluster2-cache-error":
                reason = value
    except Exception:  # not a call (a future's error): no metadata
        pass
    try:
        return Error(error.code(), error.details() or "", reason)
    except Exception:
        return Error(grpc.StatusCode.UNKNOWN, str(error))
