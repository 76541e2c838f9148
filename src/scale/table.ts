// This agent's copy of the cluster's scale records: set locally (physarum scale), merged
// from every member's announcement (last writer wins), announced in its own; an allocator
// keeps it in its state directory, so that a restart (of one, or of all) keeps the setting.
import { EventEmitter } from 'node:events'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { ajv } from '../util/ajv.js'
import { newer, scaleTableSchema, type ScaleRecord } from './protocol.js'

const validTable = ajv.compile<Record<string, ScaleRecord>>(scaleTableSchema)

export class ScaleTable extends EventEmitter<{ change: [app: string, record: ScaleRecord] }> {
  private readonly records = new Map<string, ScaleRecord>()

  /** `file`: where the table is kept across restarts (none: memory only). */
  constructor(private readonly init: { self: string; file?: string }) {
    super()
    if (init.file === undefined) return
    try {
      const v: unknown = JSON.parse(readFileSync(init.file, 'utf8'))
      if (validTable(v)) for (const [app, r] of Object.entries(v)) this.records.set(app, r)
    } catch {
      // No file yet (first start), or an unreadable one: the cluster's announcements fill it in.
    }
  }

  get(app: string): ScaleRecord | undefined {
    return this.records.get(app)
  }

  all(): Record<string, ScaleRecord> {
    return Object.fromEntries(this.records)
  }

  /** A new setting made here: a version above the one it replaces, and above any clock skew's. */
  set(app: string, min: number, max?: number): ScaleRecord {
    const old = this.records.get(app)
    const r: ScaleRecord = {
      min,
      ...(max !== undefined ? { max } : {}),
      version: Math.max(Date.now(), (old?.version ?? 0) + 1),
      by: this.init.self
    }
    this.accept(app, r)
    return r
  }

  /** Records heard from a member: each replaces ours when newer. */
  merge(table: Record<string, ScaleRecord> | undefined): void {
    if (table === undefined) return
    for (const [app, r] of Object.entries(table)) if (newer(r, this.records.get(app))) this.accept(app, r)
  }

  private accept(app: string, r: ScaleRecord): void {
    this.records.set(app, r)
    this.save()
    this.emit('change', app, r)
  }

  private save(): void {
    if (this.init.file === undefined) return
    try {
      const tmp = `${this.init.file}.tmp`
      writeFileSync(tmp, JSON.stringify(this.all()) + '\n', { mode: 0o600 })
      renameSync(tmp, this.init.file)
    } catch {
      // Best effort: the setting still holds in memory and in the cluster's announcements.
    }
  }
}
