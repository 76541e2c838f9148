// The pure rules of traffic beyond plain HTTP/1.1: which app an authority names, the 501 of
// an unknown method, gRPC's status mapping and grpc-message encoding, the headers HTTP/2
// sends on, and which requests take the node:http path.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { authorityApp, methodRefusal } from '../../src/proxy/entrypoint.js'
import { grpcMessage, grpcStatusOf, isGrpc, outgoingHeaders } from '../../src/forward/h2.js'
import { declaresTrailers, needsExact } from '../../src/forward/exact.js'
import { endToEnd } from '../../src/forward/headers.js'

test('authorityApp: <app>.physarum always, a bare name only when known, never an IP or a bad name', () => {
  const known = (app: string): boolean => app === 'echo'
  assert.equal(authorityApp('echo.physarum:50051', known), 'echo')
  assert.equal(authorityApp('other.physarum', known), 'other', 'the .physarum form needs no knowledge')
  assert.equal(authorityApp('ECHO.PHYSARUM', known), 'echo')
  assert.equal(authorityApp('echo', known), 'echo')
  assert.equal(authorityApp('echo:1234', known), 'echo')
  assert.equal(authorityApp('localhost:1234', known), undefined, 'a host name of the machine is the path form')
  assert.equal(authorityApp('127.0.0.1:1234', known), undefined)
  assert.equal(authorityApp('[::1]:1234', known), undefined)
  assert.equal(
    authorityApp('bad_-.physarum', () => true),
    'bad_-',
    'as APP_NAME_PATTERN allows'
  )
  assert.equal(authorityApp('a/b.physarum', known), undefined)
  assert.equal(authorityApp('', known), undefined)
  assert.equal(authorityApp(undefined, known), undefined)
})

test('methodRefusal: 501 naming a well-formed unknown method; undefined for a malformed line', () => {
  const r = methodRefusal(Buffer.from('BREW /pot HTTP/1.1\r\nHost: p\r\n\r\n'))
  assert.match(r ?? '', /^HTTP\/1\.1 501 Not Implemented\r\n/)
  assert.match(r ?? '', /"code":"NOT_SUPPORTED","message":"method BREW is not supported/)
  const len = Number(/content-length: (\d+)/.exec(r ?? '')?.[1])
  assert.equal(Buffer.byteLength((r ?? '').split('\r\n\r\n')[1]), len)
  assert.equal(methodRefusal(Buffer.from('GARBAGE / HTTP/9.9\r\n\r\n')), undefined)
  assert.equal(methodRefusal(Buffer.from('no request line')), undefined)
  assert.equal(methodRefusal(undefined), undefined)
})

test("gRPC: statuses from physarum's HTTP statuses, grpc-message percent-encoded as the spec says", () => {
  assert.equal(grpcStatusOf(404), 5)
  assert.equal(grpcStatusOf(503), 14)
  assert.equal(grpcStatusOf(502), 14)
  assert.equal(grpcStatusOf(504), 4)
  assert.equal(grpcStatusOf(501), 12)
  assert.equal(grpcStatusOf(400), 13)
  assert.equal(grpcMessage('UNKNOWN_APP: no app x'), 'UNKNOWN_APP: no app x', 'printable ASCII as it is')
  assert.equal(grpcMessage('100% ü\n'), '100%25 %C3%BC%0A')
  assert.equal(decodeURIComponent(grpcMessage('100% ü\n')), '100% ü\n')
  assert.equal(isGrpc({ 'content-type': 'application/grpc+proto' }), true)
  assert.equal(isGrpc({ 'content-type': 'application/json' }), false)
})

test('outgoingHeaders: pseudo-headers rebuilt, connection-specific ones dropped, te: trailers kept', () => {
  const h = outgoingHeaders('POST', '/pkg.S/M', 'echo', {
    ':path': '/ignored',
    ':method': 'GET',
    host: 'x',
    connection: 'keep-alive, x-hop',
    'x-hop': '1',
    'keep-alive': 'timeout=5',
    te: 'trailers',
    'grpc-timeout': '300m',
    'x-trace': 'abc'
  })
  assert.deepEqual(h, {
    ':method': 'POST',
    ':path': '/pkg.S/M',
    ':authority': 'echo',
    ':scheme': 'http',
    te: 'trailers',
    'grpc-timeout': '300m',
    'x-trace': 'abc'
  })
  assert.deepEqual(endToEnd({ ':status': '200', 'x-a': '1' }), { 'x-a': '1' }, 'pseudo-headers are no headers')
})

test('the node:http path: declared trailers or Expect: 100-continue; a response relays trailers it declares', () => {
  assert.equal(needsExact({ trailer: 'x-digest' }), true)
  assert.equal(needsExact({ expect: '100-Continue' }), true)
  assert.equal(needsExact({ 'transfer-encoding': 'chunked' }), false, 'a chunked body alone stays on the pool')
  assert.equal(needsExact({}), false)
  assert.equal(declaresTrailers({ trailer: 'x-sum' }), true)
  assert.equal(declaresTrailers({ trailer: 'x-sum', 'content-length': '3' }), false, 'no trailers without chunks')
  assert.equal(declaresTrailers({}), false)
})
