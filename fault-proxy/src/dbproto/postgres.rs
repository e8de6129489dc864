//! The PostgreSQL side: startup (SSLRequest, GSSENCRequest, CancelRequest,
//! StartupMessage), simple Query and the extended protocol (Parse/Bind/.../Sync).

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use super::{Action, DbFaults, Pending, PgError, Phase, RelayEnd, Severity};

/// Largest message accepted (the protocol's own limit is 1 GiB).
const MAX_MESSAGE: u32 = 1 << 30;
/// Largest startup packet (PostgreSQL itself refuses more than 10000 bytes).
const MAX_STARTUP: u32 = 10_000;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// One typed protocol message (type byte and body, without the length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub ty: u8,
    pub body: Vec<u8>,
}

impl Message {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.ty);
        out.extend_from_slice(&(self.body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(&self.body);
    }
}

/// Reads one typed message; `None` at a clean end of stream before its first byte.
pub(crate) async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Message>> {
    let ty = match r.read_u8().await {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = r.read_u32().await?;
    if !(4..=MAX_MESSAGE).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("postgres message {:?} with bad length {len}", ty as char),
        ));
    }
    let mut body = vec![0; (len - 4) as usize];
    r.read_exact(&mut body).await?;
    Ok(Some(Message { ty, body }))
}

async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, m: &Message) -> io::Result<()> {
    w.write_u8(m.ty).await?;
    w.write_u32(m.body.len() as u32 + 4).await?;
    w.write_all(&m.body).await
}

/// The NUL-terminated string at the start of `b`, and the rest after the NUL.
fn cstr(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An ErrorResponse carrying `severity`, `sqlstate` and `message`.
///
/// Fields: `S` and `V` severity, `C` SQLSTATE, `M` message.
pub(crate) fn error_response(severity: Severity, sqlstate: &str, message: &str) -> Message {
    let mut body = Vec::with_capacity(32 + message.len());
    for (field, value) in [
        (b'S', severity.as_str()),
        (b'V', severity.as_str()),
        (b'C', sqlstate),
        (b'M', message),
    ] {
        body.push(field);
        body.extend(value.bytes().filter(|&b| b != 0));
        body.push(0);
    }
    body.push(0);
    Message { ty: b'E', body }
}

/// The poison the server is sure to reject with a syntax error naming `id`: a Parse of
/// the unnamed statement followed by Sync (for the extended protocol) or a Query.
fn poison(id: &[u8], extended: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if extended {
        let mut body = vec![0];
        body.extend_from_slice(id);
        body.extend_from_slice(&[0, 0, 0]);
        Message { ty: b'P', body }.encode(&mut out);
        Message {
            ty: b'S',
            body: Vec::new(),
        }
        .encode(&mut out);
    } else {
        let mut body = id.to_vec();
        body.push(0);
        Message { ty: b'Q', body }.encode(&mut out);
    }
    out
}

/// The startup message's parameters as `user=.. database=.. application_name=..`.
fn startup_text(body: &[u8]) -> String {
    let mut params = HashMap::new();
    let mut rest = body;
    while !rest.is_empty() && rest[0] != 0 {
        let (k, r) = cstr(rest);
        let (v, r) = cstr(r);
        params.insert(lossy(k), lossy(v));
        rest = r;
    }
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let user = get("user");
    let database = params
        .get("database")
        .cloned()
        .unwrap_or_else(|| user.clone());
    format!(
        "user={user} database={database} application_name={}",
        get("application_name")
    )
}

/// What the startup phase decided.
enum Startup {
    /// Go on with typed messages.
    Messages,
    /// Stop here with this end.
    End(RelayEnd),
}

pub(super) async fn relay(
    faults: &Arc<DbFaults>,
    client: TcpStream,
    upstream: TcpStream,
    busy_poll: std::time::Duration,
) -> io::Result<RelayEnd> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&client);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let (cr, ur) = DbFaults::read_halves(cr, ur, busy_poll);
    let mut cr = BufReader::new(cr);
    let mut cw = BufWriter::new(cw);
    let mut ur = BufReader::new(ur);
    let mut uw = BufWriter::new(uw);

    match startup(faults, &mut cr, &mut cw, &mut ur, &mut uw).await? {
        Startup::Messages => {}
        Startup::End(RelayEnd::Passthrough) => {
            faults.count_passthrough();
            super::passthrough(&mut cr, &mut cw, &mut ur, &mut uw).await?;
            return Ok(RelayEnd::Passthrough);
        }
        Startup::End(end) => return Ok(end),
    }

    let pending: Arc<Pending<PgError>> = Arc::default();
    let up = client_to_server(faults, &mut cr, &mut uw, &pending);
    let down = server_to_client(&mut ur, &mut cw, &pending);
    super::finish(fd, up, down).await
}

