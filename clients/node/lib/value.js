'use strict';
// JSON values <-> google.protobuf.Value, and milliseconds <-> Duration.
//
// TRAP: protobufjs encodes google.protobuf.Value by its camelCase field names
// (numberValue, stringValue, boolValue, nullValue, structValue, listValue)
// even when the protos are loaded with keepCase; snake_case names are
// silently encoded as an empty Value. Every Value this package sends is built
// here.

// Returns the google.protobuf.Value of the JSON value `x`. Anything JSON
// cannot carry is converted as JSON.stringify would convert it (a Date to its
// string, undefined and functions in objects dropped, NaN to null); a
// top-level undefined is null. Throws TypeError for a BigInt or a cycle.
function toValue(x) {
  if (x === undefined) return {nullValue: 'NULL_VALUE'};
  return fromJson(JSON.parse(JSON.stringify(x) ?? 'null'));
}

function fromJson(x) {
  if (x === null) return {nullValue: 'NULL_VALUE'};
  switch (typeof x) {
    case 'number': return {numberValue: x};
    case 'string': return {stringValue: x};
    case 'boolean': return {boolValue: x};
  }
  if (Array.isArray(x)) return {listValue: {values: x.map(fromJson)}};
  const fields = {};
  for (const [key, value] of Object.entries(x)) fields[key] = fromJson(value);
  return {structValue: {fields}};
}

// Returns the JSON value of a decoded google.protobuf.Value (as @grpc/
// proto-loader decodes it with oneofs: true; a Value with no kind set is
// null).
function fromValue(v) {
  if (v === null || v === undefined) return null;
  const kind = v.kind || Object.keys(v).find((k) => k in KINDS);
  switch (kind) {
    case 'numberValue': return Number(v.numberValue);
    case 'stringValue': return v.stringValue;
    case 'boolValue': return Boolean(v.boolValue);
    case 'structValue': {
      const out = {};
      const fields = (v.structValue && v.structValue.fields) || {};
      for (const [key, value] of Object.entries(fields)) out[key] = fromValue(value);
      return out;
    }
    case 'listValue':
      return ((v.listValue && v.listValue.values) || []).map(fromValue);
    default:
      return null;  // nullValue, or nothing set
  }
}

const KINDS = {numberValue: 1, stringValue: 1, boolValue: 1, structValue: 1, listValue: 1,
               nullValue: 1};

// google.protobuf.Duration of `ms` milliseconds (>= 0).
function durationOf(ms) {
  const whole = Math.floor(ms / 1000);
  return {seconds: whole, nanos: Math.round((ms - whole * 1000) * 1e6)};
}

// Milliseconds of a decoded Duration (0 for a missing one).
function msOf(duration) {
  if (!duration) return 0;
  return Number(duration.seconds || 0) * 1000 + Number(duration.nanos || 0) / 1e6;
}

// google.protobuf.Timestamp of now (the wall clock).
function timestampNow() {
  const ms = Date.now();
  const seconds = Math.floor(ms / 1000);
  return {seconds, nanos: (ms - seconds * 1000) * 1e6};
}

module.exports = {toValue, fromValue, durationOf, msOf, timestampNow};
