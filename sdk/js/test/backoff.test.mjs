// The pure rules: backoff delays, URLs, close codes.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay, defaultBackoff, getEndpointURL, isFinalCloseCode } from '../dist/index.js';

test('backoffDelay: at once, then ~100 ms doubling up to 5 s, each ±50 %', () => {
  const b = defaultBackoff;
  const cases = [
    // attempt, random, want
    [1, 0.9, 0],
    [2, 0.5, 100],
    [2, 0, 50],
    [2, 1, 150],
    [3, 0.5, 200],
    [4, 0.5, 400],
    [7, 0.5, 3200],
    [8, 0.5, 5000],
    [8, 0, 2500],
    [8, 1, 7500],
    [50, 0.5, 5000],
  ];
  for (const [attempt, r, want] of cases) {
    assert.equal(backoffDelay(attempt, b, () => r), want, `attempt ${attempt}, random ${r}`);
  }
});

test('backoffDelay stays within bounds for any random value', () => {
  const b = { initialMs: 100, maxMs: 5000, jitter: 0.5, maxAttempts: Infinity };
  for (let attempt = 2; attempt < 20; attempt++) {
    const base = Math.min(b.maxMs, b.initialMs * 2 ** (attempt - 2));
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(attempt, b, Math.random);
      assert.ok(d >= Math.floor(base / 2) && d <= Math.ceil(base * 1.5), `attempt ${attempt}: ${d}`);
    }
  }
  assert.equal(backoffDelay(5, { ...b, jitter: 0 }, () => 0), 800);
});

test('getEndpointURL', () => {
  assert.equal(getEndpointURL('http://127.0.0.1:4000', 'acme', 'arena'), 'http://127.0.0.1:4000/api/v1/tenants/acme/apps/arena/endpoint');
  assert.equal(getEndpointURL('https://api.example.com/', 'a b', 'x/y'), 'https://api.example.com/api/v1/tenants/a%20b/apps/x%2Fy/endpoint');
});

test('isFinalCloseCode: the game decided on 1000, 1008, 1009 and 4000-4899', () => {
  for (const c of [1000, 1008, 1009, 4000, 4500, 4899]) assert.equal(isFinalCloseCode(c), true, String(c));
  for (const c of [1001, 1006, 1011, 1012, 1013, 3000, 4900, 4901, 4902, 4999]) assert.equal(isFinalCloseCode(c), false, String(c));
});
