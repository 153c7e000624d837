'use strict';
// Errors of this package carry their meaning in `code`, a gRPC status code
// (a number, as @grpc/grpc-js errors have it) and `codeName` its name: decide
// on those, never on the message.

const {status} = require('@grpc/grpc-js');

const NAMES = Object.fromEntries(Object.entries(status).map(([name, code]) => [code, name]));

// An Error with `code` (gRPC status code) and `codeName`, plus `extra`'s
// properties.
function codedError(code, message, extra = {}) {
  const error = new Error(message);
  error.code = code;
  error.codeName = NAMES[code] || String(code);
  Object.assign(error, extra);
  return error;
}

// Adds codeName to an error of @grpc/grpc-js (which has code and details).
function fromGrpc(error) {
  if (error && typeof error.code === 'number' && !error.codeName) {
    error.codeName = NAMES[error.code] || String(error.code);
  }
  return error;
}

module.exports = {codedError, fromGrpc, status};
