#!/usr/bin/env node
'use strict'

/*
 * peer.js: a command-line libutp peer for the uTP interop tests.
 *
 * libutp is reached through the npm package utp-native (2.5.3), which ships
 * a prebuilt linux-x64 binding; nothing here depends on anything else but
 * node built-ins.
 *
 * Modes (see README.md for every option):
 *
 *   node peer.js server --port P [--host 127.0.0.1] [--streams N]
 *        [--recv-buffer BYTES] [--send-buffer BYTES] [--reply BYTES]
 *        [--reply-seed S] [--timeout MS]
 *   node peer.js client --port P [--host 127.0.0.1] --bytes N [--streams K]
 *        [--seed S] [--file PATH] [--recv-buffer BYTES] [--send-buffer BYTES]
 *        [--expect-reply [BYTES]] [--separate-sockets] [--timeout MS]
 *   node peer.js vectors      (checks the data generator's test vectors)
 *
 * Output: one JSON object per line on stdout; errors go to stderr and make
 * the process exit with status 1.
 *
 * Deterministic data (the Rust tests produce the same bytes):
 *
 *   splitmix64(x):                       all arithmetic wrapping mod 2^64
 *     z = x + 0x9E3779B97F4A7C15
 *     z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *     z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *     return z ^ (z >> 31)
 *
 *   Byte i of the data stream with seed S (S taken mod 2^32) is
 *     (splitmix64((S << 32) + floor(i / 8)) >> (8 * (i % 8))) & 0xFF
 *   i.e. the stream is the little-endian bytes of splitmix64(S<<32 | 0),
 *   splitmix64(S<<32 | 1), ...
 *
 *   Test vectors: seed 0 starts afcd1d7b39a820e2c15c0289ec2d0a91,
 *   seed 7 starts 51598a438046dabc40a3c3253caa3e1a, and the sha256 of the
 *   first 1 MiB of seed 1 is
 *   29bf07d088ae967eeb585551e06681b4546ffe864fa3f4d9b73a25a1a69a8362.
 *
 *   The client's stream i sends the data of seed S + i (S = --seed, default
 *   0). The server's reply on the k-th accepted connection (k from 0) is the
 *   data of seed R + k (R = --reply-seed, default 1000000).
 */

const crypto = require('crypto')
const fs = require('fs')
const utp = require('utp-native')

const DEFAULT_TIMEOUT_MS = 120000
const DEFAULT_REPLY_SEED = 1000000
const WRITE_CHUNK = 64 * 1024

// ---------------------------------------------------------------------------
// Data generator: splitmix64 with 64-bit values held as two uint32 halves, so
// that no BigInt is needed (BigInt runs at ~15 MB/s, this at 400+ MB/s).

const TWO32 = 4294967296
const G_HI = 0x9E3779B9
const G_LO = 0x7F4A7C15
const M1_HI = 0xBF58476D
const M1_LO = 0x1CE4E5B9
const M2_HI = 0x94D049BB
const M2_LO = 0x133111EB
const M1_L0 = M1_LO & 0xffff
const M1_L1 = M1_LO >>> 16
const M2_L0 = M2_LO & 0xffff
const M2_L1 = M2_LO >>> 16

