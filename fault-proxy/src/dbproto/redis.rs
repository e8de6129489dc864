//! The Redis side: requests as RESP arrays of bulk strings or inline commands, replies
//! as whole RESP2/RESP3 frames.

use std::io;
use std::sync::Arc;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
    BufWriter,
};
use tokio::net::TcpStream;

use super::{Action, DbFaults, Pending, Phase, RelayEnd};

/// Most arguments in one request (Redis itself allows 1024*1024).
const MAX_ARGS: i64 = 1 << 20;
/// Largest bulk string (Redis' default `proto-max-bulk-len` is 512 MiB).
const MAX_BULK: i64 = 512 << 20;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// The integer of a RESP header line (`*3\r\n`, `$5\r\n`), after its type byte.
fn header_int(line: &[u8]) -> io::Result<i64> {
    let digits = line
        .get(1..)
        .unwrap_or_default()
        .strip_suffix(b"\n")
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .ok_or_else(|| invalid("RESP line without LF"))?;
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| invalid("RESP length is not a number"))
}

/// Reads one line ending in LF into `out`; false at a clean end of stream.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, out: &mut Vec<u8>) -> io::Result<bool> {
    let start = out.len();
    let n = r.read_until(b'\n', out).await?;
    if n == 0 {
        return Ok(false);
    }
    if out.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "RESP line cut short",
        ));
    }
    debug_assert!(out.len() > start);
    Ok(true)
}

/// Reads one request into `raw` (its exact bytes) and returns its arguments; `None` at
/// a clean end of stream.
pub(crate) async fn read_request<R: AsyncBufRead + Unpin>(
    r: &mut R,
    raw: &mut Vec<u8>,
) -> io::Result<Option<Vec<Vec<u8>>>> {
    raw.clear();
    if !read_line(r, raw).await? {
        return Ok(None);
    }
    if raw[0] != b'*' {
        let args = raw
            .split(|b| b.is_ascii_whitespace())
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        return Ok(Some(args));
    }
    let n = header_int(raw)?;
    if n > MAX_ARGS {
        return Err(invalid(format!("RESP request with {n} arguments")));
    }
    let mut args = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n.max(0) {
        let start = raw.len();
        if !read_line(r, raw).await? || raw[start] != b'$' {
            return Err(invalid("RESP request argument is not a bulk string"));
        }
        let len = header_int(&raw[start..])?;
        if !(0..=MAX_BULK).contains(&len) {
            return Err(invalid(format!("RESP bulk string of length {len}")));
        }
        let at = raw.len();
        raw.resize(at + len as usize + 2, 0);
        r.read_exact(&mut raw[at..]).await?;
        args.push(raw[at..at + len as usize].to_vec());
    }
    Ok(Some(args))
}

/// Most levels of nesting in one reply (Redis' own replies stay far below).
const MAX_DEPTH: usize = 1024;

/// What the reply parser still expects at one level of nesting.
enum Level {
    /// This many more elements.
    Count(i64),
    /// Elements until an end marker (`.`): a RESP3 streamed aggregate (`*?`, `~?`, `%?`,
    /// `>?`).
    Streamed,
}