/// Startup: negotiate encryption (passing TLS through untouched), then the
/// StartupMessage, where connection rules apply.
async fn startup<CR, CW, UR, UW>(
    faults: &Arc<DbFaults>,
    cr: &mut CR,
    cw: &mut CW,
    ur: &mut UR,
    uw: &mut UW,
) -> io::Result<Startup>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    UR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    loop {
        let mut head = [0u8; 4];
        match cr.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Ok(Startup::End(RelayEnd::Closed))
            }
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(head);
        if !(8..=MAX_STARTUP).contains(&len) {
            // Not a startup packet we know (direct TLS, another protocol): hands off.
            uw.write_all(&head).await?;
            return Ok(Startup::End(RelayEnd::Passthrough));
        }
        let mut body = vec![0; (len - 4) as usize];
        cr.read_exact(&mut body).await?;
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        match code {
            SSL_REQUEST | GSSENC_REQUEST => {
                uw.write_all(&head).await?;
                uw.write_all(&body).await?;
                uw.flush().await?;
                let answer = ur.read_u8().await?;
                cw.write_all(&[answer]).await?;
                cw.flush().await?;
                if answer == b'S' || answer == b'G' {
                    tracing::info!("postgres client negotiated encryption: passing it through, no faults apply");
                    return Ok(Startup::End(RelayEnd::Passthrough));
                }
                if answer != b'N' {
                    return Ok(Startup::End(RelayEnd::Passthrough));
                }
            }
            CANCEL_REQUEST => {
                uw.write_all(&head).await?;
                uw.write_all(&body).await?;
                return Ok(Startup::End(RelayEnd::Passthrough));
            }
            _ => {
                let text = startup_text(&body[4..]);
                match faults.pick(Phase::Connect, &text) {
                    Some((rule, Action::Refuse { sqlstate, message })) => {
                        let mut out = Vec::new();
                        error_response(Severity::Fatal, &sqlstate, &message).encode(&mut out);
                        cw.write_all(&out).await?;
                        cw.flush().await?;
                        return Ok(Startup::End(RelayEnd::Refused(rule)));
                    }
                    Some((rule, Action::Drop)) => return Ok(Startup::End(RelayEnd::Dropped(rule))),
                    _ => {}
                }
                uw.write_all(&head).await?;
                uw.write_all(&body).await?;
                return Ok(Startup::Messages);
            }
        }
    }
}

