// util.js: tiny dependency-free helpers for the infra scripts, so they need
// neither curl nor the AWS CLI.
//
//   node util.js freeports N
//       Prints N distinct free TCP ports on 127.0.0.1, one per line. All N
//       listeners are held open together so the kernel never repeats a port.
//   node util.js post URL TARGET [BODY] [TIMEOUT_MS]
//       POSTs BODY (default "{}") as an AWS JSON 1.1 request with
//       X-Amz-Target TARGET and a dummy Authorization header. Prints the
//       response body; exits 0 on 2xx, 1 on other statuses, 2 when the
//       server does not answer.
'use strict';
const net = require('net');
const http = require('http');

function freeports(n) {
  const servers = [];
  const ports = [];
  let pending = n;
  for (let i = 0; i < n; i++) {
    const s = net.createServer();
    servers.push(s);
    s.on('error', (e) => { console.error('freeports: ' + e.message); process.exit(2); });
    s.listen(0, '127.0.0.1', () => {
      ports[i] = s.address().port;
      if (--pending === 0) {
        servers.forEach((x) => x.close());
        process.stdout.write(ports.join('\n') + '\n');
      }
    });
  }
}

function post(url, target, body, timeoutMs) {
  body = body === undefined ? '{}' : body;
  const req = http.request(url, {
    method: 'POST',
    timeout: timeoutMs,
    headers: {
      'Content-Type': 'application/x-amz-json-1.1',
      'X-Amz-Target': target,
      'Authorization': 'AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0',
      'X-Amz-Date': '20200101T000000Z',
      'Content-Length': Buffer.byteLength(body),
    },
  }, (res) => {
    let data = '';
    res.setEncoding('utf8');
    res.on('data', (c) => { data += c; });
    res.on('end', () => {
      process.stdout.write(data + '\n');
      process.exit(res.statusCode >= 200 && res.statusCode < 300 ? 0 : 1);
    });
  });
  req.on('timeout', () => req.destroy(new Error('timeout after ' + timeoutMs + 'ms')));
  req.on('error', (e) => { console.error(url + ': ' + e.message); process.exit(2); });
  req.end(body);
}

const [cmd, ...args] = process.argv.slice(2);
switch (cmd) {
  case 'freeports':
    freeports(Number(args[0] || 1));
    break;
  case 'post':
    post(args[0], args[1], args[2], Number(args[3] || 5000));
    break;
  default:
    console.error('usage: node util.js freeports N | post URL TARGET [BODY] [TIMEOUT_MS]');
    process.exit(64);
}
