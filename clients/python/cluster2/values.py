"""JSON values <-> google.protobuf.Value, the type of event arguments and
status values on the wire (and the meaning of cache values).

A JSON value here is None, bool, int, float, str, a list (or tuple) of JSON
values, or a dict with str keys. Numbers travel as doubles: an int beyond
+-2**53 loses precision; a double that holds an integer within +-2**53 comes
back as an int, any other as a float.
"""
import json
import math

from google.protobuf import struct_pb2

# The largest integer a double holds exactly.
_EXACT_INT = 2 ** 53


def to_value(obj):
    """Returns a struct_pb2.Value for the JSON value `obj`. Raises TypeError
    for anything else (bytes, sets, objects, dict keys that are not str)."""
    value = struct_pb2.Value()
    _fill(value, obj)
    return value


def _fill(value, obj):
    if obj is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):  # before int: bool is an int
        value.bool_value = obj
    elif isinstance(obj, (int, float)):
        value.number_value = float(obj)
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, dict):
        fields = value.struct_value.fields
        value.struct_value.SetInParent()  # {} is a struct, not an unset value
        for key, item in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys are str, not {type(key).__name__}")
            _fill(fields[key], item)
    elif isinstance(obj, (list, tuple)):
        value.list_value.SetInParent()  # [] is a list, not an unset value
        for item in obj:
            _fill(value.list_value.values.add(), item)
    else:
        raise TypeError(f"not a JSON value: {type(obj).__name__}")


def from_value(value):
    """Returns the JSON value of a struct_pb2.Value (an unset Value is None)."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        number = value.number_value
        if math.isfinite(number) and number.is_integer() and abs(number) <= _EXACT_INT:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        return {key: from_value(item) for key, item in value.struct_value.fields.items()}
    return [from_value(item) for item in value.list_value.values]


def to_values(objs):
    """to_value of each item."""
    return [to_value(obj) for obj in objs]


def from_values(values):
    """from_value of each item, as a list."""
    return [from_value(value) for value in values]


def encode_json(obj):
    """The cache's representation of a JSON value: compact UTF-8 JSON text
    (what `cluster2ctl cache get` prints). TypeError as to_value."""
    to_value(obj)  # the same values as events and statuses, the same errors
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def decode_json(data):
    """The JSON value of cache bytes. Bytes that are not JSON (written by
    another client, e.g. `cluster2ctl cache set ns k hello`) come back as str
    if they are UTF-8, else as bytes."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return data
    try:
        return json.loads(text)
    except ValueError:
        return text
