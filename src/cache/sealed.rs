//! Sealed memory files for memory-tier bodies, so that a memory hit goes out with `sendfile(2)` like a
//! static file from the page cache, while the rest of the code keeps seeing an ordinary `Bytes`.
//!
//! A body is written once into a `memfd`, sealed against every change (write, grow, shrink, new seals)
//! and mapped read-only; the `Bytes` handed out borrows that mapping. The connection layer
//! ([`crate::http::conn`]) asks [`find`] whether a slice it is about to write lies in such a mapping and,
//! if it does, sends it from the file instead of copying it into the socket. The seals make the file's
//! pages immutable, and the kernel keeps its own reference to any page still queued in a socket, so a
//! body evicted while its bytes are in flight is never changed under them.
//!
//! Each sealed body holds one file descriptor. At most a quarter of the process's descriptor limit is
//! used this way; past that, or when a call fails, the body simply stays on the heap.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};

/// Start address of each live mapping → (length, descriptor).
static REGIONS: RwLock<BTreeMap<usize, (usize, RawFd)>> = RwLock::new(BTreeMap::new());
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// A sealed, read-only mapped memfd: the owner of a sealed `Bytes`.
struct Region {
    fd: OwnedFd,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and its file is sealed against writes, so the bytes behind `ptr` never
// change while the `Region` lives; sharing and moving it between threads is as safe as for a `&'static [u8]`.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl AsRef<[u8]> for Region {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` is a live PROT_READ mapping of exactly `len` bytes until `drop` unmaps it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // unregistered before unmapping, so `find` never returns a descriptor whose mapping is gone
        REGIONS.write().unwrap_or_else(PoisonError::into_inner).remove(&(self.ptr as usize));
        LIVE.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `ptr`/`len` came from a successful mmap and no `Bytes` borrowing it is left.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

/// How many sealed bodies may exist at once: a quarter of the descriptor limit, at most 65 536.
fn capacity() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit only writes the struct it is given.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
        if ok {
            (lim.rlim_cur / 4).min(65_536) as usize
        } else {
            0
        }
    })
}

/// Sealed bodies alive now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// A sealed copy of `body`, or `None` when it is shorter than `min_bytes` (0 turns sealing off), when the
/// descriptor budget is used up, or when the kernel refuses (no memfd, out of memory).
pub fn seal(body: &[u8], min_bytes: usize) -> Option<Bytes> {
    if min_bytes == 0 || body.len() < min_bytes || live() >= capacity() {
        return None;
    }
    match seal_file(body) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::debug!(error = %e, "body not sealed; it stays on the heap");
            None
        }
    }
}

fn seal_file(body: &[u8]) -> std::io::Result<Bytes> {
    let err = std::io::Error::last_os_error;
    // SAFETY: a NUL-terminated name and flags; the result is checked.
    let raw = unsafe { libc::memfd_create(c"imgedge-body".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(err());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
    file.write_all(body)?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(err());
    }
    // SAFETY: a read-only shared mapping of the whole (now immutable) file; the result is checked.
    let ptr =
        unsafe { libc::mmap(std::ptr::null_mut(), body.len(), libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
    if ptr == libc::MAP_FAILED {
        return Err(err());
    }
    let fd = OwnedFd::from(file);
    let region = Region { ptr: ptr as *const u8, len: body.len(), fd };
    LIVE.fetch_add(1, Ordering::Relaxed);
    REGIONS.write().unwrap_or_else(PoisonError::into_inner).insert(ptr as usize, (region.len, region.fd.as_raw_fd()));
    Ok(Bytes::from_owner(region))
}

/// The file and offset holding `slice`, when all of it lies in one sealed body.
///
/// The descriptor is only valid while the caller holds the `Bytes` that `slice` borrows from (the owner
/// of the slice keeps its region, and so its registration, alive).
pub fn find(slice: &[u8]) -> Option<(RawFd, u64)> {
    if slice.is_empty() || live() == 0 {
        return None;
    }
    let addr = slice.as_ptr() as usize;
    let regions = REGIONS.read().unwrap_or_else(PoisonError::into_inner);
    let (&start, &(len, fd)) = regions.range(..=addr).next_back()?;
    (addr + slice.len() <= start + len).then_some((fd, (addr - start) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn sealed_bytes_equal_the_body_and_are_found_with_their_offset() {
        let src = body(100_000);
        let sealed = seal(&src, 1).expect("memfd available");
        assert_eq!(&sealed[..], &src[..]);
        let (fd, off) = find(&sealed).expect("registered");
        assert_eq!(off, 0);
        let part = sealed.slice(4096..9000);
        assert_eq!(find(&part), Some((fd, 4096)));
        // the file behind it holds the same bytes at that offset
        let mut buf = vec![0u8; part.len()];
        // SAFETY: pread into a buffer of the stated length on a descriptor kept alive by `sealed`.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 4096) };
        assert_eq!(n as usize, part.len());
        assert_eq!(buf, &src[4096..9000]);
    }

    #[test]
    fn the_file_refuses_every_change() {
        let sealed = seal(&body(20_000), 1).expect("memfd available");
        let (fd, _) = find(&sealed).unwrap();
        // SAFETY: fcntl/write/ftruncate on a live descriptor; each is expected to fail.
        unsafe {
            let seals = libc::fcntl(fd, libc::F_GET_SEALS);
            assert_eq!(seals & libc::F_SEAL_WRITE, libc::F_SEAL_WRITE);
            assert_eq!(seals & libc::F_SEAL_SEAL, libc::F_SEAL_SEAL);
            assert!(libc::pwrite(fd, b"x".as_ptr().cast(), 1, 0) < 0);
            assert!(libc::ftruncate(fd, 1) < 0);
            assert!(libc::ftruncate(fd, 1 << 20) < 0);
        }
        assert_eq!(sealed[0], body(1)[0]);
    }

    #[test]
    fn heap_slices_short_bodies_and_the_off_switch_are_not_sealed() {
        let heap = Bytes::from(body(50_000));
        assert_eq!(find(&heap), None);
        assert!(seal(&body(100), 16 << 10).is_none());
        assert!(seal(&body(100_000), 0).is_none());
    }

    #[test]
    fn a_dropped_body_is_unregistered() {
        // a length no other test uses, so a region another test maps at the same address cannot match
        let sealed = seal(&body(30_011), 1).expect("memfd available");
        let (addr, (fd, _)) = (sealed.as_ptr() as usize, find(&sealed).unwrap());
        let clone = sealed.clone();
        drop(sealed);
        assert!(find(&clone).is_some(), "a clone keeps the region");
        drop(clone);
        let regions = REGIONS.read().unwrap();
        assert_ne!(regions.get(&addr), Some(&(30_011, fd)));
    }
}
