/**
 * Refuses data directories that lose data or lock badly: tmpfs and ramfs (gone
 * on reboot), overlay (a container layer, gone with the container) and network
 * filesystems (SQLite's locking is unreliable over them).
 */
import fs from 'node:fs';
import path from 'node:path';

const UNSAFE: Record<string, string> = {
  tmpfs: 'is in memory (tmpfs) and is emptied on every reboot',
  ramfs: 'is in memory (ramfs) and is emptied on every reboot',
  overlay: 'is a container layer (overlay) and disappears with the container; mount a volume',
  aufs: 'is a container layer (aufs) and disappears with the container; mount a volume',
  nfs: 'is a network filesystem (NFS), where SQLite locking is unreliable',
  nfs4: 'is a network filesystem (NFS), where SQLite locking is unreliable',
  cifs: 'is a network filesystem (SMB/CIFS), where SQLite locking is unreliable',
  smb3: 'is a network filesystem (SMB), where SQLite locking is unreliable',
  'fuse.sshfs': 'is a network filesystem (sshfs), where SQLite locking is unreliable',
  '9p': 'is a shared host filesystem (9p), where SQLite locking is unreliable',
  glusterfs: 'is a network filesystem (GlusterFS), where SQLite locking is unreliable',
  ceph: 'is a network filesystem (CephFS), where SQLite locking is unreliable',
};

export interface MountInfo {
  mountPoint: string;
  fsType: string;
}

/** The mount that holds `dir`, read from /proc/self/mountinfo (undefined where that is unavailable). */
export function mountOf(dir: string, mountinfo?: string): MountInfo | undefined {
  let text = mountinfo;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    } catch {
      return undefined;
    }
  }
  let real = dir;
  try {
    real = fs.realpathSync(dir);
  } catch {
    // not created yet: judge by the path itself
  }
  let best: MountInfo | undefined;
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 0 || fields.length < sep + 2) continue;
    const mountPoint = (fields[4] ?? '').replace(/\\040/g, ' ');
    const fsType = fields[sep + 1] ?? '';
    const inside = real === mountPoint || real.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`);
    if (inside && (!best || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, fsType };
  }
  return best;
}

/** Returns why `dir` is unsafe for the databases, or null when it is fine. */
export function unsafeStorageReason(dir: string, mountinfo?: string): string | null {
  const mount = mountOf(path.resolve(dir), mountinfo);
  if (!mount) return null;
  const why = UNSAFE[mount.fsType] ?? (mount.fsType.startsWith('nfs') ? UNSAFE.nfs : undefined);
  return why ? `the data directory ${dir} (mounted at ${mount.mountPoint}) ${why}` : null;
}

/**
 * Free bytes for mail in the data directory, re-read at most once a second: the
 * filesystem's free space plus the free pages inside the databases (`reusable`),
 * which new entries fill before the files grow. So space freed by deleting a
 * feed counts at once, before maintenance has returned it to the filesystem.
 */
export class DiskSpace {
  #checkedAt = 0;
  #free = Number.POSITIVE_INFINITY;
  constructor(private readonly dir: string, private readonly minFree: number, private readonly reusable: () => number = () => 0) {}

  freeBytes(): number {
    const now = Date.now();
    if (now - this.#checkedAt >= 1000) {
      this.#checkedAt = now;
      try {
        const s = fs.statfsSync(this.dir);
        this.#free = s.bavail * s.bsize + this.reusable();
      } catch {
        this.#free = Number.POSITIVE_INFINITY;
      }
    }
    return this.#free;
  }

  /** With a minimum of 0 this still says no when the disk is completely full. */
  hasSpace(): boolean {
    return this.freeBytes() > this.minFree;
  }
}
