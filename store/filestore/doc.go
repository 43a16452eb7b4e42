// Package filestore provides a storage backend on a local or NFS-mounted
// directory.
//
// [Open] returns a *store.Bucket rooted at a directory; [URLOpener] opens
// "file://" URLs for a store.URLMux. The key "a/b/c" is the file
// <dir>/a/b/c. Writes create missing parent directories; deletes leave
// empty directories behind. The package needs Linux (it uses openat2(2) or
// openat(2), flock(2), link(2) and O_TMPFILE, each with a fallback where a
// file system lacks it).
//
// # Paths, symbolic links and non-objects
//
// Every key is resolved beneath the root without following any symbolic
// link (openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or a walk of
// openat with O_NOFOLLOW on kernels without it), so a link planted inside
// the prefix can neither redirect a write outside it nor make one object
// another. Only regular files are objects. A key that names a directory, a
// symbolic link, a FIFO, a socket or a device — or whose path crosses a
// symbolic link — fails with store.ErrNotRegular for Read, Stat, Write,
// IfVersion writes and Delete (and store.ErrPrecondition for IfAbsent:
// something exists), never with store.ErrNotExist: a control file in that
// state is corrupt, not absent. Reads open files with O_NONBLOCK, so a FIFO
// never blocks them, and store.Bucket.ReadLimit reads at most its limit
// plus one byte. List does not descend into symbolic links; it yields
// every entry that is not a directory, links, FIFOs and the like included,
// so that a control file in such a state is found (and reported corrupt
// when read) rather than silently missing. The root's own path is resolved normally: a prefix that
// is itself a symbolic link works.
//
// # Modes and sharing
//
// Directories are created with mode 0777 and objects with 0666, by every
// creation path (O_TMPFILE files and named temporaries alike), so the
// process umask, a directory's setgid bit and default ACLs decide the
// result, as for any Unix tool; nothing is chmodded afterwards. A team
// sharing a prefix uses a setgid group directory and umask 002 (or a
// default ACL). A write the file system refuses fails with a
// *PermissionError that names the directory or file that refused it, its
// owner, group and mode, and what to set.
//
// # Versions
//
// An object's version is derived from its content: the first 16 bytes of
// its SHA-256, in hex. Identical bytes therefore have identical versions, so
// a replace-if-version cannot tell "unchanged" from "changed and changed
// back" (the ABA problem). Cairn's lease records carry a unique holder and
// renewal time, so no two writes of one lease are identical. Because the
// version is the content's digest, Stat reads the whole object.
//
// # Atomicity
//
// Every write first writes the full content to a temporary file in the
// target's directory, named with the reserved prefix ".cairn-tmp-", and then
// commits it with one atomic directory operation. Readers therefore see the
// old or the new content, never a mix, and a crash leaves at most a stray
// temporary file (which List skips), never a torn object. Keys with a path
// segment starting with ".cairn-tmp-" are rejected.
//
//   - Create-if-absent links the temporary file to the target name with
//     link(2), which fails with EEXIST if anything exists there. The kernel
//     (or the NFS server) performs the check and the creation as one step, so
//     of any number of racing creators, in any number of processes, exactly
//     one succeeds. This is the property a stat-then-rename implementation
//     lacks: two writers can both see "absent" and both rename.
//
//   - Replace-if-version opens the existing target and takes an exclusive
//     flock(2) on that open file: the lock is on the object's own inode, and
//     there are no lock files. After the lock is granted it checks that the
//     inode is still the one at the path (same device and inode number, and
//     still linked); if not, the file was replaced while it waited, and it
//     starts over with the new file. It then reads the content through the
//     locked descriptor, compares its version with the condition, and renames
//     the temporary file over the target while still holding the lock.
//     Two racing replacers are serialised on the inode; the second one to get
//     the lock finds the inode replaced, retries on the new file, sees a
//     different version and fails with store.ErrPrecondition.
//
//   - An unconditional write takes the same lock on an existing target before
//     renaming over it, so it cannot slip in between a conditional writer's
//     comparison and its rename. If the target does not exist it is created
//     with link(2); if that finds the target created meanwhile, it starts
//     over with the lock.
//
//   - Deletes, conditional or not, take the same lock, compare if asked, and
//     remove the file while holding the lock.
//
// The argument holds between goroutines and between processes, because every
// writer follows the same protocol and the kernel arbitrates the lock and the
// directory operations. It does not hold against writers that modify files in
// place or ignore the lock.
//
// A write that waits for a lock is not interrupted by its context; locks are
// held only while the current content is read and the rename or removal is
// made. A writer that crashes leaves its temporary file behind; List skips
// it, nothing else reads it, and it may be removed by hand at any time.
//
// With [Options.Sync] the temporary file is fsynced before it is committed
// and the directory after (and, when a write creates directories, their
// parents). Without it, rename and link still give atomicity
// against process crashes, but after a power loss or kernel crash a recent
// write may be lost or, on some file systems, an object may be empty.
//
// # NFS
//
// The same protocol works on NFS, with these weakenings:
//
//   - Linux (since 2.6.12) emulates flock on NFS with whole-file POSIX locks
//     held through the server (NLM for NFSv3, the protocol itself for NFSv4),
//     so the lock excludes writers on other clients. The lock owner is the
//     open file, so separate opens in one process exclude each other too. A
//     mount with "nolock" or "local_lock=flock" or "local_lock=all" makes the
//     lock local to the client, and then replace-if-version is not atomic
//     across clients.
//   - link(2) and rename(2) are atomic on the server. A retransmitted LINK
//     whose first reply was lost reports EEXIST although it succeeded; create
//     detects this by checking whether the target is its own temporary file.
//   - Clients cache attributes and lookups, so a read may return content that
//     is slightly stale, though never torn. Taking a lock revalidates the
//     file's cached data, and the after-lock check also rejects an inode that
//     has been unlinked (replaced) on the server, so a stale lookup cannot
//     make a replacer commit against an old version.
//   - ESTALE (a file handle the server no longer knows) is retried inside a
//     write; returned to the caller it is classified as transient.
//   - While a locked file is being replaced or removed, the client may keep
//     it under a ".nfsXXXX" name until it is closed; List skips such names,
//     and keys of that form are rejected.
//
// # Marin
//
// Marin (Python) takes flock on its lock file itself and writes in place.
// Cairn and Marin reading each other's files is fine. Racing a Marin writer
// and a cairn writer on the same local lease is out of scope: their
// protocols differ, and a write in place can be read torn.
//
// # Errors
//
// Through a *store.Bucket, a missing key (or one whose path crosses a
// regular file) satisfies errors.Is(err, store.ErrNotExist); a key that
// is not a regular file store.ErrNotRegular; a limited read of a larger
// object store.ErrTooLarge; a failed condition store.ErrPrecondition;
// EACCES, EPERM (as a *PermissionError) and EROFS store.ErrPermission; EAGAIN, EINTR, ESTALE and ETIMEDOUT
// store.ErrTransient. The *fs.PathError or *os.LinkError underneath stays
// reachable with errors.As.
package filestore
