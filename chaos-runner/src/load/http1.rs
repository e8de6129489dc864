//! A player's own HTTP/1.1 connection: one request at a time, written and read on the
//! player's task (no connection task beside it, no channel between them), the answer's
//! head parsed with `httparse`.
//!
//! Enough of HTTP/1.1 for a game API: bodies framed by `Content-Length`, chunked or by the
//! connection closing; informational (1xx) answers skipped; `Connection: close` and
//! HTTP/1.0 honoured; a connection the server closed while idle noticed before it is used
//! again. Heads over 64 KiB and bodies over 16 MiB are refused. See `docs/load.md`.

use bytes::{Buf, Bytes, BytesMut};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::player::Request;

/// The longest answer head read.
const MAX_HEAD: usize = 64 * 1024;
/// The longest answer body read.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Header lines parsed at most in an answer.
const MAX_HEADERS: usize = 64;
/// How much the read buffer grows by.
const READ_CHUNK: usize = 8 * 1024;
/// A read buffer grown past this by a large answer is dropped after it.
const KEPT_BUFFER: usize = 64 * 1024;
/// A connection idle this long is asked whether the server closed it before it is used.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// An exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The connection could not be opened.
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// Reading or writing failed.
    #[error("connection failed: {0}")]
    Io(#[source] io::Error),
    /// The server closed the connection before the answer was complete.
    #[error("the connection closed before the answer was complete")]
    Closed,
    /// The answer is not HTTP/1.x the client can read.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The rendered request cannot be sent (a character HTTP does not allow).
    #[error("bad request: {0}")]
    Request(String),
}

/// Where a target's requests go, the same for every player.
///
/// ```
/// use chaos_runner::load::http1::Origin;
/// let origin = Origin::new("127.0.0.1", 8080, "127.0.0.1:8080", "/api");
/// assert_eq!(origin.port, 8080);
/// ```
#[derive(Debug, Clone)]
pub struct Origin {
    /// Host to connect to (a name is resolved at each connect).
    pub host: String,
    /// Port.
    pub port: u16,
    /// The `Host` header.
    pub authority: String,
    /// The target's path, prefixed to every step's (`""` or `/api`).
    pub prefix: String,
}

impl Origin {
    /// The origin at `host:port`, named `authority` in the `Host` header, with every
    /// path under `prefix`.
    pub fn new(host: &str, port: u16, authority: &str, prefix: &str) -> Origin {
        Origin {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
        }
    }
}

/// A player's connection, opened on first use and again after any failure or an answer
/// that closes it.
#[derive(Default)]
pub struct Http1 {
    stream: Option<TcpStream>,
    read: BytesMut,
    write: Vec<u8>,
    /// When the last answer was read (`None`: never used).
    last_used: Option<std::time::Instant>,
}

impl std::fmt::Debug for Http1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.stream.is_some() {
            "Http1(open)"
        } else {
            "Http1(closed)"
        })
    }
}

/// How an answer's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// What the head of an answer says.
#[derive(Debug, Clone, Copy)]
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

impl Http1 {
    /// Sends `request` to `origin` and reads the answer: its status, and its body when
    /// `request.reads_body` (else empty). A failure once sending began closes the
    /// connection (as does an answer that says so); the next call opens another.
    pub async fn exchange(
        &mut self,
        origin: &Origin,
        request: &Request,
    ) -> Result<(u16, Bytes), ExchangeError> {
        encode(&mut self.write, origin, request)?;
        let answer = self.exchange_encoded(origin, request).await;
        match &answer {
            Ok((_, _, true)) => self.last_used = Some(std::time::Instant::now()),
            _ => self.close(),
        }
        if self.read.capacity() > KEPT_BUFFER {
            // A large answer's buffer is not kept for the rest of the run.
            self.read = BytesMut::new();
        }
        answer.map(|(status, body, _)| (status, body))
    }

