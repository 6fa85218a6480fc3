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

/** What the mail path asks of the disk before it writes. */
export interface SpaceGuard {
  /** True while `bytes` more can be written without going below the minimum. */
  hasSpace(bytes?: number): boolean;
  /**
   * Sets `bytes` aside for a write about to happen, so that writes running at the same
   * time cannot together go past the minimum; null when they do not fit. Call the
   * returned function once the write is on disk (or failed).
   */
  reserve(bytes: number): (() => void) | null;
}

/**
 * On PostgreSQL the databases live on the server's disks, not in the data directory: there
 * is no local free space to guard. A full disk there comes back as its disk_full error
 * (53100, see isDiskFull), and mail is then deferred with 452 as on SQLITE_FULL.
 */
export function spaceGuardFor(dialect: 'sqlite' | 'postgres', dir: string, minFree: number): DiskSpace {
  return dialect === 'postgres' ? new DatabaseServerSpace(dir, minFree) : new DiskSpace(dir, minFree);
}

/**
 * Free bytes for mail in the data directory: the filesystem's free space, read on every
 * check (a statfs call is cheap; a reading cached for a second let a burst of messages
 * go far past the minimum), less what writes in progress have set aside.
 */
export class DiskSpace implements SpaceGuard {
  #reserved = 0;
  constructor(private readonly dir: string, private readonly minFree: number) {}

  freeBytes(): number {
    try {
      const s = fs.statfsSync(this.dir);
      return s.bavail * s.bsize;
    } catch {
      // Free space that cannot be read is unknown, not zero: refusing all mail on a guess
      // would be worse than the SQLITE_FULL handling that still catches a really full disk.
      return Number.POSITIVE_INFINITY;
    }
  }

  /** With a minimum of 0 this still says no when the disk is completely full. */
  hasSpace(bytes = 0): boolean {
    return this.freeBytes() - this.#reserved - bytes > this.minFree;
  }

  reserve(bytes: number): (() => void) | null {
    if (!this.hasSpace(bytes)) return null;
    this.#reserved += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#reserved -= bytes;
    };
  }
}

/** The space guard on PostgreSQL (see spaceGuardFor): never short of local space. */
class DatabaseServerSpace extends DiskSpace {
  override freeBytes(): number {
    return Number.POSITIVE_INFINITY;
  }
}