/// Client to server: typed messages, where statement rules apply.
async fn client_to_server<CR, UW>(
    faults: &Arc<DbFaults>,
    cr: &mut BufReader<CR>,
    uw: &mut UW,
    pending: &Pending<PgError>,
) -> io::Result<RelayEnd>
where
    CR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    // Prepared statement texts by name, to match what a Bind executes.
    let mut statements: HashMap<Vec<u8>, String> = HashMap::new();
    // An injected error was decided in this extended-protocol batch: drop until Sync.
    let mut swallowing: Option<Vec<u8>> = None;
    loop {
        if cr.buffer().is_empty() {
            uw.flush().await?;
        }
        let Some(msg) = read_message(cr).await? else {
            uw.flush().await?;
            uw.shutdown().await?;
            return Ok(RelayEnd::Closed);
        };
        if let Some(id) = &swallowing {
            if msg.ty == b'S' {
                uw.write_all(&poison(id, true)).await?;
                swallowing = None;
            }
            continue;
        }
        let sql = match msg.ty {
            b'Q' => Some(lossy(cstr(&msg.body).0)),
            b'P' => {
                let (name, rest) = cstr(&msg.body);
                statements.insert(name.to_vec(), lossy(cstr(rest).0));
                None
            }
            b'B' => {
                let (_portal, rest) = cstr(&msg.body);
                let (name, _) = cstr(rest);
                statements.get(name).cloned()
            }
            b'C' => {
                if msg.body.first() == Some(&b'S') {
                    statements.remove(cstr(&msg.body[1..]).0);
                }
                None
            }
            _ => None,
        };
        let fired = sql.and_then(|sql| faults.pick(Phase::Request, &sql));
        match fired {
            None => write_message(uw, &msg).await?,
            Some((_, Action::Delay(d))) => {
                uw.flush().await?;
                tokio::time::sleep(d).await;
                write_message(uw, &msg).await?;
            }
            Some((rule, Action::PgError(err))) => {
                let id = pending.add(rule, err);
                if msg.ty == b'Q' {
                    uw.write_all(&poison(&id, false)).await?;
                } else {
                    swallowing = Some(id);
                }
            }
            Some((rule, Action::Reset)) => {
                write_message(uw, &msg).await?;
                uw.flush().await?;
                return Ok(RelayEnd::Reset(rule));
            }
            Some(_) => write_message(uw, &msg).await?,
        }
    }
}