    /// Opens a new connection to `origin` (before the first call, or after one closed).
    pub async fn connect(&mut self, origin: &Origin) -> Result<(), ExchangeError> {
        self.close();
        let stream = TcpStream::connect((origin.host.as_str(), origin.port))
            .await
            .map_err(ExchangeError::Connect)?;
        let _ = stream.set_nodelay(true);
        self.stream = Some(stream);
        Ok(())
    }

    /// Closes the connection (after an exchange was abandoned half way, by a timeout).
    pub fn close(&mut self) {
        self.stream = None;
        self.last_used = None;
        self.read.clear();
    }

    async fn exchange_encoded(
        &mut self,
        origin: &Origin,
        request: &Request,
    ) -> Result<(u16, Bytes, bool), ExchangeError> {
        if !self.still_open() {
            self.connect(origin).await?;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(ExchangeError::Closed);
        };
        stream
            .write_all(&self.write)
            .await
            .map_err(ExchangeError::Io)?;
        let head = loop {
            let head = self.read_head(request.method == http::Method::HEAD).await?;
            // Informational answers (100 Continue, 103 Early Hints) come before the real one.
            if !(100..200).contains(&head.status) || head.status == 101 {
                break head;
            }
        };
        let body = self.read_body(head.framing, request.reads_body).await?;
        // Bytes past the answer were never asked for: the connection is not trusted again.
        let keep_alive =
            head.keep_alive && head.framing != Framing::UntilClose && self.read.is_empty();
        Ok((head.status, body, keep_alive))
    }

    /// Whether the open connection can take a request: the server has not closed it nor
    /// sent anything unasked while it was idle. (Reading here also clears the socket's
    /// readiness, so the read after the write waits for the answer without a wasted call.)
    ///
    /// The runtime may not have seen a close that came while the player was idle (its
    /// reactor had not polled since), so after an idle while the socket itself is asked,
    /// with a peek that takes nothing.
    fn still_open(&mut self) -> bool {
        let Some(stream) = &self.stream else {
            return false;
        };
        let mut probe = [0u8; 1];
        let quiet =
            matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        let idle = self.last_used.is_none_or(|t| t.elapsed() >= IDLE_CHECK);
        quiet && (!idle || peek_quiet(stream))
    }

    /// Reads more of the answer; the connection closing is an error.
    async fn fill(&mut self) -> Result<(), ExchangeError> {
        match self.fill_or_eof().await? {
            0 => Err(ExchangeError::Closed),
            _ => Ok(()),
        }
    }

