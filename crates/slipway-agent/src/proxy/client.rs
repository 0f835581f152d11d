//! The upstream side of the proxy: a small HTTP/1.1 client driven by the
//! request's own task. A request writes its head (and body: length-delimited
//! or chunked) straight to the pooled socket and reads the response head
//! from it; the response body is read from the same socket by whoever polls
//! it (the downstream connection), so no task, channel or wakeup sits
//! between the two sockets. Response bodies are length-delimited, chunked
//! (trailers passed on) or delimited by close; `HEAD`, 1xx, 204 and 304
//! answers have none; interim 1xx answers are skipped; a `101` hands the
//! socket (and anything read past the head) to the upgrade tunnel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode, Version};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use super::body::BoxError;

/// Largest response head (and chunk-size or trailer line block) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most headers in one response head.
const MAX_HEADERS: usize = 100;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;
/// Request body pieces up to this size are copied next to their chunk
/// framing (one write); larger ones are written on their own.
const COALESCE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("upstream closed the connection before answering")]
    Closed,
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
    #[error("invalid upstream response: {0}")]
    Invalid(&'static str),
    /// The request body (from the client) failed: too long, or the client
    /// went away mid-upload.
    #[error("request body: {0}")]
    RequestBody(BoxError),
}

impl ClientError {
    /// The connection died before any byte of an answer came back: a
    /// pooled connection the upstream closed meanwhile.
    fn is_stale(&self) -> bool {
        match self {
            Self::Closed => true,
            Self::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

/// How the request body travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqBody {
    None,
    Length,
    Chunked,
}

/// One keep-alive connection to an upstream.
pub struct UpConn {
    io: TcpStream,
    /// Read but not yet consumed.
    buf: BytesMut,
    /// Request head (and small chunk) staging, reused.
    wbuf: Vec<u8>,
}

/// The response head and how its body is framed.
pub struct Head {
    pub response: Response<()>,
    pub body: BodyState,
    pub keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// Ended (or never had one).
    Done,
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes.
    Eof,
    /// `101 Switching Protocols`: the socket belongs to the tunnel.
    Upgrade,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

impl UpConn {
    pub fn new(io: TcpStream) -> Box<Self> {
        Box::new(Self {
            io,
            buf: BytesMut::new(),
            wbuf: Vec::new(),
        })
    }

    /// Whether an idle connection can carry another request: nothing was
    /// heard on it since its last answer (no close, no stray bytes). The
    /// common case asks the runtime's readiness only, no system call.
    pub fn is_reusable(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// The socket and what was read past the `101` head.
    pub fn into_upgraded(self) -> (TcpStream, Bytes) {
        (self.io, self.buf.freeze())
    }

    /// Send one request and read its response head. On a pooled
    /// connection, a failure that [`retryable`] accepts may be retried on
    /// another connection.
    pub async fn send<B>(
        &mut self,
        parts: &Parts,
        framing: ReqBody,
        body: &mut B,
    ) -> Result<Head, ClientError>
    where
        B: Body<Data = Bytes, Error = BoxError> + Unpin,
    {
        self.wbuf.clear();
        encode_head(parts, &mut self.wbuf);
        self.io.write_all(&self.wbuf).await?;
        if framing != ReqBody::None
            && let Err(e) = self.write_body(framing, body).await
        {
            if matches!(e, ClientError::RequestBody(_)) {
                return Err(e);
            }
            // The upstream stopped reading: it may have answered already
            // (say a 413 of its own).
            return match self.read_head(parts.method == Method::HEAD).await {
                Ok(mut head) => {
                    head.keep_alive = false;
                    Ok(head)
                }
                Err(_) => Err(e),
            };
        }
        self.read_head(parts.method == Method::HEAD).await
    }

    async fn write_body<B>(&mut self, framing: ReqBody, body: &mut B) -> Result<(), ClientError>
    where
        B: Body<Data = Bytes, Error = BoxError> + Unpin,
    {
        let chunked = framing == ReqBody::Chunked;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(ClientError::RequestBody)?;
            let Ok(data) = frame.into_data() else {
                continue; // request trailers are not passed on
            };
            if data.is_empty() {
                continue;
            }
            if !chunked {
                self.io.write_all(&data).await?;
                continue;
            }
            self.wbuf.clear();
            push_hex(&mut self.wbuf, data.len() as u64);
            self.wbuf.extend_from_slice(b"\r\n");
            if data.len() <= COALESCE {
                self.wbuf.extend_from_slice(&data);
                self.wbuf.extend_from_slice(b"\r\n");
                self.io.write_all(&self.wbuf).await?;
            } else {
                self.io.write_all(&self.wbuf).await?;
                self.io.write_all(&data).await?;
                self.io.write_all(b"\r\n").await?;
            }
        }
        if chunked {
            self.io.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }

    /// Read into the buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_CHUNK);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    async fn read_head(&mut self, head_request: bool) -> Result<Head, ClientError> {
        let mut interim = false;
        loop {
            if let Some((status, version, headers)) = take_head(&mut self.buf)? {
                if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                    interim = true;
                    continue; // 100 Continue, 103 Early Hints: wait for the real one
                }
                return build_head(status, version, headers, head_request);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ClientError::Invalid("response head too large"));
            }
            let n = std::future::poll_fn(|cx| self.poll_fill(cx)).await?;
            if n == 0 {
                return Err(if self.buf.is_empty() && !interim {
                    ClientError::Closed
                } else {
                    ClientError::Invalid("connection closed in the response head")
                });
            }
        }
    }
}

/// `METHOD path HTTP/1.1`, the headers, the blank line.
fn encode_head(parts: &Parts, out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Decide the request body's framing and make the headers say so.
pub fn request_framing(parts: &mut Parts, body: &impl Body) -> ReqBody {
    if body.is_end_stream() {
        let needs_length = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
        if needs_length && !parts.headers.contains_key(header::CONTENT_LENGTH) {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        return ReqBody::None;
    }
    match body.size_hint().exact() {
        Some(n) => {
            let same = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .is_some_and(|v| parse_u64(v.as_bytes()) == Some(n));
            if !same {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
            ReqBody::Length
        }
        None => {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            ReqBody::Chunked
        }
    }
}

/// Name and value of one header line, as offsets into the head.
#[derive(Clone, Copy, Default)]
struct Line {
    name: (u32, u32),
    value: (u32, u32),
}

/// Where each parsed header's name and value sit in `buf` (httparse hands
/// out slices of it), so the frozen head can be sliced without copying.
fn locate(buf: &[u8], headers: &[httparse::Header<'_>], lines: &mut [Line]) -> usize {
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
    for (line, h) in lines.iter_mut().zip(headers) {
        let name = offset(h.name.as_bytes());
        let value = offset(h.value);
        // A head is bounded by MAX_HEAD, far below u32::MAX.
        *line = Line {
            name: (name, name + h.name.len() as u32),
            value: (value, value + h.value.len() as u32),
        };
    }
    headers.len()
}

fn invalid(e: httparse::Error) -> ClientError {
    ClientError::Invalid(match e {
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "not an HTTP/1 status line",
        httparse::Error::Status => "malformed status code",
        httparse::Error::HeaderName => "malformed header name",
        httparse::Error::HeaderValue => "malformed header value",
        _ => "malformed response head",
    })
}

fn headers_of(raw: &Bytes, lines: &[Line]) -> Result<HeaderMap, ClientError> {
    let bad = ClientError::Invalid;
    // Room for the two the proxy may add (release, `Connection: close`):
    // growing a header map costs a new table and a rehash.
    let mut headers = HeaderMap::with_capacity(lines.len() + 2);
    for l in lines {
        let name = &raw[l.name.0 as usize..l.name.1 as usize];
        let name = HeaderName::from_bytes(name).map_err(|_| bad("malformed header name"))?;
        let value =
            HeaderValue::from_maybe_shared(raw.slice(l.value.0 as usize..l.value.1 as usize))
                .map_err(|_| bad("malformed header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Take a complete head off the front of `buf`, if there is one.
fn take_head(buf: &mut BytesMut) -> Result<Option<(StatusCode, Version, HeaderMap)>, ClientError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut lines = [Line::default(); MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let end = match response.parse(buf).map_err(invalid)? {
        httparse::Status::Complete(end) => end,
        httparse::Status::Partial => return Ok(None),
    };
    let version = match response.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let status = response
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ClientError::Invalid("malformed status code"))?;
    let count = locate(buf, response.headers, &mut lines);
    let raw = buf.split_to(end).freeze();
    Ok(Some((status, version, headers_of(&raw, &lines[..count])?)))
}

/// Take a complete trailer block off the front of `buf`, if there is one.
fn take_trailers(buf: &mut BytesMut) -> Result<Option<HeaderMap>, ClientError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut lines = [Line::default(); MAX_HEADERS];
    let (end, count) = match httparse::parse_headers(buf, &mut slots).map_err(invalid)? {
        httparse::Status::Complete((end, headers)) => (end, locate(buf, headers, &mut lines)),
        httparse::Status::Partial => return Ok(None),
    };
    let raw = buf.split_to(end).freeze();
    headers_of(&raw, &lines[..count]).map(Some)
}

#[cfg(test)]
fn parse_head(raw: &Bytes) -> Result<(StatusCode, Version, HeaderMap), ClientError> {
    take_head(&mut BytesMut::from(&raw[..]))?.ok_or(ClientError::Invalid("incomplete head"))
}

fn build_head(
    status: StatusCode,
    version: Version,
    mut headers: HeaderMap,
    head_request: bool,
) -> Result<Head, ClientError> {
    let connection_has = |headers: &HeaderMap, token: &str| {
        headers.get_all(header::CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    let mut keep_alive = if version == Version::HTTP_11 {
        !connection_has(&headers, "close")
    } else {
        connection_has(&headers, "keep-alive")
    };
    let body = if status == StatusCode::SWITCHING_PROTOCOLS {
        keep_alive = false;
        BodyState::Upgrade
    } else if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        BodyState::Done
    } else if headers.contains_key(header::TRANSFER_ENCODING) {
        // Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
        headers.remove(header::CONTENT_LENGTH);
        let last_chunked = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if last_chunked {
            BodyState::Chunked(Chunk::Size)
        } else {
            BodyState::Eof
        }
    } else {
        let mut length = None;
        for v in headers.get_all(header::CONTENT_LENGTH) {
            for part in v.as_bytes().split(|&b| b == b',') {
                let n = parse_u64(part.trim_ascii())
                    .ok_or(ClientError::Invalid("malformed content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(ClientError::Invalid("conflicting content-length"));
                }
                length = Some(n);
            }
        }
        match length {
            Some(0) => BodyState::Done,
            Some(n) => BodyState::Length(n),
            None => BodyState::Eof,
        }
    };
    if body == BodyState::Eof {
        keep_alive = false;
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Head {
        response,
        body,
        keep_alive,
    })
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

fn push_hex(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A response body read off the upstream connection. When it ends on a
/// connection that may be reused, [`UpBody::take_reusable`] hands the
/// connection back for the pool.
pub struct UpBody {
    /// Boxed: the body is moved several times on its way through hyper.
    conn: Option<Box<UpConn>>,
    state: BodyState,
    keep_alive: bool,
}

impl UpBody {
    pub fn new(conn: Box<UpConn>, state: BodyState, keep_alive: bool) -> Self {
        Self {
            conn: Some(conn),
            state,
            keep_alive,
        }
    }

    /// The connection, once the body ended cleanly on a connection that
    /// stays open (nothing read beyond this response).
    pub fn take_reusable(&mut self) -> Option<Box<UpConn>> {
        if self.state != BodyState::Done || !self.keep_alive {
            return None;
        }
        let conn = self.conn.take()?;
        conn.buf.is_empty().then_some(conn)
    }

    /// The upgraded connection of a `101` answer.
    pub fn take_upgraded(&mut self) -> Option<Box<UpConn>> {
        if self.state != BodyState::Upgrade {
            return None;
        }
        self.state = BodyState::Done;
        self.conn.take()
    }

    fn fail(&mut self, what: &'static str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = BodyState::Done;
        self.conn = None;
        Poll::Ready(Some(Err(ClientError::Invalid(what).into())))
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.state {
                BodyState::Done | BodyState::Upgrade => return Poll::Ready(None),
                BodyState::Length(left) if !conn.buf.is_empty() => {
                    let n = left.min(conn.buf.len() as u64);
                    let data = conn.buf.split_to(n as usize).freeze();
                    this.state = if n == left {
                        BodyState::Done
                    } else {
                        BodyState::Length(left - n)
                    };
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                BodyState::Eof if !conn.buf.is_empty() => {
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                BodyState::Chunked(Chunk::Data(left)) if !conn.buf.is_empty() => {
                    let n = left.min(conn.buf.len() as u64);
                    let data = conn.buf.split_to(n as usize).freeze();
                    this.state = BodyState::Chunked(if n == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n)
                    });
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                BodyState::Chunked(Chunk::DataEnd) => {
                    if conn.buf.starts_with(b"\r\n") {
                        let _ = conn.buf.split_to(2);
                        this.state = BodyState::Chunked(Chunk::Size);
                        continue;
                    }
                    if conn.buf.starts_with(b"\n") {
                        let _ = conn.buf.split_to(1);
                        this.state = BodyState::Chunked(Chunk::Size);
                        continue;
                    }
                    if conn.buf.len() >= 2 || conn.buf.first().is_some_and(|&b| b != b'\r') {
                        return this.fail("chunk not followed by CRLF");
                    }
                }
                BodyState::Chunked(Chunk::Size) => match httparse::parse_chunk_size(&conn.buf) {
                    Ok(httparse::Status::Complete((end, size))) => {
                        let _ = conn.buf.split_to(end);
                        this.state = BodyState::Chunked(if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        });
                        continue;
                    }
                    Ok(httparse::Status::Partial) if conn.buf.len() > 4096 => {
                        return this.fail("chunk size line too long");
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return this.fail("malformed chunk size"),
                },
                BodyState::Chunked(Chunk::Trailers) => match take_trailers(&mut conn.buf) {
                    Ok(Some(trailers)) => {
                        this.state = BodyState::Done;
                        if trailers.is_empty() {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(None) if conn.buf.len() > MAX_HEAD => {
                        return this.fail("trailers too large");
                    }
                    Ok(None) => {}
                    Err(_) => return this.fail("malformed trailers"),
                },
                // Nothing buffered for a data state: read below.
                BodyState::Length(_) | BodyState::Eof | BodyState::Chunked(Chunk::Data(_)) => {}
            }
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    this.state = BodyState::Done;
                    this.conn = None;
                    return Poll::Ready(Some(Err(ClientError::Io(e).into())));
                }
                Poll::Ready(Ok(0)) => {
                    if this.state == BodyState::Eof {
                        this.state = BodyState::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    return this.fail("connection closed in the response body");
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done | BodyState::Upgrade)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Done | BodyState::Upgrade => SizeHint::with_exact(0),
            BodyState::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// Whether a request may be sent again on a new connection after `e` on a
/// pooled one: it died before any answer, the request had no body (so
/// nothing of the client's was consumed) and its method is idempotent.
pub fn retryable(e: &ClientError, method: &Method, framing: ReqBody) -> bool {
    framing == ReqBody::None && e.is_stale() && method.is_idempotent()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_heads_wait_for_more() {
        for partial in [
            &b"HTTP/1.1 200 OK"[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\na: b\r\n",
            b"HTTP/1.1 200 OK\r\na: b\r\n\r",
            b"HTTP/1.1 200 OK\r\na: b",
        ] {
            let mut buf = BytesMut::from(partial);
            assert!(take_head(&mut buf).expect("valid so far").is_none());
            assert_eq!(buf.len(), partial.len());
        }
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\n\nbody"[..]);
        assert!(take_head(&mut buf).expect("head").is_some());
        assert_eq!(&buf[..], b"body");
    }

    #[test]
    fn heads_parse() {
        let raw = Bytes::from_static(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A:  v \r\nx-a: w\r\n\r\n",
        );
        let (status, version, h) = parse_head(&raw).expect("head");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(version, Version::HTTP_11);
        assert_eq!(h["content-length"], "3");
        let all: Vec<_> = h.get_all("x-a").iter().collect();
        assert_eq!(all, ["v", "w"]);
        for bad in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n",
        ] {
            assert!(parse_head(&Bytes::from_static(bad)).is_err());
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = |s: &'static [u8]| parse_head(&Bytes::from_static(s)).expect("head");
        let b = |s: &'static [u8], head: bool| {
            let (st, v, hd) = h(s);
            let head = build_head(st, v, hd, head).expect("build");
            (head.body, head.keep_alive)
        };
        assert_eq!(
            b(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", false),
            (BodyState::Length(5), true)
        );
        assert_eq!(
            b(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true),
            (BodyState::Done, true)
        );
        assert_eq!(
            b(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            (BodyState::Done, true)
        );
        assert_eq!(
            b(
                b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
                false
            ),
            (BodyState::Done, true)
        );
        assert_eq!(
            b(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
                false
            ),
            (BodyState::Chunked(Chunk::Size), true)
        );
        assert_eq!(
            b(b"HTTP/1.1 200 OK\r\n\r\n", false),
            (BodyState::Eof, false)
        );
        assert_eq!(
            b(
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
                false
            ),
            (BodyState::Length(1), false)
        );
        assert_eq!(
            b(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", false),
            (BodyState::Length(1), false)
        );
        assert_eq!(
            b(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
                false
            ),
            (BodyState::Upgrade, false)
        );
        let (st, v, hd) = h(b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n");
        assert!(build_head(st, v, hd, false).is_err());
    }

    #[test]
    fn hex_sizes() {
        let mut v = Vec::new();
        push_hex(&mut v, 0);
        push_hex(&mut v, 0x1a2f);
        assert_eq!(v, b"01a2f");
    }
}

#[cfg(test)]
mod wire_tests {
    use http_body_util::{BodyExt as _, Empty, StreamBody};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// An upstream that reads one request per entry (until its head and, if
    /// `body_end` is given, until that text) and answers with the entry's
    /// bytes, in pieces; returns what it read.
    async fn scripted(
        answers: Vec<(Option<&'static str>, Vec<&'static [u8]>)>,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            let mut buf = Vec::new();
            for (body_end, pieces) in answers {
                loop {
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let head_done = text.contains("\r\n\r\n");
                    let body_done = body_end.is_none_or(|e| text.ends_with(e));
                    if head_done && body_done {
                        break;
                    }
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.expect("read");
                    if n == 0 {
                        return seen;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                seen.push(String::from_utf8_lossy(&buf).into_owned());
                buf.clear();
                for p in pieces {
                    s.write_all(p).await.expect("write");
                    s.flush().await.expect("flush");
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
            seen
        });
        (addr, task)
    }

    fn parts(method: Method, path: &str) -> Parts {
        let (mut p, ()) = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "up")
            .body(())
            .expect("req")
            .into_parts();
        p.headers.insert("x-a", HeaderValue::from_static("1"));
        p
    }

    fn empty() -> http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError> {
        Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync()
    }

    async fn collect(mut body: UpBody) -> (Vec<u8>, Option<HeaderMap>, UpBody) {
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(f) = body.frame().await {
            let f = f.expect("frame");
            match f.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(f) => trailers = f.into_trailers().ok(),
            }
        }
        (data, trailers, body)
    }

    #[tokio::test]
    async fn chunked_split_across_reads_then_head_then_no_content_on_one_connection() {
        let (addr, up) = scripted(vec![
            (
                None,
                vec![
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
                    b"lo\r",
                    b"\n6;ext=1\r\n world\r\n0\r\nx-t",
                    b"railer: yes\r\n\r\n",
                ],
            ),
            (None, vec![b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n"]),
            (None, vec![b"HTTP/1.1 204 No Content\r\n\r\n"]),
            (None, vec![b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nab", b"c"]),
        ])
        .await;
        let mut conn = UpConn::new(TcpStream::connect(addr).await.expect("connect"));
        let p = parts(Method::GET, "/a?b=c");
        let head = conn
            .send(&p, ReqBody::None, &mut empty())
            .await
            .expect("send");
        assert_eq!(head.response.status(), 200);
        let (data, trailers, mut body) =
            collect(UpBody::new(conn, head.body, head.keep_alive)).await;
        assert_eq!(data, b"hello world");
        assert_eq!(trailers.expect("trailers")["x-trailer"], "yes");
        let mut conn = body.take_reusable().expect("reusable");
        assert!(conn.is_reusable());

        let head = conn
            .send(&parts(Method::HEAD, "/"), ReqBody::None, &mut empty())
            .await
            .expect("head");
        assert_eq!(head.response.headers()["content-length"], "42");
        let mut body = UpBody::new(conn, head.body, head.keep_alive);
        assert!(body.is_end_stream());
        let mut conn = body.take_reusable().expect("reusable after HEAD");

        let head = conn
            .send(&p, ReqBody::None, &mut empty())
            .await
            .expect("204");
        assert_eq!(head.response.status(), 204);
        let mut body = UpBody::new(conn, head.body, head.keep_alive);
        let mut conn = body.take_reusable().expect("reusable after 204");

        let head = conn
            .send(&p, ReqBody::None, &mut empty())
            .await
            .expect("len");
        assert_eq!(head.body, BodyState::Length(3));
        let (data, _, mut body) = collect(UpBody::new(conn, head.body, head.keep_alive)).await;
        assert_eq!(data, b"abc");
        assert!(body.take_reusable().is_some());
        drop(body);
        let seen = up.await.expect("upstream");
        assert!(
            seen[0].starts_with("GET /a?b=c HTTP/1.1\r\nhost: up\r\nx-a: 1\r\n\r\n"),
            "{}",
            seen[0]
        );
        assert!(seen[1].starts_with("HEAD / HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn chunked_and_length_request_bodies_and_a_close_delimited_answer() {
        let (addr, up) = scripted(vec![
            (
                Some("0\r\n\r\n"),
                vec![b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n"],
            ),
            (
                Some("xyz"),
                vec![
                    b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil",
                    b" close",
                ],
            ),
        ])
        .await;
        let mut conn = UpConn::new(TcpStream::connect(addr).await.expect("connect"));
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::data(Bytes::from(vec![b'z'; 20_000]))),
        ];
        let mut body = StreamBody::new(futures_util::stream::iter(frames));
        let mut p = parts(Method::POST, "/up");
        let framing = request_framing(&mut p, &body);
        assert_eq!(framing, ReqBody::Chunked);
        assert_eq!(p.headers["transfer-encoding"], "chunked");
        let head = conn.send(&p, framing, &mut body).await.expect("send");
        assert_eq!(head.response.status(), 201);
        let mut b = UpBody::new(conn, head.body, head.keep_alive);
        let mut conn = b.take_reusable().expect("reusable");

        let mut body = http_body_util::Full::new(Bytes::from_static(b"xyz"))
            .map_err(|e| match e {})
            .boxed_unsync();
        let mut p = parts(Method::PUT, "/len");
        let framing = request_framing(&mut p, &body);
        assert_eq!(framing, ReqBody::Length);
        assert_eq!(p.headers["content-length"], "3");
        let head = conn.send(&p, framing, &mut body).await.expect("send");
        assert!(!head.keep_alive);
        let (data, _, mut b) = collect(UpBody::new(conn, head.body, head.keep_alive)).await;
        assert_eq!(data, b"until close");
        assert!(b.take_reusable().is_none());
        let seen = up.await.expect("upstream");
        assert!(
            seen[0].contains("3\r\nabc\r\n4e20\r\nzzz"),
            "{}",
            &seen[0][..80]
        );
        assert!(seen[0].ends_with("zz\r\n0\r\n\r\n"));
        assert!(seen[1].contains("content-length: 3\r\n\r\nxyz"));
    }

    /// One GET to an upstream that answers with `pieces` once, then closes.
    async fn get_once(
        pieces: Vec<&'static [u8]>,
    ) -> (UpBody, tokio::task::JoinHandle<Vec<String>>) {
        let (addr, up) = scripted(vec![(None, pieces)]).await;
        let mut conn = UpConn::new(TcpStream::connect(addr).await.expect("connect"));
        let head = conn
            .send(&parts(Method::GET, "/"), ReqBody::None, &mut empty())
            .await
            .expect("send");
        (UpBody::new(conn, head.body, head.keep_alive), up)
    }

    #[tokio::test]
    async fn a_closed_idle_connection_is_seen_and_an_early_close_is_an_error() {
        let (mut body, up) =
            get_once(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab"]).await;
        up.await.expect("upstream"); // closes after the first piece
        let mut got = Vec::new();
        let mut failed = false;
        while let Some(f) = body.frame().await {
            match f {
                Ok(f) => got.extend_from_slice(&f.into_data().expect("data")),
                Err(_) => failed = true,
            }
        }
        assert!(failed && got == b"ab");
        assert!(body.take_reusable().is_none());

        let (mut body, up) = get_once(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
        let mut conn = body.take_reusable().expect("reusable");
        up.await.expect("upstream");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!conn.is_reusable());
        let e = conn
            .send(&parts(Method::GET, "/"), ReqBody::None, &mut empty())
            .await
            .err()
            .expect("closed");
        assert!(retryable(&e, &Method::GET, ReqBody::None), "{e}");
        assert!(!retryable(&e, &Method::POST, ReqBody::None));
    }
}