/// Reads one whole reply frame (nested aggregates, RESP3 maps, sets, pushes, attributes
/// and streamed strings and aggregates included) into `out`; false at a clean end of
/// stream.
pub(crate) async fn read_reply<R: AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    out.clear();
    let mut levels = vec![Level::Count(1)];
    loop {
        while matches!(levels.last(), Some(Level::Count(n)) if *n <= 0) {
            levels.pop();
        }
        if levels.is_empty() {
            return Ok(true);
        }
        let start = out.len();
        if !read_line(r, out).await? {
            if start == 0 {
                return Ok(false);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "RESP reply cut short",
            ));
        }
        let kind = out[start];
        let streamed = out.get(start + 1) == Some(&b'?');
        if kind == b'.' {
            // The end of a streamed aggregate, which was one element of its parent.
            match levels.pop() {
                Some(Level::Streamed) => continue,
                _ => return Err(invalid("RESP end marker outside a streamed aggregate")),
            }
        }
        // An attribute map annotates the element after it and fills no slot itself.
        if kind != b'|' {
            if let Some(Level::Count(n)) = levels.last_mut() {
                *n -= 1;
            }
        }
        let child = match kind {
            b'$' if streamed => {
                read_streamed_string(r, out).await?;
                None
            }
            b'$' | b'!' | b'=' => {
                let len = header_int(&out[start..])?;
                if len > MAX_BULK {
                    return Err(invalid(format!("RESP bulk string of length {len}")));
                }
                if len >= 0 {
                    let at = out.len();
                    out.resize(at + len as usize + 2, 0);
                    r.read_exact(&mut out[at..]).await?;
                }
                None
            }
            b'*' | b'~' | b'>' | b'%' if streamed => Some(Level::Streamed),
            b'*' | b'~' | b'>' => Some(Level::Count(header_int(&out[start..])?.clamp(0, MAX_ARGS))),
            b'%' | b'|' => Some(Level::Count(
                2 * header_int(&out[start..])?.clamp(0, MAX_ARGS),
            )),
            _ => None,
        };
        if let Some(level) = child {
            if levels.len() >= MAX_DEPTH {
                return Err(invalid("RESP reply nested too deep"));
            }
            levels.push(level);
        }
    }
}

/// Reads the chunks of a RESP3 streamed string (`;<len>` and the bytes, until `;0`)
/// into `out`, after its `$?` header.
async fn read_streamed_string<R: AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut total: i64 = 0;
    loop {
        let start = out.len();
        if !read_line(r, out).await? || out[start] != b';' {
            return Err(invalid("RESP streamed string chunk expected"));
        }
        let len = header_int(&out[start..])?;
        if len == 0 {
            return Ok(());
        }
        total += len;
        if len < 0 || total > MAX_BULK {
            return Err(invalid(format!(
                "RESP streamed string chunk of length {len}"
            )));
        }
        let at = out.len();
        out.resize(at + len as usize + 2, 0);
        r.read_exact(&mut out[at..]).await?;
    }
}

/// What a rule matches a command against: `NAME arg1 arg2 ...`, the name upper-cased.
fn command_text(args: &[Vec<u8>]) -> String {
    let mut text = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i == 0 {
            text.push_str(&String::from_utf8_lossy(arg).to_ascii_uppercase());
        } else {
            text.push(' ');
            text.push_str(&String::from_utf8_lossy(arg));
        }
    }
    text
}

/// The poison: a command the server does not know, named `id`.
fn poison(id: &[u8]) -> Vec<u8> {
    let mut out = format!("*1\r\n${}\r\n", id.len()).into_bytes();
    out.extend_from_slice(id);
    out.extend_from_slice(b"\r\n");
    out
}

pub(super) async fn relay(
    faults: &Arc<DbFaults>,
    client: TcpStream,
    upstream: TcpStream,
    busy_poll: std::time::Duration,
) -> io::Result<RelayEnd> {
    if let Some((rule, Action::Drop)) = faults.pick(Phase::Connect, "") {
        return Ok(RelayEnd::Dropped(rule));
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&client);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let (cr, ur) = DbFaults::read_halves(cr, ur, busy_poll);
    let mut cr = BufReader::new(cr);
    let mut cw = BufWriter::new(cw);
    let mut ur = BufReader::new(ur);
    let mut uw = BufWriter::new(uw);
    let pending: Arc<Pending<String>> = Arc::default();
    let up = client_to_server(faults, &mut cr, &mut uw, &pending);
    let down = server_to_client(&mut ur, &mut cw, &pending);
    super::finish(fd, up, down).await
}

