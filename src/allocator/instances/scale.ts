// The allocator's share of an app's cluster-wide scale (physarum scale), pure: how many
// instances this allocator starts to bring the cluster up to its minimum, whether one may
// be culled without going below it, whether one may start without going above the maximum.
// Every allocator decides alone from the same announced counts, so the deficit is dealt out
// the same way everywhere: one at a time to the allocator with the fewest, ties by peer ID.

/** An allocator that may run the app, with its instances of it (starting or ready). */
export interface Holder {
  peer: string
  count: number
}

export interface ScaleTarget {
  min: number
  max?: number
}

/** Instances this allocator (`self`, among `holders`) starts now; `total` counts every host's, registered ones too. */
export function toStart(target: ScaleTarget, holders: Holder[], self: string, total: number): number {
  let deficit = target.min - total
  if (target.max !== undefined) deficit = Math.min(deficit, target.max - total)
  if (deficit <= 0 || !holders.some(h => h.peer === self)) return 0
  const counts = holders.map(h => ({ ...h })).sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
  let mine = 0
  for (; deficit > 0; deficit--) {
    let pick = counts[0]
    for (const h of counts) if (h.count < pick.count) pick = h
    pick.count++
    if (pick.peer === self) mine++
  }
  return mine
}

/** Whether an idle instance may go: the cluster stays at or above its minimum. */
export function mayCull(target: ScaleTarget | undefined, total: number): boolean {
  return target === undefined || total - 1 >= target.min
}

/** Whether an instance goes even before its idle time: the cluster is above its maximum. */
export function overMax(target: ScaleTarget | undefined, total: number): boolean {
  return target?.max !== undefined && total > target.max
}

/** Why one more instance may not start (the cluster is at its maximum); undefined: it may. */
export function scaleRefusal(app: string, target: ScaleTarget | undefined, total: number): string | undefined {
  if (target?.max === undefined || total < target.max) return undefined
  return `${app} is at its cluster maximum of ${target.max} instance(s) (physarum scale)`
}
