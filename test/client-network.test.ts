/** Limits key on the client's network: an IPv4 /24 or an IPv6 /64, however the address is written. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientNetwork } from '../src/client-network.js';

describe('client networks for limits', () => {
  it('puts the addresses of one IPv4 /24 together and keeps other /24s apart', () => {
    assert.equal(clientNetwork('198.51.100.7'), '198.51.100.0/24');
    assert.equal(clientNetwork('198.51.100.250'), clientNetwork('198.51.100.7'));
    assert.notEqual(clientNetwork('198.51.101.7'), clientNetwork('198.51.100.7'));
    assert.equal(clientNetwork('::ffff:198.51.100.9'), '198.51.100.0/24', 'IPv4-mapped IPv6 counts as its IPv4 address');
  });

  it('puts the addresses of one IPv6 /64 together, in any spelling', () => {
    const net = clientNetwork('2001:db8:1:2::1');
    assert.equal(net, '2001:db8:1:2::/64');
    assert.equal(clientNetwork('2001:0DB8:0001:0002:ffff:ffff:ffff:ffff'), net);
    assert.equal(clientNetwork('2001:db8:1:2:0:0:0:abcd'), net);
    assert.notEqual(clientNetwork('2001:db8:1:3::1'), net);
    assert.equal(clientNetwork('::1'), '0:0:0:0::/64');
    assert.equal(clientNetwork('fe80::1%eth0'), 'fe80:0:0:0::/64', 'a zone index does not matter');
  });

  it('leaves what is not an IP address as it is', () => {
    assert.equal(clientNetwork('unknown'), 'unknown');
  });
});
