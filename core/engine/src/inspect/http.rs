//! HTTP/1.x request sniffing: the request line and the Host header from the first bytes of a TCP
//! stream.
//!
//! Only what the policy needs is read: the method, the request target (for events) and the host the
//! request is for, taken from the Host header, or from the target itself for the absolute form
//! (`GET http://host/ HTTP/1.1`, sent to proxies) and the authority form (`CONNECT host:443`).
//!
//! Requests to an HTTP proxy name two hosts that may differ (the target's and the Host header's):
//! both are kept ([`HttpRequest::names`]) so that the caller can refuse the request when either is
//! blocked. A `CONNECT` head is read to its end (the blank line), and its length is given
//! ([`HttpRequest::head_len`]): the bytes after it are the tunnel's, which the caller inspects
//! on their own.

use super::{normalize_host_name, Sniff};

/// How many bytes of a stream the caller should hold at most while waiting for the Host header.
///
/// Why 32 KiB: above the request-head limits of common servers (Apache's
/// LimitRequestFieldSize and nginx's large_client_header_buffers are 8 KiB per line, nginx
/// allows 4 such buffers), so a Host that follows kilobytes of cookies is still read, while a
/// flow that never sends a Host costs at most this much while the engine waits. Past it,
/// [`request`] answers `Done` with whatever it found (usually no host, which the engine
/// refuses) instead of `NeedMore`.
pub const SNIFF_LIMIT: usize = 32 * 1024;

/// Longest method token accepted ("PROPPATCH", "MKCALENDAR" and the like fit); anything longer is
/// not an HTTP request. Lets a non-HTTP stream be rejected on its first bytes.
const MAX_METHOD_LEN: usize = 16;

/// Longest request target kept in [`HttpRequest::target`]; longer ones are cut (at a char
/// boundary). Events need the path for display only; tracker URLs carry kilobytes of query string.
const MAX_TARGET_KEPT: usize = 256;

/// What the engine learns from the head of an HTTP/1.x request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method token, e.g. `GET`.
    pub method: String,
    /// The request target as sent (origin form `/path?q`, absolute form, or authority form), cut to
    /// its first 256 bytes; bytes that are not UTF-8 are replaced by U+FFFD.
    pub target: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The host the request is for, lowercased, port and trailing dot removed, IPv6 brackets
    /// removed (`[::1]:8080` gives `::1`). `None` when absent or not a host name or IP literal.
    /// The target's host when it names one (RFC 9112 §3.2.2: it wins over the Host header),
    /// else the Host header's.
    pub host: Option<String>,
    /// The host named by the request target itself: an absolute-form target's
    /// (`GET http://host:port/path`) or a `CONNECT`'s (`CONNECT host:port`), normalized as
    /// [`HttpRequest::host`]. `None` for the origin form (`GET /path`).
    pub target_host: Option<String>,
    /// The Host header's host, normalized as [`HttpRequest::host`]; `None` when absent or not
    /// a host. For requests other than `CONNECT` only the head up to the Host line is read.
    pub host_header: Option<String>,
    /// Length in bytes of the whole request head (request line to the blank line, included)
    /// when its end was read. Always read to the end for `CONNECT` (within [`SNIFF_LIMIT`]);
    /// other requests stop at the Host line and leave it `None` unless the head ended first.
    pub head_len: Option<usize>,
}

impl HttpRequest {
    /// Whether this is a `CONNECT` (a tunnel request to a proxy).
    pub fn is_connect(&self) -> bool {
        self.method == "CONNECT"
    }

    /// Every host the request names, the target's first, each once: the caller blocks the
    /// request when any of them is blocked (a proxy request may name one host in its target
    /// and another in its Host header). Empty when it names none.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let target = self.target_host.as_deref();
        let header = self.host_header.as_deref().filter(|h| Some(*h) != target);
        target.into_iter().chain(header)
    }

    /// Fills [`HttpRequest::host`] from the target's and the Host header's hosts.
    fn finish(mut self) -> Self {
        self.host = self
            .target_host
            .clone()
            .or_else(|| self.host_header.clone());
        self
    }
}