async fn client_to_server<CR, UW>(
    faults: &Arc<DbFaults>,
    cr: &mut BufReader<CR>,
    uw: &mut UW,
    pending: &Pending<String>,
) -> io::Result<RelayEnd>
where
    CR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    let mut raw = Vec::new();
    loop {
        if cr.buffer().is_empty() {
            uw.flush().await?;
        }
        let Some(args) = read_request(cr, &mut raw).await? else {
            uw.flush().await?;
            uw.shutdown().await?;
            return Ok(RelayEnd::Closed);
        };
        let fired = if args.is_empty() {
            None
        } else {
            faults.pick(Phase::Request, &command_text(&args))
        };
        match fired {
            None => uw.write_all(&raw).await?,
            Some((_, Action::Delay(d))) => {
                uw.flush().await?;
                tokio::time::sleep(d).await;
                uw.write_all(&raw).await?;
            }
            Some((rule, Action::RedisError(line))) => {
                let id = pending.add(rule, line);
                uw.write_all(&poison(&id)).await?;
            }
            Some((rule, Action::Reset)) => {
                uw.write_all(&raw).await?;
                uw.flush().await?;
                return Ok(RelayEnd::Reset(rule));
            }
            Some(_) => uw.write_all(&raw).await?,
        }
    }
}

