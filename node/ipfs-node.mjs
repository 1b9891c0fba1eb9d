// An offline js-ipfs node that serves Kubo's RPC API on 127.0.0.1 only.
//
// Usage: node --import ./polyfills.mjs ipfs-node.mjs <repo-dir> <api-port>
// Prints one JSON line {"ready": true, "api": "...", "peerId": "..."} on stdout once the API
// listens, then runs until SIGTERM/SIGINT, when it stops cleanly so the repo stays consistent.
//
// The node must never dial out: no bootstrap peers, no delegates, no preload, no relay, no
// MDNS, no DHT/routing, no pubsub, no NAT port mapping, and no swarm listeners at all (the RPC
// API does not need them).
import { create } from 'ipfs-core'
import { HttpApi } from 'ipfs-http-server'

const [repoDir, apiPort] = process.argv.slice(2)
if (!repoDir || !apiPort || !/^[0-9]+$/.test(apiPort)) {
  process.stderr.write('usage: ipfs-node.mjs <repo-dir> <api-port>\n')
  process.exit(2)
}

const offlineConfig = {
  Addresses: {
    Swarm: [],
    Announce: [],
    NoAnnounce: [],
    API: `/ip4/127.0.0.1/tcp/${apiPort}`,
    Gateway: '',
    RPC: '',
    Delegates: []
  },
  Bootstrap: [],
  Discovery: { MDNS: { Enabled: false }, webRTCStar: { Enabled: false } },
  Routing: { Type: 'none' },
  Swarm: { DisableNatPortMap: true, RelayClient: { Enabled: false }, RelayService: { Enabled: false } },
  Pubsub: { Enabled: false }
}

let node
let api
let stopping = false

async function stop (code) {
  if (stopping) return
  stopping = true
  try {
    if (api) await api.stop()
    if (node) await node.stop()
  } catch (err) {
    process.stderr.write(`ipfs-node: error while stopping: ${err?.stack || err}\n`)
    code = code || 1
  }
  process.exitCode = code
  // Stray libp2p timers may keep the loop alive after a clean stop.
  setTimeout(() => process.exit(code), 200).unref()
}

process.on('SIGTERM', () => stop(0))
process.on('SIGINT', () => stop(0))

try {
  node = await create({
    repo: repoDir,
    offline: true,
    start: true,
    silent: true,
    preload: { enabled: false },
    relay: { enabled: false, hop: { enabled: false } },
    config: offlineConfig,
    EXPERIMENTAL: { ipnsPubsub: false }
  })
  // create() keeps an existing repo's config: re-apply the offline settings on every start.
  for (const [key, value] of Object.entries(offlineConfig)) {
    await node.config.set(key, value)
  }
  api = new HttpApi(node)
  await api.start()
  const id = await node.id()
  process.stdout.write(JSON.stringify({ ready: true, api: `/ip4/127.0.0.1/tcp/${apiPort}`, peerId: id.id.toString() }) + '\n')
} catch (err) {
  process.stderr.write(`ipfs-node: failed to start: ${err?.stack || err}\n`)
  await stop(1)
}