/// Reads the request line and the Host header from the first bytes of a TCP stream.
///
/// - [`Sniff::NeedMore`]: a valid prefix of an HTTP/1.x request head without a Host line yet
///   (for `CONNECT`: without the blank line ending the head yet).
/// - [`Sniff::Done`]: the host was found, or the head ended (blank line) without one, or
///   [`SNIFF_LIMIT`] bytes were seen without one.
/// - [`Sniff::NotThisProtocol`]: the bytes cannot start an HTTP/1.x request.
///
/// Returns as soon as the Host line is complete: the rest of the head is not needed, except for
/// `CONNECT`, whose head is read to its end so that the caller knows where the tunnel starts.
pub fn request(buf: &[u8]) -> Sniff<HttpRequest> {
    let limited = &buf[..buf.len().min(SNIFF_LIMIT)];
    let Some(line_end) = find_line_end(limited) else {
        return match request_line_prefix_ok(limited) {
            true if limited.len() < SNIFF_LIMIT => Sniff::NeedMore,
            _ => Sniff::NotThisProtocol,
        };
    };
    let Some(mut request) = parse_request_line(trim_cr(&limited[..line_end])) else {
        return Sniff::NotThisProtocol;
    };
    request.target_host =
        target_authority(&request.method, &request.target).and_then(normalize_authority);
    let connect = request.is_connect();
    let mut seen_host = false;
    let mut pos = line_end + 1;
    loop {
        let rest = limited.get(pos..).unwrap_or_default();
        let Some(end) = find_line_end(rest) else {
            // Head not complete. Past the limit, give what we have rather than waiting forever.
            if limited.len() >= SNIFF_LIMIT {
                return Sniff::Done(request.finish());
            }
            return Sniff::NeedMore;
        };
        let line = trim_cr(&rest[..end]);
        pos += end + 1;
        if line.is_empty() {
            // End of the head (without a Host header: HTTP/1.0, a CONNECT, a broken client).
            request.head_len = Some(pos);
            return Sniff::Done(request.finish());
        }
        if seen_host {
            continue;
        }
        if let Some(value) = header_value(line, b"host") {
            seen_host = true;
            request.host_header = normalize_authority(value);
            if !connect {
                return Sniff::Done(request.finish());
            }
        }
    }
}

/// Index of the `\n` ending the first line, if any.
fn find_line_end(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// True when `prefix` (with no newline yet) can still become a valid request line.
fn request_line_prefix_ok(prefix: &[u8]) -> bool {
    let method_len = prefix.iter().take_while(|b| b.is_ascii_uppercase()).count();
    match prefix.get(method_len) {
        // Still inside the method.
        None => method_len <= MAX_METHOD_LEN,
        Some(b' ') => {
            if method_len == 0 || method_len > MAX_METHOD_LEN {
                return false;
            }
            // Target and version: no control bytes before the end of the line.
            prefix[method_len + 1..]
                .iter()
                .all(|&b| b == b' ' || b == b'\r' || b.is_ascii_graphic() || b >= 0x80)
        }
        Some(_) => false,
    }
}

/// Parses `METHOD SP target SP HTTP/1.x`.
fn parse_request_line(line: &[u8]) -> Option<HttpRequest> {
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some()
        || method.is_empty()
        || method.len() > MAX_METHOD_LEN
        || !method.iter().all(u8::is_ascii_uppercase)
        || target.is_empty()
        || target.iter().any(|&b| b.is_ascii_control())
    {
        return None;
    }
    let minor_version = match version {
        b"HTTP/1.0" => 0,
        b"HTTP/1.1" => 1,
        _ => return None,
    };
    let kept = &target[..target.len().min(MAX_TARGET_KEPT)];
    Some(HttpRequest {
        // The method is ASCII uppercase (checked above).
        method: String::from_utf8_lossy(method).into_owned(),
        target: String::from_utf8_lossy(kept).into_owned(),
        minor_version,
        host: None,
        target_host: None,
        host_header: None,
        head_len: None,
    })
}

/// The authority of an absolute-form (`http://host:port/path`) or authority-form (`CONNECT
/// host:port`) target. The raw target is re-derived from the request (only the kept prefix is
/// available, which is enough: authorities are short).
fn target_authority<'a>(method: &str, target: &'a str) -> Option<&'a [u8]> {
    if method == "CONNECT" {
        return Some(target.as_bytes());
    }
    let lower_scheme_end = target.find("://")?;
    let scheme = &target[..lower_scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let after = &target[lower_scheme_end + 3..];
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some(&after.as_bytes()[..end])
}

/// The value of header `name` (lowercase) in `line`, trimmed, if `line` is that header.
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    if !line[..colon].eq_ignore_ascii_case(name) {
        return None;
    }
    Some(line[colon + 1..].trim_ascii())
}

