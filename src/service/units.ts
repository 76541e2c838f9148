// The systemd units of the allocator and of the proxy template, for a given executable. conf/*.service are these
// units for /usr/local/bin/physarum (a test keeps them equal), so that `physarum service install` writes what the
// repository documents.

/** How the unit runs physarum: the single executable, or node with bin/physarum (space-separated, unquoted). */
export interface UnitOptions {
  exec: string
  /**
   * The proxy's ProtectHome: `true` hides /home, /root and /run/user, which is right unless the executable lives there
   * (a development checkout): then `read-only`.
   */
  protectHome: 'true' | 'read-only'
}

export const ALLOCATOR_UNIT = 'physarum-allocator.service'
export const PROXY_TEMPLATE = 'physarum-proxy@.service'

export function allocatorUnit({ exec }: UnitOptions): string {
  return `# systemd unit of the physarum allocator (one per server).
#   install -m 0755 dist/physarum /usr/local/bin/physarum     (or a path to bin/physarum)
#   install -D -m 0600 conf.json /etc/physarum/conf.json       (from: physarum config init)
#   cp conf/physarum-allocator.service /etc/systemd/system/ && systemctl enable --now physarum-allocator
# or: physarum service install   (writes this unit for the executable it runs from, and enables it)
[Unit]
Description=physarum allocator (latency-aware service manager)
Documentation=https://github.com/physarum/physarum#readme
After=network-online.target docker.service
Wants=network-online.target

[Service]
Type=simple
ExecStart=${exec} allocator --configfile /etc/physarum/conf.json --keyfile /var/lib/physarum/allocator.key --log-format json
# SIGHUP re-reads the config file (catalog, latency requirements, limits, log level); an invalid one is refused.
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM drains: refuse new allocations, announce leaving, let in-flight requests
# finish (Allocator.DrainTimeoutS, 30 s by default), stop the instances. The stop
# timeout covers the drain plus the instances' own stop grace.
KillSignal=SIGTERM
TimeoutStopSec=60
KillMode=mixed
Restart=on-failure
RestartSec=2
StateDirectory=physarum
StateDirectoryMode=0700
# Hardening that keeps Docker access: the allocator talks to /var/run/docker.sock and,
# with the process runtime, starts the catalog's commands.
SupplementaryGroups=docker
NoNewPrivileges=true
ProtectSystem=full
ProtectHome=read-only
PrivateTmp=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
RestrictSUIDSGID=true
LockPersonality=true
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`
}

export function proxyUnit({ exec, protectHome }: UnitOptions): string {
  return `# systemd template unit of a physarum proxy: one instance per HTTP port.
#   systemctl enable --now physarum-proxy@1234          (client mode, 127.0.0.1:1234)
# or: physarum service install proxy --port 1234
# Server mode (announce a user-run app instance) with a drop-in, e.g.
#   systemctl edit physarum-proxy@1235  →  [Service]
#                                           Environment=PHYSARUM_PROXY_ARGS="--app thumbnails --address 127.0.0.1:8000"
# Shares /etc/physarum/conf.json with the allocator; its identity is per port and its
# admin API on 127.0.0.1:<port + 6000> so that several proxies share a host.
[Unit]
Description=physarum proxy on port %i (latency-aware HTTP entrypoint)
Documentation=https://github.com/physarum/physarum#readme
After=network-online.target physarum-allocator.service
Wants=network-online.target

[Service]
Type=simple
Environment=PHYSARUM_PROXY_ARGS=
ExecStart=/bin/sh -c 'exec ${exec} proxy --port %i --admin 127.0.0.1:$((%i + 6000)) --configfile /etc/physarum/conf.json --keyfile /var/lib/physarum/proxy-%i.key --log-format json $PHYSARUM_PROXY_ARGS'
# SIGHUP re-reads the config file (catalog, latency requirements, limits, log level); an invalid one is refused.
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM drains: stop accepting, let in-flight requests finish, announce leaving.
KillSignal=SIGTERM
TimeoutStopSec=75
KillMode=mixed
Restart=on-failure
RestartSec=2
StateDirectory=physarum
StateDirectoryMode=0700
NoNewPrivileges=true
ProtectSystem=strict
ReadWritePaths=/var/lib/physarum
ProtectHome=${protectHome}
PrivateTmp=true
PrivateDevices=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
RestrictSUIDSGID=true
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
LockPersonality=true
# No MemoryDenyWriteExecute: V8 JIT-compiles into writable, executable memory.
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`
}