    /// Reads more of the answer; 0 when the server closed the connection.
    async fn fill_or_eof(&mut self) -> Result<usize, ExchangeError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(ExchangeError::Closed);
        };
        if self.read.capacity() - self.read.len() < READ_CHUNK / 2 {
            self.read.reserve(READ_CHUNK);
        }
        stream
            .read_buf(&mut self.read)
            .await
            .map_err(ExchangeError::Io)
    }

    async fn read_head(&mut self, to_head: bool) -> Result<Head, ExchangeError> {
        loop {
            if !self.read.is_empty() {
                if let Some((len, head)) = parse_head(&self.read, to_head)? {
                    self.read.advance(len);
                    return Ok(head);
                }
                if self.read.len() > MAX_HEAD {
                    return Err(ExchangeError::Malformed(format!(
                        "a head over {} KiB",
                        MAX_HEAD / 1024
                    )));
                }
            }
            self.fill().await?;
        }
    }

    async fn read_body(&mut self, framing: Framing, keep: bool) -> Result<Bytes, ExchangeError> {
        match framing {
            Framing::None => Ok(Bytes::new()),
            Framing::Length(len) => {
                if len > MAX_BODY {
                    return Err(too_large());
                }
                if !keep {
                    // Dropped as it comes: an unread body is not held whole.
                    let mut left = len;
                    loop {
                        let now = left.min(self.read.len());
                        self.read.advance(now);
                        left -= now;
                        if left == 0 {
                            return Ok(Bytes::new());
                        }
                        self.fill().await?;
                    }
                }
                while self.read.len() < len {
                    self.fill().await?;
                }
                Ok(self.take(len, keep))
            }
            Framing::UntilClose => {
                while self.fill_or_eof().await? > 0 {
                    if self.read.len() > MAX_BODY {
                        return Err(too_large());
                    }
                }
                let len = self.read.len();
                Ok(self.take(len, keep))
            }
            Framing::Chunked => self.read_chunked(keep).await,
        }
    }

    /// The first `len` bytes of the buffer, kept as the body or dropped.
    fn take(&mut self, len: usize, keep: bool) -> Bytes {
        if keep {
            self.read.split_to(len).freeze()
        } else {
            self.read.advance(len);
            Bytes::new()
        }
    }

    async fn read_chunked(&mut self, keep: bool) -> Result<Bytes, ExchangeError> {
        let mut body = BytesMut::new();
        let mut total = 0usize;
        loop {
            let (skip, size) = loop {
                match httparse::parse_chunk_size(&self.read) {
                    Ok(httparse::Status::Complete(found)) => break found,
                    Ok(httparse::Status::Partial) if self.read.len() <= MAX_HEAD => {
                        self.fill().await?
                    }
                    _ => {
                        return Err(ExchangeError::Malformed("a bad chunk size".into()));
                    }
                }
            };
            self.read.advance(skip);
            let size = usize::try_from(size).map_err(|_| too_large())?;
            total = total.checked_add(size).ok_or_else(too_large)?;
            if total > MAX_BODY {
                return Err(too_large());
            }
            if size == 0 {
                return self.read_trailer().await.map(|()| body.freeze());
            }
            while self.read.len() < size + 2 {
                self.fill().await?;
            }
            if keep {
                body.extend_from_slice(&self.read[..size]);
            }
            if &self.read[size..size + 2] != b"\r\n" {
                return Err(ExchangeError::Malformed("a chunk not ended by CRLF".into()));
            }
            self.read.advance(size + 2);
        }
    }

    /// The trailer after the last chunk: header lines up to an empty one, ignored.
    async fn read_trailer(&mut self) -> Result<(), ExchangeError> {
        loop {
            match self.read.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.read.advance(2);
                    return Ok(());
                }
                Some(end) => self.read.advance(end + 2),
                None if self.read.len() > MAX_HEAD => {
                    return Err(ExchangeError::Malformed("a trailer over 64 KiB".into()));
                }
                None => self.fill().await?,
            }
        }
    }
}

