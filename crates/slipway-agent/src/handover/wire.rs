//! The handover conversation: one JSON object per line on a unix stream
//! socket, the `offer` line carrying the listening sockets as `SCM_RIGHTS`.
//! Blocking I/O: a handover is rare, short and off the traffic path.

use std::io::{IoSlice, IoSliceMut, Write as _};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

/// Most descriptors one message may carry (one per proxy thread + metrics).
pub const MAX_FDS: usize = 64;
/// Longest message line accepted.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum Message {
    /// Successor → predecessor: who is asking.
    Hello {
        version: String,
        build: String,
        pid: u32,
        ledger_format_version: u32,
    },
    /// Predecessor → successor, with `public + tls + 1` descriptors
    /// attached: the public listeners, the TLS listeners, then the metrics
    /// listener. `tls` is left out when 0, so an agent without TLS offers
    /// exactly what agents before TLS offered (and understand).
    Offer {
        version: String,
        build: String,
        pid: u32,
        public: usize,
        #[serde(default, skip_serializing_if = "is_zero")]
        tls: usize,
    },
    /// Predecessor → successor: no handover, and why.
    Refuse { reason: String },
    /// Successor → predecessor: serving on the sockets beside you.
    Ready,
    /// Successor → predecessor: giving up before `ready`, and why.
    Abort { reason: String },
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the other agent closed the handover connection")]
    Closed,
    #[error("handover connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("unreadable handover message: {0}")]
    Garbled(String),
}

/// Send one message (with `fds` attached, if any).
pub fn send(stream: &UnixStream, msg: &Message, fds: &[BorrowedFd<'_>]) -> Result<(), WireError> {
    let mut line = serde_json::to_vec(msg).map_err(|e| WireError::Garbled(e.to_string()))?;
    line.push(b'\n');
    if fds.is_empty() {
        (&*stream).write_all(&line)?;
        return Ok(());
    }
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(WireError::Garbled("too many descriptors".into()));
    }
    // The descriptors travel with the first byte; the rest of a line cut
    // short by the kernel follows as plain bytes.
    let sent = rustix::net::sendmsg(
        stream.as_fd(),
        &[IoSlice::new(&line)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(std::io::Error::from)?;
    (&*stream).write_all(&line[sent..])?;
    Ok(())
}

/// Reads messages, collecting the descriptors that arrive with them.
pub struct Receiver {
    stream: UnixStream,
    pending: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Receiver {
    pub fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
            fds: Vec::new(),
        }
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// The next message and the descriptors received since the last one.
    pub fn recv(&mut self) -> Result<(Message, Vec<OwnedFd>), WireError> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let msg =
                    serde_json::from_slice(&line).map_err(|e| WireError::Garbled(e.to_string()))?;
                return Ok((msg, std::mem::take(&mut self.fds)));
            }
            if self.pending.len() > MAX_LINE {
                return Err(WireError::Garbled("message too long".into()));
            }
            let mut buf = [0u8; 4096];
            let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = rustix::net::recvmsg(
                self.stream.as_fd(),
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )
            .map_err(std::io::Error::from)?;
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = msg {
                    self.fds.extend(fds);
                }
            }
            if got.bytes == 0 {
                return Err(WireError::Closed);
            }
            self.pending.extend_from_slice(&buf[..got.bytes]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn an_offer_without_tls_reads_as_before_tls() {
        let old = r#"{"msg":"offer","version":"0.1.0","build":"dev","pid":7,"public":2}"#;
        let msg: Message = serde_json::from_str(old).expect("parses");
        assert!(matches!(
            msg,
            Message::Offer {
                public: 2,
                tls: 0,
                ..
            }
        ));
        let text = serde_json::to_string(&msg).expect("encodes");
        assert!(!text.contains("tls"), "{text}");
    }

    #[test]
    fn a_listener_crosses_and_still_accepts() {
        let (a, b) = UnixStream::pair().expect("pair");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let offer = Message::Offer {
            version: "0.1.0".into(),
            build: "dev".into(),
            pid: 1,
            public: 1,
            tls: 0,
        };
        send(&a, &offer, &[listener.as_fd()]).expect("send");
        send(&a, &Message::Ready, &[]).expect("send ready");
        drop(listener);

        let mut rx = Receiver::new(b);
        let (msg, fds) = rx.recv().expect("recv");
        assert_eq!(msg, offer);
        assert_eq!(fds.len(), 1);
        let (msg, fds2) = rx.recv().expect("recv ready");
        assert_eq!(msg, Message::Ready);
        assert!(fds2.is_empty());

        // The received descriptor is the same listening socket.
        let received = std::net::TcpListener::from(fds.into_iter().next().expect("fd"));
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        let (mut server, _) = received.accept().expect("accept");
        client.write_all(b"x").expect("write");
        let mut byte = [0u8; 1];
        server.read_exact(&mut byte).expect("read");
        assert_eq!(&byte, b"x");

        drop(a);
        assert!(matches!(rx.recv(), Err(WireError::Closed)));
    }
}