/// Turns `host`, `host:port`, `[v6]`, `[v6]:port` or `user@host` into a lowercased host without
/// port; IP literals are returned in their canonical text form.
fn normalize_authority(authority: &[u8]) -> Option<String> {
    let authority = authority.trim_ascii();
    // Userinfo (deprecated, but seen in absolute-form targets).
    let authority = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    if let Some(rest) = authority.strip_prefix(b"[") {
        let close = rest.iter().position(|&b| b == b']')?;
        let after = &rest[close + 1..];
        if !(after.is_empty() || (after[0] == b':' && is_port(&after[1..]))) {
            return None;
        }
        let literal = std::str::from_utf8(&rest[..close]).ok()?;
        let addr: std::net::Ipv6Addr = literal.parse().ok()?;
        return Some(addr.to_string());
    }
    let host = match authority.iter().position(|&b| b == b':') {
        Some(colon) if is_port(&authority[colon + 1..]) => &authority[..colon],
        Some(_) => return None,
        None => authority,
    };
    normalize_host_name(host)
}

/// An empty port is allowed (RFC 3986 `port = *DIGIT`).
fn is_port(digits: &[u8]) -> bool {
    digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(buf: &[u8]) -> Option<String> {
        match request(buf) {
            Sniff::Done(request) => request.host,
            other => panic!("not done: {other:?}"),
        }
    }

    #[test]
    fn reads_request_line_and_host() {
        let head =
            b"GET /imghp?test=1&v2=2 HTTP/1.1\r\nUser-Agent: x\r\nHost: WWW.Google.com\r\n\r\n";
        let Sniff::Done(request) = request(head) else {
            panic!()
        };
        assert_eq!(request.method, "GET");
        assert_eq!(request.target, "/imghp?test=1&v2=2");
        assert_eq!(request.minor_version, 1);
        assert_eq!(request.host.as_deref(), Some("www.google.com"));
    }

    #[test]
    fn need_more_on_every_prefix_before_the_host_line_ends() {
        let head = b"POST /a HTTP/1.1\r\nAccept: */*\r\nhost: example.org:8080\r\n";
        for cut in 0..head.len() {
            assert_eq!(request(&head[..cut]), Sniff::NeedMore, "cut {cut}");
        }
        assert_eq!(host_of(head).as_deref(), Some("example.org"));
    }

    #[test]
    fn ports_ip_literals_and_odd_spacing() {
        assert_eq!(
            host_of(b"GET / HTTP/1.1\nHost:  [2001:DB8::1]:8080 \n").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            host_of(b"GET / HTTP/1.1\r\nHost: [::1]\r\n").as_deref(),
            Some("::1")
        );
        assert_eq!(
            host_of(b"GET / HTTP/1.1\r\nHOST: 149.202.95.241\r\n").as_deref(),
            Some("149.202.95.241")
        );
        assert_eq!(
            host_of(b"GET / HTTP/1.1\r\nHost: a.example.:\r\n").as_deref(),
            Some("a.example")
        );
        assert_eq!(host_of(b"GET / HTTP/1.1\r\nHost: [::1\r\n"), None);
        assert_eq!(host_of(b"GET / HTTP/1.1\r\nHost: a:b:c\r\n"), None);
        assert_eq!(host_of(b"GET / HTTP/1.1\r\nHost: \r\n"), None);
    }

    #[test]
    fn absolute_and_authority_forms() {
        assert_eq!(
            host_of(b"GET http://Proxy.Example:81/x HTTP/1.1\r\nHost: other\r\n").as_deref(),
            Some("proxy.example")
        );
        assert_eq!(
            host_of(b"CONNECT tracker.example:443 HTTP/1.1\r\n\r\n").as_deref(),
            Some("tracker.example")
        );
        assert_eq!(
            host_of(b"GET http://u:p@h.example/ HTTP/1.0\r\n\r\n").as_deref(),
            Some("h.example")
        );
    }

    #[test]
    fn connect_head_is_read_to_its_end_and_the_tunnel_bytes_are_not_part_of_it() {
        let head = b"CONNECT Tracker.Example:443 HTTP/1.1\r\nHost: tracker.example:443\r\n\
                     User-Agent: curl/8\r\nProxy-Connection: Keep-Alive\r\n\r\n";
        for cut in 0..head.len() {
            assert_eq!(request(&head[..cut]), Sniff::NeedMore, "cut {cut}");
        }
        let mut stream = head.to_vec();
        stream.extend_from_slice(b"\x16\x03\x01\x02\x00\x01");
        let Sniff::Done(r) = request(&stream) else {
            panic!()
        };
        assert!(r.is_connect());
        assert_eq!(r.head_len, Some(head.len()));
        assert_eq!(r.target_host.as_deref(), Some("tracker.example"));
        assert_eq!(r.host.as_deref(), Some("tracker.example"));
        assert_eq!(r.names().collect::<Vec<_>>(), ["tracker.example"]);
        // Without a Host header, and with a bare LF.
        let Sniff::Done(r) = request(b"CONNECT [2001:db8::1]:443 HTTP/1.0\n\n") else {
            panic!()
        };
        assert_eq!(
            (r.head_len, r.host.as_deref()),
            (Some(36), Some("2001:db8::1"))
        );
        // A head that never ends within the limit: done, without a head length.
        let mut long = b"CONNECT a.example:443 HTTP/1.1\r\n".to_vec();
        while long.len() < SNIFF_LIMIT {
            long.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let Sniff::Done(r) = request(&long) else {
            panic!()
        };
        assert_eq!((r.head_len, r.host.as_deref()), (None, Some("a.example")));
    }

    #[test]
    fn a_proxy_request_names_its_target_and_a_differing_host_header() {
        let Sniff::Done(r) =
            request(b"GET http://allowed.example/x HTTP/1.1\r\nHost: Blocked.Example\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(r.target_host.as_deref(), Some("allowed.example"));
        assert_eq!(r.host_header.as_deref(), Some("blocked.example"));
        assert_eq!(
            r.names().collect::<Vec<_>>(),
            ["allowed.example", "blocked.example"]
        );
        let Sniff::Done(r) = request(b"GET http://a.example:8080/ HTTP/1.1\r\nHost: a.example\r\n")
        else {
            panic!()
        };
        assert_eq!(r.names().collect::<Vec<_>>(), ["a.example"]);
        assert!(!r.is_connect() && r.head_len.is_none());
        // Origin form: the Host header alone.
        let Sniff::Done(r) = request(b"GET / HTTP/1.1\r\nHost: h.example\r\n") else {
            panic!()
        };
        assert_eq!(r.target_host, None);
        assert_eq!(r.names().collect::<Vec<_>>(), ["h.example"]);
        // A target that is not a host does not hide the Host header.
        let Sniff::Done(r) = request(b"GET http://a%20b/ HTTP/1.1\r\nHost: h.example\r\n") else {
            panic!()
        };
        assert_eq!(r.names().collect::<Vec<_>>(), ["h.example"]);
    }

    #[test]
    fn head_without_host_is_done_none() {
        assert_eq!(host_of(b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"), None);
    }

    #[test]
    fn not_http_is_rejected_early() {
        assert_eq!(request(b"\x16\x03\x01"), Sniff::NotThisProtocol);
        assert_eq!(request(b"get / HTTP/1.1\r\n"), Sniff::NotThisProtocol);
        assert_eq!(request(b"GET / HTTP/2.0\r\n"), Sniff::NotThisProtocol);
        assert_eq!(request(b"GET / HTTP/1.1 extra\r\n"), Sniff::NotThisProtocol);
        assert_eq!(request(b"ABCDEFGHIJKLMNOPQ"), Sniff::NotThisProtocol);
        assert_eq!(request(b"GET /\x01"), Sniff::NotThisProtocol);
        assert_eq!(request(b"SSH-2.0-OpenSSH\r\n"), Sniff::NotThisProtocol);
        assert_eq!(
            request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Sniff::NotThisProtocol
        );
        assert_eq!(request(b""), Sniff::NeedMore);
        assert_eq!(request(b"GE"), Sniff::NeedMore);
    }

    #[test]
    fn gives_up_waiting_at_the_limit() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        while head.len() < SNIFF_LIMIT + 10 {
            head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(request(&head[..SNIFF_LIMIT - 1]), Sniff::NeedMore);
        assert_eq!(host_of(&head), None);
        // A request line longer than the limit is not something we wait for.
        let long = [b"GET /".as_slice(), &[b'a'; SNIFF_LIMIT]].concat();
        assert_eq!(request(&long), Sniff::NotThisProtocol);
    }

    #[test]
    fn long_targets_are_cut_and_stay_valid_text() {
        let mut head = b"GET /".to_vec();
        head.extend(
            std::iter::repeat_n(0xc3_u8, 1)
                .chain(std::iter::repeat_n(0xa9, 1))
                .cycle()
                .take(600),
        );
        head.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\n");
        let Sniff::Done(request) = request(&head) else {
            panic!()
        };
        assert!(request.target.len() <= MAX_TARGET_KEPT + 3);
        assert_eq!(request.host.as_deref(), Some("h"));
    }
}
