import { dirname, resolve } from "node:path"

/** Who a process runs as, for permission checks. */
export interface Account {
  readonly uid: number
  readonly gids: ReadonlyArray<number>
}

/** What a permission check needs of a folder. */
export interface FolderStat {
  readonly mode: number
  readonly uid: number
  readonly gid: number
}

/** The folder itself and every folder above it, outermost first: `/`, `/root`, `/root/ingest-mesh`. */
export const foldersDownTo = (folder: string): ReadonlyArray<string> => {
  const chain: Array<string> = []
  for (let current = resolve(folder); ; current = dirname(current)) {
    chain.unshift(current)
    if (dirname(current) === current) return chain
  }
}

/** Whether `account` may enter (search) a folder with `stat`: the owner, group or other execute bit that applies to it. */
export const mayEnter = (account: Account, stat: FolderStat): boolean => {
  if (account.uid === 0) return true
  if (stat.uid === account.uid) return (stat.mode & 0o100) !== 0
  if (account.gids.includes(stat.gid)) return (stat.mode & 0o010) !== 0
  return (stat.mode & 0o001) !== 0
}

/**
 * The outermost folder on the way to `folder` that `account` may not enter, or undefined when it
 * can reach `folder`. Postgres runs as an unprivileged account when we are root, and a checkout in
 * root's home (0700 on Debian) is closed to it.
 */
export const blockingFolder = (folder: string, account: Account, statOf: (path: string) => FolderStat | undefined): string | undefined =>
  foldersDownTo(folder).find((path) => {
    const stat = statOf(path)
    return stat !== undefined && !mayEnter(account, stat)
  })
