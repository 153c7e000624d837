'use strict';
// JSON <-> google.protobuf.Value, checked through the real encoder (the
// camelCase trap: snake_case Value fields encode as an empty Value).
const {describe, it} = require('node:test');
const assert = require('node:assert');
const {toValue, fromValue, durationOf, msOf} = require('../lib/value');
const {load} = require('../lib/proto');

// Encodes `value` in a StatusAnswer and decodes it again, as on the wire.
function wire(value) {
  const type = load().definition['cluster2.v1.StatusAnswer'];
  return fromValue(type.deserialize(type.serialize({id: 1, value: toValue(value)})).value);
}

describe('JSON <-> google.protobuf.Value', () => {
  const cases = [
    ['a number', 42.5],
    ['zero', 0],
    ['a negative number', -7],
    ['a string', 'hello'],
    ['an empty string', ''],
    ['true', true],
    ['false', false],
    ['null', null],
    ['an empty object', {}],
    ['an empty array', []],
    ['nested values', {a: [1, 'two', null, {b: false}], c: {d: {e: 'f'}}, 'key with space': 1}],
  ];
  for (const [name, value] of cases) {
    it(`round-trips ${name} over the wire`, () => {
      assert.deepStrictEqual(wire(value), value);
    });
  }

  it('converts what JSON cannot carry as JSON.stringify does', () => {
    assert.strictEqual(wire(undefined), null);
    assert.strictEqual(wire(NaN), null);
    assert.deepStrictEqual(wire({a: undefined, f() {}, d: new Date(0)}),
                           {d: '1970-01-01T00:00:00.000Z'});
    assert.deepStrictEqual(wire([undefined, () => 1]), [null, null]);
  });

  it('builds camelCase Value fields (snake_case would encode empty)', () => {
    assert.deepStrictEqual(toValue(1), {numberValue: 1});
    assert.deepStrictEqual(toValue({a: [true]}),
                           {structValue: {fields: {a: {listValue: {values: [{boolValue: true}]}}}}});
    const type = load().definition['cluster2.v1.StatusAnswer'];
    const snake = type.deserialize(type.serialize({id: 1, value: {number_value: 5}}));
    assert.strictEqual(fromValue(snake.value), null, 'the trap is still there');
  });

  it('throws on a BigInt', () => {
    assert.throws(() => toValue(1n), TypeError);
  });

  it('reads a Value with no kind as null', () => {
    assert.strictEqual(fromValue({}), null);
    assert.strictEqual(fromValue(undefined), null);
  });

  it('converts milliseconds to and from Durations', () => {
    assert.deepStrictEqual(durationOf(1500.25), {seconds: 1, nanos: 500250000});
    assert.deepStrictEqual(durationOf(0), {seconds: 0, nanos: 0});
    assert.strictEqual(msOf({seconds: '2', nanos: 5e6}), 2005);
    assert.strictEqual(msOf(null), 0);
  });
});
