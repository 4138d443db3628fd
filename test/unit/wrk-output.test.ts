import { describe, expect, it } from 'vitest';
import { parseWrk } from '../../bench/wrk.js';

// What wrk 4.1 prints with `--latency` (Debian's package), errors included; it pads a short figure
// with a trailing space.
const PRINTED = `Running 5s test @ http://127.0.0.1:41234/api/billingplatform/ACCOUNT/1001
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.82ms    1.20ms  31.06ms   91.32%
    Req/Sec     6.67k   312.45     7.10k    84.00%
  Latency Distribution
     50%    4.61ms
     75%    5.02ms
     90%  850.00us
     99%    1.02s 
  33187 requests in 5.00s, 45.92MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 7
Requests/sec:   6636.41
Transfer/sec:      9.18MB
`;

describe("the benchmark's reading of wrk", () => {
  it('reads requests, rate, percentiles in milliseconds, errors and non-2xx answers', () => {
    expect(parseWrk(PRINTED)).toEqual({
      requests: 33187,
      rps: 33187 / 5,
      p50: 4.61,
      p99: 1020,
      errors: 10,
      non2xx: 7,
    });
  });

  it('counts no errors when wrk prints none', () => {
    const clean = PRINTED.replace(/ {2}Socket errors.*\n {2}Non-2xx.*\n/, '');
    expect(parseWrk(clean)).toMatchObject({ errors: 0, non2xx: 0 });
  });

  it('refuses output it cannot read rather than reporting zeros', () => {
    expect(() => parseWrk('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(/request count/);
    expect(() => parseWrk(PRINTED.replace(/ +99%.*\n/, ''))).toThrow(/99th percentile/);
  });
});