// Writes the words firstWord .. firstWord + nwords - 1 of the stream with
// the given seed into u32 (two uint32 per word, low half first; the host is
// assumed little-endian, as linux-x64 is). firstWord must be < 2^53.
//
// 64-bit products are built from 16x16-bit partial products (exact in
// doubles) for the low 32x32 part and Math.imul for the cross terms, which
// only contribute to the high half. No Math.floor or % in the loop: this is
// what makes it run at ~400-500 MB/s.
function fillWords (seed, firstWord, u32, nwords) {
  // x = (seed << 32) + k, as (khi, klo)
  let klo = firstWord % TWO32
  let khi = (seed + Math.floor(firstWord / TWO32)) >>> 0
  let o = 0
  for (let w = 0; w < nwords; w++) {
    // z = x + golden gamma
    let lo = klo + G_LO
    let hi = khi + G_HI
    if (lo >= TWO32) {
      lo -= TWO32
      hi += 1
    }
    hi = hi >>> 0
    if (++klo === TWO32) {
      klo = 0
      khi = (khi + 1) >>> 0
    }
    // z ^= z >> 30
    lo = (lo ^ ((lo >>> 30) | (hi << 2))) >>> 0
    hi = (hi ^ (hi >>> 30)) >>> 0
    // z *= M1 (low 64 bits of the product)
    {
      const a0 = lo & 0xffff
      const a1 = lo >>> 16
      const p01 = a0 * M1_L1
      const p10 = a1 * M1_L0
      const u = a0 * M1_L0 + (p01 & 0xffff) * 65536 + (p10 & 0xffff) * 65536
      const h = a1 * M1_L1 + (p01 >>> 16) + (p10 >>> 16) + ((u / TWO32) | 0) +
        Math.imul(hi, M1_LO) + Math.imul(lo, M1_HI)
      lo = u >>> 0
      hi = h >>> 0
    }
    // z ^= z >> 27
    lo = (lo ^ ((lo >>> 27) | (hi << 5))) >>> 0
    hi = (hi ^ (hi >>> 27)) >>> 0
    // z *= M2
    {
      const a0 = lo & 0xffff
      const a1 = lo >>> 16
      const p01 = a0 * M2_L1
      const p10 = a1 * M2_L0
      const u = a0 * M2_L0 + (p01 & 0xffff) * 65536 + (p10 & 0xffff) * 65536
      const h = a1 * M2_L1 + (p01 >>> 16) + (p10 >>> 16) + ((u / TWO32) | 0) +
        Math.imul(hi, M2_LO) + Math.imul(lo, M2_HI)
      lo = u >>> 0
      hi = h >>> 0
    }
    // z ^= z >> 31
    u32[o++] = lo ^ ((lo >>> 31) | (hi << 1))
    u32[o++] = hi ^ (hi >>> 31)
  }
}

// Returns a new Buffer with bytes offset .. offset + len - 1 of the stream.
function generate (seed, offset, len) {
  const firstWord = Math.floor(offset / 8)
  const skip = offset - firstWord * 8
  const nwords = Math.ceil((skip + len) / 8)
  const ab = new ArrayBuffer(nwords * 8)
  fillWords(seed, firstWord, new Uint32Array(ab), nwords)
  return Buffer.from(ab, skip, len)
}

// A source of bytes to send: either the generator or a file's contents.
function generatorSource (seed, total) {
  let offset = 0
  return {
    total,
    next (max) {
      const n = Math.min(max, total - offset)
      if (n <= 0) return null
      const buf = generate(seed, offset, n)
      offset += n
      return buf
    }
  }
}

function bufferSource (data) {
  let offset = 0
  return {
    total: data.length,
    next (max) {
      const n = Math.min(max, data.length - offset)
      if (n <= 0) return null
      const buf = data.subarray(offset, offset + n)
      offset += n
      return buf
    }
  }
}

// ---------------------------------------------------------------------------
// Helpers

function parseArgs (argv) {
  const opts = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) {
      opts._.push(a)
      continue
    }
    const key = a.slice(2)
    const next = argv[i + 1]
    if (next === undefined || next.startsWith('--')) {
      opts[key] = true
    } else {
      opts[key] = next
      i++
    }
  }
  return opts
}

function intOpt (opts, key, def) {
  const v = opts[key]
  if (v === undefined) return def
  if (v === true) die(`--${key} needs a value`)
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < 0) die(`--${key}: not a non-negative integer: ${v}`)
  return n
}

function die (msg) {
  process.stderr.write(`peer.js: ${msg}\n`)
  process.exit(1)
}

