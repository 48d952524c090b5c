//! The connection the server runs on: a `TcpStream` whose writes send any slice of a sealed body (see
//! [`crate::cache::sealed`]) with `sendfile(2)` instead of copying it into the socket, as nginx does for a
//! static file. Everything else (headers, heap bodies, reads) is the plain stream.
//!
//! hyper hands a response to [`Conn::poll_write_vectored`] as `[head, body]`. The head goes out with
//! `MSG_MORE`, so that it shares a segment with the body, and the body follows from the file. Partial
//! writes are reported as such and hyper continues from there, exactly as with `writev`.

use crate::cache::sealed;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

static SENT_FROM_FILES: AtomicU64 = AtomicU64::new(0);

/// Body bytes sent with `sendfile` since the process started.
pub fn sent_from_files() -> u64 {
    SENT_FROM_FILES.load(Ordering::Relaxed)
}

/// A listener whose connections are [`Conn`]s (accept errors are handled as axum does for TCP).
pub struct Listener(pub TcpListener);

impl axum::serve::Listener for Listener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.0).await;
        // hyper writes whole responses, so Nagle only delays the last short segment of a body (up to a
        // delayed-ACK timeout, 40 ms on Linux); an error only means the option stays at its default
        let _ = tcp.set_nodelay(true);
        (Conn { tcp, file_sends: true }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

pub struct Conn {
    tcp: TcpStream,
    /// Cleared if the kernel refuses `sendfile` on this socket; the connection then copies.
    file_sends: bool,
}

impl Conn {
    pub fn new(tcp: TcpStream) -> Self {
        Conn { tcp, file_sends: true }
    }

    /// Run a non-blocking socket call once the socket is writable, retrying on `WouldBlock`.
    fn poll_syscall(&self, cx: &mut Context<'_>, call: impl Fn(RawFd) -> isize) -> Poll<io::Result<usize>> {
        let fd = self.tcp.as_raw_fd();
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let r = self.tcp.try_io(Interest::WRITABLE, || match call(fd) {
                n if n < 0 => Err(io::Error::last_os_error()),
                n => Ok(n as usize),
            });
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// `len` bytes of the sealed file `file` from `offset`.
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        file: RawFd,
        offset: u64,
        slice: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = self.poll_syscall(cx, |sock| {
            let mut off = offset as libc::off_t;
            // SAFETY: both descriptors are open (the caller holds the sealed body `file` belongs to) and
            // the kernel reads at most `slice.len()` bytes of the file from `off`, all inside the body.
            unsafe { libc::sendfile(sock, file, &mut off, slice.len()) as isize }
        });
        match r {
            Poll::Ready(Ok(n)) => {
                SENT_FROM_FILES.fetch_add(n as u64, Ordering::Relaxed);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                tracing::debug!(error = %e, "sendfile refused; this connection copies bodies");
                self.file_sends = false;
                Pin::new(&mut self.tcp).poll_write(cx, slice)
            }
            other => other,
        }
    }

    /// The slices before a sealed body, flagged `MSG_MORE` so that they wait for the body.
    fn poll_send_more(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.poll_syscall(cx, |sock| {
            // SAFETY: an all-zero msghdr is valid (no name, no control data); `IoSlice` is ABI-compatible
            // with `iovec` on Unix, and `bufs` outlives the call.
            unsafe {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = bufs.len() as _;
                libc::sendmsg(sock, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL) as isize
            }
        })
    }

    /// The first non-empty slice that lies in a sealed body: its index, file and offset.
    fn first_sealed(&self, bufs: &[IoSlice<'_>]) -> Option<(usize, RawFd, u64)> {
        if !self.file_sends {
            return None;
        }
        bufs.iter().enumerate().find_map(|(i, b)| sealed::find(b).map(|(fd, off)| (i, fd, off)))
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.first_sealed(&[IoSlice::new(buf)]) {
            Some((_, fd, off)) => self.poll_send_file(cx, fd, off, buf),
            None => Pin::new(&mut self.tcp).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some((i, fd, off)) = self.first_sealed(bufs) else {
            return Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        };
        if bufs[..i].iter().all(|b| b.is_empty()) {
            return self.poll_send_file(cx, fd, off, &bufs[i]);
        }
        self.poll_send_more(cx, &bufs[..i])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (Conn, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (Conn::new(server), client)
    }

    /// A head and a sealed body larger than any socket buffer, read slowly: every partial write is picked
    /// up where it stopped, and the reader gets exactly head + body.
    #[tokio::test]
    async fn head_and_sealed_body_arrive_whole_through_partial_writes() {
        let body: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8 ^ (i >> 13) as u8).collect();
        let sealed = sealed::seal(&body, 1).expect("memfd available");
        let part = sealed.slice(1000..);
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 7999000\r\n\r\n".to_vec();
        let (mut server, mut client) = pair().await;
        let before = sent_from_files();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = client.read(&mut buf).await.unwrap();
                if n == 0 {
                    break got;
                }
                got.extend_from_slice(&buf[..n]);
                if got.len() < 1 << 20 {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
        });
        let (mut h, mut b) = (&head[..], &part[..]);
        let mut writes = 0;
        while !h.is_empty() || !b.is_empty() {
            let n = server.write_vectored(&[IoSlice::new(h), IoSlice::new(b)]).await.unwrap();
            assert!(n > 0);
            let from_head = n.min(h.len());
            h = &h[from_head..];
            b = &b[n - from_head..];
            writes += 1;
        }
        server.shutdown().await.unwrap();
        drop(server);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), head.len() + part.len());
        assert!(got[..head.len()] == head[..], "head first");
        assert!(got[head.len()..] == body[1000..], "then the body, byte for byte");
        assert!(writes > 2, "the body was sent in several partial writes ({writes})");
        assert!(sent_from_files() - before >= part.len() as u64, "the body went out with sendfile");
    }

    /// Heap slices are written as they are; a sealed slice after them is still sent from its file.
    #[tokio::test]
    async fn heap_slices_are_plain_writes() {
        let (mut server, mut client) = pair().await;
        let heap = bytes::Bytes::from(vec![7u8; 100_000]);
        server.write_all(&heap).await.unwrap();
        let sealed = sealed::seal(&[9u8; 50_000], 1).expect("memfd available");
        server.write_all(&sealed).await.unwrap();
        server.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 150_000);
        assert!(got[..100_000].iter().all(|&b| b == 7) && got[100_000..].iter().all(|&b| b == 9));
    }
}