/// Whether nothing waits on `stream` (no data, no close), asking the socket directly.
fn peek_quiet(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut probe = [0u8; 1];
    // SAFETY: recv writes at most one byte into `probe`, which outlives the call; the fd
    // is the stream's own, open while `stream` is borrowed.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            probe.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

fn too_large() -> ExchangeError {
    ExchangeError::Malformed(format!("a body over {} MiB", MAX_BODY / (1024 * 1024)))
}

/// Writes `request` for `origin` into `out`, refusing what HTTP does not allow in a
/// request line or header (a space or control character, which would split the message).
fn encode(out: &mut Vec<u8>, origin: &Origin, request: &Request) -> Result<(), ExchangeError> {
    if let Some(c) = request.path.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(ExchangeError::Request(format!(
            "the path {:?} has {c:?}, which a request line cannot carry",
            request.path
        )));
    }
    out.clear();
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(origin.prefix.as_bytes());
    out.extend_from_slice(request.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(origin.authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in request.headers_to_send() {
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(ExchangeError::Request(format!(
                "the value of header `{name}` has a control character"
            )));
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let has_body_method = matches!(
        request.method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    );
    if !request.body.is_empty() || has_body_method {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(request.body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&request.body);
    Ok(())
}

/// The head at the start of `bytes` and its length, `None` when incomplete.
fn parse_head(bytes: &[u8], to_head: bool) -> Result<Option<(usize, Head)>, ExchangeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ExchangeError::Malformed(e.to_string())),
    };
    let status = response.code.unwrap_or_default();
    let http10 = response.version == Some(0);
    let mut keep_alive = !http10;
    let mut length = None;
    let mut chunked = false;
    let mut encoded = false;
    for header in response.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        if header.name.eq_ignore_ascii_case("content-length") {
            let digits = value.trim();
            let parsed: usize = digits
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| digits.parse().ok())
                .flatten()
                .ok_or_else(|| ExchangeError::Malformed(format!("content-length {value:?}")))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(ExchangeError::Malformed(
                    "two different content-length headers".into(),
                ));
            }
            length = Some(parsed);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        }
    }
    // After `101 Switching Protocols` the connection no longer speaks HTTP; an answer with
    // both a length and a transfer coding is not trusted to leave it clean (RFC 9112 6.3).
    keep_alive &= status != 101 && !(encoded && length.is_some());
    let framing = if to_head || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if encoded {
        // A coding that does not end in chunked: the body runs to the close.
        Framing::UntilClose
    } else if let Some(len) = length {
        Framing::Length(len)
    } else {
        Framing::UntilClose
    };
    Ok(Some((
        len,
        Head {
            status,
            framing,
            keep_alive,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    fn request(method: http::Method, path: &str, body: &str, reads_body: bool) -> Request {
        Request {
            operation: 0,
            method,
            path: path.into(),
            headers: vec![(http::HeaderName::from_static("x-player"), "p1".into())],
            body: Bytes::from(body.to_owned()),
            content_type: (!body.is_empty()).then_some("application/json"),
            timeout: Duration::from_secs(1),
            reads_body,
        }
    }

    /// A server that answers each request it reads with the next of `answers` (raw
    /// bytes), closing the connection after any answer marked `close`; returns its
    /// origin and the requests it read (head and body).
    async fn server(
        answers: Vec<(&'static str, bool)>,
    ) -> (Origin, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            'accept: while let Ok((stream, _)) = listener.accept().await {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let mut head = String::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                            continue 'accept;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = read.read_exact(&mut body).await;
                    head.push_str(&String::from_utf8_lossy(&body));
                    let _ = seen.send(head);
                    let Some((answer, close)) = answers.next() else {
                        return;
                    };
                    let _ = write.write_all(answer.as_bytes()).await;
                    if close {
                        continue 'accept;
                    }
                }
            }
        });
        (
            Origin::new("127.0.0.1", port, &format!("127.0.0.1:{port}"), "/api"),
            requests,
        )
    }

    #[tokio::test]
    async fn a_request_is_written_whole_and_each_framing_of_the_answer_is_read() {
        let (origin, mut seen) = server(vec![
            ("HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"a\":\"one\"}", false),
            (
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"b\"\r\n5;x=y\r\n:\"two\r\n2\r\n\"}\r\n0\r\nx-trailer: 1\r\n\r\n",
                false,
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", false),
            ("HTTP/1.0 503 Service Unavailable\r\n\r\nbusy", true),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", true),
        ])
        .await;
        let mut connection = Http1::default();
        let post = request(http::Method::POST, "/v1/queue?mode=duo", r#"{"p":1}"#, true);
        let (status, body) = connection.exchange(&origin, &post).await.expect("first");
        assert_eq!((status, body.as_ref()), (200, br#"{"a":"one"}"#.as_slice()));
        let written = seen.recv().await.expect("a request");
        assert!(
            written.starts_with("POST /api/v1/queue?mode=duo HTTP/1.1\r\nhost: 127.0.0.1:"),
            "{written}"
        );
        for line in [
            "content-type: application/json\r\n",
            "x-player: p1\r\n",
            "content-length: 7\r\n",
        ] {
            assert!(written.contains(line), "{line:?} in {written}");
        }
        assert!(written.ends_with("\r\n\r\n{\"p\":1}"), "{written}");

        let (status, body) = connection.exchange(&origin, &post).await.expect("chunked");
        assert_eq!((status, body.as_ref()), (201, br#"{"b":"two"}"#.as_slice()));
        seen.recv().await.expect("the second post");
        let get = request(http::Method::GET, "/v1/x", "", false);
        let (status, body) = connection
            .exchange(&origin, &get)
            .await
            .expect("no content");
        assert_eq!((status, body.len()), (204, 0));
        assert!(!seen.recv().await.expect("get").contains("content-length"));
        // HTTP/1.0 without a length: the body runs to the close, and the next request
        // opens a new connection.
        let (status, _) = connection
            .exchange(&origin, &get)
            .await
            .expect("until close");
        assert_eq!(status, 503);
        let (status, _) = connection
            .exchange(&origin, &get)
            .await
            .expect("reconnects");
        assert_eq!(status, 200);
        assert_eq!(
            format!("{connection:?}"),
            "Http1(closed)",
            "Connection: close honoured"
        );
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced_before_it_is_used() {
        let (origin, _seen) = server(vec![
            ("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true),
            ("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", false),
        ])
        .await;
        let mut connection = Http1::default();
        let get = request(http::Method::GET, "/", "", false);
        connection.exchange(&origin, &get).await.expect("first");
        assert_eq!(format!("{connection:?}"), "Http1(open)");
        // The server closed it without saying so in the head.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, _) = connection.exchange(&origin, &get).await.expect("second");
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn a_close_the_runtime_has_not_seen_yet_is_still_noticed_after_an_idle_while() {
        // A blocking server: answers, closes, then answers on a new connection.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                // Closed a while after the answer, as an idle timeout does.
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let origin = Origin::new("127.0.0.1", port, &format!("127.0.0.1:{port}"), "");
        let mut connection = Http1::default();
        let get = request(http::Method::GET, "/", "", false);
        connection.exchange(&origin, &get).await.expect("first");
        // Blocking the runtime's thread: its reactor never sees the server's FIN.
        std::thread::sleep(Duration::from_millis(150));
        let (status, _) = connection
            .exchange(&origin, &get)
            .await
            .expect("no spurious error");
        assert_eq!(status, 200);
    }

    #[test]
    fn framing_follows_rfc_9112_where_headers_disagree() {
        let head = |text: &str| parse_head(text.as_bytes(), false).map(|h| h.map(|(_, h)| h));
        let gzip = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ncontent-length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (gzip.framing, gzip.keep_alive),
            (Framing::UntilClose, false)
        );
        let both =
            head("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!((both.framing, both.keep_alive), (Framing::Chunked, false));
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n").is_err());
        let partial = head("HTTP/1.1 200 OK\r\ncontent-le").unwrap();
        assert!(partial.is_none());
    }

    #[tokio::test]
    async fn what_http_forbids_is_refused_before_anything_is_sent() {
        let origin = Origin::new("127.0.0.1", 9, "127.0.0.1:9", "");
        let mut connection = Http1::default();
        let spaced = request(http::Method::GET, "/a b", "", false);
        let err = connection.exchange(&origin, &spaced).await.unwrap_err();
        assert!(err.to_string().contains("request line"), "{err}");
        let mut injected = request(http::Method::GET, "/", "", false);
        injected.headers[0].1 = "p1\r\nx-admin: yes".into();
        let err = connection.exchange(&origin, &injected).await.unwrap_err();
        assert!(err.to_string().contains("`x-player`"), "{err}");
    }

    #[tokio::test]
    async fn answers_that_are_not_http_or_too_large_fail_the_call() {
        let (origin, _seen) = server(vec![
            ("SSH-2.0-OpenSSH\r\n\r\n", false),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n",
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                false,
            ),
            ("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true),
        ])
        .await;
        let mut connection = Http1::default();
        let get = request(http::Method::GET, "/", "", true);
        for expected in ["malformed answer", "MiB", "chunk size", "closed before"] {
            let err = connection.exchange(&origin, &get).await.unwrap_err();
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}