function emit (obj) {
  // stdout to a pipe or a file is synchronous on Linux, so nothing is lost
  // when the process exits right after.
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function nowMs () {
  return Number(process.hrtime.bigint()) / 1e6
}

function round (ms) {
  return Math.round(ms * 1000) / 1000
}

function mibPerSec (bytes, ms) {
  return ms > 0 ? Math.round((bytes / 1048576) / (ms / 1000) * 100) / 100 : null
}

function applyBuffers (sock, opts) {
  const recv = intOpt(opts, 'recv-buffer', 0)
  const send = intOpt(opts, 'send-buffer', 0)
  if (recv > 0) sock.setRecvBufferSize(recv)
  if (send > 0) sock.setSendBufferSize(send)
  // Linux reports twice the requested value (the kernel's bookkeeping), and
  // caps the request at net.core.rmem_max / wmem_max.
  return { recv_buffer: sock.getRecvBufferSize(), send_buffer: sock.getSendBufferSize() }
}

// Writes all of source to conn, respecting backpressure, hashing what is
// written; calls done(sentBytes, sha256hex) once everything has been handed
// to the connection. Does not end the stream.
function sendAll (conn, source, done) {
  const hash = crypto.createHash('sha256')
  let sent = 0
  function pump () {
    for (;;) {
      const chunk = source.next(WRITE_CHUNK)
      if (chunk === null) {
        done(sent, hash.digest('hex'))
        return
      }
      hash.update(chunk)
      sent += chunk.length
      if (!conn.write(chunk)) {
        conn.once('drain', pump)
        return
      }
    }
  }
  pump()
}

const EMPTY_SHA256 = crypto.createHash('sha256').digest('hex')

// ---------------------------------------------------------------------------
// Server

function runServer (opts) {
  const host = typeof opts.host === 'string' ? opts.host : '127.0.0.1'
  const port = intOpt(opts, 'port', null)
  if (port === null) die('server: --port is required (0 for any)')
  const streams = intOpt(opts, 'streams', 1)
  const reply = intOpt(opts, 'reply', 0)
  const replySeed = intOpt(opts, 'reply-seed', DEFAULT_REPLY_SEED)

  const server = utp.createServer({ allowHalfOpen: true })
  let accepted = 0
  let completed = 0
  let totalBytes = 0
  let totalSent = 0
  let firstAccept = null
  let lastDone = null

  server.on('error', (err) => die(`server error: ${err.message}`))

  server.on('connection', (conn) => {
    const index = accepted++
    const t0 = nowMs()
    if (firstAccept === null) firstAccept = t0
    const hash = crypto.createHash('sha256')
    let bytes = 0
    let gotEnd = false
    let recvMs = null
    let doneMs = null
    let sent = 0
    let sentSha = EMPTY_SHA256

    function finish () {
      doneMs = nowMs() - t0
      lastDone = nowMs()
      conn.end()
    }

    conn.on('error', (err) => die(`server stream ${index}: ${err.message}`))
    conn.on('data', (d) => {
      hash.update(d)
      bytes += d.length
    })
    conn.on('end', () => {
      gotEnd = true
      recvMs = nowMs() - t0
      // libutp's acceptor cannot send before the initiator's first DATA,
      // and utp-native holds the acceptor's writes until its first read.
      // Replying only after the peer's FIN sidesteps that, except when the
      // peer sent no data at all: libutp is connected after that FIN, but
      // utp-native (2.5.3, pinned) still waits for a read, so mark the
      // connection as connected by hand.
      if (reply > 0 && !conn._connected) conn._onconnect()
      if (reply > 0) {
        sendAll(conn, generatorSource(replySeed + index, reply), (n, sha) => {
          sent = n
          sentSha = sha
          finish()
        })
      } else {
        finish()
      }
    })
    // 'close' comes once libutp has destroyed the connection, i.e. our FIN
    // was acked (or it gave up). 'end' is emitted on a later tick than the
    // native EOF, so give it that tick before checking it came.
    conn.on('close', () => setImmediate(onclose))
    function onclose () {
      if (!gotEnd) die(`server stream ${index}: closed before the peer ended its stream`)
      if (doneMs === null) die(`server stream ${index}: closed before the reply was written`)
      totalBytes += bytes
      totalSent += sent
      emit({
        event: 'stream',
        index,
        remote: `${conn.remoteAddress}:${conn.remotePort}`,
        bytes,
        sha256: hash.digest('hex'),
        sent,
        sent_sha256: sentSha,
        ms: round(doneMs),
        mib_s: mibPerSec(bytes + sent, doneMs),
        recv_ms: round(recvMs),
        close_ms: round(nowMs() - t0)
      })
      if (++completed === streams) {
        const ms = lastDone - firstAccept
        emit({
          event: 'done',
          streams: completed,
          bytes: totalBytes,
          sent: totalSent,
          ms: round(ms),
          mib_s: mibPerSec(totalBytes + totalSent, ms)
        })
        server.close(() => process.exit(0))
        // all connections are closed already, but never hang on close
        setTimeout(() => process.exit(0), 2000).unref()
      }
    }
  })

  server.listen(port, host, () => {
    // the socket is bound (and so initialised) now: buffer sizes can be set
    const bufs = applyBuffers(server, opts)
    emit({ event: 'listening', port: server.address().port, host, ...bufs })
  })
}

// ---------------------------------------------------------------------------
// Client

function runClient (opts) {
  const host = typeof opts.host === 'string' ? opts.host : '127.0.0.1'
  const port = intOpt(opts, 'port', null)
  if (!port) die('client: --port is required')
  const streams = intOpt(opts, 'streams', 1)
  if (streams < 1) die('client: --streams must be >= 1')
  const seed = intOpt(opts, 'seed', 0)
  let fileData = null
  if (typeof opts.file === 'string') {
    fileData = fs.readFileSync(opts.file)
  } else if (opts.file !== undefined) {
    die('--file needs a path')
  }
  const bytes = fileData ? fileData.length : intOpt(opts, 'bytes', null)
  if (bytes === null) die('client: --bytes (or --file) is required')
  let expectReply = null // null: no check; true: at least one byte; n: exactly n bytes
  if (opts['expect-reply'] === true) expectReply = true
  else if (opts['expect-reply'] !== undefined) expectReply = intOpt(opts, 'expect-reply', 0)
  const separate = opts['separate-sockets'] === true

  const sockets = []
  let completed = 0
  let totalSent = 0
  let totalRecv = 0
  let tStart = null
  let lastDone = null

  function startStream (sock, index) {
    const t0 = nowMs()
    if (tStart === null) tStart = t0
    const conn = sock.connect(port, host)
    const hash = crypto.createHash('sha256')
    let recv = 0
    let sent = null
    let sentSha = null
    let connectMs = null
    let writtenMs = null
    let endMs = null

    let connected = false
    conn.on('connect', () => {
      connected = true
      connectMs = nowMs() - t0
    })
    conn.on('error', (err) => die(`client stream ${index}: ${err.message}`))
    conn.on('data', (d) => {
      hash.update(d)
      recv += d.length
    })
    conn.on('end', () => { endMs = nowMs() - t0 })
    // see the server's 'close' handler
    conn.on('close', () => setImmediate(onclose))
    function onclose () {
      if (endMs === null) die(`client stream ${index}: closed before the peer ended its stream`)
      if (sent === null) die(`client stream ${index}: closed before all data was written`)
      if (expectReply === true && recv === 0) die(`client stream ${index}: expected a reply, got none`)
      if (typeof expectReply === 'number' && recv !== expectReply) {
        die(`client stream ${index}: expected a reply of ${expectReply} bytes, got ${recv}`)
      }
      // the stream's data is complete once all was written and the peer's FIN came
      const ms = Math.max(writtenMs, endMs)
      if (lastDone === null || t0 + ms > lastDone) lastDone = t0 + ms
      totalSent += sent
      totalRecv += recv
      emit({
        event: 'stream',
        index,
        sent,
        sent_sha256: sentSha,
        bytes: recv,
        sha256: hash.digest('hex'),
        ms: round(ms),
        mib_s: mibPerSec(sent + recv, ms),
        connect_ms: connectMs === null ? null : round(connectMs),
        written_ms: round(writtenMs),
        end_ms: round(endMs),
        close_ms: round(nowMs() - t0)
      })
      if (++completed === streams) {
        const ms = lastDone - tStart
        emit({
          event: 'done',
          streams,
          sent: totalSent,
          bytes: totalRecv,
          ms: round(ms),
          mib_s: mibPerSec(totalSent + totalRecv, ms)
        })
        let open = sockets.length
        for (const s of sockets) s.close(() => { if (--open === 0) process.exit(0) })
        // all connections are closed already, but never hang on close
        setTimeout(() => process.exit(0), 2000).unref()
      }
    }

    const source = fileData ? bufferSource(fileData) : generatorSource(seed + index, bytes)
    sendAll(conn, source, (n, sha) => {
      sent = n
      sentSha = sha
      writtenMs = nowMs() - t0
      // libutp drops a shutdown issued before the connection is up (no FIN
      // is ever sent), which only happens with nothing to write: wait for it
      if (connected) conn.end()
      else conn.once('connect', () => conn.end())
    })
  }

  function newSocket (onready) {
    const sock = utp({ allowHalfOpen: true })
    sock.on('error', (err) => die(`client socket error: ${err.message}`))
    sockets.push(sock)
    // bind first: buffer sizes can only be set on an initialised socket
    sock.bind(0, () => onready(sock, applyBuffers(sock, opts)))
  }

  if (separate) {
    let ready = 0
    const socks = []
    for (let i = 0; i < streams; i++) {
      newSocket((sock, bufs) => {
        socks[i] = sock
        if (++ready < streams) return
        emit({ event: 'bound', ports: socks.map((s) => s.address().port), ...bufs })
        socks.forEach(startStream)
      })
    }
  } else {
    // One UDP socket carries all K connections; libutp tells them apart by
    // connection id.
    newSocket((sock, bufs) => {
      emit({ event: 'bound', port: sock.address().port, ...bufs })
      for (let i = 0; i < streams; i++) startStream(sock, i)
    })
  }
}

// ---------------------------------------------------------------------------

// The generator's test vectors (also in the header comment and README.md).
const VECTORS = {
  seed0_first16: 'afcd1d7b39a820e2c15c0289ec2d0a91',
  seed7_first16: '51598a438046dabc40a3c3253caa3e1a',
  seed1_first_mib_sha256: '29bf07d088ae967eeb585551e06681b4546ffe864fa3f4d9b73a25a1a69a8362'
}

function runVectors () {
  const got = {
    seed0_first16: generate(0, 0, 16).toString('hex'),
    seed7_first16: generate(7, 0, 16).toString('hex'),
    seed1_first_mib_sha256: crypto.createHash('sha256').update(generate(1, 0, 1048576)).digest('hex')
  }
  const ok = Object.keys(VECTORS).every((k) => got[k] === VECTORS[k])
  emit({ event: 'vectors', ok, ...got })
  process.exit(ok ? 0 : 1)
}

function main () {
  const opts = parseArgs(process.argv.slice(2))
  const mode = opts._[0]
  const timeout = intOpt(opts, 'timeout', DEFAULT_TIMEOUT_MS)
  if (mode === 'vectors') return runVectors()
  if (mode !== 'server' && mode !== 'client') {
    die('usage: node peer.js server|client --port P [options], or node peer.js vectors (see README.md)')
  }
  setTimeout(() => die(`${mode}: timed out after ${timeout} ms`), timeout)
  if (mode === 'server') runServer(opts)
  else runClient(opts)
}

if (require.main === module) main()

module.exports = { generate, fillWords }
