// Where systemd keeps what `physarum service` writes, and how long it waits for systemctl.

/** Exists exactly when systemd is the running init (sd_booted(3)): no service can be installed without it. */
export const SYSTEMD_RUNNING = '/run/systemd/system'

/** The administrator's unit directory, relative to the root (/ or --root). */
export const UNIT_DIR = 'etc/systemd/system'

/** Where `systemctl enable` links a unit whose [Install] says WantedBy=multi-user.target (relative to UNIT_DIR). */
export const WANTS = 'multi-user.target.wants'

/** A systemctl call, a start included (`enable --now` waits for the start job), takes at most this long (ms). */
export const SYSTEMCTL_TIMEOUT_MS = 30000