async fn server_to_client<UR, CW>(
    ur: &mut BufReader<UR>,
    cw: &mut CW,
    pending: &Pending<String>,
) -> io::Result<RelayEnd>
where
    UR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    let mut frame = Vec::new();
    loop {
        if ur.buffer().is_empty() {
            cw.flush().await?;
        }
        if !read_reply(ur, &mut frame).await? {
            cw.flush().await?;
            return Ok(RelayEnd::Closed);
        }
        if frame[0] == b'-' && !pending.is_empty() {
            if let Some((_, line)) = pending.take(&frame) {
                cw.write_all(b"-").await?;
                cw.write_all(line.as_bytes()).await?;
                cw.write_all(b"\r\n").await?;
                continue;
            }
        }
        cw.write_all(&frame).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Chunked;
    use super::super::Rule;
    use super::*;
    use proptest::prelude::*;

    fn resp(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    proptest! {
        #[test]
        fn requests_survive_any_split(
            reqs in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..5), 0..15),
            sizes in prop::collection::vec(1usize..30, 1..8),
        ) {
            let bytes: Vec<u8> = reqs.iter().flat_map(|r| resp(r)).collect();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (got, raws) = rt.block_on(async {
                let mut r = BufReader::with_capacity(5, Chunked::new(bytes.clone(), sizes));
                let mut raw = Vec::new();
                let mut got = Vec::new();
                let mut raws = Vec::new();
                while let Some(args) = read_request(&mut r, &mut raw).await.unwrap() {
                    got.push(args);
                    raws.extend_from_slice(&raw);
                }
                (got, raws)
            });
            prop_assert_eq!(got, reqs);
            prop_assert_eq!(raws, bytes);
        }

        #[test]
        fn replies_survive_any_split(sizes in prop::collection::vec(1usize..20, 1..8)) {
            let frames: Vec<&[u8]> = vec![
                b"+OK\r\n",
                b"-ERR x\r\n",
                b":42\r\n",
                b"$-1\r\n",
                b"$5\r\nhe\r\no\r\n",
                b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
                b"*-1\r\n",
                b"%1\r\n+k\r\n$1\r\nv\r\n",
                b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n",
                b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",
                b"_\r\n",
                b"*0\r\n",
                // RESP3 streamed strings and aggregates, and an attribute inside an array.
                b"$?\r\n;4\r\nHe\r\n\r\n;1\r\no\r\n;0\r\n",
                b"*?\r\n:1\r\n$?\r\n;2\r\nab\r\n;0\r\n%1\r\n+k\r\n:2\r\n.\r\n",
                b"%?\r\n+a\r\n:1\r\n+b\r\n*?\r\n.\r\n.\r\n",
                b"~?\r\n>?\r\n+x\r\n.\r\n.\r\n",
                b"*2\r\n|1\r\n+ttl\r\n:3\r\n:1\r\n:2\r\n",
            ];
            let bytes = frames.concat();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(async {
                let mut r = BufReader::with_capacity(4, Chunked::new(bytes, sizes));
                let mut frame = Vec::new();
                let mut got = Vec::new();
                while read_reply(&mut r, &mut frame).await.unwrap() {
                    got.push(frame.clone());
                }
                got
            });
            let want: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn inline_commands_and_bad_input() {
        let mut r = BufReader::new(&b"GET  key\r\nPING\n"[..]);
        let mut raw = Vec::new();
        let a = read_request(&mut r, &mut raw).await.unwrap().unwrap();
        assert_eq!(a, [b"GET".to_vec(), b"key".to_vec()]);
        assert_eq!(raw, b"GET  key\r\n");
        let a = read_request(&mut r, &mut raw).await.unwrap().unwrap();
        assert_eq!(a, [b"PING".to_vec()]);
        assert!(read_request(&mut r, &mut raw).await.unwrap().is_none());
        let mut r = BufReader::new(&b"*1\r\n:5\r\n"[..]);
        assert!(read_request(&mut r, &mut raw).await.is_err());
        let mut r = BufReader::new(&b"*1\r\n$5\r\nab"[..]);
        assert!(read_request(&mut r, &mut raw).await.is_err());
        assert_eq!(command_text(&[b"get".to_vec(), b"k".to_vec()]), "GET k");
        // Replies: an end marker with no streamed aggregate open, a streamed string
        // without its chunks, a stream cut before its end.
        for bad in [&b".\r\n"[..], b"$?\r\n+x\r\n", b"*?\r\n:1\r\n"] {
            let mut r = BufReader::new(bad);
            assert!(read_reply(&mut r, &mut raw).await.is_err(), "{bad:?}");
        }
    }

    /// Pipelined: the matching command is replaced by the poison in place, the others
    /// are forwarded byte for byte in order.
    #[tokio::test]
    async fn pipelined_commands_keep_order() {
        let faults = DbFaults::new(super::super::Protocol::Redis);
        faults
            .set_rule(
                Rule::new(
                    "ro",
                    Some("^SET "),
                    Action::RedisError("READONLY no".into()),
                    1.0,
                )
                .unwrap(),
            )
            .unwrap();
        let reqs = [
            resp(&[b"GET".to_vec(), b"a".to_vec()]),
            resp(&[b"set".to_vec(), b"a".to_vec(), b"1".to_vec()]),
            resp(&[b"GET".to_vec(), b"b".to_vec()]),
        ];
        let mut cr = BufReader::new(Chunked::new(reqs.concat(), vec![3, 7]));
        let mut out = Vec::new();
        let pending = Pending::default();
        client_to_server(&faults, &mut cr, &mut out, &pending)
            .await
            .unwrap();
        let want = [
            reqs[0].clone(),
            poison(b"chaos_injected_fault_0"),
            reqs[2].clone(),
        ]
        .concat();
        assert_eq!(out, want);
        let replies = b"$1\r\nx\r\n-ERR unknown command 'chaos_injected_fault_0', with args beginning with: \r\n$-1\r\n";
        let mut ur = BufReader::new(Chunked::new(replies.to_vec(), vec![4]));
        let mut down = Vec::new();
        server_to_client(&mut ur, &mut down, &pending)
            .await
            .unwrap();
        assert_eq!(down, b"$1\r\nx\r\n-READONLY no\r\n$-1\r\n");
        // RESP3 streamed replies around the poison's answer keep the order too: each
        // streamed frame is passed whole, the error after it is still swapped.
        let replies = b"$?\r\n;1\r\nx\r\n;0\r\n-ERR unknown command 'chaos_injected_fault_0'\r\n*?\r\n:1\r\n.\r\n";
        let pending = Pending::default();
        pending.add("ro".into(), "READONLY no".to_owned());
        let mut ur = BufReader::new(Chunked::new(replies.to_vec(), vec![2, 5]));
        let mut down = Vec::new();
        server_to_client(&mut ur, &mut down, &pending)
            .await
            .unwrap();
        assert_eq!(
            down,
            b"$?\r\n;1\r\nx\r\n;0\r\n-READONLY no\r\n*?\r\n:1\r\n.\r\n"
        );
    }
}