/// Server to client: whole messages; the server's answer to a poison is swapped for
/// the injected error.
async fn server_to_client<UR, CW>(
    ur: &mut BufReader<UR>,
    cw: &mut CW,
    pending: &Pending<PgError>,
) -> io::Result<RelayEnd>
where
    UR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    loop {
        if ur.buffer().is_empty() {
            cw.flush().await?;
        }
        let Some(msg) = read_message(ur).await? else {
            cw.flush().await?;
            return Ok(RelayEnd::Closed);
        };
        if msg.ty == b'E' && !pending.is_empty() {
            if let Some((rule, err)) = pending.take(&msg.body) {
                write_message(
                    cw,
                    &error_response(err.severity, &err.sqlstate, &err.message),
                )
                .await?;
                if err.severity == Severity::Fatal {
                    cw.flush().await?;
                    return Ok(RelayEnd::Fatal(rule));
                }
                continue;
            }
        }
        write_message(cw, &msg).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Chunked;
    use super::super::{Protocol, Rule};
    use super::*;
    use proptest::prelude::*;

    fn encode_all(msgs: &[Message]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            m.encode(&mut out);
        }
        out
    }

    async fn decode_all<R: AsyncRead + Unpin>(r: R) -> Vec<Message> {
        let mut r = BufReader::with_capacity(7, r);
        let mut out = Vec::new();
        while let Some(m) = read_message(&mut r).await.unwrap() {
            out.push(m);
        }
        out
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            prop::sample::select(b"QPBDESHCXdc".to_vec()),
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(ty, body)| Message { ty, body })
    }

    proptest! {
        #[test]
        fn messages_survive_any_split(msgs in prop::collection::vec(message(), 0..20), sizes in prop::collection::vec(1usize..50, 1..10)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(decode_all(Chunked::new(encode_all(&msgs), sizes)));
            prop_assert_eq!(got, msgs);
        }
    }

    #[tokio::test]
    async fn truncated_message_is_an_error_and_bad_length_refused() {
        let mut bytes = encode_all(&[Message {
            ty: b'Q',
            body: b"SELECT 1\0".to_vec(),
        }]);
        bytes.pop();
        let mut r = BufReader::new(Chunked::new(bytes, vec![3]));
        assert!(read_message(&mut r).await.is_err());
        let mut r = BufReader::new(&[b'Q', 0, 0, 0, 2][..]);
        assert_eq!(
            read_message(&mut r).await.unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn error_response_fields() {
        let m = error_response(Severity::Error, "40001", "could not serialize");
        assert_eq!(m.ty, b'E');
        assert_eq!(
            m.body,
            b"SERROR\0VERROR\0C40001\0Mcould not serialize\0\0".to_vec()
        );
    }

    #[test]
    fn startup_text_defaults_database_to_user() {
        let body = b"user\0game\0application_name\0api\0\0";
        assert_eq!(
            startup_text(body),
            "user=game database=game application_name=api"
        );
    }

    #[test]
    fn poison_forms() {
        let q = poison(b"chaos_injected_fault_1", false);
        assert_eq!(&q[..1], b"Q");
        assert!(q.ends_with(b"chaos_injected_fault_1\0"));
        let p = poison(b"x", true);
        assert_eq!(
            p,
            [b"P\0\0\0\x09\0x\0\0\0".as_slice(), b"S\0\0\0\x04"].concat()
        );
    }

    /// The client side of the relay, fed a pipelined, chunked stream: a batch whose Bind
    /// matches is dropped up to its Sync and replaced by the poison; other batches pass.
    #[tokio::test]
    async fn extended_batch_swallowed_until_sync_in_order() {
        let faults = DbFaults::new(Protocol::Postgres);
        let err = PgError {
            sqlstate: "40001".into(),
            severity: Severity::Error,
            message: "m".into(),
        };
        faults
            .set_rule(Rule::new("e", Some("^UPDATE"), Action::PgError(err), 1.0).unwrap())
            .unwrap();
        let m = |ty: u8, body: &[u8]| Message {
            ty,
            body: body.to_vec(),
        };
        let input = [
            m(b'P', b"s0\0SELECT 1\0\0\0"),
            m(b'S', b""),
            m(b'P', b"s1\0UPDATE t SET x = 1\0\0\0"),
            m(b'S', b""),
            m(b'B', b"\0s1\0\0\0\0\0\0\0"),
            m(b'E', b"\0\0\0\0\0"),
            m(b'S', b""),
            m(b'B', b"\0s0\0\0\0\0\0\0\0"),
            m(b'E', b"\0\0\0\0\0"),
            m(b'S', b""),
        ];
        let mut cr = BufReader::new(Chunked::new(encode_all(&input), vec![5, 1, 13]));
        let mut out = Vec::new();
        let pending = Pending::default();
        let end = client_to_server(&faults, &mut cr, &mut out, &pending)
            .await
            .unwrap();
        assert_eq!(end, RelayEnd::Closed);
        let got = decode_all(&out[..]).await;
        let mut want = input[..4].to_vec();
        want.extend(decode_all(&poison(b"chaos_injected_fault_0", true)[..]).await);
        want.extend(input[7..].iter().cloned());
        assert_eq!(got, want);
        assert_eq!(faults.hits("e"), Some(1));
    }

    /// The server side: the answer to the poison becomes the injected error, whole, and
    /// everything else passes unchanged in order.
    #[tokio::test]
    async fn poison_answer_swapped() {
        let pending = Pending::default();
        let id = pending.add(
            "e".into(),
            PgError {
                sqlstate: "40001".into(),
                severity: Severity::Error,
                message: "injected".into(),
            },
        );
        let syntax = error_response(
            Severity::Error,
            "42601",
            &format!(
                "syntax error at or near \"{}\"",
                String::from_utf8_lossy(&id)
            ),
        );
        let z = Message {
            ty: b'Z',
            body: b"T".to_vec(),
        };
        let other = error_response(Severity::Error, "23505", "duplicate");
        let input = [other.clone(), z.clone(), syntax, z.clone()];
        let mut ur = BufReader::new(Chunked::new(encode_all(&input), vec![2, 9]));
        let mut out = Vec::new();
        server_to_client(&mut ur, &mut out, &pending).await.unwrap();
        let got = decode_all(&out[..]).await;
        assert_eq!(
            got,
            [
                other,
                z.clone(),
                error_response(Severity::Error, "40001", "injected"),
                z
            ]
        );
    }
}
